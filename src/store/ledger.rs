//! Customer balances. `users.balance` is only ever changed together with a `balance_ledger` row
//! in one transaction, so the ledger explains every micro-unit; a balance cannot go below zero and
//! a transfer can credit a balance at most once (`transfer_id` is unique in the ledger).

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::Money;

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub id: i64,
    pub user_id: i64,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String)]
    pub delta: Money,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String)]
    pub balance_after: Money,
    pub reason: String,
    pub order_id: Option<i64>,
    pub transfer_id: Option<i64>,
    pub created_at: i64,
}

/// Why the balance changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerReason {
    Topup,
    LatePayment,
    OrderPayment,
    Refund,
    Adjustment,
}

impl LedgerReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerReason::Topup => "topup",
            LedgerReason::LatePayment => "late_payment",
            LedgerReason::OrderPayment => "order_payment",
            LedgerReason::Refund => "refund",
            LedgerReason::Adjustment => "adjustment",
        }
    }
}

/// Changes a balance inside the caller's transaction. Evaluates to `Ok(Some(new balance))`, or
/// `Ok(None)` when the balance would go below zero (nothing is written then).
macro_rules! apply_ledger {
    ($tx:expr, $user_id:expr, $delta:expr, $reason:expr, $order_id:expr, $transfer_id:expr) => {{
        let now = $crate::domain::now_ms();
        let delta: i64 = $delta;
        let balance: Option<i64> = sqlx::query_scalar(
            "update users set balance = balance + $2, updated_at = $3 \
             where id = $1 and balance + $2 >= 0 returning balance",
        )
        .bind($user_id)
        .bind(delta)
        .bind(now)
        .fetch_optional(&mut *$tx)
        .await?;
        match balance {
            None => Ok::<Option<i64>, sqlx::Error>(None),
            Some(after) => {
                sqlx::query(
                    "insert into balance_ledger (user_id, delta, balance_after, reason, order_id, \
                     transfer_id, created_at) values ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind($user_id)
                .bind(delta)
                .bind(after)
                .bind($reason.as_str())
                .bind($order_id)
                .bind($transfer_id)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
                Ok(Some(after))
            }
        }
    }};
}
pub(crate) use apply_ledger;

impl Store {
    /// Adds `delta` (negative to debit) to a user's balance with a ledger row; returns the new
    /// balance. Debiting below zero is refused with [`StoreError::Conflict`].
    pub async fn adjust_balance(
        &self,
        user_id: i64,
        delta: Money,
        reason: LedgerReason,
        order_id: Option<i64>,
        transfer_id: Option<i64>,
    ) -> StoreResult<Money> {
        let after = in_tx!(self, tx => {
            apply_ledger!(tx, user_id, delta.micros(), reason, order_id, transfer_id)?
        });
        after
            .map(Money::from_micros)
            .ok_or_else(|| StoreError::Conflict("insufficient balance".to_owned()))
    }

    /// Newest first.
    pub async fn ledger(&self, user_id: i64, limit: i64) -> StoreResult<Vec<LedgerEntry>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, user_id, delta, balance_after, reason, order_id, transfer_id, created_at \
                 from balance_ledger where user_id = $1 order by id desc limit $2",
            )
            .bind(user_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
