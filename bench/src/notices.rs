//! Scenario `notices`: a burst of notices delivered to a webhook. The server runs with the
//! default settings (the outbox polled every second); an admin subscribes a receiver on
//! loopback to every kind; then `notices` notices are recorded, each in its own transaction
//! as an event records it, as fast as the database takes them. The receiver notes when each
//! arrives (by its `webhook-id`). Reported: the delay from each notice's commit to its
//! arrival (p50, p99) and the throughput from the first commit to the last arrival, against
//! a limit: a large city's day of notices (about 10,000) drained within two minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use gridline_server::notify::{self, Notice, NoticeKind};
use gridline_server::store;
use serde_json::{json, Value};

use super::server::{Database, Server};
use super::{Options, Report, Row};

/// Notices per second the outbox must deliver at least: 10,000 in two minutes.
const MIN_PER_SECOND: f64 = 10_000.0 / 120.0;

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    for &backend in &opts.backends {
        let b = backend.name();
        let n = opts.notices;
        eprintln!("notices on {b}: {n} notices to a webhook");
        let dir = tempfile::tempdir()?;
        let db = Database::create(backend, opts, dir.path()).await?;
        let server = Server::start(&db, dir.path()).await?;

        // The receiver: arrival time (Unix ms) per notice id.
        let arrived: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let (tx, mut each) = tokio::sync::mpsc::unbounded_channel::<()>();
        let seen = arrived.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                let tx = tx.clone();
                async move {
                    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                        seen.lock()
                            .expect("the receiver's map")
                            .entry(id.to_owned())
                            .or_insert_with(store::now_ms);
                    }
                    let _ = tx.send(());
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let hook = format!("http://{}/hook", listener.local_addr()?);
        let receiver = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::new();
        let login: Value = http
            .post(server.url("/v1/auth/login"))
            .json(&json!({"username": "admin", "password": gridline_server::demo::DEMO_PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        let token = login["access_token"].as_str().context("admin token")?;
        let resp = http
            .post(server.url("/v1/webhooks"))
            .bearer_auth(token)
            .json(&json!({"url": hook}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("subscribing the receiver answered {}", resp.status());
        }
        let admin = store::users::by_username(&server.state.db.pool, "admin")
            .await?
            .context("the demo admin")?;

        // The burst: one notice per transaction, each recording its commit time.
        let mut committed: HashMap<String, i64> = HashMap::with_capacity(n);
        let first = store::now_ms();
        for i in 0..n {
            let mut tx = server.state.db.begin_write().await?;
            let recorded = notify::record(
                tx.conn(),
                Notice {
                    kind: NoticeKind::CaseDispatched,
                    case_id: None,
                    zone_id: None,
                    data: json!({"n": i}),
                    recipients: vec![admin.id],
                },
                store::now_ms(),
            )
            .await?;
            store::changes::append(tx.conn(), &recorded.changes).await?;
            tx.commit().await?;
            committed.insert(recorded.id.to_string(), store::now_ms());
        }
        let recorded = store::now_ms() - first;
        let deadline = tokio::time::Instant::now() + opts.deadline;
        while arrived.lock().expect("the receiver's map").len() < n {
            if tokio::time::timeout_at(deadline, each.recv())
                .await
                .is_err()
            {
                bail!(
                    "{} of {n} notices arrived before the deadline",
                    arrived.lock().expect("the receiver's map").len()
                );
            }
        }
        let arrived = arrived.lock().expect("the receiver's map").clone();
        receiver.abort();
        server.stop().await;
        db.drop_now().await;

        let mut delays: Vec<Duration> = Vec::with_capacity(n);
        let mut last = first;
        for (id, at) in &committed {
            let got = *arrived.get(id).context("a notice that never arrived")?;
            last = last.max(got);
            delays.push(Duration::from_millis((got - at).max(0) as u64));
        }
        let per_second = n as f64 / ((last - first).max(1) as f64 / 1000.0);
        report.note(format!(
            "notices {b}: {n} recorded in {:.1} s (one transaction each); all delivered {:.1} s after the first commit",
            recorded as f64 / 1000.0,
            (last - first) as f64 / 1000.0
        ));
        report.push(
            Row::new("notices", b, "delivered per second", per_second).target(
                &format!("≥ {MIN_PER_SECOND:.0} (10,000 in 2 min)"),
                Some(per_second >= MIN_PER_SECOND),
            ),
        );
        for p in [50.0, 99.0] {
            report.push(
                Row::new(
                    "notices",
                    b,
                    &format!("commit to delivery p{p:.0} ms"),
                    super::percentile_ms(&delays, p),
                )
                .lower_is_better(),
            );
        }
    }
    Ok(())
}
