//! Email settings for notices, against a real SMTP server (aiosmtpd): a kind turned off is not
//! mailed but still reaches the inbox; a role's default applies and a person's own choice wins;
//! quiet hours hold a mail until they end; the daily digest carries several notices in one
//! mail, once however many passes run, and nothing when nothing waits; escalations cannot be
//! turned off.
//!
//! Time is driven through the `now` arguments of the delivery passes, at instants days ahead,
//! so the server's own background passes (which run at the real time) never find them due.

use gridline_server::config::{Secret, SmtpConfig};
use gridline_server::notify::{self, Mailer, Notice, NoticeKind};
use gridline_server::notify_settings;
use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::notices::SmtpSink;

on_both_backends!(
    a_kind_turned_off_is_not_mailed_but_still_reaches_the_inbox,
    a_role_default_applies_and_a_person_s_own_choice_wins,
    quiet_hours_hold_a_mail_until_they_end,
    the_daily_digest_carries_several_notices_in_one_mail_once,
    escalations_cannot_be_turned_off_and_bad_settings_are_refused,
);

fn mailer(sink: &SmtpSink) -> Mailer {
    Mailer::new(&SmtpConfig {
        url: Secret::new(format!("smtp://127.0.0.1:{}", sink.port)),
        from: "Gridline <gridline@example.org>".into(),
    })
    .unwrap()
}

