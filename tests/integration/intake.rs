//! Cases from outside the patrol: a hotline call becomes a case, is merged into the inspector's
//! case it duplicates, or runs the loop to a callback; a report from the public costs points
//! only after an inspector's phone verified it on site; the callers never leave their table.

use gridline_sync::client::{photo_from_file, Client, HttpTransport, RecordingSleeper, Store};
use gridline_sync::ops::{CaseVerifyV1, Location, Operation, PhotoRole};
use gridline_testkit::{noisy_jpeg, on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::*;

on_both_backends!(
    a_hotline_call_is_merged_or_verified_rectified_closed_called_back_and_deducted,
    intake_refuses_bad_reports_and_wrong_roles,
    callers_are_masked_for_supervisors_and_erased_after_their_retention,
    the_console_takes_a_call_in_and_records_the_callback,
    an_unannounced_inspection_s_case_is_never_suggested_to_whom_it_is_hidden_from,
    a_leader_s_instruction_keeps_its_document_as_evidence,
);

const CALLER_NAME: &str = "张三丰";
const CALLER_PHONE: &str = "13812345678";

fn rfc3339_now() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn sha_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A point inside demo zone `index`, away from its centre by `shift` degrees of longitude.
fn point_in(index: usize, shift: f64) -> (f64, f64) {
    let (a, b, c, d) = gridline_testkit::gridline_server::demo::zone_rect(index);
    ((b + d) / 2.0, (a + c) / 2.0 + shift)
}

async fn take_in(app: &TestApp, token: &str, body: &Value) -> (StatusCode, Value) {
    app.post("/v1/intake", Some(token), body).await
}

fn hotline_call(ticket: &str, category: &str, (lat, lon): (f64, f64)) -> Value {
    json!({
        "channel": "hotline",
        "external_ref": ticket,
        "category_code": category,
        "description": "garbage piled at the gate for three days",
        "address": "和平路 12 号门口",
        "location": {"lat": lat, "lon": lon},
        "caller": {"name": CALLER_NAME, "phone": CALLER_PHONE},
    })
}

/// Everything said about a case anywhere a case travels, as one text.
async fn everywhere(app: &TestApp, case_id: Uuid) -> String {
    let admin = app.login("admin").await;
    let sup = app.login("supervisor1").await;
    let mut out = String::new();
    let (status, case) = app.get(&format!("/v1/cases/{case_id}"), Some(&sup)).await;
    assert_eq!(status, StatusCode::OK);
    out.push_str(&case.to_string());
    let (status, list) = app.get("/v1/cases?limit=500", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK);
    out.push_str(&list.to_string());
    for format in ["csv", "geojson"] {
        let (status, bytes) =
            get_bytes(app, &format!("/v1/exports/cases?format={format}"), &sup).await;
        assert_eq!(status, StatusCode::OK);
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    let (status, audit) = app.get("/v1/audit?limit=500", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert!(
        audit.to_string().contains("case.intake"),
        "the audit log was read"
    );
    out.push_str(&audit.to_string());
    let (status, inbox) = app.get("/v1/inbox", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK);
    out.push_str(&inbox.to_string());
    out
}

async fn a_hotline_call_is_merged_or_verified_rectified_closed_called_back_and_deducted(
    app: TestApp,
) {
    let hotline = app.login("hotline1").await;
    let sup1 = app.login("supervisor1").await;
    let sup2 = app.login("supervisor2").await;

    // An inspector's case at the centre of Z01.
    let (inspector_phone, inspector_case) = synced_case(&app).await;
    let at_centre = point_in(0, 0.0);

    // A call about the same garbage 20 m away: the inspector's case is suggested.
    let (status, first) = take_in(
        &app,
        &hotline,
        &hotline_call(
            "12345-0001",
            "event:0102",
            (at_centre.0, at_centre.1 + 0.0002),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let dup_id: Uuid = first["case"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(first["case"]["source"], "hotline");
    assert_eq!(first["case"]["state"], "reported");
    assert_eq!(
        first["case"]["zone_id"],
        json!(app.zone("Z01")),
        "routed by the map"
    );
    let suggested = first["duplicates"].as_array().unwrap();
    assert_eq!(suggested.len(), 1, "{first}");
    assert_eq!(suggested[0]["case_id"], json!(inspector_case));
    assert!(suggested[0]["distance_m"].as_f64().unwrap() < 50.0);

    // The same ticket again is not a second case.
    let (status, again) = take_in(
        &app,
        &hotline,
        &hotline_call("12345-0001", "event:0102", at_centre),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["details"]["case_id"], json!(dup_id));

    // Merged: the call becomes a duplicate and its caller follows to the inspector's case.
    must_transition(
        &app,
        &sup1,
        dup_id,
        json!({"action": "mark_duplicate", "duplicate_of": inspector_case}),
    )
    .await;
    let (status, merged) = app
        .get(
            &format!("/v1/cases/{inspector_case}/intake"),
            Some(&hotline),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["callers"][0]["phone"], CALLER_PHONE);
    assert_eq!(merged["callers"][0]["merged_from"], json!(dup_id));

    // A second call, in Z02, with the caller's own photo.
    let caller_photo = noisy_jpeg(64, 48, 11);
    let caller_sha = sha_hex(&caller_photo);
    let mut call = hotline_call("12345-0002", "event:0102", point_in(1, 0.0));
    call["photos"] = json!([{"sha256": caller_sha, "size": caller_photo.len(),
        "captured_at": rfc3339_now(), "role": "intake"}]);
    let (status, second) = take_in(&app, &hotline, &call).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let id: Uuid = second["case"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(second["case"]["zone_id"], json!(app.zone("Z02")));
    assert!(second["duplicates"].as_array().unwrap().is_empty());
    let (status, put) = crate::photos::put_photo(&app, &hotline, &caller_photo, &caller_sha).await;
    assert!(status.is_success(), "{put}");
    must_transition(&app, &sup1, id, json!({"action": "file"})).await;

    // No deduction on an unverified phone call.
    let propose = json!({"case_id": id, "rule_code": "COMPLAINT", "note": "hotline complaint"});
    let (status, refused) = app.post("/v1/deductions", Some(&sup1), &propose).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "case_not_verified");

    must_transition(&app, &sup1, id, json!({"action": "dispatch"})).await;

    // An inspector of Z02 verifies it on site: queued offline on the reference client, then
    // synced with its photo. The phone pulled the case with its source and no caller.
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(
        Store::open(&dir.path().join("inspector3.db"))
            .await
            .unwrap(),
        HttpTransport::new(&app.base).unwrap(),
        RecordingSleeper::default(),
    );
    client
        .enrol(
            &app.base,
            "inspector3",
            gridline_testkit::gridline_server::demo::DEMO_PASSWORD,
            "phone",
        )
        .await
        .unwrap();
    client.pull().await.unwrap();
    let mirrored = client
        .mirror(gridline_sync::EntityKind::Case)
        .await
        .unwrap();
    let pulled = mirrored
        .iter()
        .find(|e| e.id == id.to_string())
        .expect("the hotline case reaches the phones of its zone");
    let pulled_text = serde_json::to_string(&pulled.data).unwrap();
    assert!(
        pulled_text.contains("\"source\":\"hotline\""),
        "{pulled_text}"
    );
    assert!(!pulled_text.contains(CALLER_PHONE) && !pulled_text.contains(CALLER_NAME));

    let photo_path = dir.path().join("verification.jpg");
    std::fs::write(&photo_path, noisy_jpeg(64, 48, 12)).unwrap();
    let photo = photo_from_file(
        &photo_path,
        PhotoRole::Verification,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let verification_sha = photo.manifest.sha256.clone();
    let (lat, lon) = point_in(1, 0.0);
    client
        .capture(
            Operation::CaseVerifyV1(CaseVerifyV1 {
                case_id: id,
                verification_id: Uuid::now_v7(),
                found: true,
                location: Location {
                    lat,
                    lon,
                    accuracy_m: 6.0,
                    datum: Default::default(),
                },
                verified_at: OffsetDateTime::now_utc(),
                comment: Some("garbage is there".into()),
                photos: vec![photo.manifest.clone()],
            }),
            &[photo],
        )
        .await
        .unwrap();
    let (status, before_sync) = app.get(&format!("/v1/cases/{id}"), Some(&sup1)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !before_sync.to_string().contains("\"verification\""),
        "offline: nothing reached the server yet"
    );
    let report = client.sync().await.unwrap();
    assert_eq!((report.push.acked, report.push.rejected), (1, 0));
    let (_, verified) = app.get(&format!("/v1/cases/{id}"), Some(&sup1)).await;
    let events = verified["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "verification"),
        "{verified}"
    );

    // Rectified by the section chief, closed, and the caller called back.
    let chief = app.login("sectionchief2").await;
    let after = json!([{"sha256": "ab".repeat(32), "size": 1000, "role": "after",
        "captured_at": rfc3339_now()}]);
    must_transition(
        &app,
        &chief,
        id,
        json!({"action": "report_rectified", "photos": after}),
    )
    .await;
    verify_evidence(&app, id).await;
    let callback = json!({"outcome": "satisfied", "note": "cleared the next morning"});
    let (status, early) = app
        .post(
            &format!("/v1/cases/{id}/callbacks"),
            Some(&hotline),
            &callback,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "called back only once closed: {early}"
    );
    must_transition(&app, &sup1, id, json!({"action": "close"})).await;
    let (status, called) = app
        .post(
            &format!("/v1/cases/{id}/callbacks"),
            Some(&hotline),
            &callback,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{called}");
    let (_, record) = app
        .get(&format!("/v1/cases/{id}/intake"), Some(&hotline))
        .await;
    assert_eq!(record["callbacks"][0]["outcome"], "satisfied");
    assert_eq!(record["external_ref"], "12345-0002");

    // Now the deduction: both kinds of evidence are bound into the entry.
    let (status, proposal) = app.post("/v1/deductions", Some(&sup1), &propose).await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    assert_eq!(proposal["source"], "public_complaint");
    let entry = approve(&app, &sup2, &proposal).await;
    let evidence: Vec<&str> = entry["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(evidence.contains(&caller_sha.as_str()), "{entry}");
    assert!(evidence.contains(&verification_sha.as_str()), "{entry}");
    // The callback counts in the zone's indicators (the satisfaction rate).
    let period = current_period(&app, &sup1).await;
    let (_, ranking) = app
        .get(
            &format!("/v1/periods/{}/ranking", period["id"].as_str().unwrap()),
            Some(&sup1),
        )
        .await;
    let z02 = ranking["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone_id"] == json!(app.zone("Z02")))
        .unwrap()
        .clone();
    assert_eq!(z02["indicators"]["callbacks"], 1, "{z02}");
    assert_eq!(z02["indicators"]["satisfied"], 1, "{z02}");
    // ...and the call filed at once counts as answered in time (the response rate).
    assert_eq!(z02["indicators"]["public_reports"], 1, "{z02}");
    assert_eq!(z02["indicators"]["responded_in_time"], 1, "{z02}");
    // Which is which stays on record with the case's photos.
    let (_, case) = app.get(&format!("/v1/cases/{id}"), Some(&sup1)).await;
    let role_of = |sha: &str| {
        case["photos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["sha256"] == sha)
            .map(|p| p["role"].clone())
    };
    assert_eq!(role_of(&caller_sha), Some(json!("intake")));
    assert_eq!(role_of(&verification_sha), Some(json!("verification")));

    // The caller never appears where cases travel.
    for case_id in [dup_id, id, inspector_case] {
        let text = everywhere(&app, case_id).await;
        assert!(
            !text.contains(CALLER_PHONE) && !text.contains(CALLER_NAME),
            "caller data leaked"
        );
    }
    let (pulled, _) = inspector_phone.pull_all(&app, None).await;
    let pulled = serde_json::to_string(&pulled).unwrap();
    assert!(!pulled.contains(CALLER_PHONE) && !pulled.contains(CALLER_NAME));
}

async fn intake_refuses_bad_reports_and_wrong_roles(app: TestApp) {
    let hotline = app.login("hotline1").await;
    let inspector = app.login("inspector1").await;
    let good = hotline_call("12345-0100", "event:0102", point_in(0, 0.0));
    let (status, body) = take_in(&app, &inspector, &good).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let cases: &[(&str, Value, &str)] = &[
        ("channel", json!("inspection"), "channel"),
        ("address", json!("   "), "address"),
        ("category_code", json!("event:9999"), "category_code"),
        ("location", json!({"lat": 95.0, "lon": 0.0}), "location"),
        ("location", json!({"lat": 10.0, "lon": 10.0}), "location"),
        ("asset_code", json!("1234"), "asset_code"),
        ("external_ref", json!("x".repeat(65)), "external_ref"),
        ("caller", json!({"phone": "call me maybe"}), "caller.phone"),
        ("received_at", json!("2999-01-01T00:00:00Z"), "received_at"),
        (
            "photos",
            json!([{"sha256": "ab".repeat(32), "size": 10, "captured_at": rfc3339_now(), "role": "before"}]),
            "photos[0].role",
        ),
    ];
    for (field, value, path) in cases {
        let mut body = good.clone();
        body[*field] = value.clone();
        let (status, answer) = take_in(&app, &hotline, &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {answer}"
        );
        assert_eq!(answer["details"]["path"], *path, "{field}: {answer}");
    }
    // Neither a place nor an asset.
    let mut body = good.clone();
    body.as_object_mut().unwrap().remove("location");
    let (status, answer) = take_in(&app, &hotline, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // Nothing was written by any refusal.
    let (_, list) = app.get("/v1/cases?limit=500", Some(&hotline)).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
    // A place in no zone is filed in the zone named, flagged.
    let mut body = good.clone();
    body["location"] = json!({"lat": 10.0, "lon": 10.0});
    body["zone_id"] = json!(app.zone("Z03"));
    let (status, answer) = take_in(&app, &hotline, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["case"]["zone_id"], json!(app.zone("Z03")));
    assert_eq!(answer["case"]["flags"], json!(["location_outside_zone"]));
    // A verification of a case from the patrol is refused.
    let (mut phone, patrol_case) = synced_case(&app).await;
    let (lat, lon) = point_in(0, 0.0);
    let op = phone.op(
        "case.verify@1",
        json!({"case_id": patrol_case, "verification_id": Uuid::now_v7(), "found": true,
               "location": {"lat": lat, "lon": lon, "accuracy_m": 5.0},
               "verified_at": rfc3339_now(),
               "photos": [{"sha256": "cd".repeat(32), "size": 10, "captured_at": rfc3339_now(), "role": "verification"}]}),
    );
    let (status, pushed) = phone.push(&app, &[op]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pushed["results"][0]["status"], "rejected", "{pushed}");
}

async fn callers_are_masked_for_supervisors_and_erased_after_their_retention(app: TestApp) {
    let hotline = app.login("hotline1").await;
    let sup = app.login("supervisor1").await;
    let (status, taken) = take_in(
        &app,
        &hotline,
        &hotline_call("12345-0200", "event:0102", point_in(2, 0.0)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    let id = taken["case"]["id"].as_str().unwrap();
    // The supervisors are told of the new report (without the caller).
    let (_, inbox) = app.get("/v1/inbox", Some(&sup)).await;
    let told: Vec<&Value> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "case.received" && n["case_id"] == id)
        .collect();
    assert_eq!(told.len(), 1, "{inbox}");
    assert!(!inbox.to_string().contains(CALLER_PHONE));
    let (_, full) = app
        .get(&format!("/v1/cases/{id}/intake"), Some(&hotline))
        .await;
    assert_eq!(full["callers"][0]["name"], CALLER_NAME);
    assert_eq!(full["callers"][0]["phone"], CALLER_PHONE);
    let (_, masked) = app.get(&format!("/v1/cases/{id}/intake"), Some(&sup)).await;
    assert_eq!(masked["callers"][0]["name"], "张**");
    assert_eq!(masked["callers"][0]["phone"], "138****5678");
    let inspector = app.login("inspector5").await;
    let (status, _) = app
        .get(&format!("/v1/cases/{id}/intake"), Some(&inspector))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Past its retention the caller is erased by the job; the case stays.
    sqlx::query("UPDATE case_callers SET retain_until = 0")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let erased = gridline_testkit::gridline_server::jobs::erase_expired_callers(&app.state.db)
        .await
        .unwrap();
    assert_eq!(erased, 1);
    let (_, after) = app
        .get(&format!("/v1/cases/{id}/intake"), Some(&hotline))
        .await;
    assert_eq!(after["callers"][0]["erased"], true);
    assert!(after["callers"][0]["phone"].is_null() && after["callers"][0]["name"].is_null());
    let stored: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT name, phone FROM case_callers")
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, vec![(None, None)]);
}

async fn the_console_takes_a_call_in_and_records_the_callback(app: TestApp) {
    use crate::console_admin::Browser;
    let operator = Browser::sign_in(&app, "hotline1").await;
    let (status, form) = operator.get(&app, "/console/intake").await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("name=\"caller_phone\""), "{form}");
    // A supervisor takes calls too; an inspector cannot sign in to the console at all.
    let sup = Browser::sign_in(&app, "supervisor1").await;
    assert_eq!(sup.get(&app, "/console/intake").await.0, StatusCode::OK);

    let (lat, lon) = point_in(3, 0.0);
    let (lat, lon) = (lat.to_string(), lon.to_string());
    let fields = [
        ("channel", "hotline"),
        ("external_ref", "12345-0300"),
        ("category_code", "event:0102"),
        ("severity", "medium"),
        ("description", "垃圾堆放三天"),
        ("address", "和平路 30 号"),
        ("lat", lat.as_str()),
        ("lon", lon.as_str()),
        ("datum", "wgs84"),
        ("asset_code", ""),
        ("zone_id", ""),
        ("caller_name", CALLER_NAME),
        ("caller_phone", CALLER_PHONE),
    ];
    let (status, to) = operator.post(&app, "/console/intake", &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let id: Uuid = to.trim_start_matches("/console/cases/").parse().unwrap();
    let (_, case) = app
        .get(&format!("/v1/cases/{id}"), Some(&app.login("admin").await))
        .await;
    assert_eq!(case["zone_id"], json!(app.zone("Z04")));
    assert_eq!(case["source"], "hotline");

    // The operator reads the caller in full, the supervisor masked.
    let (_, page) = operator.get(&app, &to).await;
    assert!(page.contains(CALLER_PHONE) && page.contains("12345-0300"));
    let (_, page) = sup.get(&app, &to).await;
    assert!(
        !page.contains(CALLER_PHONE) && page.contains("138****5678"),
        "{page}"
    );

    // A document added from the case page, and read back through it.
    let clipping = pdf("press clipping");
    let (status, back) = operator
        .post_file(
            &app,
            &format!("/console/cases/{id}/documents"),
            ("file", "clipping.pdf", &clipping),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{back}");
    let (_, page) = operator.get(&app, &to).await;
    assert!(page.contains("clipping.pdf"), "{page}");
    let (status, read) = operator
        .get(
            &app,
            &format!("/console/cases/{id}/documents/{}", sha_hex(&clipping)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(read.starts_with("%PDF-"));
    let (status, _) = operator
        .post_file(
            &app,
            &format!("/console/cases/{id}/documents"),
            ("file", "photo.pdf", b"GIF89a"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A blank address is refused and nothing is written.
    let mut bad = fields;
    bad[1] = ("external_ref", "12345-0301");
    bad[5] = ("address", " ");
    let (status, _) = operator.post(&app, "/console/intake", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Closed, then called back from the case page.
    let sup_token = app.login("supervisor1").await;
    for action in ["file", "dispatch"] {
        must_transition(&app, &sup_token, id, json!({"action": action})).await;
    }
    let chief = app.login("sectionchief4").await;
    let after = json!([{"sha256": "ef".repeat(32), "size": 1000, "role": "after",
        "captured_at": rfc3339_now()}]);
    must_transition(
        &app,
        &chief,
        id,
        json!({"action": "report_rectified", "photos": after}),
    )
    .await;
    must_transition(&app, &sup_token, id, json!({"action": "close"})).await;
    let (_, page) = operator.get(&app, &to).await;
    assert!(
        page.contains(&format!("/console/cases/{id}/callback")),
        "{page}"
    );
    let (status, back) = operator
        .post(
            &app,
            &format!("/console/cases/{id}/callback"),
            &[("outcome", "basically_satisfied"), ("note", "回访已完成")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{back}");
    let (_, record) = app
        .get(
            &format!("/v1/cases/{id}/intake"),
            Some(&app.login("hotline1").await),
        )
        .await;
    assert_eq!(record["callbacks"][0]["outcome"], "basically_satisfied");
}

async fn an_unannounced_inspection_s_case_is_never_suggested_to_whom_it_is_hidden_from(
    app: TestApp,
) {
    // An inspector's unannounced round finds garbage at the centre of Z01.
    let mut phone = gridline_testkit::Phone::enrol(&app, "inspector1").await;
    let round = Uuid::now_v7();
    let start = phone.op(
        "round.start@1",
        json!({"round_id": round, "zone_id": app.zone("Z01"), "kind": "unannounced",
               "started_at": rfc3339_now()}),
    );
    let (case_id, mut payload) = gridline_testkit::new_case(app.zone("Z01"), 0, "event:0102");
    payload["round_id"] = json!(round);
    let capture = phone.op("case.create@1", payload);
    let (status, pushed) = phone.push(&app, &[start, capture]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pushed["results"][1]["status"], "applied", "{pushed}");

    // A call about the same spot: the operator is not shown the hidden case...
    let hotline = app.login("hotline1").await;
    let (status, taken) = take_in(
        &app,
        &hotline,
        &hotline_call("12345-0400", "event:0102", point_in(0, 0.0)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    assert_eq!(taken["duplicates"], json!([]), "{taken}");
    let id = taken["case"]["id"].as_str().unwrap();
    let (_, later) = app
        .get(&format!("/v1/cases/{id}/duplicates"), Some(&hotline))
        .await;
    assert_eq!(later, json!([]));
    // ...a supervisor, who sees unannounced inspections, is.
    let sup = app.login("supervisor1").await;
    let (_, seen) = app
        .get(&format!("/v1/cases/{id}/duplicates"), Some(&sup))
        .await;
    assert_eq!(seen[0]["case_id"], json!(case_id), "{seen}");
}

/// A small but whole PDF (header, one empty page, trailer).
fn pdf(text: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
         2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n% {text}\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

async fn post_bytes(app: &TestApp, path: &str, token: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/pdf")
        .body(body)
        .send()
        .await
        .unwrap();
    gridline_testkit::into_json(resp).await
}

async fn a_leader_s_instruction_keeps_its_document_as_evidence(app: TestApp) {
    let sup1 = app.login("supervisor1").await;
    let sup2 = app.login("supervisor2").await;
    let (lat, lon) = point_in(5, 0.0);
    let (status, taken) = take_in(
        &app,
        &sup1,
        &json!({"channel": "leader_instruction", "external_ref": "批示〔2026〕12号",
                "category_code": "event:0102", "address": "建设路",
                "location": {"lat": lat, "lon": lon},
                "description": "建设路垃圾成堆，请立即整改"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    let id: Uuid = taken["case"]["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/v1/cases/{id}/documents?filename=scans%2F%E6%89%B9%E7%A4%BA.pdf");

    // Only whole PDFs, and only from the people who take reports in.
    let (status, refused) = post_bytes(&app, &path, &sup1, b"GIF89a not a pdf".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let cut = pdf("cut")[..60].to_vec();
    let (status, _) = post_bytes(&app, &path, &sup1, cut).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let inspector = app.login("inspector11").await;
    let (status, _) = post_bytes(&app, &path, &inspector, pdf("x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let document = pdf("instruction");
    let sha = sha_hex(&document);
    let (status, added) = post_bytes(&app, &path, &sup1, document.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["sha256"], sha);
    assert_eq!(added["filename"], "批示.pdf");
    let (status, again) = post_bytes(&app, &path, &sup1, document.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        again["added_at"], added["added_at"],
        "the same file is not added twice"
    );
    let (status, bytes) = get_bytes(&app, &format!("/v1/cases/{id}/documents/{sha}"), &sup2).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, document);
    let (status, _) = app
        .get(&format!("/v1/cases/{id}/documents"), Some(&inspector))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Filed and deducted under the leader rule on the document alone; the entry binds it.
    must_transition(&app, &sup1, id, json!({"action": "file"})).await;
    let (status, proposal) = app
        .post(
            "/v1/deductions",
            Some(&sup1),
            &json!({"case_id": id, "rule_code": "LEADER", "note": "leader's instruction"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    assert_eq!(proposal["source"], "leader_criticism");
    let entry = approve(&app, &sup2, &proposal).await;
    assert_eq!(entry["evidence"], json!([sha]), "{entry}");
    // The evidence is locked now.
    let (status, locked) = post_bytes(&app, &path, &sup1, pdf("later")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{locked}");
    assert_eq!(locked["code"], "evidence_locked");
}
