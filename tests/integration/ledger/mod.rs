//! The deduction ledger: from a phone's capture to the period's ranking, and the guarantees
//! around it — verified evidence, one entry per approval, append-only storage, a verifiable
//! chain, reversals, closed periods, reproducible rankings and exports.

mod approval;
mod chain;
mod periods;
mod proposals;
mod rankings;

use gridline_testkit::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

/// What someone with database access would do first: drop the trigger refusing UPDATEs of
/// ledger entries.
async fn drop_append_only_guard(app: &TestApp) {
    let drop_guard = match app.db {
        Db::Sqlite => "DROP TRIGGER ledger_entries_no_update",
        Db::Postgres => "DROP TRIGGER ledger_entries_no_update ON ledger_entries",
    };
    sqlx::query(drop_guard)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
}

/// Runs `gridline ledger verify` (the real CLI) against the test server's database.
async fn ledger_verify_cli(app: &TestApp) -> (bool, String) {
    gridline_cli(app, &["ledger", "verify"]).await
}

async fn proposal_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM deduction_proposals")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

/// Proposes a media deduction found at `found_at` in Z01 as supervisor1; returns its id.
async fn media_proposal_at(app: &TestApp, found_at: &str) -> Value {
    let (status, p) = app
        .post(
            "/v1/deductions",
            Some(&app.login("supervisor1").await),
            &json!({"zone_id": app.zone("Z01"), "source": "media", "rule_code": "MEDIA",
                "found_at": found_at}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    p["id"].clone()
}
