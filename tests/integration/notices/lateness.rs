//! Time limits: a dispatched case's chiefs are told at the marks of its limit, an overdue case
//! is proposed once for lateness citing who was told, one rectified in time is not late, and
//! escalation notices are acknowledged by their own recipient.

use std::time::Duration;

use gridline_server::notify::Escalation;
use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{inbox, kinds};
use crate::support::{filed_case, must_transition};

on_both_backends!(
    an_overdue_case_is_proposed_once_for_lateness_citing_who_was_told,
    a_case_rectified_in_time_is_not_late,
    escalation_notices_are_acknowledged_by_their_own_recipient,
);

/// A dispatched case is told to its chiefs at the marks of its time limit: at 50 % the
/// section chief ("due soon"), at 100 % the road chief ("overdue"), each once however many
/// passes look; a mark not yet reached, or passed by a case no longer being rectified, tells
/// nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chiefs_are_told_at_the_marks_of_a_time_limit_once_each() {
    let Some(app) = TestApp::builder()
        .config(|c| {
            c.notifications.escalation_poll_ms = 100;
        })
        .spawn()
        .await
    else {
        return;
    };
    let (_phone, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    // Dispatched 3 h ago with a 2.5 h limit: 50 % and 100 % passed, 150 % in 45 minutes. The
    // demo's roster started when it loaded: it is moved a day back so that it covers the
    // dispatch.
    let now = gridline_server::store::now_ms();
    sqlx::query("UPDATE roster SET valid_from = valid_from - 86400000")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE cases SET dispatched_at = $1, deadline_at = $2 WHERE id = $3")
        .bind(now - 3 * 3_600_000)
        .bind(now - 1_800_000)
        .bind(id.to_string())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let told = |app: &TestApp| {
        let pool = app.state.db.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT kind, COUNT(*) FROM notices WHERE kind IN ('case.due_soon', 'case.overdue') \
                 AND case_id = $1 GROUP BY kind ORDER BY kind",
            )
            .bind(id.to_string())
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    // The server's own passes tell both marks.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while told(&app).await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both marks told within 20 s"
        );
        tokio::task::yield_now().await;
    }
    // More passes tell nothing again.
    for _ in 0..3 {
        let n = gridline_server::notify::escalate_due(&app.state.db, &Escalation::default(), now)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
    assert_eq!(
        told(&app).await,
        [
            ("case.due_soon".to_owned(), 1),
            ("case.overdue".to_owned(), 1)
        ]
    );
    let (_, case) = app.get(&format!("/v1/cases/{id}"), Some(&sup)).await;
    let zone = case["zone_id"].as_str().unwrap().to_owned();
    let n = ["Z01", "Z02", "Z03", "Z04", "Z05", "Z06", "Z07", "Z08"]
        .into_iter()
        .position(|c| app.zone(c).to_string() == zone)
        .unwrap()
        + 1;
    let escalations = |kinds: Vec<String>| -> Vec<String> {
        kinds
            .into_iter()
            .filter(|k| k == "case.due_soon" || k == "case.overdue")
            .collect()
    };
    assert_eq!(
        escalations(kinds(&app, &format!("sectionchief{n}")).await),
        ["case.due_soon"]
    );
    assert_eq!(
        escalations(kinds(&app, &format!("roadchief{n}")).await),
        ["case.overdue"]
    );

    // 150 % passes once the case is waiting for verification: nobody is told.
    sqlx::query(
        "UPDATE cases SET state = 'pending_verification', dispatched_at = $1 WHERE id = $2",
    )
    .bind(now - 10 * 3_600_000)
    .bind(id.to_string())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let n = gridline_server::notify::escalate_due(&app.state.db, &Escalation::default(), now)
        .await
        .unwrap();
    assert_eq!(n, 0);
    app.stop().await;
}

// ---- lateness ---------------------------------------------------------------------------------

