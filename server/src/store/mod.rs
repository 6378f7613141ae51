//! The storage layer: all SQL lives here.
//!
//! One SQL layer serves both backends through `sqlx::Any`: the schema uses only types both
//! understand (TEXT ids and JSON, BIGINT times in Unix milliseconds and fixed-point numbers), so
//! the same statements run on SQLite and PostgreSQL. What really differs — migrations, row locks,
//! how writers are serialised, append-only triggers — is decided by [`Backend`], in one place.
//!
//! Every multi-statement write is one explicit transaction from [`Db::begin_write`]. The one
//! path that is PostgreSQL's alone, the native driver's reads of many rows, is [`pg_reads`].

pub mod audit;
pub mod calendar;
pub mod cases;
pub mod changes;
pub mod decode;
pub mod devices;
pub mod intake;
pub mod json_rows;
pub mod ledger;
pub mod ledger_log;
pub mod notice_settings;
pub mod notices;
pub mod pg_reads;
pub mod photos;
pub mod plans;
pub mod reference;
pub mod review;
pub mod sessions;
pub mod signing_keys;
pub mod sync;
pub mod tokens;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPool;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use pg_reads::{KeyedRead, ReadConn};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The two supported database backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL scheme (use sqlite: or postgres://)")
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        }
    }

    /// Row-lock suffix for a `SELECT` that a transaction will update. SQLite has no row locks:
    /// its writers are serialised by [`Db::begin_write`] instead.
    pub fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// A handle on the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// PostgreSQL only: the same database through sqlx's native driver, for reads of many rows
    /// ([`json_rows::Reader`]: pull pages, case views); see [`pg_reads`].
    reads: Option<PgPool>,
    /// SQLite allows one writer at a time; taking this lock before `BEGIN` makes this
    /// process's write transactions queue here, in turn, rather than in SQLite's busy handler.
    write_lock: Arc<Mutex<()>>,
    /// SQLite: how long a write waits for its turn, for [`Db::write_lock`] and for SQLite's
    /// own lock (`busy_timeout`, which writes outside [`Db::begin_write`] wait on too).
    write_wait: Duration,
}

/// How long a SQLite write waits for its turn unless configured (`database_write_wait_ms`).
pub const DEFAULT_WRITE_WAIT: Duration = Duration::from_secs(10);

/// A write transaction. Dropping it without [`WriteTx::commit`] rolls back.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
    pub backend: Backend,
}

impl WriteTx {
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Db {
    /// Connects and applies this backend's migrations; writes wait [`DEFAULT_WRITE_WAIT`].
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        Self::connect_with_write_wait(url, max_connections, DEFAULT_WRITE_WAIT).await
    }

