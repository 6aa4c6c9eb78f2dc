//! Settlement: the transactions that end a pending order or place a transfer.
//!
//! Each function is one database transaction that changes the order, the transfer, the
//! allocation, stock, balances and commissions together, appends the audit entries and queues the
//! notifications in the outbox. Every update is conditional on the state it expects
//! (`where status = 'pending_payment'`, `where outcome = 'pending'`), so a transfer reported twice,
//! or an expiry racing a payment, changes nothing the second time: exactly one side wins.

use serde::Serialize;
use serde_json::json;

use super::ledger::{LedgerReason, apply_ledger};
use super::orders::{Order, order_columns};
use super::payments::{Transfer, transfer_columns};
use super::{
    AuditRecord, Store, StoreError, StoreResult, append_audit, enqueue_event, in_tx, on_pool,
};
use crate::domain::{
    AllocationState, Money, OrderCallback, OrderStatus, OutboxEvent, ProductKind, TransferOutcome,
    now_ms,
};

/// Records the agent's commission for a paid sale (not for top-ups), inside the transaction.
macro_rules! record_commission {
    ($tx:expr, $order:expr, $now:expr, $ctx:expr) => {{
        let order: &Order = $order;
        match (order.agent_id, order.kind) {
            (Some(agent_id), kind) if kind != ProductKind::Topup => {
                let bps: Option<i64> = sqlx::query_scalar(
                    "select commission_bps from agents where id = $1 and status = 'active'",
                )
                .bind(agent_id)
                .fetch_optional(&mut *$tx)
                .await?;
                let amount = bps
                    .and_then(|b| u32::try_from(b).ok())
                    .and_then(|b| order.price.basis_points(b))
                    .filter(|m| m.is_positive());
                if let Some(amount) = amount {
                    sqlx::query(
                        "insert into commissions (agent_id, order_id, amount, status, available_at, created_at) \
                         values ($1, $2, $3, 'pending', $4, $5) on conflict do nothing",
                    )
                    .bind(agent_id)
                    .bind(order.id)
                    .bind(amount.micros())
                    .bind($now + $ctx.commission_hold_ms)
                    .bind($now)
                    .execute(&mut *$tx)
                    .await?;
                }
                Ok::<(), sqlx::Error>(())
            }
            _ => Ok(()),
        }
    }};
}

/// Fulfils a just-paid order inside the transaction: delivers digital stock (or alerts operators
/// when it ran out), queues a service request, or credits a top-up with `$credit` micro-units;
/// then records the agent's commission.
macro_rules! fulfil {
    ($tx:expr, $order:expr, $now:expr, $ctx:expr, $credit:expr, $transfer_id:expr) => {{
        let order: &Order = $order;
        let order_id = order.id;
        let now: i64 = $now;
        let mut status = OrderStatus::Paid;
        let mut delivery: Option<String> = None;
        match order.kind {
            ProductKind::Digital => {
                // `order_id is null` is checked again on each row: on PostgreSQL a concurrent
                // order may take an item between the subselect and the update
                let items: Vec<String> = sqlx::query_scalar(
                    "update stock_items set order_id = $1, delivered_at = $2 where order_id is null and id in \
                     (select id from stock_items where product_id = $3 and order_id is null order by id limit $4) \
                     returning content")
                    .bind(order_id)
                    .bind(now)
                    .bind(order.product_id)
                    .bind(order.quantity)
                    .fetch_all(&mut *$tx)
                    .await?;
                if items.len() as i64 == order.quantity {
                    delivery = Some(items.join("\n"));
                    status = OrderStatus::Delivered;
                    enqueue_event!(&mut *$tx, &OutboxEvent::OrderDelivered { order_id, user_id: order.user_id })?;
                } else {
                    // not enough left: give back what was taken, an operator delivers by hand
                    sqlx::query("update stock_items set order_id = null, delivered_at = null where order_id = $1")
                        .bind(order_id)
                        .execute(&mut *$tx)
                        .await?;
                    enqueue_event!(&mut *$tx, &OutboxEvent::StockExhausted { order_id })?;
                }
            }
            ProductKind::Service => {
                status = OrderStatus::InProgress;
                enqueue_event!(&mut *$tx, &OutboxEvent::ServiceRequest { order_id })?;
            }
            ProductKind::Topup => {
                apply_ledger!($tx, order.user_id, $credit, LedgerReason::Topup, Some(order_id), $transfer_id)?;
                status = OrderStatus::Completed;
                enqueue_event!(&mut *$tx, &OutboxEvent::BalanceCredited { order_id, user_id: order.user_id })?;
            }
        }
        if status != OrderStatus::Paid {
            sqlx::query("update orders set status = $2, delivery = $3, updated_at = $4 where id = $1")
                .bind(order_id)
                .bind(status.as_str())
                .bind(&delivery)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
            append_audit!(&mut *$tx, &AuditRecord::new($ctx.who, "order.fulfilled", "order", order_id)
                .before(&json!({"status": OrderStatus::Paid}))
                .after(&json!({"status": status})))?;
        }
        record_commission!($tx, order, now, $ctx)?;
        Ok::<(), sqlx::Error>(())
    }};
}

