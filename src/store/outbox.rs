//! The outbox: notifications and callbacks written in the same transaction as the state change
//! that caused them, then delivered (and retried) by the notifier. A `dedupe_key` makes enqueueing
//! idempotent, so a replayed event never sends twice.

use serde::Serialize;
use sqlx::FromRow;

use super::tx::Tx;
use super::{Store, StoreResult, on_pool};
use crate::domain::{OutboxEvent, now_ms};

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub kind: String,
    pub dedupe_key: Option<String>,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

impl Tx<'_> {
    /// Queues a row (`kind`, `dedupe_key`, JSON `payload`), inside a transaction or on its own;
    /// `false` when one with the same dedupe key exists already.
    pub(crate) async fn enqueue_outbox(
        &mut self,
        kind: &str,
        dedupe_key: Option<&str>,
        payload: &str,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "insert into outbox (kind, dedupe_key, payload, next_attempt_at, created_at, updated_at) \
                 values ($1, $2, $3, $4, $4, $4) on conflict do nothing",
                &[kind.into(), dedupe_key.into(), payload.into(), now_ms().into()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Queues an [`OutboxEvent`]: its audience, dedupe key and JSON all come from the event.
    pub(crate) async fn enqueue_event(&mut self, event: &OutboxEvent) -> StoreResult<bool> {
        let key = event.dedupe_key();
        self.enqueue_outbox(event.audience().as_str(), Some(&key), &event.to_json())
            .await
    }
}

impl OutboxMessage {
    /// The event the row carries; an error for a row no version of the service wrote.
    pub fn event(&self) -> Result<OutboxEvent, serde_json::Error> {
        OutboxEvent::from_json(&self.payload)
    }
}

impl Store {
    /// Queues an event; `false` when it was queued before (same dedupe key).
    pub async fn enqueue_event(&self, event: &OutboxEvent) -> StoreResult<bool> {
        self.connection().await?.tx().enqueue_event(event).await
    }

    /// Queues a raw row (`kind`, dedupe key, payload); `false` when one with the same dedupe key
    /// exists already. The service queues [`OutboxEvent`]s through [`Store::enqueue_event`].
    pub async fn enqueue(
        &self,
        kind: &str,
        dedupe_key: Option<&str>,
        payload: &str,
    ) -> StoreResult<bool> {
        self.connection()
            .await?
            .tx()
            .enqueue_outbox(kind, dedupe_key, payload)
            .await
    }

    /// Messages due for delivery, oldest first.
    pub async fn due_outbox(&self, kind: &str, limit: i64) -> StoreResult<Vec<OutboxMessage>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, kind, dedupe_key, payload, status, attempts, next_attempt_at, last_error, \
                 created_at from outbox where status = 'pending' and kind = $1 and next_attempt_at <= $2 \
                 order by next_attempt_at, id limit $3",
            )
            .bind(kind)
            .bind(now_ms())
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Claims a due message for one sender just before sending it: its next attempt moves to
    /// `until`, so no other instance lists it meanwhile. The update is conditional on the next
    /// attempt time the sender read, so of two senders that listed the same message only one
    /// claims it. A sender that dies after claiming leaves the message to be tried again at
    /// `until`.
    pub async fn claim_outbox(&self, m: &OutboxMessage, until: i64) -> StoreResult<bool> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "update outbox set next_attempt_at = $3, updated_at = $4 \
                 where id = $1 and status = 'pending' and next_attempt_at = $2",
            )
            .bind(m.id)
            .bind(m.next_attempt_at)
            .bind(until)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn outbox_sent(&self, id: i64) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "update outbox set status = 'sent', attempts = attempts + 1, updated_at = $2 where id = $1",
            )
            .bind(id)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Records a failed attempt; the message is retried at `next_attempt_at`, or given up
    /// (`failed`) when `give_up` is set.
    pub async fn outbox_retry(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
        give_up: bool,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "update outbox set attempts = attempts + 1, next_attempt_at = $2, last_error = $3, \
                 status = case when $4 then 'failed' else 'pending' end, updated_at = $5 where id = $1",
            )
            .bind(id)
            .bind(next_attempt_at)
            .bind(error)
            .bind(give_up)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    pub async fn outbox_pending_count(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("select count(*) from outbox where status = 'pending'")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Every message ever queued with this kind, oldest first (tests and the dashboard).
    pub async fn outbox_by_kind(&self, kind: &str, limit: i64) -> StoreResult<Vec<OutboxMessage>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, kind, dedupe_key, payload, status, attempts, next_attempt_at, last_error, \
                 created_at from outbox where kind = $1 order by id limit $2",
            )
            .bind(kind)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
