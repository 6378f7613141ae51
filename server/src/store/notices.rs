//! Notices, the inbox, webhook subscriptions and the delivery outbox (`notices`, `inbox`,
//! `webhooks`, `deliveries`).

use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, Executor, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use super::json_rows::Cols;

type R<T> = Result<T, sqlx::Error>;

/// A notice as stored.
#[derive(Debug, Clone)]
pub struct NoticeRow {
    pub id: Uuid,
    pub kind: String,
    pub case_id: Option<Uuid>,
    pub zone_id: Option<Uuid>,
    /// JSON.
    pub data: String,
    pub created_at: i64,
}

pub async fn insert(conn: &mut AnyConnection, n: &NoticeRow, recipients: &[Uuid]) -> R<()> {
    sqlx::query(
        "INSERT INTO notices (id, kind, case_id, zone_id, data, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(n.id.to_string())
    .bind(&n.kind)
    .bind(n.case_id.map(|c| c.to_string()))
    .bind(n.zone_id.map(|z| z.to_string()))
    .bind(&n.data)
    .bind(n.created_at)
    .execute(&mut *conn)
    .await?;
    for user in recipients {
        sqlx::query("INSERT INTO inbox (notice_id, user_id) VALUES ($1, $2)")
            .bind(n.id.to_string())
            .bind(user.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A notice in someone's inbox.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub notice: NoticeRow,
    pub read_at: Option<i64>,
    /// When they acknowledged it (escalation notices only).
    pub acknowledged_at: Option<i64>,
}

pub(crate) fn notice_from(r: &sqlx::any::AnyRow) -> R<NoticeRow> {
    let uuid_opt = |col: &str| -> R<Option<Uuid>> {
        let text: Option<String> = r.try_get(col)?;
        text.map(|t| Uuid::parse_str(&t).map_err(|_| super::unknown_value(col, &t)))
            .transpose()
    };
    Ok(NoticeRow {
        id: r.uuid("id")?,
        kind: r.try_get("kind")?,
        case_id: uuid_opt("case_id")?,
        zone_id: uuid_opt("zone_id")?,
        data: r.try_get("data")?,
        created_at: r.try_get("created_at")?,
    })
}

/// `user`'s notices, newest first, after `before` in that order (a cursor: the `created_at`
/// and id of the last one seen, so notices of the same millisecond are neither skipped nor
/// repeated), at most `limit`; only unread ones with `unread`.
pub async fn inbox<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user: Uuid,
    unread: bool,
    before: Option<(i64, Uuid)>,
    limit: i64,
) -> R<Vec<InboxRow>> {
    let rows = sqlx::query(
        "SELECT n.id, n.kind, n.case_id, n.zone_id, n.data, n.created_at, i.read_at, \
         i.acknowledged_at \
         FROM inbox i JOIN notices n ON n.id = i.notice_id \
         WHERE i.user_id = $1 AND ($2 = 0 OR i.read_at IS NULL) \
           AND ($3 IS NULL OR n.created_at < $3 OR (n.created_at = $3 AND n.id < $5)) \
         ORDER BY n.created_at DESC, n.id DESC LIMIT $4",
    )
    .bind(user.to_string())
    .bind(i64::from(unread))
    .bind(before.map(|b| b.0))
    .bind(limit)
    .bind(before.map(|b| b.1.to_string()))
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(InboxRow {
                notice: notice_from(r)?,
                read_at: r.try_get("read_at")?,
                acknowledged_at: r.try_get("acknowledged_at")?,
            })
        })
        .collect()
}

/// How many notices `user` has not read.
pub async fn unread_count<'c, E: Executor<'c, Database = Any>>(e: E, user: Uuid) -> R<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE user_id = $1 AND read_at IS NULL")
        .bind(user.to_string())
        .fetch_one(e)
        .await
}

/// What a read receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadReceipt {
    /// The notice is not in the user's inbox.
    NotInInbox,
    /// This receipt recorded the reading.
    Recorded,
    /// The notice was read before; the first reading stands.
    AlreadyRead,
}

