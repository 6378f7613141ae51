//! Notices survive the server being killed between the commit of their events and their
//! delivery: each is delivered after the restart, once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::crash::ServerProcess;

/// The server runs the ledger's events with delivery held back (a poll every minute), is
/// killed with SIGKILL right after the last one commits, and restarts polling often: the
/// webhook receiver then gets every notice those events recorded, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_committed_before_a_kill_are_delivered_once_after_the_restart() {
    // The receiver counts deliveries by `webhook-id` (the notice's id).
    let got: Arc<Mutex<HashMap<String, (String, usize)>>> = Arc::default();
    let (tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            let tx = tx.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                let kind = serde_json::from_str::<Value>(&body).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                seen.lock().unwrap().entry(id).or_insert((kind, 0)).1 += 1;
                let _ = tx.send(());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let held = vec![(
        "GRIDLINE_NOTIFICATIONS__POLL_MS".to_owned(),
        "60000".to_owned(),
    )];
    let mut server = ServerProcess::new(dir.path(), None, held);
    server.start().await;
    let http = reqwest::Client::new();
    let base = server.url();
    let call = |token: Option<String>, path: String, body: Value| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let mut req = http.post(url).json(&body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.expect("request");
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{path}: {status} {body}");
            body
        }
    };
    let login = |name: &'static str| async move {
        call(
            None,
            "/v1/auth/login".into(),
            json!({"username": name, "password": gridline_server::demo::DEMO_PASSWORD}),
        )
        .await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let admin = login("admin").await;
    call(
        Some(admin.clone()),
        "/v1/webhooks".into(),
        json!({"url": hook}),
    )
    .await;
    let sup = login("supervisor1").await;
    let (_, zones) = {
        let resp = http
            .get(format!("{base}/v1/zones"))
            .bearer_auth(&sup)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    let zone = zones[0]["id"].as_str().unwrap().to_owned();
    let media =
        json!({"zone_id": zone, "source": "media", "rule_code": "MEDIA", "note": "evening news"});
    // Proposed, approved (one supervisor: the process runs without four eyes), reversed;
    // another proposed and rejected: five notices.
    let p = call(Some(sup.clone()), "/v1/deductions".into(), media.clone()).await;
    let entry = call(
        Some(sup.clone()),
        format!("/v1/deductions/{}/approve", p["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    call(
        Some(sup.clone()),
        format!(
            "/v1/ledger/entries/{}/reverse",
            entry["id"].as_str().unwrap()
        ),
        json!({"cause": "correction", "reason": "entered twice"}),
    )
    .await;
    let p = call(Some(sup.clone()), "/v1/deductions".into(), media).await;
    call(
        Some(sup.clone()),
        format!("/v1/deductions/{}/reject", p["id"].as_str().unwrap()),
        json!({"reason": "already counted"}),
    )
    .await;
    server.kill().await;
    assert!(
        got.lock().unwrap().is_empty(),
        "nothing was sent before the kill"
    );

    let prompt = vec![(
        "GRIDLINE_NOTIFICATIONS__POLL_MS".to_owned(),
        "100".to_owned(),
    )];
    let mut server = ServerProcess::new(dir.path(), None, prompt);
    server.start().await;
    let expected = 5;
    while got.lock().unwrap().len() < expected {
        tokio::time::timeout(Duration::from_secs(20), arrived.recv())
            .await
            .expect("deliveries within 20 s after the restart")
            .expect("the receiver runs");
    }
    server.kill().await;
    let got = got.lock().unwrap().clone();
    let mut kinds: Vec<&str> = got.values().map(|(k, _)| k.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "deduction.approved",
            "deduction.proposed",
            "deduction.proposed",
            "deduction.rejected",
            "deduction.reversed"
        ],
        "{got:?}"
    );
    assert!(got.values().all(|(_, n)| *n == 1), "each once: {got:?}");
}
