//! Approving a deduction: from a phone's capture to the ranking and back, the evidence an
//! approval needs, and who may approve (four eyes, or one person in a small office).

use gridline_testkit::{on_both_backends, Db, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

on_both_backends!(
    a_case_goes_from_phone_to_ranking_and_back_to_the_phone,
    approval_with_incomplete_evidence_is_refused,
    four_eyes_another_supervisor_approves_and_the_entry_names_both,
    a_proposal_needs_a_filed_case_and_says_where_the_evidence_stands,
);

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
    let mut chief = gridline_testkit::Phone::enrol(&app, "sectionchief1").await;
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

/// With `deductions.require_photo_views` (on by default, off in the other tests) an approver
/// must have opened every evidence photo, as original or preview; thumbnails do not count.
mod evidence_seen_before_approval {
    use super::*;

    async fn spawn(db: Db) -> Option<TestApp> {
        TestApp::builder()
            .db(db)
            .config(|c| c.deductions.require_photo_views = true)
            .spawn()
            .await
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
        TestApp::builder()
            .db(db)
            .config(|c| c.deductions.four_eyes = false)
            .spawn()
            .await
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
