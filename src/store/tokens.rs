//! API tokens. Only a SHA-256 hash of each token is stored; the token itself is shown once,
//! when it is created.
//!
//! Live tokens that were used are kept in memory ([`TokenCache`]), so an API call does not ask
//! the database who is calling. A revocation still stops a token at once, on every process: each
//! cached token remembers the revocation count it was read at, and is used only while that count
//! is unchanged. The count is read without the database: for SQLite, the size of a file beside
//! the database that every revoking process (service or CLI) grows by one byte after its commit;
//! for PostgreSQL, the notifications on `telebot_tokens` that every revocation sends, heard by
//! one listening connection per instance (while it is not connected, nothing is cached).

use serde::Serialize;
use sqlx::FromRow;

use super::audit::AuditRecord;
use super::tx::Tx;
use super::{Db, Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::{Role, now_ms};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

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

    /// The live token with this hash, from memory when it was read since the last revocation
    /// anywhere (see the module's documentation), else from the database.
    pub async fn live_token(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let cache = &self.tokens;
        if let Db::Postgres(pool) = &self.db {
            cache.listen(pool);
        }
        let Some(epoch) = cache.epoch() else {
            return self.token_by_hash(token_hash).await;
        };
        if let Some(hit) = cache.entries.get(token_hash)
            && hit.epoch == epoch
            && hit.read_at.elapsed() < TOKEN_TTL
        {
            return Ok(Some(hit.token.clone()));
        }
        let found = self.token_by_hash(token_hash).await?;
        if let Some(token) = &found {
            if cache.entries.len() >= TOKEN_ENTRIES {
                cache.entries.clear();
            }
            // read at `epoch`: a revocation committed after the read has changed the count
            cache.entries.insert(
                token_hash.to_owned(),
                Cached {
                    epoch,
                    read_at: Instant::now(),
                    token: token.clone(),
                },
            );
        }
        Ok(found)
    }

    /// Whether live tokens are served from memory now: false while PostgreSQL's revocation
    /// listener is not connected, or when the SQLite revocation file cannot be read.
    pub fn tokens_cached(&self) -> bool {
        if let Db::Postgres(pool) = &self.db {
            self.tokens.listen(pool);
        }
        self.tokens.epoch().is_some()
    }

    /// Notes in memory that a cached token was used at `at` (its row is written by
    /// [`Store::touch_token`]).
    pub fn note_token_use(&self, token_hash: &str, at: i64) {
        if let Some(mut hit) = self.tokens.entries.get_mut(token_hash) {
            hit.token.last_used_at = Some(at);
        }
    }

    /// The live (not revoked) token with this hash, read from the database.
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
        let token = in_tx!(self, tx => {
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
            // PostgreSQL delivers it to every listening instance when the transaction commits
            if let Tx::Postgres(c) = Tx::from(&mut *tx) {
                sqlx::query("select pg_notify('telebot_tokens', '')").execute(&mut *c).await?;
            }
            token
        });
        self.tokens.revoked().map_err(|source| StoreError::Io {
            path: format!(
                "{} (token #{id} is revoked; a running service keeps accepting it for up to {} s)",
                self.tokens.file_name(),
                TOKEN_TTL.as_secs()
            ),
            source,
        })?;
        Ok(token)
    }

    pub async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", token_columns!(), " from api_tokens order by id"))
                .fetch_all(pool)
                .await?
        }))
    }
}

/// How long a cached token is used at most before it is read again, whatever the revocation
/// count says (a bound for a listener that has not yet noticed that its connection is gone).
pub const TOKEN_TTL: Duration = Duration::from_secs(10);
/// Tokens kept at most; beyond it the cache starts over.
const TOKEN_ENTRIES: usize = 10_000;

struct Cached {
    epoch: u64,
    read_at: Instant,
    token: ApiToken,
}

/// Live tokens by hash, each with the revocation count it was read at.
pub(crate) struct TokenCache {
    entries: dashmap::DashMap<String, Cached>,
    /// Revocations made through this process's stores.
    local: AtomicU64,
    signal: Signal,
}

