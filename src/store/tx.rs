//! One transaction type for both backends, so that logic spanning several statements (settling
//! a payment, appending to the audit log, moving a balance) is written once as plain functions
//! over [`Tx`] instead of once per driver.
//!
//! A [`Tx`] is a borrowed connection of either driver, normally the one of an open
//! [`Transaction`]; its methods take one SQL text in the dialect both share and the statement's
//! parameters as [`Arg`]s, and run it on whichever driver it holds.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, FromRow, PgConnection, Postgres, Sqlite, SqliteConnection, Type};

use super::{Db, Store, StoreResult};

/// A statement parameter: the column types the store binds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref())
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// Binds `args` in order to a query of either driver (the same code compiles for each).
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match *a {
                Arg::Int(v) => q.bind(v),
                Arg::OptInt(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::OptText(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
            };
        }
        q
    }};
}

/// A row type both drivers can read.
pub(crate) trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

/// A single-column value both drivers can read.
pub(crate) trait Scalar:
    for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + Send
    + Unpin
{
}
impl<T> Scalar for T where
    T: for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + Send
        + Unpin
{
}

/// A connection of either driver, borrowed for a few statements.
pub(crate) enum Tx<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl<'c> From<&'c mut SqliteConnection> for Tx<'c> {
    fn from(c: &'c mut SqliteConnection) -> Self {
        Tx::Sqlite(c)
    }
}

impl<'c> From<&'c mut PgConnection> for Tx<'c> {
    fn from(c: &'c mut PgConnection) -> Self {
        Tx::Postgres(c)
    }
}

/// Runs `$body` with `$c` bound to the connection of whichever driver `$tx` holds; the body is
/// compiled once per driver.
macro_rules! on_conn {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            Tx::Sqlite($c) => $body,
            Tx::Postgres($c) => $body,
        }
    };
}

impl Tx<'_> {
    /// Runs a statement; the number of rows it changed.
    pub(crate) async fn execute(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<u64> {
        Ok(
            on_conn!(self, c => bind_args!(sqlx::query(sql), args).execute(&mut **c).await?.rows_affected()),
        )
    }

    pub(crate) async fn fetch_optional<T: Row>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<T>> {
        Ok(
            on_conn!(self, c => bind_args!(sqlx::query_as(sql), args).fetch_optional(&mut **c).await?),
        )
    }

    pub(crate) async fn scalar_optional<T: Scalar>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<T>> {
        Ok(
            on_conn!(self, c => bind_args!(sqlx::query_scalar(sql), args).fetch_optional(&mut **c).await?),
        )
    }

    pub(crate) async fn scalar_one<T: Scalar>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<T> {
        Ok(
            on_conn!(self, c => bind_args!(sqlx::query_scalar(sql), args).fetch_one(&mut **c).await?),
        )
    }

    pub(crate) async fn scalar_all<T: Scalar>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<Vec<T>> {
        Ok(
            on_conn!(self, c => bind_args!(sqlx::query_scalar(sql), args).fetch_all(&mut **c).await?),
        )
    }
}

/// An open database transaction of either driver. Dropped without [`Transaction::commit`], it
/// rolls back. SQLite transactions start with `begin immediate`, so two writers queue on the busy
/// timeout instead of failing on a lock upgrade.
pub(crate) enum Transaction {
    /// With this process's turn to write, held until the transaction ends.
    Sqlite(
        sqlx::Transaction<'static, Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Transaction {
    /// The transaction's connection, for the statements inside it.
    pub(crate) fn tx(&mut self) -> Tx<'_> {
        match self {
            Transaction::Sqlite(t, _) => Tx::Sqlite(t),
            Transaction::Postgres(t) => Tx::Postgres(t),
        }
    }

    pub(crate) async fn commit(self) -> StoreResult<()> {
        match self {
            // the turn passes on once the commit is done
            Transaction::Sqlite(t, _turn) => t.commit().await?,
            Transaction::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

impl Store {
    /// Opens a transaction: the one place that knows SQLite's begin immediate. SQLite lets one
    /// writer in at a time; the others would wait in its busy handler, which sleeps in steps of
    /// up to 100 ms and lets whoever retries first in. Writers of this process take turns on
    /// an async lock instead, in arrival order and without a connection while they wait; the
    /// busy handler is left for writers of other processes (the CLI).
    pub(crate) async fn begin(&self) -> StoreResult<Transaction> {
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                let turn = self.writer.clone().lock_owned().await;
                Transaction::Sqlite(pool.begin_with("begin immediate").await?, turn)
            }
            Db::Postgres(pool) => Transaction::Postgres(pool.begin().await?),
        })
    }

    /// Runs statements outside a transaction, on one pooled connection.
    pub(crate) async fn connection(&self) -> StoreResult<Connection> {
        Ok(match &self.db {
            Db::Sqlite(pool) => Connection::Sqlite(pool.acquire().await?),
            Db::Postgres(pool) => Connection::Postgres(pool.acquire().await?),
        })
    }
}

/// A pooled connection of either driver, for a statement that needs no transaction.
pub(crate) enum Connection {
    Sqlite(sqlx::pool::PoolConnection<Sqlite>),
    Postgres(sqlx::pool::PoolConnection<Postgres>),
}

impl Connection {
    pub(crate) fn tx(&mut self) -> Tx<'_> {
        match self {
            Connection::Sqlite(c) => Tx::Sqlite(c),
            Connection::Postgres(c) => Tx::Postgres(c),
        }
    }
}
