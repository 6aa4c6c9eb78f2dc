//! Agents (resellers): referral codes, commission rates, commissions and payouts.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError, StoreResult, on_pool};
use crate::domain::now_ms;

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Agent {
    pub id: i64,
    pub user_id: Option<i64>,
    pub name: String,
    pub code: String,
    pub commission_bps: i64,
    pub status: String,
    pub permissions: String,
    pub payout_address: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub user_id: Option<i64>,
    pub name: String,
    pub code: String,
    pub commission_bps: u32,
    /// `pending` (applied through the bot) or `active` (created by an operator).
    pub status: &'static str,
}

macro_rules! agent_columns {
    () => {
        "id, user_id, name, code, commission_bps, status, permissions, payout_address, created_at, \
         updated_at"
    };
}

impl Store {
    pub async fn create_agent(&self, a: &NewAgent) -> StoreResult<Agent> {
        let now = now_ms();
        let result = on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "insert into agents (user_id, name, code, commission_bps, status, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, $6, $6) returning ",
                agent_columns!()
            ))
            .bind(a.user_id)
            .bind(&a.name)
            .bind(&a.code)
            .bind(i64::from(a.commission_bps))
            .bind(a.status)
            .bind(now)
            .fetch_one(pool)
            .await
        });
        result.map_err(|e| {
            let e = StoreError::from(e);
            if e.is_unique_violation() {
                StoreError::Conflict("an agent with this code or user exists".to_owned())
            } else {
                e
            }
        })
    }

    pub async fn agent(&self, id: i64) -> StoreResult<Agent> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", agent_columns!(), " from agents where id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or(StoreError::NotFound("agent"))
    }

    /// The active agent behind a referral code.
    pub async fn active_agent_by_code(&self, code: &str) -> StoreResult<Option<Agent>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", agent_columns!(), " from agents where code = $1 and status = 'active'"
            ))
            .bind(code)
            .fetch_optional(pool)
            .await?
        }))
    }
}
