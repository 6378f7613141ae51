//! The per-device operation log (exactly-once) and refused operations.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::json_rows::Cols;
use super::{insert_rows, parse_uuid, Val};

type R<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone)]
pub struct SyncOpRow {
    pub device_id: Uuid,
    pub seq: i64,
    pub op_id: Uuid,
    pub hash: String,
    pub op_type: String,
    pub status: gridline_sync::OpStatus,
    /// The `OpResult` JSON returned the first time, replayed verbatim on retries.
    pub result: String,
    pub queued_at: i64,
    pub received_at: i64,
    pub skew_ms: Option<i64>,
}

pub async fn insert_ops(conn: &mut AnyConnection, rows: &[SyncOpRow]) -> R<()> {
    let rows: Vec<Vec<Val>> = rows
        .iter()
        .map(|o| {
            vec![
                o.device_id.into(),
                o.seq.into(),
                o.op_id.into(),
                o.hash.clone().into(),
                o.op_type.clone().into(),
                o.status.as_str().into(),
                o.result.clone().into(),
                o.queued_at.into(),
                o.received_at.into(),
                o.skew_ms.into(),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "sync_ops",
        &[
            "device_id",
            "seq",
            "op_id",
            "hash",
            "op_type",
            "status",
            "result",
            "queued_at",
            "received_at",
            "skew_ms",
        ],
        &rows,
    )
    .await
}

/// Stored (hash, result JSON) of a device's operations with `from <= seq <= to`.
pub async fn stored_results(
    conn: &mut AnyConnection,
    device_id: Uuid,
    from: i64,
    to: i64,
) -> R<HashMap<i64, (String, String)>> {
    let rows = sqlx::query(
        "SELECT seq, hash, result FROM sync_ops WHERE device_id = $1 AND seq >= $2 AND seq <= $3",
    )
    .bind(device_id.to_string())
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(
            r.try_get::<i64, _>("seq")?,
            (r.try_get("hash")?, r.try_get("result")?),
        );
    }
    Ok(out)
}

/// Whether an operation id was already used by any device (an op id is global).
pub async fn op_ids_used(conn: &mut AnyConnection, ids: &[Uuid]) -> R<Vec<Uuid>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT op_id FROM sync_ops WHERE op_id IN ({})",
            super::id_list(conn, chunk.len())
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for id in q.fetch_all(&mut *conn).await? {
            out.push(parse_uuid("sync_ops.op_id", &id)?);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct RejectionRow {
    pub id: Uuid,
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub seq: i64,
    pub op_id: Option<Uuid>,
    pub op_text: String,
    pub sig: String,
    pub code: String,
    pub message: String,
    /// Whether the device's sequence moved past it (integrity failures are not acknowledged).
    pub acknowledged: bool,
    pub received_at: i64,
}

const REJECTION_COLUMNS: &[&str] = &[
    "id",
    "device_id",
    "user_id",
    "seq",
    "op_id",
    "op_text",
    "sig",
    "code",
    "message",
    "acknowledged",
    "received_at",
];

pub async fn insert_rejections(conn: &mut AnyConnection, rows: &[RejectionRow]) -> R<()> {
    let rows: Vec<Vec<Val>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.into(),
                r.device_id.into(),
                r.user_id.into(),
                r.seq.into(),
                r.op_id.into(),
                r.op_text.clone().into(),
                r.sig.clone().into(),
                r.code.clone().into(),
                r.message.clone().into(),
                (r.acknowledged as i64).into(),
                r.received_at.into(),
            ]
        })
        .collect();
    insert_rows(conn, "sync_rejections", REJECTION_COLUMNS, &rows).await
}

pub async fn rejections<'c, E: Executor<'c, Database = Any>>(
    e: E,
    before: Option<Uuid>,
    limit: i64,
) -> R<Vec<RejectionRow>> {
    let sql = format!(
        "SELECT {} FROM sync_rejections WHERE ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $1",
        REJECTION_COLUMNS.join(", ")
    );
    let rows = sqlx::query(&sql)
        .bind(limit)
        .bind(before.map(|b| b.to_string()))
        .fetch_all(e)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RejectionRow {
                id: r.uuid("id")?,
                device_id: r.uuid("device_id")?,
                user_id: r.uuid("user_id")?,
                seq: r.try_get("seq")?,
                op_id: r.opt_uuid("op_id")?,
                op_text: r.try_get("op_text")?,
                sig: r.try_get("sig")?,
                code: r.try_get("code")?,
                message: r.try_get("message")?,
                acknowledged: r.try_get::<i64, _>("acknowledged")? != 0,
                received_at: r.try_get("received_at")?,
            })
        })
        .collect()
}

