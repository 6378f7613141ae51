//! Email: a notice is mailed once to each recipient with an address, through an SMTP server on
//! loopback.

use std::time::Duration;

use gridline_testkit::{skip_or_fail, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

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
    let Some(app) = TestApp::builder()
        .config(move |c| {
            c.notifications.poll_ms = 100;
            c.site.language = gridline_server::i18n::Lang::ZhCn;
            c.notifications.smtp = Some(gridline_server::config::SmtpConfig {
                url: gridline_server::config::Secret::new(format!("smtp://127.0.0.1:{port}")),
                from: "Gridline 考核办 <gridline@example.org>".into(),
            });
        })
        .spawn()
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
    let Some(app) = TestApp::builder()
        .config(|c| c.notifications.poll_ms = 100)
        .spawn()
        .await
    else {
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
