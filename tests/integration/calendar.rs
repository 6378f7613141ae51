//! The working-day calendar: holidays and make-up working days imported from CSV and read
//! back, and a time limit in working days whose deadline and escalation marks skip a weekend
//! and a public holiday.

use gridline_server::notify::Escalation;
use gridline_server::workdays::TimeLimit;
use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{filed_case, must_transition};

on_both_backends!(
    a_working_day_deadline_and_its_marks_skip_the_weekend_and_the_holiday,
    the_calendar_file_is_imported_whole_or_not_at_all,
);

/// The instant (Unix ms) of a local time in Asia/Shanghai (UTC+8 all year), the site's zone.
fn shanghai(month: u8, day: u8, hour: u8, minute: u8) -> i64 {
    let date =
        time::Date::from_calendar_date(2026, time::Month::try_from(month).unwrap(), day).unwrap();
    let at = date
        .with_hms(hour, minute, 0)
        .unwrap()
        .assume_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap());
    at.unix_timestamp() * 1000
}

async fn import(app: &TestApp, token: &str, csv: &str) -> (StatusCode, Value) {
    app.post_raw("/v1/calendar", Some(token), "text/csv", csv.into())
        .await
}

async fn the_calendar_file_is_imported_whole_or_not_at_all(app: TestApp) {
    let admin = app.login("admin").await;
    let sup = app.login("supervisor1").await;
    let file =
        "date,kind,name\n2027-01-01,holiday,元旦\n2027-02-07,班,调休上班\n2027-02-11,休,春节\n";

    let (status, _) = import(&app, &sup, file).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins import");

    let bad = "date,kind,name\n2027-01-01,holiday,元旦\n2027-02-30,holiday,x\n";
    let (status, body) = import(&app, &admin, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("line 3"),
        "{body}"
    );
    let (_, year) = app.get("/v1/calendar/2027", Some(&sup)).await;
    assert_eq!(year["days"], json!([]), "a refused file stores nothing");

    let (status, body) = import(&app, &admin, file).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"years": [2027], "holidays": 2, "workdays": 1, "replaced": 0})
    );
    let (status, year) = app.get("/v1/calendar/2027", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK, "{year}");
    assert_eq!(year["weekend"], json!(["saturday", "sunday"]));
    assert_eq!(year["day_start"], "08:30");
    assert_eq!(year["time_zone"], "Asia/Shanghai");
    assert_eq!(
        year["days"],
        json!([
            {"date": "2027-01-01", "kind": "holiday", "name": "元旦"},
            {"date": "2027-02-07", "kind": "workday", "name": "调休上班"},
            {"date": "2027-02-11", "kind": "holiday", "name": "春节"},
        ])
    );

    // A corrected file for the year replaces it whole; another year is untouched.
    import(&app, &admin, "date,kind,name\n2026-12-31,holiday,x\n").await;
    let (status, body) = import(&app, &admin, "date,kind,name\n2027-01-01,holiday,元旦\n").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replaced"], 3);
    let (_, year) = app.get("/v1/calendar/2027", Some(&sup)).await;
    assert_eq!(year["days"].as_array().unwrap().len(), 1);
    let (_, year) = app.get("/v1/calendar/2026", Some(&sup)).await;
    assert_eq!(year["days"].as_array().unwrap().len(), 1);

    let (status, _) = app.get("/v1/calendar/1900", Some(&sup)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = import(&app, &admin, "date,kind,name\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an empty file");
    app.stop().await;
}

