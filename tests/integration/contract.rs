//! The API answers what `openapi.yaml` says it answers: real responses from a server with data in
//! it (a case with evidence, a round, a ledger entry and its reversal, a phone's pull) are
//! validated against the committed document's schemas with a JSON Schema validator. Generated
//! phone and web clients are built from those schemas, so a field the document types wrongly
//! (an object that is really an array) or leaves out breaks them.

use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_backends!(responses_of_a_populated_server_match_the_committed_schemas);

/// The committed document as JSON, the root against which `#/components/schemas/…` resolve,
/// with every object schema closed: a field the API sends but the document leaves out is drift
/// as much as a wrongly typed one (generated clients drop it).
fn committed_document() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml");
    let mut doc: Value = serde_yaml::from_str(&text).expect("openapi.yaml is YAML");
    close_objects(&mut doc["components"]["schemas"]);
    doc
}

fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Checks `instance` against the document's schema `name`; the failure lists every violation
/// with its path in the instance.
fn assert_matches(doc: &Value, name: &str, instance: &Value) {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "a real {name} does not match openapi.yaml:\n{}\n{instance:#}",
        errors.join("\n")
    );
}

async fn responses_of_a_populated_server_match_the_committed_schemas(app: TestApp) {
    let doc = committed_document();
    let z1 = app.zone("Z01");

    // An inspector's phone: a round and a case captured in it.
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let round_id = uuid::Uuid::now_v7();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (case_id, mut payload) = new_case(z1, 0, "event:0102");
    payload["round_id"] = json!(round_id);
    let ops = vec![
        phone.op(
            "round.start@1",
            json!({"round_id": round_id, "zone_id": z1, "kind": "routine", "started_at": now}),
        ),
        phone.op("case.create@1", payload),
    ];
    let (status, pushed) = phone.push(&app, &ops).await;
    assert_eq!(status, StatusCode::OK, "{pushed}");
    assert_matches(&doc, "PushResponse", &pushed);

    // The case as the API shows it, evidence included.
    let supervisor = app.login("supervisor1").await;
    let (status, case) = app
        .get(&format!("/v1/cases/{case_id}"), Some(&supervisor))
        .await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert!(case["evidence"].is_object(), "{case}");
    assert_matches(&doc, "CaseView", &case);
    let (_, cases) = app.get("/v1/cases", Some(&supervisor)).await;
    assert_matches(&doc, "Page_CaseView", &cases);
    // The review queue, with that case and its evidence in it.
    let (status, queue) = app.get("/v1/review/queue", Some(&supervisor)).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert!(
        !queue["items"][0]["evidence"]["photos"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{queue}"
    );
    assert_matches(&doc, "Page_QueueItem", &queue);

    // A ledger entry (a media finding: no case) and its reversal.
    let admin = app.login("admin").await;
    let (status, proposal) = app
        .post(
            "/v1/deductions",
            Some(&supervisor),
            &json!({"zone_id": z1, "source": "media", "rule_code": "MEDIA", "note": "evening news"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    assert_matches(&doc, "Proposal", &proposal);
    let id = proposal["id"].as_str().unwrap();
    let (status, entry) = app
        .post(
            &format!("/v1/deductions/{id}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    assert!(entry["roster"].is_array(), "{entry}");
    assert_matches(&doc, "LedgerEntry", &entry);
    let (status, reversal) = app
        .post(
            &format!(
                "/v1/ledger/entries/{}/reverse",
                entry["id"].as_str().unwrap()
            ),
            Some(&admin),
            &json!({"cause": "correction", "reason": "wrong zone"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_matches(&doc, "LedgerEntry", &reversal);
    let (_, entries) = app.get("/v1/ledger", Some(&admin)).await;
    assert_eq!(entries["items"].as_array().unwrap().len(), 2, "{entries}");
    assert_matches(&doc, "Page_LedgerEntry", &entries);

    // An unannounced plan for the phone's inspector, sealed, then revealed.
    let me = crate::support::user_id(&app, "inspector1").await;
    let (status, plan) = app
        .post(
            "/v1/plans",
            Some(&supervisor),
            &json!({"name": "暗访", "kind": "unannounced", "rrule": "FREQ=WEEKLY;BYDAY=MO",
                    "dtstart": "2026-11-30T09:00", "window_minutes": 120, "zones": [z1],
                    "assignees": [me], "checklist": {"items": [
                        {"id": "covers", "label": "井盖", "weight": 2, "mandatory": true,
                         "category_code": "component:0101"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    assert_matches(&doc, "PlanView", &plan);
    let plan_id = plan["id"].as_str().unwrap();
    let (status, revealed) = app
        .post(
            &format!("/v1/plans/{plan_id}/reveal"),
            Some(&supervisor),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revealed}");
    assert_matches(&doc, "Revealed", &revealed);
    let (_, seal) = app
        .get(&format!("/v1/plans/{plan_id}/seal"), Some(&supervisor))
        .await;
    assert_matches(&doc, "SealProof", &seal);
    let (_, occurrences) = app
        .get(
            &format!(
                "/v1/plans/{plan_id}/occurrences?from=2026-11-30T00:00:00Z&to=2027-01-01T00:00:00Z"
            ),
            Some(&supervisor),
        )
        .await;
    assert!(!occurrences.as_array().unwrap().is_empty(), "{occurrences}");
    for o in occurrences.as_array().unwrap() {
        assert_matches(&doc, "OccurrenceView", o);
    }

    // The phone's pull: every kind of entity it carries has the schema the document names for
    // it, and the page as a whole matches `PullResponse`.
    let (status, page) = app
        .get(
            "/v1/sync/pull?protocol=1&limit=1000&inbox=true&plans=true",
            Some(&phone.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_matches(&doc, "PullResponse", &page);
    let mut seen = std::collections::BTreeSet::new();
    for change in page["changes"].as_array().unwrap() {
        if change["kind"] != "upsert" {
            continue;
        }
        let entity = change["entity"].as_str().unwrap();
        let (_, schema) = gridline_testkit::gridline_server::routes::PULLED_DATA
            .iter()
            .find(|(kind, _)| kind.as_str() == entity)
            .unwrap_or_else(|| panic!("the document names no schema for pulled `{entity}`"));
        assert_matches(&doc, schema, &change["data"]);
        seen.insert(entity.to_owned());
    }
    for entity in [
        "zone", "taxonomy", "asset", "rule", "case", "round", "period", "plan",
    ] {
        assert!(
            seen.contains(entity),
            "the pull carried no {entity}: {seen:?}"
        );
    }
}