/// Advances the device's sequence and chain head and records its clock skew.
pub async fn update_device(
    conn: &mut AnyConnection,
    device_id: Uuid,
    next_seq: i64,
    last_hash: &str,
    skew_ms: i64,
    at: i64,
    flagged: Option<&str>,
) -> R<()> {
    sqlx::query(
        "UPDATE devices SET next_seq = $1, last_hash = $2, clock_skew_ms = $3, last_sync_at = $4, \
         flagged = COALESCE($5, flagged) WHERE id = $6",
    )
    .bind(next_seq)
    .bind(last_hash)
    .bind(skew_ms)
    .bind(at)
    .bind(flagged)
    .bind(device_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

// ---- rounds -----------------------------------------------------------------------------------

/// A patrol round as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundRow {
    pub id: Uuid,
    pub zone_id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `round.start@2`: the plan and the occurrence (its start) the round was made for.
    pub plan_id: Option<Uuid>,
    pub occurrence_at: Option<i64>,
    /// `round.checklist@1`: `{"completed_at", "responses"}` as JSON, and its score.
    pub checklist: Option<String>,
    pub score_permille: Option<i64>,
    pub items_failed: Option<i64>,
    /// `round.track@1`: the encoded polyline and its point count.
    pub track: Option<String>,
    pub track_points: Option<i64>,
}

const ROUND_COLUMNS: &str = "id, zone_id, user_id, kind, started_at, finished_at, plan_id, \
     occurrence_at, checklist, score_permille, items_failed, track, track_points";

fn round_from_row(r: &sqlx::any::AnyRow) -> R<RoundRow> {
    Ok(RoundRow {
        id: r.uuid("id")?,
        zone_id: r.uuid("zone_id")?,
        user_id: r.uuid("user_id")?,
        kind: r.try_get("kind")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        plan_id: r.opt_uuid("plan_id")?,
        occurrence_at: r.try_get("occurrence_at")?,
        checklist: r.try_get("checklist")?,
        score_permille: r.try_get("score_permille")?,
        items_failed: r.try_get("items_failed")?,
        track: r.try_get("track")?,
        track_points: r.try_get("track_points")?,
    })
}

/// The stored rounds among these ids.
pub async fn rounds_many(conn: &mut AnyConnection, ids: &[Uuid]) -> R<Vec<RoundRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT {ROUND_COLUMNS} FROM rounds WHERE id IN ({})",
            super::id_list(conn, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.push(round_from_row(&r)?);
        }
    }
    Ok(out)
}

/// Stores a round started by `device` as it stands (finished, checklist and track too, when
/// the same batch recorded them).
/// A round of a plan already revealed is revealed from the start: the plan's visits are no
/// longer a secret.
pub async fn insert_round(conn: &mut AnyConnection, round: &RoundRow, device: Uuid) -> R<()> {
    sqlx::query(
        "INSERT INTO rounds (id, zone_id, user_id, device_id, kind, started_at, finished_at, \
         plan_id, occurrence_at, checklist, score_permille, items_failed, track, track_points, \
         revealed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         (SELECT p.revealed_at FROM plans p WHERE p.id = $8))",
    )
    .bind(round.id.to_string())
    .bind(round.zone_id.to_string())
    .bind(round.user_id.to_string())
    .bind(device.to_string())
    .bind(&round.kind)
    .bind(round.started_at)
    .bind(round.finished_at)
    .bind(round.plan_id.map(|p| p.to_string()))
    .bind(round.occurrence_at)
    .bind(&round.checklist)
    .bind(round.score_permille)
    .bind(round.items_failed)
    .bind(&round.track)
    .bind(round.track_points)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a stored round's checklist (with its score) and track where it has none yet: each
/// is written once (`round.checklist@1`, `round.track@1`).
pub async fn record_round_results(conn: &mut AnyConnection, round: &RoundRow) -> R<()> {
    if round.checklist.is_some() {
        sqlx::query(
            "UPDATE rounds SET checklist = $1, score_permille = $2, items_failed = $3 \
             WHERE id = $4 AND checklist IS NULL",
        )
        .bind(&round.checklist)
        .bind(round.score_permille)
        .bind(round.items_failed)
        .bind(round.id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    if round.track.is_some() {
        sqlx::query(
            "UPDATE rounds SET track = $1, track_points = $2 WHERE id = $3 AND track IS NULL",
        )
        .bind(&round.track)
        .bind(round.track_points)
        .bind(round.id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn finish_round(conn: &mut AnyConnection, id: Uuid, at: i64) -> R<()> {
    sqlx::query("UPDATE rounds SET finished_at = $1 WHERE id = $2 AND finished_at IS NULL")
        .bind(at)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// A round as phones pull it; unknown ids or kinds in the row are decode errors.
pub async fn round_view<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
) -> R<Option<crate::model::RoundView>> {
    let row = sqlx::query(&format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await?;
    let decode = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
    let id_col = |r: &sqlx::any::AnyRow, col: &str| -> R<Uuid> {
        Uuid::parse_str(&r.try_get::<String, _>(col)?).map_err(|e| decode(Box::new(e)))
    };
    row.map(|r| {
        Ok(crate::model::RoundView {
            id: id_col(&r, "id")?,
            zone_id: id_col(&r, "zone_id")?,
            user_id: id_col(&r, "user_id")?,
            kind: serde_json::from_value(serde_json::Value::String(r.try_get("kind")?))
                .map_err(|e| decode(Box::new(e)))?,
            started_at: super::time_from_ms(r.try_get("started_at")?),
            finished_at: r
                .try_get::<Option<i64>, _>("finished_at")?
                .map(super::time_from_ms),
            plan_id: r.opt_uuid("plan_id")?,
            occurrence_at: r
                .try_get::<Option<i64>, _>("occurrence_at")?
                .map(super::time_from_ms),
            score_permille: r.try_get("score_permille")?,
            items_failed: r.try_get("items_failed")?,
            track_points: r.try_get("track_points")?,
        })
    })
    .transpose()
}
