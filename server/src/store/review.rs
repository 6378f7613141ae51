//! Review: the workflow columns of cases, dispatch assignments, evidence completeness, the
//! review queue and the roster as it stood at a given time.

use std::collections::HashMap;

use gridline_sync::case::CaseState;
use gridline_sync::Role;
use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::json_rows::Cols;
use super::{id_list, placeholders, Backend, Db, Val, WriteTx};

type R<T> = Result<T, sqlx::Error>;

/// The workflow columns of a case (see `0004_ledger.sql`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workflow {
    pub duplicate_of: Option<Uuid>,
    pub filed_at: Option<i64>,
    pub dispatched_at: Option<i64>,
    pub deadline_at: Option<i64>,
    /// The time limit in working time (ms) when the case's category counts working time.
    pub time_limit_working_ms: Option<i64>,
    pub dispatch_target: Option<String>,
    pub rework_count: i64,
    pub closed_at: Option<i64>,
}

const WORKFLOW_COLUMNS: &str =
    "id, duplicate_of, filed_at, dispatched_at, deadline_at, time_limit_working_ms, \
     dispatch_target, rework_count, closed_at";

fn workflow_from_row(r: &sqlx::any::AnyRow) -> R<Workflow> {
    Ok(Workflow {
        duplicate_of: r.opt_uuid("duplicate_of")?,
        filed_at: r.try_get("filed_at")?,
        dispatched_at: r.try_get("dispatched_at")?,
        deadline_at: r.try_get("deadline_at")?,
        time_limit_working_ms: r.try_get("time_limit_working_ms")?,
        dispatch_target: r.try_get("dispatch_target")?,
        rework_count: r.try_get("rework_count")?,
        closed_at: r.try_get("closed_at")?,
    })
}

/// Locks case rows for the rest of the transaction on PostgreSQL (SQLite serialises writers),
/// in id order so that two writers never wait on each other crosswise. Every writer of a case
/// takes this before reading it, so none overwrites another's version.
pub async fn lock_cases(tx: &mut WriteTx, ids: &[Uuid]) -> R<()> {
    if tx.backend != Backend::Postgres || ids.is_empty() {
        return Ok(());
    }
    let mut sorted = ids.to_vec();
    sorted.sort();
    for chunk in sorted.chunks(500) {
        let sql = format!(
            "SELECT id FROM cases WHERE id IN ({}) ORDER BY id FOR UPDATE",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        q.fetch_all(tx.conn()).await?;
    }
    Ok(())
}

pub async fn workflows(conn: &mut AnyConnection, ids: &[Uuid]) -> R<HashMap<Uuid, Workflow>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT {WORKFLOW_COLUMNS} FROM cases WHERE id IN ({})",
            id_list(conn, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert(r.uuid("id")?, workflow_from_row(&r)?);
        }
    }
    Ok(out)
}

