//! Cases: the rows, their field history, declared photos, events and recorded conflicts.

use std::collections::HashMap;

use gridline_sync::case::CaseState;
use gridline_sync::ops::Severity;
use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use serde::Deserialize;

use super::json_rows::{self, Col, Cols, Reader, IDS_PER_QUERY};
use super::{id_list, insert_rows, parse_uuid, placeholders, update_rows, Backend, Val};

type R<T> = Result<T, sqlx::Error>;

/// A stored case state; text no state has is a decode error.
pub fn decode_state(s: &str) -> R<CaseState> {
    CaseState::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| super::unknown_value("cases.state", s))
}

/// A stored severity; text no severity has is a decode error.
pub fn decode_severity(s: &str) -> R<Severity> {
    [Severity::Low, Severity::Medium, Severity::High]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| super::unknown_value("cases.severity", s))
}

#[derive(Debug, Clone, Deserialize)]
pub struct CaseRow {
    pub id: Uuid,
    pub zone_id: Uuid,
    pub reporter_id: Uuid,
    pub device_id: Option<Uuid>,
    pub source: String,
    pub state: CaseState,
    pub category_code: String,
    pub description: String,
    pub severity: Severity,
    pub asset_code: Option<String>,
    #[serde(deserialize_with = "json_rows::real")]
    pub lat: f64,
    #[serde(deserialize_with = "json_rows::real")]
    pub lon: f64,
    #[serde(deserialize_with = "json_rows::real")]
    pub accuracy_m: f64,
    pub captured_at: i64,
    pub queued_at: i64,
    pub received_at: i64,
    pub round_id: Option<Uuid>,
    pub version: i64,
    pub locked_at: Option<i64>,
    /// Stored as JSON text.
    #[serde(deserialize_with = "json_rows::json_text")]
    pub flags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const CASE_COLUMNS: &[&str] = &[
    "id",
    "zone_id",
    "reporter_id",
    "device_id",
    "source",
    "state",
    "category_code",
    "description",
    "severity",
    "asset_code",
    "lat",
    "lon",
    "accuracy_m",
    "captured_at",
    "queued_at",
    "received_at",
    "round_id",
    "version",
    "locked_at",
    "flags",
    "created_at",
    "updated_at",
];

fn case_from_row(r: &impl Cols) -> R<CaseRow> {
    Ok(CaseRow {
        id: r.uuid("id")?,
        zone_id: r.uuid("zone_id")?,
        reporter_id: r.uuid("reporter_id")?,
        device_id: r.opt_uuid("device_id")?,
        source: r.text("source")?,
        state: decode_state(&r.text("state")?)?,
        category_code: r.text("category_code")?,
        description: r.text("description")?,
        severity: decode_severity(&r.text("severity")?)?,
        asset_code: r.opt_text("asset_code")?,
        lat: r.real("lat")?,
        lon: r.real("lon")?,
        accuracy_m: r.real("accuracy_m")?,
        captured_at: r.int("captured_at")?,
        queued_at: r.int("queued_at")?,
        received_at: r.int("received_at")?,
        round_id: r.opt_uuid("round_id")?,
        version: r.int("version")?,
        locked_at: r.opt_int("locked_at")?,
        flags: {
            let flags = r.text("flags")?;
            serde_json::from_str(&flags).map_err(|_| super::unknown_value("cases.flags", &flags))?
        },
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

fn case_values(c: &CaseRow) -> Vec<Val> {
    vec![
        c.id.into(),
        c.zone_id.into(),
        c.reporter_id.into(),
        c.device_id.into(),
        c.source.clone().into(),
        c.state.as_str().into(),
        c.category_code.clone().into(),
        c.description.clone().into(),
        c.severity.as_str().into(),
        c.asset_code.clone().into(),
        c.lat.into(),
        c.lon.into(),
        c.accuracy_m.into(),
        c.captured_at.into(),
        c.queued_at.into(),
        c.received_at.into(),
        c.round_id.into(),
        c.version.into(),
        c.locked_at.into(),
        serde_json::to_string(&c.flags)
            .unwrap_or_else(|_| "[]".into())
            .into(),
        c.created_at.into(),
        c.updated_at.into(),
    ]
}

pub async fn insert_cases(conn: &mut AnyConnection, cases: &[CaseRow]) -> R<()> {
    let rows: Vec<Vec<Val>> = cases.iter().map(case_values).collect();
    insert_rows(conn, "cases", CASE_COLUMNS, &rows).await
}

/// The mutable part of a case (fields, state, version, lock, flags). Evidence columns have no
/// update path at all.
const MUTABLE_COLUMNS: &[&str] = &[
    "state",
    "category_code",
    "description",
    "severity",
    "asset_code",
    "version",
    "locked_at",
    "flags",
    "updated_at",
];

fn mutable_values(c: &CaseRow) -> Vec<Val> {
    vec![
        c.id.into(),
        c.state.as_str().into(),
        c.category_code.clone().into(),
        c.description.clone().into(),
        c.severity.as_str().into(),
        c.asset_code.clone().into(),
        c.version.into(),
        c.locked_at.into(),
        serde_json::to_string(&c.flags)
            .unwrap_or_else(|_| "[]".into())
            .into(),
        c.updated_at.into(),
    ]
}

/// Writes the mutable part of a case.
pub async fn update_case(conn: &mut AnyConnection, c: &CaseRow) -> R<()> {
    update_cases(conn, &[c]).await
}

/// Writes the mutable part of many cases, a few statements in all.
pub async fn update_cases(conn: &mut AnyConnection, cases: &[&CaseRow]) -> R<()> {
    let rows: Vec<Vec<Val>> = cases.iter().map(|c| mutable_values(c)).collect();
    update_rows(conn, "cases", "id", MUTABLE_COLUMNS, &rows).await
}

/// The cases with these ids (missing ones are absent), read as JSON ([`json_rows`]).
pub async fn load_many(reader: &mut Reader<'_>, ids: &[Uuid]) -> R<HashMap<Uuid, CaseRow>> {
    let cols: Vec<Col> = CASE_COLUMNS
        .iter()
        .map(|&c| match c {
            "lat" | "lon" | "accuracy_m" => Col::Real(c),
            _ => Col::Exact(c),
        })
        .collect();
    let from = ("cases WHERE id IN ({})", "id");
    let rows = json_rows::fetch_in(reader, &cols, from, ids, case_from_row).await?;
    Ok(rows.into_iter().map(|c| (c.id, c)).collect())
}

/// Like [`load_many`], locking the rows (PostgreSQL) in id order, so that concurrent writers
/// (pushes, supervisors' transitions in routes/review.rs) queue instead of deadlocking.
pub async fn load_many_locked(
    conn: &mut AnyConnection,
    backend: Backend,
    ids: &[Uuid],
) -> R<HashMap<Uuid, CaseRow>> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    load(conn, &sorted, backend.for_update()).await
}

async fn load(conn: &mut AnyConnection, ids: &[Uuid], lock: &str) -> R<HashMap<Uuid, CaseRow>> {
    let sql = |list: &str| {
        format!(
            "SELECT {} FROM cases WHERE id IN ({list}) ORDER BY id{lock}",
            CASE_COLUMNS.join(", ")
        )
    };
    let rows = rows_with_ids(conn, ids, sql, case_from_row).await?;
    Ok(rows.into_iter().map(|c| (c.id, c)).collect())
}

/// The rows `sql(id list)` selects for `ids`, decoded, reading [`IDS_PER_QUERY`] ids a query.
async fn rows_with_ids<T>(
    conn: &mut AnyConnection,
    ids: &[Uuid],
    sql: impl Fn(&str) -> String,
    decode: impl Fn(&sqlx::any::AnyRow) -> R<T>,
) -> R<Vec<T>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let sql = sql(&id_list(conn, chunk.len()));
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.push(decode(&r)?);
        }
    }
    Ok(out)
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Option<CaseRow>> {
    let sql = format!(
        "SELECT {} FROM cases WHERE id = $1",
        CASE_COLUMNS.join(", ")
    );
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(e)
        .await?;
    row.as_ref().map(case_from_row).transpose()
}

// ---- unannounced inspections ------------------------------------------------------------------
//
// An unannounced round, and each case raised in it until a supervisor dispatches the case to
// the zone, reach only admins, supervisors, the people who made them (the round's inspector,
// the case's reporter) and the assignees of the round's plan, until the round is revealed (by
// a planner revealing its plan, or by the close of the period it falls in; `rounds.revealed_at`):
// nobody on the inspected zone's roster learns of the inspection while it is under way. Every read path (pull, case lists and reads, conflicts,
// exports) applies these conditions, with the reader as a bound parameter; `None` as the
// reader (admins and supervisors, see `AuthUser::confidential_reader`) applies none.

/// SQL: the case whose id is the expression `case_id` is confidential and the user in the
/// placeholder `reader` neither reported it nor made its round nor is assigned to its plan.
pub fn hidden_case_sql(case_id: &str, reader: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM cases hc JOIN rounds hr ON hr.id = hc.round_id \
         WHERE hc.id = {case_id} AND hr.kind = 'unannounced' AND hr.revealed_at IS NULL \
         AND hc.dispatched_at IS NULL AND hc.reporter_id <> {reader} AND hr.user_id <> {reader} \
         AND NOT EXISTS (SELECT 1 FROM plan_assignees hp \
         WHERE hp.plan_id = hr.plan_id AND hp.user_id = {reader}))"
    )
}

