//! Group robots: WeCom and DingTalk get a text message as their documentation says.

use std::time::Duration;

use axum::http::HeaderMap;
use gridline_testkit::{skip_or_fail, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::mpsc;

use super::run_client;
use crate::support::{filed_case, must_transition};

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
    let Some(app) = TestApp::builder()
        .config(|c| {
            c.notifications.poll_ms = 100;
            c.site.language = gridline_server::i18n::Lang::ZhCn;
        })
        .spawn()
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