/// Records that `user` read notice `id` at `at`, unless an earlier reading stands (the first
/// one counts, whether it came from the console, the API or a phone).
pub async fn read_receipt(
    conn: &mut AnyConnection,
    user: Uuid,
    id: Uuid,
    at: i64,
) -> R<ReadReceipt> {
    let done = sqlx::query(
        "UPDATE inbox SET read_at = $1 WHERE user_id = $2 AND notice_id = $3 AND read_at IS NULL",
    )
    .bind(at)
    .bind(user.to_string())
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(ReadReceipt::Recorded);
    }
    let known: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM inbox WHERE user_id = $1 AND notice_id = $2")
            .bind(user.to_string())
            .bind(id.to_string())
            .fetch_optional(conn)
            .await?;
    Ok(match known {
        Some(_) => ReadReceipt::AlreadyRead,
        None => ReadReceipt::NotInInbox,
    })
}

/// The notices among `ids` that are in `user`'s inbox, with their read receipts (the pull
/// renders them; a push checks a phone's receipts against them).
pub async fn inbox_entries(conn: &mut AnyConnection, user: Uuid, ids: &[Uuid]) -> R<Vec<InboxRow>> {
    let mut out = Vec::with_capacity(ids.len());
    let user = user.to_string();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT n.id, n.kind, n.case_id, n.zone_id, n.data, n.created_at, i.read_at, \
             i.acknowledged_at, i.user_id \
             FROM inbox i JOIN notices n ON n.id = i.notice_id \
             WHERE i.user_id = $1 AND i.notice_id IN ({})",
            super::placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(user.clone());
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            if r.try_get::<String, _>("user_id")? == user {
                out.push(InboxRow {
                    notice: notice_from(&r)?,
                    read_at: r.try_get("read_at")?,
                    acknowledged_at: r.try_get("acknowledged_at")?,
                });
            }
        }
    }
    Ok(out)
}

/// The notice kinds a recipient acknowledges: the escalations of a case's time limit.
pub const ACKNOWLEDGED_KINDS: &[&str] = &["case.due_soon", "case.overdue"];

/// The kind of notice `id` in `user`'s inbox; `None` if it is not in their inbox.
pub async fn kind_in_inbox(conn: &mut AnyConnection, user: Uuid, id: Uuid) -> R<Option<String>> {
    sqlx::query_scalar(
        "SELECT n.kind FROM inbox i JOIN notices n ON n.id = i.notice_id \
         WHERE i.user_id = $1 AND i.notice_id = $2",
    )
    .bind(user.to_string())
    .bind(id.to_string())
    .fetch_optional(conn)
    .await
}

/// Records that `user` acknowledged notice `id`, and read it if they had not (the first time
/// counts for each); `false` if the notice is not in their inbox.
pub async fn acknowledge(conn: &mut AnyConnection, user: Uuid, id: Uuid, now: i64) -> R<bool> {
    sqlx::query(
        "UPDATE inbox SET read_at = COALESCE(read_at, $1), \
         acknowledged_at = COALESCE(acknowledged_at, $1) WHERE user_id = $2 AND notice_id = $3",
    )
    .bind(now)
    .bind(user.to_string())
    .bind(id.to_string())
    .execute(conn)
    .await
    .map(|d| d.rows_affected() == 1)
}

/// One recipient of one escalation notice of a case, with their receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationReceipt {
    pub notice_id: Uuid,
    pub kind: String,
    /// The notice's `data.mark_pct`.
    pub mark_pct: i64,
    pub recorded_at: i64,
    pub user_id: Uuid,
    pub read_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
}

