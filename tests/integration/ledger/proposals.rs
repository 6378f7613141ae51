//! Proposals and reversals: a resent proposal is recognised, a case takes one deduction until
//! it is reversed, and a reversal is single and final.

use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::proposal_count;
use crate::support::*;

on_both_backends!(
    resent_proposals_are_recognised_by_their_proposal_id,
    a_case_takes_one_deduction_until_it_is_reversed,
    concurrent_proposals_and_approvals_on_a_case_post_one_entry,
    reversals_are_single_and_final,
);

async fn resent_proposals_are_recognised_by_their_proposal_id(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    let id = Uuid::now_v7();
    let body =
        json!({"proposal_id": id, "case_id": case_id, "rule_code": "INSP-GARBAGE", "note": "bin"});
    let (status, first) = app.post("/v1/deductions", Some(&sup), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["id"], json!(id));
    // The answer was lost; the client resends: the same proposal, nothing new.
    let (status, again) = app.post("/v1/deductions", Some(&sup), &body).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert_eq!(proposal_count(&app).await, 1);
    // Different content under the same id is refused, whatever else it says.
    for other in [
        json!({"proposal_id": id, "case_id": case_id, "rule_code": "INSP-GARBAGE", "note": "other"}),
        json!({"proposal_id": id, "zone_id": app.zone("Z02"), "source": "media", "rule_code": "MEDIA"}),
    ] {
        let (status, err) = app.post("/v1/deductions", Some(&sup), &other).await;
        assert_eq!(
            (status, err["code"].clone()),
            (StatusCode::CONFLICT, json!("proposal_id_reused")),
            "{err}"
        );
    }
    // Another supervisor resending it is not the same request either.
    let sup2 = app.login("supervisor2").await;
    let (status, err) = app.post("/v1/deductions", Some(&sup2), &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "proposal_id_reused");
    // After the approval a resend answers the proposal as it stands.
    let (status, entry) = app
        .post(
            &format!("/v1/deductions/{id}/approve"),
            Some(&sup2),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    let (status, again) = app.post("/v1/deductions", Some(&sup), &body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "approved");
    assert_eq!(again["ledger_entry_id"], entry["id"]);
    assert_eq!(proposal_count(&app).await, 1);

    // A direct finding: the same with the id; without one every request is a new proposal.
    let media = json!({"proposal_id": Uuid::now_v7(), "zone_id": app.zone("Z02"), "source": "media",
        "rule_code": "MEDIA", "note": "evening news"});
    let (status, first) = app.post("/v1/deductions", Some(&sup), &media).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app.post("/v1/deductions", Some(&sup), &media).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert_eq!(proposal_count(&app).await, 2);
    let mut plain = media.clone();
    plain.as_object_mut().unwrap().remove("proposal_id");
    for _ in 0..2 {
        let (status, p) = app.post("/v1/deductions", Some(&sup), &plain).await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
    }
    assert_eq!(proposal_count(&app).await, 4);
}

async fn a_case_takes_one_deduction_until_it_is_reversed(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    let refused = |code: &'static str| {
        let (app, sup) = (&app, sup.clone());
        async move {
            let (status, body) = app
                .post(
                    "/v1/deductions",
                    Some(&sup),
                    &json!({"case_id": case_id, "rule_code": "INSP-GARBAGE"}),
                )
                .await;
            assert_eq!(
                (status, body["code"].clone()),
                (StatusCode::CONFLICT, json!(code)),
                "{body}"
            );
            body
        }
    };
    let first = propose_on_case(&app, &sup, case_id).await;
    let err = refused("proposal_pending").await;
    assert_eq!(err["details"]["proposal_id"], first["id"]);
    // A rejected proposal frees the case.
    let (status, body) = app
        .post(
            &format!("/v1/deductions/{}/reject", first["id"].as_str().unwrap()),
            Some(&sup),
            &json!({"reason": "wrong rule"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = propose_on_case(&app, &sup, case_id).await;
    let sup2 = app.login("supervisor2").await;
    let entry = approve(&app, &sup2, &second).await;
    let err = refused("case_already_deducted").await;
    assert_eq!(err["details"]["proposal_id"], second["id"]);
    // A reversal frees it for a corrected deduction.
    let (status, reversal) = reverse(
        &app,
        &sup,
        entry["id"].as_str().unwrap(),
        "correction",
        "wrong rule",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    let third = propose_on_case(&app, &sup, case_id).await;
    approve(&app, &sup2, &third).await;
    refused("case_already_deducted").await;
    let (_, ledger) = app.get("/v1/ledger", Some(&sup)).await;
    let kinds: Vec<&str> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["deduction", "reversal", "deduction"]);
}

async fn concurrent_proposals_and_approvals_on_a_case_post_one_entry(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup1 = app.login("supervisor1").await;
    let sup2 = app.login("supervisor2").await;
    let body = json!({"case_id": case_id, "rule_code": "INSP-GARBAGE"});
    let (a, b) = tokio::join!(
        app.post("/v1/deductions", Some(&sup1), &body),
        app.post("/v1/deductions", Some(&sup2), &body),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{} / {}",
        a.1,
        b.1
    );
    assert_eq!(proposal_count(&app).await, 1);
    let made = if a.0 == StatusCode::CREATED { a.1 } else { b.1 };
    let first = made["id"].as_str().unwrap().to_owned();
    // A second pending proposal on the case that got past the API (as one made before the
    // rule could have): the approval itself refuses a second deduction, under the case's lock.
    let second = Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO deduction_proposals (id, case_id, zone_id, period_id, source, rulebook_id, \
         rule_code, raw_points_milli, category_code, found_at, note, status, proposed_by, \
         proposed_at) SELECT $1, case_id, zone_id, period_id, source, rulebook_id, rule_code, \
         raw_points_milli, category_code, found_at, note, status, proposed_by, proposed_at \
         FROM deduction_proposals WHERE id = $2",
    )
    .bind(&second)
    .bind(&first)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let empty = json!({});
    let (path1, path2) = (
        format!("/v1/deductions/{first}/approve"),
        format!("/v1/deductions/{second}/approve"),
    );
    // Approved by someone who proposed neither (four eyes).
    let admin = app.login("admin").await;
    let (a, b) = tokio::join!(
        app.post(&path1, Some(&admin), &empty),
        app.post(&path2, Some(&admin), &empty),
    );

    let mut answers = [(a.0, a.1["code"].clone()), (b.0, b.1["code"].clone())];
    answers.sort_by_key(|(s, _)| *s);
    assert_eq!(
        answers,
        [
            (StatusCode::OK, Value::Null),
            (StatusCode::CONFLICT, json!("case_already_deducted"))
        ],
        "{} / {}",
        a.1,
        b.1
    );
    let (_, ledger) = app.get("/v1/ledger", Some(&sup1)).await;
    assert_eq!(ledger["items"].as_array().unwrap().len(), 1);
}

async fn reversals_are_single_and_final(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let entry = media_entry(&app, &sup, app.zone("Z04")).await;
    let id = entry["id"].as_str().unwrap();
    let (status, body) = reverse(&app, &sup, id, "correction", "").await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {body}"
    );

    let (status, reversal) = reverse(
        &app,
        &sup,
        id,
        "appeal_upheld",
        "the zone showed the report was about Z05",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["kind"], "reversal");
    assert_eq!(reversal["reverses_id"], entry["id"]);
    assert_eq!(
        reversal["weighted_points"],
        -entry["weighted_points"].as_f64().unwrap()
    );
    assert_eq!(reversal["coefficient"], entry["coefficient"]);
    assert_eq!(reversal["prev_hash"], entry["hash"]);

    let (status, body) = reverse(&app, &sup, id, "appeal_upheld", "again").await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("conflict")),
        "{body}"
    );
    let rid = reversal["id"].as_str().unwrap();
    let (status, body) = reverse(&app, &sup, rid, "appeal_upheld", "undo").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("reversal cannot be reversed"));

    let period = current_period(&app, &sup).await;
    let (_, ranking) = app
        .get(
            &format!("/v1/periods/{}/ranking", period["id"].as_str().unwrap()),
            Some(&sup),
        )
        .await;
    let z04 = ranking["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone_code"] == "Z04")
        .unwrap()
        .clone();
    assert_eq!(
        (
            z04["score"].clone(),
            z04["entries"].clone(),
            z04["reversals"].clone()
        ),
        (json!(100.0), json!(2), json!(1))
    );
}
