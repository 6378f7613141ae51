//! Who is mailed which notices, and when (`notice_role_settings`, `notice_user_settings`,
//! `notice_quiet_hours`), and the daily digests (`notice_digests`, `notice_digest_items`).
//! Email only: the inbox rows `notices::insert` writes do not depend on anything here.

use std::collections::HashMap;

use gridline_sync::Role;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, Executor, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use super::json_rows::Cols;
use super::notices::{self, ClaimedEmail, NoticeRow};

type R<T> = Result<T, sqlx::Error>;

/// Whether, and when, a kind of notice is mailed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EmailMode {
    /// Not mailed (the inbox still has it).
    Off,
    /// Listed in the next daily digest.
    Digest,
    /// Mailed as it happens (held while the person's quiet hours last).
    Immediately,
}

impl EmailMode {
    pub const ALL: [EmailMode; 3] = [EmailMode::Immediately, EmailMode::Digest, EmailMode::Off];

    /// A role with no default for a kind, or a person with no role at all, is mailed at once
    /// (what happened before anyone chose anything).
    pub const DEFAULT: EmailMode = EmailMode::Immediately;

    pub fn as_str(self) -> &'static str {
        match self {
            EmailMode::Immediately => "immediately",
            EmailMode::Digest => "digest",
            EmailMode::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<EmailMode> {
        EmailMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    fn decode(column: &str, s: &str) -> R<EmailMode> {
        EmailMode::parse(s).ok_or_else(|| super::unknown_value(column, s))
    }

    /// The mode of a person: their own choice if they made one, else the most generous of
    /// their roles' defaults (`Immediately` over `Digest` over `Off`), a role without a
    /// default counting as [`EmailMode::DEFAULT`].
    pub fn effective(
        own: Option<EmailMode>,
        roles: &[Role],
        defaults: &HashMap<Role, EmailMode>,
    ) -> EmailMode {
        own.unwrap_or_else(|| {
            roles
                .iter()
                .map(|r| defaults.get(r).copied().unwrap_or(EmailMode::DEFAULT))
                .max()
                .unwrap_or(EmailMode::DEFAULT)
        })
    }
}

fn role_of(column: &str, s: &str) -> R<Role> {
    Role::ALL
        .iter()
        .copied()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| super::unknown_value(column, s))
}

/// Every role default that is set, for every role and kind.
pub async fn role_defaults<'c, E: Executor<'c, Database = Any>>(
    e: E,
) -> R<Vec<(Role, String, EmailMode)>> {
    let rows = sqlx::query("SELECT role, kind, mode FROM notice_role_settings ORDER BY role, kind")
        .fetch_all(e)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                role_of(
                    "notice_role_settings.role",
                    &r.try_get::<String, _>("role")?,
                )?,
                r.try_get("kind")?,
                EmailMode::decode(
                    "notice_role_settings.mode",
                    &r.try_get::<String, _>("mode")?,
                )?,
            ))
        })
        .collect()
}

/// Replaces the defaults of `role` with `modes` (kinds left out have none).
pub async fn set_role_defaults(
    conn: &mut AnyConnection,
    role: Role,
    modes: &[(String, EmailMode)],
    by: Uuid,
    now: i64,
) -> R<()> {
    sqlx::query("DELETE FROM notice_role_settings WHERE role = $1")
        .bind(role.as_str())
        .execute(&mut *conn)
        .await?;
    for (kind, mode) in modes {
        sqlx::query(
            "INSERT INTO notice_role_settings (role, kind, mode, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(role.as_str())
        .bind(kind)
        .bind(mode.as_str())
        .bind(by.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// `user`'s own choices, by kind.
pub async fn user_modes<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user: Uuid,
) -> R<Vec<(String, EmailMode)>> {
    let rows =
        sqlx::query("SELECT kind, mode FROM notice_user_settings WHERE user_id = $1 ORDER BY kind")
            .bind(user.to_string())
            .fetch_all(e)
            .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("kind")?,
                EmailMode::decode(
                    "notice_user_settings.mode",
                    &r.try_get::<String, _>("mode")?,
                )?,
            ))
        })
        .collect()
}

/// A person's quiet hours: minutes after local midnight (the start may be after the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: u16,
    pub end: u16,
}

impl QuietHours {
    /// When a mail due at `now` may go, if `now` falls in these hours: the next time they end
    /// (in the site's time zone `tz`); `None` outside them.
    pub fn release_at(&self, tz: &jiff::tz::TimeZone, now: i64) -> Option<i64> {
        let m = crate::localtime::minute_of_day(tz, now);
        let inside = if self.start <= self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        };
        inside.then(|| crate::localtime::next_time_of_day(tz, now, self.end))
    }
}

