//! Notices: written with the event that causes them, read from the inbox with a receipt, and
//! delivered to webhooks signed as the Standard Webhooks specification says (checked with the
//! specification's own Python library), retried after a failure with the same id, and sent
//! once however many instances deliver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use gridline_server::notify::Escalation;
use gridline_server::store::changes;
use gridline_tests::{on_both_backends, skip_or_fail, Db, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::support::{current_period, filed_case, media_entry, must_transition, transition};

on_both_backends!(
    a_dispatch_tells_each_assignee_once_and_records_their_reading,
    the_inbox_pages_through_notices_of_the_same_millisecond,
    the_ledger_s_events_tell_the_people_they_concern_once,
    an_overdue_case_is_proposed_once_for_lateness_citing_who_was_told,
    a_case_rectified_in_time_is_not_late,
    escalation_notices_are_acknowledged_by_their_own_recipient,
);

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

async fn the_inbox_pages_through_notices_of_the_same_millisecond(app: TestApp) {
    record_for_admin(&app, 5, gridline_server::store::now_ms()).await;
    let token = app.login("admin").await;
    let mut seen = Vec::new();
    let mut path = "/v1/inbox?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for n in page["items"].as_array().unwrap() {
            seen.push(n["data"]["n"].as_i64().unwrap());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/inbox?limit=2&before={next}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2, 3, 4], "every notice once");
    let (status, _) = app.get("/v1/inbox?before=yesterday", Some(&token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
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

/// A deduction proposed tells the other supervisors; approved, the zone's chiefs and the
/// proposer; reversed, the people the entry named; rejected, the proposer; a period closed,
/// every supervisor and chief. Each notice is recorded once, in the transaction of its event.
async fn the_ledger_s_events_tell_the_people_they_concern_once(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let zone = app.zone("Z03");
    let entry = media_entry(&app, &sup, zone).await;
    let (status, body) = reverse_entry(&app, &app.login("supervisor2").await, &entry).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, rejected) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": zone, "source": "media", "rule_code": "MEDIA", "note": "rerun"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rejected}");
    let (status, body) = app
        .post(
            &format!("/v1/deductions/{}/reject", rejected["id"].as_str().unwrap()),
            Some(&app.login("supervisor2").await),
            &json!({"reason": "already counted"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let period = current_period(&app, &sup).await;
    let (status, body) = app
        .post(
            &format!("/v1/periods/{}/close", period["id"].as_str().unwrap()),
            Some(&app.login("admin").await),
            &json!({"early": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(
        kinds(&app, "supervisor2").await,
        ["deduction.proposed", "deduction.proposed", "period.closed"],
        "the other supervisor decides what is proposed"
    );
    assert_eq!(
        kinds(&app, "supervisor1").await,
        [
            "deduction.approved",
            "deduction.reversed",
            "deduction.rejected",
            "period.closed"
        ],
        "the proposer hears of each decision on their proposals"
    );
    let chief = kinds(&app, "sectionchief3").await;
    assert_eq!(
        chief,
        ["deduction.approved", "deduction.reversed", "period.closed"],
        "the zone's chief"
    );
    assert_eq!(
        kinds(&app, "sectionchief1").await,
        ["period.closed"],
        "another zone's chief"
    );
    // One notice per event, whoever it went to.
    let counted: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, COUNT(*) FROM notices GROUP BY kind ORDER BY kind")
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    let counted: Vec<(&str, i64)> = counted.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        counted,
        [
            ("deduction.approved", 1),
            ("deduction.proposed", 2),
            ("deduction.rejected", 1),
            ("deduction.reversed", 1),
            ("period.closed", 1),
        ]
    );
}

async fn reverse_entry(app: &TestApp, token: &str, entry: &Value) -> (StatusCode, Value) {
    crate::support::reverse(
        app,
        token,
        entry["id"].as_str().unwrap(),
        "correction",
        "entered twice",
    )
    .await
}

async fn a_dispatch_tells_each_assignee_once_and_records_their_reading(app: TestApp) {
    let (_phone, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    // A refused transition (stale version) tells nobody anything.
    let (status, _) = app
        .post(
            &format!("/v1/cases/{id}/transitions"),
            Some(&sup),
            &json!({"action": "dispatch", "base_version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(inbox(&app, "roadchief1").await["unread"], 0);

    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    for chief in ["roadchief1", "sectionchief1"] {
        let page = inbox(&app, chief).await;
        assert_eq!(page["unread"], 1, "{chief}: {page}");
        let notice = &page["items"][0];
        assert_eq!(notice["kind"], "case.dispatched");
        assert_eq!(notice["case_id"], json!(id));
        assert!(notice["data"]["deadline"].is_string(), "{notice}");
        assert!(notice["read_at"].is_null());
    }
    // Not the chiefs of another zone, nor the supervisor who dispatched.
    assert_eq!(inbox(&app, "roadchief2").await["items"], json!([]));
    assert_eq!(inbox(&app, "supervisor1").await["items"], json!([]));

    // The read receipt: recorded once, for the reader only.
    let chief = app.login("roadchief1").await;
    let notice = inbox(&app, "roadchief1").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app
        .post(
            &format!("/v1/inbox/{notice}/read"),
            Some(&chief),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let page = inbox(&app, "roadchief1").await;
    assert_eq!(page["unread"], 0);
    let first_read = page["items"][0]["read_at"].clone();
    assert!(first_read.is_string());
    let (status, _) = app
        .post(
            &format!("/v1/inbox/{notice}/read"),
            Some(&chief),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        inbox(&app, "roadchief1").await["items"][0]["read_at"],
        first_read
    );
    assert_eq!(inbox(&app, "sectionchief1").await["unread"], 1);
    let other = app.login("roadchief2").await;
    let (status, body) = app
        .post(
            &format!("/v1/inbox/{notice}/read"),
            Some(&other),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Starting work is not news to anyone: no new notice.
    let (status, body) = transition(
        &app,
        &app.login("sectionchief1").await,
        id,
        json!({"action": "start"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, unread) = app
        .get(
            "/v1/inbox?unread=true",
            Some(&app.login("sectionchief1").await),
        )
        .await;
    assert_eq!(unread["items"].as_array().unwrap().len(), 1);
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
    let Some(app) = TestApp::spawn_with(Db::Sqlite, |c| c.notifications.poll_ms = 100).await else {
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
    let Some(app) = TestApp::spawn_with(Db::Postgres, |c| c.notifications.poll_ms = 50).await
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

/// A group robot's endpoint on loopback, WeCom's and DingTalk's paths alike: records each
/// request's target, content type and body, and answers as the services do, 200 with an
/// `errcode` (0 on `/cgi-bin/webhook/send` and `/robot/send`; DingTalk's "sign not match",
/// 310000, on `/refusing/robot/send`).
struct RobotReceiver {
    base: String,
    got: mpsc::UnboundedReceiver<(String, String, String)>,
}

impl RobotReceiver {
    async fn start() -> RobotReceiver {
        let (tx, got) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(axum::routing::post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let refusing = uri.path().starts_with("/refusing/");
                    let _ = tx.send((uri.to_string(), content_type, body));
                    axum::Json(if refusing {
                        json!({"errcode": 310000, "errmsg": "sign not match"})
                    } else {
                        json!({"errcode": 0, "errmsg": "ok"})
                    })
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RobotReceiver { base, got }
    }

    /// The next request (target, content type, body), waiting up to 20 s for it.
    async fn next(&mut self) -> (String, String, String) {
        tokio::time::timeout(Duration::from_secs(20), self.got.recv())
            .await
            .expect("a message within 20 s")
            .expect("the receiver is running")
    }
}

/// WeCom and DingTalk group robots get a text message in the site's language, DingTalk's URL
/// signed with the robot's secret, all checked against the services' documentation by a
/// script of its own (`tests/clients/verify_robots.py`); a robot that answers with a non-zero
/// `errcode` leaves the delivery pending for a retry, with the service's reason recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_and_dingtalk_robots_get_a_text_as_their_documentation_says() {
    let Some(app) = TestApp::spawn_with(Db::Sqlite, |c| {
        c.notifications.poll_ms = 100;
        c.site.language = gridline_server::i18n::Lang::ZhCn;
    })
    .await
    else {
        return;
    };
    let mut robots = RobotReceiver::start().await;
    let admin = app.login("admin").await;
    let secret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
    let subscriptions = [
        json!({"url": format!("{}/cgi-bin/webhook/send?key=693a91f6-7xxx", robots.base),
               "format": "wecom", "kinds": ["case.dispatched"]}),
        json!({"url": format!("{}/robot/send?access_token=a1b2c3", robots.base),
               "format": "dingtalk", "secret": secret, "kinds": ["case.dispatched"]}),
        json!({"url": format!("{}/refusing/robot/send?access_token=a1b2c3", robots.base),
               "format": "dingtalk", "secret": "SECwrong", "kinds": ["case.dispatched"]}),
    ];
    let mut refusing = String::new();
    for s in &subscriptions {
        let (status, hook) = app.post("/v1/webhooks", Some(&admin), s).await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        assert_eq!(hook["format"], s["format"]);
        assert!(
            hook.get("secret").is_none(),
            "a robot's secret is not echoed: {hook}"
        );
        refusing = hook["id"].as_str().unwrap().to_owned();
    }
    for bad in [
        json!({"url": robots.base, "format": "dingtalk"}),
        json!({"url": robots.base, "format": "wecom", "secret": "SECx"}),
        json!({"url": robots.base, "secret": "whsec_mine"}),
        json!({"url": robots.base, "format": "telegram"}),
    ] {
        let (status, body) = app.post("/v1/webhooks", Some(&admin), &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }

    let (_phone, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    let mut lines = String::new();
    let mut refused = 0;
    for _ in 0..3 {
        let (target, content_type, body) = robots.next().await;
        if target.starts_with("/refusing/") {
            refused += 1;
            continue;
        }
        let robot = if target.starts_with("/robot/") {
            "dingtalk"
        } else {
            "wecom"
        };
        lines.push_str(
            &json!({"robot": robot, "secret": secret, "target": target,
                    "content_type": content_type, "body": body})
            .to_string(),
        );
        lines.push('\n');
    }
    assert_eq!(refused, 1);

    let probe = std::process::Command::new("python3")
        .arg("--version")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip_or_fail("python3 is not installed");
        return;
    }
    let out = run_client("verify_robots.py", &lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = String::from_utf8(out.stdout).unwrap();
    let mut robots_seen: Vec<&str> = verdict
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    robots_seen.sort();
    assert_eq!(robots_seen, ["dingtalk", "wecom"], "{verdict}");
    // In the site's language (zh-CN), naming the zone and the category, not ids.
    for line in verdict.lines() {
        assert!(line.contains("派遣给您"), "{line}");
        assert!(!line.contains(&id.to_string()), "{line}");
    }

    // The refusal is recorded with the service's reason, and the delivery waits for a retry.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT status, last_error FROM deliveries WHERE webhook_id = $1 AND attempts = 1 \
             AND last_error IS NOT NULL",
        )
        .bind(&refusing)
        .fetch_optional(&app.state.db.pool)
        .await
        .unwrap();
        if let Some((status, error)) = row {
            assert_eq!(status, "pending");
            assert!(
                error.as_deref().unwrap_or("").contains("310000"),
                "{error:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refusal is recorded"
        );
        tokio::task::yield_now().await;
    }
    app.stop().await;
}

/// `tests/clients/smtp_sink.py`: an aiosmtpd server on loopback, its messages as JSON lines.
pub(crate) struct SmtpSink {
    pub(crate) port: u16,
    child: std::process::Child,
    pub(crate) got: std::sync::mpsc::Receiver<Value>,
}

impl SmtpSink {
    /// `None` (skipped, or a failure when services are required) without python3 and aiosmtpd.
    pub(crate) fn start() -> Option<SmtpSink> {
        use std::io::BufRead;
        let probe = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            skip_or_fail("python3 with aiosmtpd (pip install aiosmtpd) is not installed");
            return None;
        }
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/smtp_sink.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the sink starts").unwrap();
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the sink's first line: {first}"));
        let (tx, got) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).unwrap());
            }
        });
        Some(SmtpSink { port, child, got })
    }

    /// The next message, waiting up to 20 s for it.
    pub(crate) fn next(&self) -> Value {
        self.got
            .recv_timeout(Duration::from_secs(20))
            .expect("a mail within 20 s")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A notice is mailed, once, to each recipient with an address, through a real SMTP server,
/// in the site's language (a Chinese subject, encoded as mail requires and read back by
/// Python's own email parser), with a Message-ID made of the notice and the recipient. A
/// site with no SMTP server records the mail it owed as failed, and `/metrics` counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_are_mailed_once_to_people_with_an_address() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let port = sink.port;
    let Some(app) = TestApp::spawn_with(Db::Sqlite, move |c| {
        c.notifications.poll_ms = 100;
        c.site.language = gridline_server::i18n::Lang::ZhCn;
        c.notifications.smtp = Some(gridline_server::config::SmtpConfig {
            url: gridline_server::config::Secret::new(format!("smtp://127.0.0.1:{port}")),
            from: "Gridline 考核办 <gridline@example.org>".into(),
        });
    })
    .await
    else {
        return;
    };
    let admin = app.login("admin").await;
    let (_, users) = app.get("/v1/users", Some(&admin)).await;
    let id_of = |name: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let sup2 = id_of("supervisor2");
    for bad in [
        "not an address",
        "a@b@c",
        &format!("{}@example.org", "x".repeat(250)),
    ] {
        let (status, body) = app
            .patch(
                &format!("/v1/users/{sup2}"),
                Some(&admin),
                &json!({"email": bad}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, user) = app
        .patch(
            &format!("/v1/users/{sup2}"),
            Some(&admin),
            &json!({"email": " wang.fang@example.org "}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], "wang.fang@example.org");

    // supervisor1 proposes: supervisor2, who has an address, is told and mailed.
    let sup = app.login("supervisor1").await;
    let (status, proposal) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": app.zone("Z03"), "source": "media", "rule_code": "MEDIA", "note": "evening news"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    let mail = sink.next();
    assert_eq!(mail["rcpt_tos"], json!(["wang.fang@example.org"]), "{mail}");
    assert_eq!(mail["mail_from"], "gridline@example.org");
    let subject = mail["subject"].as_str().unwrap();
    assert!(subject.starts_with("[Gridline] "), "{mail}");
    assert!(
        subject.contains("待您审批"),
        "in the site's language: {mail}"
    );
    assert_eq!(mail["content_type"], "text/plain");
    let notice: String =
        sqlx::query_scalar("SELECT id FROM notices WHERE kind = 'deduction.proposed'")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(mail["message_id"], format!("<{notice}.{sup2}@gridline>"));
    // Sent once: the row is marked sent and no second mail follows the next passes.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM email_deliveries")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        if status == "sent" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "marked sent");
        tokio::task::yield_now().await;
    }
    let (_, text) = app.get("/metrics", None).await;
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("gridline_email_deliveries{status=\"sent\"} 1"),
        "{text}"
    );
    assert!(sink.got.try_recv().is_err(), "one mail");
    app.stop().await;

    // With no SMTP server the mail owed is recorded as failed, saying why.
    let Some(app) = TestApp::spawn_with(Db::Sqlite, |c| c.notifications.poll_ms = 100).await else {
        return;
    };
    let admin = app.login("admin").await;
    let (_, users) = app.get("/v1/users", Some(&admin)).await;
    let sup2 = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "supervisor2")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/v1/users/{sup2}"),
        Some(&admin),
        &json!({"email": "wang.fang@example.org"}),
    )
    .await;
    let sup = app.login("supervisor1").await;
    let (status, _) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": app.zone("Z03"), "source": "media", "rule_code": "MEDIA", "note": "evening news"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT status, last_error FROM email_deliveries")
                .fetch_optional(&app.state.db.pool)
                .await
                .unwrap();
        if let Some((status, error)) = row.filter(|(s, _)| s != "pending") {
            assert_eq!(status, "failed");
            assert!(error.unwrap_or_default().contains("no SMTP server"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "recorded as failed");
        tokio::task::yield_now().await;
    }
    app.stop().await;
}

/// A dispatched case is told to its chiefs at the marks of its time limit: at 50 % the
/// section chief ("due soon"), at 100 % the road chief ("overdue"), each once however many
/// passes look; a mark not yet reached, or passed by a case no longer being rectified, tells
/// nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chiefs_are_told_at_the_marks_of_a_time_limit_once_each() {
    let Some(app) = TestApp::spawn_with(Db::Sqlite, |c| {
        c.notifications.escalation_poll_ms = 100;
    })
    .await
    else {
        return;
    };
    let (_phone, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    // Dispatched 3 h ago with a 2.5 h limit: 50 % and 100 % passed, 150 % in 45 minutes. The
    // demo's roster started when it loaded: it is moved a day back so that it covers the
    // dispatch.
    let now = gridline_server::store::now_ms();
    sqlx::query("UPDATE roster SET valid_from = valid_from - 86400000")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE cases SET dispatched_at = $1, deadline_at = $2 WHERE id = $3")
        .bind(now - 3 * 3_600_000)
        .bind(now - 1_800_000)
        .bind(id.to_string())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let told = |app: &TestApp| {
        let pool = app.state.db.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT kind, COUNT(*) FROM notices WHERE kind IN ('case.due_soon', 'case.overdue') \
                 AND case_id = $1 GROUP BY kind ORDER BY kind",
            )
            .bind(id.to_string())
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    // The server's own passes tell both marks.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while told(&app).await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both marks told within 20 s"
        );
        tokio::task::yield_now().await;
    }
    // More passes tell nothing again.
    for _ in 0..3 {
        let n = gridline_server::notify::escalate_due(&app.state.db, &Escalation::default(), now)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
    assert_eq!(
        told(&app).await,
        [
            ("case.due_soon".to_owned(), 1),
            ("case.overdue".to_owned(), 1)
        ]
    );
    let (_, case) = app.get(&format!("/v1/cases/{id}"), Some(&sup)).await;
    let zone = case["zone_id"].as_str().unwrap().to_owned();
    let n = ["Z01", "Z02", "Z03", "Z04", "Z05", "Z06", "Z07", "Z08"]
        .into_iter()
        .position(|c| app.zone(c).to_string() == zone)
        .unwrap()
        + 1;
    let escalations = |kinds: Vec<String>| -> Vec<String> {
        kinds
            .into_iter()
            .filter(|k| k == "case.due_soon" || k == "case.overdue")
            .collect()
    };
    assert_eq!(
        escalations(kinds(&app, &format!("sectionchief{n}")).await),
        ["case.due_soon"]
    );
    assert_eq!(
        escalations(kinds(&app, &format!("roadchief{n}")).await),
        ["case.overdue"]
    );

    // 150 % passes once the case is waiting for verification: nobody is told.
    sqlx::query(
        "UPDATE cases SET state = 'pending_verification', dispatched_at = $1 WHERE id = $2",
    )
    .bind(now - 10 * 3_600_000)
    .bind(id.to_string())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let n = gridline_server::notify::escalate_due(&app.state.db, &Escalation::default(), now)
        .await
        .unwrap();
    assert_eq!(n, 0);
    app.stop().await;
}

// ---- lateness ---------------------------------------------------------------------------------

/// A case of Z01 filed and dispatched, made to look dispatched 3 h ago with its deadline a
/// minute ago (so 50 % and 100 % of its time limit have passed, 150 % not yet); the demo's
/// roster, which starts when it loaded, moved a day back so that it covers the dispatch.
/// Returns the case and the number of its zone (`sectionchief{n}`, `roadchief{n}`).
async fn overdue_case(app: &TestApp) -> (uuid::Uuid, usize, i64) {
    let (_phone, id) = filed_case(app).await;
    let sup = app.login("supervisor1").await;
    must_transition(app, &sup, id, json!({"action": "dispatch"})).await;
    let now = gridline_server::store::now_ms();
    sqlx::query("UPDATE roster SET valid_from = valid_from - 86400000")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let deadline = now - 60_000;
    sqlx::query("UPDATE cases SET dispatched_at = $1, deadline_at = $2 WHERE id = $3")
        .bind(now - 3 * 3_600_000)
        .bind(deadline)
        .bind(id.to_string())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let (_, case) = app.get(&format!("/v1/cases/{id}"), Some(&sup)).await;
    let zone = case["zone_id"].as_str().unwrap().to_owned();
    let n = ["Z01", "Z02", "Z03", "Z04", "Z05", "Z06", "Z07", "Z08"]
        .into_iter()
        .position(|c| app.zone(c).to_string() == zone)
        .unwrap()
        + 1;
    (id, n, deadline)
}

/// The lateness proposals of a case: (status, proposed_by), oldest first.
async fn lateness_proposals(app: &TestApp, case: uuid::Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT status, proposed_by FROM deduction_proposals WHERE case_id = $1 \
         AND basis = 'lateness' ORDER BY proposed_at, id",
    )
    .bind(case.to_string())
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap()
}

/// The newest notice of `kind` about `case` in `user`'s inbox.
async fn notice_of(app: &TestApp, user: &str, kind: &str, case: uuid::Uuid) -> Value {
    inbox(app, user).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == kind && n["case_id"] == json!(case))
        .unwrap_or_else(|| panic!("{user} has a {kind} notice of the case"))
        .clone()
}

/// A case past its deadline is proposed for a deduction for lateness exactly once, however
/// many escalation passes run and even two at once; the proposal is the system account's, so a
/// supervisor approves it under four eyes; the entry cites every chief told, with their
/// receipts, in its hashed reason; the case stays open to its finding's deduction and the
/// chain verifies.
async fn an_overdue_case_is_proposed_once_for_lateness_citing_who_was_told(app: TestApp) {
    let (id, n, deadline) = overdue_case(&app).await;
    let now = gridline_server::store::now_ms();
    let db = app.state.db.clone();
    for _ in 0..3 {
        gridline_server::notify::escalate_due(&db, &Escalation::default(), now)
            .await
            .unwrap();
    }
    // Two passes at once, as two instances would run them, on a second case.
    let (other, _, _) = overdue_case(&app).await;
    let escalation = Escalation::default();
    let (a, b) = tokio::join!(
        gridline_server::notify::escalate_due(&db, &escalation, now),
        gridline_server::notify::escalate_due(&db, &escalation, now),
    );
    a.unwrap();
    b.unwrap();
    let system = gridline_server::store::users::SYSTEM_USER_ID.to_string();
    for case in [id, other] {
        assert_eq!(
            lateness_proposals(&app, case).await,
            [("proposed".to_owned(), system.clone())],
            "one pending proposal for lateness on {case}"
        );
    }

    let sup = app.login("supervisor1").await;
    let (status, pending) = app.get("/v1/deductions?status=proposed", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let proposal = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["case_id"] == json!(id))
        .expect("the proposal is listed")
        .clone();
    assert_eq!(proposal["basis"], "lateness");
    assert_eq!(proposal["rule_code"], "OVERDUE");
    assert_eq!(proposal["proposed_by"], json!(system));
    assert_eq!(
        proposal["found_at"],
        json!(gridline_server::store::rfc3339(deadline)),
        "found at the deadline"
    );
    // The supervisors were told of it, as of any proposal.
    let told = notice_of(&app, "supervisor2", "deduction.proposed", id).await;
    assert_eq!(told["data"]["basis"], "lateness");
    // A second one is refused while it is pending.
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"case_id": id, "rule_code": "OVERDUE", "basis": "lateness"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "proposal_pending");

    // The section chief reads and acknowledges the "due soon" notice; the road chief never
    // reads the "overdue" one.
    let section = format!("sectionchief{n}");
    let road = format!("roadchief{n}");
    let due_soon = notice_of(&app, &section, "case.due_soon", id).await;
    let (status, body) = app
        .post(
            &format!(
                "/v1/notices/{}/acknowledge",
                due_soon["id"].as_str().unwrap()
            ),
            Some(&app.login(&section).await),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let entry = crate::support::approve(&app, &sup, &proposal).await;
    assert_eq!(entry["kind"], "deduction");
    assert_eq!(entry["case_id"], json!(id));
    assert!(entry["case_version"].is_i64(), "{entry}");
    assert_eq!(entry["evidence"], json!([]));
    let user_id = |name: String| {
        let pool = app.state.db.pool.clone();
        async move {
            gridline_server::store::users::by_username(&pool, &name)
                .await
                .unwrap()
                .unwrap()
                .id
                .to_string()
        }
    };
    let section_id = user_id(section.clone()).await;
    let road_id = user_id(road.clone()).await;
    let notified = entry["notified"].as_array().expect("notified").clone();
    assert_eq!(notified.len(), 2, "{entry}");
    let of = |user: &str| {
        notified
            .iter()
            .find(|t| t["user_id"] == user)
            .unwrap_or_else(|| panic!("{user} is cited: {entry}"))
            .clone()
    };
    let s = of(&section_id);
    assert_eq!(
        (&s["role"], &s["kind"], &s["mark_pct"]),
        (&json!("section_chief"), &json!("case.due_soon"), &json!(50))
    );
    assert!(
        s["read_at"].is_string() && s["acknowledged_at"].is_string(),
        "{s}"
    );
    assert_eq!(s["notice_id"], due_soon["id"]);
    let r = of(&road_id);
    assert_eq!(
        (&r["role"], &r["kind"], &r["mark_pct"]),
        (&json!("road_chief"), &json!("case.overdue"), &json!(100))
    );
    assert!(
        r["read_at"].is_null() && r["acknowledged_at"].is_null(),
        "{r}"
    );
    // The same, read back from the ledger, decoded from the hashed reason.
    let (_, again) = app
        .get(
            &format!("/v1/ledger/entries/{}", entry["id"].as_str().unwrap()),
            Some(&sup),
        )
        .await;
    assert_eq!(again["notified"], entry["notified"]);
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("{\"format\":\"gridline-lateness-v1\""),
        "{entry}"
    );

    // The case is still being rectified: not locked, and its finding may still be deducted.
    let case = crate::support::case(&app, &sup, id).await;
    assert_eq!(case["locked"], false, "{case}");
    let finding = crate::support::propose_on_case(&app, &sup, id).await;
    assert_eq!(finding["basis"], "finding");
    let finding_entry =
        crate::support::approve(&app, &app.login("supervisor2").await, &finding).await;
    assert!(finding_entry.get("notified").is_none(), "{finding_entry}");
    // More passes propose nothing more, the lateness deduction standing.
    gridline_server::notify::escalate_due(
        &db,
        &Escalation::default(),
        gridline_server::store::now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(
        lateness_proposals(&app, id).await,
        [("approved".to_owned(), system.clone())]
    );
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"case_id": id, "rule_code": "OVERDUE", "basis": "lateness"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "case_already_deducted");

    let (_, report) = app.get("/v1/ledger/verify", Some(&sup)).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], 2, "{report}");
}

/// A case sent for verification before its deadline is not late: no escalation pass proposes
/// it for lateness, nor may a supervisor. A case still being rectified after its deadline may
/// be proposed by hand, found at its deadline; never before it, and never without a case.
async fn a_case_rectified_in_time_is_not_late(app: TestApp) {
    let (id, n, _) = overdue_case(&app).await;
    let chief = app.login(&format!("sectionchief{n}")).await;
    must_transition(&app, &chief, id, json!({"action": "start"})).await;
    let photo = json!([{"sha256": "cd".repeat(32), "size": 1000, "role": "after",
        "captured_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()}]);
    must_transition(
        &app,
        &chief,
        id,
        json!({"action": "report_rectified", "photos": photo}),
    )
    .await;
    // Rectified two hours ago, before the deadline.
    sqlx::query(
        "UPDATE case_events SET at = at - 7200000 WHERE case_id = $1 \
         AND to_state = 'pending_verification'",
    )
    .bind(id.to_string())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let db = app.state.db.clone();
    for _ in 0..2 {
        gridline_server::notify::escalate_due(
            &db,
            &Escalation::default(),
            gridline_server::store::now_ms(),
        )
        .await
        .unwrap();
    }
    assert_eq!(lateness_proposals(&app, id).await, []);
    let sup = app.login("supervisor1").await;
    let lateness =
        |case: uuid::Uuid| json!({"case_id": case, "rule_code": "OVERDUE", "basis": "lateness"});
    let (status, body) = app.post("/v1/deductions", Some(&sup), &lateness(id)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Another case, late and still being rectified, proposed by hand before any pass.
    let (late, _, deadline) = overdue_case(&app).await;
    let mut early = lateness(late);
    early["found_at"] = json!(gridline_server::store::rfc3339(deadline - 1000));
    let (status, body) = app.post("/v1/deductions", Some(&sup), &early).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .post("/v1/deductions", Some(&sup), &lateness(late))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["basis"], "lateness");
    assert_eq!(
        body["found_at"],
        json!(gridline_server::store::rfc3339(deadline))
    );
    // The pass that follows finds it held and proposes no second one.
    gridline_server::notify::escalate_due(
        &db,
        &Escalation::default(),
        gridline_server::store::now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(lateness_proposals(&app, late).await.len(), 1);
    // No case, no lateness.
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &json!({"zone_id": app.zone("Z01"), "source": "media", "rule_code": "MEDIA", "basis": "lateness"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// A chief acknowledges their own escalation notice (which reads it too), again without
/// changing the time; someone else's is not found; a notice that is not an escalation is not
/// acknowledged.
async fn escalation_notices_are_acknowledged_by_their_own_recipient(app: TestApp) {
    let (id, n, _) = overdue_case(&app).await;
    gridline_server::notify::escalate_due(
        &app.state.db,
        &Escalation::default(),
        gridline_server::store::now_ms(),
    )
    .await
    .unwrap();
    let section = format!("sectionchief{n}");
    let token = app.login(&section).await;
    let notice = notice_of(&app, &section, "case.due_soon", id).await;
    assert!(notice["acknowledged_at"].is_null(), "{notice}");
    let path = format!("/v1/notices/{}/acknowledge", notice["id"].as_str().unwrap());
    let (status, body) = app.post(&path, Some(&token), &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let acknowledged = notice_of(&app, &section, "case.due_soon", id).await;
    assert!(
        acknowledged["acknowledged_at"].is_string(),
        "{acknowledged}"
    );
    assert!(acknowledged["read_at"].is_string(), "{acknowledged}");
    let (status, body) = app.post(&path, Some(&token), &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        notice_of(&app, &section, "case.due_soon", id).await["acknowledged_at"],
        acknowledged["acknowledged_at"]
    );
    // The road chief's inbox does not hold the section chief's notice.
    let other = app.login(&format!("roadchief{n}")).await;
    let (status, body) = app.post(&path, Some(&other), &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let dispatched = notice_of(&app, &section, "case.dispatched", id).await;
    let (status, body) = app
        .post(
            &format!(
                "/v1/notices/{}/acknowledge",
                dispatched["id"].as_str().unwrap()
            ),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
