//! Who is mailed which notices, and when: for each kind of notice, email `immediately`, in the
//! daily `digest`, or `off`. Admins set a default per role; each person may choose for
//! themself (a kind they leave unset follows the most generous default of their roles), and
//! set quiet hours, during which an immediate mail waits until they end.
//!
//! These settings govern email only. The in-app inbox receives every notice, whatever anyone
//! chose: it is the record of who was told. Escalations (`case.due_soon`, `case.overdue`) are
//! the accountability trail, so they may be moved to the digest but never turned off.
//!
//! The daily digest is one mail per person and local day, at `notifications.digest_time` in
//! the site's time zone, listing the notices of their digest kinds since their last digest,
//! and none when nothing waits. A unique key on person and day keeps it to one however many
//! instances look; claims keep each digest to one sender at a time, as for single mails.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::AuthUser;
use crate::config::{NotificationsConfig, SiteConfig};
use crate::error::{ApiError, ApiResult};
use crate::i18n;
use crate::localtime;
use crate::notify::{self, Mailer, NoticeKind};
use crate::store::notice_settings::{self as store, EmailMode, QuietHours};
use crate::store::{audit, new_id, now_ms, Db};
use gridline_sync::Role;

/// The kinds nobody may turn off: the escalations of a time limit.
pub const ESCALATIONS: [NoticeKind; 2] = [NoticeKind::CaseDueSoon, NoticeKind::CaseOverdue];

/// Whether `kind` may be set to `off`.
pub fn may_turn_off(kind: NoticeKind) -> bool {
    !ESCALATIONS.contains(&kind)
}

/// One kind of notice as it is mailed to the caller.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KindSetting {
    /// The notice kind (`case.dispatched`, ...).
    pub kind: String,
    /// What happens now: the caller's own choice, else their roles' default.
    pub mode: EmailMode,
    /// The caller's own choice; `null`: they follow their roles.
    pub own: Option<EmailMode>,
    /// The most generous default of the caller's roles.
    pub role_default: EmailMode,
    /// `false` for escalations, which may be moved to the digest but not turned off.
    pub may_turn_off: bool,
}

/// Quiet hours: local times of day (`HH:MM`, the site's time zone); the start may be later
/// than the end (`22:00` to `07:00` crosses midnight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursView {
    pub start: String,
    pub end: String,
}

/// The caller's email settings. The inbox receives every notice regardless.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MySettings {
    /// Every kind of notice, in a fixed order.
    pub kinds: Vec<KindSetting>,
    /// `null`: none.
    pub quiet_hours: Option<QuietHoursView>,
    /// When the daily digest is mailed (`HH:MM`, the site's time zone).
    pub digest_time: String,
    /// The site's time zone, in which the times above are read.
    pub time_zone: String,
    /// Where the mails go; `null`: nowhere (an admin sets the address), so nothing is mailed.
    pub email: Option<String>,
}

/// The caller's choices, replacing the ones they had.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MySettingsInput {
    /// Kind → mode; a kind left out follows the caller's roles.
    #[serde(default)]
    pub kinds: BTreeMap<String, EmailMode>,
    /// `null` or left out: no quiet hours.
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursView>,
}

/// One kind of notice as a role's default.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleKindSetting {
    pub kind: String,
    /// The default; `immediately` when none was set.
    pub mode: EmailMode,
    /// Whether an admin set it.
    pub set: bool,
    pub may_turn_off: bool,
}

/// A role's defaults, which its holders follow for the kinds they have not chosen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleSettings {
    pub role: Role,
    pub kinds: Vec<RoleKindSetting>,
}

/// A role's defaults, replacing the ones it had.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSettingsInput {
    /// Kind → mode; a kind left out is mailed immediately.
    #[serde(default)]
    pub kinds: BTreeMap<String, EmailMode>,
}

/// Checks `kinds` (names and modes) for a write: every kind known, escalations never `off`.
fn checked_modes(kinds: &BTreeMap<String, EmailMode>) -> ApiResult<Vec<(String, EmailMode)>> {
    let mut out = Vec::new();
    for (name, mode) in kinds {
        let Some(kind) = NoticeKind::parse(name) else {
            let known: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(ApiError::invalid(
                "kinds",
                format!("unknown kind {name:?}; the kinds are {}", known.join(", ")),
            ));
        };
        if *mode == EmailMode::Off && !may_turn_off(kind) {
            return Err(ApiError::invalid(
                "kinds",
                format!(
                    "{name} is an escalation and cannot be turned off: choose immediately or digest"
                ),
            ));
        }
        out.push((name.clone(), *mode));
    }
    Ok(out)
}

