//! Telling people what happened: notices written in the transaction of the event that causes
//! them (so a notice exists exactly when its event committed, and never for one that rolled
//! back), each person's in-app inbox with read receipts, and outgoing webhooks signed per the
//! Standard Webhooks specification, sent from an outbox by workers on every instance.
//!
//! Delivery is at least once per subscription with a stable `webhook-id` (the notice's id), so
//! a receiver drops a repeat by that id; a claim (`store::notices::claim_due`) gives each due
//! delivery to one worker at a time, and a claim that outlives its worker (a killed instance)
//! expires and is taken again. A failed attempt is retried with growing delays
//! ([`RETRY_DELAYS_MS`]), then given up and counted as failed.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::config::SiteConfig;
use crate::config::{NotificationsConfig, SmtpConfig};
use crate::error::{ApiError, ApiResult};
use crate::i18n::{self, Lang};
use crate::store::changes::{self, PendingChange};
use crate::store::notices::{
    self as store, DueMark, InboxRow, NoticeRow, Outbox, ReadReceipt, WebhookFormat, WebhookRow,
};
use crate::store::{audit, new_id, now_ms, rfc3339, Db};
use crate::workdays::{WorkCalendar, WorkWeek};
use gridline_sync::case::CaseState;
use gridline_sync::Role;

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum NoticeKind {
    /// A case was dispatched to its recipients, with a deadline.
    #[serde(rename = "case.dispatched")]
    CaseDispatched,
    /// A rectification was returned for rework.
    #[serde(rename = "case.returned")]
    CaseReturned,
    /// A proposed deduction was approved into the ledger.
    #[serde(rename = "deduction.approved")]
    DeductionApproved,
    /// A proposed deduction was rejected.
    #[serde(rename = "deduction.rejected")]
    DeductionRejected,
    /// A deduction was proposed and waits for a supervisor's decision.
    #[serde(rename = "deduction.proposed")]
    DeductionProposed,
    /// A ledger entry was reversed (a correction, an appeal upheld).
    #[serde(rename = "deduction.reversed")]
    DeductionReversed,
    /// A period closed and its ranking was published.
    #[serde(rename = "period.closed")]
    PeriodClosed,
    /// A dispatched case passed a mark of its time limit before the deadline.
    #[serde(rename = "case.due_soon")]
    CaseDueSoon,
    /// A dispatched case passed its deadline, or a mark after it, without being rectified.
    #[serde(rename = "case.overdue")]
    CaseOverdue,
    /// A report from outside the patrol (a hotline call, a public report...) became a case.
    #[serde(rename = "case.received")]
    CaseReceived,
}

impl NoticeKind {
    pub const ALL: &'static [NoticeKind] = &[
        NoticeKind::CaseDispatched,
        NoticeKind::CaseReturned,
        NoticeKind::DeductionApproved,
        NoticeKind::DeductionRejected,
        NoticeKind::DeductionProposed,
        NoticeKind::DeductionReversed,
        NoticeKind::PeriodClosed,
        NoticeKind::CaseDueSoon,
        NoticeKind::CaseOverdue,
        NoticeKind::CaseReceived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::CaseDispatched => "case.dispatched",
            NoticeKind::CaseReturned => "case.returned",
            NoticeKind::DeductionApproved => "deduction.approved",
            NoticeKind::DeductionRejected => "deduction.rejected",
            NoticeKind::DeductionProposed => "deduction.proposed",
            NoticeKind::DeductionReversed => "deduction.reversed",
            NoticeKind::PeriodClosed => "period.closed",
            NoticeKind::CaseDueSoon => "case.due_soon",
            NoticeKind::CaseOverdue => "case.overdue",
            NoticeKind::CaseReceived => "case.received",
        }
    }

    pub fn parse(s: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// A notice to record with its event.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    pub case_id: Option<Uuid>,
    pub zone_id: Option<Uuid>,
    /// The facts a reader or receiver needs (ids, deadline, points...).
    pub data: Value,
    /// Whose inbox it goes to.
    pub recipients: Vec<Uuid>,
}

/// A notice recorded in its event's transaction, and the change-log rows that carry it to each
/// recipient's phones. The caller appends `changes` with the transaction's other changes, as
/// its last statement: the change-log counter is locked from there to the commit, so taking it
/// earlier (here) would hold it while the event takes its other locks.
#[must_use = "append `changes` to the change log, or the recipients' phones never pull the notice"]
#[derive(Debug)]
pub struct Recorded {
    pub id: Uuid,
    /// One inbox row per recipient ([`PendingChange::inbox`]).
    pub changes: Vec<PendingChange>,
}

