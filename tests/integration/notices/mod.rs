//! Notices: written with the event that causes them, read from the inbox with a receipt, and
//! delivered to webhooks signed as the Standard Webhooks specification says (checked with the
//! specification's own Python library), retried after a failure with the same id, and sent
//! once however many instances deliver.

mod email;
mod inbox;
mod lateness;
mod robots;
mod webhooks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use gridline_server::store::changes;
use gridline_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Records `n` notices for the admin in one transaction, all at instant `at` (data `{"n": i}`).
async fn record_for_admin(app: &TestApp, n: usize, at: i64) {
    let admin = gridline_server::store::users::by_username(&app.state.db.pool, "admin")
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.state.db.begin_write().await.unwrap();
    for i in 0..n {
        let recorded = gridline_server::notify::record(
            tx.conn(),
            gridline_server::notify::Notice {
                kind: gridline_server::notify::NoticeKind::DeductionRejected,
                case_id: None,
                zone_id: None,
                data: json!({ "n": i }),
                recipients: vec![admin.id],
            },
            at,
        )
        .await
        .unwrap();
        changes::append(tx.conn(), &recorded.changes).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn inbox(app: &TestApp, user: &str) -> Value {
    let (status, page) = app.get("/v1/inbox", Some(&app.login(user).await)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

/// The kinds in `user`'s inbox, oldest first.
async fn kinds(app: &TestApp, user: &str) -> Vec<String> {
    let mut kinds: Vec<String> = inbox(app, user).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.reverse();
    kinds
}

/// A webhook receiver on loopback: records every request and answers with the next scripted
/// status (then 200).
struct Receiver {
    url: String,
    got: mpsc::UnboundedReceiver<(HeaderMap, String)>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(script: Vec<u16>) -> Receiver {
        let (tx, got) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(script.into_iter()));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let tx = tx.clone();
                let script = script.clone();
                async move {
                    let _ = tx.send((headers, body));
                    let code = script.lock().unwrap().next().unwrap_or(200);
                    AxumStatus::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, got, task }
    }

    /// The next request, waiting up to 20 s for it.
    async fn next(&mut self) -> (HeaderMap, String) {
        tokio::time::timeout(Duration::from_secs(20), self.got.recv())
            .await
            .expect("a delivery within 20 s")
            .expect("the receiver is running")
    }
}

/// Runs the Python script `tests/clients/<script>` with `input` on its standard input.
fn run_client(script: &str, input: &str) -> std::process::Output {
    use std::io::Write;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(script);
    let mut child = std::process::Command::new("python3")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) use email::SmtpSink;
