//! Telegram customers: one row per Telegram id, the bot session's saved screen, the referring
//! agent (first touch wins) and the balance (changed only through the ledger).

use serde::Serialize;
use sqlx::FromRow;

use super::audit::AuditRecord;
use super::tx::Tx;
use super::{Page, Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::{Money, now_ms};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub telegram_id: i64,
    pub username: Option<String>,
    pub first_name: String,
    pub language: String,
    pub referred_by_agent_id: Option<i64>,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String)]
    pub balance: Money,
    pub blocked: bool,
    #[serde(skip)]
    pub session_state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Profile facts Telegram tells us with every update.
#[derive(Debug, Clone)]
pub struct TelegramProfile {
    pub telegram_id: i64,
    pub username: Option<String>,
    pub first_name: String,
    /// Language to store for a new user; an existing user's choice is kept.
    pub language: String,
}

/// Filters for listing users.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub agent_id: Option<i64>,
    pub username: Option<String>,
    pub telegram_id: Option<i64>,
}

/// The columns of [`User`], in one place for every query that returns users.
macro_rules! user_columns {
    () => {
        "id, telegram_id, username, first_name, language, referred_by_agent_id, balance, \
         blocked, session_state, created_at, updated_at"
    };
}

impl Store {
    /// Creates the user on first contact or refreshes the profile; `true` when it was created.
    /// Concurrent first updates of one user end with one row: the insert yields on conflict.
    pub async fn upsert_telegram_user(&self, p: &TelegramProfile) -> StoreResult<(User, bool)> {
        let now = now_ms();
        let created: Option<User> = on_pool!(self, pool => {
            sqlx::query_as(
                concat!(
                    "insert into users (telegram_id, username, first_name, language, created_at, updated_at) \
                     values ($1, $2, $3, $4, $5, $5) on conflict (telegram_id) do nothing returning ",
                    user_columns!()
                ),
            )
            .bind(p.telegram_id)
            .bind(&p.username)
            .bind(&p.first_name)
            .bind(&p.language)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        if let Some(user) = created {
            return Ok((user, true));
        }
        let user: User = on_pool!(self, pool => {
            sqlx::query_as(
                concat!(
                    "update users set username = $2, first_name = $3, updated_at = $4, blocked = false \
                     where telegram_id = $1 returning ",
                    user_columns!()
                ),
            )
            .bind(p.telegram_id)
            .bind(&p.username)
            .bind(&p.first_name)
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        Ok((user, false))
    }

    /// Creates or updates a customer's profile for an operator or integration (`POST /users`):
    /// like [`Store::upsert_telegram_user`], and also sets the language when one is given, with
    /// the audit entry (`user.created` or `user.updated`, for `actor`) in the same transaction.
    pub async fn save_user_profile(
        &self,
        p: &TelegramProfile,
        language: Option<&str>,
        who: &str,
    ) -> StoreResult<(User, bool)> {
        let now = now_ms();
        Ok(in_tx!(self, tx => {
            let created: Option<User> = sqlx::query_as(concat!(
                "insert into users (telegram_id, username, first_name, language, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, $5) on conflict (telegram_id) do nothing returning ",
                user_columns!()
            ))
            .bind(p.telegram_id)
            .bind(&p.username)
            .bind(&p.first_name)
            .bind(language.unwrap_or(&p.language))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let (user, was_created) = match created {
                Some(user) => (user, true),
                None => {
                    let user: User = sqlx::query_as(concat!(
                        "update users set username = $2, first_name = $3, language = coalesce($4, language), \
                         updated_at = $5 where telegram_id = $1 returning ",
                        user_columns!()
                    ))
                    .bind(p.telegram_id)
                    .bind(&p.username)
                    .bind(&p.first_name)
                    .bind(language)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    (user, false)
                }
            };
            let action = if was_created { "user.created" } else { "user.updated" };
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, action, "user", user.id).after(&user)).await?;
            (user, was_created)
        }))
    }

    pub async fn user(&self, id: i64) -> StoreResult<User> {
        on_pool!(self, pool => {
            sqlx::query_as(
                concat!("select ", user_columns!(), " from users where id = $1"),
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
        .ok_or(StoreError::NotFound("user"))
    }

    pub async fn user_by_telegram_id(&self, telegram_id: i64) -> StoreResult<Option<User>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                concat!("select ", user_columns!(), " from users where telegram_id = $1"),
            )
            .bind(telegram_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn set_user_language(&self, user_id: i64, language: &str) -> StoreResult<()> {
        let done = on_pool!(self, pool => {
            sqlx::query("update users set language = $2, updated_at = $3 where id = $1")
                .bind(user_id)
                .bind(language)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NotFound("user"));
        }
        Ok(())
    }

    /// Saves the bot session's screen state (JSON) so a restarted session resumes where it was.
    pub async fn save_session_state(&self, user_id: i64, state: &str) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("update users set session_state = $2 where id = $1")
                .bind(user_id)
                .bind(state)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Binds the referring agent if the user has none yet (first touch wins); `true` if bound.
    pub async fn bind_referral(&self, user_id: i64, agent_id: i64) -> StoreResult<bool> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "update users set referred_by_agent_id = $2, updated_at = $3 \
                 where id = $1 and referred_by_agent_id is null",
            )
            .bind(user_id)
            .bind(agent_id)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// The user blocked the bot: broadcasts skip them until their next session starts (the
    /// profile refresh at session start clears the mark).
    pub async fn mark_blocked(&self, telegram_id: i64) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("update users set blocked = true, updated_at = $2 where telegram_id = $1")
                .bind(telegram_id)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    pub async fn list_users(&self, filter: &UserFilter, page: Page) -> StoreResult<Vec<User>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                concat!(
                    "select ",
                    user_columns!(),
                    " from users where ($1 is null or referred_by_agent_id = $1) \
                     and ($2 is null or username = $2) and ($5 is null or telegram_id = $5) \
                     order by id limit $3 offset $4"
                ),
            )
            .bind(filter.agent_id)
            .bind(&filter.username)
            .bind(page.limit)
            .bind(page.offset)
            .bind(filter.telegram_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Telegram ids of every user who has not blocked the bot, in id order from `after_id`
    /// (broadcasts resume from the last id they reached).
    pub async fn user_chat_ids_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, i64)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, telegram_id from users where id > $1 and not blocked order by id limit $2",
            )
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn count_users(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("select count(*) from users").fetch_one(pool).await?
        }))
    }
}