pub async fn set_workflow(conn: &mut AnyConnection, id: Uuid, w: &Workflow) -> R<()> {
    sqlx::query(
        "UPDATE cases SET duplicate_of = $1, filed_at = $2, dispatched_at = $3, deadline_at = $4, \
         dispatch_target = $5, rework_count = $6, closed_at = $7, time_limit_working_ms = $9 \
         WHERE id = $8",
    )
    .bind(w.duplicate_of.map(|d| d.to_string()))
    .bind(w.filed_at)
    .bind(w.dispatched_at)
    .bind(w.deadline_at)
    .bind(w.dispatch_target.clone())
    .bind(w.rework_count)
    .bind(w.closed_at)
    .bind(id.to_string())
    .bind(w.time_limit_working_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets `cases.locked_at`: an approved deduction froze the evidence and ledger fields.
pub async fn lock_evidence(conn: &mut AnyConnection, id: Uuid, at: i64) -> R<()> {
    sqlx::query("UPDATE cases SET locked_at = $1 WHERE id = $2 AND locked_at IS NULL")
        .bind(at)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

// ---- assignments ------------------------------------------------------------------------------

/// Replaces who a case is dispatched to.
pub async fn assign(
    conn: &mut AnyConnection,
    case_id: Uuid,
    people: &[(Uuid, Role)],
    at: i64,
) -> R<()> {
    sqlx::query("DELETE FROM case_assignments WHERE case_id = $1")
        .bind(case_id.to_string())
        .execute(&mut *conn)
        .await?;
    for (user, role) in people {
        sqlx::query(
            "INSERT INTO case_assignments (case_id, user_id, role, assigned_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(case_id.to_string())
        .bind(user.to_string())
        .bind(role.as_str())
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Who each of these cases is dispatched to now.
pub async fn assignees(conn: &mut AnyConnection, ids: &[Uuid]) -> R<HashMap<Uuid, Vec<Uuid>>> {
    let mut out: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT case_id, user_id FROM case_assignments WHERE case_id IN ({}) ORDER BY user_id",
            id_list(conn, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.entry(r.uuid("case_id")?)
                .or_default()
                .push(r.uuid("user_id")?);
        }
    }
    Ok(out)
}

pub use crate::model::RosterPerson;

/// The people holding one of `roles` for `zone` at `at`. With `include_all_zones`, also those
/// whose assignment covers every zone (the emergency squad).
pub async fn roster_at<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zone: Uuid,
    roles: &[Role],
    include_all_zones: bool,
    at: i64,
) -> R<Vec<RosterPerson>> {
    let zone_cond = if include_all_zones {
        "(r.zone_id = $1 OR r.zone_id IS NULL)"
    } else {
        "r.zone_id = $1"
    };
    let sql = format!(
        "SELECT r.user_id, u.username, r.role FROM roster r JOIN users u ON u.id = r.user_id \
         WHERE {zone_cond} AND r.valid_from <= $2 AND (r.valid_to IS NULL OR r.valid_to > $2) \
         AND u.disabled_at IS NULL AND r.role IN ({}) ORDER BY r.role, u.username",
        placeholders(3, roles.len())
    );
    let mut q = sqlx::query(&sql).bind(zone.to_string()).bind(at);
    for role in roles {
        q = q.bind(role.as_str());
    }
    let rows = q.fetch_all(e).await?;
    rows.iter()
        .map(|r| {
            Ok(RosterPerson {
                user_id: r.uuid("user_id")?,
                username: r.try_get("username")?,
                role: r.try_get("role")?,
            })
        })
        .collect()
}

// ---- evidence ---------------------------------------------------------------------------------

/// The evidence of a case: every declared photo hash (sorted) and whether the evidence is
/// complete — at least one photo declared, and every declared photo received and verified.
///
/// This is the one place that reads the `photos` table (from the photos migration, 0003).
pub async fn evidence(conn: &mut AnyConnection, case_id: Uuid) -> R<(Vec<String>, bool)> {
    let rows = sqlx::query(
        "SELECT cp.sha256, p.status FROM case_photos cp LEFT JOIN photos p ON p.sha256 = cp.sha256 \
         WHERE cp.case_id = $1 ORDER BY cp.sha256",
    )
    .bind(case_id.to_string())
    .fetch_all(conn)
    .await?;
    let mut hashes = Vec::with_capacity(rows.len());
    let mut complete = !rows.is_empty();
    for r in rows {
        hashes.push(r.try_get::<String, _>("sha256")?);
        complete &= r.try_get::<Option<String>, _>("status")?.as_deref() == Some("verified");
    }
    Ok((hashes, complete))
}

/// Verification status of each photo hash of these cases (`None`: not received yet), and how
/// many cases declare it.
pub async fn photo_status(
    conn: &mut AnyConnection,
    ids: &[Uuid],
) -> R<HashMap<String, PhotoState>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT cp.sha256, p.status, p.derivatives, \
               (SELECT COUNT(*) FROM case_photos o WHERE o.sha256 = cp.sha256) AS declaring_cases \
             FROM case_photos cp \
             LEFT JOIN photos p ON p.sha256 = cp.sha256 WHERE cp.case_id IN ({})",
            id_list(conn, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            let state = PhotoState {
                status: r.try_get("status")?,
                derivatives: r.try_get("derivatives")?,
                declaring_cases: r.try_get("declaring_cases")?,
            };
            out.insert(r.try_get("sha256")?, state);
        }
    }
    Ok(out)
}

/// A declared photo as the review queue shows it; both `None` while its bytes have not arrived.
#[derive(Debug, Clone, Default)]
pub struct PhotoState {
    pub status: Option<String>,
    pub derivatives: Option<String>,
    /// How many cases declare the photo (more than one: `photo_reused`).
    pub declaring_cases: i64,
}

/// The SQL condition "the evidence of `cases` is complete", for the queue filter.
const EVIDENCE_COMPLETE: &str =
    "(EXISTS (SELECT 1 FROM case_photos cp WHERE cp.case_id = cases.id) \
     AND NOT EXISTS (SELECT 1 FROM case_photos cp LEFT JOIN photos p ON p.sha256 = cp.sha256 \
     WHERE cp.case_id = cases.id AND (p.status IS NULL OR p.status <> 'verified')))";

// ---- the review queue -------------------------------------------------------------------------

/// Filters of the review queue; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub zones: Option<Vec<Uuid>>,
    pub states: Option<Vec<String>>,
    pub category_codes: Option<Vec<String>>,
    pub source: Option<String>,
    pub evidence_complete: Option<bool>,
    /// Cases carrying this integrity flag; `Some("*")`: any flag.
    pub flag: Option<String>,
    pub flagged: Option<bool>,
    pub overdue: Option<bool>,
    pub now: i64,
    /// Keyset: strictly after this `(received_at, id)`.
    pub after: Option<(i64, Uuid)>,
    pub limit: i64,
}

/// Case ids of one page of the queue, oldest received first (the supervisor works the backlog
/// in arrival order), with their `received_at` for the next cursor.
///
/// The open backlog is a few percent of all cases, spread over years of closed ones, so one
/// `state IN (…) … ORDER BY received_at` would either sort every match or walk the whole
/// table in time order. Instead each state is its own branch, `state = $k AND … ORDER BY
/// received_at, id LIMIT n`, which an index leading with the filter column and the state
/// (`0005_queue_indexes.sql`) answers in order without sorting, and the branches are merged.
/// The cursor is a row-value comparison, which both databases use as an index range, so a
/// deep page costs what the first one does.
///
/// With no zone, category or source to lead, a branch reads `cases_queue`, which SQLite is
/// told by name: once `ANALYZE` has sampled the cases, SQLite's planner may skip-scan
/// `cases_zone_queue` or `cases_source_queue` instead for the largest state and sort every
/// later case of it, so that a deep page costs far more than a first one.
pub async fn queue(db: &Db, f: &QueueFilter) -> R<Vec<(Uuid, i64)>> {
    let Some((sql, binds)) = queue_statement(db.backend, f) else {
        return Ok(vec![]);
    };
    let mut q = sqlx::query(&sql);
    for v in binds {
        q = match v {
            Val::Text(t) => q.bind(t),
            Val::Int(i) => q.bind(i),
            Val::Real(r) => q.bind(r),
        };
    }
    let rows = q.fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| Ok((r.uuid("id")?, r.try_get("received_at")?)))
        .collect()
}