    /// Connects and applies this backend's migrations. On SQLite a write waits up to
    /// `write_wait` for the writer before it.
    pub async fn connect_with_write_wait(
        url: &str,
        max_connections: u32,
        write_wait: Duration,
    ) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        if backend == Backend::Sqlite {
            prepare_sqlite_file(url)?;
        }
        let options: AnyConnectOptions = url.parse()?;
        let options = options.disable_statement_logging();
        let max = match backend {
            Backend::Sqlite => max_connections.clamp(1, 8),
            Backend::Postgres => max_connections,
        };
        // Connections kept open for `spare_readers` (on SQLite this pool serves the reads).
        const SPARE: u32 = 4;
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(match backend {
                Backend::Sqlite => max.min(SPARE),
                Backend::Postgres => 0,
            })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; FULL sync makes an
                        // acknowledged commit survive power loss, not only a process crash.
                        // busy_timeout: a write that finds another writer waits for its turn.
                        let pragmas = format!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {};",
                            write_wait.as_millis()
                        );
                        conn.execute(pragmas.as_str()).await?;
                    } else {
                        // PostgreSQL's JIT compiles a query once its estimated cost is high:
                        // for the ranking's indicators that took half the query's time
                        // (bench/notes), and our queries are short index reads or aggregates
                        // that never repay it.
                        conn.execute("SET jit = off").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let reads = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(pg_reads::connect(url, max_connections, SPARE).await?),
        };
        let db = Db {
            pool,
            backend,
            reads,
            write_lock: Arc::new(Mutex::new(())),
            write_wait,
        };
        db.migrate().await?;
        Ok(db)
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.backend.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// A write transaction. On SQLite it waits (up to the write wait, then fails as
    /// unavailable) for its turn and takes the database's write lock at `BEGIN IMMEDIATE`: a
    /// deferred transaction that read first would be refused outright (SQLITE_BUSY, without
    /// waiting) if any other writer committed between its first read and its first write.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let (guard, tx) = match self.backend {
            Backend::Sqlite => {
                let guard =
                    tokio::time::timeout(self.write_wait, self.write_lock.clone().lock_owned())
                        .await
                        .map_err(|_| sqlx::Error::PoolTimedOut)?;
                (Some(guard), self.pool.begin_with("BEGIN IMMEDIATE").await?)
            }
            Backend::Postgres => (None, self.pool.begin().await?),
        };
        Ok(WriteTx {
            tx,
            _guard: guard,
            backend: self.backend,
        })
    }

    /// Closes every connection (tests, shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(pg) = &self.reads {
            pg.close().await;
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// Creates the SQLite file's folder (0700) and the file itself (empty, 0600) before SQLite
/// opens it: SQLite would create it with the umask's mode (usually world-readable), and it
/// gives its `-wal` and `-shm` files the mode of the database file.
fn prepare_sqlite_file(url: &str) -> anyhow::Result<()> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return Ok(());
    }
    let path = std::path::Path::new(path);
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            crate::private_fs::create_dir_all(parent)?;
        }
    }
    // Only where SQLite would create it too (`mode=rwc`, as the default URL says).
    if query.split('&').any(|p| p == "mode=rwc") {
        crate::private_fs::create_file_if_missing(path)?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch: the one time representation in the database.
pub fn now_ms() -> i64 {
    ms_from_time(time::OffsetDateTime::now_utc())
}

pub fn ms_from_time(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn time_from_ms(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// A column whose text the code does not know: an error naming the column and the value, never
/// a guess (a wrong state or a nil id read back would be served as if it were true).
pub fn unknown_value(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown value {value:?} in column `{column}`").into())
}

/// Parses a UUID column strictly.
pub fn parse_uuid(column: &str, value: &str) -> Result<uuid::Uuid, sqlx::Error> {
    uuid::Uuid::parse_str(value).map_err(|_| unknown_value(column, value))
}

/// A value for a multi-row insert (the `Any` driver binds only concrete types).
#[derive(Debug, Clone)]
pub enum Val {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(Some(v))
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Val::Text(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Val::Real(Some(v))
    }
}
impl From<Option<f64>> for Val {
    fn from(v: Option<f64>) -> Self {
        Val::Real(v)
    }
}
impl From<uuid::Uuid> for Val {
    fn from(v: uuid::Uuid) -> Self {
        Val::Text(Some(v.to_string()))
    }
}
impl From<Option<uuid::Uuid>> for Val {
    fn from(v: Option<uuid::Uuid>) -> Self {
        Val::Text(v.map(|u| u.to_string()))
    }
}

/// Most parameters one multi-row statement binds. PostgreSQL takes up to 65535 and is fastest
/// with big statements; SQLite's cost per statement grows faster than its parameter count (the
/// benchmark saw the plain batched insert crawl at 30000), so it gets the classic 999.
fn max_params(conn: &AnyConnection) -> usize {
    if is_sqlite(conn) {
        999
    } else {
        30_000
    }
}

fn is_sqlite(conn: &AnyConnection) -> bool {
    conn.backend_name() == "SQLite"
}

/// `($1,$2),($3,$4)`: `rows` groups of `columns` placeholders, appended to `sql`, numbered on
/// PostgreSQL and plain `?` (bound in order) on SQLite. sqlx binds SQLite parameters by asking
/// for each one's name, which SQLite finds by a linear search of the statement's named
/// parameters: with 999 `$N` that is half a million steps per statement, a large share of a
/// SQLite profile (bench/notes/scale.md); anonymous `?` have no name to search.
fn push_value_groups(sql: &mut String, rows: usize, columns: usize, numbered: bool) {
    use std::fmt::Write;
    let mut n = 0;
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push(',');
            }
            n += 1;
            if numbered {
                let _ = write!(sql, "${n}");
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
}

/// Runs `sql` once with every value of `rows` bound in order.
async fn execute_rows(
    conn: &mut AnyConnection,
    sql: &str,
    rows: &[Vec<Val>],
    columns: usize,
) -> Result<(), sqlx::Error> {
    let mut q = sqlx::query(sql);
    for row in rows {
        debug_assert_eq!(row.len(), columns);
        for v in row {
            q = match v {
                Val::Text(t) => q.bind(t.clone()),
                Val::Int(i) => q.bind(*i),
                Val::Real(r) => q.bind(*r),
            };
        }
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Inserts many rows with multi-row `INSERT … VALUES (…), (…)` statements: one round trip per
/// chunk instead of one per row, which is what makes batched sync fast on both backends.
pub async fn insert_rows(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Val>],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let per_chunk = (max_params(conn) / columns.len()).max(1);
    for chunk in rows.chunks(per_chunk) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        push_value_groups(&mut sql, chunk.len(), columns.len(), !is_sqlite(conn));
        execute_rows(conn, &sql, chunk, columns.len()).await?;
    }
    Ok(())
}

/// Updates many rows by key with `UPDATE … FROM (VALUES (…), (…))` statements (both backends
/// name the columns of a `VALUES` list `column1`, `column2`, …). Each row of `rows` is the key
/// followed by the new values of `columns`.
pub async fn update_rows(
    conn: &mut AnyConnection,
    table: &str,
    key: &str,
    columns: &[&str],
    rows: &[Vec<Val>],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let width = columns.len() + 1;
    let set: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = v.column{}", i + 2))
        .collect();
    let per_chunk = (max_params(conn) / width).max(1);
    for chunk in rows.chunks(per_chunk) {
        let mut sql = format!("UPDATE {table} SET {} FROM (VALUES ", set.join(", "));
        push_value_groups(&mut sql, chunk.len(), width, !is_sqlite(conn));
        sql.push_str(&format!(") AS v WHERE {table}.{key} = v.column1"));
        execute_rows(conn, &sql, chunk, width).await?;
    }
    Ok(())
}

/// The placeholders of an `IN (…)` list that is a statement's only parameters: `?, ?, …` on
/// SQLite (see `push_value_groups` for why: binding a thousand `$N` makes sqlx search
/// SQLite's parameter names a million times), `$1, $2, …` on PostgreSQL.
pub fn id_list(conn: &AnyConnection, count: usize) -> String {
    if is_sqlite(conn) {
        anonymous_placeholders(count)
    } else {
        placeholders(1, count)
    }
}

/// `?, ?, …`: SQLite numbers them in order.
pub fn anonymous_placeholders(count: usize) -> String {
    let mut out = String::with_capacity(count * 2);
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        out.push('?');
    }
    out
}

/// `$first, $first+1, …` placeholders for an `IN (…)` list.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 3339 text of a stored time, for JSON built by hand.
pub fn rfc3339(ms: i64) -> String {
    time_from_ms(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
