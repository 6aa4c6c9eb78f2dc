//! The order manager (orders subsystem): gives every pending order its order actor, routes
//! payments and cancellations to it, and supervises the order actors. At start it re-spawns an
//! actor for every pending order in the database, so timers survive restarts; windows that ended
//! while the service was down are expired as soon as the scanners have caught up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::order::{OrderActor, OrderEnv};
use super::{ActorCallError, call_slot, cast_slot};
use crate::actors::matcher::{AllocateError, MatcherHandle};
use crate::bot::OrderDesk;
use crate::domain::allocation::{Allocation, Release};
use crate::domain::{Money, OrderStatus};
use crate::messages::orders::{OrderError, OrderManagerMsg, OrderMsg};
use crate::payments::OrderPayer;
use crate::store::{
    AmountSource, BoxFuture, CreateOrder, IncomingStarsPayment, NewOrder, Order, PayOutcome,
    SettleContext, StarsSettled,
};
use crate::supervision::ActorSlot;

const NAME: &str = "order manager";
/// Restarts of one order actor before the manager leaves the order to the next start.
const MAX_ORDER_RESTARTS: u32 = 5;

#[derive(Clone)]
pub struct OrderManager {
    pub env: OrderEnv,
}

#[derive(Default)]
pub struct ManagerState {
    orders: HashMap<i64, ActorRef<OrderMsg>>,
    by_actor: HashMap<ActorId, i64>,
    failures: HashMap<i64, u32>,
}

impl OrderManager {
    async fn spawn_order(
        &self,
        myself: &ActorRef<OrderManagerMsg>,
        state: &mut ManagerState,
        order: Order,
    ) -> Result<ActorRef<OrderMsg>, ActorProcessingErr> {
        if let Some(existing) = state.orders.get(&order.id) {
            return Ok(existing.clone());
        }
        let id = order.id;
        let (actor, _) = Actor::spawn_linked(
            None,
            OrderActor {
                env: self.env.clone(),
            },
            order,
            myself.get_cell(),
        )
        .await?;
        state.by_actor.insert(actor.get_id(), id);
        state.orders.insert(id, actor.clone());
        Ok(actor)
    }

    /// The actor of a pending order, spawned from the database when it has none.
    async fn actor_for(
        &self,
        myself: &ActorRef<OrderManagerMsg>,
        state: &mut ManagerState,
        order_id: i64,
    ) -> Result<ActorRef<OrderMsg>, OrderError> {
        if let Some(a) = state.orders.get(&order_id) {
            return Ok(a.clone());
        }
        let order = self.env.store.order(order_id).await?;
        if order.status != OrderStatus::PendingPayment {
            return Err(OrderError::NotPending(order.status));
        }
        self.spawn_order(myself, state, order)
            .await
            .map_err(|e| OrderError::Store(e.to_string()))
    }
}

