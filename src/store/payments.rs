//! Transfers seen on chain, live allocations (for rebuilding the matcher) and scan cursors.
//!
//! A transfer is identified by (chain, txid, log_index); recording it again changes nothing but
//! its confirmation, so scanners and the webhook may report the same transfer any number of times.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, on_pool};
use crate::domain::{AllocationState, Money, TransferOutcome, now_ms};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Transfer {
    pub id: i64,
    pub chain: String,
    pub txid: String,
    pub log_index: i64,
    pub token: String,
    pub from_address: String,
    pub to_address: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String)]
    pub amount: Money,
    pub block_number: Option<i64>,
    pub block_time: i64,
    pub confirmed: bool,
    #[sqlx(try_from = "String")]
    pub outcome: TransferOutcome,
    pub order_id: Option<i64>,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! transfer_columns {
    () => {
        "id, chain, txid, log_index, token, from_address, to_address, amount, block_number, \
         block_time, confirmed, outcome, order_id, source, created_at, updated_at"
    };
}
pub(crate) use transfer_columns;

/// A transfer as a scanner or the webhook reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransfer {
    pub chain: String,
    pub txid: String,
    pub log_index: i64,
    pub token: String,
    pub from_address: String,
    pub to_address: String,
    pub amount: Money,
    pub block_number: Option<i64>,
    pub block_time: i64,
    pub confirmed: bool,
    pub source: String,
}

/// What recording a transfer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time this transfer was seen.
    New,
    /// Known already; it just became confirmed.
    NowConfirmed,
    /// Known already; nothing changed.
    Duplicate,
}

/// An allocation that still holds its amount.
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct LiveAllocation {
    pub chain: String,
    pub token: String,
    pub wallet: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String)]
    pub amount: Money,
    pub order_id: i64,
    #[sqlx(try_from = "String")]
    #[schema(value_type = String)]
    pub state: AllocationState,
    pub expires_at: i64,
    pub quarantine_until: Option<i64>,
}

impl Store {
    /// Records a transfer once; a repeat can only raise `confirmed` (and fill the block number).
    pub async fn record_transfer(&self, t: &NewTransfer) -> StoreResult<(Transfer, Recorded)> {
        let now = now_ms();
        let inserted: Option<Transfer> = on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "insert into transfers (chain, txid, log_index, token, from_address, to_address, amount, \
                 block_number, block_time, confirmed, source, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
                 on conflict (chain, txid, log_index) do nothing returning ",
                transfer_columns!()
            ))
            .bind(&t.chain)
            .bind(&t.txid)
            .bind(t.log_index)
            .bind(&t.token)
            .bind(&t.from_address)
            .bind(&t.to_address)
            .bind(t.amount.micros())
            .bind(t.block_number)
            .bind(t.block_time)
            .bind(t.confirmed)
            .bind(&t.source)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        if let Some(row) = inserted {
            return Ok((row, Recorded::New));
        }
        if t.confirmed {
            let raised: Option<Transfer> = on_pool!(self, pool => {
                sqlx::query_as(concat!(
                    "update transfers set confirmed = true, block_number = coalesce(block_number, $4), \
                     updated_at = $5 where chain = $1 and txid = $2 and log_index = $3 and not confirmed \
                     returning ",
                    transfer_columns!()
                ))
                .bind(&t.chain)
                .bind(&t.txid)
                .bind(t.log_index)
                .bind(t.block_number)
                .bind(now)
                .fetch_optional(pool)
                .await?
            });
            if let Some(row) = raised {
                return Ok((row, Recorded::NowConfirmed));
            }
        }
        let existing = self.transfer_by_key(&t.chain, &t.txid, t.log_index).await?;
        if existing.amount != t.amount || existing.to_address != t.to_address {
            // same identity, different content: a broken or hostile report; keep the first
            return Err(StoreError::Conflict(format!(
                "transfer {}:{} was recorded with different content",
                t.txid, t.log_index
            )));
        }
        Ok((existing, Recorded::Duplicate))
    }

    pub async fn transfer_by_key(
        &self,
        chain: &str,
        txid: &str,
        log_index: i64,
    ) -> StoreResult<Transfer> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", transfer_columns!(), " from transfers where chain = $1 and txid = $2 and log_index = $3"
            ))
            .bind(chain)
            .bind(txid)
            .bind(log_index)
            .fetch_optional(pool)
            .await?
        })
        .ok_or(StoreError::NotFound("transfer"))
    }

    pub async fn transfer(&self, id: i64) -> StoreResult<Transfer> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", transfer_columns!(), " from transfers where id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or(StoreError::NotFound("transfer"))
    }

    /// Transfers with the given outcome, newest first.
    pub async fn transfers_by_outcome(
        &self,
        outcome: TransferOutcome,
        limit: i64,
    ) -> StoreResult<Vec<Transfer>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", transfer_columns!(), " from transfers where outcome = $1 order by id desc limit $2"
            ))
            .bind(outcome.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Confirmed transfers not yet matched to anything: left over by a crash between recording
    /// and matching, processed again at start.
    pub async fn unprocessed_transfers(&self) -> StoreResult<Vec<Transfer>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", transfer_columns!(), " from transfers where outcome = 'pending' and confirmed order by id"
            ))
            .fetch_all(pool)
            .await?
        }))
    }

    /// Allocations holding their amount (pending or quarantined), for rebuilding the matcher.
    pub async fn live_allocations(&self) -> StoreResult<Vec<LiveAllocation>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select chain, token, wallet, amount, order_id, state, expires_at, quarantine_until \
                 from allocations where state in ('pending', 'quarantined') order by id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Ends quarantines whose time has passed; returns how many amounts were freed.
    pub async fn release_quarantined(&self, now: i64) -> StoreResult<u64> {
        Ok(on_pool!(self, pool => {
            sqlx::query(
                "update allocations set state = 'released' where state = 'quarantined' and quarantine_until <= $1",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    pub async fn scan_cursor(&self, source: &str) -> StoreResult<Option<i64>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("select position from scan_cursors where source = $1")
                .bind(source)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Saves where a scanner resumes. The position only moves forward.
    pub async fn save_scan_cursor(&self, source: &str, position: i64) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "insert into scan_cursors (source, position, updated_at) values ($1, $2, $3) \
                 on conflict (source) do update set position = excluded.position, updated_at = excluded.updated_at \
                 where scan_cursors.position < excluded.position",
            )
            .bind(source)
            .bind(position)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }
}