fn quiet_from(r: &sqlx::any::AnyRow) -> R<QuietHours> {
    let minute = |col: &str| -> R<u16> {
        let v: i64 = r.try_get(col)?;
        u16::try_from(v)
            .ok()
            .filter(|m| *m < 24 * 60)
            .ok_or_else(|| super::unknown_value(col, &v.to_string()))
    };
    Ok(QuietHours {
        start: minute("start_minute")?,
        end: minute("end_minute")?,
    })
}

pub async fn quiet_hours<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user: Uuid,
) -> R<Option<QuietHours>> {
    let row =
        sqlx::query("SELECT start_minute, end_minute FROM notice_quiet_hours WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(e)
            .await?;
    row.as_ref().map(quiet_from).transpose()
}

/// Replaces `user`'s own choices and quiet hours (kinds left out follow their roles again).
pub async fn set_user_settings(
    conn: &mut AnyConnection,
    user: Uuid,
    modes: &[(String, EmailMode)],
    quiet: Option<QuietHours>,
    now: i64,
) -> R<()> {
    sqlx::query("DELETE FROM notice_user_settings WHERE user_id = $1")
        .bind(user.to_string())
        .execute(&mut *conn)
        .await?;
    for (kind, mode) in modes {
        sqlx::query(
            "INSERT INTO notice_user_settings (user_id, kind, mode, updated_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(user.to_string())
        .bind(kind)
        .bind(mode.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("DELETE FROM notice_quiet_hours WHERE user_id = $1")
        .bind(user.to_string())
        .execute(&mut *conn)
        .await?;
    if let Some(q) = quiet {
        sqlx::query(
            "INSERT INTO notice_quiet_hours (user_id, start_minute, end_minute, updated_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(user.to_string())
        .bind(i64::from(q.start))
        .bind(i64::from(q.end))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The email part of recording notice `notice` of `kind`, in the notice's transaction: for each
/// of `recipients` with an address and an enabled account, a mail queued now
/// (`immediately`), a place in their next digest (`digest`), or nothing (`off`), as their
/// settings say at this moment.
pub async fn queue_emails(
    conn: &mut AnyConnection,
    notice: Uuid,
    kind: &str,
    recipients: &[Uuid],
    now: i64,
) -> R<()> {
    let mut defaults: HashMap<Role, EmailMode> = HashMap::new();
    for (role, k, mode) in role_defaults(&mut *conn).await? {
        if k == kind {
            defaults.insert(role, mode);
        }
    }
    for user in recipients {
        let row = sqlx::query(
            "SELECT u.roles, s.mode FROM users u \
             LEFT JOIN notice_user_settings s ON s.user_id = u.id AND s.kind = $2 \
             WHERE u.id = $1 AND u.email IS NOT NULL AND u.disabled_at IS NULL",
        )
        .bind(user.to_string())
        .bind(kind)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { continue };
        let roles =
            super::users::roles_from_text("users.roles", &row.try_get::<String, _>("roles")?)?;
        let own = row
            .try_get::<Option<String>, _>("mode")?
            .map(|m| EmailMode::decode("notice_user_settings.mode", &m))
            .transpose()?;
        match EmailMode::effective(own, &roles, &defaults) {
            EmailMode::Immediately => {
                notices::queue_emails(&mut *conn, notice, &[*user], now).await?
            }
            EmailMode::Digest => {
                sqlx::query(
                    "INSERT INTO notice_digest_items (user_id, notice_id, created_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(user.to_string())
                .bind(notice.to_string())
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
            EmailMode::Off => {}
        }
    }
    Ok(())
}

/// Of the mails just claimed (by `claim`), those whose recipient is in quiet hours at `now`
/// are put back, due when the hours end and without counting an attempt; the rest are
/// returned, to be sent.
pub async fn hold_quiet_emails(
    conn: &mut AnyConnection,
    claimed: Vec<ClaimedEmail>,
    claim: Uuid,
    tz: &jiff::tz::TimeZone,
    now: i64,
) -> R<Vec<ClaimedEmail>> {
    let mut send = Vec::with_capacity(claimed.len());
    let mut quiet: HashMap<Uuid, Option<QuietHours>> = HashMap::new();
    for c in claimed {
        let hours = match quiet.get(&c.user_id) {
            Some(q) => *q,
            None => {
                let q = quiet_hours(&mut *conn, c.user_id).await?;
                quiet.insert(c.user_id, q);
                q
            }
        };
        match hours.and_then(|q| q.release_at(tz, now)) {
            Some(release) => hold(&mut *conn, "email_deliveries", c.id, claim, release).await?,
            None => send.push(c),
        }
    }
    Ok(send)
}

/// Puts a claimed row of `table` back, due at `at`, its claim's attempt not counted.
async fn hold(conn: &mut AnyConnection, table: &str, id: Uuid, claim: Uuid, at: i64) -> R<()> {
    sqlx::query(&format!(
        "UPDATE {table} SET next_at = $1, locked_until = NULL, attempts = attempts - 1 \
         WHERE id = $2 AND claimed_by = $3 AND status = 'pending'"
    ))
    .bind(at)
    .bind(id.to_string())
    .bind(claim.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

// ---- digests ----------------------------------------------------------------------------------

/// People with notices waiting for a digest recorded by `now`, an address and an enabled
/// account, who have no digest of `day` yet.
pub async fn waiting_for_digest<'c, E: Executor<'c, Database = Any>>(
    e: E,
    day: &str,
    now: i64,
) -> R<Vec<Uuid>> {
    let rows = sqlx::query(
        "SELECT DISTINCT i.user_id FROM notice_digest_items i JOIN users u ON u.id = i.user_id \
         WHERE i.digest_id IS NULL AND i.created_at <= $1 \
           AND u.email IS NOT NULL AND u.disabled_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM notice_digests d \
                           WHERE d.user_id = i.user_id AND d.local_day = $2) \
         ORDER BY i.user_id",
    )
    .bind(now)
    .bind(day)
    .fetch_all(e)
    .await?;
    rows.iter().map(|r| r.uuid("user_id")).collect()
}

/// Opens `user`'s digest of `day` (due at `now`) and puts in it every notice waiting for them
/// recorded by `now`. Returns how many it holds: 0 when the day's digest exists already
/// (another instance made it; the unique key on user and day makes this one a no-op) or when
/// nothing waits, in which case the caller rolls back.
pub async fn open_digest(
    conn: &mut AnyConnection,
    id: Uuid,
    user: Uuid,
    day: &str,
    now: i64,
) -> R<u64> {
    let made = sqlx::query(
        "INSERT INTO notice_digests (id, user_id, local_day, address, status, attempts, \
           next_at, created_at) \
         SELECT $1, id, $2, email, 'pending', 0, $3, $3 FROM users \
         WHERE id = $4 AND email IS NOT NULL AND disabled_at IS NULL \
         ON CONFLICT DO NOTHING",
    )
    .bind(id.to_string())
    .bind(day)
    .bind(now)
    .bind(user.to_string())
    .execute(&mut *conn)
    .await?;
    if made.rows_affected() != 1 {
        return Ok(0);
    }
    let items = sqlx::query(
        "UPDATE notice_digest_items SET digest_id = $1 \
         WHERE user_id = $2 AND digest_id IS NULL AND created_at <= $3",
    )
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(items.rows_affected())
}

/// Whether a digest is due at `now` (a read, so an idle instance takes no write lock).
pub async fn any_digest_due<'c, E: Executor<'c, Database = Any>>(e: E, now: i64) -> R<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM notice_digests WHERE status = 'pending' AND next_at <= $1 \
         AND (locked_until IS NULL OR locked_until < $1) LIMIT 1",
    )
    .bind(now)
    .fetch_optional(e)
    .await?;
    Ok(found.is_some())
}

/// A digest claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedDigest {
    pub id: Uuid,
    pub attempts: i64,
    pub user_id: Uuid,
    pub address: String,
    pub local_day: String,
}

/// Claims up to `limit` due digests until `until`, as `notices::claim_emails` claims mails
/// (the condition repeated outside the subquery, so PostgreSQL re-checks it on a row another
/// instance claimed first), then puts back those whose person is in quiet hours at `now`.
pub async fn claim_digests(
    conn: &mut AnyConnection,
    now: i64,
    until: i64,
    claim: Uuid,
    limit: i64,
    tz: &jiff::tz::TimeZone,
) -> R<Vec<ClaimedDigest>> {
    let due =
        "status = 'pending' AND next_at <= $1 AND (locked_until IS NULL OR locked_until < $1)";
    sqlx::query(&format!(
        "UPDATE notice_digests SET locked_until = $2, claimed_by = $3, attempts = attempts + 1 \
         WHERE {due} AND id IN (SELECT id FROM notice_digests WHERE {due} \
                                ORDER BY next_at LIMIT $4)"
    ))
    .bind(now)
    .bind(until)
    .bind(claim.to_string())
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT id, attempts, user_id, address, local_day FROM notice_digests \
         WHERE claimed_by = $1 AND locked_until = $2",
    )
    .bind(claim.to_string())
    .bind(until)
    .fetch_all(&mut *conn)
    .await?;
    let mut send = Vec::new();
    for r in &rows {
        let d = ClaimedDigest {
            id: r.uuid("id")?,
            attempts: r.try_get("attempts")?,
            user_id: r.uuid("user_id")?,
            address: r.try_get("address")?,
            local_day: r.try_get("local_day")?,
        };
        let quiet = quiet_hours(&mut *conn, d.user_id).await?;
        match quiet.and_then(|q| q.release_at(tz, now)) {
            Some(release) => hold(&mut *conn, "notice_digests", d.id, claim, release).await?,
            None => send.push(d),
        }
    }
    Ok(send)
}

/// The notices a digest carries, oldest first.
pub async fn digest_notices<'c, E: Executor<'c, Database = Any>>(
    e: E,
    digest: Uuid,
) -> R<Vec<NoticeRow>> {
    let rows = sqlx::query(
        "SELECT n.id, n.kind, n.case_id, n.zone_id, n.data, n.created_at \
         FROM notice_digest_items i JOIN notices n ON n.id = i.notice_id \
         WHERE i.digest_id = $1 ORDER BY n.created_at, n.id",
    )
    .bind(digest.to_string())
    .fetch_all(e)
    .await?;
    rows.iter().map(notices::notice_from).collect()
}

/// Records how sending digest `id` went (while `claim` holds it): sent; or failed, due again
/// at `next_at`, or given up when that is `None`.
pub async fn settle_digest(
    conn: &mut AnyConnection,
    id: Uuid,
    claim: Uuid,
    outcome: Result<(), (&str, Option<i64>)>,
    now: i64,
) -> R<()> {
    let q = match outcome {
        Ok(()) => sqlx::query(
            "UPDATE notice_digests SET status = 'sent', sent_at = $1, locked_until = NULL, \
             last_error = NULL WHERE id = $2 AND claimed_by = $3 AND status = 'pending'",
        )
        .bind(now)
        .bind(id.to_string())
        .bind(claim.to_string()),
        Err((why, next_at)) => sqlx::query(
            "UPDATE notice_digests SET status = $1, next_at = COALESCE($2, next_at), \
             locked_until = NULL, last_error = $3 \
             WHERE id = $4 AND claimed_by = $5 AND status = 'pending'",
        )
        .bind(if next_at.is_some() {
            "pending"
        } else {
            "failed"
        })
        .bind(next_at)
        .bind(why.to_owned())
        .bind(id.to_string())
        .bind(claim.to_string()),
    };
    q.execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_generous_role_wins_and_an_own_choice_wins_over_all() {
        let mut defaults = HashMap::new();
        defaults.insert(Role::RoadChief, EmailMode::Off);
        defaults.insert(Role::ZoneChief, EmailMode::Digest);
        let roles = [Role::RoadChief, Role::ZoneChief];
        assert_eq!(
            EmailMode::effective(None, &roles, &defaults),
            EmailMode::Digest
        );
        assert_eq!(
            EmailMode::effective(None, &[Role::RoadChief], &defaults),
            EmailMode::Off
        );
        // A role without a default mails at once.
        assert_eq!(
            EmailMode::effective(None, &[Role::RoadChief, Role::Inspector], &defaults),
            EmailMode::Immediately
        );
        assert_eq!(
            EmailMode::effective(Some(EmailMode::Off), &roles, &defaults),
            EmailMode::Off
        );
        assert_eq!(
            EmailMode::effective(None, &[], &defaults),
            EmailMode::DEFAULT
        );
    }

    #[test]
    fn quiet_hours_may_cross_midnight_and_end_at_their_end() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let at = |s: &str| crate::localtime::parse_local(&tz, s).unwrap();
        let night = QuietHours {
            start: 22 * 60,
            end: 7 * 60,
        };
        assert_eq!(night.release_at(&tz, at("2026-03-01T21:59")), None);
        assert_eq!(
            night.release_at(&tz, at("2026-03-01T22:00")),
            Some(at("2026-03-02T07:00"))
        );
        assert_eq!(
            night.release_at(&tz, at("2026-03-02T03:10")),
            Some(at("2026-03-02T07:00"))
        );
        assert_eq!(night.release_at(&tz, at("2026-03-02T07:00")), None);
        let lunch = QuietHours {
            start: 12 * 60,
            end: 13 * 60 + 30,
        };
        assert_eq!(
            lunch.release_at(&tz, at("2026-03-02T12:45")),
            Some(at("2026-03-02T13:30"))
        );
        assert_eq!(lunch.release_at(&tz, at("2026-03-02T13:30")), None);
    }
}
