//! Console sessions (`console_sessions`): created at sign-in, found by the hash of the
//! cookie's token, touched as they are used, ended at sign-out.

use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::json_rows::Cols;

type R<T> = Result<T, sqlx::Error>;

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: Uuid,
    pub created_at: i64,
    pub csrf: String,
    pub seen_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

pub async fn insert(
    conn: &mut AnyConnection,
    token_hash: &str,
    user_id: Uuid,
    csrf: &str,
    now: i64,
    expires_at: i64,
) -> R<()> {
    sqlx::query(
        "INSERT INTO console_sessions (token_hash, user_id, csrf, created_at, seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id.to_string())
    .bind(csrf)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
) -> R<Option<SessionRow>> {
    let row = sqlx::query(
        "SELECT user_id, csrf, created_at, seen_at, expires_at, ended_at FROM console_sessions \
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(e)
    .await?;
    row.map(|r| {
        Ok(SessionRow {
            user_id: r.uuid("user_id")?,
            created_at: r.try_get("created_at")?,
            csrf: r.try_get("csrf")?,
            seen_at: r.try_get("seen_at")?,
            expires_at: r.try_get("expires_at")?,
            ended_at: r.try_get("ended_at")?,
        })
    })
    .transpose()
}

/// Records use of a session at `now`; also moves its idle expiry to `expires_at`.
pub async fn touch<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> R<()> {
    sqlx::query(
        "UPDATE console_sessions SET seen_at = $1, expires_at = $2 \
         WHERE token_hash = $3 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(expires_at)
    .bind(token_hash)
    .execute(e)
    .await?;
    Ok(())
}

/// Ends a session; `false` if it was not open.
pub async fn end(conn: &mut AnyConnection, token_hash: &str, now: i64) -> R<bool> {
    let done = sqlx::query(
        "UPDATE console_sessions SET ended_at = $1 WHERE token_hash = $2 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(token_hash)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
