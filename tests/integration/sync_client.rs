//! Sync driven through the reference phone client (and a few races between phones): recovery
//! after an expired cursor, the `gridline-field` demo flow, and same-case concurrency.

use std::collections::BTreeMap;

use gridline_sync::client::{
    photo_from_file, Client, HttpTransport, OutboxState, RecordingSleeper, Store,
};
use gridline_sync::ops::{CaseChanges, CaseCommentV1, CaseEditV1, Operation, PhotoRole};
use gridline_sync::{EntityKind, OpStatus};
use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

on_both_backends!(
    concurrent_pushes_to_one_case_give_each_operation_its_own_version,
    rejected_edit_conflicts_reach_every_copy_of_the_case,
    reset_after_an_expired_cursor_loses_nothing_unsynced,
    the_hourly_compaction_expires_cursors_from_before_the_retention_window,
    field_demo_two_offline_cases_sync_and_are_listed_by_the_server,
);

pub(crate) type FieldClient = Client<HttpTransport, RecordingSleeper>;

/// A phone as `gridline-field` builds it: a store file of its own, HTTP to the test server.
pub(crate) async fn field_client(
    app: &TestApp,
    dir: &std::path::Path,
    username: &str,
) -> FieldClient {
    let store = Store::open(&dir.join(format!("{username}.db")))
        .await
        .unwrap();
    let client = Client::new(
        store,
        HttpTransport::new(&app.base).unwrap(),
        RecordingSleeper::default(),
    );
    client
        .enrol(
            &app.base,
            username,
            gridline_testkit::gridline_server::demo::DEMO_PASSWORD,
            "test phone",
        )
        .await
        .unwrap();
    client
}

fn capture_case(zone_id: Uuid, zone_index: usize, description: &str) -> (Uuid, Operation) {
    let case = gridline_testkit::kit::capture(zone_id, zone_index, description);
    (case.case_id, Operation::CaseCreateV1(case))
}

/// The phone's mirrored cases equal what the server shows its user, field for field.
async fn assert_mirror_is_the_servers_view(app: &TestApp, client: &FieldClient, username: &str) {
    let token = app.login(username).await;
    let (status, list) = app.get("/v1/cases?limit=500", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(list["next"].is_null());
    let server: BTreeMap<String, Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                gridline_testkit::without_evidence(c.clone()),
            )
        })
        .collect();
    let mirror: BTreeMap<String, Value> = client
        .mirror(EntityKind::Case)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.data))
        .collect();
    assert_eq!(mirror, server);
}

