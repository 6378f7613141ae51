//! Inspection plans: what is inspected, by whom, when and against which checklist.
//!
//! Planners (admins and supervisors) make, cancel and reveal plans. A plan's occurrences come
//! from its recurrence ([`crate::recurrence`]) in the site's time zone; each is open for the
//! plan's window, and one with no round started for it by the window's end is **missed**. The
//! assignees' phones pull the plan (entity `plan`, with its next occurrences).
//!
//! An **unannounced** plan (暗访) is confidential: it, its rounds and the cases they raise are
//! seen only by planners and its assignees until it is **revealed** by a planner. A period's
//! close reveals the unannounced rounds made before its end and their cases, and the plans
//! among theirs that have no occurrence left. At creation it is **sealed** ([`crate::seal`]): its
//! commitment is appended to the plan log and the signed receipt kept, so that after the reveal
//! anyone can check that it was planned before its findings.

use gridline_sync::ops::RoundKind;
use gridline_sync::plan::{Checklist, Occurrence, PlanView};
use gridline_sync::validation::{is_category_code, ValidationErrors};
use gridline_sync::{EntityKind, Role};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::{AuthUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::ledger::log::CheckpointKeys;
use crate::recurrence::Recurrence;
use crate::seal::{self, SealProof, SealedContent};
use crate::store::changes::{self, ChangeKind, PendingChange};
use crate::store::plans::{self as store, PlanRow};
use crate::store::{audit, now_ms, reference, time_from_ms, users, Db};

/// Longest occurrence window: a week.
pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;
/// Most zones, categories or assignees a plan names.
pub const MAX_PLAN_LIST: usize = 200;
/// Longest range of occurrences one request expands, in days.
pub const MAX_RANGE_DAYS: i64 = 366;
/// How many next occurrences a plan's view carries.
const UPCOMING: usize = 10;

/// A new plan.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// 1 to 100 characters.
    pub name: String,
    /// `periodic` (announced) or `unannounced` (暗访: confidential until revealed).
    pub kind: RoundKind,
    /// An iCalendar `RRULE` value, at most daily with up to six `BYHOUR` times:
    /// `FREQ=WEEKLY;BYDAY=MO,TH`.
    pub rrule: String,
    /// The first occurrence's local start in the site's time zone, `YYYY-MM-DDTHH:MM`.
    pub dtstart: String,
    /// How long each occurrence stays open, 1 minute to a week.
    pub window_minutes: u32,
    pub zones: Vec<Uuid>,
    /// Work categories in scope (taxonomy keys); empty means every category.
    #[serde(default)]
    pub categories: Vec<String>,
    /// The inspectors who carry it out.
    pub assignees: Vec<Uuid>,
    #[serde(default)]
    pub checklist: Checklist,
}

/// Whether `user` plans inspections (and so sees every plan).
pub fn is_planner(user: &AuthUser) -> bool {
    user.is_supervisor_level()
}

/// Refuses (403) a user who does not plan inspections.
pub fn require_planner(user: &AuthUser) -> ApiResult<()> {
    if is_planner(user) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "planning inspections needs the admin or supervisor role",
        ))
    }
}

fn ms_to_time(ms: i64) -> OffsetDateTime {
    time_from_ms(ms)
}

fn kind_of(row: &PlanRow) -> RoundKind {
    if row.kind == "unannounced" {
        RoundKind::Unannounced
    } else {
        RoundKind::Periodic
    }
}

/// The recurrence of a stored plan (checked when it was made).
fn recurrence(row: &PlanRow) -> ApiResult<Recurrence> {
    Recurrence::parse(&row.rrule, &row.dtstart, &row.time_zone)
        .map_err(|e| ApiError::internal(format!("plan {}: {}", row.id, e.message)))
}