/// A case of Z01 filed and dispatched, made to look dispatched 3 h ago with its deadline a
/// minute ago (so 50 % and 100 % of its time limit have passed, 150 % not yet); the demo's
/// roster, which starts when it loaded, moved a day back so that it covers the dispatch.
/// Returns the case and the number of its zone (`sectionchief{n}`, `roadchief{n}`).
async fn overdue_case(app: &TestApp) -> (uuid::Uuid, usize, i64) {
    let (_phone, id) = filed_case(app).await;
    let sup = app.login("supervisor1").await;
    must_transition(app, &sup, id, json!({"action": "dispatch"})).await;
    let now = gridline_server::store::now_ms();
    sqlx::query("UPDATE roster SET valid_from = valid_from - 86400000")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let deadline = now - 60_000;
    sqlx::query("UPDATE cases SET dispatched_at = $1, deadline_at = $2 WHERE id = $3")
        .bind(now - 3 * 3_600_000)
        .bind(deadline)
        .bind(id.to_string())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let (_, case) = app.get(&format!("/v1/cases/{id}"), Some(&sup)).await;
    let zone = case["zone_id"].as_str().unwrap().to_owned();
    let n = ["Z01", "Z02", "Z03", "Z04", "Z05", "Z06", "Z07", "Z08"]
        .into_iter()
        .position(|c| app.zone(c).to_string() == zone)
        .unwrap()
        + 1;
    (id, n, deadline)
}

/// The lateness proposals of a case: (status, proposed_by), oldest first.
async fn lateness_proposals(app: &TestApp, case: uuid::Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT status, proposed_by FROM deduction_proposals WHERE case_id = $1 \
         AND basis = 'lateness' ORDER BY proposed_at, id",
    )
    .bind(case.to_string())
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap()
}

/// The newest notice of `kind` about `case` in `user`'s inbox.
async fn notice_of(app: &TestApp, user: &str, kind: &str, case: uuid::Uuid) -> Value {
    inbox(app, user).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == kind && n["case_id"] == json!(case))
        .unwrap_or_else(|| panic!("{user} has a {kind} notice of the case"))
        .clone()
}