/// The statement [`queue`] runs and its parameters; `None` when nothing can match (an empty
/// list of zones or categories). Public so that a test can ask a database for its plan.
pub fn queue_statement(backend: Backend, f: &QueueFilter) -> Option<(String, Vec<Val>)> {
    let unled = f.zones.is_none() && f.category_codes.is_none() && f.source.is_none();
    let table = match backend {
        Backend::Sqlite if unled => "cases INDEXED BY cases_queue",
        _ => "cases",
    };
    let mut conds: Vec<String> = Vec::new();
    let mut binds: Vec<Val> = Vec::new();
    let arg = |binds: &mut Vec<Val>, v: Val| {
        binds.push(v);
        format!("${}", binds.len())
    };
    let list = |conds: &mut Vec<String>, binds: &mut Vec<Val>, col: &str, values: Vec<String>| {
        let marks: Vec<String> = values.into_iter().map(|v| arg(binds, v.into())).collect();
        conds.push(format!("{col} IN ({})", marks.join(",")));
    };
    if let Some(z) = &f.zones {
        if z.is_empty() {
            return None;
        }
        list(
            &mut conds,
            &mut binds,
            "zone_id",
            z.iter().map(Uuid::to_string).collect(),
        );
    }
    if let Some(c) = &f.category_codes {
        if c.is_empty() {
            return None;
        }
        list(&mut conds, &mut binds, "category_code", c.clone());
    }
    if let Some(source) = &f.source {
        list(&mut conds, &mut binds, "source", vec![source.clone()]);
    }
    match f.evidence_complete {
        Some(true) => conds.push(EVIDENCE_COMPLETE.to_owned()),
        Some(false) => conds.push(format!("NOT {EVIDENCE_COMPLETE}")),
        None => {}
    }
    if let Some(flag) = &f.flag {
        // `flags` is a JSON array of strings: look for `"flag"` literally. Flag names contain
        // `_`, LIKE's one-character wildcard, so LIKE's wildcards are escaped, not dropped.
        let literal = flag
            .replace('"', "")
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let mark = arg(&mut binds, format!("%\"{literal}\"%").into());
        conds.push(format!("flags LIKE {mark} ESCAPE '\\'"));
    }
    match f.flagged {
        Some(true) => conds.push("flags <> '[]'".to_owned()),
        Some(false) => conds.push("flags = '[]'".to_owned()),
        None => {}
    }
    if let Some((at, id)) = f.after {
        let at = arg(&mut binds, at.into());
        let id = arg(&mut binds, id.into());
        conds.push(format!("(received_at, id) > ({at}, {id})"));
    }
    let limit = arg(&mut binds, f.limit.into());
    let mut states: Vec<String> = match &f.states {
        Some(s) => s.clone(),
        None => CaseState::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
    };
    states.sort();
    states.dedup();
    let mut branches = Vec::with_capacity(states.len());
    let mut past_deadline: Option<String> = None;
    for state in states {
        // Overdue: dispatched or in progress with the deadline passed; the state decides
        // whether a branch can hold overdue cases at all.
        let can_be_overdue = state == "dispatched" || state == "in_progress";
        let deadline = match f.overdue {
            Some(overdue) if can_be_overdue => {
                let past = past_deadline
                    .get_or_insert_with(|| {
                        format!("deadline_at < {}", arg(&mut binds, f.now.into()))
                    })
                    .clone();
                Some(if overdue {
                    past
                } else {
                    format!("NOT ({past})")
                })
            }
            Some(true) => continue,
            _ => None,
        };
        let mark = arg(&mut binds, state.into());
        let mut cond = format!("state = {mark}");
        for c in conds.iter().chain(&deadline) {
            cond.push_str(" AND ");
            cond.push_str(c);
        }
        branches.push(format!(
            "SELECT * FROM (SELECT id, received_at FROM {table} WHERE {cond} \
             ORDER BY received_at, id LIMIT {limit}) AS s{}",
            branches.len()
        ));
    }
    if branches.is_empty() {
        return None;
    }
    let sql = format!(
        "SELECT id, received_at FROM ({}) AS q ORDER BY received_at, id LIMIT {limit}",
        branches.join(" UNION ALL ")
    );
    Some((sql, binds))
}

