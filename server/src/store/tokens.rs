//! Refresh tokens: stored as SHA-256 hashes, single use, grouped in families so that reuse of a
//! spent token (a sign of theft) revokes every token descended from the same login.

use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::json_rows::Cols;
use super::new_id;

#[derive(Debug, Clone)]
pub struct RefreshRow {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<Uuid>,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert(
    conn: &mut AnyConnection,
    token_hash: &str,
    family_id: Uuid,
    user_id: Uuid,
    device_id: Option<Uuid>,
    issued_at: i64,
    expires_at: i64,
) -> Result<Uuid, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, token_hash, family_id, user_id, device_id, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(token_hash)
    .bind(family_id.to_string())
    .bind(user_id.to_string())
    .bind(device_id.map(|d| d.to_string()))
    .bind(issued_at)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn by_hash(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<RefreshRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, family_id, user_id, device_id, expires_at, used_at, revoked_at \
         FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(RefreshRow {
            id: r.uuid("id")?,
            family_id: r.uuid("family_id")?,
            user_id: r.uuid("user_id")?,
            device_id: r.opt_uuid("device_id")?,
            expires_at: r.try_get("expires_at")?,
            used_at: r.try_get("used_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    })
    .transpose()
}

/// Marks the token spent. Returns false if it was already spent or revoked: the conditional
/// update makes two concurrent refreshes with one token impossible to both succeed.
pub async fn spend(conn: &mut AnyConnection, id: Uuid, at: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke_family(
    conn: &mut AnyConnection,
    family_id: Uuid,
    at: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(family_id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn revoke_device(
    conn: &mut AnyConnection,
    device_id: Uuid,
    at: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE device_id = $2 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(device_id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn revoke_user(
    conn: &mut AnyConnection,
    user_id: Uuid,
    at: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(user_id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