/// Quiet hours as written (`HH:MM` twice, different) into minutes.
fn checked_quiet(q: &QuietHoursView) -> ApiResult<QuietHours> {
    let time = |field: &str, text: &str| {
        localtime::parse_time_of_day(text)
            .ok_or_else(|| ApiError::invalid(field, "a time of day as HH:MM, from 00:00 to 23:59"))
    };
    let start = time("quiet_hours.start", &q.start)?;
    let end = time("quiet_hours.end", &q.end)?;
    if start == end {
        return Err(ApiError::invalid(
            "quiet_hours.end",
            "must differ from the start",
        ));
    }
    Ok(QuietHours { start, end })
}

/// The defaults of every role: role → kind → mode, as set.
async fn all_defaults(
    conn: &mut sqlx::AnyConnection,
) -> ApiResult<HashMap<String, HashMap<Role, EmailMode>>> {
    let mut by_kind: HashMap<String, HashMap<Role, EmailMode>> = HashMap::new();
    for (role, kind, mode) in store::role_defaults(&mut *conn).await? {
        by_kind.entry(kind).or_default().insert(role, mode);
    }
    Ok(by_kind)
}

/// The caller's settings, with what each kind resolves to.
pub async fn mine(
    db: &Db,
    user: &AuthUser,
    notifications: &NotificationsConfig,
    site: &SiteConfig,
) -> ApiResult<MySettings> {
    let mut conn = db.pool.acquire().await.map_err(ApiError::from)?;
    let defaults = all_defaults(&mut conn).await?;
    let own: HashMap<String, EmailMode> = store::user_modes(&mut *conn, user.user_id)
        .await?
        .into_iter()
        .collect();
    let quiet = store::quiet_hours(&mut *conn, user.user_id).await?;
    let email = crate::store::users::by_id(&mut *conn, user.user_id)
        .await?
        .and_then(|u| u.email);
    let empty = HashMap::new();
    let kinds = NoticeKind::ALL
        .iter()
        .map(|k| {
            let d = defaults.get(k.as_str()).unwrap_or(&empty);
            let role_default = EmailMode::effective(None, &user.roles, d);
            let own = own.get(k.as_str()).copied();
            KindSetting {
                kind: k.as_str().to_owned(),
                mode: own.unwrap_or(role_default),
                own,
                role_default,
                may_turn_off: may_turn_off(*k),
            }
        })
        .collect();
    Ok(MySettings {
        kinds,
        quiet_hours: quiet.map(|q| QuietHoursView {
            start: localtime::time_of_day(q.start),
            end: localtime::time_of_day(q.end),
        }),
        digest_time: notifications.digest_time.clone(),
        time_zone: site.time_zone.clone(),
        email,
    })
}

/// Replaces the caller's choices and quiet hours (their own settings; anyone may).
pub async fn set_mine(db: &Db, user: &AuthUser, input: MySettingsInput) -> ApiResult<()> {
    let modes = checked_modes(&input.kinds)?;
    let quiet = input.quiet_hours.as_ref().map(checked_quiet).transpose()?;
    let mut tx = db.begin_write().await?;
    store::set_user_settings(tx.conn(), user.user_id, &modes, quiet, now_ms()).await?;
    tx.commit().await?;
    Ok(())
}

/// A role's defaults (admins only).
pub async fn role(db: &Db, admin: &AuthUser, role: Role) -> ApiResult<RoleSettings> {
    admin.require_admin()?;
    let mut conn = db.pool.acquire().await.map_err(ApiError::from)?;
    role_view(&mut conn, role).await
}

async fn role_view(conn: &mut sqlx::AnyConnection, role: Role) -> ApiResult<RoleSettings> {
    let defaults = all_defaults(conn).await?;
    let kinds = NoticeKind::ALL
        .iter()
        .map(|k| {
            let set = defaults.get(k.as_str()).and_then(|d| d.get(&role)).copied();
            RoleKindSetting {
                kind: k.as_str().to_owned(),
                mode: set.unwrap_or(EmailMode::DEFAULT),
                set: set.is_some(),
                may_turn_off: may_turn_off(*k),
            }
        })
        .collect();
    Ok(RoleSettings { role, kinds })
}