/// Records `notice` in the event's transaction: the notice, one inbox row per recipient, and a
/// delivery for each webhook subscription that wants its kind. Returns the notice's id and the
/// change-log rows to append.
pub async fn record(
    conn: &mut sqlx::AnyConnection,
    notice: Notice,
    now: i64,
) -> Result<Recorded, sqlx::Error> {
    let mut recipients = notice.recipients;
    recipients.sort();
    recipients.dedup();
    // The system account proposes deductions for lateness; nobody reads its inbox.
    recipients.retain(|u| *u != crate::store::users::SYSTEM_USER_ID);
    let row = NoticeRow {
        id: new_id(),
        kind: notice.kind.as_str().to_owned(),
        case_id: notice.case_id,
        zone_id: notice.zone_id,
        data: notice.data.to_string(),
        created_at: now,
    };
    store::insert(&mut *conn, &row, &recipients).await?;
    store::queue_deliveries(&mut *conn, row.id, &row.kind, now).await?;
    // Mail as each recipient's settings say (the inbox rows above are everyone's regardless).
    crate::store::notice_settings::queue_emails(conn, row.id, &row.kind, &recipients, now).await?;
    Ok(Recorded {
        id: row.id,
        changes: recipients
            .iter()
            .map(|user| PendingChange::inbox(row.id, *user))
            .collect(),
    })
}

/// A notice as its recipient reads it, and as a webhook receives it (without `read_at`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NoticeView {
    pub id: Uuid,
    /// `case.dispatched`, `case.returned`, `case.due_soon`, `case.overdue`,
    /// `deduction.proposed`, `deduction.approved`, `deduction.rejected`, `deduction.reversed`,
    /// `period.closed`.
    pub kind: String,
    pub case_id: Option<Uuid>,
    pub zone_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// When the recipient read it (`null`: unread).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub read_at: Option<time::OffsetDateTime>,
    /// When the recipient acknowledged it (`case.due_soon` and `case.overdue` only; `null`:
    /// not acknowledged).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<time::OffsetDateTime>,
}

/// An inbox row as its recipient reads it (the API, the console and the phones' pull).
pub fn inbox_view(row: &InboxRow) -> NoticeView {
    NoticeView {
        acknowledged_at: row.acknowledged_at.map(crate::store::time_from_ms),
        ..view(&row.notice, row.read_at)
    }
}

pub(crate) fn view(n: &NoticeRow, read_at: Option<i64>) -> NoticeView {
    NoticeView {
        id: n.id,
        kind: n.kind.clone(),
        case_id: n.case_id,
        zone_id: n.zone_id,
        data: serde_json::from_str(&n.data).unwrap_or(Value::Null),
        created_at: crate::store::time_from_ms(n.created_at),
        read_at: read_at.map(crate::store::time_from_ms),
        acknowledged_at: None,
    }
}

/// The names a notice's words use instead of ids.
pub trait Labels {
    /// A zone's name in `lang`.
    fn zone_label(&self, id: &str, lang: Lang) -> String;
    /// A taxonomy entry's name in `lang`.
    fn category_label(&self, key: &str, lang: Lang) -> String;
}

/// Zone and category names as published, for the delivery worker's robot messages.
struct SiteLabels {
    zones: std::collections::HashMap<String, (String, crate::model::Translations)>,
    categories: std::collections::HashMap<String, (String, String)>,
}

impl SiteLabels {
    async fn load(db: &Db) -> Result<SiteLabels, sqlx::Error> {
        let zones = crate::store::reference::zones(&db.pool, None)
            .await?
            .into_iter()
            .map(|z| (z.id.to_string(), (z.name, z.translations)))
            .collect();
        let categories = crate::store::reference::taxonomy(&db.pool)
            .await?
            .into_iter()
            .map(|t| (t.key, (t.name_zh, t.name_en)))
            .collect();
        Ok(SiteLabels { zones, categories })
    }
}

impl Labels for SiteLabels {
    fn zone_label(&self, id: &str, lang: Lang) -> String {
        self.zones
            .get(id)
            .map(|(name, t)| t.pick(lang, name).to_owned())
            .unwrap_or_else(|| id.to_owned())
    }
    fn category_label(&self, key: &str, lang: Lang) -> String {
        self.categories
            .get(key)
            .map(|(zh, en)| if lang == Lang::ZhCn { zh } else { en }.clone())
            .unwrap_or_else(|| key.to_owned())
    }
}

/// One line saying what a notice is about, in `lang`, times in `tz`: the inbox's line and a
/// group robot's message.
pub fn summary(lang: Lang, tz: &jiff::tz::TimeZone, names: &dyn Labels, n: &NoticeView) -> String {
    let text = |k: &str| {
        n.data
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let category = names.category_label(&text("category_code"), lang);
    let zone = n
        .zone_id
        .map(|z| names.zone_label(&z.to_string(), lang))
        .unwrap_or_default();
    let deadline = time::OffsetDateTime::parse(
        &text("deadline"),
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| crate::localtime::format(tz, crate::store::ms_from_time(t)))
    .unwrap_or_default();
    let points = n
        .data
        .get("weighted_points")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let key = format!("notice-{}", n.kind.replace('.', "-"));
    i18n::lookup(
        lang,
        &key,
        &[
            ("category", &category),
            ("zone", &zone),
            ("deadline", &deadline),
            ("points", &points),
            ("rule", &text("rule_code")),
            ("reason", &text("reason")),
            ("period", &text("period_code")),
            ("source", &i18n::name(lang, "source", &text("source"))),
        ],
    )
    .unwrap_or(key)
}

/// One page of a user's inbox.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboxPage {
    pub items: Vec<NoticeView>,
    pub unread: i64,
    /// Pass as `before` for the next (older) page; `null` at the end.
    pub next: Option<String>,
}

