//! Dashboard accounts (argon2id password hashes) and login sessions. A session is looked up by
//! the SHA-256 of its cookie, so a database leak reveals no usable cookie.

use serde::Serialize;
use sqlx::FromRow;

use super::audit::AuditRecord;
use super::tx::Tx;
use super::{Store, StoreResult, in_tx, on_pool};
use crate::domain::{Role, now_ms};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct DashboardUser {
    pub id: i64,
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct DashboardSession {
    pub id: i64,
    pub subject: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub agent_id: Option<i64>,
    pub csrf: String,
    pub expires_at: i64,
}

impl Store {
    /// Creates the account, or sets a new password and role if it exists.
    /// Creates an account or sets its password and role, with the audit entry
    /// (`account.set`, for `actor`) in the same transaction.
    pub async fn upsert_dashboard_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        who: &str,
    ) -> StoreResult<DashboardUser> {
        Ok(in_tx!(self, tx => {
            let user: DashboardUser = sqlx::query_as(
                "insert into dashboard_users (username, password_hash, role, created_at) values ($1, $2, $3, $4) \
                 on conflict (username) do update set password_hash = excluded.password_hash, role = excluded.role \
                 returning id, username, password_hash, role, created_at, last_login_at",
            )
            .bind(username)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "account.set", "dashboard_user", user.id).after(&user)).await?;
            user
        }))
    }

    pub async fn dashboard_user(&self, username: &str) -> StoreResult<Option<DashboardUser>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, username, password_hash, role, created_at, last_login_at from dashboard_users where username = $1",
            )
            .bind(username)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn list_dashboard_users(&self) -> StoreResult<Vec<DashboardUser>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("select id, username, password_hash, role, created_at, last_login_at from dashboard_users order by id")
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn count_dashboard_users(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("select count(*) from dashboard_users").fetch_one(pool).await?
        }))
    }

    pub async fn touch_dashboard_login(&self, id: i64) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("update dashboard_users set last_login_at = $2 where id = $1")
                .bind(id)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    pub async fn create_dashboard_session(
        &self,
        token_hash: &str,
        subject: &str,
        role: Role,
        agent_id: Option<i64>,
        csrf: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "insert into dashboard_sessions (token_hash, subject, role, agent_id, csrf, expires_at, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(token_hash)
            .bind(subject)
            .bind(role.as_str())
            .bind(agent_id)
            .bind(csrf)
            .bind(expires_at)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// The live session behind a cookie hash (expired sessions are not found).
    pub async fn dashboard_session(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<DashboardSession>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, subject, role, agent_id, csrf, expires_at from dashboard_sessions \
                 where token_hash = $1 and expires_at > $2",
            )
            .bind(token_hash)
            .bind(now_ms())
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Ends every session of a subject (`token:<id>` revoked, `dashboard:<name>` re-keyed).
    pub async fn end_sessions_of(&self, subject: &str) -> StoreResult<u64> {
        Ok(on_pool!(self, pool => {
            sqlx::query("delete from dashboard_sessions where subject = $1")
                .bind(subject)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Ends a session (logout) and drops every expired one.
    pub async fn end_dashboard_session(&self, token_hash: &str) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("delete from dashboard_sessions where token_hash = $1 or expires_at <= $2")
                .bind(token_hash)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
