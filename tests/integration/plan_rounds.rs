//! Inspection plans on the phone: the assignee's reference client pulls a plan, starts a round
//! for one of its occurrences (`round.start@2`), completes the plan's checklist with photos
//! (`round.checklist@1`), which raises a case per failed item with a category, and records the
//! round's track (`round.track@1`). Resent, each changes nothing; altered, each is refused.

use gridline_sync::client::{photo_from_file, OutboxState};
use gridline_sync::ops::{ChecklistResponse, Location, Operation, PhotoRole};
use gridline_sync::plan::{finding_case_id, ItemResult, PlanView};
use gridline_sync::{EntityKind, ErrorCode, OpResult, OpStatus};
use gridline_testkit::{noisy_jpeg, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::user_id;
use crate::sync_client::{field_client, FieldClient};

on_both_backends!(
    a_failed_checklist_item_raises_one_case_with_its_photo_and_the_round_keeps_its_score,
    a_plan_round_is_refused_outside_the_plan,
);

/// Daily at 09:00 Shanghai time since 2025, open two hours: always an occurrence at hand.
fn plan_body(zones: &[Uuid], assignees: &[Uuid]) -> Value {
    json!({
        "name": "井盖巡查",
        "kind": "periodic",
        "rrule": "FREQ=DAILY",
        "dtstart": "2025-01-01T09:00",
        "window_minutes": 120,
        "zones": zones,
        "assignees": assignees,
        "checklist": {"items": [
            {"id": "covers", "label": "井盖完好", "weight": 3, "mandatory": true,
             "category_code": "component:0101"},
            {"id": "litter", "label": "无暴露垃圾", "weight": 1}
        ]}
    })
}

async fn create_plan(app: &TestApp, planner: &str, body: &Value) -> Uuid {
    let token = app.login(planner).await;
    let (status, plan) = app.post("/v1/plans", Some(&token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    plan["id"].as_str().unwrap().parse().unwrap()
}

/// The result the server gave to the phone's operation at `seq`.
async fn result_of(client: &FieldClient, seq: u64) -> OpResult {
    let entry = client
        .store()
        .entries()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.seq == seq)
        .unwrap();
    assert_eq!(entry.state, OutboxState::Acked, "{entry:?}");
    entry.result.unwrap()
}

/// The stored round's (score, items failed, track points).
async fn round_row(app: &TestApp, round: Uuid) -> (Option<i64>, Option<i64>, Option<i64>) {
    let row =
        sqlx::query("SELECT score_permille, items_failed, track_points FROM rounds WHERE id = $1")
            .bind(round.to_string())
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    (
        row.try_get("score_permille").unwrap(),
        row.try_get("items_failed").unwrap(),
        row.try_get("track_points").unwrap(),
    )
}

async fn cases_of_round(app: &TestApp, round: Uuid) -> Vec<String> {
    sqlx::query_scalar::<_, String>("SELECT id FROM cases WHERE round_id = $1 ORDER BY id")
        .bind(round.to_string())
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
}

fn here() -> Location {
    Location {
        lat: 25.0389,
        lon: 102.7183,
        accuracy_m: 6.0,
        datum: Default::default(),
    }
}

async fn a_failed_checklist_item_raises_one_case_with_its_photo_and_the_round_keeps_its_score(
    app: TestApp,
) {
    let z1 = app.zone("Z01");
    let inspector = user_id(&app, "inspector1").await;
    let plan_id = create_plan(&app, "supervisor1", &plan_body(&[z1], &[inspector])).await;

    // The assignee's phone pulls the plan with its next occurrences.
    let dir = tempfile::tempdir().unwrap();
    let phone = field_client(&app, dir.path(), "inspector1").await;
    phone.sync().await.unwrap();
    let plans: Vec<PlanView> = phone.plans().await.unwrap();
    assert_eq!(plans.len(), 1, "{plans:?}");
    let plan = &plans[0];
    assert_eq!(plan.id, plan_id);
    assert_eq!(plan.checklist.items.len(), 2);
    let occurrence = plan.upcoming.first().expect("an occurrence").starts_at;

    // Offline: start the round, complete the checklist failing the mandatory item with a
    // photo, and record the track.
    let (round, start) = phone.start_plan_round(plan, z1, occurrence).await.unwrap();
    let path = dir.path().join("cover.jpg");
    std::fs::write(&path, noisy_jpeg(64, 48, 7)).unwrap();
    let photo = photo_from_file(&path, PhotoRole::Before, OffsetDateTime::now_utc()).unwrap();
    let sha = photo.manifest.sha256.clone();
    let answer = |item: &str, result: ItemResult, location: Option<Location>| ChecklistResponse {
        item_id: item.into(),
        result,
        note: None,
        location,
        photos: vec![],
    };
    let mut failed = answer("covers", ItemResult::Fail, Some(here()));
    failed.note = Some("东侧井盖破损".into());
    let checklist = phone
        .submit_checklist(
            plan,
            round,
            vec![
                (failed, vec![photo.clone()]),
                (answer("litter", ItemResult::Pass, None), vec![]),
            ],
        )
        .await
        .unwrap();
    let track = phone
        .record_track(
            round,
            &[(25.0389, 102.7183), (25.0392, 102.7190), (25.04, 102.72)],
        )
        .await
        .unwrap();

    let report = phone.sync().await.unwrap();
    assert_eq!(report.push.acked, 3, "{report:?}");
    assert_eq!(
        report.upload.uploaded, 1,
        "the item's photo uploads: {report:?}"
    );
    for entry in [&start, &checklist, &track] {
        let r = result_of(&phone, entry.seq).await;
        assert_eq!(r.status, OpStatus::Applied, "{}: {r:?}", entry.op_type);
    }

    // Exactly one case, for the failed item, with its photo, category and round.
    let finding = finding_case_id(round, "covers");
    assert_eq!(cases_of_round(&app, round).await, vec![finding.to_string()]);
    let sup = app.login("supervisor1").await;
    let (status, case) = app.get(&format!("/v1/cases/{finding}"), Some(&sup)).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["category_code"], "component:0101");
    assert_eq!(case["round_id"], json!(round));
    assert_eq!(case["zone_id"], json!(z1));
    assert_eq!(case["severity"], "medium");
    assert_eq!(case["reporter_id"], json!(inspector));
    assert_eq!(case["description"], "井盖完好\n东侧井盖破损");
    let photos = case["evidence"]["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 1, "{case}");
    assert_eq!(photos[0]["sha256"], sha);
    assert_eq!(photos[0]["verified"], true, "{case}");

    // The round keeps the score (1 of 4 weight passed) and its failed count and track, and
    // the phone pulls them on the round.
    assert_eq!(round_row(&app, round).await, (Some(250), Some(1), Some(3)));
    let mirrored = phone.mirror(EntityKind::Round).await.unwrap();
    let pulled = mirrored
        .iter()
        .find(|r| r.id == round.to_string())
        .expect("the round is pulled");
    assert_eq!(pulled.data["plan_id"], json!(plan_id));
    assert_eq!(
        pulled.data["occurrence_at"],
        json!(occurrence.format(&Rfc3339).unwrap())
    );
    assert_eq!(pulled.data["score_permille"], 250);
    assert_eq!(pulled.data["items_failed"], 1);
    assert_eq!(pulled.data["track_points"], 3);

    // The same checklist and track queued again: duplicates, and no second case.
    let sent = |entry: &gridline_sync::client::OutboxEntry| {
        let body: gridline_sync::OperationBody = serde_json::from_str(&entry.signed.op).unwrap();
        Operation::parse(&body.op_type, &body.payload).unwrap()
    };
    let again = phone.capture(sent(&checklist), &[photo]).await.unwrap();
    let track_again = phone.capture(sent(&track), &[]).await.unwrap();
    // Another checklist or track for the round is refused.
    let other = phone
        .submit_checklist(
            plan,
            round,
            vec![(answer("covers", ItemResult::Pass, None), vec![])],
        )
        .await
        .unwrap();
    let other_track = phone
        .record_track(round, &[(25.0, 102.7), (25.1, 102.8)])
        .await
        .unwrap();
    phone.sync().await.unwrap();
    for entry in [&again, &track_again] {
        let r = result_of(&phone, entry.seq).await;
        assert_eq!(r.status, OpStatus::Duplicate, "{r:?}");
        assert_eq!(r.first_status, Some(OpStatus::Applied));
    }
    for entry in [&other, &other_track] {
        let r = result_of(&phone, entry.seq).await;
        assert_eq!(r.status, OpStatus::Rejected, "{r:?}");
        assert_eq!(r.code, Some(ErrorCode::Conflict), "{r:?}");
    }
    assert_eq!(cases_of_round(&app, round).await, vec![finding.to_string()]);
    assert_eq!(round_row(&app, round).await, (Some(250), Some(1), Some(3)));

    // A track that does not hold the points it claims is refused, naming the field.
    let mut raw = Phone::enrol(&app, "inspector1").await;
    let round2 = Uuid::now_v7();
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let ops = vec![
        raw.op(
            "round.start@1",
            json!({"round_id": round2, "zone_id": z1, "kind": "routine", "started_at": now}),
        ),
        raw.op(
            "round.track@1",
            json!({"round_id": round2, "polyline": "_p~iF~ps|U_ulLnnqC_mqNvxq`@", "points": 2}),
        ),
        raw.op(
            "round.checklist@1",
            json!({"round_id": round2, "completed_at": now, "responses": []}),
        ),
    ];
    let (status, body) = raw.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "applied", "{body}");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["code"], "invalid_request");
    assert!(
        results[1]["message"]
            .as_str()
            .unwrap()
            .contains("payload.points"),
        "{body}"
    );
    // A checklist needs a round made for a plan.
    assert_eq!(results[2]["code"], "invalid_request");
    assert!(
        results[2]["message"]
            .as_str()
            .unwrap()
            .contains("payload.round_id"),
        "{body}"
    );
    assert_eq!(round_row(&app, round2).await, (None, None, None));
}

