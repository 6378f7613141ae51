//! Pushing a batch: replayed exactly once, refused whole for a gap, non-consecutive seqs, an
//! unsupported protocol or its size, and SQLite writers waiting their turn.

use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::json;

use super::statuses;

on_both_backends!(
    replayed_batch_returns_identical_results,
    gap_answers_resend_from_and_applies_nothing,
    batch_with_non_consecutive_seqs_is_refused_naming_the_seq,
    push_over_500_operations_or_4_mib_is_413,
    unsupported_protocol_is_426_and_acknowledges_nothing,
    enrolment_refuses_a_device_id_that_is_not_uuidv7,
);

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

/// SQLite has one writer at a time: the others wait their turn (for a bounded time), they are
/// not refused. Here pushes (transactions that read before they write) run while other
/// writes, like those of photo uploads and background jobs, commit all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writers_wait_their_turn_instead_of_being_refused() {
    let app = TestApp::on(gridline_testkit::Db::Sqlite)
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
