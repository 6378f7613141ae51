//! The signing keys in use on this database (see `auth::keys::Keyring::check_in`).

use sqlx::{AnyConnection, Row};

use super::{Backend, WriteTx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    pub kid: String,
    /// Base64 of the Ed25519 public key.
    pub public_key: String,
    pub first_used_at: i64,
}

/// Holds the table until `tx` ends, so instances starting together check in one at a time.
/// (SQLite serialises writers already.)
pub async fn lock(tx: &mut WriteTx) -> Result<(), sqlx::Error> {
    if tx.backend == Backend::Postgres {
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

/// The newest key to come into use, if any has.
pub async fn newest(conn: &mut AnyConnection) -> Result<Option<KnownKey>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT kid, public_key, first_used_at FROM signing_keys \
         ORDER BY first_used_at DESC, kid DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(KnownKey {
            kid: r.try_get("kid")?,
            public_key: r.try_get("public_key")?,
            first_used_at: r.try_get("first_used_at")?,
        })
    })
    .transpose()
}

/// Records `kid` as in use from `at` (or, with `renew`, as the newest from `at` even if it was
/// used before); returns whether anything changed.
pub async fn record(
    conn: &mut AnyConnection,
    kid: &str,
    public_key: &str,
    at: i64,
    renew: bool,
) -> Result<bool, sqlx::Error> {
    let sql = if renew {
        "INSERT INTO signing_keys (kid, public_key, first_used_at) VALUES ($1, $2, $3) \
         ON CONFLICT (kid) DO UPDATE SET first_used_at = excluded.first_used_at"
    } else {
        "INSERT INTO signing_keys (kid, public_key, first_used_at) VALUES ($1, $2, $3) \
         ON CONFLICT (kid) DO NOTHING"
    };
    let done = sqlx::query(sql)
        .bind(kid)
        .bind(public_key)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