/// A case past its deadline is proposed for a deduction for lateness exactly once, however
/// many escalation passes run and even two at once; the proposal is the system account's, so a
/// supervisor approves it under four eyes; the entry cites every chief told, with their
/// receipts, in its hashed reason; the case stays open to its finding's deduction and the
/// chain verifies.
async fn an_overdue_case_is_proposed_once_for_lateness_citing_who_was_told(app: TestApp) {
    let (id, n, deadline) = overdue_case(&app).await;
    let now = gridline_server::store::now_ms();
    let db = app.state.db.clone();
    for _ in 0..3 {
        gridline_server::notify::escalate_due(&db, &Escalation::default(), now)
            .await
            .unwrap();
    }
    // Two passes at once, as two instances would run them, on a second case.
    let (other, _, _) = overdue_case(&app).await;
    let escalation = Escalation::default();
    let (a, b) = tokio::join!(
        gridline_server::notify::escalate_due(&db, &escalation, now),
        gridline_server::notify::escalate_due(&db, &escalation, now),
    );
    a.unwrap();
    b.unwrap();
    let system = gridline_server::store::users::SYSTEM_USER_ID.to_string();
    for case in [id, other] {
        assert_eq!(
            lateness_proposals(&app, case).await,
            [("proposed".to_owned(), system.clone())],
            "one pending proposal for lateness on {case}"
        );
    }

    let sup = app.login("supervisor1").await;
    let (status, pending) = app.get("/v1/deductions?status=proposed", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let proposal = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["case_id"] == json!(id))
        .expect("the proposal is listed")
        .clone();
    assert_eq!(proposal["basis"], "lateness");
    assert_eq!(proposal["rule_code"], "OVERDUE");
    assert_eq!(proposal["proposed_by"], json!(system));
    assert_eq!(
        proposal["found_at"],
        json!(gridline_server::store::rfc3339(deadline)),
        "found at the deadline"
    );
    // The supervisors were told of it, as of any proposal.
    let told = notice_of(&app, "supervisor2", "deduction.proposed", id).await;
    assert_eq!(told["data"]["basis"], "lateness");
    // A second one is refused while it is pending.
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"case_id": id, "rule_code": "OVERDUE", "basis": "lateness"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "proposal_pending");

    // The section chief reads and acknowledges the "due soon" notice; the road chief never
    // reads the "overdue" one.
    let section = format!("sectionchief{n}");
    let road = format!("roadchief{n}");
    let due_soon = notice_of(&app, &section, "case.due_soon", id).await;
    let (status, body) = app
        .post(
            &format!(
                "/v1/notices/{}/acknowledge",
                due_soon["id"].as_str().unwrap()
            ),
            Some(&app.login(&section).await),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let entry = crate::support::approve(&app, &sup, &proposal).await;
    assert_eq!(entry["kind"], "deduction");
    assert_eq!(entry["case_id"], json!(id));
    assert!(entry["case_version"].is_i64(), "{entry}");
    assert_eq!(entry["evidence"], json!([]));
    let user_id = |name: String| {
        let pool = app.state.db.pool.clone();
        async move {
            gridline_server::store::users::by_username(&pool, &name)
                .await
                .unwrap()
                .unwrap()
                .id
                .to_string()
        }
    };
    let section_id = user_id(section.clone()).await;
    let road_id = user_id(road.clone()).await;
    let notified = entry["notified"].as_array().expect("notified").clone();
    assert_eq!(notified.len(), 2, "{entry}");
    let of = |user: &str| {
        notified
            .iter()
            .find(|t| t["user_id"] == user)
            .unwrap_or_else(|| panic!("{user} is cited: {entry}"))
            .clone()
    };
    let s = of(&section_id);
    assert_eq!(
        (&s["role"], &s["kind"], &s["mark_pct"]),
        (&json!("section_chief"), &json!("case.due_soon"), &json!(50))
    );
    assert!(
        s["read_at"].is_string() && s["acknowledged_at"].is_string(),
        "{s}"
    );
    assert_eq!(s["notice_id"], due_soon["id"]);
    let r = of(&road_id);
    assert_eq!(
        (&r["role"], &r["kind"], &r["mark_pct"]),
        (&json!("road_chief"), &json!("case.overdue"), &json!(100))
    );
    assert!(
        r["read_at"].is_null() && r["acknowledged_at"].is_null(),
        "{r}"
    );
    // The same, read back from the ledger, decoded from the hashed reason.
    let (_, again) = app
        .get(
            &format!("/v1/ledger/entries/{}", entry["id"].as_str().unwrap()),
            Some(&sup),
        )
        .await;
    assert_eq!(again["notified"], entry["notified"]);
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("{\"format\":\"gridline-lateness-v1\""),
        "{entry}"
    );

    // The case is still being rectified: not locked, and its finding may still be deducted.
    let case = crate::support::case(&app, &sup, id).await;
    assert_eq!(case["locked"], false, "{case}");
    let finding = crate::support::propose_on_case(&app, &sup, id).await;
    assert_eq!(finding["basis"], "finding");
    let finding_entry =
        crate::support::approve(&app, &app.login("supervisor2").await, &finding).await;
    assert!(finding_entry.get("notified").is_none(), "{finding_entry}");
    // More passes propose nothing more, the lateness deduction standing.
    gridline_server::notify::escalate_due(
        &db,
        &Escalation::default(),
        gridline_server::store::now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(
        lateness_proposals(&app, id).await,
        [("approved".to_owned(), system.clone())]
    );
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"case_id": id, "rule_code": "OVERDUE", "basis": "lateness"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "case_already_deducted");

    let (_, report) = app.get("/v1/ledger/verify", Some(&sup)).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], 2, "{report}");
}