/// SQL: the round whose id is the expression `round_id` is unannounced, not revealed, and
/// neither made by the user in the placeholder `reader` nor of a plan they are assigned to.
pub fn hidden_round_sql(round_id: &str, reader: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM rounds hr WHERE hr.id = {round_id} \
         AND hr.kind = 'unannounced' AND hr.revealed_at IS NULL AND hr.user_id <> {reader} \
         AND NOT EXISTS (SELECT 1 FROM plan_assignees hp \
         WHERE hp.plan_id = hr.plan_id AND hp.user_id = {reader}))"
    )
}

/// Whether case `id` is hidden from `reader` (see [`hidden_case_sql`]).
pub async fn is_hidden<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
    reader: Option<Uuid>,
) -> R<bool> {
    let Some(reader) = reader else {
        return Ok(false);
    };
    let hidden: i64 = sqlx::query_scalar(&format!(
        "SELECT CAST(CASE WHEN {} THEN 1 ELSE 0 END AS BIGINT)",
        hidden_case_sql("$1", "$2")
    ))
    .bind(id.to_string())
    .bind(reader.to_string())
    .fetch_one(e)
    .await?;
    Ok(hidden == 1)
}

/// The scope condition of a case query: ` AND zone_id IN (…)` for `zones`, and ` AND NOT …`
/// for the cases hidden from `reader` (whose id is the column `case_id`), with placeholders
/// numbered from `next`; bind them with [`bind_scope`]. `None` when `zones` is empty: nothing
/// can match.
fn scope_sql(
    next: usize,
    zones: Option<&[Uuid]>,
    reader: Option<Uuid>,
    case_id: &str,
) -> Option<String> {
    let mut sql = String::new();
    let mut next = next;
    if let Some(z) = zones {
        if z.is_empty() {
            return None;
        }
        sql.push_str(&format!(
            " AND zone_id IN ({})",
            placeholders(next, z.len())
        ));
        next += z.len();
    }
    if reader.is_some() {
        sql.push_str(&format!(
            " AND NOT {}",
            hidden_case_sql(case_id, &format!("${next}"))
        ));
    }
    Some(sql)
}