/// Replaces a role's defaults (admins only, audited with the defaults before and after).
pub async fn set_role(
    db: &Db,
    admin: &AuthUser,
    role: Role,
    input: RoleSettingsInput,
) -> ApiResult<RoleSettings> {
    admin.require_admin()?;
    let modes = checked_modes(&input.kinds)?;
    let mut tx = db.begin_write().await?;
    let before = role_view(tx.conn(), role).await?;
    store::set_role_defaults(tx.conn(), role, &modes, admin.user_id, now_ms()).await?;
    let after = role_view(tx.conn(), role).await?;
    audit::record(
        tx.conn(),
        Some(admin.user_id),
        "notification_settings.role",
        "role",
        role.as_str(),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

// ---- the daily digest -------------------------------------------------------------------------

/// How long a digest's claim lasts.
const CLAIM_MS: i64 = 60_000;
/// How many digests one pass claims.
const BATCH: i64 = 32;

/// The mail of a digest: its notices in words, one a line with its local time, in the site's
/// language, with a `Message-ID` made of the person and the day.
pub fn digest_message(
    from: &lettre::message::Mailbox,
    d: &store::ClaimedDigest,
    lines: &[String],
    site: &SiteConfig,
) -> Result<lettre::Message, String> {
    let to: lettre::message::Mailbox = d.address.parse().map_err(|e| format!("address: {e}"))?;
    let lang = site.language;
    let count = lines.len().to_string();
    let subject = i18n::lookup(
        lang,
        "notice-digest-subject",
        &[("count", &count), ("day", &d.local_day)],
    )
    .unwrap_or_else(|| format!("{count} notices, {}", d.local_day));
    let mut body = String::new();
    for line in lines {
        body.push_str("• ");
        body.push_str(line);
        body.push('\n');
    }
    body.push('\n');
    body.push_str(&i18n::text(lang, "notice-digest-footer"));
    body.push('\n');
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!("[Gridline] {subject}"))
        .message_id(Some(format!(
            "<digest.{}.{}@gridline>",
            d.user_id, d.local_day
        )))
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("message: {e}"))
}

/// One pass of the digests as of `now`: once the local clock has passed `digest_time`
/// (minutes after midnight), opens today's digest of each person with notices waiting (none
/// for anyone with nothing), then claims the due digests and mails them through `mailer`
/// (with none, each is recorded as failed, saying so). Returns how many were sent.
pub async fn send_digests(
    db: &Db,
    mailer: Option<&Mailer>,
    site: &SiteConfig,
    digest_time: u16,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let tz = site.tz();
    if localtime::minute_of_day(&tz, now) >= digest_time {
        let day = localtime::civil(&tz, now).date().to_string();
        for user in store::waiting_for_digest(&db.pool, &day, now).await? {
            let mut tx = db.begin_write().await?;
            if store::open_digest(tx.conn(), new_id(), user, &day, now).await? > 0 {
                tx.commit().await?;
            }
        }
    }
    if !store::any_digest_due(&db.pool, now).await? {
        return Ok(0);
    }
    let claim = new_id();
    let claimed = {
        let mut tx = db.begin_write().await?;
        let c = store::claim_digests(tx.conn(), now, now + CLAIM_MS, claim, BATCH, &tz).await?;
        tx.commit().await?;
        c
    };
    if claimed.is_empty() {
        return Ok(0);
    }
    let names = crate::exports::Names::load(db)
        .await
        .map_err(|e| sqlx::Error::Protocol(e.message))?;
    let mut sent = 0;
    for d in &claimed {
        let notices = store::digest_notices(&db.pool, d.id).await?;
        let lines: Vec<String> = notices
            .iter()
            .map(|n| {
                let at = localtime::civil(&tz, n.created_at)
                    .strftime("%H:%M")
                    .to_string();
                let text = notify::summary(site.language, &tz, &names, &notify::view(n, None));
                format!("{at} {text}")
            })
            .collect();
        let outcome = match mailer {
            None => Err((
                "no SMTP server is configured (notifications.smtp)".to_owned(),
                true,
            )),
            Some(m) => match digest_message(m.from(), d, &lines, site) {
                Err(why) => Err((why, true)),
                Ok(message) => m.send(message).await,
            },
        };
        let mut tx = db.begin_write().await?;
        match outcome {
            Ok(()) => {
                store::settle_digest(tx.conn(), d.id, claim, Ok(()), now_ms()).await?;
                sent += 1;
            }
            Err((why, permanent)) => {
                let next = notify::RETRY_DELAYS_MS
                    .get(d.attempts.saturating_sub(1) as usize)
                    .filter(|_| !permanent)
                    .map(|delay| now_ms().max(now) + delay);
                if next.is_none() {
                    tracing::warn!(digest = %d.id, error = %why, "digest given up");
                }
                store::settle_digest(tx.conn(), d.id, claim, Err((&why, next)), now_ms()).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(sent)
}

/// Runs [`send_digests`] every `notifications.poll_ms` until aborted.
pub fn spawn_digests(
    db: Db,
    site: SiteConfig,
    notifications: NotificationsConfig,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(notifications.poll_ms);
    // Checked when the configuration loads.
    let at = localtime::parse_time_of_day(&notifications.digest_time).unwrap_or(8 * 60);
    tokio::spawn(async move {
        let mailer = match notifications.smtp.as_ref().map(Mailer::new).transpose() {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "digest mail cannot start");
                None
            }
        };
        loop {
            if let Err(e) = send_digests(&db, mailer.as_ref(), &site, at, now_ms()).await {
                tracing::warn!(error = %e, "digest pass failed");
            }
            tokio::time::sleep(every).await;
        }
    })
}
