//! Inspection plans: recurrences in the site's time zone and missed occurrences; unannounced
//! plans kept from the inspected zone's roster until revealed, through every read path; sealed
//! plans that verify after the reveal, and no longer once altered.

use gridline_server::seal::{self, SealProblem, SealProof};
use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::user_id;

on_both_backends!(
    a_recurring_plan_crosses_a_month_in_local_time_and_flags_a_missed_occurrence,
    the_assignees_phones_get_the_next_occurrences_again_once_one_ends,
    an_unannounced_plan_is_seen_by_planners_and_assignees_only_until_revealed,
    a_sealed_plan_verifies_after_its_reveal_and_not_once_altered,
    a_period_close_reveals_the_unannounced_inspections_made_in_it,
    bad_plans_are_refused_field_by_field,
);

fn plan_body(app: &TestApp, kind: &str, assignees: &[Uuid]) -> Value {
    json!({
        "name": "东区夜间暗访",
        "kind": kind,
        "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
        "dtstart": "2026-11-26T09:00",
        "window_minutes": 120,
        "zones": [app.zone("Z01")],
        "categories": ["event:0102"],
        "assignees": assignees,
        "checklist": {"items": [
            {"id": "covers", "label": "井盖完好", "weight": 3, "mandatory": true, "category_code": "component:0101"},
            {"id": "litter", "label": "无暴露垃圾", "weight": 1}
        ]}
    })
}

async fn sql(app: &TestApp, statement: &str) {
    sqlx::query(statement)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
}

