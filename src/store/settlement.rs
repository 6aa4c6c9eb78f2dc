//! Settlement: the transactions that end a pending order or place a transfer.
//!
//! Each function is one database transaction that changes the order, the transfer, the
//! allocation, stock, balances and commissions together, appends the audit entries and queues the
//! notifications in the outbox. Every update is conditional on the state it expects
//! (`where status = 'pending_payment'`, `where outcome = 'pending'`), so a transfer reported twice,
//! or an expiry racing a payment, changes nothing the second time: exactly one side wins.

use serde::Serialize;
use serde_json::json;

use super::ledger::LedgerReason;
use super::orders::{Order, order_columns};
use super::payments::{Transfer, transfer_columns};
use super::tx::{Transaction, Tx};
use super::{AuditRecord, Store, StoreError, StoreResult, on_pool};
use crate::domain::stars::{self, stars_commission};
use crate::domain::{
    AllocationState, Money, OrderCallback, OrderStatus, OutboxEvent, PaymentMethod, ProductKind,
    TransferOutcome, now_ms,
};

/// An order, read inside the transaction.
pub(super) async fn order_in(tx: &mut Tx<'_>, order_id: i64) -> StoreResult<Order> {
    tx.fetch_optional(
        concat!("select ", order_columns!(), " from orders where id = $1"),
        &[order_id.into()],
    )
    .await?
    .ok_or(StoreError::NotFound("order"))
}

/// The order if it still waits for payment, or the status it has instead.
async fn pending_order(tx: &mut Tx<'_>, order_id: i64) -> StoreResult<Result<Order, OrderStatus>> {
    let order = order_in(tx, order_id).await?;
    Ok(if order.status == OrderStatus::PendingPayment {
        Ok(order)
    } else {
        Err(order.status)
    })
}

/// The status an order has now, read inside the transaction (after losing a race).
async fn status_in(tx: &mut Tx<'_>, order_id: i64) -> StoreResult<OrderStatus> {
    let status: String = tx
        .scalar_optional(
            "select status from orders where id = $1",
            &[order_id.into()],
        )
        .await?
        .ok_or(StoreError::NotFound("order"))?;
    status
        .parse::<OrderStatus>()
        .map_err(|e| StoreError::Corrupt {
            column: "orders.status",
            problem: e.to_string(),
        })
}

/// Puts an order's amount in quarantine until `until`. A paid order's amount rests there too,
/// so a customer who sends the same payment twice is credited (late-payment rule) instead of
/// paying a stranger's new order.
async fn quarantine(tx: &mut Tx<'_>, order_id: i64, until: i64) -> StoreResult<()> {
    tx.execute(
        "update allocations set state = 'quarantined', quarantine_until = $2 \
         where order_id = $1 and state = 'pending'",
        &[order_id.into(), until.into()],
    )
    .await?;
    Ok(())
}

/// Queues the merchant callback of an order reaching `status` (`order.paid`, `order.expired`,
/// ...) when `callbacks` are on. The callback worker builds the body from the order as it
/// stands when it delivers. One callback per status and order.
pub(super) async fn enqueue_callback(
    tx: &mut Tx<'_>,
    callbacks: bool,
    status: OrderStatus,
    order_id: i64,
) -> StoreResult<()> {
    if callbacks {
        let callback = OrderCallback {
            status,
            order_id,
            at: now_ms(),
        };
        tx.enqueue_event(&OutboxEvent::Callback(callback)).await?;
    }
    Ok(())
}