/// A case sent for verification before its deadline is not late: no escalation pass proposes
/// it for lateness, nor may a supervisor. A case still being rectified after its deadline may
/// be proposed by hand, found at its deadline; never before it, and never without a case.
async fn a_case_rectified_in_time_is_not_late(app: TestApp) {
    let (id, n, _) = overdue_case(&app).await;
    let chief = app.login(&format!("sectionchief{n}")).await;
    must_transition(&app, &chief, id, json!({"action": "start"})).await;
    let photo = json!([{"sha256": "cd".repeat(32), "size": 1000, "role": "after",
        "captured_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()}]);
    must_transition(
        &app,
        &chief,
        id,
        json!({"action": "report_rectified", "photos": photo}),
    )
    .await;
    // Rectified two hours ago, before the deadline.
    sqlx::query(
        "UPDATE case_events SET at = at - 7200000 WHERE case_id = $1 \
         AND to_state = 'pending_verification'",
    )
    .bind(id.to_string())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let db = app.state.db.clone();
    for _ in 0..2 {
        gridline_server::notify::escalate_due(
            &db,
            &Escalation::default(),
            gridline_server::store::now_ms(),
        )
        .await
        .unwrap();
    }
    assert_eq!(lateness_proposals(&app, id).await, []);
    let sup = app.login("supervisor1").await;
    let lateness =
        |case: uuid::Uuid| json!({"case_id": case, "rule_code": "OVERDUE", "basis": "lateness"});
    let (status, body) = app.post("/v1/deductions", Some(&sup), &lateness(id)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Another case, late and still being rectified, proposed by hand before any pass.
    let (late, _, deadline) = overdue_case(&app).await;
    let mut early = lateness(late);
    early["found_at"] = json!(gridline_server::store::rfc3339(deadline - 1000));
    let (status, body) = app.post("/v1/deductions", Some(&sup), &early).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .post("/v1/deductions", Some(&sup), &lateness(late))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["basis"], "lateness");
    assert_eq!(
        body["found_at"],
        json!(gridline_server::store::rfc3339(deadline))
    );
    // The pass that follows finds it held and proposes no second one.
    gridline_server::notify::escalate_due(
        &db,
        &Escalation::default(),
        gridline_server::store::now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(lateness_proposals(&app, late).await.len(), 1);
    // No case, no lateness.
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": app.zone("Z01"), "source": "media", "rule_code": "MEDIA", "basis": "lateness"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// A chief acknowledges their own escalation notice (which reads it too), again without
/// changing the time; someone else's is not found; a notice that is not an escalation is not
/// acknowledged.
async fn escalation_notices_are_acknowledged_by_their_own_recipient(app: TestApp) {
    let (id, n, _) = overdue_case(&app).await;
    gridline_server::notify::escalate_due(
        &app.state.db,
        &Escalation::default(),
        gridline_server::store::now_ms(),
    )
    .await
    .unwrap();
    let section = format!("sectionchief{n}");
    let token = app.login(&section).await;
    let notice = notice_of(&app, &section, "case.due_soon", id).await;
    assert!(notice["acknowledged_at"].is_null(), "{notice}");
    let path = format!("/v1/notices/{}/acknowledge", notice["id"].as_str().unwrap());
    let (status, body) = app.post(&path, Some(&token), &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let acknowledged = notice_of(&app, &section, "case.due_soon", id).await;
    assert!(
        acknowledged["acknowledged_at"].is_string(),
        "{acknowledged}"
    );
    assert!(acknowledged["read_at"].is_string(), "{acknowledged}");
    let (status, body) = app.post(&path, Some(&token), &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        notice_of(&app, &section, "case.due_soon", id).await["acknowledged_at"],
        acknowledged["acknowledged_at"]
    );
    // The road chief's inbox does not hold the section chief's notice.
    let other = app.login(&format!("roadchief{n}")).await;
    let (status, body) = app.post(&path, Some(&other), &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let dispatched = notice_of(&app, &section, "case.dispatched", id).await;
    let (status, body) = app
        .post(
            &format!(
                "/v1/notices/{}/acknowledge",
                dispatched["id"].as_str().unwrap()
            ),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
