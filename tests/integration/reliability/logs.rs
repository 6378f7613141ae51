//! A caller's name and phone number never reach the server's log, at the most detailed level,
//! whether a report is taken in, refused, or filed through Open311.

use serde_json::{json, Value};

use super::crash::ServerProcess;

const NAME: &str = "李四光";
const PHONE: &str = "13711112222";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_data_never_reaches_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let verbose = vec![("GRIDLINE_LOG".to_owned(), "trace".to_owned())];
    let mut server = ServerProcess::new(dir.path(), None, verbose);
    server.start().await;
    let http = reqwest::Client::new();
    let base = server.url();
    let token: String = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"username": "hotline1", "password": gridline_server::demo::DEMO_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let zones: Value = http
        .get(format!("{base}/v1/zones"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ring = &zones[0]["boundary"]["coordinates"][0];
    let (lon, lat) = (
        (ring[0][0].as_f64().unwrap() + ring[2][0].as_f64().unwrap()) / 2.0,
        (ring[0][1].as_f64().unwrap() + ring[2][1].as_f64().unwrap()) / 2.0,
    );
    let report = |caller: Value, address: &str| {
        json!({"channel": "hotline", "category_code": "event:0102", "address": address,
               "location": {"lat": lat, "lon": lon}, "caller": caller})
    };
    // Taken in; refused for a bad phone number (the error names the field, not the value);
    // refused for the caller's details in a field that has a limit.
    let answers = [
        report(json!({"name": NAME, "phone": PHONE}), "Gate 1"),
        report(
            json!({"name": NAME, "phone": format!("{PHONE}x")}),
            "Gate 2",
        ),
        report(json!({"name": NAME.repeat(40), "phone": PHONE}), "Gate 3"),
    ];
    let mut statuses = Vec::new();
    for body in &answers {
        let resp = http
            .post(format!("{base}/v1/intake"))
            .bearer_auth(&token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(!text.contains(PHONE), "an answer echoes the phone: {text}");
        statuses.push(status);
    }
    assert_eq!(statuses, vec![201, 422, 422]);

    // Filed through Open311 by a client application registered with the CLI.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridline-under-test"))
        .args(["admin", "add-open311-client", "--name", "Portal"])
        .env_remove("GRIDLINE_CONFIG")
        .env_remove("GRIDLINE_DATABASE_URL")
        .env("GRIDLINE_DATA_DIR", dir.path())
        .env("GRIDLINE_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let resp = http
        .post(format!("{base}/open311/v2/requests.json"))
        .form(&[
            ("api_key", key.as_str()),
            ("service_code", "event:0102"),
            ("lat", &lat.to_string()),
            ("long", &lon.to_string()),
            ("first_name", NAME),
            ("phone", PHONE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
    server.kill().await;

    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("the log");
    assert!(
        log.contains("/v1/intake"),
        "the log holds the requests at trace level"
    );
    assert!(!log.contains(PHONE), "the phone number reached the log");
    assert!(!log.contains(NAME), "the caller's name reached the log");
}