/// Taxonomy keys of a work category (for the queue's `work_category` filter).
pub async fn category_keys<'c, E: Executor<'c, Database = Any>>(
    e: E,
    work_category: &str,
) -> R<Vec<String>> {
    sqlx::query_scalar("SELECT key FROM taxonomy WHERE work_category = $1 ORDER BY key")
        .bind(work_category)
        .fetch_all(e)
        .await
}

/// Time limit and work category of a taxonomy entry.
pub async fn taxonomy_terms<'c, E: Executor<'c, Database = Any>>(
    e: E,
    key: &str,
) -> R<Option<(Option<crate::workdays::TimeLimit>, String)>> {
    use crate::workdays::TimeLimit;
    let row = sqlx::query(
        "SELECT time_limit_hours, time_limit_working_hours, time_limit_working_days, \
         work_category FROM taxonomy WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(e)
    .await?;
    row.map(|r| {
        let limit = r
            .try_get::<Option<i64>, _>("time_limit_working_days")?
            .map(TimeLimit::WorkingDays)
            .or(r
                .try_get::<Option<i64>, _>("time_limit_working_hours")?
                .map(TimeLimit::WorkingHours))
            .or(r
                .try_get::<Option<i64>, _>("time_limit_hours")?
                .map(TimeLimit::Hours));
        Ok((limit, r.try_get("work_category")?))
    })
    .transpose()
}

/// What the console's overview counts, over the zones given (`None`: all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverviewCounts {
    /// Reported or awaiting verification: waiting for a supervisor.
    pub awaiting: i64,
    /// Of those, with evidence not yet complete and verified.
    pub incomplete: i64,
    /// Open cases with integrity flags.
    pub flagged: i64,
    /// Dispatched or in progress past the deadline.
    pub overdue: i64,
}