fn events_versions(case: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = case["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    v.sort();
    v
}

/// Four phones comment on and edit the same case at the same moment, round after round. Each
/// operation must get a version of its own: a push that read the case before another committed
/// and then wrote over it would lose an update and reuse a version.
async fn concurrent_pushes_to_one_case_give_each_operation_its_own_version(app: TestApp) {
    let mut phones = Vec::new();
    for name in ["inspector1", "inspector2", "supervisor1", "supervisor2"] {
        phones.push(Phone::enrol(&app, name).await);
    }
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = phones[0].op("case.create@1", payload);
    assert_eq!(phones[0].push(&app, &[op]).await.0, StatusCode::OK);

    let rounds = 8;
    for round in 0..rounds {
        let batches: Vec<_> = phones
            .iter_mut()
            .enumerate()
            .map(|(i, p)| {
                let comment = p.op(
                    "case.comment@1",
                    json!({"case_id": case_id, "comment_id": Uuid::now_v7(), "text": format!("round {round} phone {i}")}),
                );
                let edit = p.op(
                    "case.edit@1",
                    json!({"case_id": case_id, "base_version": 1, "changes": {"description": format!("round {round} phone {i}")}}),
                );
                vec![comment, edit]
            })
            .collect();
        let (a, b, c, d) = tokio::join!(
            phones[0].push(&app, &batches[0]),
            phones[1].push(&app, &batches[1]),
            phones[2].push(&app, &batches[2]),
            phones[3].push(&app, &batches[3]),
        );
        for (status, body) in [a, b, c, d] {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }

    let admin = app.login("admin").await;
    let (_, case) = app.get(&format!("/v1/cases/{case_id}"), Some(&admin)).await;
    let version = case["version"].as_i64().unwrap();
    assert_eq!(
        events_versions(&case),
        (1..=version).collect::<Vec<_>>(),
        "every version has exactly one event"
    );
    let comments = case["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "comment")
        .count();
    assert_eq!(comments, 4 * rounds, "no comment lost");
}

/// An edit refused because the case is final still records what it asked for; the phones'
/// copies of the case must show those records as the server does.
async fn rejected_edit_conflicts_reach_every_copy_of_the_case(app: TestApp) {
    let mut inspector = Phone::enrol(&app, "inspector1").await;
    let mut colleague = Phone::enrol(&app, "inspector2").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = inspector.op("case.create@1", payload);
    inspector.push(&app, &[op]).await;
    let (_, cursor) = colleague.pull_all(&app, None).await;
    let op = inspector.op(
        "case.transition@1",
        json!({"case_id": case_id, "base_version": 1, "action": "withdraw"}),
    );
    let (_, body) = inspector.push(&app, &[op]).await;
    assert_eq!(body["results"][0]["status"], "applied", "{body}");
    let (_, cursor) = colleague.pull_all(&app, Some(cursor)).await;

    let op = colleague.op(
        "case.edit@1",
        json!({"case_id": case_id, "base_version": 1, "changes": {"description": "too late"}}),
    );
    let (_, body) = colleague.push(&app, &[op]).await;
    assert_eq!(body["results"][0]["code"], "case_closed", "{body}");

    let (changes, _) = colleague.pull_all(&app, Some(cursor)).await;
    let pulled = changes
        .iter()
        .find(|c| c["entity"] == "case" && c["id"] == json!(case_id))
        .expect("the case comes again");
    let (_, server) = app
        .get(&format!("/v1/cases/{case_id}"), Some(&colleague.token))
        .await;
    assert_eq!(server["conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(pulled["data"], gridline_testkit::without_evidence(server));
}

/// The phone pulled (it has a cursor); meanwhile colleagues changed things and the server
/// compacted its change log past that cursor; the phone captured more offline. Its next sync
/// is answered `reset_required`: it must push its queue first, then rebuild its mirror from a
/// full snapshot, and lose nothing.
async fn reset_after_an_expired_cursor_loses_nothing_unsynced(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let client = field_client(&app, dir.path(), "inspector1").await;
    let z1 = app.zone("Z01");
    let (first, op) = capture_case(z1, 0, "seen on monday");
    client.capture(op, &[]).await.unwrap();
    client.sync().await.unwrap();
    let old_cursor = client.status().await.unwrap().cursor.expect("a cursor");

    // A colleague edits the phone's case twice and captures one of their own.
    let mut colleague = Phone::enrol(&app, "inspector2").await;
    let (theirs, payload) = new_case(z1, 0, "event:0501");
    let ops = vec![
        colleague.op("case.create@1", payload),
        colleague.op(
            "case.edit@1",
            json!({"case_id": first, "base_version": 1, "changes": {"severity": "high"}}),
        ),
        colleague.op(
            "case.comment@1",
            json!({"case_id": first, "comment_id": Uuid::now_v7(), "text": "seen it too"}),
        ),
    ];
    assert_eq!(colleague.push(&app, &ops).await.0, StatusCode::OK);

    // The server compacts everything superseded (a cutoff in the future).
    let mut tx = app.state.db.begin_write().await.unwrap();
    let cutoff = gridline_testkit::gridline_server::store::now_ms() + 86_400_000;
    let deleted = gridline_testkit::gridline_server::store::changes::prune(tx.conn(), cutoff)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(deleted > 0);
    let (status, body) = app
        .get(
            &format!("/v1/sync/pull?protocol=1&cursor={old_cursor}"),
            Some(&colleague.token),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::GONE,
        "the old cursor has expired: {body}"
    );

    // Offline: a new case, an edit and a comment on the first one.
    let (second, op) = capture_case(z1, 0, "seen on tuesday");
    client.capture(op, &[]).await.unwrap();
    let edit = Operation::CaseEditV1(CaseEditV1 {
        case_id: first,
        base_version: 1,
        changes: CaseChanges {
            description: Some("seen on monday, still there".into()),
            ..CaseChanges::default()
        },
    });
    client.capture(edit, &[]).await.unwrap();
    let comment_id = Uuid::now_v7();
    let comment = Operation::CaseCommentV1(CaseCommentV1 {
        case_id: first,
        comment_id,
        text: "reported to the road chief".into(),
    });
    client.capture(comment, &[]).await.unwrap();

    // Pull alone: the reset itself must push the queue before dropping the mirror.
    let report = client.pull().await.unwrap();
    assert!(report.reset, "{report:?}");
    let status = client.status().await.unwrap();
    assert_eq!(status.pending, 0);
    assert_eq!(status.last_seq, 4);
    for entry in client.store().entries().await.unwrap() {
        assert_eq!(entry.state, OutboxState::Acked);
        assert_eq!(
            entry.result.unwrap().effective_status(),
            OpStatus::Applied,
            "seq {}",
            entry.seq
        );
    }

    let admin = app.login("admin").await;
    let (_, case) = app.get(&format!("/v1/cases/{first}"), Some(&admin)).await;
    assert_eq!(case["description"], "seen on monday, still there");
    assert_eq!(case["severity"], "high", "the colleague's edit stands");
    assert!(case["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == json!(comment_id)));
    assert_eq!(
        app.get(&format!("/v1/cases/{second}"), Some(&admin))
            .await
            .0,
        StatusCode::OK
    );
    assert_mirror_is_the_servers_view(&app, &client, "inspector1").await;
    let mirrored = client.mirror(EntityKind::Case).await.unwrap();
    assert!(mirrored.iter().any(|m| m.id == theirs.to_string()));
    assert!(
        client.mirror(EntityKind::Zone).await.unwrap().len() == 1,
        "reference data is back after the reset"
    );
}

/// The background job prunes with the configured retention: rows inside the window stay (an
/// old cursor still works), and with no retention a cursor from before a superseded row resets.
async fn the_hourly_compaction_expires_cursors_from_before_the_retention_window(app: TestApp) {
    use gridline_testkit::gridline_server::jobs::prune_changes;
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = phone.op("case.create@1", payload);
    phone.push(&app, &[op]).await;
    let (_, cursor) = phone.pull_all(&app, None).await;
    for n in 0..2 {
        let op = phone.op(
            "case.comment@1",
            json!({"case_id": case_id, "comment_id": Uuid::now_v7(), "text": format!("note {n}")}),
        );
        phone.push(&app, &[op]).await;
    }
    let pull = |cursor: String| {
        let token = phone.token.clone();
        let app = &app;
        async move {
            app.get(
                &format!("/v1/sync/pull?protocol=1&cursor={cursor}"),
                Some(&token),
            )
            .await
            .0
        }
    };

    // The default window (30 days) keeps everything this young.
    assert_eq!(
        prune_changes(
            &app.state.db,
            app.state.config.sync.tombstone_retention_days
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(pull(cursor.clone()).await, StatusCode::OK);

    // With no retention, the first comment's row is superseded by the second's and goes.
    assert!(prune_changes(&app.state.db, 0).await.unwrap() > 0);
    assert_eq!(pull(cursor).await, StatusCode::GONE);
    let (changes, _) = phone.pull_all(&app, None).await;
    assert!(
        changes.iter().any(|c| c["entity"] == "case"
            && c["id"] == json!(case_id)
            && c["data"]["version"] == 3),
        "a full pull still has the case at its latest version"
    );
}

/// The `gridline-field` walkthrough (docs/field-demo.md) through the client library: enrol,
/// capture two cases with photo files offline, sync, status, and the server lists them.
async fn field_demo_two_offline_cases_sync_and_are_listed_by_the_server(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let client = field_client(&app, dir.path(), "inspector1").await;
    let mut ids = Vec::new();
    for (n, text) in ["overflowing bin", "broken paving"].iter().enumerate() {
        let path = dir.path().join(format!("photo{n}.jpg"));
        std::fs::write(&path, format!("jpeg bytes of photo {n}")).unwrap();
        let photo = photo_from_file(&path, PhotoRole::Before, OffsetDateTime::now_utc()).unwrap();
        let (case_id, mut op) = capture_case(app.zone("Z01"), 0, text);
        if let Operation::CaseCreateV1(p) = &mut op {
            p.photos = vec![photo.manifest.clone()];
        }
        client.capture(op, &[photo]).await.unwrap();
        ids.push(case_id);
    }
    let status = client.status().await.unwrap();
    assert_eq!((status.pending, status.acked), (2, 0), "saved offline");

    let report = client.sync().await.unwrap();
    assert_eq!(report.push.acked, 2);
    assert!(!report.push.unverified_receipt);
    let status = client.status().await.unwrap();
    assert_eq!((status.pending, status.acked), (0, 2));
    let receipt = status.last_receipt.expect("a receipt");
    assert!(receipt.verified);
    assert_eq!(receipt.receipt.acked_through, 2);

    let token = app.login("inspector1").await;
    let (status, list) = app.get("/v1/cases", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<Value> = list["items"].as_array().unwrap().clone();
    for id in &ids {
        let case = listed
            .iter()
            .find(|c| c["id"] == json!(id))
            .expect("listed by the server");
        assert_eq!(case["photos"].as_array().unwrap().len(), 1);
    }
    assert_mirror_is_the_servers_view(&app, &client, "inspector1").await;
}
