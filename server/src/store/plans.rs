//! Inspection plans, their assignees, the sealed plans' log and the rounds made for them.

use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

type R<T> = Result<T, sqlx::Error>;
use crate::ledger::log::{Leaf, Log};
use crate::seal::PlanReceipt;

/// A plan as stored, decoded: a bad id or JSON column is an error, never a default.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub id: Uuid,
    pub name: String,
    /// `periodic` or `unannounced`.
    pub kind: String,
    pub rrule: String,
    pub dtstart: String,
    pub time_zone: String,
    pub window_minutes: i64,
    pub zones: Vec<Uuid>,
    pub categories: Vec<String>,
    /// The checklist template's JSON text, as stored (the commitment hashes this text).
    pub checklist: String,
    pub assignees: Vec<Uuid>,
    pub created_by: Uuid,
    pub created_at: i64,
    pub cancelled_at: Option<i64>,
    pub revealed_at: Option<i64>,
    pub revealed_by: Option<Uuid>,
    pub nonce: Option<String>,
    pub commitment: Option<String>,
    pub version: i64,
}

fn decode(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("plans.{what}: {e}").into())
}

fn uuid_col(r: &sqlx::any::AnyRow, col: &str) -> R<Uuid> {
    Uuid::parse_str(&r.try_get::<String, _>(col)?).map_err(|e| decode(col, e))
}

fn json_col<T: serde::de::DeserializeOwned>(r: &sqlx::any::AnyRow, col: &str) -> R<T> {
    serde_json::from_str(&r.try_get::<String, _>(col)?).map_err(|e| decode(col, e))
}

const PLAN_COLUMNS: &str = "id, name, kind, rrule, dtstart, time_zone, window_minutes, zones, \
     categories, checklist, created_by, created_at, cancelled_at, revealed_at, revealed_by, \
     nonce, commitment, version";

fn plan_from_row(r: &sqlx::any::AnyRow, assignees: Vec<Uuid>) -> R<PlanRow> {
    let kind: String = r.try_get("kind")?;
    if kind != "periodic" && kind != "unannounced" {
        return Err(decode("kind", kind));
    }
    Ok(PlanRow {
        id: uuid_col(r, "id")?,
        name: r.try_get("name")?,
        kind,
        rrule: r.try_get("rrule")?,
        dtstart: r.try_get("dtstart")?,
        time_zone: r.try_get("time_zone")?,
        window_minutes: r.try_get("window_minutes")?,
        zones: json_col(r, "zones")?,
        categories: json_col(r, "categories")?,
        checklist: r.try_get("checklist")?,
        assignees,
        created_by: uuid_col(r, "created_by")?,
        created_at: r.try_get("created_at")?,
        cancelled_at: r.try_get("cancelled_at")?,
        revealed_at: r.try_get("revealed_at")?,
        revealed_by: r
            .try_get::<Option<String>, _>("revealed_by")?
            .map(|s| Uuid::parse_str(&s).map_err(|e| decode("revealed_by", e)))
            .transpose()?,
        nonce: r.try_get("nonce")?,
        commitment: r.try_get("commitment")?,
        version: r.try_get("version")?,
    })
}

