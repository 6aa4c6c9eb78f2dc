//! API tokens. Only a SHA-256 hash of each token is stored; the token itself is shown once,
//! when it is created.

use serde::Serialize;
use sqlx::FromRow;

use super::audit::AuditRecord;
use super::tx::Tx;
use super::{Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::{Role, now_ms};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    #[serde(skip)]
    pub token_hash: String,
    pub agent_id: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

macro_rules! token_columns {
    () => {
        "id, name, role, token_hash, agent_id, created_at, revoked_at, last_used_at"
    };
}

impl Store {
    /// Stores a new token (its hash only) and records its creation for `actor` in the audit
    /// log, in one transaction.
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        agent_id: Option<i64>,
        who: &str,
    ) -> StoreResult<ApiToken> {
        Ok(in_tx!(self, tx => {
            let info: ApiToken = sqlx::query_as(concat!(
                "insert into api_tokens (name, role, token_hash, agent_id, created_at) \
                 values ($1, $2, $3, $4, $5) returning ",
                token_columns!()
            ))
            .bind(name)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(agent_id)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "token.created", "token", info.id).after(&info)).await?;
            info
        }))
    }

    /// The live (not revoked) token with this hash.
    pub async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", token_columns!(), " from api_tokens where token_hash = $1 and revoked_at is null"
            ))
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Records a token's use, unless its last recorded use is younger than `every_ms`: requests
    /// that arrive together each ask, and only the first writes.
    pub async fn touch_token(&self, id: i64, every_ms: i64) -> StoreResult<()> {
        let now = now_ms();
        on_pool!(self, pool => {
            sqlx::query(
                "update api_tokens set last_used_at = $2 \
                 where id = $1 and (last_used_at is null or last_used_at <= $3)",
            )
            .bind(id)
            .bind(now)
            .bind(now - every_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Revokes a live token and records it for `actor` in the audit log, in one transaction.
    pub async fn revoke_token(&self, id: i64, who: &str) -> StoreResult<ApiToken> {
        Ok(in_tx!(self, tx => {
            let token: ApiToken = sqlx::query_as(concat!(
                "update api_tokens set revoked_at = $2 where id = $1 and revoked_at is null returning ",
                token_columns!()
            ))
            .bind(id)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("live token"))?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "token.revoked", "token", id).before(&token)).await?;
            token
        }))
    }

    pub async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", token_columns!(), " from api_tokens order by id"))
                .fetch_all(pool)
                .await?
        }))
    }
}