/// A category allowing two working days, dispatched on Friday 18 December 2026 at 15:00: the
/// weekend and Monday's holiday do not count, so half the limit passes on Tuesday at 15:00
/// (the section chief is told), the deadline on Wednesday at 15:00 (the road chief) and
/// 150 % on Thursday at 15:00 (the zone chief). By the clock, half the span would have
/// passed in the night before the holiday.
async fn a_working_day_deadline_and_its_marks_skip_the_weekend_and_the_holiday(app: TestApp) {
    let admin = app.login("admin").await;
    let sup = app.login("supervisor1").await;
    let (status, body) = import(
        &app,
        &admin,
        "date,kind,name\n2026-12-21,holiday,Winter solstice\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_phone, id) = filed_case(&app).await;
    let (_, case) = app.get(&format!("/v1/cases/{id}"), Some(&sup)).await;
    let category = case["category_code"].as_str().unwrap().to_owned();
    let (_, taxonomy) = app.get("/v1/taxonomy", Some(&sup)).await;
    let mut entry = taxonomy
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == category.as_str())
        .unwrap()
        .clone();
    entry["time_limit_hours"] = Value::Null;
    entry["time_limit_working_days"] = json!(2);
    let (status, body) = app.put("/v1/taxonomy", Some(&admin), &json!([entry])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut both = entry.clone();
    both["time_limit_hours"] = json!(24);
    let (status, _) = app.put("/v1/taxonomy", Some(&admin), &json!([both])).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "two limits at once"
    );

    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    let pool = &app.state.db.pool;
    let week = app.state.config.work_week();
    let calendar = gridline_server::workcalendar::load(pool, &week)
        .await
        .unwrap();
    let (dispatched, deadline, working): (i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT dispatched_at, deadline_at, time_limit_working_ms FROM cases WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(working, Some(2 * 9 * 3_600_000), "two days of 08:30–17:30");
    assert_eq!(
        deadline,
        calendar.deadline(dispatched, TimeLimit::WorkingDays(2)),
        "the dispatch counted the deadline on the calendar"
    );

    // The same case as if dispatched on Friday 18 December at 15:00.
    let friday = shanghai(12, 18, 15, 0);
    let deadline = calendar.deadline(friday, TimeLimit::WorkingDays(2));
    assert_eq!(deadline, shanghai(12, 23, 15, 0));
    sqlx::query("UPDATE cases SET dispatched_at = $1, deadline_at = $2 WHERE id = $3")
        .bind(friday)
        .bind(deadline)
        .bind(id.to_string())
        .execute(pool)
        .await
        .unwrap();
    // The demo's roster starts when it loaded: it is moved back to cover the dispatch.
    sqlx::query("UPDATE roster SET valid_from = $1")
        .bind(shanghai(1, 1, 0, 0))
        .execute(pool)
        .await
        .unwrap();

    let zone = case["zone_id"].as_str().unwrap().to_owned();
    let n = ["Z01", "Z02", "Z03", "Z04", "Z05", "Z06", "Z07", "Z08"]
        .into_iter()
        .position(|c| app.zone(c).to_string() == zone)
        .unwrap()
        + 1;
    // Marks at 50, 100 and 150 %; no proposal for lateness (that is tested with notices).
    let escalation = Escalation {
        marks_pct: vec![50, 100, 150],
        week: week.clone(),
        overdue_rule: String::new(),
    };
    let pass = |at: i64| {
        let escalation = escalation.clone();
        let db = app.state.db.clone();
        async move {
            gridline_server::notify::escalate_due(&db, &escalation, at)
                .await
                .unwrap()
        }
    };
    let told = |user: String| {
        let app = &app;
        async move {
            let token = app.login(&user).await;
            let (status, inbox) = app.get("/v1/inbox", Some(&token)).await;
            assert_eq!(status, StatusCode::OK, "{inbox}");
            inbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["case_id"] == id.to_string())
                .filter(|n| n["kind"] == "case.due_soon" || n["kind"] == "case.overdue")
                .map(|n| {
                    (
                        n["kind"].as_str().unwrap().to_owned(),
                        n["data"]["mark_pct"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };

    // Half the span by the clock is Monday 03:00, on the holiday: nothing is due.
    assert_eq!(
        pass(shanghai(12, 21, 12, 0)).await,
        0,
        "Monday is a holiday"
    );
    assert_eq!(pass(shanghai(12, 22, 14, 59)).await, 0);
    assert_eq!(
        pass(shanghai(12, 22, 15, 0)).await,
        1,
        "50 % on Tuesday 15:00"
    );
    assert_eq!(
        told(format!("sectionchief{n}")).await,
        [("case.due_soon".to_owned(), json!(50))]
    );
    assert_eq!(pass(shanghai(12, 23, 14, 59)).await, 0);
    assert_eq!(
        pass(shanghai(12, 23, 15, 0)).await,
        1,
        "the deadline, Wednesday 15:00"
    );
    assert_eq!(
        told(format!("roadchief{n}")).await,
        [("case.overdue".to_owned(), json!(100))]
    );
    assert_eq!(pass(shanghai(12, 24, 14, 59)).await, 0);
    assert_eq!(
        pass(shanghai(12, 24, 15, 0)).await,
        1,
        "150 % on Thursday 15:00"
    );
    assert_eq!(
        told(format!("zonechief{n}")).await,
        [("case.overdue".to_owned(), json!(150))]
    );
    assert_eq!(pass(shanghai(12, 31, 0, 0)).await, 0, "each mark once");
    app.stop().await;
}