/// How revocations by other processes are seen.
enum Signal {
    /// No other process can reach this database (SQLite in memory).
    Local,
    /// SQLite: a file that grows by one byte with every revocation; its size is the count.
    File(PathBuf),
    /// PostgreSQL: notifications heard on `telebot_tokens`, and whether the listening
    /// connection is up.
    Notify {
        heard: AtomicU64,
        live: AtomicBool,
        started: AtomicBool,
    },
}

impl TokenCache {
    pub(crate) fn for_sqlite(path: Option<PathBuf>) -> TokenCache {
        TokenCache::new(match path {
            Some(db) => {
                let mut name = db.into_os_string();
                name.push("-revocations");
                let path = PathBuf::from(name);
                // made empty when missing (kept otherwise); while it cannot be read, tokens are
                // not cached
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path);
                Signal::File(path)
            }
            None => Signal::Local,
        })
    }

    pub(crate) fn for_postgres() -> TokenCache {
        TokenCache::new(Signal::Notify {
            heard: AtomicU64::new(0),
            live: AtomicBool::new(false),
            started: AtomicBool::new(false),
        })
    }

    fn new(signal: Signal) -> TokenCache {
        TokenCache {
            entries: Default::default(),
            local: AtomicU64::new(0),
            signal,
        }
    }

    /// The revocation count now, or `None` when it cannot be known (nothing is cached then).
    fn epoch(&self) -> Option<u64> {
        let local = self.local.load(Ordering::Acquire);
        let other = match &self.signal {
            Signal::Local => 0,
            Signal::File(path) => std::fs::metadata(path).ok()?.len(),
            Signal::Notify { heard, live, .. } => {
                if !live.load(Ordering::Acquire) {
                    return None;
                }
                heard.load(Ordering::Acquire)
            }
        };
        Some(local.wrapping_add(other))
    }

    /// Counts a committed revocation: here at once, and for other processes on SQLite through
    /// the file (PostgreSQL's notification went with the commit).
    fn revoked(&self) -> std::io::Result<()> {
        self.local.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
        if let Signal::File(path) = &self.signal {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?
                .write_all(b"r")?;
        }
        Ok(())
    }

    fn file_name(&self) -> String {
        match &self.signal {
            Signal::File(path) => path.display().to_string(),
            _ => "the revocation notice".to_owned(),
        }
    }

    /// Starts this instance's listener on the first call (PostgreSQL).
    fn listen(self: &Arc<Self>, pool: &sqlx::PgPool) {
        let Signal::Notify { started, .. } = &self.signal else {
            return;
        };
        if started.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(listen(Arc::downgrade(self), pool.clone()));
    }
}

/// Hears revocations from every instance until the store is dropped or its pool closed. A lost
/// connection may have missed some, so reconnecting counts as one.
async fn listen(cache: Weak<TokenCache>, pool: sqlx::PgPool) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen("telebot_tokens").await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let Some(this) = cache.upgrade() else { return };
        let Signal::Notify { heard, live, .. } = &this.signal else {
            return;
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                live.store(false, Ordering::Release);
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "token revocation listener cannot connect; tokens are read from the database meanwhile");
                drop(this);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        heard.fetch_add(1, Ordering::AcqRel);
        live.store(true, Ordering::Release);
        drop(this);
        loop {
            let next = listener.try_recv().await;
            let Some(this) = cache.upgrade() else { return };
            let Signal::Notify { heard, live, .. } = &this.signal else {
                return;
            };
            heard.fetch_add(1, Ordering::AcqRel);
            match next {
                Ok(Some(_)) => {}
                // reconnected already, but notifications may have been missed meanwhile
                Ok(None) => tracing::info!("token revocation listener reconnected"),
                Err(e) => {
                    live.store(false, Ordering::Release);
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "token revocation listener lost its connection");
                    break;
                }
            }
        }
    }
}