async fn create_plan(app: &TestApp, token: &str, body: &Value) -> Value {
    let (status, plan) = app.post("/v1/plans", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    plan
}

/// Whether `user` learns of plan `id`: listed, read, in the calendar, its seal readable, and
/// pulled by their phone with `plans=true`.
async fn plan_reaches(app: &TestApp, user: &str, id: &str) -> [bool; 5] {
    let token = app.login(user).await;
    let (_, listed) = app.get("/v1/plans", Some(&token)).await;
    let listed = listed.as_array().unwrap().iter().any(|p| p["id"] == id);
    let (read, _) = app.get(&format!("/v1/plans/{id}"), Some(&token)).await;
    let (status, calendar) = app
        .get(
            "/v1/occurrences?from=2026-11-26T00:00:00Z&to=2026-12-08T00:00:00Z",
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{calendar}");
    let in_calendar = calendar
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["plan_id"] == id);
    let (seal, _) = app.get(&format!("/v1/plans/{id}/seal"), Some(&token)).await;
    let phone = Phone::enrol(app, user).await;
    let (status, page) = app
        .get(
            "/v1/sync/pull?protocol=1&limit=500&inbox=true&plans=true",
            Some(&phone.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let pulled = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["entity"] == "plan" && c["id"] == id && c["kind"] == "upsert");
    [
        listed,
        read == StatusCode::OK,
        in_calendar,
        seal == StatusCode::OK,
        pulled,
    ]
}

async fn a_recurring_plan_crosses_a_month_in_local_time_and_flags_a_missed_occurrence(
    app: TestApp,
) {
    let sup = app.login("supervisor1").await;
    let inspector = user_id(&app, "inspector1").await;
    let plan = create_plan(&app, &sup, &plan_body(&app, "periodic", &[inspector])).await;
    let id = plan["id"].as_str().unwrap();
    assert_eq!(plan["time_zone"], "Asia/Shanghai");
    assert_eq!(
        plan["commitment"],
        Value::Null,
        "an announced plan is not sealed"
    );

    // Mondays and Thursdays at 09:00 in Shanghai, across the end of November: 01:00 UTC.
    let (status, occurrences) = app
        .get(
            &format!(
                "/v1/plans/{id}/occurrences?from=2026-11-26T00:00:00Z&to=2026-12-08T00:00:00Z"
            ),
            Some(&sup),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{occurrences}");
    let starts: Vec<&str> = occurrences
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["starts_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-11-26T01:00:00Z",
            "2026-11-30T01:00:00Z",
            "2026-12-03T01:00:00Z",
            "2026-12-07T01:00:00Z"
        ]
    );
    assert_eq!(occurrences[0]["ends_at"], "2026-11-26T03:00:00Z");

    // Each of these has passed with no round started for it: missed.
    let now = time::OffsetDateTime::now_utc();
    for o in occurrences.as_array().unwrap() {
        let ends = time::OffsetDateTime::parse(
            o["ends_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        if ends < now {
            assert_eq!(o["status"], "missed", "{o}");
        }
    }
    assert!(
        occurrences
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["status"] == "missed"),
        "{occurrences}"
    );

    // The zone's ranking row counts the period's occurrences that have ended, none on time.
    let period = crate::support::current_period(&app, &sup).await;
    let (status, ended) = app
        .get(
            &format!(
                "/v1/plans/{id}/occurrences?from={}&to={}",
                period["starts_at"].as_str().unwrap(),
                period["ends_at"].as_str().unwrap()
            ),
            Some(&sup),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    let missed = ended
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "missed")
        .count() as i64;
    let (status, ranking) = app
        .get(
            &format!("/v1/periods/{}/ranking", period["id"].as_str().unwrap()),
            Some(&sup),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ranking}");
    let z1 = ranking["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone_id"] == json!(app.zone("Z01")))
        .unwrap()
        .clone();
    assert_eq!(z1["indicators"]["inspections_due"], missed, "{z1}");
    assert_eq!(z1["indicators"]["inspections_on_time"], 0, "{z1}");

    // A range over a year is refused, not expanded.
    let (status, body) = app
        .get(
            &format!(
                "/v1/plans/{id}/occurrences?from=2026-01-01T00:00:00Z&to=2028-01-01T00:00:00Z"
            ),
            Some(&sup),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Cancelled: no occurrence after the cancellation.
    let (status, cancelled) = app
        .post(&format!("/v1/plans/{id}/cancel"), Some(&sup), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["upcoming"], json!([]));
    let (status, _) = app
        .post(&format!("/v1/plans/{id}/cancel"), Some(&sup), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn an_unannounced_plan_is_seen_by_planners_and_assignees_only_until_revealed(app: TestApp) {
    let admin = app.login("admin").await;
    let assignees = [user_id(&app, "inspector1").await];
    let plan = create_plan(&app, &admin, &plan_body(&app, "unannounced", &assignees)).await;
    let id = plan["id"].as_str().unwrap().to_owned();

    let everything = [true; 5];
    let nothing = [false; 5];
    for (user, want) in [
        ("admin", [true, true, true, true, false]),
        ("supervisor1", [true, true, true, true, false]),
        ("inspector1", everything),
        // Another inspector of the zone, its roster and a zone chief of every zone.
        ("inspector2", nothing),
        ("roadchief1", nothing),
        ("sectionchief1", nothing),
        ("zonechief1", nothing),
    ] {
        assert_eq!(
            plan_reaches(&app, user, &id).await,
            want,
            "{user}: [listed, read, calendar, seal, pulled]"
        );
    }

    // The assignee makes a round for an occurrence and raises a case on it: the inspected
    // zone's roster learns of neither, through any path, until the reveal; the planners see
    // both.
    let z1 = app.zone("Z01");
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let round = Uuid::now_v7();
    let started = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let occurrence = plan["upcoming"][0]["starts_at"].clone();
    let (raised, mut payload) = new_case(z1, 0, "event:0102");
    payload["round_id"] = json!(round);
    let ops = vec![
        phone.op(
            "round.start@2",
            json!({"round_id": round, "zone_id": z1, "kind": "unannounced", "started_at": started,
                   "plan_id": id, "occurrence_at": occurrence}),
        ),
        phone.op("case.create@1", payload),
    ];
    let (status, body) = phone.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "applied", "{body}");
    assert_eq!(body["results"][1]["status"], "applied", "{body}");
    let every_path = (true, vec![[true; 6]]);
    let no_path = (false, vec![[false; 6]]);
    for (user, want) in [
        ("inspector1", &every_path),
        ("supervisor1", &every_path),
        ("inspector2", &no_path),
        ("roadchief1", &no_path),
        ("sectionchief1", &no_path),
        ("zonechief1", &no_path),
    ] {
        assert_eq!(
            &crate::sync::what_reaches(&app, user, round, &[raised]).await,
            want,
            "{user} before the reveal: (round pulled, [pull, list, read, workflow, csv, geojson])"
        );
    }

    // Only planners reveal.
    let chief = app.login("roadchief1").await;
    let (status, _) = app
        .post(&format!("/v1/plans/{id}/reveal"), Some(&chief), &json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let sup = app.login("supervisor1").await;
    let (status, revealed) = app
        .post(&format!("/v1/plans/{id}/reveal"), Some(&sup), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{revealed}");
    let (status, _) = app
        .post(&format!("/v1/plans/{id}/reveal"), Some(&sup), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "revealed once");

    // Revealed: the inspected zone's roster sees the round and its case through every path,
    // and the plan (their phones pull no plan of someone else's).
    for user in ["roadchief1", "sectionchief1", "zonechief1", "inspector2"] {
        assert_eq!(
            crate::sync::what_reaches(&app, user, round, &[raised]).await,
            every_path,
            "{user} after the reveal"
        );
    }
    for user in ["roadchief1", "sectionchief1", "zonechief1"] {
        assert_eq!(
            plan_reaches(&app, user, &id).await,
            [true, true, true, true, false],
            "{user} after the reveal"
        );
    }
    // An inspector of the zone not assigned sees the revealed plan too, but their phone does
    // not pull it (it is not theirs to carry out); one of another zone sees nothing.
    assert_eq!(
        plan_reaches(&app, "inspector2", &id).await,
        [true, true, true, true, false]
    );
    assert_eq!(plan_reaches(&app, "inspector3", &id).await, [false; 5]);
}

/// The server's public key named `kid`, as the operator hands it out (the verifier must not
/// take it from the proof).
fn server_key(app: &TestApp, kid: &str) -> ed25519_dalek::VerifyingKey {
    *app.state
        .keys
        .verifying_key(kid)
        .expect("a key of the server")
}

async fn seal_of(app: &TestApp, token: &str, id: &str) -> SealProof {
    let (status, body) = app.get(&format!("/v1/plans/{id}/seal"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn a_sealed_plan_verifies_after_its_reveal_and_not_once_altered(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let inspector = user_id(&app, "inspector1").await;
    // Three plans, so that the one checked is neither the log's first leaf nor its last.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let plan = create_plan(&app, &sup, &plan_body(&app, "unannounced", &[inspector])).await;
        assert_eq!(plan["commitment"].as_str().unwrap().len(), 64, "{plan}");
        ids.push(plan["id"].as_str().unwrap().to_owned());
    }
    let id = ids[1].clone();

    // Before the reveal the nonce stays secret: nothing can be checked yet.
    let hidden = seal_of(&app, &sup, &id).await;
    let key = server_key(&app, &hidden.receipt.key_id);
    assert_eq!(hidden.nonce, None);
    assert_eq!(seal::verify(&hidden, &key), vec![SealProblem::NotRevealed]);
    assert_eq!(hidden.receipt.tree_size, 2, "the second leaf of the log");

    let (status, _) = app
        .post(&format!("/v1/plans/{id}/reveal"), Some(&sup), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Anyone who may now see the plan can check it: the zone's road chief.
    let chief = app.login("roadchief1").await;
    let proof = seal_of(&app, &chief, &id).await;
    assert!(proof.nonce.is_some());
    assert_eq!(seal::verify(&proof, &key), vec![], "{proof:?}");
    // The proof is checked against the key, not against the one it names.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    assert_eq!(
        seal::verify(&proof, &other),
        vec![SealProblem::BadSignature]
    );

    // The same check at the command line, as a chief would run it on the proof they saved.
    let saved = app.dir.path().join("seal.json");
    std::fs::write(&saved, serde_json::to_vec(&proof).unwrap()).unwrap();
    let public_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
    };
    let cli = |proof: std::path::PathBuf, key: String| {
        let app = &app;
        async move {
            crate::support::gridline_cli(
                app,
                &[
                    "verify-seal",
                    "--proof",
                    proof.to_str().unwrap(),
                    "--public-key",
                    &key,
                ],
            )
            .await
        }
    };
    let (ok, out) = cli(saved.clone(), public_key.clone()).await;
    assert!(ok && out.contains("it verifies"), "{out}");

    // Altered after its creation (an assignee added behind the server's back): it no longer
    // verifies.
    let extra = user_id(&app, "inspector2").await;
    sql(
        &app,
        &format!("INSERT INTO plan_assignees (plan_id, user_id) VALUES ('{id}', '{extra}')"),
    )
    .await;
    let altered = seal_of(&app, &chief, &id).await;
    assert_eq!(
        seal::verify(&altered, &key),
        vec![SealProblem::ContentChanged]
    );
    std::fs::write(&saved, serde_json::to_vec(&altered).unwrap()).unwrap();
    let (ok, out) = cli(saved.clone(), public_key).await;
    assert!(!ok && out.contains("changed after its creation"), "{out}");
    // And its window widened, likewise.
    sql(
        &app,
        &format!("DELETE FROM plan_assignees WHERE plan_id = '{id}' AND user_id = '{extra}'"),
    )
    .await;
    assert_eq!(
        seal::verify(&seal_of(&app, &chief, &id).await, &key),
        vec![]
    );
    sql(
        &app,
        &format!("UPDATE plans SET window_minutes = 600 WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(
        seal::verify(&seal_of(&app, &chief, &id).await, &key),
        vec![SealProblem::ContentChanged]
    );
    // An announced plan has no seal.
    let periodic = create_plan(&app, &sup, &plan_body(&app, "periodic", &[inspector])).await;
    let (status, _) = app
        .get(
            &format!("/v1/plans/{}/seal", periodic["id"].as_str().unwrap()),
            Some(&sup),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Starts an unannounced round without a plan in `zone` with `inspector`'s phone, raises a case
/// on it, and finishes the round when `finish`: the round's and the case's ids.
async fn unannounced_round(
    app: &TestApp,
    phone: &mut Phone,
    zone: Uuid,
    finish: bool,
) -> (Uuid, Uuid) {
    let round = Uuid::now_v7();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (raised, mut payload) = new_case(zone, 0, "event:0102");
    payload["round_id"] = json!(round);
    let mut ops = vec![
        phone.op(
            "round.start@1",
            json!({"round_id": round, "zone_id": zone, "kind": "unannounced", "started_at": now}),
        ),
        phone.op("case.create@1", payload),
    ];
    if finish {
        ops.push(phone.op(
            "round.finish@1",
            json!({"round_id": round, "finished_at": now}),
        ));
    }
    let (status, body) = phone.push(app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (round, raised)
}

async fn a_period_close_reveals_the_unannounced_inspections_made_in_it(app: TestApp) {
    let z1 = app.zone("Z01");
    let mut inspector = Phone::enrol(&app, "inspector1").await;
    // Three unannounced rounds of zone 1: one a supervisor reveals alone, one finished before
    // the close, one still under way at the close.
    // The console overview's counts do not rise for the zone's chief (they do for a
    // supervisor, who sees the cases).
    let awaiting = |username: &'static str, roles: Vec<gridline_sync::Role>| {
        let app = &app;
        async move {
            let user = gridline_server::access::AuthUser {
                user_id: user_id(app, username).await,
                roles,
                device_id: None,
            };
            gridline_server::review::overview::overview(
                &app.state.db,
                &user,
                gridline_server::store::now_ms(),
            )
            .await
            .unwrap()
            .counts
            .awaiting
        }
    };
    let chief_awaiting = awaiting("roadchief1", vec![gridline_sync::Role::RoadChief]).await;
    let sup_awaiting = awaiting("supervisor1", vec![gridline_sync::Role::Supervisor]).await;

    let (single, single_case) = unannounced_round(&app, &mut inspector, z1, true).await;
    let (round, raised) = unannounced_round(&app, &mut inspector, z1, true).await;
    let (going, going_case) = unannounced_round(&app, &mut inspector, z1, false).await;
    assert_eq!(
        awaiting("roadchief1", vec![gridline_sync::Role::RoadChief]).await,
        chief_awaiting
    );
    assert_eq!(
        awaiting("supervisor1", vec![gridline_sync::Role::Supervisor]).await,
        sup_awaiting + 3
    );

    let chief = Phone::enrol(&app, "roadchief1").await;
    let (before, cursor) = chief.pull_all(&app, None).await;
    let names = |changes: &[Value], entity: &str, id: Uuid| {
        changes
            .iter()
            .any(|c| c["entity"] == entity && c["id"] == json!(id) && c["kind"] == "upsert")
    };
    for (r, c) in [(single, single_case), (round, raised), (going, going_case)] {
        assert!(!names(&before, "round", r) && !names(&before, "case", c));
    }
    let chief_token = app.login("roadchief1").await;
    let case_status = |id: Uuid| {
        let app = &app;
        let token = chief_token.clone();
        async move { app.get(&format!("/v1/cases/{id}"), Some(&token)).await.0 }
    };
    assert_eq!(case_status(raised).await, StatusCode::NOT_FOUND);

    // A deduction would publish the finding to the zone: refused while it is confidential.
    let sup = app.login("supervisor1").await;
    for id in [single_case, raised] {
        crate::support::must_transition(&app, &sup, id, json!({"action": "file"})).await;
    }
    let (status, refused) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"case_id": raised, "rule_code": "INSP-GARBAGE"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["details"]["confidential"], true, "{refused}");
    // No notice to the zone's chiefs names it either.
    for user in ["roadchief1", "sectionchief1", "zonechief1"] {
        let (status, inbox) = app.get("/v1/inbox", Some(&app.login(user).await)).await;
        assert_eq!(status, StatusCode::OK, "{inbox}");
        assert!(
            !inbox.to_string().contains(&raised.to_string()),
            "{user}'s inbox names the case: {inbox}"
        );
    }

    // A supervisor reveals one round alone (a chief may not): its finding can be deducted now.
    let path = format!("/v1/rounds/{single}/reveal");
    let (status, _) = app.post(&path, Some(&chief_token), &json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, revealed) = app.post(&path, Some(&sup), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{revealed}");
    assert_eq!(revealed["cases"], json!([single_case]), "{revealed}");
    let (status, _) = app.post(&path, Some(&sup), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "revealed once");
    assert_eq!(case_status(single_case).await, StatusCode::OK);
    assert_eq!(case_status(raised).await, StatusCode::NOT_FOUND);
    let proposal = crate::support::propose_on_case(&app, &sup, single_case).await;

    // The period closes (early, by the admin): its finished unannounced rounds are revealed,
    // and the chief's phone pulls them on from its cursor; the round still under way stays
    // confidential. Until then the zone's ranking row does not count the case; the closed
    // period's does.
    let admin = app.login("admin").await;
    let period = crate::support::current_period(&app, &admin).await;
    let found = |ranking: &Value| {
        ranking["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["zone_id"] == json!(z1))
            .map(|z| z["indicators"]["cases_found"].as_i64().unwrap())
            .unwrap()
    };
    let ranking_path = format!("/v1/periods/{}/ranking", period["id"].as_str().unwrap());
    let (_, open_ranking) = app.get(&ranking_path, Some(&sup)).await;
    let found_before = found(&open_ranking);
    // The deduction proposed above is decided with the close.
    let (status, closed) = app
        .post(
            &format!("/v1/periods/{}/close", period["id"].as_str().unwrap()),
            Some(&admin),
            &json!({"early": true, "decisions": [
                {"proposal_id": proposal["id"], "decision": "reject", "reason": "closing"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["period"]["status"], "closed", "{closed}");
    let (after, _) = chief.pull_all(&app, Some(cursor)).await;
    assert!(names(&after, "round", round), "{after:#?}");
    assert!(names(&after, "case", raised), "{after:#?}");
    assert!(!names(&after, "round", going) && !names(&after, "case", going_case));
    assert_eq!(case_status(raised).await, StatusCode::OK);
    assert_eq!(case_status(going_case).await, StatusCode::NOT_FOUND);
    let (_, closed_ranking) = app.get(&ranking_path, Some(&sup)).await;
    assert_eq!(
        found(&closed_ranking),
        found_before + 1,
        "counted from the reveal, not before"
    );
}

async fn bad_plans_are_refused_field_by_field(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let inspector = user_id(&app, "inspector1").await;
    let chief = user_id(&app, "roadchief1").await;
    let mut bad = plan_body(&app, "routine", &[inspector, chief]);
    bad["rrule"] = json!("FREQ=MINUTELY");
    bad["window_minutes"] = json!(0);
    bad["zones"] = json!([Uuid::nil()]);
    bad["checklist"]["items"][1]["weight"] = json!(0);
    let (status, body) = app.post("/v1/plans", Some(&sup), &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let paths: Vec<&str> = body["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for want in [
        "kind",
        "rrule",
        "window_minutes",
        "zones[0]",
        "assignees[1]",
        "checklist.items[1].weight",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
    let mut bad_start = plan_body(&app, "periodic", &[inspector]);
    bad_start["dtstart"] = json!("2026-11-26 09:00");
    let (status, body) = app.post("/v1/plans", Some(&sup), &bad_start).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"]["path"], "dtstart", "{body}");

    // Only planners make plans.
    let (status, _) = app
        .post(
            "/v1/plans",
            Some(&app.login("inspector1").await),
            &plan_body(&app, "periodic", &[inspector]),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/v1/plans",
            None,
            &plan_body(&app, "periodic", &[inspector]),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .get(&format!("/v1/plans/{}", Uuid::nil()), Some(&sup))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_assignees_phones_get_the_next_occurrences_again_once_one_ends(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let inspector = user_id(&app, "inspector1").await;
    let plan = create_plan(&app, &sup, &plan_body(&app, "periodic", &[inspector])).await;
    let phone = Phone::enrol(&app, "inspector1").await;
    let pull = |cursor: Option<String>| {
        let app = &app;
        let token = phone.token.clone();
        async move {
            let mut path = "/v1/sync/pull?protocol=1&limit=500&plans=true".to_owned();
            if let Some(c) = cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = app.get(&path, Some(&token)).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page
        }
    };
    let first = pull(None).await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    assert!(first["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["entity"] == "plan" && c["id"] == plan["id"]));

    // Nothing ended since the plan was written: nothing to refresh.
    let now = gridline_server::store::now_ms();
    assert_eq!(
        gridline_server::plans::refresh_upcoming(&app.state.db, now)
            .await
            .unwrap(),
        0
    );
    // As if the rows had been written a week ago: occurrences have ended since.
    sql(
        &app,
        "UPDATE changes SET at = at - 604800000 WHERE entity = 'plan'",
    )
    .await;
    assert_eq!(
        gridline_server::plans::refresh_upcoming(&app.state.db, now)
            .await
            .unwrap(),
        1
    );
    let again = pull(Some(cursor)).await;
    let refreshed = again["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["entity"] == "plan" && c["id"] == plan["id"])
        .unwrap_or_else(|| panic!("the plan again: {again}"))
        .clone();
    let ends = refreshed["data"]["upcoming"][0]["ends_at"]
        .as_str()
        .unwrap();
    let ends =
        time::OffsetDateTime::parse(ends, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(ends > time::OffsetDateTime::now_utc(), "{refreshed}");
}
