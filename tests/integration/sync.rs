//! Offline sync, operation by operation: exactly-once push, integrity, scope, conflicts, pull.

use gridline_tests::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_backends!(
    replayed_batch_returns_identical_results,
    gap_answers_resend_from_and_applies_nothing,
    bad_signature_is_rejected_flagged_and_not_acknowledged,
    broken_chain_is_rejected_and_not_acknowledged,
    revoked_device_cannot_push,
    out_of_scope_operation_is_rejected_kept_and_not_applied,
    unsupported_protocol_is_426_and_acknowledges_nothing,
    stale_inspector_edit_loses_to_supervisor_and_both_sides_see_it,
    scope_change_emits_remove_and_catches_up_the_new_zone,
    pull_includes_reference_data_and_pages_in_order,
    skewed_clock_is_flagged_on_the_operations_it_affects,
    rejections_and_conflicts_are_paged_newest_first,
    case_views_read_side_by_side_equal_those_read_one_after_another,
    new_operation_reusing_a_stored_op_id_is_rejected_acknowledged_and_kept,
    an_existing_case_or_comment_id_is_a_duplicate_only_for_identical_content,
    a_round_id_is_a_duplicate_only_for_the_same_round_and_its_owner_finishes_it_once,
    batch_with_non_consecutive_seqs_is_refused_naming_the_seq,
    signed_text_that_is_no_operation_is_reported_against_its_own_seq,
    enrolment_refuses_a_device_id_that_is_not_uuidv7,
    push_over_500_operations_or_4_mib_is_413,
    an_unannounced_round_and_its_cases_reach_only_their_inspector_and_supervisors,
);

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn replayed_batch_returns_identical_results(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let z1 = app.zone("Z01");
    let (case_id, payload) = new_case(z1, 0, "event:0102");
    let ops = vec![
        phone.op("case.create@1", payload),
        phone.op("case.comment@1", json!({"case_id": case_id, "comment_id": uuid::Uuid::now_v7(), "text": "bin overflowing since morning"})),
        phone.op("case.edit@1", json!({"case_id": case_id, "base_version": 2, "changes": {"severity": "high"}})),
    ];
    let (status, first) = phone.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(statuses(&first), ["applied", "applied", "applied"]);
    assert_eq!(first["acked_through"], 3);

    // The response was lost; the phone sends the same batch again.
    let (status, again) = phone.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(statuses(&again), ["duplicate", "duplicate", "duplicate"]);
    for (a, b) in first["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(again["results"].as_array().unwrap())
    {
        assert_eq!(b["first_status"], a["status"]);
        for key in ["seq", "op_id", "entity_id", "version", "code", "conflicts"] {
            assert_eq!(a[key], b[key], "{key}");
        }
    }
    assert_eq!(again["acked_through"], 3);
    assert_eq!(again["receipt"]["last_hash"], first["receipt"]["last_hash"]);

    // Exactly one effect: one case, version 3, one comment.
    let admin = app.login("admin").await;
    let (_, case) = app.get(&format!("/v1/cases/{case_id}"), Some(&admin)).await;
    assert_eq!(case["version"], 3);
    assert_eq!(case["severity"], "high");
    assert_eq!(
        case["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "comment")
            .count(),
        1
    );
    let (_, list) = app.get("/v1/cases", Some(&admin)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // The receipt verifies with the key the phone pinned at enrolment.
    let receipt: gridline_sync::Receipt = serde_json::from_value(first["receipt"].clone()).unwrap();
    receipt
        .verify(&app.state.keys.current.signing.verifying_key())
        .expect("receipt signature");
}

async fn gap_answers_resend_from_and_applies_nothing(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let z1 = app.zone("Z01");
    let first = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let _lost = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let third = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    assert_eq!(
        phone.push(&app, std::slice::from_ref(&first)).await.0,
        StatusCode::OK
    );

    let (status, body) = phone.push(&app, std::slice::from_ref(&third)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "sequence_gap");
    assert_eq!(body["details"]["resend_from"], 2);
    let (_, list) = app.get("/v1/cases", Some(&app.login("admin").await)).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "nothing from the gapped batch applied"
    );
}

async fn bad_signature_is_rejected_flagged_and_not_acknowledged(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let z1 = app.zone("Z01");
    let good = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let mut forged = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    // Someone edits the queued operation after it was signed.
    forged.op = forged.op.replace("overflowing bin", "overflowing bins");
    let (status, body) = phone.push(&app, &[good, forged]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["applied", "rejected"]);
    assert_eq!(body["results"][1]["code"], "bad_signature");
    assert_eq!(
        body["acked_through"], 1,
        "the forged operation is not acknowledged"
    );

    let supervisor = app.login("supervisor1").await;
    let (status, rejections) = app.get("/v1/sync/rejections", Some(&supervisor)).await;
    assert_eq!(status, StatusCode::OK);
    let r = &rejections["items"][0];
    assert_eq!(r["code"], "bad_signature");
    assert_eq!(r["acknowledged"], false);
    assert!(
        r["op"].as_str().unwrap().contains("overflowing bins"),
        "kept whole for supervisors"
    );
    let (_, list) = app.get("/v1/cases", Some(&supervisor)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // Inspectors cannot read the rejection log.
    assert_eq!(
        app.get("/v1/sync/rejections", Some(&phone.token)).await.0,
        StatusCode::FORBIDDEN
    );
}

async fn broken_chain_is_rejected_and_not_acknowledged(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let z1 = app.zone("Z01");
    let a = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    assert_eq!(phone.push(&app, &[a]).await.0, StatusCode::OK);
    // An operation deleted from the queue: the next one's prev no longer matches.
    let _deleted = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let c = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    phone.seq -= 1;
    let mut relabelled = serde_json::from_str::<gridline_sync::OperationBody>(&c.op).unwrap();
    relabelled.seq = 2;
    let resigned = gridline_sync::signing::sign_operation(&phone.key, &relabelled);
    let (status, body) = phone.push(&app, &[resigned]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "rejected");
    assert_eq!(body["results"][0]["code"], "broken_chain");
    assert_eq!(body["acked_through"], 1);

    // A different operation replayed at an acknowledged sequence number is refused too.
    let mut other = Phone {
        seq: 0,
        prev: gridline_sync::signing::GENESIS_HASH.into(),
        ..phone
    };
    let impostor = other.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let (_, body) = other.push(&app, &[impostor]).await;
    assert_eq!(body["results"][0]["code"], "broken_chain");
}

async fn revoked_device_cannot_push(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let admin = app.login("admin").await;
    let (status, _) = app
        .post(
            &format!("/v1/devices/{}/revoke", phone.device_id),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let op = phone.op(
        "case.create@1",
        new_case(app.zone("Z01"), 0, "event:0102").1,
    );
    let (status, body) = phone.push(&app, &[op]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "device_revoked");
    // A token that is not bound to a device cannot sync at all.
    let plain = app.login("inspector1").await;
    let (status, _) = app
        .post("/v1/sync/push", Some(&plain), &phone.push_body(&[]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn out_of_scope_operation_is_rejected_kept_and_not_applied(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await; // Z01 only
    let (case_id, payload) = new_case(app.zone("Z02"), 1, "event:0102");
    let ok = phone.op(
        "case.create@1",
        new_case(app.zone("Z01"), 0, "event:0102").1,
    );
    let foreign = phone.op("case.create@1", payload);
    let after = phone.op(
        "case.create@1",
        new_case(app.zone("Z01"), 0, "event:0501").1,
    );
    let (status, body) = phone.push(&app, &[ok, foreign, after]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        statuses(&body),
        ["applied", "rejected", "applied"],
        "a bad operation never blocks the queue"
    );
    assert_eq!(body["results"][1]["code"], "out_of_scope");
    assert_eq!(body["acked_through"], 3);
    let admin = app.login("admin").await;
    assert_eq!(
        app.get(&format!("/v1/cases/{case_id}"), Some(&admin))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, rejections) = app.get("/v1/sync/rejections", Some(&admin)).await;
    assert_eq!(rejections["items"][0]["code"], "out_of_scope");
    assert_eq!(rejections["items"][0]["acknowledged"], true);

    // Editing another zone's case is refused the same way.
    let mut other = Phone::enrol(&app, "inspector3").await; // Z02
    let (z2_case, payload) = new_case(app.zone("Z02"), 1, "event:0102");
    let op = other.op("case.create@1", payload);
    assert_eq!(other.push(&app, &[op]).await.0, StatusCode::OK);
    let edit = phone.op(
        "case.edit@1",
        json!({"case_id": z2_case, "base_version": 1, "changes": {"description": "mine now"}}),
    );
    let (_, body) = phone.push(&app, &[edit]).await;
    assert_eq!(body["results"][0]["code"], "out_of_scope");
    let (_, case) = app.get(&format!("/v1/cases/{z2_case}"), Some(&admin)).await;
    assert_eq!(case["description"], "overflowing bin");
}

async fn unsupported_protocol_is_426_and_acknowledges_nothing(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let op = phone.op(
        "case.create@1",
        new_case(app.zone("Z01"), 0, "event:0102").1,
    );
    let mut body = phone.push_body(std::slice::from_ref(&op));
    body["protocol"] = json!(2);
    let (status, err) = app.post("/v1/sync/push", Some(&phone.token), &body).await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(err["code"], "unsupported_protocol");
    // The same operation is still accepted with the right protocol: nothing was acknowledged.
    let (status, ok) = phone.push(&app, &[op]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ok["results"][0]["status"], "applied");
    let (status, _) = app
        .get("/v1/sync/pull?protocol=9", Some(&phone.token))
        .await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
}

async fn stale_inspector_edit_loses_to_supervisor_and_both_sides_see_it(app: TestApp) {
    let mut inspector = Phone::enrol(&app, "inspector1").await;
    let mut supervisor = Phone::enrol(&app, "supervisor1").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = inspector.op("case.create@1", payload);
    inspector.push(&app, &[op]).await;

    // The supervisor reclassifies; the inspector, offline at version 1, edits the same field.
    let op = supervisor.op(
        "case.edit@1",
        json!({"case_id": case_id, "base_version": 1, "changes": {"category_code": "event:0501"}}),
    );
    let (_, body) = supervisor.push(&app, &[op]).await;
    assert_eq!(body["results"][0]["status"], "applied", "{body}");
    let op = inspector.op("case.edit@1", json!({"case_id": case_id, "base_version": 1, "changes": {"category_code": "event:0103", "description": "two bins"}}));
    let (_, body) = inspector.push(&app, &[op]).await;
    let result = &body["results"][0];
    assert_eq!(result["status"], "conflict", "{body}");
    let conflict = result["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "category_code")
        .unwrap();
    assert_eq!(conflict["resolution"], "server_kept");
    assert_eq!(conflict["server_value"], "event:0501");
    assert_eq!(conflict["incoming_value"], "event:0103");

    // The supervisor's decision stands; the untouched field applied; both values are kept.
    let admin = app.login("admin").await;
    let (_, case) = app.get(&format!("/v1/cases/{case_id}"), Some(&admin)).await;
    assert_eq!(case["category_code"], "event:0501");
    assert_eq!(case["description"], "two bins");
    assert_eq!(case["conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(case["conflicts"][0]["incoming_value"], "event:0103");
    let (_, conflicts) = app.get("/v1/conflicts", Some(&admin)).await;
    assert_eq!(conflicts["items"].as_array().unwrap().len(), 1);
    assert!(conflicts["next"].is_null());
    // The inspector sees it too (scoped by zone), and nothing is older than it.
    let (_, theirs) = app
        .get("/v1/conflicts?limit=1", Some(&inspector.token))
        .await;
    let id = &theirs["items"][0]["id"];
    assert_eq!(id, &conflicts["items"][0]["id"]);
    let (status, older) = app
        .get(
            &format!("/v1/conflicts?before={}", id.as_str().unwrap()),
            Some(&inspector.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{older}");
    assert_eq!(older["items"], json!([]));

    // And the inspector's phone gets the conflict and the final case in its pull.
    let (changes, _) = inspector.pull_all(&app, None).await;
    let pulled_case = changes
        .iter()
        .find(|c| c["entity"] == "case" && c["id"] == json!(case_id))
        .unwrap();
    assert_eq!(pulled_case["data"]["category_code"], "event:0501");
    assert!(changes
        .iter()
        .any(|c| c["entity"] == "conflict" && c["data"]["case_id"] == json!(case_id)));
}

async fn scope_change_emits_remove_and_catches_up_the_new_zone(app: TestApp) {
    let mut inspector = Phone::enrol(&app, "inspector1").await; // Z01
    let mut other = Phone::enrol(&app, "inspector5").await; // Z03
    let (z1_case, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = inspector.op("case.create@1", payload);
    inspector.push(&app, &[op]).await;
    let (z3_case, payload) = new_case(app.zone("Z03"), 2, "event:0102");
    let op = other.op("case.create@1", payload);
    other.push(&app, &[op]).await;

    let (changes, cursor) = inspector.pull_all(&app, None).await;
    assert!(changes
        .iter()
        .any(|c| c["entity"] == "case" && c["id"] == json!(z1_case)));
    assert!(
        !changes.iter().any(|c| c["id"] == json!(z3_case)),
        "Z03 is not in scope yet"
    );

    // The inspector moves from Z01 to Z03.
    let admin = app.login("admin").await;
    let me = app.get("/v1/me", Some(&inspector.token)).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, rows) = app
        .get(&format!("/v1/roster?user_id={me}"), Some(&admin))
        .await;
    let row = rows[0]["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/v1/roster/{row}/reassign"),
            Some(&admin),
            &json!({"zone_id": app.zone("Z03"), "role": "inspector"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (changes, _) = inspector.pull_all(&app, Some(cursor)).await;
    assert!(
        changes
            .iter()
            .any(|c| c["kind"] == "remove" && c["entity"] == "case" && c["id"] == json!(z1_case)),
        "{changes:?}"
    );
    assert!(changes.iter().any(|c| c["kind"] == "remove"
        && c["entity"] == "zone"
        && c["id"] == json!(app.zone("Z01"))));
    assert!(
        changes
            .iter()
            .any(|c| c["kind"] == "upsert" && c["entity"] == "case" && c["id"] == json!(z3_case)),
        "caught up on the new zone"
    );
    assert!(changes.iter().any(|c| c["kind"] == "upsert"
        && c["entity"] == "zone"
        && c["id"] == json!(app.zone("Z03"))));
    assert_eq!(
        changes
            .iter()
            .filter(|c| c["kind"] == "upsert" && c["entity"] == "asset")
            .count(),
        40,
        "Z03's assets"
    );
}

async fn pull_includes_reference_data_and_pages_in_order(app: TestApp) {
    let phone = Phone::enrol(&app, "inspector1").await;
    let (changes, cursor) = phone.pull_all(&app, None).await;
    let count = |entity: &str| {
        changes
            .iter()
            .filter(|c| c["entity"] == entity && c["kind"] == "upsert")
            .count()
    };
    assert_eq!(count("zone"), 1);
    assert_eq!(count("asset"), 40);
    assert_eq!(count("taxonomy"), 100);
    assert_eq!(count("rule"), 1);
    assert_eq!(count("period"), 1);
    // Nothing new: an empty page with the same position.
    let (again, _) = phone.pull_all(&app, Some(cursor.clone())).await;
    assert!(again.is_empty(), "{again:?}");
    // A made-up cursor must reset.
    let (status, body) = app
        .get("/v1/sync/pull?protocol=1&cursor=bogus", Some(&phone.token))
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["code"], "reset_required");
    let (status, _) = app
        .get("/v1/sync/pull?protocol=1&limit=5000", Some(&phone.token))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn skewed_clock_is_flagged_on_the_operations_it_affects(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = phone.op("case.create@1", payload);
    let mut body = phone.push_body(&[op]);
    body["device_time"] = json!("2020-01-01T00:00:00Z");
    let (status, resp) = app.post("/v1/sync/push", Some(&phone.token), &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(resp["clock_skew_ms"].as_i64().unwrap() < -86_400_000);
    let (_, case) = app
        .get(
            &format!("/v1/cases/{case_id}"),
            Some(&app.login("admin").await),
        )
        .await;
    assert!(
        case["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("clock_skew")),
        "{case}"
    );
    assert!(!case["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("location_outside_zone")));
    assert!(
        case["received_at"].is_string()
            && case["queued_at"].is_string()
            && case["captured_at"].is_string()
    );
}

async fn rejections_and_conflicts_are_paged_newest_first(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await; // Z01 only
    let ops: Vec<_> = (0..5)
        .map(|i| {
            let payload = new_case(app.zone("Z02"), i, "event:0102").1;
            phone.op("case.create@1", payload)
        })
        .collect();
    let (status, body) = phone.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["rejected"; 5]);

    let supervisor = app.login("supervisor1").await;
    let (_, whole) = app.get("/v1/sync/rejections", Some(&supervisor)).await;
    assert!(whole["next"].is_null());
    let whole = whole["items"].as_array().unwrap().clone();
    let seqs: Vec<i64> = whole.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [5, 4, 3, 2, 1], "newest first");

    // Pages of two follow `next` through `before` and add up to the whole, each once.
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &before {
            Some(b) => format!("/v1/sync/rejections?limit=2&before={b}"),
            None => "/v1/sync/rejections?limit=2".to_owned(),
        };
        let (status, page) = app.get(&url, Some(&supervisor)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => before = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, whole);

    // Bad paging parameters are refused with a message, on both listings.
    for path in ["/v1/sync/rejections", "/v1/conflicts"] {
        for (query, expected) in [
            ("limit=0", StatusCode::UNPROCESSABLE_ENTITY),
            ("limit=501", StatusCode::UNPROCESSABLE_ENTITY),
            ("before=yesterday", StatusCode::UNPROCESSABLE_ENTITY),
            ("page=2", StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let (status, body) = app.get(&format!("{path}?{query}"), Some(&supervisor)).await;
            assert_eq!(status, expected, "{path}?{query}: {body}");
            assert!(body["message"].is_string(), "{path}?{query}: {body}");
        }
    }
}

/// Case views read with the photo, event and conflict queries beside the case query (on spare
/// connections) are the views read one query after another on one connection.
async fn case_views_read_side_by_side_equal_those_read_one_after_another(app: TestApp) {
    use gridline_tests::gridline_server::sync::view::case_views;
    let mut inspector = Phone::enrol(&app, "inspector1").await;
    let mut supervisor = Phone::enrol(&app, "supervisor1").await;
    let mut ids = Vec::new();
    let mut ops = Vec::new();
    for _ in 0..40 {
        let (id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
        ids.push(id);
        ops.push(inspector.op("case.create@1", payload));
    }
    let (_, body) = inspector.push(&app, &ops).await;
    assert!(statuses(&body).iter().all(|s| s == "applied"), "{body}");
    // Every third case: an edit by the supervisor, then a stale one by the inspector (a
    // conflict recorded on the case, and more events).
    for id in ids.iter().step_by(3) {
        let op = supervisor.op(
            "case.edit@1",
            json!({"case_id": id, "base_version": 1, "changes": {"category_code": "event:0501"}}),
        );
        supervisor.push(&app, &[op]).await;
        let op = inspector.op(
            "case.edit@1",
            json!({"case_id": id, "base_version": 1, "changes": {"category_code": "event:0103"}}),
        );
        inspector.push(&app, &[op]).await;
    }

    let db = &app.state.db;
    let one_by_one = case_views(&mut db.reader().await.unwrap().reader(), Vec::new(), &ids)
        .await
        .unwrap();
    // Three idle connections for the side-by-side reads: open them, and wait (yielding, with a
    // deadline) until the pool has them back.
    let held: Vec<_> = futures::future::try_join_all((0..4).map(|_| db.reader()))
        .await
        .unwrap();
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let spare = loop {
        let spare = db.spare_readers(3);
        if spare.len() == 3 || std::time::Instant::now() > deadline {
            break spare;
        }
        drop(spare);
        tokio::task::yield_now().await;
    };
    assert_eq!(spare.len(), 3, "three idle connections");
    let side_by_side = case_views(&mut db.reader().await.unwrap().reader(), spare, &ids)
        .await
        .unwrap();

    let as_json = |views: &std::collections::HashMap<uuid::Uuid, _>| {
        let sorted: std::collections::BTreeMap<_, _> = views.iter().collect();
        serde_json::to_value(sorted).unwrap()
    };
    assert_eq!(one_by_one.len(), ids.len());
    assert_eq!(as_json(&one_by_one), as_json(&side_by_side));
    let conflicts = one_by_one
        .values()
        .filter(|v| !v.conflicts.is_empty())
        .count();
    let edited = one_by_one.values().filter(|v| v.events.len() > 1).count();
    assert_eq!(conflicts, ids.len().div_ceil(3), "cases with a conflict");
    assert!(edited >= conflicts, "{edited} edited cases");
    assert!(one_by_one.values().all(|v| v.photos.len() == 1));
}

async fn new_operation_reusing_a_stored_op_id_is_rejected_acknowledged_and_kept(app: TestApp) {
    let z1 = app.zone("Z01");
    let mut first = Phone::enrol(&app, "inspector1").await;
    let original = first.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let taken: gridline_sync::OperationBody = serde_json::from_str(&original.op).unwrap();
    assert_eq!(first.push(&app, &[original]).await.0, StatusCode::OK);

    // Another device, then the same one, queue new operations under that op_id.
    let mut second = Phone::enrol(&app, "inspector2").await;
    let admin = app.login("admin").await;
    for phone in [&mut second, &mut first] {
        let (case_id, payload) = new_case(z1, 0, "event:0102");
        let reused = [phone.op_edited("case.create@1", payload, |b| b.op_id = taken.op_id)];
        let (status, body) = phone.push(&app, &reused).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let result = &body["results"][0];
        assert_eq!(result["status"], "rejected", "{body}");
        assert_eq!(result["code"], "id_reused");
        assert_eq!(result["seq"], phone.seq);
        assert_eq!(result["op_id"], json!(taken.op_id));
        assert_eq!(body["acked_through"], phone.seq, "acknowledged");
        assert_eq!(
            app.get(&format!("/v1/cases/{case_id}"), Some(&admin))
                .await
                .0,
            StatusCode::NOT_FOUND
        );

        // A retry gets the stored answer, and the queue moves on.
        let (status, again) = phone.push(&app, &reused).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["results"][0]["status"], "duplicate");
        assert_eq!(again["results"][0]["first_status"], "rejected");
        let next = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
        let (status, body) = phone.push(&app, &[next]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(statuses(&body), ["applied"]);
    }

    let (_, rejections) = app.get("/v1/sync/rejections", Some(&admin)).await;
    let reused: Vec<&Value> = rejections["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] == "id_reused")
        .collect();
    assert_eq!(reused.len(), 2, "{rejections}");
    for r in reused {
        assert_eq!(r["acknowledged"], true);
        assert_eq!(r["op_id"], json!(taken.op_id));
    }
}

async fn an_existing_case_or_comment_id_is_a_duplicate_only_for_identical_content(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let comment = json!({"case_id": case_id, "comment_id": uuid::Uuid::now_v7(), "text": "bin overflowing since morning"});
    let ops = [
        phone.op("case.create@1", payload.clone()),
        phone.op("case.comment@1", comment.clone()),
    ];
    let (status, body) = phone.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["applied", "applied"]);

    // The same capture and comment queued again under new seqs: nothing new happens.
    let again = [
        phone.op("case.create@1", payload.clone()),
        phone.op("case.comment@1", comment.clone()),
    ];
    let (status, body) = phone.push(&app, &again).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["duplicate", "duplicate"]);
    for r in body["results"].as_array().unwrap() {
        assert_eq!(r["first_status"], "applied", "{r}");
        assert_eq!(r["entity_id"], json!(case_id));
    }

    // Other content under the same ids: refused, acknowledged and kept whole, never dropped.
    let mut changed_case = payload.clone();
    changed_case["description"] = json!("a different problem");
    let mut changed_comment = comment.clone();
    changed_comment["text"] = json!("another remark");
    let changed = [
        phone.op("case.create@1", changed_case),
        phone.op("case.comment@1", changed_comment),
    ];
    let (status, body) = phone.push(&app, &changed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["rejected", "rejected"]);
    assert_eq!(body["results"][0]["code"], "id_reused");
    assert_eq!(body["results"][1]["code"], "id_reused");
    assert_eq!(body["acked_through"], 6);

    let supervisor = app.login("supervisor1").await;
    let (_, case) = app
        .get(&format!("/v1/cases/{case_id}"), Some(&supervisor))
        .await;
    assert_eq!(case["description"], "overflowing bin");
    assert_eq!(case["version"], 2);
    let comments: Vec<&Value> = case["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "comment")
        .collect();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0]["comment"], "bin overflowing since morning");
    let (_, rejections) = app.get("/v1/sync/rejections", Some(&supervisor)).await;
    let kept: Vec<&str> = rejections["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["op"].as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{rejections}");
    assert!(kept.iter().any(|op| op.contains("a different problem")));
    assert!(kept.iter().any(|op| op.contains("another remark")));
}

async fn batch_with_non_consecutive_seqs_is_refused_naming_the_seq(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let z1 = app.zone("Z01");
    let first = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let _left_out = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let third = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);

    let (status, body) = phone.push(&app, &[first.clone(), third]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "invalid_request");
    assert_eq!(body["details"]["path"], "operations[1].seq");
    assert!(
        body["message"].as_str().unwrap().contains("seq 3"),
        "{body}"
    );
    let admin = app.login("admin").await;
    let (_, list) = app.get("/v1/cases", Some(&admin)).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing applied"
    );

    let (status, body) = phone.push(&app, &[first]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acked_through"], 1);
}

async fn signed_text_that_is_no_operation_is_reported_against_its_own_seq(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let z1 = app.zone("Z01");
    let first = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    assert_eq!(phone.push(&app, &[first]).await.0, StatusCode::OK);

    // Validly signed text that is not JSON at seq 2, then a good operation at seq 3.
    let garbage = phone.sign_text("this is not JSON");
    let after = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
    let (status, body) = phone.push(&app, &[garbage, after]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 1, "{body}");
    let result = &body["results"][0];
    assert_eq!(result["seq"], 2);
    assert_eq!(result["status"], "rejected");
    assert_eq!(result["code"], "invalid_request");
    assert_eq!(body["acked_through"], 1);

    // JSON that is no operation body: its own op_id is reported where it can be read.
    let mut other = Phone::enrol(&app, "inspector2").await;
    let op_id = uuid::Uuid::now_v7();
    let partial =
        other.sign_text(&json!({"op_id": op_id, "seq": 1, "note": "no body"}).to_string());
    let (status, body) = other.push(&app, &[partial]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["seq"], 1);
    assert_eq!(body["results"][0]["op_id"], json!(op_id));
}

async fn enrolment_refuses_a_device_id_that_is_not_uuidv7(app: TestApp) {
    use base64::Engine;
    let token = app.login("inspector1").await;
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let device_id = uuid::Uuid::new_v4();
    let (status, body) = app
        .post(
            "/v1/devices",
            Some(&token),
            &json!({
                "device_id": device_id,
                "public_key": base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
                "name": "a phone with UUIDv4 ids",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "invalid_request");
    assert_eq!(body["details"]["path"], "device_id");
    let (status, login) = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"username": "inspector1", "password": "gridline-demo", "device_id": device_id}),
        )
        .await;
    assert_ne!(status, StatusCode::OK, "not enrolled: {login}");
}

async fn push_over_500_operations_or_4_mib_is_413(app: TestApp) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let ops: Vec<_> = (0..501)
        .map(|_| {
            phone.op(
                "round.start@1",
                json!({"round_id": uuid::Uuid::now_v7(), "zone_id": app.zone("Z01"),
                       "kind": "routine", "started_at": "2025-03-01T07:30:00Z"}),
            )
        })
        .collect();
    let (status, body) = phone.push(&app, &ops).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");

    // A body of exactly 4 MiB is taken; one byte more is not.
    let limit = gridline_sync::MAX_BATCH_BYTES;
    let padded = |len: usize| {
        let mut bytes = serde_json::to_vec(&phone.push_body(&ops[..500])).unwrap();
        assert!(bytes.len() < len);
        bytes.resize(len, b' ');
        bytes
    };
    let (status, body) = app
        .post_raw(
            "/v1/sync/push",
            Some(&phone.token),
            "application/json",
            padded(limit + 1),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    let (status, body) = app
        .post_raw(
            "/v1/sync/push",
            Some(&phone.token),
            "application/json",
            padded(limit),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acked_through"], 500);
}

async fn a_round_id_is_a_duplicate_only_for_the_same_round_and_its_owner_finishes_it_once(
    app: TestApp,
) {
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let round_id = uuid::Uuid::now_v7();
    let start = json!({"round_id": round_id, "zone_id": app.zone("Z01"), "kind": "routine",
                       "started_at": "2025-03-01T07:30:00Z"});
    let mut other_start = start.clone();
    other_start["kind"] = json!("unannounced");
    let finish = json!({"round_id": round_id, "finished_at": "2025-03-01T09:10:00Z"});
    let later_finish = json!({"round_id": round_id, "finished_at": "2025-03-01T10:00:00Z"});
    let unknown = json!({"round_id": uuid::Uuid::now_v7(), "finished_at": "2025-03-01T09:10:00Z"});
    let ops = [
        phone.op("round.start@1", start.clone()),
        phone.op("round.start@1", start),
        phone.op("round.start@1", other_start),
        phone.op("round.finish@1", finish.clone()),
        phone.op("round.finish@1", finish.clone()),
        phone.op("round.finish@1", later_finish),
        phone.op("round.finish@1", unknown),
    ];
    let (status, body) = phone.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        statuses(&body),
        [
            "applied",
            "duplicate",
            "rejected",
            "applied",
            "duplicate",
            "rejected",
            "rejected"
        ]
    );
    let codes: Vec<&Value> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["code"])
        .collect();
    assert_eq!(codes[2], "id_reused");
    assert_eq!(codes[5], "conflict");
    assert_eq!(codes[6], "not_found");
    assert_eq!(body["acked_through"], 7);

    // Only the inspector who started a round finishes it.
    let mut other = Phone::enrol(&app, "inspector2").await;
    let theirs = other.op("round.finish@1", finish);
    let (_, body) = other.push(&app, &[theirs]).await;
    assert_eq!(body["results"][0]["status"], "rejected");
    assert_eq!(body["results"][0]["code"], "forbidden");

    let (changes, _) = phone.pull_all(&app, None).await;
    let round = changes
        .iter()
        .find(|c| c["entity"] == "round" && c["id"] == json!(round_id))
        .expect("the round is pulled");
    assert_eq!(round["data"]["kind"], "routine");
    assert_eq!(round["data"]["finished_at"], "2025-03-01T09:10:00Z");
}

/// SQLite has one writer at a time: the others wait their turn (for a bounded time), they are
/// not refused. Here pushes (transactions that read before they write) run while other
/// writes, like those of photo uploads and background jobs, commit all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writers_wait_their_turn_instead_of_being_refused() {
    let app = TestApp::spawn(gridline_tests::Db::Sqlite)
        .await
        .expect("sqlite app");
    let z1 = app.zone("Z01");
    let mut phones = Vec::new();
    for name in ["inspector1", "inspector2"] {
        phones.push(Phone::enrol(&app, name).await);
    }
    // Other writers commit all the while the pushes run, until they are done.
    let pushes_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let pool = app.state.db.pool.clone();
            let pushes_done = pushes_done.clone();
            tokio::spawn(async move {
                while !pushes_done.load(std::sync::atomic::Ordering::Relaxed) {
                    sqlx::query(
                        "UPDATE users SET display_name = display_name WHERE username = 'admin'",
                    )
                    .execute(&pool)
                    .await
                    .expect("a write outside a transaction waits for its turn");
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let pushes = phones.into_iter().map(|mut phone| {
        let app = &app;
        async move {
            let mut refused = Vec::new();
            for _ in 0..25 {
                let op = phone.op("case.create@1", new_case(z1, 0, "event:0102").1);
                let (status, body) = phone.push(app, &[op]).await;
                if status != StatusCode::OK {
                    refused.push(format!("{status} {body}"));
                }
            }
            refused
        }
    });
    let refused: Vec<String> = futures::future::join_all(pushes)
        .await
        .into_iter()
        .flatten()
        .collect();
    pushes_done.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    assert!(refused.is_empty(), "pushes refused: {refused:#?}");
}

/// What `user` learns of the round `round` and the cases `cases` through every read path:
/// for each case, whether each of pull, list, read, workflow and both exports shows it.
pub(crate) async fn what_reaches(
    app: &TestApp,
    user: &str,
    round: uuid::Uuid,
    cases: &[uuid::Uuid],
) -> (bool, Vec<[bool; 6]>) {
    let phone = Phone::enrol(app, user).await;
    let token = app.login(user).await;
    let (changes, _) = phone.pull_all(app, None).await;
    let pulled = |entity: &str, id: uuid::Uuid| {
        changes
            .iter()
            .any(|c| c["entity"] == entity && c["id"] == json!(id) && c["kind"] == "upsert")
    };
    let (status, listed) = app.get("/v1/cases?limit=500", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let export = |format: &'static str| {
        let token = token.clone();
        async move {
            let resp = app
                .http
                .get(app.url(&format!("/v1/exports/cases?format={format}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.text().await.unwrap()
        }
    };
    let (csv, geojson) = (export("csv").await, export("geojson").await);
    let mut seen = Vec::new();
    for id in cases {
        let (read, _) = app.get(&format!("/v1/cases/{id}"), Some(&token)).await;
        let (workflow, _) = app
            .get(&format!("/v1/cases/{id}/workflow"), Some(&token))
            .await;
        seen.push([
            pulled("case", *id),
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == json!(id)),
            read == StatusCode::OK,
            workflow == StatusCode::OK,
            csv.contains(&id.to_string()),
            geojson.contains(&id.to_string()),
        ]);
    }
    (pulled("round", round), seen)
}

async fn an_unannounced_round_and_its_cases_reach_only_their_inspector_and_supervisors(
    app: TestApp,
) {
    let z1 = app.zone("Z01");
    let mut inspector = Phone::enrol(&app, "inspector1").await;
    let round = uuid::Uuid::now_v7();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (raised, mut payload) = new_case(z1, 0, "event:0102");
    payload["round_id"] = json!(round);
    // The raised case's photo, uploaded: it must not open to whom the case is hidden from.
    let photo = gridline_tests::noisy_jpeg(64, 48, 7);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&photo))
    };
    payload["photos"][0]["sha256"] = json!(sha);
    payload["photos"][0]["size"] = json!(photo.len());
    let (routine, routine_payload) = new_case(z1, 0, "event:0102");
    let ops = vec![
        inspector.op(
            "round.start@1",
            json!({"round_id": round, "zone_id": z1, "kind": "unannounced", "started_at": now}),
        ),
        inspector.op("case.create@1", payload),
        inspector.op(
            "round.finish@1",
            json!({"round_id": round, "finished_at": now}),
        ),
        inspector.op("case.create@1", routine_payload),
    ];
    let (status, body) = inspector.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["applied"; 4], "{body}");
    let (status, stored) = crate::photos::put_photo(&app, &inspector.token, &photo, &sha).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    let photo_reaches = |user: &'static str| {
        let app = &app;
        let sha = sha.clone();
        async move {
            let token = app.login(user).await;
            let (meta, _) = app.get(&format!("/v1/photos/{sha}"), Some(&token)).await;
            let (link, _) = app
                .get(
                    &format!("/v1/photos/{sha}/link?variant=original"),
                    Some(&token),
                )
                .await;
            (meta, link)
        }
    };

    let everything = (true, vec![[true; 6], [true; 6]]);
    let routine_only = (false, vec![[false; 6], [true; 6]]);
    for (user, want) in [
        ("inspector1", &everything),
        ("supervisor1", &everything),
        ("admin", &everything),
        // The inspected zone's roster, and a zone chief who sees every zone.
        ("roadchief1", &routine_only),
        ("sectionchief1", &routine_only),
        ("inspector2", &routine_only),
        ("zonechief1", &routine_only),
    ] {
        assert_eq!(
            &what_reaches(&app, user, round, &[raised, routine]).await,
            want,
            "{user}: (round pulled, per case [pull, list, read, workflow, csv, geojson])"
        );
        let open = want.1[0][0];
        let expected = if open {
            (StatusCode::OK, StatusCode::OK)
        } else {
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
        };
        assert_eq!(photo_reaches(user).await, expected, "{user}: the photo");
    }

    // Once a supervisor dispatches the case to the zone, its chiefs see it; the round stays
    // the inspector's.
    let sup = app.login("supervisor1").await;
    for action in [
        json!({"action": "file"}),
        json!({"action": "dispatch", "target": "accountable"}),
    ] {
        let (_, case) = app.get(&format!("/v1/cases/{raised}"), Some(&sup)).await;
        let mut body = action;
        body["base_version"] = case["version"].clone();
        let (status, out) = app
            .post(
                &format!("/v1/cases/{raised}/transitions"),
                Some(&sup),
                &body,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{out}");
    }
    assert_eq!(
        what_reaches(&app, "roadchief1", round, &[raised]).await,
        (false, vec![[true; 6]])
    );
    assert_eq!(
        photo_reaches("roadchief1").await,
        (StatusCode::OK, StatusCode::OK)
    );
}