/// Every recipient of every escalation notice (`case.due_soon`, `case.overdue`) of `case`,
/// oldest notice first.
pub async fn escalation_receipts(
    conn: &mut AnyConnection,
    case: Uuid,
) -> R<Vec<EscalationReceipt>> {
    let rows = sqlx::query(
        "SELECT n.id, n.kind, n.data, n.created_at, i.user_id, i.read_at, i.acknowledged_at \
         FROM notices n JOIN inbox i ON i.notice_id = n.id \
         WHERE n.case_id = $1 AND n.kind IN ('case.due_soon', 'case.overdue') \
         ORDER BY n.created_at, n.id, i.user_id",
    )
    .bind(case.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let data: String = r.try_get("data")?;
            let mark_pct = serde_json::from_str::<serde_json::Value>(&data)
                .ok()
                .and_then(|d| d.get("mark_pct").and_then(serde_json::Value::as_i64))
                .ok_or_else(|| super::unknown_value("notices.data", &data))?;
            Ok(EscalationReceipt {
                notice_id: r.uuid("id")?,
                kind: r.try_get("kind")?,
                mark_pct,
                recorded_at: r.try_get("created_at")?,
                user_id: r.uuid("user_id")?,
                read_at: r.try_get("read_at")?,
                acknowledged_at: r.try_get("acknowledged_at")?,
            })
        })
        .collect()
}

/// What a subscription's receiver understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Standard Webhooks: the notice as JSON, signed in the `webhook-*` headers.
    #[default]
    Standard,
    /// A WeCom (企业微信) group robot: a text message; the robot's key is in its URL.
    Wecom,
    /// A DingTalk (钉钉) group robot: a text message; the URL is signed with the robot's secret.
    Dingtalk,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Standard => "standard",
            WebhookFormat::Wecom => "wecom",
            WebhookFormat::Dingtalk => "dingtalk",
        }
    }

    fn parse(s: &str) -> R<WebhookFormat> {
        [
            WebhookFormat::Standard,
            WebhookFormat::Wecom,
            WebhookFormat::Dingtalk,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
        .ok_or_else(|| super::unknown_value("format", s))
    }
}

/// A webhook subscription.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: Uuid,
    pub url: String,
    pub format: WebhookFormat,
    /// The Standard Webhooks secret (`whsec_…`), the DingTalk robot's secret, or empty.
    pub secret: String,
    /// Notice kinds it receives; empty: every kind.
    pub kinds: Vec<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

fn webhook_from(r: &sqlx::any::AnyRow) -> R<WebhookRow> {
    let kinds: String = r.try_get("kinds")?;
    Ok(WebhookRow {
        id: r.uuid("id")?,
        url: r.try_get("url")?,
        format: WebhookFormat::parse(&r.try_get::<String, _>("format")?)?,
        secret: r.try_get("secret")?,
        kinds: serde_json::from_str(&kinds).map_err(|_| super::unknown_value("kinds", &kinds))?,
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
    })
}