/// Binds the placeholders of [`scope_sql`], after the query's own.
fn bind_scope<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    zones: Option<&[Uuid]>,
    reader: Option<Uuid>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for z in zones.unwrap_or(&[]) {
        q = q.bind(z.to_string());
    }
    if let Some(reader) = reader {
        q = q.bind(reader.to_string());
    }
    q
}

/// A page of cases ordered by id (UUIDv7: roughly by creation), in some zones, after `after`,
/// without those hidden from `reader`.
pub async fn list<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zones: Option<&[Uuid]>,
    state: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
    reader: Option<Uuid>,
) -> R<Vec<CaseRow>> {
    let mut sql = format!(
        "SELECT {} FROM cases WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR id > $2)",
        CASE_COLUMNS.join(", ")
    );
    let Some(scope) = scope_sql(4, zones, reader, "cases.id") else {
        return Ok(vec![]);
    };
    sql.push_str(&scope);
    sql.push_str(" ORDER BY id LIMIT $3");
    let q = sqlx::query(&sql)
        .bind(state)
        .bind(after.map(|a| a.to_string()))
        .bind(limit);
    bind_scope(q, zones, reader)
        .fetch_all(e)
        .await?
        .iter()
        .map(case_from_row)
        .collect()
}

/// The open cases (not in a final state) of some zones, newest received first, at most
/// `limit`, without those hidden from `reader`: what a map of the work in hand shows.
///
/// One branch per open state, each an ordered range of `cases_queue` or `cases_zone_queue`
/// read backwards, merged: the open cases are a few percent of the table, so neither a scan
/// in id order nor a sort of every match. SQLite is told the index when no zone leads, as in
/// `review::queue` (its planner may otherwise skip-scan another index and sort).
pub async fn open_newest(
    db: &super::Db,
    zones: Option<&[Uuid]>,
    reader: Option<Uuid>,
    limit: i64,
) -> R<Vec<CaseRow>> {
    let Some(scope) = scope_sql(2, zones, reader, "cases.id") else {
        return Ok(vec![]);
    };
    let table = match (db.backend, zones) {
        (Backend::Sqlite, None) => "cases INDEXED BY cases_queue",
        _ => "cases",
    };
    let branches: Vec<String> = CaseState::ALL
        .iter()
        .filter(|s| !s.is_final())
        .enumerate()
        .map(|(i, s)| {
            format!(
                "SELECT * FROM (SELECT id, received_at FROM {table} WHERE state = '{}'{scope} \
                 ORDER BY received_at DESC, id DESC LIMIT $1) AS s{i}",
                s.as_str()
            )
        })
        .collect();
    let columns: Vec<String> = CASE_COLUMNS.iter().map(|c| format!("cases.{c}")).collect();
    let sql = format!(
        "SELECT {} FROM cases JOIN (SELECT id, received_at FROM ({}) AS m \
         ORDER BY received_at DESC, id DESC LIMIT $1) AS q ON q.id = cases.id \
         ORDER BY q.received_at DESC, q.id DESC",
        columns.join(", "),
        branches.join(" UNION ALL ")
    );
    bind_scope(sqlx::query(&sql).bind(limit), zones, reader)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(case_from_row)
        .collect()
}

