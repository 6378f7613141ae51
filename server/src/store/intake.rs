//! Cases from outside the patrol: how each came in (`case_intake`), the people who reported it
//! (`case_callers`, kept apart from the case) and the callbacks to them (`case_callbacks`).

use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::json_rows::Cols;

type R<T> = Result<T, sqlx::Error>;

/// How a case came in.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeRow {
    pub case_id: Uuid,
    /// `cases.source` again: a ticket number is unique within its channel.
    pub channel: String,
    /// The channel's own ticket number (the hotline's work order, the transfer's reference).
    pub external_ref: Option<String>,
    /// The place as the caller or document told it.
    pub address: String,
    pub received_by: Uuid,
    pub received_at: i64,
}

pub async fn insert(conn: &mut AnyConnection, row: &IntakeRow) -> R<()> {
    sqlx::query(
        "INSERT INTO case_intake (case_id, channel, external_ref, address, received_by, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row.case_id.to_string())
    .bind(&row.channel)
    .bind(&row.external_ref)
    .bind(&row.address)
    .bind(row.received_by.to_string())
    .bind(row.received_at)
    .execute(conn)
    .await?;
    Ok(())
}

fn intake_from(r: &sqlx::any::AnyRow) -> R<IntakeRow> {
    Ok(IntakeRow {
        case_id: r.uuid("case_id")?,
        channel: r.try_get("channel")?,
        external_ref: r.try_get("external_ref")?,
        address: r.try_get("address")?,
        received_by: r.uuid("received_by")?,
        received_at: r.try_get("received_at")?,
    })
}

/// How case `id` came in, if from outside the patrol.
pub async fn of_case<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Option<IntakeRow>> {
    sqlx::query("SELECT * FROM case_intake WHERE case_id = $1")
        .bind(id.to_string())
        .fetch_optional(e)
        .await?
        .map(|r| intake_from(&r))
        .transpose()
}

/// The case a channel's ticket number was filed as.
pub async fn by_ticket<'c, E: Executor<'c, Database = Any>>(
    e: E,
    channel: &str,
    external_ref: &str,
) -> R<Option<Uuid>> {
    sqlx::query("SELECT case_id FROM case_intake WHERE channel = $1 AND external_ref = $2")
        .bind(channel)
        .bind(external_ref)
        .fetch_optional(e)
        .await?
        .map(|r| r.uuid("case_id"))
        .transpose()
}

/// Someone who reported a case. `name` and `phone` are `None` once erased.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// The duplicate this caller reported, when a merge brought them here.
    pub merged_from: Option<Uuid>,
    pub recorded_by: Uuid,
    pub recorded_at: i64,
    pub retain_until: i64,
    pub erased_at: Option<i64>,
}