pub async fn insert_webhook(conn: &mut AnyConnection, w: &WebhookRow, by: Uuid) -> R<()> {
    sqlx::query(
        "INSERT INTO webhooks (id, url, secret, kinds, created_by, created_at, format) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(w.id.to_string())
    .bind(&w.url)
    .bind(&w.secret)
    .bind(serde_json::to_string(&w.kinds).unwrap_or_else(|_| "[]".into()))
    .bind(by.to_string())
    .bind(w.created_at)
    .bind(w.format.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn webhooks<'c, E: Executor<'c, Database = Any>>(e: E) -> R<Vec<WebhookRow>> {
    let rows = sqlx::query(
        "SELECT id, url, format, secret, kinds, created_at, disabled_at FROM webhooks \
         ORDER BY created_at",
    )
    .fetch_all(e)
    .await?;
    rows.iter().map(webhook_from).collect()
}

/// Stops a subscription (its pending deliveries are not sent); `false` if there is none open.
pub async fn disable_webhook(conn: &mut AnyConnection, id: Uuid, now: i64) -> R<bool> {
    let done =
        sqlx::query("UPDATE webhooks SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', last_error = 'subscription disabled' \
         WHERE webhook_id = $1 AND status = 'pending'",
    )
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Queues notice `notice` for every open subscription that wants its `kind`.
pub async fn queue_deliveries(
    conn: &mut AnyConnection,
    notice: Uuid,
    kind: &str,
    now: i64,
) -> R<usize> {
    let subs: Vec<WebhookRow> = webhooks(&mut *conn)
        .await?
        .into_iter()
        .filter(|w| {
            w.disabled_at.is_none() && (w.kinds.is_empty() || w.kinds.iter().any(|k| k == kind))
        })
        .collect();
    for w in &subs {
        sqlx::query(
            "INSERT INTO deliveries (id, notice_id, webhook_id, status, attempts, next_at, created_at) \
             VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
        )
        .bind(super::new_id().to_string())
        .bind(notice.to_string())
        .bind(w.id.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(subs.len())
}

/// The two outboxes: webhook and robot deliveries (`deliveries`), and mails
/// (`email_deliveries`). Both are claimed, retried and counted the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    Webhooks,
    Emails,
}

impl Outbox {
    fn table(self) -> &'static str {
        match self {
            Outbox::Webhooks => "deliveries",
            Outbox::Emails => "email_deliveries",
        }
    }
}

/// Whether any delivery of `outbox` is due at `now` (a read, so an idle instance takes no
/// write lock).
pub async fn any_due<'c, E: Executor<'c, Database = Any>>(
    e: E,
    outbox: Outbox,
    now: i64,
) -> R<bool> {
    let found: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM {} WHERE status = 'pending' AND next_at <= $1 \
         AND (locked_until IS NULL OR locked_until < $1) LIMIT 1",
        outbox.table()
    ))
    .bind(now)
    .fetch_optional(e)
    .await?;
    Ok(found.is_some())
}

/// Claims up to `limit` rows of `outbox` that are due at `now` and meet `also` (SQL), until
/// `until`, marking them with `claim`. The condition is repeated outside the subquery so that
/// PostgreSQL re-checks it on a row another instance claimed first: a row is claimed by one
/// instance only.
async fn mark_claimed(
    conn: &mut AnyConnection,
    outbox: Outbox,
    also: &str,
    now: i64,
    until: i64,
    claim: Uuid,
    limit: i64,
) -> R<()> {
    let table = outbox.table();
    let due = format!(
        "status = 'pending' AND next_at <= $1 \
         AND (locked_until IS NULL OR locked_until < $1) AND {also}"
    );
    sqlx::query(&format!(
        "UPDATE {table} SET locked_until = $2, claimed_by = $3, attempts = attempts + 1 \
         WHERE {due} AND id IN (SELECT id FROM {table} WHERE {due} ORDER BY next_at LIMIT $4)"
    ))
    .bind(now)
    .bind(until)
    .bind(claim.to_string())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(())
}

/// A delivery claimed for sending, with what it sends and where.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub attempts: i64,
    pub notice: NoticeRow,
    pub url: String,
    pub format: WebhookFormat,
    pub secret: String,
}

/// Claims up to `limit` due deliveries until `until` (another instance skips them meanwhile);
/// `claim` is a fresh id that marks this claim's rows (see `mark_claimed`).
pub async fn claim_due(
    conn: &mut AnyConnection,
    now: i64,
    until: i64,
    claim: Uuid,
    limit: i64,
) -> R<Vec<Claimed>> {
    let open = "webhook_id IN (SELECT id FROM webhooks WHERE disabled_at IS NULL)";
    mark_claimed(&mut *conn, Outbox::Webhooks, open, now, until, claim, limit).await?;
    let rows = sqlx::query(
        "SELECT d.id AS delivery_id, d.attempts, n.id, n.kind, n.case_id, n.zone_id, n.data, \
                n.created_at, w.url, w.format, w.secret \
         FROM deliveries d JOIN notices n ON n.id = d.notice_id JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.claimed_by = $1 AND d.locked_until = $2",
    )
    .bind(claim.to_string())
    .bind(until)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.uuid("delivery_id")?,
                attempts: r.try_get("attempts")?,
                notice: notice_from(r)?,
                url: r.try_get("url")?,
                format: WebhookFormat::parse(&r.try_get::<String, _>("format")?)?,
                secret: r.try_get("secret")?,
            })
        })
        .collect()
}

