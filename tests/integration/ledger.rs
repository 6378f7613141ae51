//! The deduction ledger: from a phone's capture to the period's ranking, and the guarantees
//! around it — verified evidence, one entry per approval, append-only storage, a verifiable
//! chain, reversals, closed periods, reproducible rankings and exports.

use gridline_tests::{on_both_backends, Db, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

on_both_backends!(
    a_case_goes_from_phone_to_ranking_and_back_to_the_phone,
    approval_with_incomplete_evidence_is_refused,
    concurrent_approvals_post_exactly_one_entry,
    posted_entries_cannot_be_updated_or_deleted,
    tampering_is_found_by_verify,
    verification_reads_the_chain_in_chunks_with_any_text,
    reversals_are_single_and_final,
    closed_period_takes_no_entries_and_corrections_go_to_the_open_period,
    rankings_are_identical_when_recomputed_and_exports_agree,
    an_open_period_s_ranking_is_kept_until_something_is_written,
    resent_proposals_are_recognised_by_their_proposal_id,
    a_case_takes_one_deduction_until_it_is_reversed,
    concurrent_proposals_and_approvals_on_a_case_post_one_entry,
    the_ranking_query_ranks_as_the_reference_scoring,
    a_proposal_needs_a_filed_case_and_says_where_the_evidence_stands,
    four_eyes_another_supervisor_approves_and_the_entry_names_both,
    a_period_closes_after_its_end_with_nothing_pending_and_opens_the_next,
    an_early_close_by_an_admin_leaves_the_rest_of_the_month_to_the_next_period,
);

/// With `deductions.require_photo_views` (on by default, off in the other tests) an approver
/// must have opened every evidence photo, as original or preview; thumbnails do not count.
mod evidence_seen_before_approval {
    use super::*;

    async fn spawn(db: Db) -> Option<TestApp> {
        TestApp::spawn_with(db, |c| c.deductions.require_photo_views = true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_an_approver_must_have_opened_every_evidence_photo() {
        an_approver_must_have_opened_every_evidence_photo(
            spawn(Db::Sqlite).await.expect("sqlite app"),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_an_approver_must_have_opened_every_evidence_photo() {
        if let Some(app) = spawn(Db::Postgres).await {
            an_approver_must_have_opened_every_evidence_photo(app).await;
        }
    }

    async fn an_approver_must_have_opened_every_evidence_photo(app: TestApp) {
        let (_, case_id) = filed_case(&app).await;
        let sup1 = app.login("supervisor1").await;
        let sup2 = app.login("supervisor2").await;
        let proposal = propose_on_case(&app, &sup1, case_id).await;
        let approve_path = format!(
            "/v1/deductions/{}/approve",
            proposal["id"].as_str().unwrap()
        );
        let (status, err) = app.post(&approve_path, Some(&sup2), &json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{err}");
        assert_eq!(err["code"], "evidence_not_viewed");
        let unviewed = err["details"]["unviewed"].as_array().unwrap().clone();
        assert_eq!(unviewed.len(), 1, "{err}");
        let sha = unviewed[0].as_str().unwrap();
        // The proposer's look does not count for the approver; a thumbnail is not a look.
        let (status, _) = app
            .get(
                &format!("/v1/photos/{sha}/link?variant=original"),
                Some(&sup1),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .get(&format!("/v1/photos/{sha}/link?variant=thumb"), Some(&sup2))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, err) = app.post(&approve_path, Some(&sup2), &json!({})).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::CONFLICT, Some("evidence_not_viewed"))
        );
        // Opened: approved.
        let (status, _) = app
            .get(
                &format!("/v1/photos/{sha}/link?variant=original"),
                Some(&sup2),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, entry) = app.post(&approve_path, Some(&sup2), &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{entry}");
        assert_eq!(entry["evidence"], json!([sha]));
    }
}

/// A one-person office turns four eyes off: the proposer approves.
mod one_person_office {
    use super::*;

    async fn spawn(db: Db) -> Option<TestApp> {
        TestApp::spawn_with(db, |c| c.deductions.four_eyes = false).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_the_proposer_approves() {
        the_proposer_approves(spawn(Db::Sqlite).await.expect("sqlite app")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_the_proposer_approves() {
        if let Some(app) = spawn(Db::Postgres).await {
            the_proposer_approves(app).await;
        }
    }

    async fn the_proposer_approves(app: TestApp) {
        let login = app.login_full("supervisor1").await;
        let sup = login["access_token"].as_str().unwrap();
        let (status, p) = app
            .post(
                "/v1/deductions",
                Some(sup),
                &json!({"zone_id": app.zone("Z01"), "source": "media", "rule_code": "MEDIA"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        let entry = approve(&app, sup, &p).await;
        assert_eq!(entry["approved_by"], login["user"]["id"]);
        assert_eq!(entry["proposed_by"], login["user"]["id"]);
    }
}

async fn a_case_goes_from_phone_to_ranking_and_back_to_the_phone(app: TestApp) {
    // The inspector captures a problem with a photo offline and syncs; the photo arrives.
    let (inspector, case_id) = synced_case(&app).await;
    let (_, cursor) = inspector.pull_all(&app, None).await;
    verify_evidence(&app, case_id).await;

    // The supervisor files it and dispatches it to the zone's accountable people.
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, case_id, json!({"action": "file"})).await;
    let dispatched = must_transition(
        &app,
        &sup,
        case_id,
        json!({"action": "dispatch", "target": "accountable"}),
    )
    .await;
    assert_eq!(dispatched["state"], "dispatched");
    let (_, wf) = app
        .get(&format!("/v1/cases/{case_id}/workflow"), Some(&sup))
        .await;
    assert_eq!(wf["assignees"].as_array().unwrap().len(), 2, "{wf}");
    assert!(wf["deadline"].is_string());
    assert_eq!(wf["overdue"], false);

    // The section chief's phone reports it rectified with an after photo.
    let mut chief = gridline_tests::Phone::enrol(&app, "sectionchief1").await;
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let after_sha = "ab".repeat(32);
    let op = chief.op(
        "case.transition@1",
        json!({
            "case_id": case_id, "base_version": dispatched["version"], "action": "report_rectified",
            "comment": "bin emptied",
            "photos": [{"sha256": after_sha, "size": 90000, "captured_at": now, "role": "after"}],
        }),
    );
    let (status, body) = chief.push(&app, &[op]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "applied", "{body}");
    verify_evidence(&app, case_id).await;

    // The supervisor verifies and closes, then approves the deduction.
    let closed = must_transition(&app, &sup, case_id, json!({"action": "close"})).await;
    assert_eq!(closed["state"], "closed");
    let proposal = propose_on_case(&app, &sup, case_id).await;
    // Four eyes: another supervisor approves it.
    let sup2 = app.login("supervisor2").await;
    let (status, entry) = app
        .post(
            &format!(
                "/v1/deductions/{}/approve",
                proposal["id"].as_str().unwrap()
            ),
            Some(&sup2),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    // Z01's coefficient in the demo is 1.0; the rule is 0.2 points.
    assert_eq!(entry["coefficient"], 1.0);
    assert_eq!(entry["raw_points"], 0.2);
    assert_eq!(entry["weighted_points"], 0.2);
    assert_eq!(entry["case_id"], json!(case_id));
    assert_eq!(entry["case_version"], closed["version"]);
    let mut evidence: Vec<String> = closed["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sha256"].as_str().unwrap().to_owned())
        .collect();
    evidence.sort();
    assert_eq!(entry["evidence"], json!(evidence));
    assert!(evidence.contains(&after_sha));
    let roster: Vec<&str> = entry["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["username"].as_str().unwrap())
        .collect();
    assert_eq!(roster, ["roadchief1", "sectionchief1"]);
    assert_eq!(entry["prev_hash"], "0".repeat(64));

    // The period closes (early, by the admin); the ranking reflects the deduction.
    let period = current_period(&app, &sup).await;
    let pid = period["id"].as_str().unwrap();
    let (status, closed_period) = app
        .post(
            &format!("/v1/periods/{pid}/close"),
            Some(&app.login("admin").await),
            &json!({"early": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed_period}");
    assert_eq!(closed_period["period"]["status"], "closed");
    let (_, ranking) = app
        .get(&format!("/v1/periods/{pid}/ranking"), Some(&sup))
        .await;
    assert_eq!(ranking["formula_version"], "score-v1");
    let zones = ranking["zones"].as_array().unwrap();
    let z01 = zones.iter().find(|z| z["zone_code"] == "Z01").unwrap();
    assert_eq!(z01["score"], 99.8);
    assert_eq!(z01["rank"], 8, "the only zone with a deduction comes last");
    assert_eq!(zones[0]["rank"], 1);
    assert_eq!(z01["by_rule"][0]["key"], "INSP-GARBAGE");
    assert_eq!(
        z01["by_work_category"][0]["key"],
        "environmental_sanitation"
    );
    assert_eq!(z01["by_source"][0]["key"], "inspection");
    let ind = &z01["indicators"];
    assert_eq!(
        (
            ind["cases_found"].clone(),
            ind["filed"].clone(),
            ind["closed"].clone(),
            ind["closed_on_time"].clone()
        ),
        (json!(1), json!(1), json!(1), json!(1))
    );

    // The inspector's phone sees the final state, locked, after a pull.
    let (changes, _) = inspector.pull_all(&app, Some(cursor)).await;
    let last = changes
        .iter()
        .rev()
        .find(|c| c["entity"] == "case" && c["id"] == json!(case_id))
        .expect("the case comes down");
    assert_eq!(last["data"]["state"], "closed");
    assert_eq!(last["data"]["locked"], true);
}

async fn approval_with_incomplete_evidence_is_refused(app: TestApp) {
    let (_, case_id) = synced_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, case_id, json!({"action": "file"})).await;
    let proposal = propose_on_case(&app, &sup, case_id).await;
    let pid = proposal["id"].as_str().unwrap();
    let sup2 = app.login("supervisor2").await;
    // The photo was declared but its bytes never arrived.
    let (status, body) = app
        .post(
            &format!("/v1/deductions/{pid}/approve"),
            Some(&sup2),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "evidence_incomplete");
    let (_, ledger) = app.get("/v1/ledger", Some(&sup)).await;
    assert_eq!(ledger["items"], json!([]));
    assert_eq!(case(&app, &sup, case_id).await["locked"], false);

    // Once verified, the same proposal is approved.
    verify_evidence(&app, case_id).await;
    let (status, body) = app
        .post(
            &format!("/v1/deductions/{pid}/approve"),
            Some(&sup2),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(case(&app, &sup, case_id).await["locked"], true);
    // Inspectors cannot approve or propose.
    let inspector = app.login("inspector1").await;
    let (status, _) = app
        .post(
            "/v1/deductions",
            Some(&inspector),
            &json!({"case_id": case_id, "rule_code": "INSP-GARBAGE"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

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

    let (checked, first_bad) = gridline_tests::gridline_server::store::ledger::verify_chain(pool)
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

/// Runs `gridline ledger verify` (the real CLI) against the test server's database.
async fn ledger_verify_cli(app: &TestApp) -> (bool, String) {
    gridline_cli(app, &["ledger", "verify"]).await
}

/// Verification reads the chain in `seq` ranges checked on their own and joined, and on SQLite
/// in chunks of JSON (`store::ledger::verify_chain`): every split gives the one-stream result,
/// text with escapes hashes as stored, and tampering is found at the same entry wherever the
/// ranges fall: a changed field, a deleted entry, a value of the wrong type in an untyped
/// SQLite column.
async fn verification_reads_the_chain_in_chunks_with_any_text(app: TestApp) {
    use gridline_tests::gridline_server::store::ledger::{verify_chain, verify_chain_with};
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

async fn reversals_are_single_and_final(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let entry = media_entry(&app, &sup, app.zone("Z04")).await;
    let id = entry["id"].as_str().unwrap();
    let (status, body) = reverse(&app, &sup, id, "correction", "").await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {body}"
    );

    let (status, reversal) = reverse(
        &app,
        &sup,
        id,
        "appeal_upheld",
        "the zone showed the report was about Z05",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["kind"], "reversal");
    assert_eq!(reversal["reverses_id"], entry["id"]);
    assert_eq!(
        reversal["weighted_points"],
        -entry["weighted_points"].as_f64().unwrap()
    );
    assert_eq!(reversal["coefficient"], entry["coefficient"]);
    assert_eq!(reversal["prev_hash"], entry["hash"]);

    let (status, body) = reverse(&app, &sup, id, "appeal_upheld", "again").await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("conflict")),
        "{body}"
    );
    let rid = reversal["id"].as_str().unwrap();
    let (status, body) = reverse(&app, &sup, rid, "appeal_upheld", "undo").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("reversal cannot be reversed"));

    let period = current_period(&app, &sup).await;
    let (_, ranking) = app
        .get(
            &format!("/v1/periods/{}/ranking", period["id"].as_str().unwrap()),
            Some(&sup),
        )
        .await;
    let z04 = ranking["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone_code"] == "Z04")
        .unwrap()
        .clone();
    assert_eq!(
        (
            z04["score"].clone(),
            z04["entries"].clone(),
            z04["reversals"].clone()
        ),
        (json!(100.0), json!(2), json!(1))
    );
}

async fn closed_period_takes_no_entries_and_corrections_go_to_the_open_period(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let admin = app.login("admin").await;
    let zone = app.zone("Z03");
    let entry = media_entry(&app, &sup, zone).await;
    let (_, pending) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": zone, "source": "leader_criticism", "rule_code": "LEADER"}),
        )
        .await;
    let period = current_period(&app, &sup).await;
    let pid = period["id"].as_str().unwrap();
    // Closed early by the admin, deciding the pending proposal in the same step.
    let close = json!({"early": true, "decisions": [
        {"proposal_id": pending["id"], "decision": "reject", "reason": "not ours"}]});
    let (status, body) = app
        .post(&format!("/v1/periods/{pid}/close"), Some(&admin), &close)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            &format!("/v1/periods/{pid}/close"),
            Some(&admin),
            &json!({"early": true}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("period_closed"))
    );

    // A new proposal cannot post into it.
    let found_in_it = period["starts_at"].clone();
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": zone, "source": "media", "rule_code": "MEDIA", "found_at": found_in_it}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("period_closed")),
        "{body}"
    );
    // Nor can raw SQL: the database refuses entries into a closed period.
    let mut forged: Value = entry.clone();
    forged["id"] = json!(Uuid::now_v7());
    let insert = sqlx::query(
        "INSERT INTO ledger_entries (seq, id, kind, zone_id, period_id, rulebook_version, rule_code, source, \
         raw_points_milli, coefficient_milli, weighted_points_milli, roster, approved_by, approved_at, found_at, \
         evidence, prev_hash, hash) VALUES (99, $1, 'deduction', $2, $3, 1, 'MEDIA', 'media', 1, 1, 1, '[]', 'x', 1, 1, '[]', 'x', 'x')",
    )
    .bind(forged["id"].as_str().unwrap())
    .bind(zone.to_string())
    .bind(pid)
    .execute(&app.state.db.pool)
    .await;
    assert!(insert
        .expect_err("closed period")
        .to_string()
        .contains("closed"));

    // A correction to the closed period posts in the next open period, pointing at the original.
    let ends = period["ends_at"].as_str().unwrap();
    let next_end =
        time::OffsetDateTime::parse(ends, &time::format_description::well_known::Rfc3339).unwrap()
            + time::Duration::days(31);
    let (status, next) = app
        .post(
            "/v1/periods",
            Some(&admin),
            &json!({"code": "next", "starts_at": ends, "ends_at": next_end.format(&time::format_description::well_known::Rfc3339).unwrap()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{next}");
    let (status, reversal) = reverse(
        &app,
        &sup,
        entry["id"].as_str().unwrap(),
        "correction",
        "wrong zone",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["period_id"], next["id"]);
    assert_eq!(reversal["reverses_id"], entry["id"]);
}

async fn rankings_are_identical_when_recomputed_and_exports_agree(app: TestApp) {
    let sup = app.login("supervisor1").await;
    for zone in ["Z02", "Z05", "Z05", "Z07"] {
        media_entry(&app, &sup, app.zone(zone)).await;
    }
    let period = current_period(&app, &sup).await;
    let pid = period["id"].as_str().unwrap().to_owned();
    let admin = app.login("admin").await;
    app.post(
        &format!("/v1/periods/{pid}/close"),
        Some(&admin),
        &json!({"early": true}),
    )
    .await;

    let path = format!("/v1/periods/{pid}/ranking");
    let (_, first) = get_bytes(&app, &path, &sup).await;
    let (_, second) = get_bytes(&app, &path, &sup).await;
    assert_eq!(first, second, "byte-identical when recomputed");
    let (_, stored, sha) = gridline_tests::gridline_server::store::ledger::result(
        &app.state.db.pool,
        pid.parse().unwrap(),
    )
    .await
    .unwrap()
    .expect("stored at closing");
    assert_eq!(
        stored.as_bytes(),
        first.as_slice(),
        "the same bytes as stored when it closed"
    );
    use sha2::Digest;
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&first)));
    let ranking: Value = serde_json::from_slice(&first).unwrap();
    let z05 = ranking["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone_code"] == "Z05")
        .unwrap()
        .clone();
    // Two media reports at 2 points, Z05's coefficient 0.8: 100 − 3.2.
    assert_eq!(z05["score"], 96.8);
    assert_eq!(
        ranking["zones"].as_array().unwrap().last().unwrap()["zone_code"],
        "Z05"
    );

    // Ledger and ranking exports: the XLSX reads back with the same totals as the CSV.
    for what in ["ledger", "ranking"] {
        let column = header(if what == "ledger" {
            "weighted_points"
        } else {
            "score"
        });
        let (status, csv_bytes) = get_bytes(
            &app,
            &format!("/v1/exports/{what}?period_id={pid}&format=csv"),
            &sup,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
        let col = reader
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == column)
            .unwrap();
        let csv_total: f64 = reader
            .records()
            .map(|r| r.unwrap()[col].parse::<f64>().unwrap())
            .sum();
        let (status, xlsx_bytes) = get_bytes(
            &app,
            &format!("/v1/exports/{what}?period_id={pid}&format=xlsx"),
            &sup,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        use calamine::Reader;
        let mut book = calamine::Xlsx::new(std::io::Cursor::new(xlsx_bytes)).unwrap();
        let sheet = book.worksheet_range(what).unwrap();
        let mut rows = sheet.rows();
        let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
        let xcol = header.iter().position(|h| *h == column).unwrap();
        let mut n = 0;
        let xlsx_total: f64 = rows
            .map(|r| {
                n += 1;
                match &r[xcol] {
                    calamine::Data::Float(f) => *f,
                    calamine::Data::Int(i) => *i as f64,
                    other => panic!("not a number: {other:?}"),
                }
            })
            .sum();
        let expected_rows = if what == "ledger" { 4 } else { 8 };
        assert_eq!(n, expected_rows);
        assert!(
            (csv_total - xlsx_total).abs() < 1e-9,
            "{what}: {csv_total} vs {xlsx_total}"
        );
    }
    // 4 media reports weighted by 0.95, 0.8, 0.8, 0.7 (Z02, Z05, Z05, Z07).
    let (_, csv_bytes) = get_bytes(
        &app,
        &format!("/v1/exports/ledger?period_id={pid}&format=csv"),
        &sup,
    )
    .await;
    let text = String::from_utf8(csv_bytes).unwrap();
    assert_eq!(text.lines().count(), 5);
}

/// An open period's ranking is kept between requests (`ledger::rankings`) and recomputed as
/// soon as the ledger or the change log moves: a row slipped into the database behind the
/// server's back does not show, the next entry posted brings it in with the entry.
async fn an_open_period_s_ranking_is_kept_until_something_is_written(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let period = current_period(&app, &sup).await;
    let path = format!("/v1/periods/{}/ranking", period["id"].as_str().unwrap());
    let z05 = |ranking: &Value| -> Value {
        ranking["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["zone_code"] == "Z05")
            .unwrap()
            .clone()
    };
    let (_, before) = app.get(&path, Some(&sup)).await;
    assert_eq!(z05(&before)["indicators"]["cases_found"], 0, "{before}");

    // A case found now in Z05, written straight into the table: no entry, no change.
    let now = gridline_tests::gridline_server::store::now_ms();
    sqlx::query(
        "INSERT INTO cases (id, zone_id, reporter_id, source, state, category_code, description, \
         severity, lat, lon, accuracy_m, captured_at, queued_at, received_at, version, flags, \
         created_at, updated_at) \
         SELECT $1, $2, id, 'inspector', 'reported', 'C01', '', 'medium', 0, 0, 1, $3, $3, $3, \
         1, '[]', $3, $3 FROM users WHERE username = 'supervisor1'",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(app.zone("Z05").to_string())
    .bind(now)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let (_, kept) = app.get(&path, Some(&sup)).await;
    assert_eq!(kept, before, "nothing was written through the server");

    media_entry(&app, &sup, app.zone("Z05")).await;
    let (_, after) = app.get(&path, Some(&sup)).await;
    assert_eq!(z05(&after)["indicators"]["cases_found"], 1, "{after}");
    assert_eq!(z05(&after)["entries"], 1, "{after}");
}

async fn proposal_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM deduction_proposals")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn resent_proposals_are_recognised_by_their_proposal_id(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    let id = Uuid::now_v7();
    let body =
        json!({"proposal_id": id, "case_id": case_id, "rule_code": "INSP-GARBAGE", "note": "bin"});
    let (status, first) = app.post("/v1/deductions", Some(&sup), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["id"], json!(id));
    // The answer was lost; the client resends: the same proposal, nothing new.
    let (status, again) = app.post("/v1/deductions", Some(&sup), &body).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert_eq!(proposal_count(&app).await, 1);
    // Different content under the same id is refused, whatever else it says.
    for other in [
        json!({"proposal_id": id, "case_id": case_id, "rule_code": "INSP-GARBAGE", "note": "other"}),
        json!({"proposal_id": id, "zone_id": app.zone("Z02"), "source": "media", "rule_code": "MEDIA"}),
    ] {
        let (status, err) = app.post("/v1/deductions", Some(&sup), &other).await;
        assert_eq!(
            (status, err["code"].clone()),
            (StatusCode::CONFLICT, json!("proposal_id_reused")),
            "{err}"
        );
    }
    // Another supervisor resending it is not the same request either.
    let sup2 = app.login("supervisor2").await;
    let (status, err) = app.post("/v1/deductions", Some(&sup2), &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "proposal_id_reused");
    // After the approval a resend answers the proposal as it stands.
    let (status, entry) = app
        .post(
            &format!("/v1/deductions/{id}/approve"),
            Some(&sup2),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    let (status, again) = app.post("/v1/deductions", Some(&sup), &body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "approved");
    assert_eq!(again["ledger_entry_id"], entry["id"]);
    assert_eq!(proposal_count(&app).await, 1);

    // A direct finding: the same with the id; without one every request is a new proposal.
    let media = json!({"proposal_id": Uuid::now_v7(), "zone_id": app.zone("Z02"), "source": "media",
        "rule_code": "MEDIA", "note": "evening news"});
    let (status, first) = app.post("/v1/deductions", Some(&sup), &media).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app.post("/v1/deductions", Some(&sup), &media).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert_eq!(proposal_count(&app).await, 2);
    let mut plain = media.clone();
    plain.as_object_mut().unwrap().remove("proposal_id");
    for _ in 0..2 {
        let (status, p) = app.post("/v1/deductions", Some(&sup), &plain).await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
    }
    assert_eq!(proposal_count(&app).await, 4);
}

async fn a_case_takes_one_deduction_until_it_is_reversed(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    let refused = |code: &'static str| {
        let (app, sup) = (&app, sup.clone());
        async move {
            let (status, body) = app
                .post(
                    "/v1/deductions",
                    Some(&sup),
                    &json!({"case_id": case_id, "rule_code": "INSP-GARBAGE"}),
                )
                .await;
            assert_eq!(
                (status, body["code"].clone()),
                (StatusCode::CONFLICT, json!(code)),
                "{body}"
            );
            body
        }
    };
    let first = propose_on_case(&app, &sup, case_id).await;
    let err = refused("proposal_pending").await;
    assert_eq!(err["details"]["proposal_id"], first["id"]);
    // A rejected proposal frees the case.
    let (status, body) = app
        .post(
            &format!("/v1/deductions/{}/reject", first["id"].as_str().unwrap()),
            Some(&sup),
            &json!({"reason": "wrong rule"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = propose_on_case(&app, &sup, case_id).await;
    let sup2 = app.login("supervisor2").await;
    let entry = approve(&app, &sup2, &second).await;
    let err = refused("case_already_deducted").await;
    assert_eq!(err["details"]["proposal_id"], second["id"]);
    // A reversal frees it for a corrected deduction.
    let (status, reversal) = reverse(
        &app,
        &sup,
        entry["id"].as_str().unwrap(),
        "correction",
        "wrong rule",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    let third = propose_on_case(&app, &sup, case_id).await;
    approve(&app, &sup2, &third).await;
    refused("case_already_deducted").await;
    let (_, ledger) = app.get("/v1/ledger", Some(&sup)).await;
    let kinds: Vec<&str> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["deduction", "reversal", "deduction"]);
}

async fn concurrent_proposals_and_approvals_on_a_case_post_one_entry(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup1 = app.login("supervisor1").await;
    let sup2 = app.login("supervisor2").await;
    let body = json!({"case_id": case_id, "rule_code": "INSP-GARBAGE"});
    let (a, b) = tokio::join!(
        app.post("/v1/deductions", Some(&sup1), &body),
        app.post("/v1/deductions", Some(&sup2), &body),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{} / {}",
        a.1,
        b.1
    );
    assert_eq!(proposal_count(&app).await, 1);
    let made = if a.0 == StatusCode::CREATED { a.1 } else { b.1 };
    let first = made["id"].as_str().unwrap().to_owned();
    // A second pending proposal on the case that got past the API (as one made before the
    // rule could have): the approval itself refuses a second deduction, under the case's lock.
    let second = Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO deduction_proposals (id, case_id, zone_id, period_id, source, rulebook_id, \
         rule_code, raw_points_milli, category_code, found_at, note, status, proposed_by, \
         proposed_at) SELECT $1, case_id, zone_id, period_id, source, rulebook_id, rule_code, \
         raw_points_milli, category_code, found_at, note, status, proposed_by, proposed_at \
         FROM deduction_proposals WHERE id = $2",
    )
    .bind(&second)
    .bind(&first)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let empty = json!({});
    let (path1, path2) = (
        format!("/v1/deductions/{first}/approve"),
        format!("/v1/deductions/{second}/approve"),
    );
    // Approved by someone who proposed neither (four eyes).
    let admin = app.login("admin").await;
    let (a, b) = tokio::join!(
        app.post(&path1, Some(&admin), &empty),
        app.post(&path2, Some(&admin), &empty),
    );

    let mut answers = [(a.0, a.1["code"].clone()), (b.0, b.1["code"].clone())];
    answers.sort_by_key(|(s, _)| *s);
    assert_eq!(
        answers,
        [
            (StatusCode::OK, Value::Null),
            (StatusCode::CONFLICT, json!("case_already_deducted"))
        ],
        "{} / {}",
        a.1,
        b.1
    );
    let (_, ledger) = app.get("/v1/ledger", Some(&sup1)).await;
    assert_eq!(ledger["items"].as_array().unwrap().len(), 1);
}

/// The ranking sums the period's entries in SQL (`store::ledger::scored_groups`); it must rank
/// exactly as the reference, `scoring::compute` over every entry, on a ledger with reversals,
/// several zones, sources and rules, unclassified entries and another period's entries.
async fn the_ranking_query_ranks_as_the_reference_scoring(app: TestApp) {
    use gridline_tests::gridline_server::ledger::chain::{self, Entry};
    use gridline_tests::gridline_server::ledger::rankings::compute_ranking;
    use gridline_tests::gridline_server::ledger::scoring;
    use gridline_tests::gridline_server::store::{ledger as store, reference};
    let sup = app.login("supervisor1").await;
    let pool = &app.state.db.pool;
    let pid: Uuid = current_period(&app, &sup).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let other = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO periods (id, code, starts_at, ends_at, status, created_at) \
         VALUES ($1, 'OTHER', 4000000000000, 4100000000000, 'open', 0)",
    )
    .bind(other.to_string())
    .execute(pool)
    .await
    .unwrap();

    let zones = ["Z01", "Z02", "Z03", "Z05", "Z08"];
    let rules = ["INSP-GARBAGE", "MEDIA-REPORT", "INSP-ROAD"];
    let categories = [Some("greening"), None, Some("unclassified"), Some("roads")];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    let mut posted: Vec<Entry> = Vec::new();
    let mut tx = app.state.db.begin_write().await.unwrap();
    for i in 0..300u64 {
        let reversible: Vec<&Entry> = posted
            .iter()
            .filter(|e| {
                e.kind == "deduction" && !posted.iter().any(|r| r.reverses_id == Some(e.id.clone()))
            })
            .collect();
        let e = if i % 7 == 6 && !reversible.is_empty() {
            let original = reversible[next(reversible.len() as u64) as usize];
            gridline_tests::kit::reversal_of(original, "correction")
        } else {
            let raw = 500 * (1 + next(6) as i64);
            let coefficient = 700 + 50 * next(8) as i64;
            Entry {
                seq: 0,
                id: Uuid::now_v7().to_string(),
                kind: "deduction".into(),
                zone_id: app.zone(zones[next(5) as usize]).to_string(),
                period_id: if next(10) == 0 { other } else { pid }.to_string(),
                rulebook_version: 1,
                rule_code: rules[next(3) as usize].into(),
                source: if next(2) == 0 { "inspection" } else { "media" }.into(),
                category_code: None,
                work_category: categories[next(4) as usize].map(str::to_owned),
                raw_points_milli: raw,
                coefficient_milli: coefficient,
                weighted_points_milli: chain::weighted_milli(raw, coefficient),
                roster: "[]".into(),
                approved_by: "test".into(),
                approved_at: i as i64,
                found_at: i as i64,
                case_id: None,
                case_version: None,
                evidence: "[]".into(),
                proposal_id: None,
                reverses_id: None,
                reason: None,
                prev_hash: String::new(),
                hash: String::new(),
                proposed_by: None,
            }
        };
        posted.push(store::append(tx.conn(), e).await.unwrap());
    }
    tx.commit().await.unwrap();
    let in_period: Vec<&Entry> = posted
        .iter()
        .filter(|e| e.period_id == pid.to_string())
        .collect();
    assert!(in_period.iter().filter(|e| e.kind == "reversal").count() > 10);
    assert!(in_period.iter().any(|e| e.work_category.is_none()));
    assert!(in_period.len() < posted.len(), "some in the other period");

    let period = reference::period(pool, pid).await.unwrap().unwrap();
    let route = compute_ranking(&app.state.db, &period).await.unwrap();
    let zone_refs = store::zone_refs(pool).await.unwrap();
    let entries = store::scored_entries(pool, pid).await.unwrap();
    assert_eq!(entries.len(), in_period.len());
    let indicators = route
        .zones
        .iter()
        .map(|z| (z.zone_id.clone(), z.indicators))
        .collect();
    let reference = scoring::compute(
        &pid.to_string(),
        &period.code,
        &zone_refs,
        &entries,
        &indicators,
    );
    assert_eq!(
        serde_json::to_string_pretty(&route).unwrap(),
        serde_json::to_string_pretty(&reference).unwrap()
    );
    let counted: i64 = route.zones.iter().map(|z| z.entries).sum();
    assert_eq!(counted, in_period.len() as i64);
    assert!(route.zones.iter().any(|z| z.reversals > 0 && z.entries > 0));
    assert!(
        route.zones.iter().any(|z| z.entries == 0),
        "a zone with none"
    );
    let (checked, first_bad) = store::verify_chain(pool).await.unwrap();
    assert_eq!((checked, first_bad), (posted.len() as i64, None));
}

async fn a_proposal_needs_a_filed_case_and_says_where_the_evidence_stands(app: TestApp) {
    let (_, case_id) = synced_case(&app).await;
    let sup = app.login("supervisor1").await;
    let body = json!({"case_id": case_id, "rule_code": "INSP-GARBAGE"});
    let propose = || app.post("/v1/deductions", Some(&sup), &body);
    // Not filed, and its photo has not arrived: the proposal is refused with both facts.
    let (status, body) = propose().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "case_not_filed", "{body}");
    assert_eq!(body["details"]["state"], "reported", "{body}");
    assert_eq!(body["details"]["evidence_complete"], false, "{body}");
    assert_eq!(
        body["details"]["photos"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    let (_, proposals) = app.get("/v1/deductions", Some(&sup)).await;
    assert_eq!(proposals, json!([]));

    // The photo arrives: still not filed, and the details say the evidence is complete.
    verify_evidence(&app, case_id).await;
    let (status, body) = propose().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "case_not_filed", "{body}");
    assert_eq!(body["details"]["evidence_complete"], true, "{body}");

    // Filed, it is proposed.
    must_transition(&app, &sup, case_id, json!({"action": "file"})).await;
    let (status, body) = propose().await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn four_eyes_another_supervisor_approves_and_the_entry_names_both(app: TestApp) {
    let proposer = app.login_full("supervisor1").await;
    let sup1 = proposer["access_token"].as_str().unwrap();
    let (status, p) = app
        .post(
            "/v1/deductions",
            Some(sup1),
            &json!({"zone_id": app.zone("Z01"), "source": "media", "rule_code": "MEDIA"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let pid = p["id"].as_str().unwrap();

    // The proposer's own approval is refused and changes nothing.
    let (status, body) = app
        .post(
            &format!("/v1/deductions/{pid}/approve"),
            Some(sup1),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "self_approval");
    assert_eq!(body["details"]["proposed_by"], proposer["user"]["id"]);
    let (_, still) = app.get(&format!("/v1/deductions/{pid}"), Some(sup1)).await;
    assert_eq!(still["status"], "proposed");
    let (_, ledger) = app.get("/v1/ledger", Some(sup1)).await;
    assert_eq!(ledger["items"], json!([]));

    // Another supervisor approves; the entry names both, wherever it is read.
    let approver = app.login_full("supervisor2").await;
    let entry = approve(&app, approver["access_token"].as_str().unwrap(), &p).await;
    assert_eq!(entry["proposed_by"], proposer["user"]["id"]);
    assert_eq!(entry["approved_by"], approver["user"]["id"]);
    let (_, listed) = app.get("/v1/ledger", Some(sup1)).await;
    assert_eq!(listed["items"][0], entry);
    let (_, read) = app
        .get(
            &format!("/v1/ledger/entries/{}", entry["id"].as_str().unwrap()),
            Some(sup1),
        )
        .await;
    assert_eq!(read, entry);
    let (status, csv) = get_bytes(&app, "/v1/exports/ledger?format=csv", sup1).await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(csv).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let column = header
        .iter()
        .position(|h| *h == crate::support::header("proposed_by"))
        .expect("a proposed_by column");
    assert_eq!(json!(row[column]), proposer["user"]["display_name"]);
    // The hash format is unchanged: the chain verifies.
    let (_, verify) = app.get("/v1/ledger/verify", Some(sup1)).await;
    assert_eq!(verify["ok"], true, "{verify}");

    // A reversal is one person's act: it names no proposer.
    let (status, reversal) = reverse(
        &app,
        sup1,
        entry["id"].as_str().unwrap(),
        "correction",
        "wrong zone",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["proposed_by"], Value::Null);
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

async fn a_period_closes_after_its_end_with_nothing_pending_and_opens_the_next(app: TestApp) {
    let admin = app.login("admin").await;
    let (sup1, sup2) = (
        app.login("supervisor1").await,
        app.login("supervisor2").await,
    );
    let current = current_period(&app, &sup1).await;
    // A period that has ended, with coefficients and two pending proposals.
    let (status, past) = app
        .post(
            "/v1/periods",
            Some(&admin),
            &json!({"code": "2020-01", "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2020-02-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{past}");
    let pid = past["id"].as_str().unwrap();
    for (zone, c) in [("Z01", 1.2), ("Z02", 0.9)] {
        let (status, body) = app
            .put(
                &format!("/v1/periods/{pid}/coefficients/{}", app.zone(zone)),
                Some(&admin),
                &json!({"coefficient": c}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let a = media_proposal_at(&app, "2020-01-15T10:00:00Z").await;
    let b = media_proposal_at(&app, "2020-01-20T10:00:00Z").await;
    let close = |token: String, body: Value| {
        let app = &app;
        async move {
            app.post(&format!("/v1/periods/{pid}/close"), Some(&token), &body)
                .await
        }
    };
    let still_open = || async {
        let (_, periods) = app.get("/v1/periods", Some(&admin)).await;
        let p = periods
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == json!(pid))
            .unwrap()
            .clone();
        p["status"] == "open"
    };

    // The current period has not ended: a supervisor cannot close it, even asking early.
    let current_close = format!("/v1/periods/{}/close", current["id"].as_str().unwrap());
    let (status, body) = app.post(&current_close, Some(&sup1), &json!({})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("period_not_ended")),
        "{body}"
    );
    assert_eq!(body["details"]["ends_at"], current["ends_at"]);
    let (status, body) = app
        .post(&current_close, Some(&sup1), &json!({"early": true}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Pending proposals hold the close, and are named.
    let (status, body) = close(sup1.clone(), json!({})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("period_proposals_pending")),
        "{body}"
    );
    let named: Vec<Value> = body["details"]["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(named, [a.clone(), b.clone()]);
    assert!(still_open().await);

    // Decisions in the close follow the usual rules, and a refused one leaves everything as it was.
    let decide = json!({"decisions": [
        {"proposal_id": a, "decision": "approve"},
        {"proposal_id": b, "decision": "reject", "reason": "a duplicate of the first"}],
        "next": {"code": "2020-02", "ends_at": "2020-03-01T00:00:00Z"}});
    let (status, body) = close(sup1.clone(), decide.clone()).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("self_approval")),
        "{body}"
    );
    assert!(still_open().await);
    let (_, pending) = app.get("/v1/deductions?status=proposed", Some(&sup1)).await;
    assert_eq!(pending.as_array().unwrap().len(), 2, "{pending}");

    // Another supervisor decides both and closes; the next period opens with the coefficients.
    let (status, closed) = close(sup2.clone(), decide).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["period"]["status"], "closed");
    assert_eq!(closed["period"]["ends_at"], past["ends_at"]);
    assert_eq!(closed["approved"][0]["proposal_id"], a);
    assert_eq!(closed["approved"][0]["coefficient"], 1.2);
    assert_eq!(closed["rejected"][0]["id"], b);
    assert_eq!(closed["rejected"][0]["status"], "rejected");
    let next = &closed["next"];
    assert_eq!(
        (
            next["code"].clone(),
            next["starts_at"].clone(),
            next["status"].clone()
        ),
        (json!("2020-02"), past["ends_at"].clone(), json!("open"))
    );
    let coefficients = |period: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (_, mut cs) = app
                .get(
                    &format!("/v1/periods/{}/coefficients", period.as_str().unwrap()),
                    Some(&admin),
                )
                .await;
            let mut cs: Vec<(Value, Value)> = cs
                .as_array_mut()
                .unwrap()
                .iter()
                .map(|c| (c["zone_id"].clone(), c["coefficient"].clone()))
                .collect();
            cs.sort_by_key(|(z, _)| z.to_string());
            cs
        }
    };
    assert_eq!(
        coefficients(next["id"].clone()).await,
        coefficients(json!(pid)).await
    );
    // A finding of the next period's time is proposed into it.
    let (_, p) = app
        .get(
            &format!(
                "/v1/deductions/{}",
                media_proposal_at(&app, "2020-02-10T10:00:00Z")
                    .await
                    .as_str()
                    .unwrap()
            ),
            Some(&sup1),
        )
        .await;
    assert_eq!(p["period_id"], next["id"]);
}

async fn an_early_close_by_an_admin_leaves_the_rest_of_the_month_to_the_next_period(app: TestApp) {
    let admin = app.login("admin").await;
    let current = current_period(&app, &admin).await;
    let (status, closed) = app
        .post(
            &format!("/v1/periods/{}/close", current["id"].as_str().unwrap()),
            Some(&admin),
            &json!({"early": true, "next": {"code": "rest", "ends_at": current["ends_at"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    // The closed period ends at the close; the next covers the rest of the month.
    assert_eq!(closed["period"]["ends_at"], closed["next"]["starts_at"]);
    assert_eq!(closed["next"]["ends_at"], current["ends_at"]);
    // A finding of today can still be deducted: it goes into the next period.
    let (status, p) = app
        .post(
            "/v1/deductions",
            Some(&app.login("supervisor1").await),
            &json!({"zone_id": app.zone("Z02"), "source": "media", "rule_code": "MEDIA"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["period_id"], closed["next"]["id"]);
    approve(&app, &app.login("supervisor2").await, &p).await;
}
