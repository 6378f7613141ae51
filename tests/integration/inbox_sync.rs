//! The inbox on the phones: a user's notices reach their own phones through the pull, read
//! receipts come back through the push (`notice.read@1`), and a reading on the console reaches
//! the phones on their next pull. The first reading counts, wherever it happened.

use gridline_sync::client::OutboxState;
use gridline_sync::{EntityKind, ErrorCode, OpStatus};
use gridline_testkit::{on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{filed_case, must_transition};
use crate::sync_client::{field_client, FieldClient};

on_both_backends!(
    a_dispatch_reaches_the_assignee_s_phone_and_its_reading_comes_back,
    phones_that_do_not_ask_for_the_inbox_never_get_it_and_a_cursor_catches_up,
    an_escalation_acknowledged_in_the_console_shows_on_the_phone,
);

/// `user`'s inbox as the API shows it.
async fn api_inbox(app: &TestApp, user: &str) -> Vec<Value> {
    let (status, page) = app.get("/v1/inbox", Some(&app.login(user).await)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn sync(client: &FieldClient) {
    let report = client.sync().await.unwrap();
    assert!(!report.push.unverified_receipt, "{report:?}");
}

/// The result the server gave to the phone's operation at `seq`.
async fn result_of(client: &FieldClient, seq: u64) -> gridline_sync::OpResult {
    let entry = client
        .store()
        .entries()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.seq == seq)
        .unwrap();
    assert_eq!(entry.state, OutboxState::Acked, "{entry:?}");
    entry.result.unwrap()
}

async fn a_dispatch_reaches_the_assignee_s_phone_and_its_reading_comes_back(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let chief = field_client(&app, dir.path(), "roadchief1").await;
    let section = field_client(&app, dir.path(), "sectionchief1").await;
    let other = field_client(&app, dir.path(), "roadchief2").await;
    // Each phone has synced once before the dispatch: the notice comes on an incremental pull.
    for phone in [&chief, &section, &other] {
        sync(phone).await;
        assert!(phone.inbox().await.unwrap().is_empty());
    }

    let (_inspector, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, case_id, json!({"action": "dispatch"})).await;
    for phone in [&chief, &section, &other] {
        sync(phone).await;
    }

    // The assignee's phone holds the notice as the API shows it; another zone's chief has none.
    let api = api_inbox(&app, "roadchief1").await;
    assert_eq!(api.len(), 1, "{api:?}");
    let notice_id: Uuid = api[0]["id"].as_str().unwrap().parse().unwrap();
    let mirrored = chief.mirror(EntityKind::Notice).await.unwrap();
    assert_eq!(mirrored.len(), 1, "{mirrored:?}");
    assert_eq!(
        mirrored[0].data, api[0],
        "the pulled notice is the API's NoticeView"
    );
    let inbox = chief.inbox().await.unwrap();
    assert_eq!(inbox[0].id, notice_id);
    assert_eq!(inbox[0].kind, "case.dispatched");
    assert_eq!(inbox[0].case_id, Some(case_id));
    assert_eq!(inbox[0].read_at, None);
    assert!(
        other.inbox().await.unwrap().is_empty(),
        "not another user's"
    );
    assert!(other.mirror(EntityKind::Notice).await.unwrap().is_empty());

    // Read on the phone, offline: shown read at once, nothing changes on the server.
    let before_read = OffsetDateTime::now_utc();
    let entry = chief.mark_read(notice_id).await.unwrap();
    let inbox = chief.inbox().await.unwrap();
    assert!(
        inbox[0].read_pending && inbox[0].read_at.is_some(),
        "{inbox:?}"
    );
    assert!(api_inbox(&app, "roadchief1").await[0]["read_at"].is_null());

    // Synced: the server keeps the receipt, and the phone gets it back by pull.
    sync(&chief).await;
    assert_eq!(result_of(&chief, entry.seq).await.status, OpStatus::Applied);
    let api = api_inbox(&app, "roadchief1").await;
    let read_at = api[0]["read_at"]
        .as_str()
        .expect("read on the server")
        .to_owned();
    let at =
        OffsetDateTime::parse(&read_at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(
        at >= before_read - time::Duration::seconds(1) && at <= OffsetDateTime::now_utc(),
        "the phone's reading time: {read_at}"
    );
    let inbox = chief.inbox().await.unwrap();
    assert!(!inbox[0].read_pending, "{inbox:?}");
    assert_eq!(inbox[0].read_at, Some(at));
    // Only the reader's copy is read.
    assert!(api_inbox(&app, "sectionchief1").await[0]["read_at"].is_null());

    // A second reading is applied and changes nothing: the first one stands.
    let again = chief.mark_read(notice_id).await.unwrap();
    sync(&chief).await;
    assert_eq!(result_of(&chief, again.seq).await.status, OpStatus::Applied);
    assert_eq!(
        api_inbox(&app, "roadchief1").await[0]["read_at"],
        json!(read_at)
    );

    // Someone else's notice is refused, and stays unread for its owner.
    let section_notice = api_inbox(&app, "sectionchief1").await[0]["id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    let stolen = other.mark_read(section_notice).await.unwrap();
    sync(&other).await;
    let result = result_of(&other, stolen.seq).await;
    assert_eq!(result.status, OpStatus::Rejected, "{result:?}");
    assert_eq!(result.code, Some(ErrorCode::NoticeNotFound));
    assert!(api_inbox(&app, "sectionchief1").await[0]["read_at"].is_null());
    assert!(other.inbox().await.unwrap().is_empty());

    // Read on the console (the API): the section chief's phone shows it on its next pull, and
    // a reading from the phone afterwards changes nothing.
    let inbox = section.inbox().await.unwrap();
    assert_eq!(inbox[0].read_at, None);
    let (status, body) = app
        .post(
            &format!("/v1/inbox/{section_notice}/read"),
            Some(&app.login("sectionchief1").await),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let console_read = api_inbox(&app, "sectionchief1").await[0]["read_at"].clone();
    assert!(console_read.is_string());
    sync(&section).await;
    let mirrored = section.mirror(EntityKind::Notice).await.unwrap();
    assert_eq!(mirrored[0].data["read_at"], console_read);
    let late = section.mark_read(section_notice).await.unwrap();
    sync(&section).await;
    assert_eq!(
        result_of(&section, late.seq).await.status,
        OpStatus::Applied
    );
    assert_eq!(
        api_inbox(&app, "sectionchief1").await[0]["read_at"],
        console_read
    );
}

/// Pulls every page from `cursor`, asking for the inbox or not.
async fn pull_all(
    app: &TestApp,
    phone: &Phone,
    cursor: Option<&str>,
    inbox: bool,
) -> (Vec<Value>, String) {
    let mut cursor = cursor.map(str::to_owned);
    let mut changes = Vec::new();
    loop {
        let mut path = "/v1/sync/pull?protocol=1&limit=50".to_owned();
        if inbox {
            path.push_str("&inbox=true");
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = app.get(&path, Some(&phone.token)).await;
        assert_eq!(status, StatusCode::OK, "pull: {body}");
        changes.extend(body["changes"].as_array().unwrap().iter().cloned());
        cursor = Some(body["cursor"].as_str().unwrap().to_owned());
        if !body["has_more"].as_bool().unwrap() {
            break;
        }
    }
    (changes, cursor.unwrap())
}

fn notices(changes: &[Value]) -> Vec<&Value> {
    changes.iter().filter(|c| c["entity"] == "notice").collect()
}

/// A phone of an older app does not ask for the inbox and never receives an entity it cannot
/// read. When the app learns it, the inbox is owed from the start: the cursor it kept catches
/// the notices up, across small pages.
async fn phones_that_do_not_ask_for_the_inbox_never_get_it_and_a_cursor_catches_up(app: TestApp) {
    let (_inspector, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, case_id, json!({"action": "dispatch"})).await;
    let phone = Phone::enrol(&app, "roadchief1").await;

    let (changes, cursor) = pull_all(&app, &phone, None, false).await;
    assert!(!changes.is_empty());
    assert!(notices(&changes).is_empty(), "an old phone gets no notice");

    // The same cursor, now asking for the inbox: the notice recorded before it arrives.
    let (changes, cursor) = pull_all(&app, &phone, Some(&cursor), true).await;
    let got = notices(&changes);
    assert_eq!(got.len(), 1, "{changes:?}");
    assert_eq!(got[0]["kind"], "upsert");
    assert_eq!(got[0]["data"]["kind"], "case.dispatched");
    assert_eq!(got[0]["data"]["case_id"], json!(case_id));
    // And nothing more afterwards, until the notice changes.
    let (changes, cursor) = pull_all(&app, &phone, Some(&cursor), true).await;
    assert!(notices(&changes).is_empty(), "{changes:?}");
    let id = got[0]["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/v1/inbox/{id}/read"),
            Some(&app.login("roadchief1").await),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (changes, _) = pull_all(&app, &phone, Some(&cursor), true).await;
    let got = notices(&changes);
    assert_eq!(got.len(), 1, "{changes:?}");
    assert!(got[0]["data"]["read_at"].is_string(), "{changes:?}");
    // A supervisor (every zone in scope) does not see the chiefs' notices.
    let supervisor = Phone::enrol(&app, "supervisor2").await;
    let (changes, _) = pull_all(&app, &supervisor, None, true).await;
    assert!(
        notices(&changes)
            .iter()
            .all(|n| n["data"]["kind"] != "case.dispatched"),
        "{changes:?}"
    );
}

/// An escalation acknowledged through the API (as the console does) reaches the chief's phone
/// on its next pull, read and acknowledged.
async fn an_escalation_acknowledged_in_the_console_shows_on_the_phone(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let section = field_client(&app, dir.path(), "sectionchief1").await;
    sync(&section).await;
    let chief = gridline_server::store::users::by_username(&app.state.db.pool, "sectionchief1")
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.state.db.begin_write().await.unwrap();
    let recorded = gridline_server::notify::record(
        tx.conn(),
        gridline_server::notify::Notice {
            kind: gridline_server::notify::NoticeKind::CaseOverdue,
            case_id: None,
            zone_id: None,
            data: json!({"mark_pct": 100}),
            recipients: vec![chief.id],
        },
        gridline_server::store::now_ms(),
    )
    .await
    .unwrap();
    gridline_server::store::changes::append(tx.conn(), &recorded.changes)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sync(&section).await;
    let mirrored = section.mirror(EntityKind::Notice).await.unwrap();
    assert_eq!(mirrored.len(), 1, "{mirrored:?}");
    assert!(mirrored[0].data["acknowledged_at"].is_null());

    let (status, body) = app
        .post(
            &format!("/v1/notices/{}/acknowledge", recorded.id),
            Some(&app.login("sectionchief1").await),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let api = api_inbox(&app, "sectionchief1").await;
    assert!(api[0]["acknowledged_at"].is_string(), "{api:?}");
    sync(&section).await;
    let mirrored = section.mirror(EntityKind::Notice).await.unwrap();
    assert_eq!(
        mirrored[0].data["acknowledged_at"],
        api[0]["acknowledged_at"]
    );
    assert_eq!(mirrored[0].data["read_at"], api[0]["read_at"]);
    assert!(mirrored[0].data["read_at"].is_string());
}