impl Actor for OrderManager {
    type Msg = OrderManagerMsg;
    type State = ManagerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<ManagerState, ActorProcessingErr> {
        let mut state = ManagerState::default();
        let pending = self.env.store.pending_orders().await?;
        let count = pending.len();
        for order in pending {
            self.spawn_order(&myself, &mut state, order).await?;
        }
        tracing::info!(pending = count, "order actors restored");
        Ok(state)
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        // order actors keep nothing in memory that the database does not have: stop them all
        for actor in state.orders.values() {
            actor.stop(Some("shutdown".to_owned()));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OrderManagerMsg::Track(order) => {
                self.spawn_order(&myself, state, *order).await?;
            }
            OrderManagerMsg::ToOrder { order_id, msg } => {
                match self.actor_for(&myself, state, order_id).await {
                    Ok(actor) => {
                        if let Err(e) = actor.cast(msg) {
                            // the actor stopped meanwhile: its reply port went with the message
                            tracing::debug!(order_id, error = %e, "order actor gone before its message");
                        }
                    }
                    Err(e) => msg.refuse(e),
                }
            }
            OrderManagerMsg::Respawn(order_id) => {
                if state.orders.contains_key(&order_id) {
                    return Ok(());
                }
                match self.env.store.order(order_id).await {
                    Ok(order) if order.status == OrderStatus::PendingPayment => {
                        self.spawn_order(&myself, state, order).await?;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(order_id, error = %e, "order not respawned; retrying");
                        myself.send_after(Duration::from_secs(5), move || {
                            OrderManagerMsg::Respawn(order_id)
                        });
                    }
                }
            }
            OrderManagerMsg::Live(reply) => {
                let _ = reply.send(state.orders.len());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(order_id) = state.by_actor.remove(&cell.get_id()) {
                    state.orders.remove(&order_id);
                    state.failures.remove(&order_id);
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(order_id) = state.by_actor.remove(&cell.get_id()) {
                    state.orders.remove(&order_id);
                    let failures = state.failures.entry(order_id).or_insert(0);
                    *failures += 1;
                    metrics::counter!("actor_restarts_total", "subsystem" => "orders/order")
                        .increment(1);
                    if *failures <= MAX_ORDER_RESTARTS {
                        let delay = Duration::from_millis(200 * 2u64.pow(*failures));
                        tracing::warn!(order_id, error = %err, ?delay, "order actor failed; restarting from the database");
                        myself.send_after(delay, move || OrderManagerMsg::Respawn(order_id));
                    } else {
                        tracing::error!(order_id, error = %err, "order actor keeps failing; left for the next start");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// How the bot, the API and the payment pipeline work with orders.
#[derive(Clone)]
pub struct OrdersHandle {
    slot: ActorSlot<OrderManagerMsg>,
    matcher: MatcherHandle,
    store: crate::store::Store,
    timeout: Duration,
    /// Time a customer has to pay a Stars invoice.
    stars_window: Duration,
    /// Commission hold, for Stars payments settled outside an order actor.
    commission_hold_ms: i64,
}

/// Remembers which orders got an amount, so a failed creation gives them back.
struct TrackingSource<'a> {
    matcher: &'a MatcherHandle,
    handed_out: Mutex<Vec<i64>>,
}

impl AmountSource for TrackingSource<'_> {
    type Error = AllocateError;
    fn allocate(
        &self,
        order_id: i64,
        price: Money,
    ) -> BoxFuture<'_, Result<Allocation, AllocateError>> {
        self.handed_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(order_id);
        AmountSource::allocate(self.matcher, order_id, price)
    }
    fn taken_elsewhere(&self, allocation: &Allocation) {
        self.matcher.taken_elsewhere(allocation);
    }
}

impl OrderDesk for OrdersHandle {
    fn pay_from_balance<'a>(
        &'a self,
        order_id: i64,
        who: &'a str,
    ) -> BoxFuture<'a, Result<PayOutcome, OrderError>> {
        Box::pin(OrdersHandle::pay_from_balance(self, order_id, who))
    }
    fn create<'a>(
        &'a self,
        new: &'a NewOrder,
        who: &'a str,
    ) -> BoxFuture<'a, Result<Order, OrderError>> {
        Box::pin(OrdersHandle::create(self, new, who))
    }
    fn cancel<'a>(
        &'a self,
        order_id: i64,
        who: &'a str,
    ) -> BoxFuture<'a, Result<Order, OrderError>> {
        Box::pin(OrdersHandle::cancel(self, order_id, who))
    }
    fn create_stars<'a>(
        &'a self,
        new: &'a NewOrder,
        stars: i64,
        who: &'a str,
    ) -> BoxFuture<'a, Result<Order, OrderError>> {
        Box::pin(OrdersHandle::create_stars(self, new, stars, who))
    }
    fn pay_stars<'a>(
        &'a self,
        payment: &'a IncomingStarsPayment,
    ) -> BoxFuture<'a, Result<StarsSettled, OrderError>> {
        Box::pin(OrdersHandle::pay_stars(self, payment))
    }
}

impl OrderPayer for OrdersHandle {
    fn pay(
        &self,
        order_id: i64,
        transfer_id: i64,
    ) -> BoxFuture<'_, Result<PayOutcome, OrderError>> {
        Box::pin(OrdersHandle::pay(self, order_id, transfer_id))
    }
}

impl OrdersHandle {
    pub fn new(
        slot: ActorSlot<OrderManagerMsg>,
        matcher: MatcherHandle,
        store: crate::store::Store,
    ) -> Self {
        OrdersHandle {
            slot,
            matcher,
            store,
            timeout: Duration::from_secs(15),
            stars_window: Duration::from_secs(15 * 60),
            commission_hold_ms: 0,
        }
    }

    /// The Stars settings: the invoice window and the commission hold.
    pub fn with_stars(mut self, window: Duration, commission_hold_ms: i64) -> Self {
        self.stars_window = window;
        self.commission_hold_ms = commission_hold_ms;
        self
    }

    pub fn slot(&self) -> &ActorSlot<OrderManagerMsg> {
        &self.slot
    }

