//! Photo evidence: verified photos, tus uploads in progress and their parts, integrity flags and
//! the view log.

use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::json_rows::Cols;
use super::{new_id, now_ms, time_from_ms, Db};
use crate::evidence::{flags, EvidencePhoto, EvidenceSummary, Photo};

type R<T> = Result<T, sqlx::Error>;

// ---- which cases declare a photo --------------------------------------------------------------

/// A case's claim about one photo, with what the flags are computed against.
#[derive(Debug, Clone)]
pub struct Declaration {
    pub case_id: Uuid,
    pub zone_id: Uuid,
    pub role: String,
    pub size: i64,
    pub captured_at: i64,
    /// Where the phone says the photo was taken: the photo's own GPS, else the case's position.
    pub lat: f64,
    pub lon: f64,
}

fn declaration_from_row(r: &sqlx::any::AnyRow) -> R<Declaration> {
    let gps_lat: Option<f64> = r.try_get("gps_lat")?;
    let gps_lon: Option<f64> = r.try_get("gps_lon")?;
    let (lat, lon) = match (gps_lat, gps_lon) {
        (Some(lat), Some(lon)) => (lat, lon),
        _ => (r.try_get("lat")?, r.try_get("lon")?),
    };
    Ok(Declaration {
        case_id: r.uuid("case_id")?,
        zone_id: r.uuid("zone_id")?,
        role: r.try_get("role")?,
        size: r.try_get("size")?,
        captured_at: r.try_get("captured_at")?,
        lat,
        lon,
    })
}

const DECLARATION_COLUMNS: &str = "p.case_id, c.zone_id, p.role, p.size, p.captured_at, \
     p.gps_lat, p.gps_lon, c.lat, c.lon";

/// Every case that declares the photo `sha256`.
pub async fn declarations<'c, E: Executor<'c, Database = Any>>(
    e: E,
    sha256: &str,
) -> R<Vec<Declaration>> {
    declarations_where(e, sha256, "1 = 1", None).await
}

/// The cases that rightly hold the photo `sha256`: those that declared it before its bytes
/// were verified (the upload was for them), and those its uploader declared it in. A later
/// declaration by anyone else names bytes another inspector sent for another case (hashes are
/// not secret: case views and the ledger export show them): it grants no access to the photo,
/// and the case views flag it `photo_reused`. Before the bytes arrive every declaration holds.
/// With a `reader`, declarations in cases hidden from them (an unannounced inspection's, see
/// `cases::hidden_case_sql`) are left out too: the photo of such a case opens to no one the
/// case itself is hidden from.
pub async fn rightful_declarations<'c, E: Executor<'c, Database = Any>>(
    e: E,
    sha256: &str,
    reader: Option<uuid::Uuid>,
) -> R<Vec<Declaration>> {
    let rightful = "(ph.verified_at IS NULL OR p.declared_at <= ph.verified_at \
                    OR p.declared_by = ph.uploaded_by)";
    match reader {
        None => declarations_where(e, sha256, rightful, None).await,
        Some(reader) => {
            let visible = format!(
                "{rightful} AND NOT {}",
                super::cases::hidden_case_sql("p.case_id", "$2")
            );
            declarations_where(e, sha256, &visible, Some(reader.to_string())).await
        }
    }
}

/// Declarations of `sha256` meeting `condition`, which may use `$2` for `param`.
async fn declarations_where<'c, E: Executor<'c, Database = Any>>(
    e: E,
    sha256: &str,
    condition: &str,
    param: Option<String>,
) -> R<Vec<Declaration>> {
    let sql = format!(
        "SELECT {DECLARATION_COLUMNS} FROM case_photos p JOIN cases c ON c.id = p.case_id \
         LEFT JOIN photos ph ON ph.sha256 = p.sha256 AND ph.status = 'verified' \
         WHERE p.sha256 = $1 AND {condition} ORDER BY p.declared_at, p.case_id"
    );
    let mut q = sqlx::query(&sql).bind(sha256);
    if let Some(param) = param {
        q = q.bind(param);
    }
    let rows = q.fetch_all(e).await?;
    rows.iter().map(declaration_from_row).collect()
}

// ---- photos -----------------------------------------------------------------------------------

const PHOTO_COLUMNS: &str = "sha256, status, error_code, size, mime, width, height, \
     exif_taken_at, exif_lat, exif_lon, orientation, make, model, uploaded_by, verified_at, \
     derivatives, derivative_attempts, derivative_error";

