//! Many cases at once, by direct SQL: `INSERT … SELECT` over a generated series (PostgreSQL's
//! `generate_series`, a recursive CTE on SQLite), so a million cases take seconds rather than
//! the hours a million pushes would. The rows follow the schema and what the server writes:
//! UUIDs in receipt order (as `Uuid::now_v7` gives), demo zones, reporters and taxonomy keys,
//! the workflow columns of each state, declared photos (most verified), a creation event, and
//! integrity flags on a few. The spread is deterministic (multiplicative hashing of the row
//! number), so two runs seed the same database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use gridline_server::store::Db;
use gridline_testkit::kit;
use uuid::Uuid;

use super::Backend;

/// The flag the queue scenario filters on; about 2.5 % of cases carry it.
pub const FLAG: &str = "location_outside_zone";
/// The source the queue scenario filters on; about 8 % of cases.
pub const SOURCE: &str = "public_complaint";

/// What was seeded, for building filters and ledger entries.
pub struct Seeded {
    pub cases: usize,
    pub elapsed: Duration,
    /// Zone ids by code (`Z01` …).
    pub zones: HashMap<String, Uuid>,
    /// Taxonomy keys cases were spread over.
    pub categories: Vec<String>,
}

/// The id of seeded case `i` (1-based): a version-7-shaped UUID, increasing with `i`.
pub fn case_id(i: usize) -> Uuid {
    Uuid::parse_str(&format!("0190b000-0000-7000-8000-{i:012x}")).unwrap_or_default()
}

/// The hash of seeded photo `k` (0 or 1) of case `i`.
pub fn photo_sha(i: usize, k: usize) -> String {
    format!("{:064x}", (k << 40) + i)
}

struct Sql {
    backend: Backend,
}

impl Sql {
    /// Rows `i` from `lo` to `hi` inclusive, as a FROM item with column `i`.
    fn series(&self, lo: usize, hi: usize) -> String {
        match self.backend {
            Backend::Postgres => format!("generate_series({lo}::BIGINT, {hi}::BIGINT) AS s(i)"),
            Backend::Sqlite => format!(
                "(WITH RECURSIVE n(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM n WHERE i < {hi}) \
                 SELECT i FROM n) AS s"
            ),
        }
    }

    /// `expr` in lower-case hex, zero-padded to `width`.
    fn hex(&self, expr: &str, width: usize) -> String {
        match self.backend {
            Backend::Postgres => format!("lpad(to_hex({expr}), {width}, '0')"),
            Backend::Sqlite => format!("printf('%0{width}x', {expr})"),
        }
    }

    fn case_id(&self, expr: &str) -> String {
        format!("('0190b000-0000-7000-8000-' || {})", self.hex(expr, 12))
    }
}

/// `CASE {key} WHEN 0 THEN 'a' WHEN 1 THEN 'b' … END`.
fn pick(key: &str, values: &[String]) -> String {
    let mut s = format!("CASE {key}");
    for (k, v) in values.iter().enumerate() {
        s.push_str(&format!(" WHEN {k} THEN '{}'", v.replace('\'', "''")));
    }
    s.push_str(" END");
    s
}

/// `CASE {key} WHEN 0 THEN 1.5 …`: numbers, unquoted.
fn pick_number(key: &str, values: &[f64]) -> String {
    let mut s = format!("CASE {key}");
    for (k, v) in values.iter().enumerate() {
        s.push_str(&format!(" WHEN {k} THEN {v}"));
    }
    s.push_str(" END");
    s
}

