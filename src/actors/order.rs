//! The order actor: one per pending order (orders subsystem, under the order manager). It owns the
//! order's expiry timer and is the only place its payment, expiry or cancellation is decided, so
//! those never race inside one process; the conditional updates of the store settle races with
//! other instances.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::actors::matcher::MatcherHandle;
use crate::domain::allocation::Release;
use crate::domain::{OrderStatus, PaymentMethod, now_ms};
use crate::messages::orders::{OrderError, OrderMsg};
use crate::payments::progress::ChainProgress;
use crate::store::{Order, PayOutcome, SettleContext, StarsSettled, Store};

/// While a scanner is behind, expiry is re-checked this often.
const RECHECK: Duration = Duration::from_secs(1);

/// What every order actor needs; shared, read-only.
#[derive(Clone)]
pub struct OrderEnv {
    pub store: Store,
    pub matcher: MatcherHandle,
    pub progress: ChainProgress,
    pub quarantine_ms: i64,
    pub commission_hold_ms: i64,
    /// Longest wait for lagging scanners after a window ends, before expiring anyway.
    pub max_expiry_wait_ms: i64,
}

impl OrderEnv {
    pub fn settle_context(&self) -> SettleContext<'static> {
        SettleContext {
            who: "system",
            commission_hold_ms: self.commission_hold_ms,
            manual: false,
            quarantine_until: crate::domain::now_ms() + self.quarantine_ms,
        }
    }
}

pub struct OrderActor {
    pub env: OrderEnv,
}

pub struct OrderState {
    order: Order,
}

fn millis_until(at: i64) -> Duration {
    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
}

impl OrderActor {
    /// Replies with a payment's outcome, frees the amount and stops when the order was paid.
    fn settled(
        &self,
        myself: &ActorRef<OrderMsg>,
        order_id: i64,
        result: Result<PayOutcome, crate::store::StoreError>,
        reply: ractor::RpcReplyPort<Result<PayOutcome, OrderError>>,
    ) -> Result<(), ActorProcessingErr> {
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                let _ = reply.send(Err(OrderError::Store(e.to_string())));
                // a storage fault is the supervisor's business: restart from the database
                return Err(e.into());
            }
        };
        match &outcome {
            PayOutcome::Paid(order) => {
                let _ = self.env.matcher.release(order_id, Release::Quarantine);
                metrics::counter!("orders_paid_total").increment(1);
                metrics::histogram!("order_payment_duration_seconds").record(
                    ((order.paid_at.unwrap_or(now_ms()) - order.created_at).max(0) as f64) / 1000.0,
                );
                tracing::info!(order_id, status = %order.status, from_balance = order.paid_from_balance, "order paid");
                myself.stop(None);
            }
            PayOutcome::NotPending(_) => myself.stop(None),
            PayOutcome::AlreadySettled
            | PayOutcome::DoesNotFit(_)
            | PayOutcome::InsufficientBalance => {}
        }
        let _ = reply.send(Ok(outcome));
        Ok(())
    }
}

impl Actor for OrderActor {
    type Msg = OrderMsg;
    type State = OrderState;
    type Arguments = Order;

    async fn pre_start(
        &self,
        myself: ActorRef<OrderMsg>,
        order: Order,
    ) -> Result<OrderState, ActorProcessingErr> {
        myself.send_after(millis_until(order.expires_at), || OrderMsg::Expire);
        Ok(OrderState { order })
    }

    async fn handle(
        &self,
        myself: ActorRef<OrderMsg>,
        msg: OrderMsg,
        state: &mut OrderState,
    ) -> Result<(), ActorProcessingErr> {
        let order_id = state.order.id;
        match msg {
            OrderMsg::Expire => {
                let now = now_ms();
                let expires_at = state.order.expires_at;
                if now < expires_at {
                    myself.send_after(millis_until(expires_at), || OrderMsg::Expire);
                    return Ok(());
                }
                // a USDT payment made in time may still be on its way through the scanners; a
                // Stars payment comes from Telegram, not the chain
                let behind = state.order.payment_method == PaymentMethod::Usdt
                    && self
                        .env
                        .progress
                        .watermark()
                        .is_some_and(|w| w < expires_at);
                if behind && now < expires_at + self.env.max_expiry_wait_ms {
                    // a transfer made in time may still be found
                    myself.send_after(RECHECK, || OrderMsg::Expire);
                    return Ok(());
                }
                let until = now + self.env.quarantine_ms;
                match self
                    .env
                    .store
                    .close_unpaid(order_id, OrderStatus::Expired, until, "system")
                    .await?
                {
                    Ok(_) => {
                        let _ = self.env.matcher.release(order_id, Release::Quarantine);
                        metrics::counter!("orders_expired_total").increment(1);
                        tracing::info!(order_id, "order expired; amount quarantined");
                    }
                    Err(status) => {
                        tracing::debug!(order_id, %status, "expiry found the order settled")
                    }
                }
                myself.stop(None);
            }
            OrderMsg::Pay {
                transfer_id,
                assigned_by,
                reply,
            } => {
                let ctx = match &assigned_by {
                    Some(who) => SettleContext {
                        who,
                        manual: true,
                        ..self.env.settle_context()
                    },
                    None => self.env.settle_context(),
                };
                let result = self.env.store.pay_order(order_id, transfer_id, &ctx).await;
                self.settled(&myself, order_id, result, reply)?;
            }
            OrderMsg::PayFromBalance { who, reply } => {
                let ctx = SettleContext {
                    who: &who,
                    ..self.env.settle_context()
                };
                let result = self.env.store.pay_from_balance(order_id, &ctx).await;
                self.settled(&myself, order_id, result, reply)?;
            }
            OrderMsg::PayStars { payment, reply } => {
                let ctx = SettleContext {
                    who: "telegram:stars",
                    ..self.env.settle_context()
                };
                match self.env.store.settle_stars_payment(&payment, &ctx).await {
                    Ok(settled) => {
                        if let StarsSettled::Paid(order) = &settled {
                            metrics::counter!("orders_paid_total").increment(1);
                            metrics::histogram!("order_payment_duration_seconds").record(
                                ((order.paid_at.unwrap_or(now_ms()) - order.created_at).max(0)
                                    as f64)
                                    / 1000.0,
                            );
                            tracing::info!(order_id, status = %order.status, "order paid with Stars");
                            myself.stop(None);
                        }
                        let _ = reply.send(Ok(settled));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(OrderError::Store(e.to_string())));
                        return Err(e.into());
                    }
                }
            }
            OrderMsg::Cancel { who, reply } => {
                let until = now_ms() + self.env.quarantine_ms;
                let result = self
                    .env
                    .store
                    .close_unpaid(order_id, OrderStatus::Cancelled, until, &who)
                    .await;
                match result {
                    Ok(Ok(order)) => {
                        let _ = self.env.matcher.release(order_id, Release::Quarantine);
                        tracing::info!(order_id, by = %who, "order cancelled; amount quarantined");
                        let _ = reply.send(Ok(order));
                        myself.stop(None);
                    }
                    Ok(Err(status)) => {
                        let _ = reply.send(Err(OrderError::NotPending(status)));
                        myself.stop(None);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(OrderError::Store(e.to_string())));
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }
}
