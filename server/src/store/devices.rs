//! Enrolled devices: a phone's Ed25519 key bound to a user, its sync position and clock skew.

use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::json_rows::Cols;

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    pub enrolled_at: i64,
    pub revoked_at: Option<i64>,
    /// The next sequence number the server expects from this device.
    pub next_seq: i64,
    /// Hash of the last operation accepted from this device (the chain head).
    pub last_hash: String,
    pub clock_skew_ms: Option<i64>,
    pub last_sync_at: Option<i64>,
    pub flagged: Option<String>,
}

const COLUMNS: &str = "id, user_id, name, public_key, enrolled_at, revoked_at, next_seq, \
                       last_hash, clock_skew_ms, last_sync_at, flagged";

fn from_row(r: &sqlx::any::AnyRow) -> Result<DeviceRow, sqlx::Error> {
    Ok(DeviceRow {
        id: r.uuid("id")?,
        user_id: r.uuid("user_id")?,
        name: r.try_get("name")?,
        public_key: r.try_get("public_key")?,
        enrolled_at: r.try_get("enrolled_at")?,
        revoked_at: r.try_get("revoked_at")?,
        next_seq: r.try_get("next_seq")?,
        last_hash: r.try_get("last_hash")?,
        clock_skew_ms: r.try_get("clock_skew_ms")?,
        last_sync_at: r.try_get("last_sync_at")?,
        flagged: r.try_get("flagged")?,
    })
}

pub async fn insert(conn: &mut AnyConnection, d: &DeviceRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO devices (id, user_id, name, public_key, enrolled_at, revoked_at, next_seq, last_hash) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
    )
    .bind(d.id.to_string())
    .bind(d.user_id.to_string())
    .bind(&d.name)
    .bind(&d.public_key)
    .bind(d.enrolled_at)
    .bind(d.next_seq)
    .bind(&d.last_hash)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
) -> Result<Option<DeviceRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM devices WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Reads the device row and, on PostgreSQL, locks it until the transaction ends: pushes from
/// one device are applied strictly one batch at a time.
pub async fn get_for_update(
    conn: &mut AnyConnection,
    backend: super::Backend,
    id: Uuid,
) -> Result<Option<DeviceRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM devices WHERE id = $1{}",
        backend.for_update()
    );
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: Option<Uuid>,
) -> Result<Vec<DeviceRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM devices WHERE ($1 IS NULL OR user_id = $1) ORDER BY enrolled_at"
    ))
    .bind(user_id.map(|u| u.to_string()))
    .fetch_all(e)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Whether the device is enrolled to `user_id` and not revoked (checked on every request
/// carrying a device-bound token, so a lost phone is cut off at its next request).
pub async fn is_active<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM devices WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(id.to_string())
    .bind(user_id.to_string())
    .fetch_optional(e)
    .await?;
    Ok(found.is_some())
}

pub async fn revoke(
    conn: &mut AnyConnection,
    id: Uuid,
    by: Uuid,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE devices SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(by.to_string())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
