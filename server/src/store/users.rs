//! Users and login throttling.

use gridline_sync::Role;
use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::json_rows::Cols;
use super::now_ms;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    /// Where their notices are mailed, if anywhere.
    pub email: Option<String>,
}

/// The system account (`0024_lateness.sql`): it proposes the automatic overdue deductions, so
/// that any supervisor may approve them under four eyes. Disabled, and nobody can sign in as it.
pub const SYSTEM_USER_ID: Uuid = Uuid::from_u128(0x00000000_0000_4000_8000_000000000001);

pub fn roles_to_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Roles stored as comma-separated names in `column`; a name no role has is a decode error.
pub fn roles_from_text(column: &str, text: &str) -> Result<Vec<Role>, sqlx::Error> {
    text.split(',')
        .map(|s| {
            Role::ALL
                .iter()
                .copied()
                .find(|r| r.as_str() == s)
                .ok_or_else(|| super::unknown_value(column, s))
        })
        .collect()
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: row.uuid("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        roles: roles_from_text("users.roles", &row.try_get::<String, _>("roles")?)?,
        disabled_at: row.try_get("disabled_at")?,
        created_at: row.try_get("created_at")?,
        email: row.try_get("email")?,
    })
}

const COLUMNS: &str =
    "id, username, display_name, password_hash, roles, disabled_at, created_at, email";

/// The enabled users holding `role`: whom a notice for a role goes to.
pub async fn with_role(conn: &mut AnyConnection, role: Role) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM users WHERE disabled_at IS NULL ORDER BY id"
    ))
    .fetch_all(conn)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let user = from_row(r)?;
        if user.roles.contains(&role) {
            out.push(user.id);
        }
    }
    Ok(out)
}

pub async fn insert(conn: &mut AnyConnection, user: &UserRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, username, display_name, password_hash, roles, disabled_at, \
         created_at, email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(user.id.to_string())
    .bind(&user.username)
    .bind(&user.display_name)
    .bind(&user.password_hash)
    .bind(roles_to_text(&user.roles))
    .bind(user.disabled_at)
    .bind(user.created_at)
    .bind(user.email.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn by_username<'c, E: Executor<'c, Database = Any>>(
    e: E,
    username: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
        .bind(username)
        .fetch_optional(e)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn by_id<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
) -> Result<Option<UserRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(e)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list<'c, E: Executor<'c, Database = Any>>(e: E) -> Result<Vec<UserRow>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
        .fetch_all(e)
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn set_password(
    conn: &mut AnyConnection,
    id: Uuid,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes a user's display name, roles, disabled time and email address; `false` if there is
/// no such user.
pub async fn update(conn: &mut AnyConnection, user: &UserRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET display_name = $1, roles = $2, disabled_at = $3, email = $4 WHERE id = $5",
    )
    .bind(&user.display_name)
    .bind(roles_to_text(&user.roles))
    .bind(user.disabled_at)
    .bind(user.email.as_deref())
    .bind(user.id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The seconds left of the longest lock among `keys` (see `auth::throttle`), if any is locked.
pub async fn lockout_remaining<'c, E: Executor<'c, Database = Any>>(
    e: E,
    keys: &[String],
) -> Result<Option<u64>, sqlx::Error> {
    let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT MAX(locked_until) FROM login_throttle WHERE key IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_scalar::<_, Option<i64>>(&sql);
    for key in keys {
        query = query.bind(key);
    }
    let locked = query.fetch_one(e).await?;
    let now = now_ms();
    Ok(locked
        .filter(|until| *until > now)
        .map(|until| ((until - now) as u64).div_ceil(1000)))
}

/// Counts a failed login under `key`; after `max_failures` within the lockout window the key
/// is locked for that long.
pub async fn record_login_failure(
    conn: &mut AnyConnection,
    key: &str,
    max_failures: u32,
    lockout_ms: i64,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    // One statement, so concurrent failures cannot undercount.
    sqlx::query(
        "INSERT INTO login_throttle (key, failures, window_start, locked_until) \
         VALUES ($1, 1, $2, NULL) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.window_start < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
           window_start = CASE WHEN login_throttle.window_start < $3 THEN $2 ELSE login_throttle.window_start END",
    )
    .bind(key)
    .bind(now)
    .bind(now - lockout_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE login_throttle SET locked_until = $1, failures = 0, window_start = $2 \
         WHERE key = $3 AND failures >= $4",
    )
    .bind(now + lockout_ms)
    .bind(now)
    .bind(key)
    .bind(max_failures as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the failures counted under `key`.
pub async fn clear_login_failures(conn: &mut AnyConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}