/// The user's own notices, newest first.
pub async fn inbox(
    db: &Db,
    user: &AuthUser,
    unread_only: bool,
    before: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<InboxPage> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 200"));
    }
    let before = before
        .map(|b| {
            b.split_once(':')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, Uuid::parse_str(id).ok()?)))
                .ok_or_else(|| ApiError::invalid("before", "a cursor from `next`"))
        })
        .transpose()?;
    let rows = store::inbox(&db.pool, user.user_id, unread_only, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<NoticeView> = rows.iter().take(limit as usize).map(inbox_view).collect();
    let next = if more {
        rows.get(limit as usize - 1)
            .map(|r| format!("{}:{}", r.notice.created_at, r.notice.id))
    } else {
        None
    };
    Ok(InboxPage {
        unread: store::unread_count(&db.pool, user.user_id).await?,
        items,
        next,
    })
}

/// The read receipt: `user` has read notice `id` (their own; anyone else's is not found). The
/// first reading counts, here or on a phone (`notice.read@1`); a new one reaches the user's
/// phones on their next pull.
pub async fn mark_read(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<()> {
    let mut tx = db.begin_write().await?;
    match store::read_receipt(tx.conn(), user.user_id, id, now_ms()).await? {
        ReadReceipt::NotInInbox => return Err(ApiError::not_found("notice")),
        ReadReceipt::AlreadyRead => {}
        ReadReceipt::Recorded => {
            changes::append(tx.conn(), &[PendingChange::inbox(id, user.user_id)]).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Whether a notice of `kind` is one its recipient acknowledges (an escalation).
pub fn is_acknowledged_kind(kind: &str) -> bool {
    store::ACKNOWLEDGED_KINDS.contains(&kind)
}

/// The acknowledgement: `user` knows of escalation notice `id` (their own; anyone else's is not
/// found). It also counts as reading it, and reaches the user's phones on their next pull.
/// Acknowledging again changes nothing.
pub async fn acknowledge(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<()> {
    let mut tx = db.begin_write().await?;
    let kind = store::kind_in_inbox(tx.conn(), user.user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("notice"))?;
    if !is_acknowledged_kind(&kind) {
        return Err(ApiError::invalid(
            "id",
            "only an escalation notice (case.due_soon, case.overdue) is acknowledged",
        ));
    }
    if !store::acknowledge(tx.conn(), user.user_id, id, now_ms()).await? {
        return Err(ApiError::not_found("notice"));
    }
    changes::append(tx.conn(), &[PendingChange::inbox(id, user.user_id)]).await?;
    tx.commit().await?;
    Ok(())
}

// ---- webhook subscriptions ----------------------------------------------------------------------

/// A new subscription.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where notices are POSTed (`http://` or `https://`).
    pub url: String,
    /// Notice kinds to send; omitted or empty: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// What the receiver understands: `standard` (Standard Webhooks, the default), `wecom` or
    /// `dingtalk` (a group robot's webhook URL, sent a text message in the site's language).
    #[serde(default)]
    pub format: WebhookFormat,
    /// `dingtalk` only, required: the robot's signing secret (`SEC…`, its 加签 setting).
    /// A `standard` subscription's secret is made by the server and shown once.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A subscription as listed (the secret is shown once, at creation).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub format: WebhookFormat,
    pub kinds: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<time::OffsetDateTime>,
    /// The signing secret (`whsec_…`, Standard Webhooks); only in the answer that creates a
    /// `standard` subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn webhook_view(w: &WebhookRow, secret: bool) -> Webhook {
    Webhook {
        id: w.id,
        url: w.url.clone(),
        format: w.format,
        kinds: w.kinds.clone(),
        created_at: crate::store::time_from_ms(w.created_at),
        disabled_at: w.disabled_at.map(crate::store::time_from_ms),
        secret: (secret && w.format == WebhookFormat::Standard).then(|| w.secret.clone()),
    }
}

/// Subscribes `input.url` to notices (admins only, audited); the answer holds the secret.
pub async fn create_webhook(db: &Db, admin: &AuthUser, input: WebhookInput) -> ApiResult<Webhook> {
    admin.require_admin()?;
    let url = input.url.trim();
    let parsed = reqwest::Url::parse(url).map_err(|_| ApiError::invalid("url", "not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || url.len() > 2000 {
        return Err(ApiError::invalid(
            "url",
            "an http:// or https:// URL of at most 2000 characters",
        ));
    }
    for k in &input.kinds {
        if NoticeKind::parse(k).is_none() {
            return Err(ApiError::invalid("kinds", format!("unknown kind {k:?}")));
        }
    }
    let given = input.secret.as_deref().map(str::trim).unwrap_or("");
    let secret = match input.format {
        WebhookFormat::Standard | WebhookFormat::Wecom if !given.is_empty() => {
            return Err(ApiError::invalid(
                "secret",
                "only a dingtalk robot takes a secret: a standard subscription's is made here, \
                 a WeCom robot's key is in its URL",
            ));
        }
        WebhookFormat::Standard => {
            use base64::Engine;
            use rand::RngCore;
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            )
        }
        WebhookFormat::Wecom => String::new(),
        WebhookFormat::Dingtalk => {
            if given.is_empty() || given.len() > 200 || !given.is_ascii() {
                return Err(ApiError::invalid(
                    "secret",
                    "a DingTalk robot needs its signing secret (SEC…), at most 200 characters",
                ));
            }
            given.to_owned()
        }
    };
    let row = WebhookRow {
        id: new_id(),
        url: url.to_owned(),
        format: input.format,
        secret,
        kinds: input.kinds,
        created_at: now_ms(),
        disabled_at: None,
    };
    let mut tx = db.begin_write().await?;
    store::insert_webhook(tx.conn(), &row, admin.user_id).await?;
    let shown = webhook_view(&row, false);
    audit::record(
        tx.conn(),
        Some(admin.user_id),
        "webhook.create",
        "webhook",
        &row.id.to_string(),
        None::<&()>,
        Some(&shown),
    )
    .await?;
    tx.commit().await?;
    Ok(webhook_view(&row, true))
}

pub async fn webhooks(db: &Db, admin: &AuthUser) -> ApiResult<Vec<Webhook>> {
    admin.require_admin()?;
    Ok(store::webhooks(&db.pool)
        .await?
        .iter()
        .map(|w| webhook_view(w, false))
        .collect())
}

/// Stops a subscription (admins only, audited); what it had not yet received is not sent.
pub async fn disable_webhook(db: &Db, admin: &AuthUser, id: Uuid) -> ApiResult<()> {
    admin.require_admin()?;
    let mut tx = db.begin_write().await?;
    if !store::disable_webhook(tx.conn(), id, now_ms()).await? {
        return Err(ApiError::not_found("webhook"));
    }
    audit::record(
        tx.conn(),
        Some(admin.user_id),
        "webhook.disable",
        "webhook",
        &id.to_string(),
        None::<&()>,
        None::<&()>,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- delivery -----------------------------------------------------------------------------------

/// Waits after failed attempts 1, 2, …; after the last the delivery is given up.
pub const RETRY_DELAYS_MS: &[i64] = &[5_000, 30_000, 120_000, 600_000, 3_600_000, 6 * 3_600_000];

/// How long a claim lasts: a worker that has not finished by then (killed, stuck) loses it.
const CLAIM_MS: i64 = 60_000;

/// How many deliveries one pass claims.
const BATCH: i64 = 32;

/// The body a webhook receives: the notice, as the inbox shows it, without a read time.
pub fn webhook_body(n: &NoticeRow) -> String {
    let mut v = serde_json::to_value(view(n, None)).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("read_at");
        o.remove("acknowledged_at");
        o.insert("type".into(), json!(n.kind));
        o.insert("timestamp".into(), json!(rfc3339(n.created_at)));
    }
    v.to_string()
}

/// Sends one claimed delivery; `Err` says why it failed. `text` is the notice in words, for a
/// group robot.
async fn send(http: &reqwest::Client, c: &store::Claimed, text: &str) -> Result<(), String> {
    match c.format {
        WebhookFormat::Standard => send_standard(http, c).await,
        WebhookFormat::Wecom => send_robot(http, &c.url, text).await,
        WebhookFormat::Dingtalk => {
            send_robot(http, &dingtalk_url(&c.url, &c.secret, now_ms())?, text).await
        }
    }
}

async fn send_standard(http: &reqwest::Client, c: &store::Claimed) -> Result<(), String> {
    let body = webhook_body(&c.notice);
    let msg_id = c.notice.id.to_string();
    let ts = now_ms() / 1000;
    let signature = standardwebhooks::Webhook::new(&c.secret)
        .and_then(|w| w.sign(&msg_id, ts, body.as_bytes()))
        .map_err(|e| format!("signing: {e}"))?;
    let resp = http
        .post(&c.url)
        .header("content-type", "application/json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, &msg_id)
        .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, ts.to_string())
        .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", resp.status()))
    }
}

/// The most a robot message carries, in bytes: WeCom refuses a text over 2,048.
const ROBOT_TEXT_BYTES: usize = 2000;

/// The body of a WeCom or DingTalk group robot's text message (the two take the same shape).
pub fn robot_body(text: &str) -> String {
    let mut end = text.len().min(ROBOT_TEXT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({"msgtype": "text", "text": {"content": &text[..end]}}).to_string()
}

/// Posts a text message to a group robot. Both services answer 200 with `errcode` 0 when
/// they took it, and 200 with another `errcode` (a bad key, a bad signature, too many
/// messages a minute) when they did not.
async fn send_robot(http: &reqwest::Client, url: &str, text: &str) -> Result<(), String> {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(robot_body(text))
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    let answer: Value = resp
        .json()
        .await
        .map_err(|e| format!("an answer that is not JSON: {e}"))?;
    match answer.get("errcode").and_then(Value::as_i64) {
        Some(0) => Ok(()),
        Some(code) => Err(format!(
            "robot refused it: errcode {code}, {}",
            answer.get("errmsg").and_then(Value::as_str).unwrap_or("")
        )),
        None => Err(format!("an answer without errcode: {answer}")),
    }
}

/// A DingTalk robot's URL signed for `ts_ms` (its 加签 scheme): `timestamp` and `sign`, the
/// Base64 HMAC-SHA256 under the robot's secret of the timestamp, a newline and the secret,
/// added to the query. DingTalk refuses a signature more than an hour old.
pub fn dingtalk_url(url: &str, secret: &str, ts_ms: i64) -> Result<String, String> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| format!("signing: {e}"))?;
    mac.update(format!("{ts_ms}\n{secret}").as_bytes());
    let sign = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut signed = reqwest::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    signed
        .query_pairs_mut()
        .append_pair("timestamp", &ts_ms.to_string())
        .append_pair("sign", &sign);
    Ok(signed.into())
}

/// One pass of the outbox: claims what is due and sends it. Returns how many were sent.
/// Robots' messages are worded in the site's language and time zone.
pub async fn deliver_due(
    db: &Db,
    http: &reqwest::Client,
    site: &SiteConfig,
) -> Result<usize, sqlx::Error> {
    let now = now_ms();
    if !store::any_due(&db.pool, Outbox::Webhooks, now).await? {
        return Ok(0);
    }
    let claim = new_id();
    let claimed = {
        let mut tx = db.begin_write().await?;
        let c = store::claim_due(tx.conn(), now, now + CLAIM_MS, claim, BATCH).await?;
        tx.commit().await?;
        c
    };
    let texts: Vec<String> = if claimed.iter().any(|c| c.format != WebhookFormat::Standard) {
        let names = SiteLabels::load(db).await?;
        let tz = site.tz();
        claimed
            .iter()
            .map(|c| {
                format!(
                    "[Gridline] {}",
                    summary(site.language, &tz, &names, &view(&c.notice, None))
                )
            })
            .collect()
    } else {
        vec![String::new(); claimed.len()]
    };
    let mut sent = 0;
    let outcomes =
        futures::future::join_all(claimed.iter().zip(&texts).map(|(c, t)| send(http, c, t))).await;
    for (c, outcome) in claimed.iter().zip(outcomes) {
        let outcome = outcome.map_err(|why| (why, false));
        sent += usize::from(settle(db, Outbox::Webhooks, c.id, claim, c.attempts, outcome).await?);
    }
    Ok(sent)
}

/// Records how an attempt at delivery `id` went: sent; or, failed, due again after the next
/// of [`RETRY_DELAYS_MS`], or given up when those are spent or the failure is `permanent`.
/// Returns whether it was sent.
async fn settle(
    db: &Db,
    outbox: Outbox,
    id: Uuid,
    claim: Uuid,
    attempts: i64,
    outcome: Result<(), (String, bool)>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let sent = match outcome {
        Ok(()) => {
            store::mark_sent(tx.conn(), outbox, id, claim, now_ms()).await?;
            true
        }
        Err((why, permanent)) => {
            let next = RETRY_DELAYS_MS
                .get(attempts.saturating_sub(1) as usize)
                .filter(|_| !permanent)
                .map(|d| now_ms() + d);
            if next.is_none() {
                tracing::warn!(delivery = %id, ?outbox, error = %why, "delivery given up");
            }
            store::mark_failed(tx.conn(), outbox, id, claim, &why, next).await?;
            false
        }
    };
    tx.commit().await?;
    Ok(sent)
}

/// The SMTP server and sender of email notices.
pub struct Mailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Mailer {
    /// From the `notifications.smtp` settings (checked when the configuration loads).
    pub fn new(smtp: &SmtpConfig) -> Result<Mailer, String> {
        let transport =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(smtp.url.expose())
                .map_err(|e| format!("notifications.smtp.url: {e}"))?
                .timeout(Some(Duration::from_secs(20)))
                .build();
        let from = smtp
            .from
            .parse()
            .map_err(|e| format!("notifications.smtp.from: {e}"))?;
        Ok(Mailer { transport, from })
    }

    /// The sender of every mail.
    pub fn from(&self) -> &lettre::message::Mailbox {
        &self.from
    }

    /// Sends `message`; `Err` says why not, and whether the failure is permanent.
    pub async fn send(&self, message: lettre::Message) -> Result<(), (String, bool)> {
        use lettre::AsyncTransport;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| (format!("smtp: {e}"), e.is_permanent()))
    }
}

/// The mail of a notice to `to`: the notice in words as subject and body, in the site's
/// language, with a `Message-ID` made of the notice and the recipient, so that a mail sent
/// again after a lost answer is recognisably the same one.
pub fn email_message(
    from: &lettre::message::Mailbox,
    to: &str,
    user: Uuid,
    text: &str,
    notice: &NoticeRow,
    site: &SiteConfig,
) -> Result<lettre::Message, String> {
    let to: lettre::message::Mailbox = to.parse().map_err(|e| format!("address: {e}"))?;
    let when = crate::localtime::format(&site.tz(), notice.created_at);
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!("[Gridline] {text}"))
        .message_id(Some(format!("<{}.{}@gridline>", notice.id, user)))
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(format!("{text}\n\n{when} · {}\n", notice.kind))
        .map_err(|e| format!("message: {e}"))
}

/// One pass of the email outbox: claims the due mails and sends them through `mailer`. With
/// no SMTP server configured, each due mail is recorded as failed at once, saying so (so
/// `/metrics` shows what was owed and not sent, and configuring a server later sends no
/// backlog of old notices).
pub async fn deliver_emails(
    db: &Db,
    mailer: Option<&Mailer>,
    site: &SiteConfig,
) -> Result<usize, sqlx::Error> {
    deliver_emails_at(db, mailer, site, now_ms()).await
}

/// [`deliver_emails`] as of the instant `now`. A mail whose recipient is in their quiet hours
/// then is held until the hours end (`store::notice_settings::hold_quiet_emails`).
pub async fn deliver_emails_at(
    db: &Db,
    mailer: Option<&Mailer>,
    site: &SiteConfig,
    now: i64,
) -> Result<usize, sqlx::Error> {
    use lettre::AsyncTransport;
    if !store::any_due(&db.pool, Outbox::Emails, now).await? {
        return Ok(0);
    }
    let claim = new_id();
    let claimed = {
        let mut tx = db.begin_write().await?;
        let c = store::claim_emails(tx.conn(), now, now + CLAIM_MS, claim, BATCH).await?;
        let tz = site.tz();
        let c =
            crate::store::notice_settings::hold_quiet_emails(tx.conn(), c, claim, &tz, now).await?;
        tx.commit().await?;
        c
    };
    let labels = SiteLabels::load(db).await?;
    let tz = site.tz();
    let mut sent = 0;
    for c in &claimed {
        let outcome = match mailer {
            None => Err((
                "no SMTP server is configured (notifications.smtp)".to_owned(),
                true,
            )),
            Some(m) => {
                let text = summary(site.language, &tz, &labels, &view(&c.notice, None));
                match email_message(&m.from, &c.address, c.user_id, &text, &c.notice, site) {
                    Err(why) => Err((why, true)),
                    Ok(message) => m
                        .transport
                        .send(message)
                        .await
                        .map(|_| ())
                        .map_err(|e| (format!("smtp: {e}"), e.is_permanent())),
                }
            }
        };
        sent += usize::from(settle(db, Outbox::Emails, c.id, claim, c.attempts, outcome).await?);
    }
    Ok(sent)
}

// ---- escalation -------------------------------------------------------------------------------

/// Who is told at the first, second and third mark of a time limit (and any later one): the
/// section chiefs, then the road chiefs, then the zone chiefs of the case's zone (a chief
/// rostered on every zone included), as the roster stood when the case was dispatched.
const ESCALATION: [Role; 3] = [Role::SectionChief, Role::RoadChief, Role::ZoneChief];

/// What an escalation pass does: the marks of a time limit at which the chiefs are told
/// (`notifications.escalation_marks_pct`), the working week those marks are placed on for a
/// limit in working time (`calendar`), and the rule an overdue case is proposed under for a
/// deduction for lateness (`notifications.overdue_rule_code`; empty: none).
#[derive(Debug, Clone)]
pub struct Escalation {
    pub marks_pct: Vec<u32>,
    pub week: WorkWeek,
    pub overdue_rule: String,
}

impl Escalation {
    /// As the configuration sets it.
    pub fn of(config: &crate::config::Config) -> Escalation {
        Escalation {
            marks_pct: config.notifications.escalation_marks_pct.clone(),
            week: config.work_week(),
            overdue_rule: config.notifications.overdue_rule_code.clone(),
        }
    }
}

impl Default for Escalation {
    /// As the default configuration sets it: 50, 100 and 150 %, 08:30–17:30 on weekdays in
    /// Asia/Shanghai, the `OVERDUE` rule.
    fn default() -> Escalation {
        Escalation::of(&crate::config::Config::default())
    }
}

/// One pass of escalation: for each mark of `marks_pct` (percentages of a dispatched case's
/// time limit; under 100 "due soon", from 100 "overdue") the cases still being rectified that
/// have passed it untold get a notice, to the people of the mark's step in `ESCALATION` (or,
/// when nobody holds that role, the next step up). Taking a mark and recording its notice are
/// one transaction, so each case is told of each mark once, whichever instance does it. The
/// first mark from 100 % a case passes also proposes it for a deduction for lateness, in the
/// same transaction ([`propose_lateness`]).
///
/// A limit in working time has its marks placed on the site's calendar (`week` and the
/// holidays stored) as it stands at the pass; its 100 % mark is the deadline fixed at
/// dispatch, and no other mark crosses it. Returns how many notices were recorded.
pub async fn escalate_due(db: &Db, esc: &Escalation, now: i64) -> Result<usize, sqlx::Error> {
    let mut marks: Vec<i64> = esc.marks_pct.iter().map(|m| i64::from(*m)).collect();
    marks.sort_unstable();
    marks.dedup();
    let mut calendar: Option<WorkCalendar> = None;
    // The rulebook in force, read once a pass and only when a case is overdue.
    let mut rulebook: Option<Option<crate::model::Rulebook>> = None;
    let mut told = 0;
    for (step, mark) in marks.iter().enumerate() {
        let lateness = *mark >= 100 && !esc.overdue_rule.is_empty();
        let mut after = None;
        loop {
            let page = store::due_marks(&db.pool, *mark, now, after, BATCH).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some((last.deadline_at, last.case_id));
            let full = page.len() as i64 == BATCH;
            for due in page {
                if let Some(working) = due.time_limit_working_ms {
                    if calendar.is_none() {
                        calendar = Some(crate::workcalendar::load(&db.pool, &esc.week).await?);
                    }
                    let at = working_mark(calendar.as_ref(), &due, working, *mark);
                    if at > now {
                        continue;
                    }
                }
                if lateness && rulebook.is_none() {
                    rulebook = Some(crate::store::reference::active_rulebook(&db.pool, now).await?);
                }
                let overdue = lateness.then(|| {
                    (
                        rulebook.as_ref().and_then(Option::as_ref),
                        esc.overdue_rule.as_str(),
                    )
                });
                told += usize::from(tell_mark(db, &due, step, *mark, overdue, now).await?);
            }
            if !full {
                break;
            }
        }
    }
    Ok(told)
}

/// When `mark_pct` of a working-time limit falls: on the calendar, the deadline itself at
/// 100 %, never past the deadline before it nor before the deadline after it.
fn working_mark(
    calendar: Option<&WorkCalendar>,
    due: &DueMark,
    working: i64,
    mark_pct: i64,
) -> i64 {
    let Some(calendar) = calendar else {
        return due.deadline_at;
    };
    let at = calendar.after_working(due.dispatched_at, working.saturating_mul(mark_pct) / 100);
    match mark_pct.cmp(&100) {
        std::cmp::Ordering::Less => at.min(due.deadline_at),
        std::cmp::Ordering::Equal => due.deadline_at,
        std::cmp::Ordering::Greater => at.max(due.deadline_at),
    }
}

/// Takes `mark` of `due` and records its notice, and with `overdue` (the rulebook in force and
/// the rule) proposes the case for lateness, in one transaction: `false` if another pass took
/// the mark first.
async fn tell_mark(
    db: &Db,
    due: &DueMark,
    step: usize,
    mark: i64,
    overdue: Option<(Option<&crate::model::Rulebook>, &str)>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    // Under the case's lock (before the mark's row, whose key refers to the case), the case
    // read again: one rectified, withdrawn or closed since the pass looked is not told.
    crate::store::review::lock_cases(&mut tx, &[due.case_id]).await?;
    let still_open = crate::store::cases::get(tx.conn(), due.case_id)
        .await?
        .is_some_and(|c| matches!(c.state, CaseState::Dispatched | CaseState::InProgress));
    if !still_open || !store::take_mark(tx.conn(), due.case_id, mark, now).await? {
        return Ok(false);
    }
    let mut recipients = Vec::new();
    for role in &ESCALATION[step.min(ESCALATION.len() - 1)..] {
        let people = crate::store::review::roster_at(
            tx.conn(),
            due.zone_id,
            &[*role],
            true,
            due.dispatched_at,
        )
        .await?;
        if !people.is_empty() {
            recipients = people.iter().map(|p| p.user_id).collect();
            break;
        }
    }
    let kind = if mark < 100 {
        NoticeKind::CaseDueSoon
    } else {
        NoticeKind::CaseOverdue
    };
    let recorded = record(
        tx.conn(),
        Notice {
            kind,
            case_id: Some(due.case_id),
            zone_id: Some(due.zone_id),
            data: json!({
                "category_code": due.category_code,
                "deadline": rfc3339(due.deadline_at),
                "dispatched_at": rfc3339(due.dispatched_at),
                "mark_pct": mark,
            }),
            recipients,
        },
        now,
    )
    .await?;
    let mut pending = recorded.changes;
    if let Some((rulebook, rule)) = overdue {
        propose_lateness(&mut tx, due, rulebook, rule, now, &mut pending).await?;
    }
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    Ok(true)
}

/// The automatic proposal of a deduction for lateness, inside the transaction that took a mark
/// from 100 % of `due`: when it is the first such mark the case passed, and the case
/// holds no pending or standing deduction for lateness, the system account
/// (`store::users::SYSTEM_USER_ID`) proposes one under `rule_code` of the rulebook in force,
/// found at the deadline, and the supervisors are told as for any proposal. Exactly once per
/// case: the marks are taken once each, the case is locked before its marks are counted, and a
/// case holds one proposal for lateness at a time (a unique index, the backstop). A rule that is
/// missing or does not apply to the case, or a period that is not open at the deadline, is
/// logged and proposes nothing; the mark's notice stands. Returns the proposal's id.
pub async fn propose_lateness(
    tx: &mut crate::store::WriteTx,
    due: &store::DueMark,
    rulebook: Option<&crate::model::Rulebook>,
    rule_code: &str,
    now: i64,
    pending: &mut Vec<PendingChange>,
) -> Result<Option<Uuid>, sqlx::Error> {
    use crate::model::{Basis, Milli, PeriodStatus, ProposalStatus, Source};
    use crate::store::ledger as ledger_store;
    let case_id = due.case_id;
    crate::store::review::lock_cases(tx, &[case_id]).await?;
    if store::marks_taken_from(tx.conn(), case_id, 100).await? > 1 {
        // An earlier mark from 100 % made the decision (whatever became of its proposal).
        return Ok(None);
    }
    let Some(case) = crate::store::cases::get(tx.conn(), case_id).await? else {
        return Ok(None);
    };
    let source = Source::of_case(&case.source);
    let Some(book) = rulebook else {
        tracing::warn!(case = %case_id, rule = rule_code, "overdue case: no rulebook is in force, no deduction proposed");
        return Ok(None);
    };
    let Some(rule) = book.rules.iter().find(|r| r.code == rule_code) else {
        tracing::warn!(case = %case_id, rule = rule_code, rulebook = book.version,
            "overdue case: the rule is not in the rulebook in force (notifications.overdue_rule_code), no deduction proposed");
        return Ok(None);
    };
    if !rule.applies_to(source, Some(&due.category_code)) {
        tracing::warn!(case = %case_id, rule = rule_code, source = source.as_str(), category = %due.category_code,
            "overdue case: the rule does not apply to the case's source or category, no deduction proposed");
        return Ok(None);
    }
    let period = match ledger_store::period_at(tx.conn(), due.deadline_at).await? {
        Some((id, PeriodStatus::Open)) => id,
        _ => {
            tracing::warn!(case = %case_id, deadline = due.deadline_at,
                "overdue case: no open period covers the deadline, no deduction proposed");
            return Ok(None);
        }
    };
    if let Some((held_by, _)) =
        ledger_store::open_proposal_of_case(tx.conn(), case_id, Basis::Lateness).await?
    {
        tracing::debug!(case = %case_id, proposal = %held_by, "overdue case already holds a deduction for lateness");
        return Ok(None);
    }
    // Under the period's lock, as every proposal: a close in flight sees it pending.
    if ledger_store::lock_period(tx, period).await? != Some(PeriodStatus::Open) {
        return Ok(None);
    }
    let system = crate::store::users::SYSTEM_USER_ID;
    let row = ledger_store::ProposalRow {
        id: new_id(),
        case_id: Some(case_id),
        zone_id: case.zone_id,
        period_id: period,
        source: source.as_str().to_owned(),
        rulebook_id: book.id,
        rule_code: rule.code.clone(),
        raw_points_milli: Milli::from_f64(rule.points, 1000.0).unwrap_or(0),
        category_code: Some(due.category_code.clone()),
        found_at: due.deadline_at,
        note: String::new(),
        status: ProposalStatus::Proposed,
        proposed_by: system,
        proposed_at: now,
        decided_by: None,
        decided_at: None,
        reason: None,
        ledger_entry_id: None,
        request_sha256: None,
        basis: Basis::Lateness,
    };
    if !ledger_store::insert_proposal_if_free(tx.conn(), &row).await? {
        return Ok(None);
    }
    let data = json!({
        "proposal_id": row.id,
        "rule_code": row.rule_code,
        "source": row.source,
        "raw_points": Milli::to_f64(row.raw_points_milli),
        "category_code": row.category_code,
        "period_id": row.period_id,
        "proposed_by": system,
        "basis": row.basis,
    });
    let deciders = crate::store::users::with_role(tx.conn(), Role::Supervisor).await?;
    let recorded = record(
        tx.conn(),
        Notice {
            kind: NoticeKind::DeductionProposed,
            case_id: Some(case_id),
            zone_id: Some(row.zone_id),
            data: data.clone(),
            recipients: deciders,
        },
        now,
    )
    .await?;
    pending.extend(recorded.changes);
    audit::record(
        tx.conn(),
        Some(system),
        "deduction.propose",
        "deduction_proposal",
        &row.id.to_string(),
        None::<&()>,
        Some(&data),
    )
    .await?;
    tracing::info!(case = %case_id, proposal = %row.id, rule = rule_code, "overdue case proposed for a deduction for lateness");
    Ok(Some(row.id))
}

/// Runs [`deliver_due`] and [`deliver_emails`] every `notifications.poll_ms` (sooner again
/// while there is a backlog) and [`escalate_due`] every `notifications.escalation_poll_ms`,
/// until aborted.
pub fn spawn_delivery(
    db: Db,
    site: SiteConfig,
    escalation: Escalation,
    notifications: NotificationsConfig,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(notifications.poll_ms);
    let escalate_every = Duration::from_millis(notifications.escalation_poll_ms);
    let smtp = notifications.smtp.clone();
    tokio::spawn(async move {
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "webhook delivery cannot start");
                return;
            }
        };
        let mailer = match smtp.as_ref().map(Mailer::new).transpose() {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "email delivery cannot start");
                None
            }
        };
        let mut escalated_at: Option<tokio::time::Instant> = None;
        loop {
            if escalated_at.is_none_or(|at| at.elapsed() >= escalate_every) {
                escalated_at = Some(tokio::time::Instant::now());
                if let Err(e) = escalate_due(&db, &escalation, now_ms()).await {
                    tracing::warn!(error = %e, "escalation pass failed");
                }
            }
            let webhooks = match deliver_due(&db, &http, &site).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery pass failed");
                    0
                }
            };
            let emails = match deliver_emails(&db, mailer.as_ref(), &site).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "email delivery pass failed");
                    0
                }
            };
            if webhooks as i64 >= BATCH || emails as i64 >= BATCH {
                continue;
            }
            tokio::time::sleep(every).await;
        }
    })
}
