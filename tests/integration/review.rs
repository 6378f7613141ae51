//! Supervisor review: the case workflow as the server enforces it, and the review queue.

use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

on_both_backends!(
    the_workflow_records_every_step_and_counts_rework,
    refusals_returns_and_reopenings_need_a_comment,
    stale_decisions_and_wrong_roles_are_refused,
    only_the_dispatched_people_report_a_case_rectified,
    duplicates_link_the_original,
    the_queue_filters_and_pages_with_the_evidence_in_each_item,
    the_case_list_exports_as_csv_and_geojson,
);

fn states(case: &Value) -> Vec<String> {
    case["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "transition")
        .map(|e| e["to_state"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_workflow_records_every_step_and_counts_rework(app: TestApp) {
    let (_, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    let chief = app.login("sectionchief1").await;
    must_transition(
        &app,
        &sup,
        id,
        json!({"action": "dispatch", "target": "squad"}),
    )
    .await;
    let (_, wf) = app
        .get(&format!("/v1/cases/{id}/workflow"), Some(&sup))
        .await;
    assert_eq!(wf["dispatch_target"], "squad");
    assert_eq!(
        wf["assignees"].as_array().unwrap().len(),
        3,
        "three squad members: {wf}"
    );
    // Re-dispatch after a reopen goes to the accountable people instead.
    let squad = app.login("squad1").await;
    must_transition(&app, &squad, id, json!({"action": "start"})).await;
    let photo = |sha: &str| {
        json!([{"sha256": sha, "size": 1000, "role": "after",
                "captured_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()}])
    };
    must_transition(
        &app,
        &squad,
        id,
        json!({"action": "report_rectified", "photos": photo(&"cd".repeat(32))}),
    )
    .await;
    must_transition(
        &app,
        &sup,
        id,
        json!({"action": "return", "comment": "still dirty"}),
    )
    .await;
    must_transition(
        &app,
        &squad,
        id,
        json!({"action": "report_rectified", "photos": photo(&"ef".repeat(32))}),
    )
    .await;
    must_transition(&app, &sup, id, json!({"action": "close"})).await;
    must_transition(
        &app,
        &sup,
        id,
        json!({"action": "reopen", "comment": "came back overnight"}),
    )
    .await;
    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    let (status, body) = transition(&app, &squad, id, json!({"action": "start"})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the squad is no longer assigned: {body}"
    );
    must_transition(&app, &chief, id, json!({"action": "start"})).await;

    let c = case(&app, &sup, id).await;
    assert_eq!(
        states(&c),
        [
            "filed",
            "dispatched",
            "in_progress",
            "pending_verification",
            "in_progress",
            "pending_verification",
            "closed",
            "filed",
            "dispatched",
            "in_progress"
        ]
    );
    let returned = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from_state"] == "pending_verification" && e["to_state"] == "in_progress")
        .unwrap();
    assert_eq!(returned["comment"], "still dirty");
    let (_, wf) = app
        .get(&format!("/v1/cases/{id}/workflow"), Some(&sup))
        .await;
    assert_eq!(wf["rework_count"], 1);
    assert_eq!(wf["dispatch_target"], "accountable");
    assert_eq!(c["photos"].as_array().unwrap().len(), 3);
    // Supervisors' decisions are audited.
    let (_, audit) = app
        .get("/v1/audit?entity=case", Some(&app.login("admin").await))
        .await;
    assert!(audit.to_string().contains("case.return"), "{audit}");
}

async fn refusals_returns_and_reopenings_need_a_comment(app: TestApp) {
    let (_, id) = synced_case(&app).await;
    let sup = app.login("supervisor1").await;
    let (status, body) = transition(&app, &sup, id, json!({"action": "reject"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["path"], "comment");
    let (status, body) =
        transition(&app, &sup, id, json!({"action": "reject", "comment": "  "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let c = must_transition(
        &app,
        &sup,
        id,
        json!({"action": "reject", "comment": "not our street"}),
    )
    .await;
    assert_eq!(c["state"], "not_filed");
    let (status, body) = transition(&app, &sup, id, json!({"action": "file"})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("invalid_transition"))
    );
}

async fn stale_decisions_and_wrong_roles_are_refused(app: TestApp) {
    let (_, id) = synced_case(&app).await;
    let sup = app.login("supervisor1").await;
    let version = case(&app, &sup, id).await["version"].as_i64().unwrap();
    let (status, body) = app
        .post(
            &format!("/v1/cases/{id}/transitions"),
            Some(&sup),
            &json!({"action": "file", "base_version": version - 1}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("stale_version"))
    );
    let inspector = app.login("inspector1").await;
    let (status, _) = transition(&app, &inspector, id, json!({"action": "file"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An inspector of another zone does not even learn the case exists.
    let other = app.login("inspector5").await;
    let (status, _) = transition(&app, &other, id, json!({"action": "withdraw"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The reporter may withdraw while it is still reported.
    let c = must_transition(&app, &inspector, id, json!({"action": "withdraw"})).await;
    assert_eq!(c["state"], "withdrawn");
}

async fn only_the_dispatched_people_report_a_case_rectified(app: TestApp) {
    let (_, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    let c = must_transition(
        &app,
        &sup,
        id,
        json!({"action": "dispatch", "target": "squad"}),
    )
    .await;
    // The section chief has an assignee role in the zone but was not dispatched this case.
    let mut chief = Phone::enrol(&app, "sectionchief1").await;
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let payload = json!({
        "case_id": id, "base_version": c["version"], "action": "report_rectified",
        "photos": [{"sha256": "ab".repeat(32), "size": 1, "captured_at": now, "role": "after"}],
    });
    let op = chief.op("case.transition@1", payload.clone());
    let (_, body) = chief.push(&app, &[op]).await;
    assert_eq!(body["results"][0]["status"], "rejected", "{body}");
    assert_eq!(body["results"][0]["code"], "forbidden");
    let mut squad = Phone::enrol(&app, "squad2").await;
    let op = squad.op("case.transition@1", payload);
    let (_, body) = squad.push(&app, &[op]).await;
    assert_eq!(body["results"][0]["status"], "applied", "{body}");
    assert_eq!(case(&app, &sup, id).await["state"], "pending_verification");
}

async fn duplicates_link_the_original(app: TestApp) {
    let (mut phone, original) = synced_case(&app).await;
    let (dup, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = phone.op("case.create@1", payload);
    phone.push(&app, &[op]).await;
    let sup = app.login("supervisor1").await;
    let (status, body) = transition(&app, &sup, dup, json!({"action": "mark_duplicate"})).await;
    assert_eq!(
        (status, body["details"]["path"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("duplicate_of"))
    );
    let c = must_transition(
        &app,
        &sup,
        dup,
        json!({"action": "mark_duplicate", "duplicate_of": original}),
    )
    .await;
    assert_eq!(c["state"], "duplicate");
    let (_, wf) = app
        .get(&format!("/v1/cases/{dup}/workflow"), Some(&sup))
        .await;
    assert_eq!(wf["duplicate_of"], json!(original));
}

async fn the_queue_filters_and_pages_with_the_evidence_in_each_item(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let (mut phone, first) = synced_case(&app).await;
    let mut ids = vec![first];
    for _ in 0..4 {
        let (id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
        let op = phone.op("case.create@1", payload);
        phone.push(&app, &[op]).await;
        ids.push(id);
    }
    let mut z2 = Phone::enrol(&app, "inspector3").await;
    let (vending, payload) = new_case(app.zone("Z02"), 1, "event:0501");
    let op = z2.op("case.create@1", payload);
    z2.push(&app, &[op]).await;
    verify_evidence(&app, ids[0]).await;
    verify_evidence(&app, ids[1]).await;

    let page = |query: &'static str| {
        let app = &app;
        let sup = sup.clone();
        async move {
            let (status, body) = app
                .get(&format!("/v1/review/queue{query}"), Some(&sup))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let count = |v: &Value| v["items"].as_array().unwrap().len();

    let all = page("").await;
    assert_eq!(count(&all), 6);
    let item = &all["items"][0];
    assert_eq!(item["case"]["id"], json!(ids[0]));
    assert_eq!(item["evidence"]["complete"], true);
    let photo = &item["evidence"]["photos"][0];
    assert_eq!(photo["status"], "verified");
    assert_eq!(photo["sha256"].as_str().unwrap().len(), 64);
    assert!(photo["captured_at"].is_string());
    assert_eq!(item["workflow"]["overdue"], false);

    assert_eq!(count(&page("?evidence=complete").await), 2);
    assert_eq!(count(&page("?evidence=incomplete").await), 4);
    assert_eq!(count(&page("?work_category=city_order").await), 1);
    assert_eq!(
        count(&page("?category=event:0102&source=inspection").await),
        5
    );
    assert_eq!(count(&page("?flagged=true").await), 0);
    assert_eq!(count(&page("?overdue=true").await), 0);
    let z2_only = format!("?zone_id={}", app.zone("Z02"));
    let (_, body) = app
        .get(&format!("/v1/review/queue{z2_only}"), Some(&sup))
        .await;
    assert_eq!(body["items"][0]["case"]["id"], json!(vending));

    // Keyset paging: every case once, in order.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            None => "/v1/review/queue?limit=4".to_owned(),
            Some(n) => format!("/v1/review/queue?limit=4&after={n}"),
        };
        let (_, body) = app.get(&path, Some(&sup)).await;
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["case"]["id"].clone()),
        );
        match body["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(
        seen[..5],
        ids.iter().map(|i| json!(i)).collect::<Vec<_>>()[..]
    );

    // Filed cases leave the default queue; `state` selects them.
    must_transition(&app, &sup, ids[0], json!({"action": "file"})).await;
    assert_eq!(count(&page("").await), 5);
    assert_eq!(count(&page("?state=filed").await), 1);
    // A case captured outside its zone carries the flag, and the flag filter finds it (flag
    // names contain `_`, which LIKE would otherwise read as a wildcard).
    let (outside, mut payload) = new_case(app.zone("Z01"), 0, "event:0102");
    payload["location"] = json!({"lat": 1.0, "lon": 1.0, "accuracy_m": 8.0});
    let op = phone.op("case.create@1", payload);
    phone.push(&app, &[op]).await;
    let flagged = page("?flag=location_outside_zone").await;
    assert_eq!(count(&flagged), 1, "{flagged}");
    assert_eq!(flagged["items"][0]["case"]["id"], json!(outside));
    assert_eq!(count(&page("?flagged=true").await), 1);
    assert_eq!(count(&page("?flag=location%5Foutside%25").await), 0);
    assert_eq!(count(&page("?flag=clock_skew").await), 0);
    // Inspectors have no queue.
    let (status, _) = app.get("/v1/review/queue", Some(&phone.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn the_case_list_exports_as_csv_and_geojson(app: TestApp) {
    let (_, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    let (status, csv_bytes) = get_bytes(&app, "/v1/exports/cases?format=csv", &sup).await;
    assert_eq!(status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    let col = |key: &str| headers.iter().position(|h| h == header(key)).unwrap();
    assert_eq!(&rows[0][col("id")], id.to_string());
    assert_eq!(&rows[0][col("zone")], "Z01");
    assert_eq!(&rows[0][col("state")], "dispatched");
    assert!(!rows[0][col("deadline")].is_empty());

    let (status, geo) = app
        .get("/v1/exports/cases?format=geojson", Some(&sup))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(geo["type"], "FeatureCollection");
    let f = &geo["features"][0];
    assert_eq!(f["geometry"]["type"], "Point");
    let lon = f["geometry"]["coordinates"][0].as_f64().unwrap();
    assert!((116.30..116.312).contains(&lon), "[lon, lat] order: {lon}");
    assert_eq!(f["properties"]["state"], "dispatched");
    // An inspector of another zone exports nothing of Z01.
    let (_, geo) = app
        .get(
            "/v1/exports/cases?format=geojson",
            Some(&app.login("inspector5").await),
        )
        .await;
    assert_eq!(geo["features"], json!([]));
}

/// Once `ANALYZE` has sampled a realistic spread of cases (most of them old and closed, a few
/// sources and zones), SQLite's planner must still read each state's branch of the unfiltered
/// queue as an ordered range of `cases_queue`. Left to itself, SQLite may skip-scan the zone
/// or source index for a large state and sort every later case of it; how many cases it takes
/// depends on the SQLite version. The queue names the index; this pins the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unfiltered_queue_reads_its_index_in_order_after_analyze() {
    use gridline_testkit::gridline_server::store::review::{queue_statement, QueueFilter};
    use gridline_testkit::gridline_server::store::{Backend, Val};
    use sqlx::Row;

    let app = TestApp::on(gridline_testkit::Db::Sqlite)
        .await
        .expect("sqlite app");
    let pool = &app.state.db.pool;
    let zones: Vec<String> = (1..=8)
        .map(|z| format!("'{}'", app.zone(&format!("Z0{z}"))))
        .collect();
    // Twenty thousand cases, one a minute: the newest tenth holds the open work, the rest is
    // 85 % closed; four sources, eight zones, as the benchmark's seed spreads them.
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO cases (id, zone_id, reporter_id, source, state, category_code, description, \
           severity, lat, lon, accuracy_m, captured_at, queued_at, received_at, version, flags, \
           created_at, updated_at) \
         SELECT printf('0190a000-0000-7000-8000-%012d', i), \
           CASE i % 8 {zones_case} END, (SELECT id FROM users LIMIT 1), \
           {source}, {state}, \
           'c' || (i % 24), '', 'low', 0, 0, 1, i * 60000, i * 60000, i * 60000, 1, '[]', \
           i * 60000, i * 60000 FROM n",
        source = gridline_testkit::kit::seeded_case_source(),
        state = gridline_testkit::kit::seeded_case_state(18000),
        zones_case = zones
            .iter()
            .enumerate()
            .map(|(k, z)| format!("WHEN {k} THEN {z}"))
            .collect::<Vec<_>>()
            .join(" ")
    ))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(pool).await.unwrap();

    // Twenty pages of fifty deep, as a supervisor paging through every state.
    let cursor = (
        1000 * 60000,
        "0190a000-0000-7000-8000-000000001000".parse().unwrap(),
    );
    let filter = QueueFilter {
        after: Some(cursor),
        limit: 51,
        ..QueueFilter::default()
    };
    let (sql, binds) = queue_statement(Backend::Sqlite, &filter).expect("a statement");
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut q = sqlx::query(&explain);
    for v in binds {
        q = match v {
            Val::Text(t) => q.bind(t),
            Val::Int(i) => q.bind(i),
            Val::Real(r) => q.bind(r),
        };
    }
    let plan: Vec<String> = q
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
    let searches: Vec<&String> = plan.iter().filter(|d| d.starts_with("SEARCH")).collect();
    assert_eq!(searches.len(), 9, "one branch per state: {plan:#?}");
    for s in searches {
        assert!(
            s.contains("INDEX cases_queue (state=? AND (received_at,id)>(?,?))"),
            "{plan:#?}"
        );
    }
    app.stop().await;
}