/// Stores a new plan and its assignees.
pub async fn insert(conn: &mut AnyConnection, p: &PlanRow) -> R<()> {
    let json = |v: &dyn erased_json::Json| v.text();
    sqlx::query(&format!(
        "INSERT INTO plans ({PLAN_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(p.id.to_string())
    .bind(&p.name)
    .bind(&p.kind)
    .bind(&p.rrule)
    .bind(&p.dtstart)
    .bind(&p.time_zone)
    .bind(p.window_minutes)
    .bind(json(&p.zones))
    .bind(json(&p.categories))
    .bind(&p.checklist)
    .bind(p.created_by.to_string())
    .bind(p.created_at)
    .bind(p.cancelled_at)
    .bind(p.revealed_at)
    .bind(p.revealed_by.map(|u| u.to_string()))
    .bind(&p.nonce)
    .bind(&p.commitment)
    .bind(p.version)
    .execute(&mut *conn)
    .await?;
    for user in &p.assignees {
        sqlx::query("INSERT INTO plan_assignees (plan_id, user_id) VALUES ($1, $2)")
            .bind(p.id.to_string())
            .bind(user.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Serialising the list columns; a `Vec` of ids or strings always serialises.
mod erased_json {
    pub trait Json {
        fn text(&self) -> String;
    }
    impl<T: serde::Serialize> Json for Vec<T> {
        fn text(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "[]".into())
        }
    }
}

async fn assignees_of(conn: &mut AnyConnection, id: &str) -> R<Vec<Uuid>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM plan_assignees WHERE plan_id = $1 ORDER BY user_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|s| Uuid::parse_str(s).map_err(|e| decode("plan_assignees.user_id", e)))
        .collect()
}

/// The plan `id`, with its assignees; `suffix` is `""` or the backend's row lock
/// (`Backend::for_update`).
pub async fn load(conn: &mut AnyConnection, id: Uuid, suffix: &str) -> R<Option<PlanRow>> {
    let row = sqlx::query(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1{suffix}"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let assignees = assignees_of(conn, &id.to_string()).await?;
            plan_from_row(&r, assignees).map(Some)
        }
    }
}

/// Every plan, newest first; with `assigned_to`, only the plans that user is assigned to.
pub async fn list(conn: &mut AnyConnection, assigned_to: Option<Uuid>) -> R<Vec<PlanRow>> {
    let rows = match assigned_to {
        None => {
            sqlx::query(&format!(
                "SELECT {PLAN_COLUMNS} FROM plans ORDER BY created_at DESC, id"
            ))
            .fetch_all(&mut *conn)
            .await?
        }
        Some(u) => {
            sqlx::query(&format!(
                "SELECT {PLAN_COLUMNS} FROM plans WHERE id IN \
                 (SELECT plan_id FROM plan_assignees WHERE user_id = $1) \
                 ORDER BY created_at DESC, id"
            ))
            .bind(u.to_string())
            .fetch_all(&mut *conn)
            .await?
        }
    };
    // Every assignment at once, rather than a query per plan.
    let pairs = sqlx::query("SELECT plan_id, user_id FROM plan_assignees ORDER BY user_id")
        .fetch_all(&mut *conn)
        .await?;
    let mut assignees: std::collections::HashMap<String, Vec<Uuid>> = Default::default();
    for p in &pairs {
        assignees
            .entry(p.try_get("plan_id")?)
            .or_default()
            .push(uuid_col(p, "user_id")?);
    }
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            plan_from_row(r, assignees.remove(&id).unwrap_or_default())
        })
        .collect()
}

/// Marks the plan cancelled (no occurrence after `at`).
pub async fn cancel(conn: &mut AnyConnection, id: Uuid, at: i64) -> R<()> {
    sqlx::query(
        "UPDATE plans SET cancelled_at = $1, version = version + 1 \
         WHERE id = $2 AND cancelled_at IS NULL",
    )
    .bind(at)
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the plan revealed, and each of its rounds not yet revealed: the ids of those rounds.
pub async fn reveal(conn: &mut AnyConnection, id: Uuid, by: Option<Uuid>, at: i64) -> R<Vec<Uuid>> {
    sqlx::query(
        "UPDATE plans SET revealed_at = $1, revealed_by = $2, version = version + 1 \
         WHERE id = $3 AND revealed_at IS NULL",
    )
    .bind(at)
    .bind(by.map(|u| u.to_string()))
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    let rounds: Vec<String> = sqlx::query_scalar(
        "UPDATE rounds SET revealed_at = $1 WHERE plan_id = $2 AND revealed_at IS NULL \
         RETURNING id",
    )
    .bind(at)
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    parse_ids(&rounds, "rounds.id")
}

/// What a period close ending at `before`, made at `now`, may reveal: the unannounced rounds
/// started before it, not revealed and finished (or started a day before `now` and never
/// finished: a phone that lost its round), with a plan or without; and the unrevealed plans
/// those rounds were made for.
pub async fn unrevealed_before(
    conn: &mut AnyConnection,
    before: i64,
    now: i64,
) -> R<(Vec<Uuid>, Vec<Uuid>)> {
    const DUE: &str = "r.kind = 'unannounced' AND r.revealed_at IS NULL AND r.started_at < $1 \
         AND (r.finished_at IS NOT NULL OR r.started_at < $2)";
    let plans: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT p.id FROM plans p JOIN rounds r ON r.plan_id = p.id \
         WHERE p.revealed_at IS NULL AND {DUE} ORDER BY p.id"
    ))
    .bind(before)
    .bind(now - 86_400_000)
    .fetch_all(&mut *conn)
    .await?;
    let rounds: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT r.id FROM rounds r WHERE {DUE} ORDER BY r.id"
    ))
    .bind(before)
    .bind(now - 86_400_000)
    .fetch_all(&mut *conn)
    .await?;
    Ok((
        parse_ids(&plans, "plans.id")?,
        parse_ids(&rounds, "rounds.id")?,
    ))
}