/// Seeds `count` cases received over `span_ms` up to `now` (the last tenth of the span holds
/// the open backlog; older cases are mostly closed), in transactions of `batch` cases, then
/// runs ANALYZE.
pub async fn cases(
    db: &Db,
    backend: Backend,
    count: usize,
    span_ms: i64,
    now: i64,
) -> anyhow::Result<Seeded> {
    let start = Instant::now();
    let pool = &db.pool;
    let zone_list = gridline_server::store::reference::zones(pool, None).await?;
    let zones: HashMap<String, Uuid> = zone_list.iter().map(|z| (z.code.clone(), z.id)).collect();
    let mut zone_ids = Vec::new();
    let mut reporters = Vec::new();
    let mut lats = Vec::new();
    let mut lons = Vec::new();
    for z in 0..8 {
        zone_ids.push(
            zones
                .get(&format!("Z0{}", z + 1))
                .context("the demo zones")?
                .to_string(),
        );
        let user = gridline_server::store::users::by_username(
            pool,
            &super::phones::inspector(2 * z + 1).0,
        )
        .await?
        .context("a demo inspector")?;
        reporters.push(user.id.to_string());
        let (a, b, c, d) = gridline_server::demo::zone_rect(z);
        lats.push((b + d) / 2.0);
        lons.push((a + c) / 2.0);
    }
    let taxonomy = gridline_server::store::reference::taxonomy(pool).await?;
    let categories: Vec<String> = taxonomy
        .iter()
        .filter(|t| t.code.len() == 4)
        .map(|t| t.key.clone())
        .take(24)
        .collect();
    anyhow::ensure!(!categories.is_empty(), "the demo taxonomy is empty");
    let sql = Sql { backend };
    let n = count as i64;
    let step = (span_ms / n.max(1)).max(1);
    let recent = n - n / 10;
    // A pseudo-random draw per case and property (`kit::seeded_draw`).
    let h = kit::seeded_draw;
    let r = |m: u64| h(m, 1000);
    let state = kit::seeded_case_state(recent);
    let source = kit::seeded_case_source();
    let flags = format!(
        "CASE WHEN {f} < 20 THEN '[\"{FLAG}\"]' WHEN {f} < 30 THEN '[\"clock_skew\"]' \
         WHEN {f} < 35 THEN '[\"{FLAG}\",\"clock_skew\"]' ELSE '[]' END",
        f = r(3_266_489_917)
    );
    let received = format!("({now} - ({n} - i) * {step})");
    let dispatched =
        "CASE WHEN state IN ('dispatched', 'in_progress', 'pending_verification', 'closed') \
         THEN received_at + 7200000 END";
    let batch = 100_000usize;
    let mut lo = 1;
    while lo <= count {
        let hi = (lo + batch - 1).min(count);
        let mut tx = db.begin_write().await?;
        let insert_cases = format!(
            "INSERT INTO cases (id, zone_id, reporter_id, device_id, source, state, category_code, \
               description, severity, asset_code, lat, lon, accuracy_m, captured_at, queued_at, \
               received_at, round_id, version, locked_at, flags, created_at, updated_at, \
               duplicate_of, filed_at, dispatched_at, deadline_at, dispatch_target, rework_count, \
               closed_at) \
             SELECT id, zone_id, reporter_id, NULL, source, state, category_code, \
               'Overflowing bin at the market gate, bags on the pavement', severity, NULL, lat, lon, \
               6.5, received_at - 600000, received_at - 599000, received_at, NULL, \
               CASE WHEN state = 'reported' THEN 1 ELSE 3 END, NULL, flags, received_at, \
               received_at, NULL, \
               CASE WHEN state NOT IN ('reported', 'not_filed', 'duplicate', 'withdrawn') \
                 THEN received_at + 3600000 END, \
               {dispatched}, \
               CASE WHEN state IN ('dispatched', 'in_progress', 'pending_verification', 'closed') \
                 THEN received_at + 7200000 + \
                   (CASE WHEN category_code LIKE 'event:%' THEN 24 ELSE 72 END) * 3600000 END, \
               CASE WHEN state IN ('dispatched', 'in_progress', 'pending_verification', 'closed') \
                 THEN 'accountable' END, \
               CASE WHEN i % 17 = 0 THEN 1 ELSE 0 END, \
               CASE WHEN state = 'closed' THEN received_at + 86400000 END \
             FROM (SELECT i, {id} AS id, {zone} AS zone_id, {reporter} AS reporter_id, \
                     {source} AS source, {state} AS state, {category} AS category_code, \
                     {severity} AS severity, {lat} AS lat, {lon} AS lon, {flags} AS flags, \
                     {received} AS received_at \
                   FROM {series}) AS c",
            id = sql.case_id("i"),
            zone = pick("i % 8", &zone_ids),
            reporter = pick("i % 8", &reporters),
            category = pick(&h(668_265_263, categories.len()), &categories),
            severity = pick(
                "i % 3",
                &["low".to_owned(), "medium".to_owned(), "high".to_owned()]
            ),
            lat = pick_number("i % 8", &lats),
            lon = pick_number("i % 8", &lons),
            series = sql.series(lo, hi),
        );
        sqlx::query(&insert_cases)
            .execute(tx.conn())
            .await
            .context("seed cases")?;
        // One photo per case, a second on one in five; 93 % of photos arrived and verified.
        let insert_case_photos = format!(
            "INSERT INTO case_photos (case_id, sha256, size, captured_at, gps_lat, gps_lon, role, \
               declared_by, declared_at) \
             SELECT {id}, {sha}, 3000000, {received} - 600000, NULL, NULL, 'before', \
               {reporter}, {received} FROM {series} CROSS JOIN (SELECT 0 AS k UNION ALL SELECT 1) AS kk \
             WHERE k = 0 OR i % 5 = 0",
            id = sql.case_id("i"),
            sha = sql.hex(&format!("(k * {}) + i", 1_i64 << 40), 64),
            reporter = pick("i % 8", &reporters),
            series = sql.series(lo, hi),
        );
        sqlx::query(&insert_case_photos)
            .execute(tx.conn())
            .await
            .context("seed case photos")?;
        let insert_photos = format!(
            "INSERT INTO photos (sha256, status, error_code, size, mime, width, height, \
               exif_taken_at, exif_lat, exif_lon, orientation, make, model, uploaded_by, \
               verified_at, derivatives, derivative_attempts, derivative_error, \
               derivative_next_at, created_at) \
             SELECT {sha}, 'verified', NULL, 3000000, 'image/jpeg', 4000, 3000, \
               {received} - 600000, NULL, NULL, 1, 'TestCam', 'T1', {reporter}, {received} + 60000, \
               'ready', 1, NULL, NULL, {received} + 60000 \
             FROM {series} CROSS JOIN (SELECT 0 AS k UNION ALL SELECT 1) AS kk \
             WHERE (k = 0 OR i % 5 = 0) AND {arrived} < 93",
            arrived = "((((i * 2 + k) * 374761393) % 4294967291) % 100)",
            sha = sql.hex(&format!("(k * {}) + i", 1_i64 << 40), 64),
            reporter = pick("i % 8", &reporters),
            series = sql.series(lo, hi),
        );
        sqlx::query(&insert_photos)
            .execute(tx.conn())
            .await
            .context("seed photos")?;
        let event_id = format!("('0190b000-0000-7000-9000-' || {})", sql.hex("i", 12));
        let insert_events = format!(
            "INSERT INTO case_events (id, case_id, version, kind, actor_id, from_state, to_state, \
               comment, data, at) \
             SELECT {event_id}, {id}, 1, 'created', {reporter}, NULL, 'reported', NULL, NULL, \
               {received} FROM {series}",
            id = sql.case_id("i"),
            reporter = pick("i % 8", &reporters),
            series = sql.series(lo, hi),
        );
        sqlx::query(&insert_events)
            .execute(tx.conn())
            .await
            .context("seed case events")?;
        tx.commit().await?;
        lo = hi + 1;
    }
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(Seeded {
        cases: count,
        elapsed: start.elapsed(),
        zones,
        categories,
    })
}