/// Marks a delivery sent, if `claim` still holds it (a claim that expired and was taken by
/// another worker leaves the row to that worker); sending it again then is what
/// at-least-once delivery allows, and the receiver drops it by its `webhook-id`.
pub async fn mark_sent(
    conn: &mut AnyConnection,
    outbox: Outbox,
    id: Uuid,
    claim: Uuid,
    now: i64,
) -> R<()> {
    sqlx::query(&format!(
        "UPDATE {} SET status = 'sent', sent_at = $1, locked_until = NULL, last_error = NULL \
         WHERE id = $2 AND claimed_by = $3 AND status = 'pending'",
        outbox.table()
    ))
    .bind(now)
    .bind(id.to_string())
    .bind(claim.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts a failed attempt back for `next_at`, or gives up (`failed`) when `next_at` is `None`;
/// only while `claim` holds it and it is still pending (a disabled subscription's rows stay
/// failed).
pub async fn mark_failed(
    conn: &mut AnyConnection,
    outbox: Outbox,
    id: Uuid,
    claim: Uuid,
    error: &str,
    next_at: Option<i64>,
) -> R<()> {
    sqlx::query(&format!(
        "UPDATE {} SET status = $1, next_at = COALESCE($2, next_at), locked_until = NULL, \
         last_error = $3 WHERE id = $4 AND claimed_by = $5 AND status = 'pending'",
        outbox.table()
    ))
    .bind(if next_at.is_some() {
        "pending"
    } else {
        "failed"
    })
    .bind(next_at)
    .bind(error)
    .bind(id.to_string())
    .bind(claim.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Deliveries of an outbox by status, and the age of the oldest pending one (ms), for
/// `/metrics`.
pub async fn delivery_counts<'c, E: Executor<'c, Database = Any>>(
    e: E,
    outbox: Outbox,
    now: i64,
) -> R<(i64, i64, i64, i64)> {
    let r = sqlx::query(&format!(
        "SELECT \
         COUNT(*) FILTER (WHERE status = 'pending') AS pending, \
         COUNT(*) FILTER (WHERE status = 'sent') AS sent, \
         COUNT(*) FILTER (WHERE status = 'failed') AS failed, \
         MIN(created_at) FILTER (WHERE status = 'pending') AS oldest \
         FROM {}",
        outbox.table()
    ))
    .fetch_one(e)
    .await?;
    let oldest: Option<i64> = r.try_get("oldest")?;
    Ok((
        r.try_get("pending")?,
        r.try_get("sent")?,
        r.try_get("failed")?,
        oldest.map_or(0, |o| (now - o).max(0)),
    ))
}

/// Queues a mail of notice `notice` for each of `recipients` who has an email address and an
/// enabled account, in the notice's transaction.
pub async fn queue_emails(
    conn: &mut AnyConnection,
    notice: Uuid,
    recipients: &[Uuid],
    now: i64,
) -> R<()> {
    for user in recipients {
        sqlx::query(
            "INSERT INTO email_deliveries (id, notice_id, user_id, address, status, attempts, \
               next_at, created_at) \
             SELECT $1, $2, id, email, 'pending', 0, $3, $3 FROM users \
             WHERE id = $4 AND email IS NOT NULL AND disabled_at IS NULL",
        )
        .bind(super::new_id().to_string())
        .bind(notice.to_string())
        .bind(now)
        .bind(user.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A mail claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedEmail {
    pub id: Uuid,
    pub attempts: i64,
    pub notice: NoticeRow,
    pub user_id: Uuid,
    pub address: String,
}

/// Claims up to `limit` due mails until `until`, as [`claim_due`] claims webhook deliveries.
pub async fn claim_emails(
    conn: &mut AnyConnection,
    now: i64,
    until: i64,
    claim: Uuid,
    limit: i64,
) -> R<Vec<ClaimedEmail>> {
    mark_claimed(&mut *conn, Outbox::Emails, "TRUE", now, until, claim, limit).await?;
    let rows = sqlx::query(
        "SELECT d.id AS delivery_id, d.attempts, d.user_id, d.address, n.id, n.kind, n.case_id, \
                n.zone_id, n.data, n.created_at \
         FROM email_deliveries d JOIN notices n ON n.id = d.notice_id \
         WHERE d.claimed_by = $1 AND d.locked_until = $2",
    )
    .bind(claim.to_string())
    .bind(until)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ClaimedEmail {
                id: r.uuid("delivery_id")?,
                attempts: r.try_get("attempts")?,
                notice: notice_from(r)?,
                user_id: r.uuid("user_id")?,
                address: r.try_get("address")?,
            })
        })
        .collect()
}

// ---- escalation -----------------------------------------------------------------------------

/// A dispatched case whose time limit has passed a mark not yet told.
#[derive(Debug, Clone)]
pub struct DueMark {
    pub case_id: Uuid,
    pub zone_id: Uuid,
    pub category_code: String,
    pub dispatched_at: i64,
    pub deadline_at: i64,
    /// The limit in working time when the case counts it: the mark is then placed on the
    /// calendar, and this row is only a candidate (working time passes no faster than the
    /// clock, so the mark is no earlier than `dispatched_at` plus its share of this).
    pub time_limit_working_ms: Option<i64>,
}

/// Up to `limit` cases still being rectified (dispatched or in progress), after `after` in
/// (deadline, id) order, that have not been told of `mark_pct` and have passed it at `now`:
/// by the clock for a limit in plain hours; for one in working time, every case that may have
/// passed it (the caller places the mark on the calendar).
pub async fn due_marks<'c, E: Executor<'c, Database = Any>>(
    e: E,
    mark_pct: i64,
    now: i64,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> R<Vec<DueMark>> {
    let (after_deadline, after_id) = after
        .map(|(d, id)| (d, id.to_string()))
        .unwrap_or((i64::MIN, String::new()));
    let rows = sqlx::query(
        "SELECT id, zone_id, category_code, dispatched_at, deadline_at, time_limit_working_ms \
         FROM cases \
         WHERE state IN ('dispatched', 'in_progress') \
           AND dispatched_at IS NOT NULL AND deadline_at IS NOT NULL \
           AND ((time_limit_working_ms IS NULL \
                 AND dispatched_at + ((deadline_at - dispatched_at) * $1) / 100 <= $2) \
             OR (time_limit_working_ms IS NOT NULL \
                 AND dispatched_at + (time_limit_working_ms * $1) / 100 <= $2)) \
           AND (deadline_at > $3 OR (deadline_at = $3 AND id > $4)) \
           AND NOT EXISTS (SELECT 1 FROM case_escalations x \
                           WHERE x.case_id = cases.id AND x.mark_pct = $1) \
         ORDER BY deadline_at, id LIMIT $5",
    )
    .bind(mark_pct)
    .bind(now)
    .bind(after_deadline)
    .bind(after_id)
    .bind(limit)
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DueMark {
                case_id: r.uuid("id")?,
                zone_id: r.uuid("zone_id")?,
                category_code: r.try_get("category_code")?,
                dispatched_at: r.try_get("dispatched_at")?,
                deadline_at: r.try_get("deadline_at")?,
                time_limit_working_ms: r.try_get("time_limit_working_ms")?,
            })
        })
        .collect()
}

/// Takes the telling of `mark_pct` for `case`: `false` if it was taken already (by another
/// instance, whose transaction this one waited for).
pub async fn take_mark(conn: &mut AnyConnection, case: Uuid, mark_pct: i64, now: i64) -> R<bool> {
    let done = sqlx::query(
        "INSERT INTO case_escalations (case_id, mark_pct, at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(case.to_string())
    .bind(mark_pct)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many marks of at least `from_pct` percent have been taken for `case`.
pub async fn marks_taken_from(conn: &mut AnyConnection, case: Uuid, from_pct: i64) -> R<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM case_escalations WHERE case_id = $1 AND mark_pct >= $2",
    )
    .bind(case.to_string())
    .bind(from_pct)
    .fetch_one(conn)
    .await
}
