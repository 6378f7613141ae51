//! Periods: a closed period takes no entries and corrections go to the open one; a period
//! closes after its end with nothing pending, or early by an admin.

use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::media_proposal_at;
use crate::support::*;

on_both_backends!(
    closed_period_takes_no_entries_and_corrections_go_to_the_open_period,
    a_period_closes_after_its_end_with_nothing_pending_and_opens_the_next,
    an_early_close_by_an_admin_leaves_the_rest_of_the_month_to_the_next_period,
);

async fn closed_period_takes_no_entries_and_corrections_go_to_the_open_period(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let admin = app.login("admin").await;
    let zone = app.zone("Z03");
    let entry = media_entry(&app, &sup, zone).await;
    let (_, pending) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": zone, "source": "leader_criticism", "rule_code": "LEADER"}),
        )
        .await;
    let period = current_period(&app, &sup).await;
    let pid = period["id"].as_str().unwrap();
    // Closed early by the admin, deciding the pending proposal in the same step.
    let close = json!({"early": true, "decisions": [
        {"proposal_id": pending["id"], "decision": "reject", "reason": "not ours"}]});
    let (status, body) = app
        .post(&format!("/v1/periods/{pid}/close"), Some(&admin), &close)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            &format!("/v1/periods/{pid}/close"),
            Some(&admin),
            &json!({"early": true}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("period_closed"))
    );

    // A new proposal cannot post into it.
    let found_in_it = period["starts_at"].clone();
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": zone, "source": "media", "rule_code": "MEDIA", "found_at": found_in_it}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("period_closed")),
        "{body}"
    );
    // Nor can raw SQL: the database refuses entries into a closed period.
    let mut forged: Value = entry.clone();
    forged["id"] = json!(Uuid::now_v7());
    let insert = sqlx::query(
        "INSERT INTO ledger_entries (seq, id, kind, zone_id, period_id, rulebook_version, rule_code, source, \
         raw_points_milli, coefficient_milli, weighted_points_milli, roster, approved_by, approved_at, found_at, \
         evidence, prev_hash, hash) VALUES (99, $1, 'deduction', $2, $3, 1, 'MEDIA', 'media', 1, 1, 1, '[]', 'x', 1, 1, '[]', 'x', 'x')",
    )
    .bind(forged["id"].as_str().unwrap())
    .bind(zone.to_string())
    .bind(pid)
    .execute(&app.state.db.pool)
    .await;
    assert!(insert
        .expect_err("closed period")
        .to_string()
        .contains("closed"));

    // A correction to the closed period posts in the next open period, pointing at the original.
    let ends = period["ends_at"].as_str().unwrap();
    let next_end =
        time::OffsetDateTime::parse(ends, &time::format_description::well_known::Rfc3339).unwrap()
            + time::Duration::days(31);
    let (status, next) = app
        .post(
            "/v1/periods",
            Some(&admin),
            &json!({"code": "next", "starts_at": ends, "ends_at": next_end.format(&time::format_description::well_known::Rfc3339).unwrap()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{next}");
    let (status, reversal) = reverse(
        &app,
        &sup,
        entry["id"].as_str().unwrap(),
        "correction",
        "wrong zone",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["period_id"], next["id"]);
    assert_eq!(reversal["reverses_id"], entry["id"]);
}

async fn a_period_closes_after_its_end_with_nothing_pending_and_opens_the_next(app: TestApp) {
    let admin = app.login("admin").await;
    let (sup1, sup2) = (
        app.login("supervisor1").await,
        app.login("supervisor2").await,
    );
    let current = current_period(&app, &sup1).await;
    // A period that has ended, with coefficients and two pending proposals.
    let (status, past) = app
        .post(
            "/v1/periods",
            Some(&admin),
            &json!({"code": "2020-01", "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2020-02-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{past}");
    let pid = past["id"].as_str().unwrap();
    for (zone, c) in [("Z01", 1.2), ("Z02", 0.9)] {
        let (status, body) = app
            .put(
                &format!("/v1/periods/{pid}/coefficients/{}", app.zone(zone)),
                Some(&admin),
                &json!({"coefficient": c}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let a = media_proposal_at(&app, "2020-01-15T10:00:00Z").await;
    let b = media_proposal_at(&app, "2020-01-20T10:00:00Z").await;
    let close = |token: String, body: Value| {
        let app = &app;
        async move {
            app.post(&format!("/v1/periods/{pid}/close"), Some(&token), &body)
                .await
        }
    };
    let still_open = || async {
        let (_, periods) = app.get("/v1/periods", Some(&admin)).await;
        let p = periods
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == json!(pid))
            .unwrap()
            .clone();
        p["status"] == "open"
    };

    // The current period has not ended: a supervisor cannot close it, even asking early.
    let current_close = format!("/v1/periods/{}/close", current["id"].as_str().unwrap());
    let (status, body) = app.post(&current_close, Some(&sup1), &json!({})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("period_not_ended")),
        "{body}"
    );
    assert_eq!(body["details"]["ends_at"], current["ends_at"]);
    let (status, body) = app
        .post(&current_close, Some(&sup1), &json!({"early": true}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Pending proposals hold the close, and are named.
    let (status, body) = close(sup1.clone(), json!({})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("period_proposals_pending")),
        "{body}"
    );
    let named: Vec<Value> = body["details"]["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(named, [a.clone(), b.clone()]);
    assert!(still_open().await);

    // Decisions in the close follow the usual rules, and a refused one leaves everything as it was.
    let decide = json!({"decisions": [
        {"proposal_id": a, "decision": "approve"},
        {"proposal_id": b, "decision": "reject", "reason": "a duplicate of the first"}],
        "next": {"code": "2020-02", "ends_at": "2020-03-01T00:00:00Z"}});
    let (status, body) = close(sup1.clone(), decide.clone()).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("self_approval")),
        "{body}"
    );
    assert!(still_open().await);
    let (_, pending) = app.get("/v1/deductions?status=proposed", Some(&sup1)).await;
    assert_eq!(pending.as_array().unwrap().len(), 2, "{pending}");

    // Another supervisor decides both and closes; the next period opens with the coefficients.
    let (status, closed) = close(sup2.clone(), decide).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["period"]["status"], "closed");
    assert_eq!(closed["period"]["ends_at"], past["ends_at"]);
    assert_eq!(closed["approved"][0]["proposal_id"], a);
    assert_eq!(closed["approved"][0]["coefficient"], 1.2);
    assert_eq!(closed["rejected"][0]["id"], b);
    assert_eq!(closed["rejected"][0]["status"], "rejected");
    let next = &closed["next"];
    assert_eq!(
        (
            next["code"].clone(),
            next["starts_at"].clone(),
            next["status"].clone()
        ),
        (json!("2020-02"), past["ends_at"].clone(), json!("open"))
    );
    let coefficients = |period: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (_, mut cs) = app
                .get(
                    &format!("/v1/periods/{}/coefficients", period.as_str().unwrap()),
                    Some(&admin),
                )
                .await;
            let mut cs: Vec<(Value, Value)> = cs
                .as_array_mut()
                .unwrap()
                .iter()
                .map(|c| (c["zone_id"].clone(), c["coefficient"].clone()))
                .collect();
            cs.sort_by_key(|(z, _)| z.to_string());
            cs
        }
    };
    assert_eq!(
        coefficients(next["id"].clone()).await,
        coefficients(json!(pid)).await
    );
    // A finding of the next period's time is proposed into it.
    let (_, p) = app
        .get(
            &format!(
                "/v1/deductions/{}",
                media_proposal_at(&app, "2020-02-10T10:00:00Z")
                    .await
                    .as_str()
                    .unwrap()
            ),
            Some(&sup1),
        )
        .await;
    assert_eq!(p["period_id"], next["id"]);
}

async fn an_early_close_by_an_admin_leaves_the_rest_of_the_month_to_the_next_period(app: TestApp) {
    let admin = app.login("admin").await;
    let current = current_period(&app, &admin).await;
    let (status, closed) = app
        .post(
            &format!("/v1/periods/{}/close", current["id"].as_str().unwrap()),
            Some(&admin),
            &json!({"early": true, "next": {"code": "rest", "ends_at": current["ends_at"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    // The closed period ends at the close; the next covers the rest of the month.
    assert_eq!(closed["period"]["ends_at"], closed["next"]["starts_at"]);
    assert_eq!(closed["next"]["ends_at"], current["ends_at"]);
    // A finding of today can still be deducted: it goes into the next period.
    let (status, p) = app
        .post(
            "/v1/deductions",
            Some(&app.login("supervisor1").await),
            &json!({"zone_id": app.zone("Z02"), "source": "media", "rule_code": "MEDIA"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["period_id"], closed["next"]["id"]);
    approve(&app, &app.login("supervisor2").await, &p).await;
}