/// The plan as the API and phones show it, with its next occurrences after `now`.
pub fn view(row: &PlanRow, now: i64) -> ApiResult<PlanView> {
    let window = row.window_minutes * 60_000;
    let upcoming = if row.cancelled_at.is_some() {
        vec![]
    } else {
        recurrence(row)?
            .starts_between(now - window, now + MAX_RANGE_DAYS * 86_400_000)
            .into_iter()
            .filter(|s| s + window > now)
            .take(UPCOMING)
            .map(|s| Occurrence {
                starts_at: ms_to_time(s),
                ends_at: ms_to_time(s + window),
            })
            .collect()
    };
    let checklist: Checklist = serde_json::from_str(&row.checklist)
        .map_err(|e| ApiError::internal(format!("plan {} checklist: {e}", row.id)))?;
    Ok(PlanView {
        id: row.id,
        name: row.name.clone(),
        kind: kind_of(row),
        rrule: row.rrule.clone(),
        dtstart: row.dtstart.clone(),
        time_zone: row.time_zone.clone(),
        window_minutes: u32::try_from(row.window_minutes).unwrap_or(0),
        zones: row.zones.clone(),
        categories: row.categories.clone(),
        assignees: row.assignees.clone(),
        checklist,
        created_by: row.created_by,
        created_at: ms_to_time(row.created_at),
        cancelled_at: row.cancelled_at.map(ms_to_time),
        revealed_at: row.revealed_at.map(ms_to_time),
        commitment: row.commitment.clone(),
        version: row.version,
        upcoming,
    })
}

/// Whether `user`, whose roster gives `scope`, may see plan `row`: planners see every plan,
/// assignees theirs; anyone else an announced plan, or a revealed one, of a zone in their
/// scope.
fn visible(user: &AuthUser, scope: &Scope, row: &PlanRow) -> bool {
    if row.assignees.contains(&user.user_id) {
        return true;
    }
    let in_scope = row.zones.iter().any(|z| scope.contains(*z));
    if is_planner(user) {
        return in_scope;
    }
    in_scope && (row.kind != "unannounced" || row.revealed_at.is_some())
}

/// Plan `id` locked in `conn` for a planner whose scope covers one of its zones (404
/// otherwise, as for anything out of scope).
async fn lock_for_planner(
    db: &Db,
    conn: &mut AnyConnection,
    user: &AuthUser,
    id: Uuid,
) -> ApiResult<PlanRow> {
    require_planner(user)?;
    let scope = user.scope(db).await?;
    store::load(conn, id, db.backend.for_update())
        .await?
        .filter(|row| row.zones.iter().any(|z| scope.contains(*z)))
        .ok_or_else(|| ApiError::not_found("plan"))
}

async fn load_visible(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<PlanRow> {
    let mut conn = db.pool.acquire().await?;
    let row = store::load(&mut conn, id, "")
        .await?
        .ok_or_else(|| ApiError::not_found("plan"))?;
    drop(conn);
    if visible(user, &user.scope(db).await?, &row) {
        Ok(row)
    } else {
        Err(ApiError::not_found("plan"))
    }
}

async fn validate(db: &Db, user: &AuthUser, site_tz: &str, p: &PlanInput) -> ApiResult<()> {
    let mut e = ValidationErrors::new();
    let name = p.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        e.push("name", "1 to 100 characters, no control characters");
    }
    // A plan starts within a few years of now: a first start decades back would make every
    // expansion walk the years between.
    if let Ok(local) = p.dtstart.parse::<jiff::civil::DateTime>() {
        let tz = jiff::tz::TimeZone::get(site_tz).unwrap_or(jiff::tz::TimeZone::UTC);
        if let Ok(at) = tz.to_zoned_datetime(local) {
            let at = at.timestamp().as_millisecond();
            let now = now_ms();
            if (at - now).abs() > 5 * 366 * 86_400_000 {
                e.push("dtstart", "within five years of today");
            }
        }
    }
    if p.kind == RoundKind::Routine {
        e.push("kind", "periodic or unannounced");
    }
    if let Err(err) = Recurrence::parse(&p.rrule, &p.dtstart, site_tz) {
        e.push(err.field, err.message);
    }
    if p.window_minutes == 0 || p.window_minutes > MAX_WINDOW_MINUTES {
        e.push(
            "window_minutes",
            format!("between 1 and {MAX_WINDOW_MINUTES}"),
        );
    }
    for (field, len, empty_ok) in [
        ("zones", p.zones.len(), false),
        ("categories", p.categories.len(), true),
        ("assignees", p.assignees.len(), false),
    ] {
        if (!empty_ok && len == 0) || len > MAX_PLAN_LIST {
            e.push(field, format!("1 to {MAX_PLAN_LIST} entries"));
        }
    }
    for (i, c) in p.categories.iter().enumerate() {
        if !is_category_code(c) {
            e.push(
                format!("categories[{i}]"),
                "a taxonomy key such as event:0102",
            );
        }
    }
    p.checklist.validate("checklist", &mut e);
    let scope = user.scope(db).await?;
    for (i, z) in p.zones.iter().enumerate() {
        if !scope.contains(*z) || reference::zone(&db.pool, *z).await?.is_none() {
            e.push(format!("zones[{i}]"), "no such zone in your scope");
        }
    }
    // An assignee works in the plan's zones with their own roster: the photos they upload and
    // the cases they pull back are theirs by it. (An office that inspects every zone rosters
    // its inspectors on every zone.)
    for (i, a) in p.assignees.iter().enumerate() {
        match users::by_id(&db.pool, *a).await? {
            Some(u) if u.disabled_at.is_none() && u.roles.contains(&Role::Inspector) => {
                let theirs = reference::current_zones(&db.pool, *a, now_ms()).await?;
                if let Some(zones) = theirs {
                    if p.zones.iter().any(|z| !zones.contains(z)) {
                        e.push(
                            format!("assignees[{i}]"),
                            "not on the roster of every zone of the plan",
                        );
                    }
                }
            }
            _ => e.push(format!("assignees[{i}]"), "no such active inspector"),
        }
    }
    e.into_result().map_err(ApiError::from)
}