/// Marks the rounds `ids` revealed at `at`.
pub async fn reveal_rounds(conn: &mut AnyConnection, ids: &[Uuid], at: i64) -> R<()> {
    // In id order, one statement per chunk.
    let mut ids = ids.to_vec();
    ids.sort();
    for chunk in ids.chunks(500) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "UPDATE rounds SET revealed_at = $1 WHERE revealed_at IS NULL AND id IN ({})",
            list.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(at);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A round's kind, zone and reveal, as a reveal checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundState {
    pub zone_id: Uuid,
    pub kind: String,
    pub revealed_at: Option<i64>,
}

/// Round `id`'s [`RoundState`]; `suffix` is `""` or the backend's row lock.
pub async fn round_state(
    conn: &mut AnyConnection,
    id: Uuid,
    suffix: &str,
) -> R<Option<RoundState>> {
    let row = sqlx::query(&format!(
        "SELECT zone_id, kind, revealed_at FROM rounds WHERE id = $1{suffix}"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(RoundState {
            zone_id: uuid_col(&r, "zone_id")?,
            kind: r.try_get("kind")?,
            revealed_at: r.try_get("revealed_at")?,
        })
    })
    .transpose()
}

/// The ids of case `case`'s conflicts.
pub async fn conflicts_of_case(conn: &mut AnyConnection, case: Uuid) -> R<Vec<Uuid>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM conflicts WHERE case_id = $1 ORDER BY id")
            .bind(case.to_string())
            .fetch_all(&mut *conn)
            .await?;
    parse_ids(&ids, "conflicts.id")
}

fn parse_ids(ids: &[String], what: &str) -> R<Vec<Uuid>> {
    ids.iter()
        .map(|s| Uuid::parse_str(s).map_err(|e| decode(what, e)))
        .collect()
}

/// The cases raised on the rounds `rounds`, with their zones.
pub async fn cases_of_rounds(conn: &mut AnyConnection, rounds: &[Uuid]) -> R<Vec<(Uuid, Uuid)>> {
    let mut out = Vec::new();
    for round in rounds {
        let rows = sqlx::query("SELECT id, zone_id FROM cases WHERE round_id = $1 ORDER BY id")
            .bind(round.to_string())
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            out.push((uuid_col(&r, "id")?, uuid_col(&r, "zone_id")?));
        }
    }
    Ok(out)
}

/// A round made for a plan, as its plan's page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRound {
    pub id: Uuid,
    pub zone_id: Uuid,
    pub user_id: Uuid,
    pub occurrence_at: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub score_permille: Option<i64>,
    pub items_failed: Option<i64>,
    pub track_points: Option<i64>,
}

/// The rounds made for plan `id`, by start.
pub async fn rounds_of(conn: &mut AnyConnection, id: Uuid) -> R<Vec<PlanRound>> {
    let rows = sqlx::query(
        "SELECT id, zone_id, user_id, occurrence_at, started_at, finished_at, score_permille, \
         items_failed, track_points FROM rounds WHERE plan_id = $1 ORDER BY started_at, id",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PlanRound {
                id: uuid_col(r, "id")?,
                zone_id: uuid_col(r, "zone_id")?,
                user_id: uuid_col(r, "user_id")?,
                occurrence_at: r.try_get("occurrence_at")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
                score_permille: r.try_get("score_permille")?,
                items_failed: r.try_get("items_failed")?,
                track_points: r.try_get("track_points")?,
            })
        })
        .collect()
}

