//! The integrity of each operation: signatures, chains, revoked devices, reused ids (a
//! duplicate only for identical content), signed text that is no operation, and skewed clocks.

use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::statuses;

on_both_backends!(
    bad_signature_is_rejected_flagged_and_not_acknowledged,
    broken_chain_is_rejected_and_not_acknowledged,
    revoked_device_cannot_push,
    new_operation_reusing_a_stored_op_id_is_rejected_acknowledged_and_kept,
    an_existing_case_or_comment_id_is_a_duplicate_only_for_identical_content,
    signed_text_that_is_no_operation_is_reported_against_its_own_seq,
    a_round_id_is_a_duplicate_only_for_the_same_round_and_its_owner_finishes_it_once,
    skewed_clock_is_flagged_on_the_operations_it_affects,
);

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