pub async fn insert_caller(conn: &mut AnyConnection, c: &CallerRow) -> R<()> {
    sqlx::query(
        "INSERT INTO case_callers (id, case_id, name, phone, merged_from, recorded_by, recorded_at, \
         retain_until, erased_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(c.id.to_string())
    .bind(c.case_id.to_string())
    .bind(&c.name)
    .bind(&c.phone)
    .bind(c.merged_from.map(|m| m.to_string()))
    .bind(c.recorded_by.to_string())
    .bind(c.recorded_at)
    .bind(c.retain_until)
    .bind(c.erased_at)
    .execute(conn)
    .await?;
    Ok(())
}

fn caller_from(r: &sqlx::any::AnyRow) -> R<CallerRow> {
    Ok(CallerRow {
        id: r.uuid("id")?,
        case_id: r.uuid("case_id")?,
        name: r.try_get("name")?,
        phone: r.try_get("phone")?,
        merged_from: r.opt_uuid("merged_from")?,
        recorded_by: r.uuid("recorded_by")?,
        recorded_at: r.try_get("recorded_at")?,
        retain_until: r.try_get("retain_until")?,
        erased_at: r.try_get("erased_at")?,
    })
}

/// The callers of case `id`, first recorded first.
pub async fn callers<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Vec<CallerRow>> {
    sqlx::query("SELECT * FROM case_callers WHERE case_id = $1 ORDER BY recorded_at, id")
        .bind(id.to_string())
        .fetch_all(e)
        .await?
        .iter()
        .map(caller_from)
        .collect()
}

/// A merge: each caller of `from` is recorded again on `into` (with `merged_from`), keeping
/// their retention, so the case that goes on calls every reporter back. Returns how many.
pub async fn copy_callers(conn: &mut AnyConnection, from: Uuid, into: Uuid, now: i64) -> R<usize> {
    let rows = callers(&mut *conn, from).await?;
    for c in &rows {
        insert_caller(
            conn,
            &CallerRow {
                id: super::new_id(),
                case_id: into,
                merged_from: Some(from),
                recorded_at: now,
                ..c.clone()
            },
        )
        .await?;
    }
    Ok(rows.len())
}

/// Erases the name and phone of every caller kept past `retain_until`; returns how many.
pub async fn erase_expired(conn: &mut AnyConnection, now: i64) -> R<u64> {
    Ok(sqlx::query(
        "UPDATE case_callers SET name = NULL, phone = NULL, erased_at = $1 \
         WHERE retain_until <= $1 AND erased_at IS NULL",
    )
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// A callback to a caller after their case closed.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub caller_id: Option<Uuid>,
    /// `satisfied`, `basically_satisfied`, `dissatisfied` or `unreachable`.
    pub outcome: String,
    pub note: Option<String>,
    pub called_by: Uuid,
    pub called_at: i64,
}

pub async fn insert_callback(conn: &mut AnyConnection, c: &CallbackRow) -> R<()> {
    sqlx::query(
        "INSERT INTO case_callbacks (id, case_id, caller_id, outcome, note, called_by, called_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(c.id.to_string())
    .bind(c.case_id.to_string())
    .bind(c.caller_id.map(|c| c.to_string()))
    .bind(&c.outcome)
    .bind(&c.note)
    .bind(c.called_by.to_string())
    .bind(c.called_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The callbacks of case `id`, oldest first.
pub async fn callbacks<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Vec<CallbackRow>> {
    sqlx::query("SELECT * FROM case_callbacks WHERE case_id = $1 ORDER BY called_at, id")
        .bind(id.to_string())
        .fetch_all(e)
        .await?
        .iter()
        .map(|r| {
            Ok(CallbackRow {
                id: r.uuid("id")?,
                case_id: r.uuid("case_id")?,
                caller_id: r.opt_uuid("caller_id")?,
                outcome: r.try_get("outcome")?,
                note: r.try_get("note")?,
                called_by: r.uuid("called_by")?,
                called_at: r.try_get("called_at")?,
            })
        })
        .collect()
}

/// An open case near a new report: on the same asset, or of the same category within a box
/// around the place (the caller measures the distance).
#[derive(Debug, Clone, PartialEq)]
pub struct NearbyCase {
    pub id: Uuid,
    pub zone_id: Uuid,
    pub state: String,
    pub source: String,
    pub category_code: String,
    pub description: String,
    pub asset_code: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub received_at: i64,
}

/// Open cases (reported to pending verification) other than `except` on `asset`, or of
/// `category` received since `since` within the box `lat ± dlat`, `lon ± dlon`; at most 50,
/// newest first.
#[allow(clippy::too_many_arguments)]
pub async fn nearby_open<'c, E: Executor<'c, Database = Any>>(
    e: E,
    except: Uuid,
    asset: Option<&str>,
    category: &str,
    since: i64,
    (lat, lon): (f64, f64),
    (dlat, dlon): (f64, f64),
) -> R<Vec<NearbyCase>> {
    let rows = sqlx::query(
        "SELECT id, zone_id, state, source, category_code, description, asset_code, lat, lon, received_at \
         FROM cases WHERE id <> $1 \
           AND state IN ('reported', 'filed', 'dispatched', 'in_progress', 'pending_verification') \
           AND ((asset_code IS NOT NULL AND asset_code = $2) \
             OR (category_code = $3 AND received_at >= $4 \
                 AND lat BETWEEN $5 AND $6 AND lon BETWEEN $7 AND $8)) \
         ORDER BY received_at DESC, id LIMIT 50",
    )
    .bind(except.to_string())
    .bind(asset)
    .bind(category)
    .bind(since)
    .bind(lat - dlat)
    .bind(lat + dlat)
    .bind(lon - dlon)
    .bind(lon + dlon)
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(NearbyCase {
                id: r.uuid("id")?,
                zone_id: r.uuid("zone_id")?,
                state: r.try_get("state")?,
                source: r.try_get("source")?,
                category_code: r.try_get("category_code")?,
                description: r.try_get("description")?,
                asset_code: r.try_get("asset_code")?,
                lat: r.try_get("lat")?,
                lon: r.try_get("lon")?,
                received_at: r.try_get("received_at")?,
            })
        })
        .collect()
}

/// Whether case `id` has a verification visit that found the problem, with at least one
/// `verification` photo declared.
pub async fn verified_on_site(conn: &mut AnyConnection, id: Uuid) -> R<bool> {
    let events = sqlx::query(
        "SELECT data FROM case_events WHERE case_id = $1 AND kind = 'verification' ORDER BY at",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let found = events.iter().any(|r| {
        r.try_get::<Option<String>, _>("data")
            .ok()
            .flatten()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .is_some_and(|d| d["found"] == serde_json::Value::Bool(true))
    });
    if !found {
        return Ok(false);
    }
    let photos: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM case_photos WHERE case_id = $1 AND role = 'verification'",
    )
    .bind(id.to_string())
    .fetch_one(conn)
    .await?
    .try_get("n")?;
    Ok(photos > 0)
}

/// A client application of the Open311 façade.
#[derive(Debug, Clone, PartialEq)]
pub struct Open311Client {
    pub id: Uuid,
    pub name: String,
    /// The service account its reports are filed as.
    pub user_id: Uuid,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn client_from(r: &sqlx::any::AnyRow) -> R<Open311Client> {
    Ok(Open311Client {
        id: r.uuid("id")?,
        name: r.try_get("name")?,
        user_id: r.uuid("user_id")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

pub async fn insert_client(conn: &mut AnyConnection, c: &Open311Client, key_sha256: &str) -> R<()> {
    sqlx::query(
        "INSERT INTO open311_clients (id, name, key_sha256, user_id, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(c.id.to_string())
    .bind(&c.name)
    .bind(key_sha256)
    .bind(c.user_id.to_string())
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The client holding the key whose SHA-256 is `key_sha256`, unless revoked.
pub async fn client_by_key<'c, E: Executor<'c, Database = Any>>(
    e: E,
    key_sha256: &str,
) -> R<Option<Open311Client>> {
    sqlx::query("SELECT * FROM open311_clients WHERE key_sha256 = $1 AND revoked_at IS NULL")
        .bind(key_sha256)
        .fetch_optional(e)
        .await?
        .map(|r| client_from(&r))
        .transpose()
}

/// Public reports (cases from the `public_report` channel) received in `[from, to)`, newest
/// first, at most `limit`, optionally of one category or of the given ids only.
pub async fn public_reports<'c, E: Executor<'c, Database = Any>>(
    e: E,
    (from, to): (i64, i64),
    category: Option<&str>,
    ids: Option<&[Uuid]>,
    limit: i64,
) -> R<Vec<Uuid>> {
    // Placeholders numbered in the order they appear, which both backends bind by.
    let mut sql = String::from(
        "SELECT id FROM cases WHERE source = 'public_report' AND received_at >= $1 AND received_at < $2",
    );
    let mut n = 2;
    if category.is_some() {
        n += 1;
        sql.push_str(&format!(" AND category_code = ${n}"));
    }
    if let Some(ids) = ids {
        sql.push_str(" AND id IN (");
        for i in 0..ids.len() {
            n += 1;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${n}"));
        }
        sql.push(')');
    }
    sql.push_str(&format!(" ORDER BY received_at DESC, id LIMIT ${}", n + 1));
    let mut q = sqlx::query(&sql).bind(from).bind(to);
    if let Some(c) = category {
        q = q.bind(c);
    }
    for id in ids.unwrap_or(&[]) {
        q = q.bind(id.to_string());
    }
    q = q.bind(limit);
    q.fetch_all(e).await?.iter().map(|r| r.uuid("id")).collect()
}

/// A document of a case (see `documents`).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow {
    pub case_id: Uuid,
    pub sha256: String,
    pub size: i64,
    pub filename: String,
    pub media_type: String,
    pub added_by: Uuid,
    pub added_at: i64,
}

pub async fn insert_document(conn: &mut AnyConnection, d: &DocumentRow) -> R<()> {
    sqlx::query(
        "INSERT INTO case_documents (case_id, sha256, size, filename, media_type, added_by, added_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (case_id, sha256) DO NOTHING",
    )
    .bind(d.case_id.to_string())
    .bind(&d.sha256)
    .bind(d.size)
    .bind(&d.filename)
    .bind(&d.media_type)
    .bind(d.added_by.to_string())
    .bind(d.added_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The documents of case `id`, first added first.
pub async fn documents_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
) -> R<Vec<DocumentRow>> {
    sqlx::query("SELECT * FROM case_documents WHERE case_id = $1 ORDER BY added_at, sha256")
        .bind(id.to_string())
        .fetch_all(e)
        .await?
        .iter()
        .map(|r| {
            Ok(DocumentRow {
                case_id: r.uuid("case_id")?,
                sha256: r.try_get("sha256")?,
                size: r.try_get("size")?,
                filename: r.try_get("filename")?,
                media_type: r.try_get("media_type")?,
                added_by: r.uuid("added_by")?,
                added_at: r.try_get("added_at")?,
            })
        })
        .collect()
}
