//! The store: the only place in the code base with SQL.
//!
//! One [`Store`] serves SQLite (the embedded default) and PostgreSQL with the same behaviour. Each
//! query is written once, in the SQL both dialects share (`$1` parameters, `on conflict`,
//! `returning`). Logic of several statements (settlement, the audit log, the outbox, balances)
//! is written as functions over one transaction type, `tx::Tx`, that runs each statement on
//! whichever driver it holds; single queries use the `on_pool!` / `in_tx!` macros, which compile
//! them for both drivers. The
//! schema lives in `migrations/sqlite` and `migrations/postgres`, one folder per dialect with the
//! same numbering. Unique constraints carry the invariants (one user per Telegram id, one
//! transfer per (chain, txid, log index), one live allocation per amount) as the last line of
//! defence behind the actors.
//!
//! Times are Unix milliseconds and money is micro-units, both `bigint`, so the two backends sort
//! and compare them identically.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub mod agents;
pub mod audit;
pub mod broadcasts;
pub mod catalog;
pub mod dashboard;
pub mod ledger;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod reports;
pub mod settlement;
pub mod stars;
pub mod tokens;
pub(crate) mod tx;
pub mod users;

pub use agents::*;
pub use audit::*;
pub use broadcasts::*;
pub use catalog::*;
pub use dashboard::*;
pub use ledger::*;
pub use orders::*;
pub use outbox::*;
pub use payments::*;
pub use reports::*;
pub use settlement::*;
pub use stars::*;
pub use tokens::*;
pub use users::*;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Transition(#[from] crate::domain::IllegalTransition),
    #[error(transparent)]
    AgentTransition(#[from] crate::domain::agent::IllegalAgentTransition),
    /// A stock upload that would let the same item be sold twice; nothing was added.
    #[error("{0}")]
    DuplicateStock(DuplicateStock),
    #[error("invalid value stored in column {column}: {problem}")]
    Corrupt {
        column: &'static str,
        problem: String,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the database location {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Lines of a stock upload that repeat another: positions are 0-based indexes into the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateStock {
    /// `(line, earlier line it repeats)` within the upload.
    pub repeated: Vec<(usize, usize)>,
    /// Lines already in stock and not yet sold.
    pub in_stock: Vec<usize>,
}

impl std::fmt::Display for DuplicateStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 10;
        let mut parts: Vec<String> = self
            .repeated
            .iter()
            .take(SHOWN)
            .map(|(i, first)| format!("items[{i}] repeats items[{first}]"))
            .collect();
        parts.extend(
            self.in_stock
                .iter()
                .take(SHOWN)
                .map(|i| format!("items[{i}] is already in stock")),
        );
        let total = self.repeated.len() + self.in_stock.len();
        let shown = self.repeated.len().min(SHOWN) + self.in_stock.len().min(SHOWN);
        if total > shown {
            parts.push(format!("and {} more", total - shown));
        }
        write!(
            f,
            "{total} duplicate item(s), nothing was added: {}",
            parts.join("; ")
        )
    }
}

impl StoreError {
    /// The database refused a row because a unique constraint already holds the value.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle on the database; cheap to clone (a pool inside).
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
    /// Order events also queue a merchant callback (`payments.callback_url` is set).
    pub(crate) callbacks: bool,
    /// Product listings in memory, shared by the clones of this store.
    pub(crate) catalog: std::sync::Arc<catalog::CatalogCache>,
    /// Live API tokens in memory, shared by the clones of this store.
    pub(crate) tokens: std::sync::Arc<tokens::TokenCache>,
    /// The turn to write (SQLite): see [`Store::begin`].
    pub(crate) writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.db {
            Db::Sqlite(_) => "Store(sqlite)",
            Db::Postgres(_) => "Store(postgres)",
        })
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend. The body is compiled
/// once per driver, which is how one SQL text serves both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` inside a transaction (opened by [`Store::begin`]) with `$tx` bound to its
/// connection of either driver, committed when the body completes; an early return (`?`) drops
/// the transaction, which rolls it back.
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:expr) => {{
        let mut transaction = $store.begin().await?;
        let out = match &mut transaction {
            $crate::store::tx::Transaction::Sqlite(t, _) => {
                let $tx: &mut sqlx::SqliteConnection = t;
                $body
            }
            $crate::store::tx::Transaction::Postgres(t) => {
                let $tx: &mut sqlx::PgConnection = t;
                $body
            }
        };
        transaction.commit().await?;
        out
    }};
}
pub(crate) use in_tx;

/// How to open the database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl Store {
    /// Opens the pool (creating a SQLite file and its folder when missing). Does not migrate.
    pub async fn connect(opts: &ConnectOptions) -> StoreResult<Store> {
        if opts.url.starts_with("sqlite:") {
            let path = crate::config::sqlite_path(&opts.url);
            let in_memory = path.as_os_str() == ":memory:";
            if !in_memory && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let options = SqliteConnectOptions::from_str(&opts.url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                // an in-memory database exists per connection: keep exactly one
                .max_connections(if in_memory { 1 } else { opts.max_connections })
                .min_connections(usize::from(in_memory) as u32)
                .idle_timeout(if in_memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if in_memory {
                    None
                } else {
                    Some(Duration::from_secs(1800))
                })
                .acquire_timeout(opts.connect_timeout)
                .connect_with(options)
                .await?;
            Ok(Store {
                db: Db::Sqlite(pool),
                callbacks: false,
                catalog: Default::default(),
                tokens: std::sync::Arc::new(tokens::TokenCache::for_sqlite(
                    (!in_memory).then_some(path),
                )),
                writer: Default::default(),
            })
        } else {
            let options = PgConnectOptions::from_str(&opts.url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.connect_timeout)
                .connect_with(options)
                .await?;
            Ok(Store {
                db: Db::Postgres(pool),
                callbacks: false,
                catalog: Default::default(),
                tokens: std::sync::Arc::new(tokens::TokenCache::for_postgres()),
                writer: Default::default(),
            })
        }
    }

    /// The same store, queueing a merchant callback with every order event when `on`.
    pub fn with_callbacks(mut self, on: bool) -> Store {
        self.callbacks = on;
        self
    }

    /// Applies pending migrations of the backend's dialect.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.db {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, p => {
            sqlx::query("select 1").execute(p).await?;
        });
        Ok(())
    }

    /// Runs one administrative statement (`create database`, `drop database`) for test
    /// harnesses that provision a database per test. Not for application data.
    #[doc(hidden)]
    pub async fn execute_admin(&self, statement: &str) -> StoreResult<()> {
        on_pool!(self, p => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(p).await?;
        });
        Ok(())
    }

    /// Waits for in-flight queries and closes every connection (graceful shutdown).
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }
}

/// Page of a listing: `limit` is capped so no request can ask for the whole table.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    pub const MAX_LIMIT: i64 = 200;

    pub fn new(limit: i64, offset: i64) -> Page {
        Page {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            offset: offset.max(0),
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::new(50, 0)
    }
}
