//! The PostgreSQL-only native read path: reads of many rows (pull pages, case views) on a second
//! pool that uses sqlx's native PostgreSQL driver instead of `sqlx::Any`.
//!
//! It exists for two reasons, both measured (bench/notes/sync.md). Its connections are set up
//! for keyed reads and plan every statement for its own parameters: after a few runs of a
//! prepared statement PostgreSQL may switch to a generic plan, and the generic plan of the
//! pull's change-log page scanned the whole log after the cursor, which made a first sync
//! quadratic in the zone's size. And the native driver skips the `Any` driver's per-row,
//! per-column conversion, which was a large share of a pull page's time.
//!
//! On SQLite the same handles ([`KeyedRead`], [`ReadConn`], [`Db::spare_readers`]) hand out
//! connections of the one `Any` pool, and `json_rows` reads each query's rows as one
//! JSON value instead. Everything else in the storage layer, writes included, is shared SQL over
//! `sqlx::Any` (`store/mod.rs`).

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Any, AnyConnection, ConnectOptions, Executor, Postgres};
use uuid::Uuid;

use super::{placeholders, Backend, Db};

/// A connection for reads of many rows, from [`Db::begin_keyed_read`] or [`Db::reader`]
/// (`json_rows` reads through it).
pub enum Reader<'c> {
    /// SQLite: each query's rows come back as one JSON value.
    Sqlite(&'c mut AnyConnection),
    /// PostgreSQL through its native driver.
    Postgres(&'c mut PgConnection),
}

/// The native pool beside the `Any` pool: `max_connections` like it, `spare` of them kept open
/// for [`Db::spare_readers`].
pub(super) async fn connect(url: &str, max_connections: u32, spare: u32) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(max_connections.min(spare))
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // Every read on these connections is a key lookup or a key-ordered range
                // scan: see `begin_keyed_read` for why the planner is told so. And each
                // statement is planned for its own parameters: after five runs of a prepared
                // statement PostgreSQL may switch to a generic plan, and the generic plan of the
                // pull's change-log page read the global range (`zone_id IS NULL`) through the
                // primary key, filtering every row after the cursor, which makes a first sync
                // quadratic in the zone's size (bench/notes/sync.md). Planning a page's
                // statements afresh is cheap by comparison.
                conn.execute(
                    "SELECT set_config('jit', 'off', false), \
                     set_config('enable_seqscan', 'off', false), \
                     set_config('enable_bitmapscan', 'off', false), \
                     set_config('plan_cache_mode', 'force_custom_plan', false)",
                )
                .await?;
                Ok(())
            })
        })
        .connect_with(url.parse::<PgConnectOptions>()?.disable_statement_logging())
        .await?)
}

/// See [`Db::begin_keyed_read`]. Dropping it without [`KeyedRead::commit`] rolls back.
pub struct KeyedRead {
    tx: sqlx::Transaction<'static, Any>,
    reads: Option<PoolConnection<Postgres>>,
}

impl KeyedRead {
    /// The transaction's connection.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
    /// Where this transaction's reads of many rows go: the transaction itself on SQLite.
    pub fn reader(&mut self) -> Reader<'_> {
        match &mut self.reads {
            Some(pg) => Reader::Postgres(pg),
            None => Reader::Sqlite(&mut self.tx),
        }
    }
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// A connection from [`Db::reader`].
pub enum ReadConn {
    Sqlite(PoolConnection<Any>),
    Postgres(PoolConnection<Postgres>),
}

impl ReadConn {
    pub fn reader(&mut self) -> Reader<'_> {
        match self {
            ReadConn::Sqlite(c) => Reader::Sqlite(c),
            ReadConn::Postgres(c) => Reader::Postgres(c),
        }
    }
}

impl Db {
    /// A read transaction for work made only of key lookups and key-ordered range scans (the
    /// pull), with a connection for its reads of many rows ([`KeyedRead::reader`]). On
    /// PostgreSQL the planner is told so: on tables filled in bulk and not analysed yet (a new
    /// zone, a fresh server) its default estimates otherwise choose sequential scans and sorts of
    /// every row after a cursor, far slower than the index paths.
    /// (JIT is off on every connection, see `Db::connect`.)
    ///
    /// What the pull needs of its reads is that a case view be at least as new as the
    /// change-log row that named it: the log is written in commit order (`changes`), so anything
    /// committed after that row was read gets a later row, and a later page renders the case
    /// again. On PostgreSQL the transaction is READ COMMITTED, each statement seeing what had
    /// committed when it started, and the reader's statements on their own connection are no
    /// different; on SQLite the transaction is one snapshot. Case views may also be read on
    /// [`Db::spare_readers`], outside the transaction, which is as new or newer.
    pub async fn begin_keyed_read(&self) -> Result<KeyedRead, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query(
                "SELECT set_config('enable_seqscan', 'off', true), \
                 set_config('enable_bitmapscan', 'off', true)",
            )
            .execute(&mut *tx)
            .await?;
        }
        // Always after the `Any` connection, as everywhere (`Db::reader`): no two requests
        // can each hold what the other waits for.
        let reads = match &self.reads {
            Some(pg) => Some(pg.acquire().await?),
            None => None,
        };
        Ok(KeyedRead { tx, reads })
    }

    /// A connection for reads of many rows outside a transaction (case views). A request that
    /// also holds a connection of [`Db::pool`] takes that one first.
    pub async fn reader(&self) -> Result<ReadConn, sqlx::Error> {
        Ok(match &self.reads {
            Some(pg) => ReadConn::Postgres(pg.acquire().await?),
            None => ReadConn::Sqlite(self.pool.acquire().await?),
        })
    }

    /// Up to `n` more connections for reads of many rows ([`Db::reader`]), only those idle
    /// now: a request never waits for another connection while it holds one, so no two
    /// requests can each hold what the other waits for. The pools keep a few open
    /// (`min_connections`), so an unloaded server has them; a busy one reads one after another.
    pub fn spare_readers(&self, n: usize) -> Vec<ReadConn> {
        (0..n)
            .map_while(|_| match &self.reads {
                Some(pg) => pg.try_acquire().map(ReadConn::Postgres),
                None => self.pool.try_acquire().map(ReadConn::Sqlite),
            })
            .collect()
    }
}

/// `json_rows::fetch_in` for one list of ids on PostgreSQL: `SELECT cols FROM {from}
/// ORDER BY {order}` as plain rows of the native driver, each read by `decode`.
pub(super) async fn fetch_in<T>(
    conn: &mut PgConnection,
    cols: &[&str],
    (from, order): (&str, &str),
    ids: &[Uuid],
    decode: fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    let from = from.replacen("{}", &placeholders(1, ids.len()), 1);
    let sql = format!("SELECT {} FROM {from} ORDER BY {order}", cols.join(", "));
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(id.to_string());
    }
    q.fetch_all(conn).await?.iter().map(decode).collect()
}