pub async fn overview_counts<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zones: Option<&[Uuid]>,
    hidden_from: Option<Uuid>,
    now: i64,
) -> R<OverviewCounts> {
    let mut zone_cond = match zones {
        Some([]) => return Ok(OverviewCounts::default()),
        Some(z) => format!("zone_id IN ({})", placeholders(2, z.len())),
        None => "1 = 1".to_owned(),
    };
    // The cases of an unannounced inspection hidden from the reader are not counted: a count
    // that rose would tell of them. (A `Uuid` printed is hex and dashes: safe as a literal.)
    if let Some(reader) = hidden_from {
        zone_cond.push_str(&format!(
            " AND NOT {}",
            super::cases::hidden_case_sql("cases.id", &format!("'{reader}'"))
        ));
    }
    // Each count names the states it is about, so the index leading with the state
    // (`cases_queue`) takes it straight to the open cases instead of reading every case ever
    // closed; the evidence check runs on the awaiting ones only.
    let count = |states: &str, extra: &str, fields: &str| {
        format!("SELECT {fields} FROM cases WHERE state IN ({states}) {extra} AND {zone_cond}")
    };
    let awaiting = count(
        "'reported', 'pending_verification'",
        "",
        &format!(
            "COUNT(*) AS awaiting, COUNT(*) FILTER (WHERE NOT {EVIDENCE_COMPLETE}) AS incomplete"
        ),
    );
    let flagged = count(
        "'reported', 'pending_verification', 'filed', 'dispatched', 'in_progress'",
        "AND flags <> '[]'",
        "COUNT(*) AS flagged",
    );
    let overdue = count(
        "'dispatched', 'in_progress'",
        "AND deadline_at < $1",
        "COUNT(*) AS overdue",
    );
    let sql = format!(
        "SELECT a.awaiting, a.incomplete, f.flagged, o.overdue \
         FROM ({awaiting}) AS a, ({flagged}) AS f, ({overdue}) AS o"
    );
    let mut q = sqlx::query(&sql).bind(now);
    for z in zones.unwrap_or(&[]) {
        q = q.bind(z.to_string());
    }
    let r = q.fetch_one(e).await?;
    Ok(OverviewCounts {
        awaiting: r.try_get("awaiting")?,
        incomplete: r.try_get("incomplete")?,
        flagged: r.try_get("flagged")?,
        overdue: r.try_get("overdue")?,
    })
}

/// Dispatched or in-progress cases past their deadline at `now`, counted per zone (zones with
/// none are left out), most first; `zones` limits the count to a scope.
pub async fn overdue_by_zone<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zones: Option<&[Uuid]>,
    now: i64,
) -> R<Vec<(Uuid, i64)>> {
    let zone_cond = match zones {
        Some([]) => return Ok(Vec::new()),
        Some(z) => format!("zone_id IN ({})", placeholders(2, z.len())),
        None => "1 = 1".to_owned(),
    };
    let sql = format!(
        "SELECT zone_id, COUNT(*) AS n FROM cases \
         WHERE state IN ('dispatched', 'in_progress') AND deadline_at < $1 AND {zone_cond} \
         GROUP BY zone_id ORDER BY n DESC, zone_id"
    );
    let mut q = sqlx::query(&sql).bind(now);
    for z in zones.unwrap_or(&[]) {
        q = q.bind(z.to_string());
    }
    let rows = q.fetch_all(e).await?;
    rows.iter()
        .map(|r| Ok((r.uuid("zone_id")?, r.try_get("n")?)))
        .collect()
}

/// A case that another may duplicate, as a person picks it from a list.
#[derive(Debug, Clone)]
pub struct DuplicateCandidate {
    pub id: Uuid,
    pub description: String,
    pub state: CaseState,
    pub captured_at: i64,
    pub received_at: i64,
}

/// Cases that case `id` (of `zone` and `category`, received at `received_at`) may duplicate:
/// the same zone and category, not themselves set aside, received within `window_ms` either
/// side, nearest in time first. The category index serves it.
pub async fn duplicate_candidates<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
    zone: Uuid,
    category: &str,
    received_at: i64,
    window_ms: i64,
    limit: i64,
) -> R<Vec<DuplicateCandidate>> {
    let rows = sqlx::query(
        "SELECT id, description, state, captured_at, received_at FROM cases \
         WHERE category_code = $1 \
           AND state IN ('reported', 'pending_verification', 'filed', 'dispatched', 'in_progress', 'closed') \
           AND received_at BETWEEN $2 AND $3 AND zone_id = $4 AND id <> $5 \
         ORDER BY ABS(received_at - $6), id LIMIT $7",
    )
    .bind(category)
    .bind(received_at - window_ms)
    .bind(received_at + window_ms)
    .bind(zone.to_string())
    .bind(id.to_string())
    .bind(received_at)
    .bind(limit)
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            Ok(DuplicateCandidate {
                id: r.uuid("id")?,
                description: r.try_get("description")?,
                state: super::cases::decode_state(&state)?,
                captured_at: r.try_get("captured_at")?,
                received_at: r.try_get("received_at")?,
            })
        })
        .collect()
}
