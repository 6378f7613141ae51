//! Background work each server instance runs next to the HTTP server.
//!
//! Several instances may run the same job at once: each run is one write transaction whose
//! effect does not depend on how many others ran, so no leader election is needed.

use std::time::Duration;

use crate::store::{changes, now_ms, Db};

/// How often the change log is compacted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Compacts the change log once: rows superseded by a later row of the same entity, and
/// tombstones, older than `sync.tombstone_retention_days`. Cursors from before the deleted rows
/// then get `reset_required`. Returns the number of rows deleted.
pub async fn prune_changes(db: &Db, retention_days: u32) -> Result<u64, sqlx::Error> {
    let retention_ms = i64::from(retention_days) * 86_400_000;
    let mut tx = db.begin_write().await?;
    let deleted = changes::prune(tx.conn(), now_ms() - retention_ms).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Runs [`prune_changes`] now and then every [`PRUNE_EVERY`], until the task is aborted.
pub fn spawn_change_pruner(db: Db, retention_days: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match prune_changes(&db, retention_days).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "change log compacted"),
                // Transient (e.g. the database is restarting): the next tick tries again.
                Err(e) => tracing::warn!(error = %e, "change log compaction failed"),
            }
        }
    })
}

/// Erases the name and phone number of every caller kept past their retention
/// (`intake.caller_retention_days` from the call). Returns how many were erased.
pub async fn erase_expired_callers(db: &Db) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let erased = crate::store::intake::erase_expired(tx.conn(), now_ms()).await?;
    tx.commit().await?;
    Ok(erased)
}

/// Runs [`erase_expired_callers`] now and then every [`PRUNE_EVERY`], until aborted.
pub fn spawn_caller_eraser(db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match erase_expired_callers(&db).await {
                Ok(0) => {}
                Ok(erased) => tracing::info!(erased, "callers past their retention erased"),
                Err(e) => tracing::warn!(error = %e, "erasing expired callers failed"),
            }
        }
    })
}

/// Runs `plans::refresh_upcoming` now and then every [`PRUNE_EVERY`], until aborted: the
/// phones' lists of next occurrences stay current within the hour.
pub fn spawn_plan_refresher(db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match crate::plans::refresh_upcoming(&db, now_ms()).await {
                Ok(0) => {}
                Ok(plans) => tracing::info!(plans, "plans' next occurrences refreshed"),
                Err(e) => tracing::warn!(error = %e, "refreshing plans failed"),
            }
        }
    })
}
