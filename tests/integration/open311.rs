//! The Open311 GeoReport v2 façade, checked against the specification's examples
//! (<http://wiki.open311.org/GeoReport_v2>) in JSON and XML, and driven by a third-party client
//! from PyPI (`georeport`): a city portal files a report, it becomes a case of the
//! `public_report` channel, and its public status follows the case. No answer carries anyone's
//! personal data.

use gridline_testkit::{on_both_backends, skip_or_fail, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

on_both_backends!(
    a_portal_files_and_follows_a_request_in_json_and_xml,
    a_third_party_client_files_and_reads_a_request,
);

/// Registers a client application with the real CLI; returns its API key.
async fn client_key(app: &TestApp, name: &str) -> String {
    let (ok, out) = gridline_cli(app, &["admin", "add-open311-client", "--name", name]).await;
    assert!(ok, "{out}");
    out.lines()
        .last()
        .map(|l| l.trim().to_owned())
        .filter(|k| k.len() == 64)
        .unwrap_or_else(|| panic!("no key in {out}"))
}

/// A point inside demo zone `index`.
fn point_in(index: usize) -> (f64, f64) {
    let (a, b, c, d) = gridline_testkit::gridline_server::demo::zone_rect(index);
    ((b + d) / 2.0, (a + c) / 2.0)
}

async fn get_text(app: &TestApp, path: &str) -> (StatusCode, String, String) {
    let resp = app.http.get(app.url(path)).send().await.unwrap();
    let status = resp.status();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let resp = app
        .http
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn get_json(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let (status, kind, text) = get_text(app, path).await;
    assert!(kind.starts_with("application/json"), "{path}: {kind}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const NAME: (&str, &str) = ("Wang", "Wu");
const PHONE: &str = "13900001111";
const EMAIL: &str = "wang.wu@example.org";

async fn a_portal_files_and_follows_a_request_in_json_and_xml(app: TestApp) {
    let key = client_key(&app, "City portal").await;
    let (lat, long) = point_in(4);
    let (lat, long) = (lat.to_string(), long.to_string());

    // Discovery and the service list, as the specification shows them.
    let (status, d) = get_json(&app, "/open311/v2/discovery.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        d["endpoints"][0]["specification"],
        "http://wiki.open311.org/GeoReport_v2"
    );
    assert!(d["endpoints"][0]["formats"]
        .as_array()
        .unwrap()
        .contains(&json!("text/xml")));
    let (_, kind, xml) = get_text(&app, "/open311/v2/discovery.xml").await;
    assert!(kind.starts_with("text/xml"));
    assert!(xml.contains("<discovery><changeset>"), "{xml}");
    assert!(
        xml.contains(
            "<formats><format>application/json</format><format>text/xml</format></formats>"
        ),
        "{xml}"
    );

    let (_, services) = get_json(&app, "/open311/v2/services.json").await;
    let garbage = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service_code"] == "event:0102")
        .expect("the taxonomy's entries are the services");
    for field in ["service_name", "description", "keywords", "group"] {
        assert!(garbage[field].is_string(), "{field}: {garbage}");
    }
    assert_eq!(garbage["metadata"], false);
    assert_eq!(garbage["type"], "realtime");
    let (_, _, xml) = get_text(&app, "/open311/v2/services.xml").await;
    assert!(
        xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><services><service><service_code>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<metadata>false</metadata><type>realtime</type>"),
        "{xml}"
    );
    let (status, def) = get_json(&app, "/open311/v2/services/event:0102.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(def, json!({"service_code": "event:0102", "attributes": []}));
    let (status, missing) = get_json(&app, "/open311/v2/services/event:9999.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing[0]["code"], 404);

    // Filing: a key is required, the service and the place are checked.
    let form = |key: &str| -> Vec<(&'static str, String)> {
        vec![
            ("api_key", key.to_owned()),
            ("service_code", "event:0102".into()),
            ("lat", lat.clone()),
            ("long", long.clone()),
            ("address_string", "Gate of the market".into()),
            ("description", "Garbage piled by the gate".into()),
            ("first_name", NAME.0.into()),
            ("last_name", NAME.1.into()),
            ("phone", PHONE.into()),
            ("email", EMAIL.into()),
            ("attribute[WHISPER]", "ignored".into()),
        ]
    };
    let as_refs = |f: &[(&'static str, String)]| -> Vec<(&'static str, String)> { f.to_vec() };
    let send = |f: Vec<(&'static str, String)>, format: &'static str| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(app, &format!("/open311/v2/requests.{format}"), &pairs).await
        }
    };
    let (status, body) = send(as_refs(&form("not-a-key")), "json").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let errors: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(errors[0]["code"], 403);
    let (status, body) = send(as_refs(&form("not-a-key")), "xml").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("<errors><error><code>403</code><description>"),
        "{body}"
    );
    let mut no_service = form(&key);
    no_service.retain(|(k, _)| *k != "service_code");
    let (status, body) = send(no_service, "json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let mut nowhere = form(&key);
    nowhere.retain(|(k, _)| *k != "lat" && *k != "long");
    let (status, body) = send(nowhere, "json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = send(form(&key), "json").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let filed: Value = serde_json::from_str(&body).unwrap();
    let id: Uuid = filed[0]["service_request_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = send(form(&key), "xml").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body.contains("<service_requests><request><service_request_id>"),
        "{body}"
    );

    // The request is a case of the public channel in the zone of its place.
    let admin = app.login("admin").await;
    let case = case(&app, &admin, id).await;
    assert_eq!(case["source"], "public_report");
    assert_eq!(case["zone_id"], json!(app.zone("Z05")));

    // Its public status, one and in lists, JSON and XML.
    let (_, one) = get_json(&app, &format!("/open311/v2/requests/{id}.json")).await;
    let r = &one[0];
    assert_eq!(r["service_request_id"], id.to_string());
    assert_eq!(r["status"], "open");
    assert_eq!(r["service_code"], "event:0102");
    assert_eq!(r["address"], "Gate of the market");
    assert!(r["requested_datetime"].as_str().unwrap().ends_with('Z'));
    let (_, _, xml) = get_text(&app, &format!("/open311/v2/requests/{id}.xml")).await;
    assert!(xml.contains(&format!("<service_requests><request><service_request_id>{id}</service_request_id><status>open</status>")), "{xml}");
    let (_, open) = get_json(&app, "/open311/v2/requests.json?status=open").await;
    assert!(open
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["service_request_id"] == id.to_string()));
    let (_, by_id) = get_json(
        &app,
        &format!("/open311/v2/requests.json?service_request_id={id}"),
    )
    .await;
    assert_eq!(by_id.as_array().unwrap().len(), 1);
    let (status, bad) = get_json(&app, "/open311/v2/requests.json?start_date=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // An inspector's finding is the office's, not a public request.
    let (_, patrol) = synced_case(&app).await;
    let (status, _) = get_json(&app, &format!("/open311/v2/requests/{patrol}.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, all) = get_json(&app, "/open311/v2/requests.json").await;
    assert!(!all.to_string().contains(&patrol.to_string()));

    // Closed in the office, closed to the public.
    let sup = app.login("supervisor1").await;
    must_transition(
        &app,
        &sup,
        id,
        json!({"action": "reject", "comment": "private land"}),
    )
    .await;
    let (_, one) = get_json(&app, &format!("/open311/v2/requests/{id}.json")).await;
    assert_eq!(one[0]["status"], "closed");
    let (_, closed) = get_json(&app, "/open311/v2/requests.json?status=closed").await;
    assert!(closed
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["service_request_id"] == id.to_string()));

    // Nobody's personal data in any answer.
    let mut everything = String::new();
    for path in [
        "/open311/v2/requests.json".to_owned(),
        "/open311/v2/requests.xml".to_owned(),
        format!("/open311/v2/requests/{id}.json"),
        format!("/open311/v2/requests/{id}.xml"),
    ] {
        everything.push_str(&get_text(&app, &path).await.2);
    }
    for secret in [
        NAME.0,
        NAME.1,
        PHONE,
        EMAIL,
        "Open311: City portal",
        "supervisor",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    // The caller is kept, apart, for the office's callback; the email is not kept at all.
    let hotline = app.login("hotline1").await;
    let (_, record) = app
        .get(&format!("/v1/cases/{id}/intake"), Some(&hotline))
        .await;
    assert_eq!(record["callers"][0]["phone"], PHONE);
    assert_eq!(record["callers"][0]["name"], "Wang Wu");
    assert!(!record.to_string().contains(EMAIL));
}

async fn a_third_party_client_files_and_reads_a_request(app: TestApp) {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import georeport, requests"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip_or_fail("python3 with georeport (pip install georeport==0.3.1) is not installed");
        return;
    }
    let key = client_key(&app, "Civic app").await;
    let (lat, long) = point_in(2);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join("open311_georeport.py");
    let base = app.url("/open311/v2");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            base.as_str(),
            key.as_str(),
            &lat.to_string(),
            &long.to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = seen["filed"].as_str().unwrap();
    for format in ["json", "xml"] {
        let s = &seen[format];
        assert!(s["services"].as_u64().unwrap() >= 90, "{format}: {s}");
        assert_eq!(s["has_0102"], true, "{format}");
        assert_eq!(s["definition_code"], "event:0102", "{format}");
        assert!(
            s["listed"].as_array().unwrap().contains(&json!(id)),
            "{format}: {s}"
        );
        assert_eq!(s["status"], "open", "{format}");
        assert_eq!(s["service_code"], "event:0102", "{format}");
        let text = s["text"].as_str().unwrap();
        assert!(
            !text.contains("13900001111") && !text.contains("Wang"),
            "{format}"
        );
    }
    let admin = app.login("admin").await;
    let case = case(&app, &admin, id.parse().unwrap()).await;
    assert_eq!(case["zone_id"], json!(app.zone("Z03")));
}