/// A paid order's amount rests in quarantine too, so a customer who sends the same payment
/// twice is credited (late-payment rule) instead of paying a stranger's new order.
macro_rules! quarantine_paid {
    ($tx:expr, $order_id:expr, $ctx:expr) => {
        sqlx::query(
            "update allocations set state = 'quarantined', quarantine_until = $2 where order_id = $1 and state = 'pending'",
        )
        .bind($order_id)
        .bind($ctx.quarantine_until)
        .execute(&mut *$tx)
        .await
    };
}

/// The status an order has now, read inside the transaction (after losing a race).
macro_rules! current_status {
    ($tx:expr, $order_id:expr) => {{
        let status: String = sqlx::query_scalar("select status from orders where id = $1")
            .bind($order_id)
            .fetch_one(&mut *$tx)
            .await?;
        status
            .parse::<OrderStatus>()
            .map_err(|e| StoreError::Corrupt {
                column: "orders.status",
                problem: e.to_string(),
            })
    }};
}

/// Queues the merchant callback of an order reaching `$status` (`order.paid`, `order.expired`,
/// ...) when the store has callbacks on. The callback worker builds the body from the order as
/// it stands when it delivers. One callback per status and order.
macro_rules! enqueue_callback {
    ($store:expr, $tx:expr, $status:expr, $order_id:expr) => {{
        if $store.callbacks {
            let callback = OrderCallback {
                status: $status,
                order_id: $order_id,
                at: now_ms(),
            };
            enqueue_event!($tx, &OutboxEvent::Callback(callback))?;
        }
    }};
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
        let now = now_ms();
        let outcome = in_tx!(self, tx => {
            let order: Order = sqlx::query_as(concat!("select ", order_columns!(), " from orders where id = $1"))
                .bind(order_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("order"))?;
            if order.status != OrderStatus::PendingPayment {
                return Ok(PayOutcome::NotPending(order.status));
            }
            let transfer: Transfer = sqlx::query_as(concat!("select ", transfer_columns!(), " from transfers where id = $1"))
                .bind(transfer_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("transfer"))?;
            // an operator may assign a transfer that matched nothing (or waits for review);
            // the automatic path takes only fresh transfers that fit exactly
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
            let outcome = if ctx.manual { TransferOutcome::Assigned } else { TransferOutcome::Matched };
            // both updates are conditional and counted: on PostgreSQL another instance may have
            // settled the transfer or closed the order since the reads above
            let claimed = sqlx::query("update transfers set outcome = $4, order_id = $2, updated_at = $3 where id = $1 and outcome = $5")
                .bind(transfer_id)
                .bind(order_id)
                .bind(now)
                .bind(outcome.as_str())
                .bind(transfer.outcome.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if claimed != 1 {
                return Ok(PayOutcome::AlreadySettled);
            }
            let paid = sqlx::query("update orders set status = 'paid', paid_at = $2, transfer_id = $3, updated_at = $2 where id = $1 and status = 'pending_payment'")
                .bind(order_id)
                .bind(now)
                .bind(transfer_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if paid != 1 {
                return Ok(PayOutcome::NotPending(current_status!(tx, order_id)?));
            }
            quarantine_paid!(tx, order_id, ctx)?;
            let action = format!("transfer.{outcome}");
            append_audit!(&mut *tx, &AuditRecord::new(ctx.who, &action, "transfer", transfer_id)
                .before(&json!({"outcome": transfer.outcome}))
                .after(&json!({"outcome": outcome, "order_id": order_id})))?;
            append_audit!(&mut *tx, &AuditRecord::new(ctx.who, "order.paid", "order", order_id)
                .before(&json!({"status": OrderStatus::PendingPayment}))
                .after(&json!({"status": OrderStatus::Paid, "transfer_id": transfer_id})))?;
            enqueue_event!(&mut *tx, &OutboxEvent::OrderPaid { order_id, user_id: order.user_id })?;
            enqueue_callback!(self, &mut *tx, OrderStatus::Paid, order_id);

            fulfil!(tx, &order, now, ctx, transfer.amount.micros(), Some(transfer_id))?;
            let paid: Order = sqlx::query_as(concat!("select ", order_columns!(), " from orders where id = $1"))
                .bind(order_id)
                .fetch_one(&mut *tx)
                .await?;
            PayOutcome::Paid(Box::new(paid))
        });
        Ok(outcome)
    }

    /// Pays a pending order from the customer's balance (its price, not the unique amount) and
    /// fulfils it, in one transaction. Top-ups cannot be paid from the balance.
    pub async fn pay_from_balance(
        &self,
        order_id: i64,
        ctx: &SettleContext<'_>,
    ) -> StoreResult<PayOutcome> {
        let now = now_ms();
        let outcome = in_tx!(self, tx => {
            let order: Order = sqlx::query_as(concat!("select ", order_columns!(), " from orders where id = $1"))
                .bind(order_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("order"))?;
            if order.status != OrderStatus::PendingPayment {
                return Ok(PayOutcome::NotPending(order.status));
            }
            if order.kind == ProductKind::Topup {
                return Ok(PayOutcome::DoesNotFit(Misfit::TopupFromBalance));
            }
            let debited = apply_ledger!(tx, order.user_id, -order.price.micros(), LedgerReason::OrderPayment, Some(order_id), None::<i64>)?;
            if debited.is_none() {
                return Ok(PayOutcome::InsufficientBalance);
            }
            let paid = sqlx::query("update orders set status = 'paid', paid_at = $2, paid_from_balance = true, updated_at = $2 where id = $1 and status = 'pending_payment'")
                .bind(order_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if paid != 1 {
                // closed meanwhile by another instance: the debit above rolls back
                return Ok(PayOutcome::NotPending(current_status!(tx, order_id)?));
            }
            quarantine_paid!(tx, order_id, ctx)?;
            append_audit!(&mut *tx, &AuditRecord::new(ctx.who, "order.paid", "order", order_id)
                .before(&json!({"status": OrderStatus::PendingPayment}))
                .after(&json!({"status": OrderStatus::Paid, "from_balance": order.price})))?;
            enqueue_event!(&mut *tx, &OutboxEvent::OrderPaid { order_id, user_id: order.user_id })?;
            enqueue_callback!(self, &mut *tx, OrderStatus::Paid, order_id);
            fulfil!(tx, &order, now, ctx, 0, None::<i64>)?;
            let paid: Order = sqlx::query_as(concat!("select ", order_columns!(), " from orders where id = $1"))
                .bind(order_id)
                .fetch_one(&mut *tx)
                .await?;
            PayOutcome::Paid(Box::new(paid))
        });
        Ok(outcome)
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
        let now = now_ms();
        let result = in_tx!(self, tx => {
            let closed: Option<Order> = sqlx::query_as(concat!(
                "update orders set status = $2, updated_at = $3 where id = $1 and status = 'pending_payment' returning ",
                order_columns!()
            ))
            .bind(order_id)
            .bind(to.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            match closed {
                None => {
                    let status: Option<String> = sqlx::query_scalar("select status from orders where id = $1")
                        .bind(order_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let status = status.ok_or(StoreError::NotFound("order"))?;
                    Err(status.parse::<OrderStatus>().map_err(|e| StoreError::Conflict(e.to_string()))?)
                }
                Some(order) => {
                    sqlx::query("update allocations set state = 'quarantined', quarantine_until = $2 where order_id = $1 and state = 'pending'")
                        .bind(order_id)
                        .bind(quarantine_until)
                        .execute(&mut *tx)
                        .await?;
                    let action = format!("order.{to}");
                    append_audit!(&mut *tx, &AuditRecord::new(who, &action, "order", order_id)
                        .before(&json!({"status": OrderStatus::PendingPayment}))
                        .after(&json!({"status": to, "quarantine_until": quarantine_until})))?;
                    let user_id = order.user_id;
                    let event = if to == OrderStatus::Expired {
                        OutboxEvent::OrderExpired { order_id, user_id }
                    } else {
                        OutboxEvent::OrderCancelled { order_id, user_id }
                    };
                    enqueue_event!(&mut *tx, &event)?;
                    enqueue_callback!(self, &mut *tx, to, order_id);
                    Ok(order)
                }
            }
        });
        Ok(result)
    }

    /// A transfer that pays an order after its window: credit it to the customer's balance.
    pub async fn credit_late_payment(
        &self,
        transfer_id: i64,
        order_id: i64,
        who: &str,
    ) -> StoreResult<Placed> {
        let now = now_ms();
        let placed = in_tx!(self, tx => {
            let transfer: Option<Transfer> = sqlx::query_as(concat!(
                "update transfers set outcome = 'late', order_id = $2, updated_at = $3 where id = $1 and outcome = 'pending' returning ",
                transfer_columns!()
            ))
            .bind(transfer_id)
            .bind(order_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(transfer) = transfer else { return Ok(Placed::AlreadySettled) };
            let order: Order = sqlx::query_as(concat!("select ", order_columns!(), " from orders where id = $1"))
                .bind(order_id)
                .fetch_one(&mut *tx)
                .await?;
            apply_ledger!(tx, order.user_id, transfer.amount.micros(), LedgerReason::LatePayment, Some(order_id), Some(transfer_id))?;
            append_audit!(&mut *tx, &AuditRecord::new(who, "transfer.late_credited", "transfer", transfer_id)
                .before(&json!({"outcome": TransferOutcome::Pending}))
                .after(&json!({"outcome": TransferOutcome::Late, "order_id": order_id, "credited_user": order.user_id, "amount": transfer.amount})))?;
            enqueue_event!(&mut *tx, &OutboxEvent::LatePaymentCredited { order_id, user_id: order.user_id, transfer_id })?;
            Placed::Done
        });
        Ok(placed)
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
        let now = now_ms();
        let placed = in_tx!(self, tx => {
            let n = sqlx::query("update transfers set outcome = $2, order_id = $3, updated_at = $4 where id = $1 and outcome = 'pending'")
                .bind(transfer_id)
                .bind(outcome.as_str())
                .bind(order_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(Placed::AlreadySettled);
            }
            let action = format!("transfer.{outcome}");
            append_audit!(&mut *tx, &AuditRecord::new(who, &action, "transfer", transfer_id)
                .before(&json!({"outcome": TransferOutcome::Pending}))
                .after(&json!({"outcome": outcome, "order_id": order_id})))?;
            if let Some(event) = &event {
                enqueue_event!(&mut *tx, event)?;
            }
            Placed::Done
        });
        Ok(placed)
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
        let now = now_ms();
        let pair = in_tx!(self, tx => {
            let before: Order = sqlx::query_as(concat!("select ", order_columns!(), " from orders where id = $1"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("order"))?;
            if before.status == OrderStatus::PendingPayment {
                return Err(StoreError::Conflict(
                    "a pending order is paid by a transfer or cancelled, not moved by hand".to_owned(),
                ));
            }
            before.status.check_transition(to)?;
            if to == OrderStatus::Refunded && before.kind == ProductKind::Topup {
                return Err(StoreError::Conflict(
                    "a top-up is already on the balance; adjust the balance instead of refunding it".to_owned(),
                ));
            }
            let after: Order = sqlx::query_as(concat!(
                "update orders set status = $2, updated_at = $3 where id = $1 and status = $4 returning ",
                order_columns!()
            ))
            .bind(id)
            .bind(to.as_str())
            .bind(now)
            .bind(before.status.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Conflict("the order changed meanwhile; try again".to_owned()))?;
            if to == OrderStatus::Refunded {
                let paid = if before.paid_from_balance {
                    before.price.micros()
                } else {
                    match before.transfer_id {
                        Some(tid) => sqlx::query_scalar::<_, i64>("select amount from transfers where id = $1")
                            .bind(tid)
                            .fetch_one(&mut *tx)
                            .await?,
                        None => before.payable_amount.micros(),
                    }
                };
                apply_ledger!(tx, before.user_id, paid, LedgerReason::Refund, Some(id), None::<i64>)?;
                // a refunded sale earns no commission; one already in an undecided payout is taken
                // out of it (a payout left with nothing is rejected)
                let commission: Option<(i64, Option<i64>)> = sqlx::query_as(
                    "select amount, payout_id from commissions where order_id = $1 and status <> 'paid'",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((amount, payout_id)) = commission {
                    sqlx::query("delete from commissions where order_id = $1 and status <> 'paid'")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(pid) = payout_id {
                        sqlx::query(
                            "update payouts set amount = case when amount - $2 <= 0 then amount else amount - $2 end, \
                             status = case when amount - $2 <= 0 then 'rejected' else status end \
                             where id = $1 and status in ('requested', 'approved')",
                        )
                        .bind(pid)
                        .bind(amount)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            let action = format!("order.{}", to.as_str());
            append_audit!(&mut *tx, &AuditRecord::new(who, &action, "order", id)
                .before(&json!({"status": before.status}))
                .after(&json!({"status": to})))?;
            enqueue_event!(&mut *tx, &OutboxEvent::OrderStatus { order_id: id, user_id: before.user_id, status: to })?;
            enqueue_callback!(self, &mut *tx, to, id);
            (before, after)
        });
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