/// The earliest finding on plan `id`'s rounds: a round started, a case captured or received.
pub async fn first_finding_at(conn: &mut AnyConnection, id: Uuid) -> R<Option<i64>> {
    let rounds: Option<i64> =
        sqlx::query_scalar("SELECT MIN(started_at) FROM rounds WHERE plan_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *conn)
            .await?;
    let cases: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(CASE WHEN captured_at < received_at THEN captured_at ELSE received_at END) \
         FROM cases WHERE round_id IN (SELECT id FROM rounds WHERE plan_id = $1)",
    )
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    Ok(match (rounds, cases) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Appends `commitment` of plan `plan` to the plan log and signs the head after it. Appends
/// are serialised on the `plan_log` counter row; the tree is rebuilt from every leaf (plans
/// number in the hundreds a year).
pub async fn append_log(
    conn: &mut AnyConnection,
    plan: Uuid,
    commitment: &str,
    at: i64,
    keys: &impl crate::ledger::log::CheckpointKeys,
) -> R<PlanReceipt> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'plan_log' RETURNING value",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut leaves = leaves(&mut *conn, seq - 1).await?;
    leaves.push(
        crate::ledger::log::leaf(commitment).ok_or_else(|| decode("commitment", commitment))?,
    );
    let log = Log::from_leaves(leaves);
    let (kid, key) = keys.signer();
    let receipt = PlanReceipt::issue(seq, &log.root(), at, kid, key);
    sqlx::query(
        "INSERT INTO plan_log (seq, plan_id, commitment, committed_at, root_hash, key_id, \
         public_key, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(plan.to_string())
    .bind(commitment)
    .bind(at)
    .bind(&receipt.root_hash)
    .bind(&receipt.key_id)
    .bind(&receipt.public_key)
    .bind(&receipt.signature)
    .execute(&mut *conn)
    .await?;
    Ok(receipt)
}

/// The first `count` leaves of the plan log, in order.
pub async fn leaves<'c, E: Executor<'c, Database = Any>>(e: E, count: i64) -> R<Vec<Leaf>> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT commitment FROM plan_log WHERE seq <= $1 ORDER BY seq")
            .bind(count)
            .fetch_all(e)
            .await?;
    rows.iter()
        .map(|h| crate::ledger::log::leaf(h).ok_or_else(|| decode("plan_log.commitment", h)))
        .collect()
}

/// Plan `plan`'s entry in the log: its commitment as appended and its receipt.
pub async fn log_entry(conn: &mut AnyConnection, plan: Uuid) -> R<Option<(String, PlanReceipt)>> {
    let row = sqlx::query(
        "SELECT seq, commitment, committed_at, root_hash, key_id, public_key, signature \
         FROM plan_log WHERE plan_id = $1",
    )
    .bind(plan.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("commitment")?,
            PlanReceipt {
                tree_size: r.try_get("seq")?,
                root_hash: r.try_get("root_hash")?,
                timestamp: r.try_get("committed_at")?,
                key_id: r.try_get("key_id")?,
                public_key: r.try_get("public_key")?,
                signature: r.try_get("signature")?,
            },
        ))
    })
    .transpose()
}

/// A round's recorded track, as the coverage of its zone counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackRow {
    pub round_id: Uuid,
    pub user_id: Uuid,
    /// `routine`, `periodic` or `unannounced`.
    pub kind: String,
    pub started_at: i64,
    /// A Google encoded polyline (precision 1e5, latitude first).
    pub track: String,
}

/// The tracks of the rounds made in `zone` that started in `[from, to)`, by start, without the
/// rounds hidden from `reader` (unannounced, not revealed: see
/// [`crate::store::cases::hidden_round_sql`]); `None` reads every round.
pub async fn tracks_in_zone(
    conn: &mut AnyConnection,
    zone: Uuid,
    from: i64,
    to: i64,
    reader: Option<Uuid>,
) -> R<Vec<TrackRow>> {
    let hidden = match reader {
        Some(_) => format!(
            "AND NOT {}",
            crate::store::cases::hidden_round_sql("r.id", "$4")
        ),
        None => String::new(),
    };
    let sql = format!(
        "SELECT r.id, r.user_id, r.kind, r.started_at, r.track FROM rounds r \
         WHERE r.zone_id = $1 AND r.started_at >= $2 AND r.started_at < $3 \
         AND r.track IS NOT NULL {hidden} ORDER BY r.started_at, r.id"
    );
    let mut q = sqlx::query(&sql).bind(zone.to_string()).bind(from).bind(to);
    if let Some(reader) = reader {
        q = q.bind(reader.to_string());
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok(TrackRow {
                round_id: uuid_col(r, "id")?,
                user_id: uuid_col(r, "user_id")?,
                kind: r.try_get("kind")?,
                started_at: r.try_get("started_at")?,
                track: r.try_get("track")?,
            })
        })
        .collect()
}

/// Whether any plan not cancelled is assigned to `user`.
pub async fn has_assigned<'c, E: Executor<'c, Database = Any>>(e: E, user: Uuid) -> R<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM plan_assignees a JOIN plans p ON p.id = a.plan_id \
         WHERE a.user_id = $1 AND p.cancelled_at IS NULL",
    )
    .bind(user.to_string())
    .fetch_one(e)
    .await?;
    Ok(n > 0)
}

/// When plan `plan`'s rows were last written to the change log, if they are still there.
pub async fn last_written(conn: &mut AnyConnection, plan: Uuid) -> R<Option<i64>> {
    sqlx::query_scalar("SELECT MAX(at) FROM changes WHERE entity = 'plan' AND entity_id = $1")
        .bind(plan.to_string())
        .fetch_one(&mut *conn)
        .await
}