fn dedup<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Makes a plan (planners). An unannounced plan is sealed: its commitment is appended to the
/// plan log in the same transaction, and the receipt is its proof of time.
pub async fn create(
    db: &Db,
    keys: &impl CheckpointKeys,
    site_tz: &str,
    user: &AuthUser,
    input: &PlanInput,
) -> ApiResult<PlanView> {
    require_planner(user)?;
    validate(db, user, site_tz, input).await?;
    let now = now_ms();
    let checklist = serde_json::to_string(&input.checklist).map_err(ApiError::internal)?;
    let mut row = PlanRow {
        id: Uuid::now_v7(),
        name: input.name.trim().to_owned(),
        kind: if input.kind == RoundKind::Unannounced {
            "unannounced"
        } else {
            "periodic"
        }
        .into(),
        rrule: input.rrule.trim().to_owned(),
        dtstart: input.dtstart.clone(),
        time_zone: site_tz.to_owned(),
        window_minutes: i64::from(input.window_minutes),
        zones: dedup(&input.zones),
        categories: dedup(&input.categories),
        checklist,
        assignees: dedup(&input.assignees),
        created_by: user.user_id,
        created_at: now,
        cancelled_at: None,
        revealed_at: None,
        revealed_by: None,
        nonce: None,
        commitment: None,
        version: 1,
    };
    let mut tx = db.begin_write().await?;
    if input.kind == RoundKind::Unannounced {
        let nonce = seal::new_nonce();
        let commitment = seal::commitment(&sealed_content(&row), &nonce);
        store::append_log(tx.conn(), row.id, &commitment, now, keys).await?;
        row.nonce = Some(nonce);
        row.commitment = Some(commitment);
    }
    store::insert(tx.conn(), &row).await?;
    let view = view(&row, now)?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "plan.create",
        "plan",
        &row.id.to_string(),
        None::<&()>,
        Some(&view),
    )
    .await?;
    changes::append(tx.conn(), &assignee_rows(&row)).await?;
    tx.commit().await?;
    Ok(view)
}

fn sealed_content(row: &PlanRow) -> SealedContent {
    SealedContent {
        plan_id: row.id,
        rrule: row.rrule.clone(),
        dtstart: row.dtstart.clone(),
        time_zone: row.time_zone.clone(),
        window_minutes: u32::try_from(row.window_minutes).unwrap_or(u32::MAX),
        zones: row.zones.clone(),
        categories: row.categories.clone(),
        assignees: row.assignees.clone(),
        checklist: row.checklist.clone(),
    }
}

fn assignee_rows(row: &PlanRow) -> Vec<PendingChange> {
    row.assignees
        .iter()
        .map(|a| PendingChange::plan(row.id, *a, ChangeKind::Upsert))
        .collect()
}