/// Gives `username` an email address (`{username}@example.org`); returns their id.
async fn with_address(app: &TestApp, username: &str) -> Uuid {
    let user = gridline_server::store::users::by_username(&app.state.db.pool, username)
        .await
        .unwrap()
        .unwrap();
    let (status, body) = app
        .patch(
            &format!("/v1/users/{}", user.id),
            Some(&app.login("admin").await),
            &json!({"email": format!("{username}@example.org")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    user.id
}

/// The instant of local time `hh_mm` on the day `days` after today, in the site's time zone.
fn local(app: &TestApp, days: i64, hh_mm: &str) -> i64 {
    let tz = app.state.config.site.tz();
    let now = gridline_server::store::now_ms();
    let day = gridline_server::localtime::civil(&tz, now + days * 86_400_000).date();
    gridline_server::localtime::parse_local(&tz, &format!("{day}T{hh_mm}")).unwrap()
}

/// Records a notice of `kind` for `recipients` at `at`, as its event would.
async fn record(app: &TestApp, kind: NoticeKind, recipients: &[Uuid], at: i64, n: i64) -> Uuid {
    let mut tx = app.state.db.begin_write().await.unwrap();
    let recorded = notify::record(
        tx.conn(),
        Notice {
            kind,
            case_id: None,
            zone_id: None,
            data: json!({"rule_code": format!("R{n}"), "reason": format!("reason {n}")}),
            recipients: recipients.to_vec(),
        },
        at,
    )
    .await
    .unwrap();
    gridline_server::store::changes::append(tx.conn(), &recorded.changes)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    recorded.id
}

async fn deliver(app: &TestApp, mailer: &Mailer, now: i64) -> usize {
    notify::deliver_emails_at(&app.state.db, Some(mailer), &app.state.config.site, now)
        .await
        .unwrap()
}

/// The ids of the notices in `username`'s inbox.
async fn inbox_ids(app: &TestApp, username: &str) -> Vec<String> {
    let (status, page) = app.get("/v1/inbox", Some(&app.login(username).await)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn put_mine(app: &TestApp, username: &str, body: Value) -> (StatusCode, Value) {
    app.put(
        "/v1/me/notification-settings",
        Some(&app.login(username).await),
        &body,
    )
    .await
}

fn setting<'a>(settings: &'a Value, kind: &str) -> &'a Value {
    settings["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .unwrap()
}

async fn a_kind_turned_off_is_not_mailed_but_still_reaches_the_inbox(app: TestApp) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mailer = mailer(&sink);
    let sup2 = with_address(&app, "supervisor2").await;
    let (status, mine) = put_mine(
        &app,
        "supervisor2",
        json!({"kinds": {"deduction.rejected": "off"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(setting(&mine, "deduction.rejected")["mode"], "off");
    assert_eq!(setting(&mine, "deduction.rejected")["own"], "off");
    assert_eq!(setting(&mine, "deduction.reversed")["mode"], "immediately");

    let at = local(&app, 3, "10:00");
    let rejected = record(&app, NoticeKind::DeductionRejected, &[sup2], at, 1).await;
    let reversed = record(&app, NoticeKind::DeductionReversed, &[sup2], at, 2).await;
    assert_eq!(deliver(&app, &mailer, at).await, 1);
    let mail = sink.next();
    assert_eq!(mail["rcpt_tos"], json!(["supervisor2@example.org"]));
    assert_eq!(mail["message_id"], format!("<{reversed}.{sup2}@gridline>"));
    assert_eq!(deliver(&app, &mailer, at + 60_000).await, 0);
    assert!(
        sink.got.try_recv().is_err(),
        "no mail of the kind turned off"
    );
    // The inbox has both: it is the record of who was told.
    let inbox = inbox_ids(&app, "supervisor2").await;
    assert!(inbox.contains(&rejected.to_string()), "{inbox:?}");
    assert!(inbox.contains(&reversed.to_string()), "{inbox:?}");
    app.stop().await;
}

async fn a_role_default_applies_and_a_person_s_own_choice_wins(app: TestApp) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mailer = mailer(&sink);
    let sup1 = with_address(&app, "supervisor1").await;
    let sup2 = with_address(&app, "supervisor2").await;
    let admin = app.login("admin").await;
    // Only an admin sets a role's defaults.
    let (status, _) = app
        .put(
            "/v1/notification-settings/roles/supervisor",
            Some(&app.login("supervisor1").await),
            &json!({"kinds": {"deduction.rejected": "off"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, role) = app
        .put(
            "/v1/notification-settings/roles/supervisor",
            Some(&admin),
            &json!({"kinds": {"deduction.rejected": "off"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{role}");
    assert_eq!(setting(&role, "deduction.rejected")["mode"], "off");
    assert_eq!(setting(&role, "deduction.rejected")["set"], true);
    assert_eq!(setting(&role, "period.closed")["set"], false);
    let (status, read) = app
        .get("/v1/notification-settings/roles/supervisor", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, role);
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'notification_settings.role' \
         AND entity_id = 'supervisor'",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    // supervisor2 chooses to be mailed at once; supervisor1 follows the role.
    let (status, mine) = put_mine(
        &app,
        "supervisor2",
        json!({"kinds": {"deduction.rejected": "immediately"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(setting(&mine, "deduction.rejected")["role_default"], "off");
    assert_eq!(setting(&mine, "deduction.rejected")["mode"], "immediately");
    let (_, theirs) = app
        .get(
            "/v1/me/notification-settings",
            Some(&app.login("supervisor1").await),
        )
        .await;
    assert_eq!(setting(&theirs, "deduction.rejected")["mode"], "off");
    assert_eq!(setting(&theirs, "deduction.rejected")["own"], Value::Null);

    let at = local(&app, 3, "10:00");
    record(&app, NoticeKind::DeductionRejected, &[sup1, sup2], at, 1).await;
    assert_eq!(deliver(&app, &mailer, at).await, 1);
    assert_eq!(sink.next()["rcpt_tos"], json!(["supervisor2@example.org"]));
    assert!(sink.got.try_recv().is_err(), "supervisor1 is not mailed");
    // Another kind, with no default for the role: both are mailed.
    record(&app, NoticeKind::DeductionReversed, &[sup1, sup2], at, 2).await;
    assert_eq!(deliver(&app, &mailer, at).await, 2);
    let mut to = vec![
        sink.next()["rcpt_tos"][0].as_str().unwrap().to_owned(),
        sink.next()["rcpt_tos"][0].as_str().unwrap().to_owned(),
    ];
    to.sort();
    assert_eq!(to, ["supervisor1@example.org", "supervisor2@example.org"]);
    app.stop().await;
}

async fn quiet_hours_hold_a_mail_until_they_end(app: TestApp) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mailer = mailer(&sink);
    let sup2 = with_address(&app, "supervisor2").await;
    let (status, mine) = put_mine(
        &app,
        "supervisor2",
        json!({"quiet_hours": {"start": "22:00", "end": "07:00"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(
        mine["quiet_hours"],
        json!({"start": "22:00", "end": "07:00"})
    );

    let night = local(&app, 3, "23:10");
    let morning = local(&app, 4, "07:00");
    let id = record(&app, NoticeKind::DeductionReversed, &[sup2], night, 1).await;
    assert_eq!(deliver(&app, &mailer, night).await, 0, "held");
    let (next_at, attempts): (i64, i64) =
        sqlx::query_as("SELECT next_at, attempts FROM email_deliveries WHERE notice_id = $1")
            .bind(id.to_string())
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(next_at, morning, "due when the quiet hours end");
    assert_eq!(attempts, 0, "a hold is not an attempt");
    assert_eq!(deliver(&app, &mailer, morning - 60_000).await, 0);
    assert!(sink.got.try_recv().is_err(), "nothing during quiet hours");
    assert_eq!(deliver(&app, &mailer, morning).await, 1, "released");
    let mail = sink.next();
    assert_eq!(mail["message_id"], format!("<{id}.{sup2}@gridline>"));
    // Outside the hours a mail goes at once.
    let day = local(&app, 4, "12:00");
    record(&app, NoticeKind::DeductionReversed, &[sup2], day, 2).await;
    assert_eq!(deliver(&app, &mailer, day).await, 1);
    sink.next();
    app.stop().await;
}

async fn digest_pass(app: &TestApp, mailer: &Mailer, now: i64) -> usize {
    notify_settings::send_digests(
        &app.state.db,
        Some(mailer),
        &app.state.config.site,
        8 * 60,
        now,
    )
    .await
    .unwrap()
}

async fn the_daily_digest_carries_several_notices_in_one_mail_once(app: TestApp) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mailer = mailer(&sink);
    let sup2 = with_address(&app, "supervisor2").await;
    let (status, body) = put_mine(
        &app,
        "supervisor2",
        json!({"kinds": {"deduction.rejected": "digest", "deduction.reversed": "digest"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let day = |d: i64, t: &str| local(&app, d, t);
    let mut ids = Vec::new();
    for n in 0..3 {
        let kind = if n == 1 {
            NoticeKind::DeductionReversed
        } else {
            NoticeKind::DeductionRejected
        };
        ids.push(record(&app, kind, &[sup2], day(3, "09:00") + n * 60_000, n).await);
    }
    // Nothing is mailed at once, and no digest before its time.
    assert_eq!(deliver(&app, &mailer, day(3, "09:30")).await, 0);
    assert_eq!(digest_pass(&app, &mailer, day(4, "07:59")).await, 0);
    // Two passes at once (two instances): one digest, one mail.
    let at = day(4, "08:00");
    let (a, b) = tokio::join!(
        digest_pass(&app, &mailer, at),
        digest_pass(&app, &mailer, at)
    );
    assert_eq!(a + b, 1, "one digest sent: {a} + {b}");
    let mail = sink.next();
    assert_eq!(mail["rcpt_tos"], json!(["supervisor2@example.org"]));
    let local_day = gridline_server::localtime::civil(&app.state.config.site.tz(), at)
        .date()
        .to_string();
    assert_eq!(
        mail["message_id"],
        format!("<digest.{sup2}.{local_day}@gridline>")
    );
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("{local_day} (3)")),
        "{mail}"
    );
    let body = mail["body"].as_str().unwrap();
    for n in 0..3 {
        assert!(body.contains(&format!("rule R{n}")), "{body}");
    }
    assert_eq!(body.matches("• ").count(), 3, "{body}");
    assert_eq!(digest_pass(&app, &mailer, at + 60_000).await, 0);
    assert!(sink.got.try_recv().is_err(), "one mail");
    let digests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notice_digests")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(digests, 1);

    // A notice after the day's digest waits for the next day's.
    record(
        &app,
        NoticeKind::DeductionRejected,
        &[sup2],
        day(4, "11:00"),
        9,
    )
    .await;
    assert_eq!(digest_pass(&app, &mailer, day(4, "12:00")).await, 0);
    assert_eq!(digest_pass(&app, &mailer, day(5, "08:01")).await, 1);
    let mail = sink.next();
    assert!(mail["subject"].as_str().unwrap().contains("(1)"), "{mail}");
    assert!(mail["body"].as_str().unwrap().contains("rule R9"), "{mail}");
    // Nothing waits: no mail, no digest.
    assert_eq!(digest_pass(&app, &mailer, day(6, "08:01")).await, 0);
    assert!(sink.got.try_recv().is_err(), "no empty digest");
    let digests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notice_digests")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(digests, 2);
    // Every notice is in the inbox all the same.
    let inbox = inbox_ids(&app, "supervisor2").await;
    for id in &ids {
        assert!(inbox.contains(&id.to_string()), "{inbox:?}");
    }
    app.stop().await;
}

async fn escalations_cannot_be_turned_off_and_bad_settings_are_refused(app: TestApp) {
    for (body, path) in [
        (json!({"kinds": {"case.overdue": "off"}}), "kinds"),
        (json!({"kinds": {"case.due_soon": "off"}}), "kinds"),
        (json!({"kinds": {"case.exploded": "digest"}}), "kinds"),
        (
            json!({"quiet_hours": {"start": "25:00", "end": "07:00"}}),
            "quiet_hours.start",
        ),
        (
            json!({"quiet_hours": {"start": "22:00", "end": "7"}}),
            "quiet_hours.end",
        ),
        (
            json!({"quiet_hours": {"start": "22:00", "end": "22:00"}}),
            "quiet_hours.end",
        ),
    ] {
        let (status, answer) = put_mine(&app, "roadchief1", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["code"], "invalid_request", "{answer}");
        assert_eq!(answer["details"]["path"], path, "{answer}");
    }
    // An unknown mode is refused by the body's schema, naming where.
    let (status, answer) = put_mine(
        &app,
        "roadchief1",
        json!({"kinds": {"case.dispatched": "never"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("never"),
        "{answer}"
    );
    // Moving an escalation to the digest is allowed.
    let (status, mine) = put_mine(
        &app,
        "roadchief1",
        json!({"kinds": {"case.overdue": "digest"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(setting(&mine, "case.overdue")["mode"], "digest");
    assert_eq!(setting(&mine, "case.overdue")["may_turn_off"], false);
    // Nor may a role's default turn one off.
    let (status, answer) = app
        .put(
            "/v1/notification-settings/roles/road_chief",
            Some(&app.login("admin").await),
            &json!({"kinds": {"case.overdue": "off"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // Nothing was half-written by the refusals.
    let (_, mine) = app
        .get(
            "/v1/me/notification-settings",
            Some(&app.login("roadchief1").await),
        )
        .await;
    assert_eq!(mine["quiet_hours"], Value::Null);
    assert_eq!(setting(&mine, "case.dispatched")["own"], Value::Null);
    let (status, _) = app
        .get(
            "/v1/notification-settings/roles/no_such_role",
            Some(&app.login("admin").await),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
    app.stop().await;
}

/// The console's pages: a person chooses per kind and sets quiet hours, which the API then
/// shows; an escalation offers no "off" and a forged one is refused; an admin sets a role's
/// default on the administration's tab, and no one else may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pages_set_what_the_api_shows() {
    use crate::console_admin::Browser;
    let Some(app) = TestApp::on(gridline_testkit::Db::Sqlite).await else {
        return;
    };
    let chief = Browser::sign_in(&app, "roadchief1").await;
    let (status, page) = chief.get(&app, "/console/settings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("always receives every notice"), "{page}");
    assert!(
        page.contains("href=\"/console/settings\""),
        "in the navigation"
    );
    let overdue = page
        .split("id=\"mode-case-overdue\"")
        .nth(1)
        .and_then(|r| r.split("</select>").next())
        .unwrap();
    assert!(!overdue.contains("value=\"off\""), "{overdue}");
    let (status, to) = chief
        .post(
            &app,
            "/console/settings",
            &[
                ("mode-case-dispatched", "digest"),
                ("mode-case-overdue", "role"),
                ("quiet", "on"),
                ("quiet_start", "21:30"),
                ("quiet_end", "06:45"),
            ],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, "/console/settings?saved=1")
    );
    let (_, mine) = app
        .get(
            "/v1/me/notification-settings",
            Some(&app.login("roadchief1").await),
        )
        .await;
    assert_eq!(setting(&mine, "case.dispatched")["own"], "digest");
    assert_eq!(setting(&mine, "case.overdue")["own"], Value::Null);
    assert_eq!(
        mine["quiet_hours"],
        json!({"start": "21:30", "end": "06:45"})
    );
    let (status, _) = chief
        .post(&app, "/console/settings", &[("mode-case-overdue", "off")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, _) = chief.get(&app, "/console/admin/notifications").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = Browser::sign_in(&app, "admin").await;
    let (status, page) = admin
        .get(&app, "/console/admin/notifications?role=road_chief")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("most generous"), "{page}");
    let (status, to) = admin
        .post(
            &app,
            "/console/admin/notifications/road_chief",
            &[
                ("mode-period-closed", "off"),
                ("mode-case-overdue", "digest"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    let (_, role) = app
        .get(
            "/v1/notification-settings/roles/road_chief",
            Some(&app.login("admin").await),
        )
        .await;
    assert_eq!(setting(&role, "period.closed")["mode"], "off");
    assert_eq!(setting(&role, "case.overdue")["mode"], "digest");
    assert_eq!(setting(&role, "case.dispatched")["set"], false);
    let (status, _) = chief
        .post(
            &app,
            "/console/admin/notifications/road_chief",
            &[("mode-period-closed", "immediately")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}