fn photo_from_row(r: &sqlx::any::AnyRow) -> R<Photo> {
    Ok(Photo {
        sha256: r.try_get("sha256")?,
        status: r.try_get("status")?,
        error_code: r.try_get("error_code")?,
        size: r.try_get("size")?,
        mime: r.try_get("mime")?,
        width: r.try_get("width")?,
        height: r.try_get("height")?,
        exif_taken_at: r
            .try_get::<Option<i64>, _>("exif_taken_at")?
            .map(time_from_ms),
        exif_lat: r.try_get("exif_lat")?,
        exif_lon: r.try_get("exif_lon")?,
        orientation: r.try_get("orientation")?,
        make: r.try_get("make")?,
        model: r.try_get("model")?,
        uploaded_by: r.uuid("uploaded_by")?,
        verified_at: r
            .try_get::<Option<i64>, _>("verified_at")?
            .map(time_from_ms),
        derivatives: r.try_get("derivatives")?,
        derivative_attempts: r.try_get("derivative_attempts")?,
        derivative_error: r.try_get("derivative_error")?,
    })
}

pub async fn photo<'c, E: Executor<'c, Database = Any>>(e: E, sha256: &str) -> R<Option<Photo>> {
    let row = sqlx::query(&format!(
        "SELECT {PHOTO_COLUMNS} FROM photos WHERE sha256 = $1"
    ))
    .bind(sha256)
    .fetch_optional(e)
    .await?;
    row.as_ref().map(photo_from_row).transpose()
}

