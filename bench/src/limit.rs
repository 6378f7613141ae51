//! The limit: the rows a push wrote, written again into a snapshot of the same database taken
//! just before the push, by the fastest plain means we have — multi-row `INSERT`s
//! (`gridline_server::store::insert_rows`, up to 30,000 parameters a statement), one transaction
//! per push batch, as many at once as the server has connections. No signatures, no JSON, no
//! reads: what is left is the database's own cost of storing those rows with their indexes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use gridline_server::store::{insert_rows, Db, Val};
use sqlx::{AnyPool, Row};

use super::server::Database;
use super::Backend;

/// The tables a push writes, parents first.
pub const PUSH_TABLES: &[&str] = &[
    "cases",
    "case_field_history",
    "case_photos",
    "case_events",
    "conflicts",
    "sync_ops",
    "sync_rejections",
    "changes",
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Real,
    Text,
}

struct Table {
    name: &'static str,
    columns: Vec<(String, Kind)>,
}

/// The rows of one push batch, table by table.
pub type BatchRows = Vec<(&'static str, Vec<String>, Vec<Vec<Val>>)>;

async fn columns(pool: &AnyPool, backend: Backend, table: &str) -> anyhow::Result<Table> {
    let sql = match backend {
        Backend::Sqlite => format!("SELECT name, type FROM pragma_table_info('{table}')"),
        Backend::Postgres => format!(
            "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
        ),
    };
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    let mut columns = Vec::new();
    for r in rows {
        let name: String = r.try_get("name")?;
        let ty: String = r.try_get::<String, _>("type")?.to_ascii_uppercase();
        let kind = if ty.contains("INT") {
            Kind::Int
        } else if ty.contains("DOUBLE") || ty.contains("REAL") || ty.contains("FLOAT") {
            Kind::Real
        } else {
            Kind::Text
        };
        columns.push((name, kind));
    }
    let name = PUSH_TABLES
        .iter()
        .find(|t| **t == table)
        .copied()
        .context("not a push table")?;
    Ok(Table { name, columns })
}

/// Reads what the push wrote (every row of [`PUSH_TABLES`]; `changes` after `changes_after`)
/// and groups it by the device whose batch wrote it, in `devices` order.
pub async fn rows_written(
    pool: &AnyPool,
    backend: Backend,
    devices: &[String],
    changes_after: i64,
) -> anyhow::Result<(Vec<BatchRows>, usize)> {
    let device_index: HashMap<&str, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    let mut case_device: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<BatchRows> = vec![Vec::new(); devices.len()];
    let mut total = 0;
    for name in PUSH_TABLES {
        let table = columns(pool, backend, name).await?;
        let names: Vec<String> = table.columns.iter().map(|c| c.0.clone()).collect();
        let mut sql = format!("SELECT {} FROM {}", names.join(", "), table.name);
        if table.name == "changes" {
            sql.push_str(&format!(" WHERE seq > {changes_after} ORDER BY seq"));
        }
        let rows = sqlx::query(&sql).fetch_all(pool).await?;
        let mut per_batch: Vec<Vec<Vec<Val>>> = vec![Vec::new(); devices.len()];
        for r in rows {
            let mut vals = Vec::with_capacity(names.len());
            let mut owner = None;
            for (i, (col, kind)) in table.columns.iter().enumerate() {
                let v = match kind {
                    Kind::Int => Val::Int(r.try_get(i)?),
                    Kind::Real => Val::Real(r.try_get(i)?),
                    Kind::Text => Val::Text(r.try_get(i)?),
                };
                if let Val::Text(Some(s)) = &v {
                    match col.as_str() {
                        "device_id" => owner = owner.or(device_index.get(s.as_str()).copied()),
                        "case_id" | "entity_id" => {
                            owner = owner.or(case_device.get(s.as_str()).copied())
                        }
                        _ => {}
                    }
                }
                vals.push(v);
            }
            if table.name == "cases" {
                if let (Some(o), Some(Val::Text(Some(id)))) = (owner, vals.first()) {
                    case_device.insert(id.clone(), o);
                }
            }
            per_batch[owner.unwrap_or(0)].push(vals);
            total += 1;
        }
        for (b, rows) in per_batch.into_iter().enumerate() {
            if !rows.is_empty() {
                out[b].push((table.name, names.clone(), rows));
            }
        }
    }
    Ok((out, total))
}

/// What writing the rows took.
pub struct LimitRun {
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

/// Writes each batch's rows in one transaction into `snapshot`, `connections` at once.
pub async fn write(
    snapshot: &Database,
    connections: u32,
    batches: Vec<BatchRows>,
) -> anyhow::Result<LimitRun> {
    let db = Db::connect(&snapshot.url, connections)
        .await
        .context("open the snapshot")?;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(connections as usize));
    for batch in batches {
        let (db, gate) = (db.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let t = Instant::now();
            let mut tx = db.begin_write().await?;
            for (table, cols, rows) in &batch {
                let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
                insert_rows(tx.conn(), table, &cols, rows)
                    .await
                    .with_context(|| format!("insert into {table}"))?;
            }
            tx.commit().await?;
            anyhow::Ok(t.elapsed())
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.push(done??);
    }
    let elapsed = start.elapsed();
    db.pool.close().await;
    Ok(LimitRun { elapsed, latencies })
}
