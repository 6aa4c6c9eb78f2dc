//! The audit log: who did what, when, with the state before and after. Append-only: there is no
//! update or delete path here, and triggers in both schemas refuse one from anywhere else.

use serde::Serialize;
use sqlx::FromRow;

use super::tx::Tx;
use super::{Page, Store, StoreResult, on_pool};
use crate::domain::now_ms;

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A record to append. `before`/`after` are JSON snapshots (or `None`).
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    /// Who did it: `system`, `token:3`, `dashboard:boss`, `user:12`, ... (the `actor` column).
    pub who: &'a str,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl<'a> AuditRecord<'a> {
    pub fn new(who: &'a str, action: &'a str, entity: &'a str, entity_id: impl ToString) -> Self {
        AuditRecord {
            who,
            action,
            entity,
            entity_id: entity_id.to_string(),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, v: &impl Serialize) -> Self {
        self.before = serde_json::to_string(v).ok();
        self
    }

    pub fn after(mut self, v: &impl Serialize) -> Self {
        self.after = serde_json::to_string(v).ok();
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Tx<'_> {
    /// Appends an entry, inside a transaction or on its own: one SQL text for every audit write.
    pub(crate) async fn append_audit(&mut self, rec: &AuditRecord<'_>) -> StoreResult<()> {
        self.execute(
            "insert into audit_log (at, actor, action, entity, entity_id, before, after) \
             values ($1, $2, $3, $4, $5, $6, $7)",
            &[
                now_ms().into(),
                rec.who.into(),
                rec.action.into(),
                rec.entity.into(),
                (&rec.entity_id).into(),
                (&rec.before).into(),
                (&rec.after).into(),
            ],
        )
        .await?;
        Ok(())
    }
}

impl Store {
    pub async fn audit(&self, rec: AuditRecord<'_>) -> StoreResult<()> {
        self.connection().await?.tx().append_audit(&rec).await
    }

    /// Newest first.
    pub async fn list_audit(&self, f: &AuditFilter, page: Page) -> StoreResult<Vec<AuditEntry>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, at, actor, action, entity, entity_id, before, after from audit_log \
                 where ($1 is null or actor = $1) and ($2 is null or entity = $2) \
                 and ($3 is null or entity_id = $3) and ($4 is null or action = $4) \
                 and ($5 is null or at >= $5) and ($6 is null or at < $6) \
                 order by id desc limit $7 offset $8",
            )
            .bind(&f.actor)
            .bind(&f.entity)
            .bind(&f.entity_id)
            .bind(&f.action)
            .bind(f.since)
            .bind(f.until)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Tries to rewrite history; only tests call this, to prove the database refuses.
    #[doc(hidden)]
    pub async fn try_tamper_audit(&self, id: i64) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("update audit_log set actor = 'mallory', at = $2 where id = $1")
                .bind(id)
                .bind(now_ms())
                .execute(pool)
                .await?;
            sqlx::query("delete from audit_log where id = $1").bind(id).execute(pool).await?;
        });
        Ok(())
    }
}