    /// Creates a pending order with its unique payable amount and starts its order actor.
    /// The write runs in the caller's task; the matcher serializes the amounts.
    pub async fn create(&self, new: &NewOrder, who: &str) -> Result<Order, OrderError> {
        let source = TrackingSource {
            matcher: &self.matcher,
            handed_out: Mutex::new(Vec::new()),
        };
        let result = self.store.create_order(new, &source, who).await;
        let order = match result {
            Ok(CreateOrder::Created(order)) => order,
            Ok(CreateOrder::Unavailable(AllocateError::Busy(b))) => {
                return Err(OrderError::Busy {
                    retry_at: b.retry_at,
                });
            }
            Ok(CreateOrder::Unavailable(AllocateError::Actor(e))) => return Err(e.into()),
            Err(e) => {
                for order_id in source
                    .handed_out
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                {
                    let _ = self.matcher.release(order_id, Release::Free);
                }
                return Err(e.into());
            }
        };
        metrics::counter!("orders_created_total").increment(1);
        if let Err(e) = cast_slot(&self.slot, NAME, OrderManagerMsg::Track(order.clone())) {
            // the manager restores every pending order from the database when it is back
            tracing::warn!(order_id = order.id, error = %e, "order actor deferred to the manager's restart");
        }
        Ok(*order)
    }

    /// Creates a pending Stars order (no unique amount: the invoice payload names it) and
    /// starts its order actor, which expires it when its window ends.
    pub async fn create_stars(
        &self,
        new: &NewOrder,
        stars: i64,
        who: &str,
    ) -> Result<Order, OrderError> {
        let window = i64::try_from(self.stars_window.as_millis()).unwrap_or(i64::MAX);
        let order = self
            .store
            .create_stars_order(new, stars, window, who)
            .await?;
        metrics::counter!("orders_created_total").increment(1);
        if let Err(e) = cast_slot(
            &self.slot,
            NAME,
            OrderManagerMsg::Track(Box::new(order.clone())),
        ) {
            tracing::warn!(order_id = order.id, error = %e, "order actor deferred to the manager's restart");
        }
        Ok(order)
    }

    /// A Stars payment: through the actor of the order it names while that order is pending
    /// (so it never races the order's expiry or cancellation in this process); recorded as
    /// unmatched directly when the payload names no pending order.
    pub async fn pay_stars(
        &self,
        payment: &IncomingStarsPayment,
    ) -> Result<StarsSettled, OrderError> {
        if let Some(order_id) = crate::domain::stars::order_of_payload(&payment.payload) {
            let boxed = Box::new(payment.clone());
            let routed = call_slot(&self.slot, NAME, self.timeout, |reply| {
                OrderManagerMsg::ToOrder {
                    order_id,
                    msg: OrderMsg::PayStars {
                        payment: boxed,
                        reply,
                    },
                }
            })
            .await?;
            match routed {
                Err(OrderError::NotPending(_) | OrderError::NotFound) => {}
                other => return other,
            }
        }
        let ctx = SettleContext {
            who: "telegram:stars",
            commission_hold_ms: self.commission_hold_ms,
            manual: false,
            quarantine_until: crate::domain::now_ms(),
        };
        Ok(self.store.settle_stars_payment(payment, &ctx).await?)
    }

    pub async fn pay(&self, order_id: i64, transfer_id: i64) -> Result<PayOutcome, OrderError> {
        self.pay_with(order_id, transfer_id, None).await
    }

    /// An operator pays a pending order with a transfer that matched nothing (or waited for
    /// review), whatever its amount.
    pub async fn assign(
        &self,
        order_id: i64,
        transfer_id: i64,
        who: &str,
    ) -> Result<PayOutcome, OrderError> {
        self.pay_with(order_id, transfer_id, Some(who.to_owned()))
            .await
    }

    async fn pay_with(
        &self,
        order_id: i64,
        transfer_id: i64,
        assigned_by: Option<String>,
    ) -> Result<PayOutcome, OrderError> {
        call_slot(&self.slot, NAME, self.timeout, |reply| {
            OrderManagerMsg::ToOrder {
                order_id,
                msg: OrderMsg::Pay {
                    transfer_id,
                    assigned_by,
                    reply,
                },
            }
        })
        .await?
    }

    pub async fn pay_from_balance(
        &self,
        order_id: i64,
        who: &str,
    ) -> Result<PayOutcome, OrderError> {
        let who = who.to_owned();
        call_slot(&self.slot, NAME, self.timeout, |reply| {
            OrderManagerMsg::ToOrder {
                order_id,
                msg: OrderMsg::PayFromBalance { who, reply },
            }
        })
        .await?
    }

    pub async fn cancel(&self, order_id: i64, who: &str) -> Result<Order, OrderError> {
        let who = who.to_owned();
        call_slot(&self.slot, NAME, self.timeout, |reply| {
            OrderManagerMsg::ToOrder {
                order_id,
                msg: OrderMsg::Cancel { who, reply },
            }
        })
        .await?
    }

    /// Order actors alive right now.
    pub async fn live(&self) -> Result<usize, ActorCallError> {
        call_slot(&self.slot, NAME, self.timeout, OrderManagerMsg::Live).await
    }
}