/// The plans `user` may see, newest first.
pub async fn list(db: &Db, user: &AuthUser) -> ApiResult<Vec<PlanView>> {
    let scope = user.scope(db).await?;
    let mut conn = db.pool.acquire().await?;
    let rows = store::list(&mut conn, None).await?;
    drop(conn);
    let now = now_ms();
    rows.iter()
        .filter(|row| visible(user, &scope, row))
        .map(|row| view(row, now))
        .collect()
}

/// One plan, 404 unless `user` may see it.
pub async fn get(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<PlanView> {
    view(&load_visible(db, user, id).await?, now_ms())
}

/// How an occurrence went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OccurrenceStatus {
    /// Not open yet.
    Upcoming,
    /// Open now, no round started for it yet.
    Open,
    /// A round was started for it within its window.
    Done,
    /// Its window ended with no round started for it.
    Missed,
}

/// An occurrence of a plan and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OccurrenceView {
    pub plan_id: Uuid,
    pub plan_name: String,
    pub kind: RoundKind,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub status: OccurrenceStatus,
    /// The rounds started for it.
    pub rounds: Vec<Uuid>,
    /// The best checklist score of those rounds, per mille.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_permille: Option<i64>,
    /// Items failed on those rounds.
    pub items_failed: i64,
}

fn occurrences_of(
    row: &PlanRow,
    rounds: &[store::PlanRound],
    from: i64,
    to: i64,
    now: i64,
) -> ApiResult<Vec<OccurrenceView>> {
    let window = row.window_minutes * 60_000;
    let end = row.cancelled_at.map_or(to, |c| c.min(to));
    let starts = recurrence(row)?.starts_between(from, end);
    Ok(starts
        .into_iter()
        .map(|s| {
            let mine: Vec<&store::PlanRound> = rounds
                .iter()
                .filter(|r| r.occurrence_at == Some(s) && r.started_at < s + window)
                .collect();
            let status = if !mine.is_empty() {
                OccurrenceStatus::Done
            } else if now < s {
                OccurrenceStatus::Upcoming
            } else if now < s + window {
                OccurrenceStatus::Open
            } else {
                OccurrenceStatus::Missed
            };
            OccurrenceView {
                plan_id: row.id,
                plan_name: row.name.clone(),
                kind: kind_of(row),
                starts_at: ms_to_time(s),
                ends_at: ms_to_time(s + window),
                status,
                rounds: mine.iter().map(|r| r.id).collect(),
                score_permille: mine.iter().filter_map(|r| r.score_permille).max(),
                items_failed: mine.iter().filter_map(|r| r.items_failed).sum(),
            }
        })
        .collect())
}