/// Pushes one `round.start@2` from `phone`: its result.
async fn push(app: &TestApp, phone: &mut Phone, payload: Value) -> Value {
    let op = phone.op("round.start@2", payload);
    let (status, body) = phone.push(app, &[op]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"][0].clone()
}

async fn a_plan_round_is_refused_outside_the_plan(app: TestApp) {
    let (z1, z2) = (app.zone("Z01"), app.zone("Z02"));
    let inspector = user_id(&app, "inspector1").await;
    let plan_id = create_plan(&app, "admin", &plan_body(&[z1], &[inspector])).await;
    let cancelled = create_plan(&app, "admin", &plan_body(&[z1], &[inspector])).await;
    let admin = app.login("admin").await;
    let (status, body) = app
        .post(
            &format!("/v1/plans/{cancelled}/cancel"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An occurrence: today's (or yesterday's) 09:00 in Shanghai, 01:00 UTC.
    let now = OffsetDateTime::now_utc();
    let mut occurrence = now.replace_time(time::macros::time!(01:00));
    if occurrence > now {
        occurrence -= time::Duration::days(1);
    }
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap();
    let start = |zone: Uuid, plan: Uuid, occurrence: OffsetDateTime| {
        json!({
            "round_id": Uuid::now_v7(), "zone_id": zone, "kind": "periodic",
            "started_at": at(now), "plan_id": plan, "occurrence_at": at(occurrence),
        })
    };
    let mut assignee = Phone::enrol(&app, "inspector1").await;
    let mut outsider = Phone::enrol(&app, "inspector2").await;

    let refused = [
        (
            push(&app, &mut outsider, start(z1, plan_id, occurrence)).await,
            "forbidden",
            "",
        ),
        (
            push(&app, &mut assignee, start(z2, plan_id, occurrence)).await,
            "out_of_scope",
            "payload.zone_id",
        ),
        (
            push(
                &app,
                &mut assignee,
                start(z1, plan_id, occurrence + time::Duration::minutes(1)),
            )
            .await,
            "invalid_request",
            "payload.occurrence_at",
        ),
        (
            push(&app, &mut assignee, start(z1, cancelled, occurrence)).await,
            "conflict",
            "",
        ),
        (
            push(&app, &mut assignee, start(z1, Uuid::now_v7(), occurrence)).await,
            "not_found",
            "",
        ),
    ];
    for (result, code, path) in refused {
        assert_eq!(result["status"], "rejected", "{result}");
        assert_eq!(result["code"], code, "{result}");
        assert!(
            result["message"].as_str().unwrap().contains(path),
            "{result}"
        );
    }
    let mut unannounced = start(z1, plan_id, occurrence);
    unannounced["kind"] = json!("unannounced");
    let result = push(&app, &mut assignee, unannounced).await;
    assert_eq!(result["code"], "invalid_request", "{result}");
    assert!(result["message"].as_str().unwrap().contains("payload.kind"));

    // The occurrence itself is taken, and the same round sent again is a duplicate.
    let good = start(z1, plan_id, occurrence);
    let first = push(&app, &mut assignee, good.clone()).await;
    assert_eq!(first["status"], "applied", "{first}");
    let again = push(&app, &mut assignee, good).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    let stored: (Option<String>, Option<i64>) = {
        let row = sqlx::query("SELECT plan_id, occurrence_at FROM rounds WHERE id = $1")
            .bind(first["entity_id"].as_str().unwrap())
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        (
            row.try_get("plan_id").unwrap(),
            row.try_get("occurrence_at").unwrap(),
        )
    };
    assert_eq!(
        stored,
        (
            Some(plan_id.to_string()),
            Some((occurrence.unix_timestamp_nanos() / 1_000_000) as i64)
        )
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM rounds WHERE plan_id IS NOT NULL")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap(),
        1,
        "nothing refused was stored"
    );
}
