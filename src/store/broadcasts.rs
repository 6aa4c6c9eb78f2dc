//! Broadcasts: one message to every customer, sent paced; the position (last user id reached)
//! is saved after each message so a restart resumes where it stopped.

use serde::Serialize;
use sqlx::FromRow;

use super::tx::Tx;
use super::{AuditRecord, Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::now_ms;

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Broadcast {
    pub id: i64,
    pub text: String,
    pub status: String,
    pub last_user_id: i64,
    pub sent: i64,
    pub failed: i64,
    pub created_by: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

macro_rules! broadcast_columns {
    () => {
        "id, text, status, last_user_id, sent, failed, created_by, created_at, finished_at"
    };
}

impl Store {
    pub async fn create_broadcast(&self, text: &str, by: &str) -> StoreResult<Broadcast> {
        Ok(in_tx!(self, tx => {
            let b: Broadcast = sqlx::query_as(concat!(
                "insert into broadcasts (text, status, created_by, created_at) values ($1, 'running', $2, $3) returning ",
                broadcast_columns!()
            ))
            .bind(text)
            .bind(by)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(by, "broadcast.created", "broadcast", b.id).after(&b)).await?;
            b
        }))
    }

    pub async fn broadcast(&self, id: i64) -> StoreResult<Broadcast> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", broadcast_columns!(), " from broadcasts where id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or(StoreError::NotFound("broadcast"))
    }

    /// The oldest broadcast still being sent.
    pub async fn next_running_broadcast(&self) -> StoreResult<Option<Broadcast>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", broadcast_columns!(), " from broadcasts where status = 'running' order by id limit 1"
            ))
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn list_broadcasts(&self, limit: i64) -> StoreResult<Vec<Broadcast>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", broadcast_columns!(), " from broadcasts order by id desc limit $1"))
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Records that user `user_id` was reached (sent or failed).
    pub async fn broadcast_progress(&self, id: i64, user_id: i64, sent: bool) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "update broadcasts set last_user_id = $2, sent = sent + $3, failed = failed + $4 \
                 where id = $1 and status = 'running' and last_user_id < $2",
            )
            .bind(id)
            .bind(user_id)
            .bind(i64::from(sent))
            .bind(i64::from(!sent))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Ends a broadcast: `done` when every user was reached, `cancelled` by an operator.
    /// Cancels a running broadcast for `actor`, with the audit entry in the same transaction;
    /// returns it before and after. A broadcast that is not running is a conflict, and nothing
    /// is written.
    pub async fn cancel_broadcast(
        &self,
        id: i64,
        who: &str,
    ) -> StoreResult<(Broadcast, Broadcast)> {
        Ok(in_tx!(self, tx => {
            let before: Broadcast = sqlx::query_as(concat!("select ", broadcast_columns!(), " from broadcasts where id = $1"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("broadcast"))?;
            let after: Option<Broadcast> = sqlx::query_as(concat!(
                "update broadcasts set status = 'cancelled', finished_at = $2 where id = $1 and status = 'running' returning ",
                broadcast_columns!()
            ))
            .bind(id)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?;
            match after {
                Some(after) => {
                    Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "broadcast.cancelled", "broadcast", id).before(&before).after(&after)).await?;
                    (before, after)
                }
                None => return Err(StoreError::Conflict(format!("the broadcast is {}", before.status))),
            }
        }))
    }

    pub async fn finish_broadcast(&self, id: i64, status: &str) -> StoreResult<bool> {
        let n = on_pool!(self, pool => {
            sqlx::query("update broadcasts set status = $2, finished_at = $3 where id = $1 and status = 'running'")
                .bind(id)
                .bind(status)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }
}
