//! The ledger as stored: append-only, one entry per approval however many arrive at once, and a
//! hash chain that `gridline ledger verify` checks and that finds tampering.

use gridline_testkit::{on_both_backends, Db, TestApp};
use reqwest::StatusCode;
use serde_json::json;

use super::{drop_append_only_guard, ledger_verify_cli};
use crate::support::*;

on_both_backends!(
    concurrent_approvals_post_exactly_one_entry,
    posted_entries_cannot_be_updated_or_deleted,
    tampering_is_found_by_verify,
    verification_reads_the_chain_in_chunks_with_any_text,
);

async fn concurrent_approvals_post_exactly_one_entry(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup1 = app.login("supervisor1").await;
    let sup2 = app.login("supervisor2").await;
    // Proposed by a third person, so that four eyes lets either supervisor approve it.
    let proposal = propose_on_case(&app, &app.login("admin").await, case_id).await;
    let path = format!(
        "/v1/deductions/{}/approve",
        proposal["id"].as_str().unwrap()
    );
    let empty = json!({});
    let (a, b) = tokio::join!(
        app.post(&path, Some(&sup1), &empty),
        app.post(&path, Some(&sup2), &empty),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} / {}",
        a.1,
        b.1
    );
    let (_, ledger) = app.get("/v1/ledger", Some(&sup1)).await;
    assert_eq!(ledger["items"].as_array().unwrap().len(), 1);
    let (_, p) = app
        .get(
            &format!("/v1/deductions/{}", proposal["id"].as_str().unwrap()),
            Some(&sup1),
        )
        .await;
    assert_eq!(p["status"], "approved");
}

async fn posted_entries_cannot_be_updated_or_deleted(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let entry = media_entry(&app, &sup, app.zone("Z02")).await;
    let id = entry["id"].as_str().unwrap();
    let pool = &app.state.db.pool;
    let update = sqlx::query("UPDATE ledger_entries SET weighted_points_milli = 0 WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await;
    let err = update
        .expect_err("UPDATE of a posted entry must fail")
        .to_string();
    assert!(err.contains("append-only"), "{err}");
    let delete = sqlx::query("DELETE FROM ledger_entries WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await;
    assert!(delete
        .expect_err("DELETE must fail")
        .to_string()
        .contains("append-only"));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

async fn tampering_is_found_by_verify(app: TestApp) {
    let sup = app.login("supervisor1").await;
    for zone in ["Z01", "Z02", "Z03"] {
        media_entry(&app, &sup, app.zone(zone)).await;
    }
    let (_, report) = app.get("/v1/ledger/verify", Some(&sup)).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], 3);
    let (ok, out) = ledger_verify_cli(&app).await;
    assert!(ok, "`gridline ledger verify` on an intact chain: {out}");
    assert!(out.contains("3 entries"), "{out}");

    // Someone with database access disables the guard and lowers a deduction.
    let pool = &app.state.db.pool;
    drop_append_only_guard(&app).await;
    sqlx::query("UPDATE ledger_entries SET weighted_points_milli = 1 WHERE seq = 2")
        .execute(pool)
        .await
        .unwrap();

    let (checked, first_bad) = gridline_testkit::gridline_server::store::ledger::verify_chain(pool)
        .await
        .unwrap();
    let bad = first_bad.expect("tampering detected");
    assert_eq!(
        (checked, bad.seq, bad.problem.as_str()),
        (1, 2, "hash_mismatch")
    );
    let (_, report) = app.get("/v1/ledger/verify", Some(&sup)).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_bad"]["seq"], 2);
    let (ok, out) = ledger_verify_cli(&app).await;
    assert!(
        !ok,
        "`gridline ledger verify` must fail on a tampered chain: {out}"
    );
    assert!(out.contains("seq 2"), "it names the first bad entry: {out}");
}

/// Verification reads the chain in `seq` ranges checked on their own and joined, and on SQLite
/// in chunks of JSON (`store::ledger::verify_chain`): every split gives the one-stream result,
/// text with escapes hashes as stored, and tampering is found at the same entry wherever the
/// ranges fall: a changed field, a deleted entry, a value of the wrong type in an untyped
/// SQLite column.
async fn verification_reads_the_chain_in_chunks_with_any_text(app: TestApp) {
    use gridline_testkit::gridline_server::store::ledger::{verify_chain, verify_chain_with};
    let sup = app.login("supervisor1").await;
    let mut ids = Vec::new();
    for zone in ["Z01", "Z02", "Z03", "Z04", "Z05"] {
        ids.push(media_entry(&app, &sup, app.zone(zone)).await["id"].clone());
    }
    let reason = "a \"quoted\" reason \\ with é, 日本語,\ta tab and\na line break";
    let (status, reversal) =
        reverse(&app, &sup, ids[1].as_str().unwrap(), "correction", reason).await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["reason"], format!("correction: {reason}"));
    let pool = &app.state.db.pool;
    let chunks: &[Option<i64>] = match app.db {
        Db::Sqlite => &[None, Some(1), Some(2), Some(5), Some(6), Some(4096)],
        // PostgreSQL always streams rows.
        Db::Postgres => &[None],
    };
    let splits = || {
        chunks
            .iter()
            .flat_map(|c| [1, 2, 3, 4, 7].map(move |parts| (*c, parts)))
    };
    for (chunk, parts) in splits() {
        let got = verify_chain_with(pool, chunk, parts).await.unwrap();
        assert_eq!(got, (6, None), "chunk {chunk:?}, {parts} parts");
    }
    assert_eq!(verify_chain(pool).await.unwrap(), (6, None));

    drop_append_only_guard(&app).await;
    // One changed character of the reason, in the last entry.
    sqlx::query("UPDATE ledger_entries SET reason = REPLACE(reason, 'é', 'e') WHERE seq = 6")
        .execute(pool)
        .await
        .unwrap();
    for (chunk, parts) in splits() {
        let (checked, bad) = verify_chain_with(pool, chunk, parts).await.unwrap();
        let bad = bad.expect("tampering detected");
        assert_eq!(
            (checked, bad.seq, bad.problem.as_str()),
            (5, 6, "hash_mismatch"),
            "chunk {chunk:?}, {parts} parts"
        );
    }
    // An entry removed: the next one no longer follows.
    if app.db == Db::Sqlite {
        sqlx::query("DROP TRIGGER ledger_entries_no_delete")
            .execute(pool)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM ledger_entries WHERE seq = 4")
        .execute(pool)
        .await
        .unwrap();
    let fifth = ids[4].as_str().unwrap();
    for (chunk, parts) in splits() {
        let (checked, bad) = verify_chain_with(pool, chunk, parts).await.unwrap();
        let bad = bad.expect("a missing entry detected");
        assert_eq!(
            (checked, bad.seq, bad.id.as_str(), bad.problem.as_str()),
            (3, 5, fifth, "seq_gap"),
            "chunk {chunk:?}, {parts} parts"
        );
    }
    if app.db == Db::Sqlite {
        // Points stored as text: never reported intact.
        sqlx::query("UPDATE ledger_entries SET weighted_points_milli = 'ten' WHERE seq = 3")
            .execute(pool)
            .await
            .unwrap();
        for (chunk, parts) in splits() {
            let got = verify_chain_with(pool, chunk, parts).await;
            assert!(
                got.as_ref().is_err() || got.as_ref().is_ok_and(|(_, bad)| bad.is_some()),
                "chunk {chunk:?}, {parts} parts: {got:?}"
            );
        }
    }
}
