//! Webhooks: signed as the Standard Webhooks specification says (checked with its own Python
//! library), retried after a failure with the same id, and sent once however many instances
//! deliver.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::HeaderMap;
use gridline_testkit::{skip_or_fail, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{record_for_admin, run_client, Receiver};
use crate::support::{filed_case, must_transition};

/// What the Standard Webhooks Python library says of `deliveries` under `secret`: each
/// payload's id and type, or why one does not verify; `None` when the library is missing (and
/// services are not required).
fn reference_verdict(
    secret: &str,
    deliveries: &[(HeaderMap, String)],
) -> Option<Result<Vec<String>, String>> {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip_or_fail(
            "python3 with standardwebhooks (pip install standardwebhooks) is not installed",
        );
        return None;
    }
    let mut lines = String::new();
    for (headers, body) in deliveries {
        let h: HashMap<&str, &str> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .into_iter()
            .map(|k| (k, headers[k].to_str().unwrap()))
            .collect();
        lines.push_str(&json!({"secret": secret, "headers": h, "body": body}).to_string());
        lines.push('\n');
    }
    let out = run_client("verify_webhooks.py", &lines);
    Some(if out.status.success() {
        Ok(String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_signed_retried_with_the_same_id_and_once() {
    let Some(app) = TestApp::builder()
        .config(|c| c.notifications.poll_ms = 100)
        .spawn()
        .await
    else {
        return;
    };
    // The receiver fails the first attempt, as a receiver that is restarting would.
    let mut receiver = Receiver::start(vec![503]).await;
    let admin = app.login("admin").await;
    let (status, hook) = app
        .post(
            "/v1/webhooks",
            Some(&admin),
            &json!({"url": receiver.url, "kinds": ["case.dispatched"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = app.get("/v1/webhooks", Some(&admin)).await;
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once: {listed}"
    );
    for bad in [
        json!({"url": "ftp://example.org/x"}),
        json!({"url": "not a url"}),
        json!({"url": receiver.url, "kinds": ["case.exploded"]}),
    ] {
        let (status, body) = app.post("/v1/webhooks", Some(&admin), &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let (status, _) = app
        .post(
            "/v1/webhooks",
            Some(&app.login("supervisor1").await),
            &json!({"url": receiver.url}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_phone, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    let first = receiver.next().await;
    // The failed attempt waits its backoff; bring it forward instead of waiting.
    sqlx::query("UPDATE deliveries SET next_at = 0 WHERE status = 'pending'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let second = receiver.next().await;
    assert_eq!(
        first.0["webhook-id"], second.0["webhook-id"],
        "a retry carries the same id, so a receiver can drop a repeat"
    );
    let body: Value = serde_json::from_str(&second.1).unwrap();
    assert_eq!(body["type"], "case.dispatched");
    assert_eq!(body["case_id"], json!(id));
    if let Some(verdict) = reference_verdict(&secret, &[first.clone(), second.clone()]) {
        let lines = verdict.expect("the reference library verifies both attempts");
        assert_eq!(lines.len(), 2);
        assert!(
            lines.iter().all(|l| l.ends_with(" case.dispatched")),
            "{lines:?}"
        );
        // An altered body does not verify.
        let mut forged = second.clone();
        forged.1 = forged.1.replace("case.dispatched", "case.returned");
        assert!(reference_verdict(&secret, &[forged]).unwrap().is_err());
    }

    // Sent, after two attempts; nothing more arrives for it.
    let (status, attempts): (String, i64) =
        sqlx::query_as("SELECT status, attempts FROM deliveries")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("sent", 2));
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gridline_webhook_deliveries{status=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("gridline_webhook_oldest_pending_seconds 0"));
    // A kind the subscription did not ask for is not queued for it.
    let mut tx = app.state.db.begin_write().await.unwrap();
    let recorded = gridline_server::notify::record(
        tx.conn(),
        gridline_server::notify::Notice {
            kind: gridline_server::notify::NoticeKind::DeductionRejected,
            case_id: None,
            zone_id: None,
            data: json!({}),
            recipients: Vec::new(),
        },
        gridline_server::store::now_ms(),
    )
    .await
    .unwrap();
    assert!(
        recorded.changes.is_empty(),
        "nobody's inbox, no change-log row"
    );
    tx.commit().await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    receiver.task.abort();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_notice_once() {
    let Some(app) = TestApp::builder()
        .postgres()
        .config(|c| c.notifications.poll_ms = 50)
        .spawn()
        .await
    else {
        return;
    };
    let sibling = app.spawn_sibling().await;
    let mut receiver = Receiver::start(Vec::new()).await;
    let (status, _) = app
        .post(
            "/v1/webhooks",
            Some(&app.login("admin").await),
            &json!({"url": receiver.url}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Forty notices, committed in one go, for both instances' workers to find at once.
    const N: usize = 40;
    record_for_admin(&app, N, gridline_server::store::now_ms()).await;
    let mut ids: HashMap<String, usize> = HashMap::new();
    while ids.len() < N {
        let (headers, _) = receiver.next().await;
        *ids.entry(headers["webhook-id"].to_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // Each delivery was claimed exactly once (a claim counts an attempt), and once every one
    // is recorded as sent nothing else can be on its way.
    let sent = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
    };
    let all_sent = tokio::time::timeout(Duration::from_secs(20), async {
        while sent().await < N as i64 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(all_sent.is_ok(), "every delivery is marked sent");
    let claimed_twice: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE attempts <> 1")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(claimed_twice, 0, "no delivery was claimed twice");
    while let Ok((headers, _)) = receiver.got.try_recv() {
        *ids.entry(headers["webhook-id"].to_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(ids.values().all(|n| *n == 1), "each notice once: {ids:?}");
    assert_eq!(ids.len(), N);
    receiver.task.abort();
    sibling.stop().await;
    app.stop().await;
}
