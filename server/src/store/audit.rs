//! The audit log: every admin change, who made it, the value before and after, and when.

use serde::Serialize;
use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::{new_id, now_ms};

/// Appends one audit record inside the caller's transaction, so the change and its record
/// commit together or not at all.
pub async fn record<B: Serialize, A: Serialize>(
    conn: &mut AnyConnection,
    actor: Option<Uuid>,
    action: &str,
    entity: &str,
    entity_id: &str,
    before: Option<&B>,
    after: Option<&A>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, actor_id, action, entity, entity_id, before, after, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id().to_string())
    .bind(actor.map(|a| a.to_string()))
    .bind(action)
    .bind(entity)
    .bind(entity_id)
    .bind(before.and_then(|b| serde_json::to_string(b).ok()))
    .bind(after.and_then(|a| serde_json::to_string(a).ok()))
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub at: i64,
}

pub async fn list<'c, E: Executor<'c, Database = Any>>(
    e: E,
    entity: Option<&str>,
    limit: i64,
    before_id: Option<&str>,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, actor_id, action, entity, entity_id, before, after, at FROM audit_log \
         WHERE ($1 IS NULL OR entity = $1) AND ($2 IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(entity)
    .bind(before_id)
    .bind(limit)
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditRow {
                id: r.try_get("id")?,
                actor_id: r.try_get("actor_id")?,
                action: r.try_get("action")?,
                entity: r.try_get("entity")?,
                entity_id: r.try_get("entity_id")?,
                before: r.try_get("before")?,
                after: r.try_get("after")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}