/// Ids of every case in a zone but those hidden from `reader` (for `remove` when a zone
/// leaves a puller's scope).
pub async fn ids_in_zone<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zone: Uuid,
    reader: Option<Uuid>,
) -> R<Vec<Uuid>> {
    let hidden = match reader {
        Some(_) => format!(" AND NOT {}", hidden_case_sql("cases.id", "$2")),
        None => String::new(),
    };
    let sql = format!("SELECT id FROM cases WHERE zone_id = $1{hidden} ORDER BY id");
    let mut q = sqlx::query_scalar(&sql).bind(zone.to_string());
    if let Some(reader) = reader {
        q = q.bind(reader.to_string());
    }
    let ids: Vec<String> = q.fetch_all(e).await?;
    ids.iter().map(|s| parse_uuid("cases.id", s)).collect()
}

// ---- field history ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub case_id: Uuid,
    pub version: i64,
    pub field: String,
    /// JSON text of the value.
    pub value: String,
    pub changed_by: Uuid,
    /// `inspector` or `supervisor`.
    pub level: String,
    pub at: i64,
}

/// A value of the field history, typed for its field.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryValue {
    CategoryCode(String),
    Description(String),
    Severity(Severity),
    AssetCode(Option<String>),
}

/// Decodes one history value (JSON text) for its field. An unknown field, text that is not JSON
/// and a value of the wrong shape are decode errors: the history decides conflicts, so a guess
/// would decide them wrongly.
pub fn decode_history_value(field: &str, value: &str) -> R<HistoryValue> {
    let bad = || super::unknown_value(&format!("case_field_history.value ({field})"), value);
    let json: serde_json::Value = serde_json::from_str(value).map_err(|_| bad())?;
    let text = || json.as_str().map(str::to_owned).ok_or_else(bad);
    Ok(match field {
        "category_code" => HistoryValue::CategoryCode(text()?),
        "description" => HistoryValue::Description(text()?),
        "severity" => HistoryValue::Severity(decode_severity(&text()?)?),
        "asset_code" if json.is_null() => HistoryValue::AssetCode(None),
        "asset_code" => HistoryValue::AssetCode(Some(text()?)),
        other => return Err(super::unknown_value("case_field_history.field", other)),
    })
}