fn check_range(from: OffsetDateTime, to: OffsetDateTime) -> ApiResult<(i64, i64)> {
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let (from, to) = (ms(from), ms(to));
    if to <= from {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    if to - from > MAX_RANGE_DAYS * 86_400_000 {
        return Err(ApiError::invalid(
            "to",
            format!("at most {MAX_RANGE_DAYS} days after from"),
        ));
    }
    Ok((from, to))
}

/// The occurrences of plan `id` starting in `[from, to)` (at most a year), each with its
/// status: a missed one is flagged `missed`.
pub async fn occurrences(
    db: &Db,
    user: &AuthUser,
    id: Uuid,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> ApiResult<Vec<OccurrenceView>> {
    let (from, to) = check_range(from, to)?;
    let row = load_visible(db, user, id).await?;
    let mut conn = db.pool.acquire().await?;
    let rounds = store::rounds_of(&mut conn, id).await?;
    occurrences_of(&row, &rounds, from, to, now_ms())
}

/// The occurrences of every plan `user` may see in `[from, to)`, by start: the planners'
/// calendar.
pub async fn calendar(
    db: &Db,
    user: &AuthUser,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> ApiResult<Vec<OccurrenceView>> {
    let (from, to) = check_range(from, to)?;
    let scope = user.scope(db).await?;
    let mut conn = db.pool.acquire().await?;
    let rows = store::list(&mut conn, None).await?;
    let now = now_ms();
    let mut out = Vec::new();
    for row in rows {
        if !visible(user, &scope, &row) {
            continue;
        }
        let rounds = store::rounds_of(&mut conn, row.id).await?;
        out.extend(occurrences_of(&row, &rounds, from, to, now)?);
    }
    out.sort_by_key(|o| (o.starts_at, o.plan_id));
    Ok(out)
}

/// Cancels a plan (planners): no occurrence after now. Its rounds stay.
pub async fn cancel(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<PlanView> {
    require_planner(user)?;
    let mut tx = db.begin_write().await?;
    let row = lock_for_planner(db, tx.conn(), user, id).await?;
    if row.cancelled_at.is_some() {
        return Err(ApiError::conflict("this plan is already cancelled"));
    }
    let now = now_ms();
    store::cancel(tx.conn(), id, now).await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "plan.cancel",
        "plan",
        &id.to_string(),
        None::<&()>,
        None::<&()>,
    )
    .await?;
    let row = store::load(tx.conn(), id, "")
        .await?
        .ok_or_else(|| ApiError::not_found("plan"))?;
    changes::append(tx.conn(), &assignee_rows(&row)).await?;
    tx.commit().await?;
    view(&row, now)
}

/// What a reveal made visible.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Revealed {
    pub plans: Vec<Uuid>,
    pub rounds: Vec<Uuid>,
    pub cases: Vec<Uuid>,
}

/// Reveals unannounced plan `id` (planners): the plan, its rounds and their cases become
/// visible to the inspected zones' roster, whose phones pull them next (the change log names
/// them again), and the plan's nonce is published with its seal.
pub async fn reveal(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<Revealed> {
    require_planner(user)?;
    let mut tx = db.begin_write().await?;
    let row = lock_for_planner(db, tx.conn(), user, id).await?;
    if row.kind != "unannounced" {
        return Err(ApiError::conflict(
            "only an unannounced plan is revealed: this one is announced",
        ));
    }
    if row.revealed_at.is_some() {
        return Err(ApiError::conflict("this plan is already revealed"));
    }
    reveal_audited(tx, user, "plan", id, &[id], &[]).await
}

/// Reveals one unannounced round and the cases raised in it (planners whose scope covers its
/// zone): for a finding to be deducted before its plan is revealed or its period closes. The
/// plan, if any, stays confidential.
pub async fn reveal_round(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<Revealed> {
    require_planner(user)?;
    let scope = user.scope(db).await?;
    let mut tx = db.begin_write().await?;
    let round = store::round_state(tx.conn(), id, db.backend.for_update())
        .await?
        .filter(|r| scope.contains(r.zone_id))
        .ok_or_else(|| ApiError::not_found("round"))?;
    if round.kind != "unannounced" {
        return Err(ApiError::conflict(
            "only an unannounced round is revealed: this one is announced",
        ));
    }
    if round.revealed_at.is_some() {
        return Err(ApiError::conflict("this round is already revealed"));
    }
    reveal_audited(tx, user, "round", id, &[], &[id]).await
}

/// Reveals `plans` and `rounds` for `user` in `tx`, audits it as `{entity}.reveal` of `id`,
/// appends the change-log rows last and commits.
async fn reveal_audited(
    mut tx: crate::store::WriteTx,
    user: &AuthUser,
    entity: &str,
    id: Uuid,
    plans: &[Uuid],
    rounds: &[Uuid],
) -> ApiResult<Revealed> {
    let (revealed, rows) =
        reveal_in(tx.conn(), plans, rounds, Some(user.user_id), now_ms()).await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        &format!("{entity}.reveal"),
        entity,
        &id.to_string(),
        None::<&()>,
        Some(&revealed),
    )
    .await?;
    changes::append(tx.conn(), &rows).await?;
    tx.commit().await?;
    Ok(revealed)
}

/// Reveals plans `plans` and the plan-less unannounced rounds `rounds` inside a transaction:
/// what was revealed and the change-log rows the caller appends last.
pub async fn reveal_in(
    conn: &mut AnyConnection,
    plans: &[Uuid],
    rounds: &[Uuid],
    by: Option<Uuid>,
    at: i64,
) -> Result<(Revealed, Vec<PendingChange>), sqlx::Error> {
    let mut all_rounds: Vec<Uuid> = rounds.to_vec();
    let mut rows = Vec::new();
    for plan in plans {
        all_rounds.extend(store::reveal(conn, *plan, by, at).await?);
        if let Some(row) = store::load(conn, *plan, "").await? {
            rows.extend(assignee_rows(&row));
        }
    }
    store::reveal_rounds(conn, rounds, at).await?;
    all_rounds.sort();
    all_rounds.dedup();
    let mut round_zones = Vec::new();
    for r in &all_rounds {
        if let Some(v) = crate::store::sync::round_view(&mut *conn, &r.to_string()).await? {
            round_zones.push((v.id, v.zone_id));
        }
    }
    let cases = store::cases_of_rounds(conn, &all_rounds).await?;
    for (round, zone) in &round_zones {
        rows.push(PendingChange::upsert(
            EntityKind::Round,
            round,
            Some(zone.to_string()),
        ));
    }
    for (case, zone) in &cases {
        rows.push(PendingChange::upsert(
            EntityKind::Case,
            case,
            Some(zone.to_string()),
        ));
        // Its conflicts were kept from the zone's pulls too.
        for conflict in store::conflicts_of_case(conn, *case).await? {
            rows.push(PendingChange::upsert(
                EntityKind::Conflict,
                conflict,
                Some(zone.to_string()),
            ));
        }
    }
    Ok((
        Revealed {
            plans: plans.to_vec(),
            rounds: all_rounds,
            cases: cases.iter().map(|(c, _)| *c).collect(),
        },
        rows,
    ))
}

/// Reveals, inside the close of period `period`, every unannounced round started before `end`
/// and finished (or started a day before the close and never finished) with the cases raised
/// in it (their findings count in the period, so the zone sees them now): a round still under
/// way at an early close stays confidential. Also those of
/// their plans that have no occurrence after `end` (ended or cancelled by then): a plan that
/// goes on stays confidential, or its next visits would be announced, until a planner reveals
/// it. Returns the change-log rows for the caller to append last.
pub async fn reveal_before(
    conn: &mut AnyConnection,
    period: Uuid,
    end: i64,
    at: i64,
) -> Result<Vec<PendingChange>, sqlx::Error> {
    let (candidates, rounds) = store::unrevealed_before(conn, end, at).await?;
    if rounds.is_empty() {
        return Ok(vec![]);
    }
    let mut plans = Vec::new();
    for id in candidates {
        let Some(row) = store::load(conn, id, "").await? else {
            continue;
        };
        let over = row.cancelled_at.is_some_and(|c| c <= end)
            || Recurrence::parse(&row.rrule, &row.dtstart, &row.time_zone)
                .map(|r| {
                    r.starts_between(end, end + 20 * 366 * 86_400_000)
                        .is_empty()
                })
                .unwrap_or(false);
        if over {
            plans.push(id);
        }
    }
    let (revealed, rows) = reveal_in(conn, &plans, &rounds, None, at).await?;
    audit::record(
        conn,
        None,
        "plan.reveal",
        "period",
        &period.to_string(),
        None::<&()>,
        Some(&revealed),
    )
    .await?;
    Ok(rows)
}

/// What the planners' editor offers to choose from.
#[derive(Debug, Clone)]
pub struct PlanChoices {
    /// The zones in the planner's scope.
    pub zones: Vec<crate::model::Zone>,
    pub taxonomy: Vec<crate::model::TaxonomyEntry>,
    /// The inspectors who may be assigned: not disabled.
    pub inspectors: Vec<users::UserRow>,
}

/// The choices of a new plan for `user` (planners).
pub async fn choices(db: &Db, user: &AuthUser) -> ApiResult<PlanChoices> {
    require_planner(user)?;
    let scope = user.scope(db).await?;
    Ok(PlanChoices {
        zones: reference::zones(&db.pool, scope.zones()).await?,
        taxonomy: reference::taxonomy(&db.pool).await?,
        inspectors: users::list(&db.pool)
            .await?
            .into_iter()
            .filter(|u| u.disabled_at.is_none() && u.roles.contains(&Role::Inspector))
            .collect(),
    })
}

/// A seal checked with this server's own key for its receipt: every problem found (none when
/// it holds), or `None` when the receipt names a key the server does not have.
pub fn check_seal(
    keys: &crate::auth::keys::Keyring,
    proof: &SealProof,
) -> Option<Vec<seal::SealProblem>> {
    keys.verifying_key(&proof.receipt.key_id)
        .map(|key| seal::verify(proof, key))
}

/// The seal of plan `id`: its commitment, receipt and audit path, and after the reveal the
/// plan's sealed content and nonce, for anyone who may see the plan to check with
/// [`crate::seal::verify`].
pub async fn seal_proof(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<SealProof> {
    let row = load_visible(db, user, id).await?;
    let mut conn = db.pool.acquire().await?;
    let (commitment, receipt) = store::log_entry(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("seal (only unannounced plans are sealed)"))?;
    let leaves = store::leaves(&mut *conn, receipt.tree_size).await?;
    let log = crate::ledger::log::Log::from_leaves(leaves);
    let path = log
        .inclusion_proof(log.size().saturating_sub(1))
        .unwrap_or_default();
    let revealed = row.revealed_at.is_some();
    Ok(SealProof {
        content: sealed_content(&row),
        nonce: if revealed { row.nonce.clone() } else { None },
        commitment,
        receipt,
        inclusion_proof: path.iter().map(hex::encode).collect(),
        first_finding_at: store::first_finding_at(&mut conn, id).await?,
    })
}

/// The planned-inspection indicators of each zone for the period `[starts, as_of)`: per zone
/// id, the occurrences whose window ended in it, those a round was started for within the
/// window, and the checklist items failed on the zone's planned rounds started in it. An
/// unannounced plan counts once revealed (before, its occurrences would tell the zone of it).
pub async fn zone_inspections(
    conn: &mut AnyConnection,
    starts: i64,
    as_of: i64,
) -> Result<std::collections::BTreeMap<String, (i64, i64, i64)>, sqlx::Error> {
    let mut out: std::collections::BTreeMap<String, (i64, i64, i64)> = Default::default();
    for row in store::list(conn, None).await? {
        if row.kind == "unannounced" && row.revealed_at.is_none() {
            continue;
        }
        let Ok(recurrence) = Recurrence::parse(&row.rrule, &row.dtstart, &row.time_zone) else {
            tracing::error!(plan = %row.id, "a stored plan's recurrence does not parse");
            continue;
        };
        let window = row.window_minutes * 60_000;
        let end = row.cancelled_at.map_or(as_of, |c| c.min(as_of));
        let rounds = store::rounds_of(conn, row.id).await?;
        for s in recurrence.starts_between(starts - window, end) {
            if s + window <= starts || s + window > as_of {
                continue;
            }
            for zone in &row.zones {
                let slot = out.entry(zone.to_string()).or_default();
                slot.0 += 1;
                if rounds.iter().any(|r| {
                    r.zone_id == *zone && r.occurrence_at == Some(s) && r.started_at < s + window
                }) {
                    slot.1 += 1;
                }
            }
        }
        for r in &rounds {
            if (starts..as_of).contains(&r.started_at) {
                out.entry(r.zone_id.to_string()).or_default().2 += r.items_failed.unwrap_or(0);
            }
        }
    }
    Ok(out)
}

/// Writes again the plan rows of every plan one of whose occurrences ended since its rows were
/// last written, so that the assignees' phones pull its next occurrences (`upcoming`) anew.
/// Returns how many plans were refreshed. Several instances may run it at once: a row written
/// twice is pulled as one upsert.
pub async fn refresh_upcoming(db: &Db, now: i64) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let rows = store::list(tx.conn(), None).await?;
    let mut pending = Vec::new();
    let mut refreshed = 0;
    for row in rows
        .iter()
        .filter(|r| r.cancelled_at.is_none() && !r.assignees.is_empty())
    {
        let Ok(recurrence) = Recurrence::parse(&row.rrule, &row.dtstart, &row.time_zone) else {
            continue;
        };
        let written = store::last_written(tx.conn(), row.id)
            .await?
            .unwrap_or(row.created_at);
        let window = row.window_minutes * 60_000;
        if !recurrence
            .starts_between(written - window, now - window + 1)
            .is_empty()
        {
            pending.extend(assignee_rows(row));
            refreshed += 1;
        }
    }
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    Ok(refreshed)
}