/// The verified photos among `shas`.
pub async fn verified_among(conn: &mut AnyConnection, shas: &[String]) -> R<Vec<Photo>> {
    let mut out = Vec::new();
    for chunk in shas.chunks(500) {
        let sql = format!(
            "SELECT {PHOTO_COLUMNS} FROM photos WHERE status = 'verified' AND sha256 IN ({})",
            super::id_list(conn, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for sha in chunk {
            q = q.bind(sha.as_str());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.push(photo_from_row(&r)?);
        }
    }
    Ok(out)
}

/// Records a verified photo. A photo verified before stays as it was: the bytes are the same.
pub async fn record_verified(conn: &mut AnyConnection, p: &Photo) -> R<()> {
    let now = now_ms();
    sqlx::query("DELETE FROM photos WHERE sha256 = $1 AND status <> 'verified'")
        .bind(&p.sha256)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO photos (sha256, status, error_code, size, mime, width, height, exif_taken_at, \
           exif_lat, exif_lon, orientation, make, model, uploaded_by, verified_at, derivatives, \
           derivative_attempts, derivative_error, derivative_next_at, created_at) \
         VALUES ($1, 'verified', NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0, \
           NULL, $13, $13) \
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(&p.sha256)
    .bind(p.size)
    .bind(&p.mime)
    .bind(p.width)
    .bind(p.height)
    .bind(p.exif_taken_at.map(super::ms_from_time))
    .bind(p.exif_lat)
    .bind(p.exif_lon)
    .bind(p.orientation)
    .bind(&p.make)
    .bind(&p.model)
    .bind(p.uploaded_by.to_string())
    .bind(now)
    .bind(&p.derivatives)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records why the bytes of `sha256` were refused (they hashed right but are not a usable
/// photo), unless the photo is already verified.
pub async fn record_rejected<'c, E: Executor<'c, Database = Any>>(
    e: E,
    sha256: &str,
    size: i64,
    error_code: &str,
    by: Uuid,
) -> R<()> {
    sqlx::query(
        "INSERT INTO photos (sha256, status, error_code, size, uploaded_by, derivatives, \
           derivative_attempts, created_at) \
         VALUES ($1, 'rejected', $2, $3, $4, 'none', 0, $5) \
         ON CONFLICT (sha256) DO UPDATE SET error_code = excluded.error_code, \
           uploaded_by = excluded.uploaded_by \
         WHERE photos.status = 'rejected'",
    )
    .bind(sha256)
    .bind(error_code)
    .bind(size)
    .bind(by.to_string())
    .bind(now_ms())
    .execute(e)
    .await?;
    Ok(())
}

// ---- derivatives ------------------------------------------------------------------------------

/// Claims up to `limit` photos whose derivatives are due, leasing each for `lease_ms` so that
/// another server process sharing the database does not take it meanwhile. Returns the hashes
/// with the attempt number each claim is.
pub async fn claim_derivative_work(db: &Db, limit: i64, lease_ms: i64) -> R<Vec<(String, i64)>> {
    let now = now_ms();
    let due = sqlx::query(
        "SELECT sha256, derivative_attempts, derivative_next_at FROM photos \
         WHERE derivatives = 'pending' AND derivative_next_at <= $1 \
         ORDER BY derivative_next_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let mut claimed = Vec::new();
    for row in due {
        let sha: String = row.try_get("sha256")?;
        let attempts: i64 = row.try_get("derivative_attempts")?;
        let next_at: i64 = row.try_get("derivative_next_at")?;
        // Compare-and-set on the lease: whoever moves it first owns this attempt.
        let done = sqlx::query(
            "UPDATE photos SET derivative_next_at = $1, derivative_attempts = $2 \
             WHERE sha256 = $3 AND derivatives = 'pending' AND derivative_next_at = $4",
        )
        .bind(now + lease_ms)
        .bind(attempts + 1)
        .bind(&sha)
        .bind(next_at)
        .execute(&db.pool)
        .await?;
        if done.rows_affected() == 1 {
            claimed.push((sha, attempts + 1));
        }
    }
    Ok(claimed)
}

pub async fn derivatives_ready<'c, E: Executor<'c, Database = Any>>(e: E, sha256: &str) -> R<()> {
    sqlx::query(
        "UPDATE photos SET derivatives = 'ready', derivative_error = NULL, \
         derivative_next_at = NULL WHERE sha256 = $1",
    )
    .bind(sha256)
    .execute(e)
    .await?;
    Ok(())
}

/// A failed attempt: retried at `retry_at`, or marked failed for good when `retry_at` is `None`.
pub async fn derivatives_failed<'c, E: Executor<'c, Database = Any>>(
    e: E,
    sha256: &str,
    error: &str,
    retry_at: Option<i64>,
) -> R<()> {
    sqlx::query(
        "UPDATE photos SET derivatives = $1, derivative_error = $2, derivative_next_at = $3 \
         WHERE sha256 = $4",
    )
    .bind(if retry_at.is_some() {
        "pending"
    } else {
        "failed"
    })
    .bind(error)
    .bind(retry_at)
    .bind(sha256)
    .execute(e)
    .await?;
    Ok(())
}

/// The photo's pixel data cannot be decoded (`reason`): no derivatives, for good.
pub async fn derivatives_undecodable<'c, E: Executor<'c, Database = Any>>(
    e: E,
    sha256: &str,
    reason: &str,
) -> R<()> {
    sqlx::query(
        "UPDATE photos SET derivatives = 'undecodable', derivative_error = $1, \
         derivative_next_at = NULL WHERE sha256 = $2",
    )
    .bind(reason)
    .bind(sha256)
    .execute(e)
    .await?;
    Ok(())
}

// ---- uploads ----------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Upload {
    pub id: Uuid,
    pub sha256: String,
    pub length: i64,
    pub received: i64,
    /// `receiving` or `complete`.
    pub state: String,
    /// The client's `Upload-Metadata` header, as sent (echoed by `HEAD`).
    pub metadata: String,
    pub created_by: Uuid,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub start: i64,
    pub length: i64,
    pub object_key: String,
}

fn upload_from_row(r: &sqlx::any::AnyRow) -> R<Upload> {
    Ok(Upload {
        id: r.uuid("id")?,
        sha256: r.try_get("sha256")?,
        length: r.try_get("length")?,
        received: r.try_get("received")?,
        state: r.try_get("state")?,
        metadata: r.try_get("metadata")?,
        created_by: r.uuid("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

pub async fn insert_upload<'c, E: Executor<'c, Database = Any>>(e: E, u: &Upload) -> R<()> {
    sqlx::query(
        "INSERT INTO uploads (id, sha256, length, received, state, metadata, created_by, \
           created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(u.id.to_string())
    .bind(&u.sha256)
    .bind(u.length)
    .bind(u.received)
    .bind(&u.state)
    .bind(&u.metadata)
    .bind(u.created_by.to_string())
    .bind(u.created_at)
    .bind(u.expires_at)
    .execute(e)
    .await?;
    Ok(())
}

pub async fn upload<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Option<Upload>> {
    let row = sqlx::query(
        "SELECT id, sha256, length, received, state, metadata, created_by, created_at, \
         expires_at FROM uploads WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(e)
    .await?;
    row.as_ref().map(upload_from_row).transpose()
}

/// Appends received parts if the upload still stands at `from` (compare-and-set: of two
/// requests racing from the same offset, one wins and the other is told to resume). Returns
/// whether the parts were appended.
pub async fn append_parts(
    conn: &mut AnyConnection,
    id: Uuid,
    from: i64,
    parts: &[Part],
    expires_at: i64,
) -> R<bool> {
    let to = from + parts.iter().map(|p| p.length).sum::<i64>();
    let done = sqlx::query(
        "UPDATE uploads SET received = $1, expires_at = $2 \
         WHERE id = $3 AND received = $4 AND state = 'receiving'",
    )
    .bind(to)
    .bind(expires_at)
    .bind(id.to_string())
    .bind(from)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    for p in parts {
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, start, length, object_key) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(p.start)
        .bind(p.length)
        .bind(&p.object_key)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

pub async fn parts<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Vec<Part>> {
    let rows = sqlx::query(
        "SELECT start, length, object_key FROM upload_parts WHERE upload_id = $1 ORDER BY start",
    )
    .bind(id.to_string())
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Part {
                start: r.try_get("start")?,
                length: r.try_get("length")?,
                object_key: r.try_get("object_key")?,
            })
        })
        .collect()
}

/// The upload is done with: its bytes are a verified photo. The row stays until it expires so
/// that a client asking where it stands (`HEAD`) hears "complete". Its pieces are forgotten;
/// returns whether it had any recorded (whose objects the caller then deletes).
pub async fn complete_upload(conn: &mut AnyConnection, id: Uuid) -> R<bool> {
    let parts = sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE uploads SET state = 'complete', received = length WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(parts.rows_affected() > 0)
}

pub async fn delete_upload(conn: &mut AnyConnection, id: Uuid) -> R<()> {
    sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records that the upload's pieces are to be deleted from the blob store (in the transaction
/// that completes or forgets the upload, so the intent outlives a crash or a refusing store).
pub async fn schedule_cleanup(conn: &mut AnyConnection, id: Uuid, now: i64) -> R<()> {
    sqlx::query(
        "INSERT INTO upload_cleanups (upload_id, created_at, attempts, last_error) \
         VALUES ($1, $2, 0, NULL) ON CONFLICT (upload_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The upload's pieces are gone from the store.
pub async fn cleanup_done<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<()> {
    sqlx::query("DELETE FROM upload_cleanups WHERE upload_id = $1")
        .bind(id.to_string())
        .execute(e)
        .await?;
    Ok(())
}

/// The store refused to list or delete the upload's pieces; the clean-up job tries again.
pub async fn cleanup_failed<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
    error: &str,
) -> R<()> {
    sqlx::query(
        "UPDATE upload_cleanups SET attempts = attempts + 1, last_error = $1 WHERE upload_id = $2",
    )
    .bind(error)
    .bind(id.to_string())
    .execute(e)
    .await?;
    Ok(())
}

/// Uploads whose pieces are still to be deleted, oldest first.
pub async fn pending_cleanups<'c, E: Executor<'c, Database = Any>>(
    e: E,
    limit: i64,
) -> R<Vec<Uuid>> {
    let rows = sqlx::query(
        "SELECT upload_id FROM upload_cleanups ORDER BY created_at, upload_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(e)
    .await?;
    rows.iter().map(|r| r.uuid("upload_id")).collect()
}

pub async fn expired_uploads<'c, E: Executor<'c, Database = Any>>(
    e: E,
    now: i64,
    limit: i64,
) -> R<Vec<Uuid>> {
    let rows =
        sqlx::query("SELECT id FROM uploads WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2")
            .bind(now)
            .bind(limit)
            .fetch_all(e)
            .await?;
    rows.iter().map(|r| r.uuid("id")).collect()
}

// ---- integrity flags and the evidence summary -------------------------------------------------

pub async fn store_flags(
    conn: &mut AnyConnection,
    case_id: Uuid,
    sha256: &str,
    flags: &[String],
) -> R<()> {
    let text = serde_json::to_string(flags).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO photo_flags (case_id, sha256, flags, computed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (case_id, sha256) DO UPDATE SET flags = excluded.flags, \
           computed_at = excluded.computed_at",
    )
    .bind(case_id.to_string())
    .bind(sha256)
    .bind(text)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// The evidence of one case as the case views show it: each declared photo with whether it is
/// verified and its thumbnail ready, its integrity flags, and the flags of the whole.
///
/// `photo_reused` is decided here, at read time, because another case can declare the same hash
/// after the photo was verified, and `photo_undecodable` because the derivative worker finds
/// it after; the EXIF flags were computed and stored at verification.
pub async fn evidence(db: &Db, case_id: Uuid) -> R<EvidenceSummary> {
    let rows = sqlx::query(
        "SELECT p.sha256, p.role, ph.status, ph.derivatives, f.flags, \
           (SELECT COUNT(DISTINCT o.case_id) FROM case_photos o \
             WHERE o.sha256 = p.sha256 AND o.case_id <> p.case_id) AS others \
         FROM case_photos p \
         LEFT JOIN photos ph ON ph.sha256 = p.sha256 \
         LEFT JOIN photo_flags f ON f.case_id = p.case_id AND f.sha256 = p.sha256 \
         WHERE p.case_id = $1 ORDER BY p.declared_at, p.sha256",
    )
    .bind(case_id.to_string())
    .fetch_all(&db.pool)
    .await?;
    let mut photos = Vec::with_capacity(rows.len());
    for r in &rows {
        let status: Option<String> = r.try_get("status")?;
        let derivatives: Option<String> = r.try_get("derivatives")?;
        let stored: Option<String> = r.try_get("flags")?;
        let others: i64 = r.try_get("others")?;
        let mut flags: Vec<String> = match stored {
            Some(t) => serde_json::from_str(&t)
                .map_err(|_| super::unknown_value("photo_flags.flags", &t))?,
            None => Vec::new(),
        };
        if others > 0 && !flags.iter().any(|f| f == flags::PHOTO_REUSED) {
            flags.insert(0, flags::PHOTO_REUSED.to_owned());
        }
        if derivatives.as_deref() == Some("undecodable") {
            flags.push(flags::PHOTO_UNDECODABLE.to_owned());
        }
        photos.push(EvidencePhoto {
            sha256: r.try_get("sha256")?,
            role: r.try_get("role")?,
            verified: status.as_deref() == Some("verified"),
            rejected: status.as_deref() == Some("rejected"),
            thumb_ready: derivatives.as_deref() == Some("ready"),
            flags,
        });
    }
    Ok(EvidenceSummary::from_photos(photos))
}

// ---- views ------------------------------------------------------------------------------------

pub async fn log_view<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: Uuid,
    sha256: &str,
    variant: &str,
) -> R<()> {
    sqlx::query(
        "INSERT INTO photo_views (id, user_id, sha256, variant, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id().to_string())
    .bind(user_id.to_string())
    .bind(sha256)
    .bind(variant)
    .bind(now_ms())
    .execute(e)
    .await?;
    Ok(())
}

/// The view log of one photo, oldest first: (user, variant, at ms).
pub async fn views<'c, E: Executor<'c, Database = Any>>(
    e: E,
    sha256: &str,
) -> R<Vec<(Uuid, String, i64)>> {
    let rows = sqlx::query(
        "SELECT user_id, variant, at FROM photo_views WHERE sha256 = $1 ORDER BY at, id",
    )
    .bind(sha256)
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| Ok((r.uuid("user_id")?, r.try_get("variant")?, r.try_get("at")?)))
        .collect()
}

/// Those of `hashes` that `user_id` has never opened (as original or preview; a thumbnail in a
/// list is not a look at the evidence).
pub async fn not_opened_by(
    conn: &mut AnyConnection,
    user_id: Uuid,
    hashes: &[String],
) -> R<Vec<String>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT DISTINCT sha256 FROM photo_views WHERE user_id = $1 \
         AND variant IN ('original', 'preview') AND sha256 IN ({})",
        super::placeholders(2, hashes.len())
    );
    let mut q = sqlx::query_scalar::<_, String>(&sql).bind(user_id.to_string());
    for h in hashes {
        q = q.bind(h);
    }
    let opened: std::collections::HashSet<String> = q.fetch_all(conn).await?.into_iter().collect();
    Ok(hashes
        .iter()
        .filter(|h| !opened.contains(*h))
        .cloned()
        .collect())
}
