//! Scope: an operation outside the device's zones is rejected and kept, a change of zones
//! removes and catches up, and an unannounced round reaches only its inspector and supervisors.

use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::json;

use super::statuses;

on_both_backends!(
    out_of_scope_operation_is_rejected_kept_and_not_applied,
    scope_change_emits_remove_and_catches_up_the_new_zone,
    an_unannounced_round_and_its_cases_reach_only_their_inspector_and_supervisors,
);

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
    let photo = gridline_testkit::noisy_jpeg(64, 48, 7);
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