/// The field history of the cases, oldest version first; every value is checked with
/// [`decode_history_value`].
pub async fn history_many(conn: &mut AnyConnection, ids: &[Uuid]) -> R<Vec<HistoryRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT case_id, version, field, value, changed_by, level, at FROM case_field_history \
             WHERE case_id IN ({}) ORDER BY case_id, version",
            id_list(conn, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            let field: String = r.try_get("field")?;
            let value: String = r.try_get("value")?;
            decode_history_value(&field, &value)?;
            out.push(HistoryRow {
                case_id: r.uuid("case_id")?,
                version: r.try_get("version")?,
                field,
                value,
                changed_by: r.uuid("changed_by")?,
                level: r.try_get("level")?,
                at: r.try_get("at")?,
            });
        }
    }
    Ok(out)
}

pub async fn insert_history(conn: &mut AnyConnection, rows: &[HistoryRow]) -> R<()> {
    let rows: Vec<Vec<Val>> = rows
        .iter()
        .map(|h| {
            vec![
                h.case_id.into(),
                h.version.into(),
                h.field.clone().into(),
                h.value.clone().into(),
                h.changed_by.into(),
                h.level.clone().into(),
                h.at.into(),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "case_field_history",
        &[
            "case_id",
            "version",
            "field",
            "value",
            "changed_by",
            "level",
            "at",
        ],
        &rows,
    )
    .await
}

// ---- photos -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
pub struct PhotoRow {
    pub case_id: Uuid,
    pub sha256: String,
    pub size: i64,
    pub captured_at: i64,
    #[serde(deserialize_with = "json_rows::opt_real")]
    pub gps_lat: Option<f64>,
    #[serde(deserialize_with = "json_rows::opt_real")]
    pub gps_lon: Option<f64>,
    /// `before` or `after`.
    pub role: String,
    pub declared_by: Uuid,
    pub declared_at: i64,
}

pub async fn insert_photos(conn: &mut AnyConnection, rows: &[PhotoRow]) -> R<()> {
    let rows: Vec<Vec<Val>> = rows
        .iter()
        .map(|p| {
            vec![
                p.case_id.into(),
                p.sha256.clone().into(),
                p.size.into(),
                p.captured_at.into(),
                p.gps_lat.into(),
                p.gps_lon.into(),
                p.role.clone().into(),
                p.declared_by.into(),
                p.declared_at.into(),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "case_photos",
        &[
            "case_id",
            "sha256",
            "size",
            "captured_at",
            "gps_lat",
            "gps_lon",
            "role",
            "declared_by",
            "declared_at",
        ],
        &rows,
    )
    .await
}

/// The declared photos of these cases, in declaration order, read as JSON ([`json_rows`]).
pub async fn photos_of(reader: &mut Reader<'_>, ids: &[Uuid]) -> R<Vec<PhotoRow>> {
    use Col::{Exact, Real};
    let cols = [
        Exact("case_id"),
        Exact("sha256"),
        Exact("size"),
        Exact("captured_at"),
        Real("gps_lat"),
        Real("gps_lon"),
        Exact("role"),
        Exact("declared_by"),
        Exact("declared_at"),
    ];
    let from = ("case_photos WHERE case_id IN ({})", "declared_at, sha256");
    json_rows::fetch_in(reader, &cols, from, ids, photo_from_row).await
}

fn photo_from_row(r: &impl Cols) -> R<PhotoRow> {
    Ok(PhotoRow {
        case_id: r.uuid("case_id")?,
        sha256: r.text("sha256")?,
        size: r.int("size")?,
        captured_at: r.int("captured_at")?,
        gps_lat: r.opt_real("gps_lat")?,
        gps_lon: r.opt_real("gps_lon")?,
        role: r.text("role")?,
        declared_by: r.uuid("declared_by")?,
        declared_at: r.int("declared_at")?,
    })
}

/// The declared photos of these cases, in no particular order.
pub async fn photos_many(conn: &mut AnyConnection, ids: &[Uuid]) -> R<Vec<PhotoRow>> {
    let cols = [
        "case_id",
        "sha256",
        "size",
        "captured_at",
        "gps_lat",
        "gps_lon",
        "role",
        "declared_by",
        "declared_at",
    ];
    let sql = |list: &str| {
        format!(
            "SELECT {} FROM case_photos WHERE case_id IN ({list})",
            cols.join(", ")
        )
    };
    rows_with_ids(conn, ids, sql, photo_from_row).await
}

/// (case, hash) of every declared photo of these cases.
pub async fn photo_keys(
    conn: &mut AnyConnection,
    ids: &[Uuid],
) -> R<std::collections::HashSet<(Uuid, String)>> {
    let mut out = std::collections::HashSet::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT case_id, sha256 FROM case_photos WHERE case_id IN ({})",
            id_list(conn, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert((r.uuid("case_id")?, r.try_get::<String, _>("sha256")?));
        }
    }
    Ok(out)
}

// ---- events -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
pub struct EventRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub version: i64,
    /// `created`, `edited`, `comment`, `transition`.
    pub kind: String,
    pub actor_id: Uuid,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub comment: Option<String>,
    pub data: Option<String>,
    pub at: i64,
}

const EVENT_COLUMNS: [&str; 10] = [
    "id",
    "case_id",
    "version",
    "kind",
    "actor_id",
    "from_state",
    "to_state",
    "comment",
    "data",
    "at",
];

pub async fn insert_events(conn: &mut AnyConnection, rows: &[EventRow]) -> R<()> {
    let rows: Vec<Vec<Val>> = rows
        .iter()
        .map(|e| {
            vec![
                e.id.into(),
                e.case_id.into(),
                e.version.into(),
                e.kind.clone().into(),
                e.actor_id.into(),
                e.from_state.clone().into(),
                e.to_state.clone().into(),
                e.comment.clone().into(),
                e.data.clone().into(),
                e.at.into(),
            ]
        })
        .collect();
    insert_rows(conn, "case_events", &EVENT_COLUMNS, &rows).await
}

/// The events of these cases, in version order, read as JSON ([`json_rows`]).
pub async fn events_of(reader: &mut Reader<'_>, ids: &[Uuid]) -> R<Vec<EventRow>> {
    let cols = EVENT_COLUMNS.map(Col::Exact);
    let from = ("case_events WHERE case_id IN ({})", "version, id");
    json_rows::fetch_in(reader, &cols, from, ids, event_from_row).await
}

fn event_from_row(r: &impl Cols) -> R<EventRow> {
    Ok(EventRow {
        id: r.uuid("id")?,
        case_id: r.uuid("case_id")?,
        version: r.int("version")?,
        kind: r.text("kind")?,
        actor_id: r.uuid("actor_id")?,
        from_state: r.opt_text("from_state")?,
        to_state: r.opt_text("to_state")?,
        comment: r.opt_text("comment")?,
        data: r.opt_text("data")?,
        at: r.int("at")?,
    })
}

/// The events with these ids (a comment's id is the phone's `comment_id`).
pub async fn events_by_id(conn: &mut AnyConnection, ids: &[Uuid]) -> R<Vec<EventRow>> {
    let sql = |list: &str| {
        format!(
            "SELECT {} FROM case_events WHERE id IN ({list})",
            EVENT_COLUMNS.join(", ")
        )
    };
    rows_with_ids(conn, ids, sql, event_from_row).await
}

// ---- conflicts --------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
pub struct ConflictRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub zone_id: Uuid,
    pub op_id: Uuid,
    pub user_id: Uuid,
    pub field: String,
    pub base_value: String,
    pub server_value: String,
    pub incoming_value: String,
    pub resolution: String,
    pub rule_id: String,
    pub created_at: i64,
}

const CONFLICT_COLUMNS: [&str; 12] = [
    "id",
    "case_id",
    "zone_id",
    "op_id",
    "user_id",
    "field",
    "base_value",
    "server_value",
    "incoming_value",
    "resolution",
    "rule_id",
    "created_at",
];

pub async fn insert_conflicts(conn: &mut AnyConnection, rows: &[ConflictRow]) -> R<()> {
    let rows: Vec<Vec<Val>> = rows
        .iter()
        .map(|c| {
            vec![
                c.id.into(),
                c.case_id.into(),
                c.zone_id.into(),
                c.op_id.into(),
                c.user_id.into(),
                c.field.clone().into(),
                c.base_value.clone().into(),
                c.server_value.clone().into(),
                c.incoming_value.clone().into(),
                c.resolution.clone().into(),
                c.rule_id.clone().into(),
                c.created_at.into(),
            ]
        })
        .collect();
    insert_rows(conn, "conflicts", &CONFLICT_COLUMNS, &rows).await
}

fn conflict_from_row(r: &impl Cols) -> R<ConflictRow> {
    Ok(ConflictRow {
        id: r.uuid("id")?,
        case_id: r.uuid("case_id")?,
        zone_id: r.uuid("zone_id")?,
        op_id: r.uuid("op_id")?,
        user_id: r.uuid("user_id")?,
        field: r.text("field")?,
        base_value: r.text("base_value")?,
        server_value: r.text("server_value")?,
        incoming_value: r.text("incoming_value")?,
        resolution: r.text("resolution")?,
        rule_id: r.text("rule_id")?,
        created_at: r.int("created_at")?,
    })
}

/// The conflicts recorded on these cases, read as JSON ([`json_rows`]).
pub async fn conflicts_of(reader: &mut Reader<'_>, ids: &[Uuid]) -> R<Vec<ConflictRow>> {
    let cols = CONFLICT_COLUMNS.map(Col::Exact);
    // By case first: the `conflicts_case` index serves it, where `ORDER BY id` alone had
    // PostgreSQL walk every conflict in id order and filter. Each case's stay in id order.
    let from = ("conflicts WHERE case_id IN ({})", "case_id, id");
    json_rows::fetch_in(reader, &cols, from, ids, conflict_from_row).await
}

pub async fn conflict<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
) -> R<Option<ConflictRow>> {
    let sql = format!(
        "SELECT {} FROM conflicts WHERE id = $1",
        CONFLICT_COLUMNS.join(", ")
    );
    sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(e)
        .await?
        .as_ref()
        .map(conflict_from_row)
        .transpose()
}

/// Conflicts in some zones, newest first, without those of cases hidden from `reader`.
pub async fn conflicts_in<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zones: Option<&[Uuid]>,
    before: Option<Uuid>,
    limit: i64,
    reader: Option<Uuid>,
) -> R<Vec<ConflictRow>> {
    let mut sql = format!(
        "SELECT {} FROM conflicts WHERE ($2 IS NULL OR id < $2)",
        CONFLICT_COLUMNS.join(", ")
    );
    let Some(scope) = scope_sql(3, zones, reader, "conflicts.case_id") else {
        return Ok(vec![]);
    };
    sql.push_str(&scope);
    sql.push_str(" ORDER BY id DESC LIMIT $1");
    let q = sqlx::query(&sql)
        .bind(limit)
        .bind(before.map(|b| b.to_string()));
    bind_scope(q, zones, reader)
        .fetch_all(e)
        .await?
        .iter()
        .map(conflict_from_row)
        .collect()
}
