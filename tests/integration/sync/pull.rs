//! Pulling and conflicts: reference data and pages in order, a stale edit losing to a
//! supervisor's with both sides told, rejections and conflicts paged newest first, and case views
//! the same however they are read.

use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::json;

use super::statuses;

on_both_backends!(
    pull_includes_reference_data_and_pages_in_order,
    stale_inspector_edit_loses_to_supervisor_and_both_sides_see_it,
    rejections_and_conflicts_are_paged_newest_first,
    case_views_read_side_by_side_equal_those_read_one_after_another,
);

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
    use gridline_testkit::gridline_server::sync::view::case_views;
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
