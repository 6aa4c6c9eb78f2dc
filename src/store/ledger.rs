//! Customer balances. `users.balance` is only ever changed together with a `balance_ledger` row
//! in one transaction, so the ledger explains every micro-unit; a balance cannot go below zero and
//! a transfer can credit a balance at most once (`transfer_id` is unique in the ledger).

use serde::Serialize;
use sqlx::FromRow;

use super::tx::Tx;
use super::{Store, StoreError, StoreResult, on_pool};
use crate::domain::{Money, now_ms};

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

impl Tx<'_> {
    /// Changes a balance and writes its ledger row, inside the caller's transaction.
    /// `Ok(Some(new balance))`, or `Ok(None)` when the balance would go below zero (nothing is
    /// written then).
    pub(crate) async fn apply_ledger(
        &mut self,
        user_id: i64,
        delta: i64,
        reason: LedgerReason,
        order_id: Option<i64>,
        transfer_id: Option<i64>,
    ) -> StoreResult<Option<i64>> {
        let now = now_ms();
        let balance: Option<i64> = self
            .scalar_optional(
                "update users set balance = balance + $2, updated_at = $3 \
                 where id = $1 and balance + $2 >= 0 returning balance",
                &[user_id.into(), delta.into(), now.into()],
            )
            .await?;
        let Some(after) = balance else {
            return Ok(None);
        };
        self.execute(
            "insert into balance_ledger (user_id, delta, balance_after, reason, order_id, \
             transfer_id, created_at) values ($1, $2, $3, $4, $5, $6, $7)",
            &[
                user_id.into(),
                delta.into(),
                after.into(),
                reason.as_str().into(),
                order_id.into(),
                transfer_id.into(),
                now.into(),
            ],
        )
        .await?;
        Ok(Some(after))
    }
}

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
        let mut t = self.begin().await?;
        let after = t
            .tx()
            .apply_ledger(user_id, delta.micros(), reason, order_id, transfer_id)
            .await?;
        t.commit().await?;
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
