//! The inbox: notices written with the event that causes them, each told once to the people it
//! concerns, paged in order however many share a millisecond, and read with a receipt.

use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{inbox, kinds, record_for_admin};
use crate::support::{current_period, filed_case, media_entry, must_transition, transition};

on_both_backends!(
    the_inbox_pages_through_notices_of_the_same_millisecond,
    the_ledger_s_events_tell_the_people_they_concern_once,
    a_dispatch_tells_each_assignee_once_and_records_their_reading,
);

async fn the_inbox_pages_through_notices_of_the_same_millisecond(app: TestApp) {
    record_for_admin(&app, 5, gridline_server::store::now_ms()).await;
    let token = app.login("admin").await;
    let mut seen = Vec::new();
    let mut path = "/v1/inbox?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for n in page["items"].as_array().unwrap() {
            seen.push(n["data"]["n"].as_i64().unwrap());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/inbox?limit=2&before={next}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2, 3, 4], "every notice once");
    let (status, _) = app.get("/v1/inbox?before=yesterday", Some(&token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A deduction proposed tells the other supervisors; approved, the zone's chiefs and the
/// proposer; reversed, the people the entry named; rejected, the proposer; a period closed,
/// every supervisor and chief. Each notice is recorded once, in the transaction of its event.
async fn the_ledger_s_events_tell_the_people_they_concern_once(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let zone = app.zone("Z03");
    let entry = media_entry(&app, &sup, zone).await;
    let (status, body) = reverse_entry(&app, &app.login("supervisor2").await, &entry).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, rejected) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": zone, "source": "media", "rule_code": "MEDIA", "note": "rerun"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rejected}");
    let (status, body) = app
        .post(
            &format!("/v1/deductions/{}/reject", rejected["id"].as_str().unwrap()),
            Some(&app.login("supervisor2").await),
            &json!({"reason": "already counted"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let period = current_period(&app, &sup).await;
    let (status, body) = app
        .post(
            &format!("/v1/periods/{}/close", period["id"].as_str().unwrap()),
            Some(&app.login("admin").await),
            &json!({"early": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(
        kinds(&app, "supervisor2").await,
        ["deduction.proposed", "deduction.proposed", "period.closed"],
        "the other supervisor decides what is proposed"
    );
    assert_eq!(
        kinds(&app, "supervisor1").await,
        [
            "deduction.approved",
            "deduction.reversed",
            "deduction.rejected",
            "period.closed"
        ],
        "the proposer hears of each decision on their proposals"
    );
    let chief = kinds(&app, "sectionchief3").await;
    assert_eq!(
        chief,
        ["deduction.approved", "deduction.reversed", "period.closed"],
        "the zone's chief"
    );
    assert_eq!(
        kinds(&app, "sectionchief1").await,
        ["period.closed"],
        "another zone's chief"
    );
    // One notice per event, whoever it went to.
    let counted: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, COUNT(*) FROM notices GROUP BY kind ORDER BY kind")
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    let counted: Vec<(&str, i64)> = counted.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        counted,
        [
            ("deduction.approved", 1),
            ("deduction.proposed", 2),
            ("deduction.rejected", 1),
            ("deduction.reversed", 1),
            ("period.closed", 1),
        ]
    );
}

async fn reverse_entry(app: &TestApp, token: &str, entry: &Value) -> (StatusCode, Value) {
    crate::support::reverse(
        app,
        token,
        entry["id"].as_str().unwrap(),
        "correction",
        "entered twice",
    )
    .await
}

async fn a_dispatch_tells_each_assignee_once_and_records_their_reading(app: TestApp) {
    let (_phone, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    // A refused transition (stale version) tells nobody anything.
    let (status, _) = app
        .post(
            &format!("/v1/cases/{id}/transitions"),
            Some(&sup),
            &json!({"action": "dispatch", "base_version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(inbox(&app, "roadchief1").await["unread"], 0);

    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    for chief in ["roadchief1", "sectionchief1"] {
        let page = inbox(&app, chief).await;
        assert_eq!(page["unread"], 1, "{chief}: {page}");
        let notice = &page["items"][0];
        assert_eq!(notice["kind"], "case.dispatched");
        assert_eq!(notice["case_id"], json!(id));
        assert!(notice["data"]["deadline"].is_string(), "{notice}");
        assert!(notice["read_at"].is_null());
    }
    // Not the chiefs of another zone, nor the supervisor who dispatched.
    assert_eq!(inbox(&app, "roadchief2").await["items"], json!([]));
    assert_eq!(inbox(&app, "supervisor1").await["items"], json!([]));

    // The read receipt: recorded once, for the reader only.
    let chief = app.login("roadchief1").await;
    let notice = inbox(&app, "roadchief1").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app
        .post(
            &format!("/v1/inbox/{notice}/read"),
            Some(&chief),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let page = inbox(&app, "roadchief1").await;
    assert_eq!(page["unread"], 0);
    let first_read = page["items"][0]["read_at"].clone();
    assert!(first_read.is_string());
    let (status, _) = app
        .post(
            &format!("/v1/inbox/{notice}/read"),
            Some(&chief),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        inbox(&app, "roadchief1").await["items"][0]["read_at"],
        first_read
    );
    assert_eq!(inbox(&app, "sectionchief1").await["unread"], 1);
    let other = app.login("roadchief2").await;
    let (status, body) = app
        .post(
            &format!("/v1/inbox/{notice}/read"),
            Some(&other),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Starting work is not news to anyone: no new notice.
    let (status, body) = transition(
        &app,
        &app.login("sectionchief1").await,
        id,
        json!({"action": "start"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, unread) = app
        .get(
            "/v1/inbox?unread=true",
            Some(&app.login("sectionchief1").await),
        )
        .await;
    assert_eq!(unread["items"].as_array().unwrap().len(), 1);
}