/// Records the agent's commission for a paid sale (not for top-ups).
async fn record_commission(
    tx: &mut Tx<'_>,
    order: &Order,
    now: i64,
    hold_ms: i64,
) -> StoreResult<()> {
    let Some(agent_id) = order.agent_id.filter(|_| order.kind != ProductKind::Topup) else {
        return Ok(());
    };
    let bps: Option<i64> = tx
        .scalar_optional(
            "select commission_bps from agents where id = $1 and status = 'active'",
            &[agent_id.into()],
        )
        .await?;
    let bps = bps.and_then(|b| u32::try_from(b).ok());
    // a Stars sale earns whole Stars, a USDT sale micro-USDT: never mixed in one amount
    let (amount, currency) = match (order.payment_method, order.stars) {
        (PaymentMethod::Stars, Some(stars)) => {
            (bps.map(|b| stars_commission(stars, b)), stars::CURRENCY)
        }
        _ => (
            bps.and_then(|b| order.price.basis_points(b))
                .map(|m| m.micros()),
            crate::domain::tron::TOKEN,
        ),
    };
    if let Some(amount) = amount.filter(|a| *a > 0) {
        tx.execute(
            "insert into commissions (agent_id, order_id, amount, status, available_at, created_at, currency) \
             values ($1, $2, $3, 'pending', $4, $5, $6) on conflict do nothing",
            &[
                agent_id.into(),
                order.id.into(),
                amount.into(),
                (now + hold_ms).into(),
                now.into(),
                currency.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Fulfils a just-paid order: delivers digital stock (or alerts operators when it ran out),
/// queues a service request, or credits a top-up with `credit` micro-units; then records the
/// agent's commission. Returns whether the customer's message about it (the delivered item,
/// the credited balance) also tells them the order is paid.
async fn fulfil(
    tx: &mut Tx<'_>,
    order: &Order,
    now: i64,
    ctx: &SettleContext<'_>,
    credit: i64,
    transfer_id: Option<i64>,
) -> StoreResult<bool> {
    let order_id = order.id;
    let user_id = order.user_id;
    let mut status = OrderStatus::Paid;
    let mut delivery: Option<String> = None;
    match order.kind {
        ProductKind::Digital => {
            // items reserved for this order (a Stars pre-checkout) first, then free ones.
            // `order_id is null` is checked again on each row: on PostgreSQL a concurrent order
            // may take an item between the subselect and the update
            let items: Vec<String> = tx
                .scalar_all(
                    "update stock_items set order_id = $1, delivered_at = $2 \
                     where (order_id is null or (order_id = $1 and delivered_at is null)) and id in \
                     (select id from stock_items where product_id = $3 \
                      and (order_id is null or (order_id = $1 and delivered_at is null)) \
                      order by case when order_id is null then 1 else 0 end, id limit $4) \
                     returning content",
                    &[order_id.into(), now.into(), order.product_id.into(), order.quantity.into()],
                )
                .await?;
            if items.len() as i64 == order.quantity {
                delivery = Some(items.join("\n"));
                status = OrderStatus::Delivered;
                tx.enqueue_event(&OutboxEvent::OrderDelivered { order_id, user_id })
                    .await?;
            } else {
                // not enough left: give back what was taken, an operator delivers by hand
                tx.execute(
                    "update stock_items set order_id = null, delivered_at = null where order_id = $1",
                    &[order_id.into()],
                )
                .await?;
                tx.enqueue_event(&OutboxEvent::StockExhausted { order_id })
                    .await?;
            }
        }
        ProductKind::Service => {
            status = OrderStatus::InProgress;
            tx.enqueue_event(&OutboxEvent::ServiceRequest { order_id })
                .await?;
        }
        ProductKind::Topup => {
            tx.apply_ledger(
                user_id,
                credit,
                LedgerReason::Topup,
                Some(order_id),
                transfer_id,
            )
            .await?;
            status = OrderStatus::Completed;
            tx.enqueue_event(&OutboxEvent::BalanceCredited { order_id, user_id })
                .await?;
        }
    }
    if status != OrderStatus::Paid {
        tx.execute(
            "update orders set status = $2, delivery = $3, updated_at = $4 where id = $1",
            &[
                order_id.into(),
                status.as_str().into(),
                (&delivery).into(),
                now.into(),
            ],
        )
        .await?;
        tx.append_audit(
            &AuditRecord::new(ctx.who, "order.fulfilled", "order", order_id)
                .before(&json!({"status": OrderStatus::Paid}))
                .after(&json!({"status": status})),
        )
        .await?;
    }
    record_commission(tx, order, now, ctx.commission_hold_ms).await?;
    Ok(matches!(
        status,
        OrderStatus::Delivered | OrderStatus::Completed
    ))
}

/// Commits `t` when the settlement changed something (`keep`), and rolls it back otherwise: a
/// settlement that ends in "nothing to do" may do so after a write that must not stay (a
/// transfer claimed for an order another instance closed meanwhile, a debit for it).
pub(super) async fn finish<T>(
    t: Transaction,
    outcome: T,
    keep: impl FnOnce(&T) -> bool,
) -> StoreResult<T> {
    if keep(&outcome) {
        t.commit().await?;
    }
    Ok(outcome)
}

/// What every payment does once the order is marked paid, however it was paid.
pub(super) struct Paid {
    pub(super) now: i64,
    /// What a top-up credits (micro-units): the transfer's amount; nothing from the balance.
    pub(super) credit: i64,
    pub(super) transfer_id: Option<i64>,
}

impl Paid {
    /// Tells the merchant and the customer, fulfils the order, and reads it back. A customer
    /// whose item is delivered (or balance credited) at once gets that one message, which says
    /// the order is paid; a separate "paid" message would double what a sale sends through
    /// Telegram's 30 messages a second.
    pub(super) async fn announce_and_fulfil(
        self,
        tx: &mut Tx<'_>,
        order: &Order,
        ctx: &SettleContext<'_>,
        callbacks: bool,
    ) -> StoreResult<PayOutcome> {
        enqueue_callback(tx, callbacks, OrderStatus::Paid, order.id).await?;
        let told = fulfil(tx, order, self.now, ctx, self.credit, self.transfer_id).await?;
        if !told {
            tx.enqueue_event(&OutboxEvent::OrderPaid {
                order_id: order.id,
                user_id: order.user_id,
            })
            .await?;
        }
        let paid = order_in(tx, order.id).await?;
        Ok(PayOutcome::Paid(Box::new(paid)))
    }
}

/// Pays a pending order with a transfer and fulfils it. Anything but `Paid` leaves the
/// transaction to be rolled back.
async fn pay(
    tx: &mut Tx<'_>,
    order_id: i64,
    transfer_id: i64,
    ctx: &SettleContext<'_>,
    callbacks: bool,
) -> StoreResult<PayOutcome> {
    let now = now_ms();
    let order = match pending_order(tx, order_id).await? {
        Ok(order) => order,
        Err(status) => return Ok(PayOutcome::NotPending(status)),
    };
    if order.payment_method == PaymentMethod::Stars {
        // its price is in Stars: neither a USDT transfer nor the balance pays it
        return Ok(PayOutcome::DoesNotFit(Misfit::PaidInStars));
    }
    let transfer: Transfer = tx
        .fetch_optional(
            concat!(
                "select ",
                transfer_columns!(),
                " from transfers where id = $1"
            ),
            &[transfer_id.into()],
        )
        .await?
        .ok_or(StoreError::NotFound("transfer"))?;
    // an operator may assign a transfer that matched nothing (or waits for review); the
    // automatic path takes only fresh transfers that fit exactly
    let pending = transfer.outcome == TransferOutcome::Pending;
    let placeable = pending || (ctx.manual && transfer.outcome.is_set_aside());
    if !placeable {
        return Ok(PayOutcome::AlreadySettled);
    }
    if !ctx.manual {
        if transfer.amount != order.payable_amount {
            return Ok(PayOutcome::DoesNotFit(Misfit::Amount));
        }
        if order.wallet.as_deref() != Some(transfer.to_address.as_str()) {
            return Ok(PayOutcome::DoesNotFit(Misfit::Wallet));
        }
        if transfer.block_time > order.expires_at {
            return Ok(PayOutcome::DoesNotFit(Misfit::AfterWindow));
        }
    }
    let outcome = if ctx.manual {
        TransferOutcome::Assigned
    } else {
        TransferOutcome::Matched
    };
    // both updates are conditional and counted: on PostgreSQL another instance may have settled
    // the transfer or closed the order since the reads above
    let claimed = tx
        .execute(
            "update transfers set outcome = $4, order_id = $2, updated_at = $3 where id = $1 and outcome = $5",
            &[
                transfer_id.into(),
                order_id.into(),
                now.into(),
                outcome.as_str().into(),
                transfer.outcome.as_str().into(),
            ],
        )
        .await?;
    if claimed != 1 {
        return Ok(PayOutcome::AlreadySettled);
    }
    let paid = tx
        .execute(
            "update orders set status = 'paid', paid_at = $2, transfer_id = $3, updated_at = $2 \
             where id = $1 and status = 'pending_payment'",
            &[order_id.into(), now.into(), transfer_id.into()],
        )
        .await?;
    if paid != 1 {
        return Ok(PayOutcome::NotPending(status_in(tx, order_id).await?));
    }
    quarantine(tx, order_id, ctx.quarantine_until).await?;
    let action = format!("transfer.{outcome}");
    tx.append_audit(
        &AuditRecord::new(ctx.who, &action, "transfer", transfer_id)
            .before(&json!({"outcome": transfer.outcome}))
            .after(&json!({"outcome": outcome, "order_id": order_id})),
    )
    .await?;
    tx.append_audit(
        &AuditRecord::new(ctx.who, "order.paid", "order", order_id)
            .before(&json!({"status": OrderStatus::PendingPayment}))
            .after(&json!({"status": OrderStatus::Paid, "transfer_id": transfer_id})),
    )
    .await?;
    let paid = Paid {
        now,
        credit: transfer.amount.micros(),
        transfer_id: Some(transfer_id),
    };
    paid.announce_and_fulfil(tx, &order, ctx, callbacks).await
}

/// Pays a pending order from the customer's balance (its price, not the unique amount) and
/// fulfils it. Anything but `Paid` leaves the transaction to be rolled back.
async fn pay_from_balance(
    tx: &mut Tx<'_>,
    order_id: i64,
    ctx: &SettleContext<'_>,
    callbacks: bool,
) -> StoreResult<PayOutcome> {
    let now = now_ms();
    let order = match pending_order(tx, order_id).await? {
        Ok(order) => order,
        Err(status) => return Ok(PayOutcome::NotPending(status)),
    };
    if order.payment_method == PaymentMethod::Stars {
        // its price is in Stars: neither a USDT transfer nor the balance pays it
        return Ok(PayOutcome::DoesNotFit(Misfit::PaidInStars));
    }
    if order.kind == ProductKind::Topup {
        return Ok(PayOutcome::DoesNotFit(Misfit::TopupFromBalance));
    }
    let debited = tx
        .apply_ledger(
            order.user_id,
            -order.price.micros(),
            LedgerReason::OrderPayment,
            Some(order_id),
            None,
        )
        .await?;
    if debited.is_none() {
        return Ok(PayOutcome::InsufficientBalance);
    }
    let paid = tx
        .execute(
            "update orders set status = 'paid', paid_at = $2, paid_from_balance = true, updated_at = $2 \
             where id = $1 and status = 'pending_payment'",
            &[order_id.into(), now.into()],
        )
        .await?;
    if paid != 1 {
        // closed meanwhile by another instance: the debit above rolls back
        return Ok(PayOutcome::NotPending(status_in(tx, order_id).await?));
    }
    quarantine(tx, order_id, ctx.quarantine_until).await?;
    tx.append_audit(
        &AuditRecord::new(ctx.who, "order.paid", "order", order_id)
            .before(&json!({"status": OrderStatus::PendingPayment}))
            .after(&json!({"status": OrderStatus::Paid, "from_balance": order.price})),
    )
    .await?;
    let paid = Paid {
        now,
        credit: 0,
        transfer_id: None,
    };
    paid.announce_and_fulfil(tx, &order, ctx, callbacks).await
}

/// An operator moves a paid order along; a refund credits what was paid and takes back the
/// agent's undecided commission.
async fn move_paid_order(
    tx: &mut Tx<'_>,
    id: i64,
    to: OrderStatus,
    who: &str,
    callbacks: bool,
) -> StoreResult<(Order, Order)> {
    let before = order_in(tx, id).await?;
    if before.status == OrderStatus::PendingPayment {
        return Err(StoreError::Conflict(
            "a pending order is paid by a transfer or cancelled, not moved by hand".to_owned(),
        ));
    }
    before.status.check_transition(to)?;
    if to == OrderStatus::Refunded && before.payment_method == PaymentMethod::Stars {
        return Err(StoreError::Conflict(
            "a Stars order is refunded in Stars through Telegram: POST /orders/{id}/refund"
                .to_owned(),
        ));
    }
    if to == OrderStatus::Refunded && before.kind == ProductKind::Topup {
        return Err(StoreError::Conflict(
            "a top-up is already on the balance; adjust the balance instead of refunding it"
                .to_owned(),
        ));
    }
    let after: Order = tx
        .fetch_optional(
            concat!(
                "update orders set status = $2, updated_at = $3 where id = $1 and status = $4 returning ",
                order_columns!()
            ),
            &[
                id.into(),
                to.as_str().into(),
                now_ms().into(),
                before.status.as_str().into(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Conflict("the order changed meanwhile; try again".to_owned()))?;
    if to == OrderStatus::Refunded {
        let paid = if before.paid_from_balance {
            before.price.micros()
        } else {
            match before.transfer_id {
                Some(tid) => {
                    tx.scalar_one("select amount from transfers where id = $1", &[tid.into()])
                        .await?
                }
                None => before.payable_amount.micros(),
            }
        };
        tx.apply_ledger(before.user_id, paid, LedgerReason::Refund, Some(id), None)
            .await?;
        take_back_commission(tx, id).await?;
    }
    let action = format!("order.{}", to.as_str());
    tx.append_audit(
        &AuditRecord::new(who, &action, "order", id)
            .before(&json!({"status": before.status}))
            .after(&json!({"status": to})),
    )
    .await?;
    tx.enqueue_event(&OutboxEvent::OrderStatus {
        order_id: id,
        user_id: before.user_id,
        status: to,
    })
    .await?;
    enqueue_callback(tx, callbacks, to, id).await?;
    Ok((before, after))
}

/// A refunded sale earns no commission; one already in an undecided payout is taken out of it
/// (a payout left with nothing is rejected). A commission already paid out stays.
pub(super) async fn take_back_commission(tx: &mut Tx<'_>, id: i64) -> StoreResult<()> {
    let commission: Option<(i64, Option<i64>)> = tx
        .fetch_optional(
            "select amount, payout_id from commissions where order_id = $1 and status <> 'paid'",
            &[id.into()],
        )
        .await?;
    if let Some((amount, payout_id)) = commission {
        tx.execute(
            "delete from commissions where order_id = $1 and status <> 'paid'",
            &[id.into()],
        )
        .await?;
        if let Some(pid) = payout_id {
            tx.execute(
                "update payouts set amount = case when amount - $2 <= 0 then amount else amount - $2 end, \
                 status = case when amount - $2 <= 0 then 'rejected' else status end \
                 where id = $1 and status in ('requested', 'approved')",
                &[pid.into(), amount.into()],
            )
            .await?;
        }
    }
    Ok(())
}

/// Settings that shape a settlement.
#[derive(Debug, Clone)]
pub struct SettleContext<'a> {
    /// Who acts, for the audit log (`system`, `scanner:trongrid`, `token:3`, ...).
    pub who: &'a str,
    /// How long a new commission is held before it can be paid out.
    pub commission_hold_ms: i64,
    /// An operator assigns the transfer by hand: unmatched or held transfers are accepted and
    /// the amount, wallet and window are not checked.
    pub manual: bool,
    /// Until when the amount of a paid order stays out of reach (Unix ms).
    pub quarantine_until: i64,
}

/// What paying an order did.
#[derive(Debug, Clone)]
pub enum PayOutcome {
    /// Paid (and fulfilled as far as possible): the order as it now stands.
    Paid(Box<Order>),
    /// The order is no longer waiting for payment (expired, cancelled or paid).
    NotPending(OrderStatus),
    /// The transfer was settled before (matched, late, unmatched): nothing changed.
    AlreadySettled,
    /// The payment does not fit the order; nothing changed.
    DoesNotFit(Misfit),
    /// Paying from the balance: the balance is smaller than the price.
    InsufficientBalance,
}

/// How a payment does not fit its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Misfit {
    #[error("amount differs from the payable amount")]
    Amount,
    #[error("paid to another wallet")]
    Wallet,
    /// The transfer's block time is after the order's payment window.
    #[error("paid after the payment window")]
    AfterWindow,
    #[error("a top-up cannot be paid from the balance")]
    TopupFromBalance,
    #[error("the order is paid in Telegram Stars, through its invoice")]
    PaidInStars,
}

/// What placing a transfer elsewhere did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    Done,
    AlreadySettled,
}

/// A live holder of an amount, read from the database.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct AmountHolder {
    pub order_id: i64,
    #[sqlx(try_from = "String")]
    pub state: AllocationState,
    pub expires_at: i64,
    pub quarantine_until: Option<i64>,
}

impl Store {
    /// Pays `order_id` with `transfer_id` and fulfils it, in one transaction.
    pub async fn pay_order(
        &self,
        order_id: i64,
        transfer_id: i64,
        ctx: &SettleContext<'_>,
    ) -> StoreResult<PayOutcome> {
        let mut t = self.begin().await?;
        let outcome = pay(&mut t.tx(), order_id, transfer_id, ctx, self.callbacks).await?;
        finish(t, outcome, |o| matches!(o, PayOutcome::Paid(_))).await
    }

    /// Pays a pending order from the customer's balance (its price, not the unique amount) and
    /// fulfils it, in one transaction. Top-ups cannot be paid from the balance.
    pub async fn pay_from_balance(
        &self,
        order_id: i64,
        ctx: &SettleContext<'_>,
    ) -> StoreResult<PayOutcome> {
        let mut t = self.begin().await?;
        let outcome = pay_from_balance(&mut t.tx(), order_id, ctx, self.callbacks).await?;
        finish(t, outcome, |o| matches!(o, PayOutcome::Paid(_))).await
    }

    /// Ends a pending order without payment (expired or cancelled) and quarantines its amount
    /// until `quarantine_until`. `Err(status)` when it was not pending any more.
    pub async fn close_unpaid(
        &self,
        order_id: i64,
        to: OrderStatus,
        quarantine_until: i64,
        who: &str,
    ) -> StoreResult<Result<Order, OrderStatus>> {
        debug_assert!(matches!(to, OrderStatus::Expired | OrderStatus::Cancelled));
        OrderStatus::PendingPayment.check_transition(to)?;
        let mut t = self.begin().await?;
        let mut tx = t.tx();
        let closed: Option<Order> = tx
            .fetch_optional(
                concat!(
                    "update orders set status = $2, updated_at = $3 where id = $1 and status = 'pending_payment' returning ",
                    order_columns!()
                ),
                &[order_id.into(), to.as_str().into(), now_ms().into()],
            )
            .await?;
        let Some(order) = closed else {
            return Ok(Err(status_in(&mut tx, order_id).await?));
        };
        quarantine(&mut tx, order_id, quarantine_until).await?;
        // stock a Stars pre-checkout reserved goes back on sale
        tx.execute(
            "update stock_items set order_id = null where order_id = $1 and delivered_at is null",
            &[order_id.into()],
        )
        .await?;
        let action = format!("order.{to}");
        tx.append_audit(
            &AuditRecord::new(who, &action, "order", order_id)
                .before(&json!({"status": OrderStatus::PendingPayment}))
                .after(&json!({"status": to, "quarantine_until": quarantine_until})),
        )
        .await?;
        let user_id = order.user_id;
        let event = if to == OrderStatus::Expired {
            OutboxEvent::OrderExpired { order_id, user_id }
        } else {
            OutboxEvent::OrderCancelled { order_id, user_id }
        };
        tx.enqueue_event(&event).await?;
        enqueue_callback(&mut tx, self.callbacks, to, order_id).await?;
        t.commit().await?;
        Ok(Ok(order))
    }

    /// A transfer that pays an order after its window: credit it to the customer's balance.
    pub async fn credit_late_payment(
        &self,
        transfer_id: i64,
        order_id: i64,
        who: &str,
    ) -> StoreResult<Placed> {
        let mut t = self.begin().await?;
        let mut tx = t.tx();
        let transfer: Option<Transfer> = tx
            .fetch_optional(
                concat!(
                    "update transfers set outcome = 'late', order_id = $2, updated_at = $3 where id = $1 and outcome = 'pending' returning ",
                    transfer_columns!()
                ),
                &[transfer_id.into(), order_id.into(), now_ms().into()],
            )
            .await?;
        let Some(transfer) = transfer else {
            return Ok(Placed::AlreadySettled);
        };
        let order = order_in(&mut tx, order_id).await?;
        let user_id = order.user_id;
        tx.apply_ledger(
            user_id,
            transfer.amount.micros(),
            LedgerReason::LatePayment,
            Some(order_id),
            Some(transfer_id),
        )
        .await?;
        tx.append_audit(
            &AuditRecord::new(who, "transfer.late_credited", "transfer", transfer_id)
                .before(&json!({"outcome": TransferOutcome::Pending}))
                .after(&json!({"outcome": TransferOutcome::Late, "order_id": order_id, "credited_user": user_id, "amount": transfer.amount})),
        )
        .await?;
        tx.enqueue_event(&OutboxEvent::LatePaymentCredited {
            order_id,
            user_id,
            transfer_id,
        })
        .await?;
        t.commit().await?;
        Ok(Placed::Done)
    }

    /// A late payment left for an operator to decide.
    pub async fn hold_for_review(
        &self,
        transfer_id: i64,
        order_id: Option<i64>,
        who: &str,
    ) -> StoreResult<Placed> {
        let event = OutboxEvent::LatePaymentReview {
            transfer_id,
            order_id,
        };
        self.set_aside(
            transfer_id,
            order_id,
            TransferOutcome::Review,
            Some(event),
            who,
        )
        .await
    }

    /// A transfer that pays nothing we know: kept, and reported to operators when `alert`
    /// (dust is kept without a report).
    pub async fn mark_unmatched(
        &self,
        transfer_id: i64,
        who: &str,
        alert: bool,
    ) -> StoreResult<Placed> {
        let event = alert.then_some(OutboxEvent::UnmatchedTransfer { transfer_id });
        self.set_aside(transfer_id, None, TransferOutcome::Unmatched, event, who)
            .await
    }

    async fn set_aside(
        &self,
        transfer_id: i64,
        order_id: Option<i64>,
        outcome: TransferOutcome,
        event: Option<OutboxEvent>,
        who: &str,
    ) -> StoreResult<Placed> {
        let mut t = self.begin().await?;
        let mut tx = t.tx();
        let n = tx
            .execute(
                "update transfers set outcome = $2, order_id = $3, updated_at = $4 where id = $1 and outcome = 'pending'",
                &[transfer_id.into(), outcome.as_str().into(), order_id.into(), now_ms().into()],
            )
            .await?;
        if n == 0 {
            return Ok(Placed::AlreadySettled);
        }
        let action = format!("transfer.{outcome}");
        tx.append_audit(
            &AuditRecord::new(who, &action, "transfer", transfer_id)
                .before(&json!({"outcome": TransferOutcome::Pending}))
                .after(&json!({"outcome": outcome, "order_id": order_id})),
        )
        .await?;
        if let Some(event) = &event {
            tx.enqueue_event(event).await?;
        }
        t.commit().await?;
        Ok(Placed::Done)
    }

    /// The order that holds `amount` on `wallet` in the database, if any (pending or quarantined).
    pub async fn amount_holder(
        &self,
        chain: &str,
        token: &str,
        wallet: &str,
        amount: Money,
    ) -> StoreResult<Option<AmountHolder>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select order_id, state, expires_at, quarantine_until from allocations \
                 where chain = $1 and token = $2 and wallet = $3 and amount = $4 and state in ($5, $6)",
            )
            .bind(chain)
            .bind(token)
            .bind(wallet)
            .bind(amount.micros())
            .bind(AllocationState::Pending.as_str())
            .bind(AllocationState::Quarantined.as_str())
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Unconfirmed transfers of exactly `amount` to `wallet` seen since `since` (a payment that is
    /// confirming).
    pub async fn unconfirmed_transfers_to(
        &self,
        wallet: &str,
        amount: Money,
        since: i64,
    ) -> StoreResult<Vec<Transfer>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", transfer_columns!(),
                " from transfers where to_address = $1 and amount = $2 and not confirmed and block_time >= $3 order by id"
            ))
            .bind(wallet)
            .bind(amount.micros())
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Transfers recorded for an order (matched, late, review), oldest first.
    pub async fn transfers_of_order(&self, order_id: i64) -> StoreResult<Vec<Transfer>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", transfer_columns!(), " from transfers where order_id = $1 order by id"))
                .bind(order_id)
                .fetch_all(pool)
                .await?
        }))
    }
}

impl Store {
    /// An operator moves a paid order along: delivered, in progress, completed or refunded (a
    /// refund credits what was paid to the customer's balance). Pending orders are paid by a
    /// transfer or cancelled through their order actor, not here. The customer is told.
    pub async fn set_order_status(
        &self,
        id: i64,
        to: OrderStatus,
        who: &str,
    ) -> StoreResult<(Order, Order)> {
        let mut t = self.begin().await?;
        let pair = move_paid_order(&mut t.tx(), id, to, who, self.callbacks).await?;
        t.commit().await?;
        Ok(pair)
    }

    /// Transfers with an outcome (all when `None`), newest first.
    pub async fn list_transfers(
        &self,
        outcome: Option<TransferOutcome>,
        page: super::Page,
    ) -> StoreResult<Vec<Transfer>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", transfer_columns!(), " from transfers where ($1 is null or outcome = $1) order by id desc limit $2 offset $3"
            ))
            .bind(outcome.map(TransferOutcome::as_str))
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?
        }))
    }
}
