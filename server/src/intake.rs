//! Cases from outside the patrol (受理): a hotline call, a public report, a department's
//! transfer, the press, a leader's written instruction. Each becomes a case in `reported`, in
//! the zone its place falls in, and runs the same workflow as an inspector's finding.
//!
//! The people who reported it are kept apart from the case (`store::intake`): nothing that
//! carries a case — the pull, exports, notices, Open311, the audit log — carries them. Hotline
//! operators and admins read them to call back; supervisors see them masked; they are erased
//! after `intake.caller_retention_days`.
//!
//! A report from the public (`CaseSource::needs_site_verification`) costs a zone points only
//! after an inspector's visit that found it, with a photo (`case.verify@1`); the ledger checks
//! it (`ledger::proposals::deductible`).

use gridline_sync::case::{CaseField, CaseSource, CaseState};
use gridline_sync::conflict::CaseFields;
use gridline_sync::ops::{GeoPoint, PhotoManifest, PhotoRole, Severity};
use gridline_sync::validation::{is_asset_code, is_category_code};
use gridline_sync::{EntityKind, ErrorCode, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::{AuthUser, Scope};
use crate::config::IntakeConfig;
use crate::error::{ApiError, ApiResult};
use crate::model::CaseView;
use crate::store::cases::{self, CaseRow, EventRow, HistoryRow, PhotoRow};
use crate::store::changes::{self, PendingChange};
use crate::store::intake::{self as store, CallbackRow, CallerRow, IntakeRow};
use crate::store::{audit, ms_from_time, new_id, now_ms, reference, time_from_ms, Db};
use crate::sync::view::case_views;

/// Longest ticket number, address, name and phone number accepted.
const MAX_REF_CHARS: usize = 64;
const MAX_ADDRESS_CHARS: usize = 300;
const MAX_NAME_CHARS: usize = 100;
const MAX_PHONE_CHARS: usize = 32;

/// The roles that take reports in.
pub const INTAKE_ROLES: &[Role] = &[Role::HotlineOperator, Role::Supervisor];

/// Someone who reported a case: their name and phone number, both optional (an anonymous
/// call has neither).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// `POST /v1/intake`: a report taken in from a channel outside the patrol.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeInput {
    /// Any source but `inspection` (which comes from phones).
    #[schema(value_type = String, example = "hotline")]
    pub channel: CaseSource,
    /// The channel's own ticket number (the hotline's work order); unique within the channel,
    /// so the same ticket is never filed twice.
    #[serde(default)]
    pub external_ref: Option<String>,
    /// Taxonomy key, e.g. `event:0102`.
    pub category_code: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "medium")]
    #[schema(value_type = String)]
    pub severity: Severity,
    /// The place as told, 1 to 300 characters.
    pub address: String,
    /// The place on the map; with `asset_code`, one of the two is required.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub location: Option<GeoPoint>,
    /// A registered asset the report is about: its zone and place when `location` is absent.
    #[serde(default)]
    pub asset_code: Option<String>,
    /// The zone, when the place falls in none (or to overrule the map).
    #[serde(default)]
    pub zone_id: Option<Uuid>,
    /// Who called; kept apart from the case.
    #[serde(default)]
    pub caller: Option<CallerInput>,
    /// When the call came in or the document arrived; now when absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub received_at: Option<OffsetDateTime>,
    /// `intake` photos that came with the report (uploaded as any photo is, by its SHA-256).
    #[serde(default)]
    pub photos: Vec<PhotoManifest>,
}

fn medium() -> Severity {
    Severity::Medium
}

/// An open case a new report may duplicate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DuplicateSuggestion {
    pub case_id: Uuid,
    #[schema(value_type = String)]
    pub state: String,
    pub source: String,
    pub category_code: String,
    pub description: String,
    /// The reports are about the same registered asset.
    pub same_asset: bool,
    /// How far apart the two places are, metres.
    pub distance_m: f64,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// The case a report became, and the open cases it may duplicate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IntakeOutcome {
    pub case: CaseView,
    pub duplicates: Vec<DuplicateSuggestion>,
}

/// What a case carries beside itself about the people who reported it: how it came in (for
/// a case from a channel), its callers (masked unless the reader calls back; a case from the
/// patrol has callers when a duplicate from a channel was merged into it) and the callbacks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IntakeRecord {
    pub case_id: Uuid,
    /// The case's source (`inspection` for the patrol).
    pub channel: String,
    pub external_ref: Option<String>,
    pub address: Option<String>,
    pub received_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub received_at: Option<OffsetDateTime>,
    pub callers: Vec<CallerView>,
    pub callbacks: Vec<CallbackView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallerView {
    pub id: Uuid,
    /// Masked (`张*`) unless the reader is a hotline operator or an admin; `null` once erased.
    pub name: Option<String>,
    /// Masked (`138****5678`) likewise.
    pub phone: Option<String>,
    /// Brought here by a merge from this duplicate.
    pub merged_from: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub retain_until: OffsetDateTime,
    pub erased: bool,
}

/// The answer a caller gave when called back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackOutcome {
    Satisfied,
    BasicallySatisfied,
    Dissatisfied,
    /// Nobody answered.
    Unreachable,
}

impl CallbackOutcome {
    pub const ALL: &'static [CallbackOutcome] = &[
        CallbackOutcome::Satisfied,
        CallbackOutcome::BasicallySatisfied,
        CallbackOutcome::Dissatisfied,
        CallbackOutcome::Unreachable,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackOutcome::Satisfied => "satisfied",
            CallbackOutcome::BasicallySatisfied => "basically_satisfied",
            CallbackOutcome::Dissatisfied => "dissatisfied",
            CallbackOutcome::Unreachable => "unreachable",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallbackView {
    pub id: Uuid,
    pub caller_id: Option<Uuid>,
    pub outcome: CallbackOutcome,
    pub note: Option<String>,
    pub called_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub called_at: OffsetDateTime,
}

/// `POST /v1/cases/{id}/callbacks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackInput {
    /// The caller called back; absent for a case with one caller or none.
    #[serde(default)]
    pub caller_id: Option<Uuid>,
    pub outcome: CallbackOutcome,
    #[serde(default)]
    pub note: Option<String>,
}

/// `张*`, `Li ***`: the first character, the rest starred.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first)
            .chain(chars.map(|c| if c.is_whitespace() { c } else { '*' }))
            .collect(),
        None => String::new(),
    }
}

/// `138****5678`: the first three and last four digits of a number of eight or more, else
/// every digit starred.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() >= 8 {
        let keep_tail = chars.len() - 4;
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| if i < 3 || i >= keep_tail { *c } else { '*' })
            .collect()
    } else {
        "*".repeat(chars.len())
    }
}

fn optional_text(field: &str, value: &Option<String>, max: usize) -> ApiResult<Option<String>> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.chars().count() > max => Err(ApiError::invalid(
            field,
            format!("at most {max} characters"),
        )),
        Some(v) if v.chars().any(char::is_control) => {
            Err(ApiError::invalid(field, "must be one line of text"))
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// The checked parts of an [`IntakeInput`] that need no database.
struct Checked {
    external_ref: Option<String>,
    address: String,
    caller: Option<(Option<String>, Option<String>)>,
}

fn check(input: &IntakeInput) -> ApiResult<Checked> {
    if input.channel == CaseSource::Inspection {
        return Err(ApiError::invalid(
            "channel",
            "an inspection finding comes from an inspector's phone",
        ));
    }
    let external_ref = optional_text("external_ref", &input.external_ref, MAX_REF_CHARS)?;
    let address = input.address.trim().to_owned();
    if address.is_empty() || address.chars().count() > MAX_ADDRESS_CHARS {
        return Err(ApiError::invalid(
            "address",
            format!("1 to {MAX_ADDRESS_CHARS} characters"),
        ));
    }
    if !is_category_code(&input.category_code) {
        return Err(ApiError::invalid(
            "category_code",
            "must be a taxonomy key such as event:0102",
        ));
    }
    if input.description.chars().count() > gridline_sync::validation::MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(
            "description",
            format!(
                "at most {} characters",
                gridline_sync::validation::MAX_DESCRIPTION_CHARS
            ),
        ));
    }
    if let Some(asset) = &input.asset_code {
        if !is_asset_code(asset) {
            return Err(ApiError::invalid(
                "asset_code",
                "must be a 16-digit asset code",
            ));
        }
    }
    if let Some(p) = &input.location {
        let on_earth = p.lat.is_finite()
            && p.lon.is_finite()
            && (-90.0..=90.0).contains(&p.lat)
            && (-180.0..=180.0).contains(&p.lon);
        if !on_earth {
            return Err(ApiError::invalid("location", "not a point on the earth"));
        }
    }
    if input.location.is_none() && input.asset_code.is_none() {
        return Err(ApiError::invalid(
            "location",
            "give the place on the map or the asset's code",
        ));
    }
    // The photos are checked as a phone's are: hashes, sizes, and the `intake` role.
    if let Err(errors) = gridline_sync::ops::validate_photos(&input.photos, PhotoRole::Intake) {
        if let Some(e) = errors.errors.first() {
            return Err(ApiError::invalid(&e.path, e.message.clone()));
        }
    }
    let caller = match &input.caller {
        None => None,
        Some(c) => {
            let name = optional_text("caller.name", &c.name, MAX_NAME_CHARS)?;
            let phone = optional_text("caller.phone", &c.phone, MAX_PHONE_CHARS)?;
            if let Some(p) = &phone {
                if !p
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')'))
                {
                    return Err(ApiError::invalid(
                        "caller.phone",
                        "digits, spaces and + - ( ) only",
                    ));
                }
            }
            (name.is_some() || phone.is_some()).then_some((name, phone))
        }
    };
    Ok(Checked {
        external_ref,
        address,
        caller,
    })
}

/// Takes a report in: checks it, routes it to its zone (the zone whose boundary holds the
/// place, or the asset's zone, or the one named), and writes the case, how it came in, its
/// caller and its photos in one transaction. A ticket number already filed in its channel is
/// refused (`conflict`, naming the case). Answers the case and the open cases it may
/// duplicate (same asset, or same category within `duplicate_radius_m` received in the last
/// `duplicate_days`).
pub async fn take_in(
    db: &Db,
    config: &IntakeConfig,
    user: &AuthUser,
    input: IntakeInput,
) -> ApiResult<IntakeOutcome> {
    user.require_any(INTAKE_ROLES)?;
    let reporter = Reporter {
        user_id: user.user_id,
        supervisor_level: user.is_supervisor_level(),
        scope: user.scope(db).await?,
        reader: user.confidential_reader(),
    };
    take_in_as(db, config, &reporter, input).await
}

/// Who a report is taken in as: a person at the console or the API ([`take_in`]), or the
/// service account of an Open311 client application, which may file in every zone.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub user_id: Uuid,
    /// Recorded as the level of the case's first field values.
    pub supervisor_level: bool,
    /// The zones they may file in, and read duplicates in.
    pub scope: Scope,
    /// Whom unannounced inspections are hidden from (`AuthUser::confidential_reader`): their
    /// cases are never suggested as duplicates to them.
    pub reader: Option<Uuid>,
}

/// [`take_in`] for a reporter whose right to file was checked by the caller.
pub async fn take_in_as(
    db: &Db,
    config: &IntakeConfig,
    reporter: &Reporter,
    input: IntakeInput,
) -> ApiResult<IntakeOutcome> {
    let checked = check(&input)?;
    if reference::taxonomy_entry(&db.pool, &input.category_code)
        .await?
        .is_none()
    {
        return Err(ApiError::invalid("category_code", "no such taxonomy entry"));
    }
    let asset = match &input.asset_code {
        Some(code) => Some(
            reference::asset(&db.pool, code)
                .await?
                .ok_or_else(|| ApiError::invalid("asset_code", "no such asset"))?,
        ),
        None => None,
    };
    let (lat, lon) = match (&input.location, &asset) {
        (Some(p), _) => p.datum.to_wgs84(p.lat, p.lon),
        (None, Some(a)) => (a.lat, a.lon),
        (None, None) => {
            return Err(ApiError::invalid(
                "location",
                "give the place on the map or the asset's code",
            ))
        }
    };
    let zones = reference::zones(&db.pool, None).await?;
    let holding = zones
        .iter()
        .find(|z| crate::geo::contains(&z.boundary, lon, lat));
    let zone = match (input.zone_id, holding, &asset) {
        (Some(id), _, _) => zones
            .iter()
            .find(|z| z.id == id)
            .ok_or_else(|| ApiError::invalid("zone_id", "no such zone"))?,
        (None, Some(z), _) => z,
        (None, None, Some(a)) => zones
            .iter()
            .find(|z| z.id == a.zone_id)
            .ok_or_else(|| ApiError::invalid("asset_code", "the asset's zone is gone"))?,
        (None, None, None) => {
            return Err(ApiError::invalid(
                "location",
                "the place is in no zone: choose the zone (zone_id)",
            ))
        }
    };
    reporter.scope.check_writable(zone.id)?;
    let mut flags = Vec::new();
    if !crate::geo::contains(&zone.boundary, lon, lat) {
        flags.push("location_outside_zone".to_owned());
    }
    let now = now_ms();
    let received_at = input.received_at.map(ms_from_time).unwrap_or(now);
    if received_at > now + 5 * 60_000 {
        return Err(ApiError::invalid("received_at", "is in the future"));
    }
    let case = CaseRow {
        id: new_id(),
        zone_id: zone.id,
        reporter_id: reporter.user_id,
        device_id: None,
        source: input.channel.as_str().to_owned(),
        state: CaseState::Reported,
        category_code: input.category_code.clone(),
        description: input.description.trim().to_owned(),
        severity: input.severity,
        asset_code: input.asset_code.clone(),
        lat,
        lon,
        // A place told or picked on a map, not measured.
        accuracy_m: 0.0,
        captured_at: received_at,
        queued_at: now,
        received_at: now,
        round_id: None,
        version: 1,
        locked_at: None,
        flags,
        created_at: now,
        updated_at: now,
    };
    let fields = CaseFields {
        category_code: case.category_code.clone(),
        description: case.description.clone(),
        severity: case.severity,
        asset_code: case.asset_code.clone(),
    };
    let history: Vec<HistoryRow> = CaseField::ALL
        .iter()
        .map(|f| HistoryRow {
            case_id: case.id,
            version: 1,
            field: f.as_str().to_owned(),
            value: fields.value(*f).to_string(),
            changed_by: reporter.user_id,
            level: if reporter.supervisor_level {
                "supervisor"
            } else {
                "inspector"
            }
            .to_owned(),
            at: now,
        })
        .collect();
    let photos: Vec<PhotoRow> = input
        .photos
        .iter()
        .map(|p| PhotoRow {
            case_id: case.id,
            sha256: p.sha256.clone(),
            size: p.size as i64,
            captured_at: ms_from_time(p.captured_at),
            gps_lat: p.gps.map(|g| g.to_wgs84().0),
            gps_lon: p.gps.map(|g| g.to_wgs84().1),
            role: PhotoRole::Intake.as_str().to_owned(),
            declared_by: reporter.user_id,
            declared_at: now,
        })
        .collect();
    let mut tx = db.begin_write().await?;
    if let Some(r) = &checked.external_ref {
        if let Some(existing) = store::by_ticket(tx.conn(), input.channel.as_str(), r).await? {
            return Err(ticket_taken(existing));
        }
    }
    cases::insert_cases(tx.conn(), std::slice::from_ref(&case)).await?;
    cases::insert_history(tx.conn(), &history).await?;
    cases::insert_photos(tx.conn(), &photos).await?;
    cases::insert_events(
        tx.conn(),
        &[EventRow {
            id: new_id(),
            case_id: case.id,
            version: 1,
            kind: "created".into(),
            actor_id: reporter.user_id,
            from_state: None,
            to_state: Some(CaseState::Reported.as_str().into()),
            comment: None,
            data: Some(
                json!({ "channel": input.channel.as_str(), "external_ref": checked.external_ref })
                    .to_string(),
            ),
            at: now,
        }],
    )
    .await?;
    let intake = IntakeRow {
        case_id: case.id,
        channel: input.channel.as_str().to_owned(),
        external_ref: checked.external_ref.clone(),
        address: checked.address.clone(),
        received_by: reporter.user_id,
        received_at,
    };
    if let Err(e) = store::insert(tx.conn(), &intake).await {
        // Two operators filing the same ticket at once: the second finds the first's case.
        if let (sqlx::Error::Database(d), Some(r)) = (&e, &checked.external_ref) {
            if d.is_unique_violation() {
                drop(tx);
                let existing = store::by_ticket(&db.pool, input.channel.as_str(), r).await?;
                return Err(existing.map(ticket_taken).unwrap_or_else(|| e.into()));
            }
        }
        return Err(e.into());
    }
    if let Some((name, phone)) = &checked.caller {
        store::insert_caller(
            tx.conn(),
            &CallerRow {
                id: new_id(),
                case_id: case.id,
                name: name.clone(),
                phone: phone.clone(),
                merged_from: None,
                recorded_by: reporter.user_id,
                recorded_at: now,
                retain_until: now + i64::from(config.caller_retention_days) * 86_400_000,
                erased_at: None,
            },
        )
        .await?;
    }
    // The supervisors who file it are told; the notice names the place, never the caller.
    let supervisors =
        crate::store::users::with_role(tx.conn(), gridline_sync::Role::Supervisor).await?;
    let recorded = crate::notify::record(
        tx.conn(),
        crate::notify::Notice {
            kind: crate::notify::NoticeKind::CaseReceived,
            case_id: Some(case.id),
            zone_id: Some(case.zone_id),
            data: json!({
                "source": intake.channel,
                "category_code": case.category_code,
                "state": case.state.as_str(),
            }),
            recipients: supervisors,
        },
        now,
    )
    .await?;
    // The audit record names the channel and ticket, never the caller.
    audit::record(
        tx.conn(),
        Some(reporter.user_id),
        "case.intake",
        "case",
        &case.id.to_string(),
        None::<&serde_json::Value>,
        Some(&json!({
            "channel": intake.channel,
            "external_ref": intake.external_ref,
            "zone_id": case.zone_id,
            "category_code": case.category_code,
            "caller_recorded": checked.caller.is_some(),
        })),
    )
    .await?;
    let mut pending = vec![PendingChange::upsert(
        EntityKind::Case,
        case.id,
        Some(case.zone_id.to_string()),
    )];
    pending.extend(recorded.changes);
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    let duplicates = suggestions(db, config, &case, &reporter.scope, reporter.reader).await?;
    let view = case_views(&mut db.reader().await?.reader(), Vec::new(), &[case.id])
        .await?
        .remove(&case.id)
        .ok_or_else(|| ApiError::not_found("case"))?;
    Ok(IntakeOutcome {
        case: view,
        duplicates,
    })
}

fn ticket_taken(existing: Uuid) -> ApiError {
    ApiError::conflict("this ticket has already been filed as a case")
        .with_details(json!({ "case_id": existing }))
}

/// The open cases `case` may duplicate: on its asset, or of its category within
/// `duplicate_radius_m` received in the last `duplicate_days`; nearest first, at most ten; only
/// cases in `scope` and not hidden from `reader` (an unannounced inspection's).
pub async fn suggestions(
    db: &Db,
    config: &IntakeConfig,
    case: &CaseRow,
    scope: &Scope,
    reader: Option<Uuid>,
) -> ApiResult<Vec<DuplicateSuggestion>> {
    let radius = config.duplicate_radius_m;
    // A box a little larger than the circle: a degree of latitude is about 111 km.
    let dlat = radius / 111_000.0 * 1.1;
    let dlon = dlat / case.lat.to_radians().cos().max(0.01);
    let since = case.received_at - i64::from(config.duplicate_days) * 86_400_000;
    let rows = store::nearby_open(
        &db.pool,
        case.id,
        case.asset_code.as_deref(),
        &case.category_code,
        since,
        (case.lat, case.lon),
        (dlat, dlon),
    )
    .await?;
    let mut visible = Vec::with_capacity(rows.len());
    for r in rows {
        if scope.contains(r.zone_id)
            && !crate::store::cases::is_hidden(&db.pool, r.id, reader).await?
        {
            visible.push(r);
        }
    }
    let mut out: Vec<DuplicateSuggestion> = visible
        .into_iter()
        .filter_map(|r| {
            let distance_m = crate::geo::distance_m(case.lat, case.lon, r.lat, r.lon);
            let same_asset = case.asset_code.is_some() && r.asset_code == case.asset_code;
            (same_asset || distance_m <= radius).then(|| DuplicateSuggestion {
                case_id: r.id,
                state: r.state,
                source: r.source,
                category_code: r.category_code,
                description: r.description,
                same_asset,
                distance_m: (distance_m * 10.0).round() / 10.0,
                received_at: time_from_ms(r.received_at),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.same_asset
            .cmp(&a.same_asset)
            .then(a.distance_m.total_cmp(&b.distance_m))
    });
    out.truncate(10);
    Ok(out)
}

/// The duplicates case `id` may be of, for a reader who may see it.
pub async fn suggestions_for(
    db: &Db,
    config: &IntakeConfig,
    user: &AuthUser,
    id: Uuid,
) -> ApiResult<Vec<DuplicateSuggestion>> {
    let case = visible_case(db, user, id).await?;
    let scope = user.scope(db).await?;
    suggestions(db, config, &case, &scope, user.confidential_reader()).await
}

/// What a reviewer may mark reported `case` a duplicate of, and the open cases near it or on
/// its asset: the review's candidates (same zone and category), with each nearby case not
/// among them put first, as a report is most often about a problem already known there.
/// Both are empty once the case is no longer `reported`.
pub async fn duplicate_choices(
    db: &Db,
    config: &IntakeConfig,
    user: &AuthUser,
    case: &CaseView,
) -> ApiResult<(
    Vec<crate::store::review::DuplicateCandidate>,
    Vec<DuplicateSuggestion>,
)> {
    if case.state != CaseState::Reported {
        return Ok((Vec::new(), Vec::new()));
    }
    let nearby = suggestions_for(db, config, user, case.id).await?;
    let mut originals = crate::review::duplicate_candidates(db, case).await?;
    for n in &nearby {
        if originals.iter().any(|o| o.id == n.case_id) {
            continue;
        }
        if let Ok(state) = cases::decode_state(&n.state) {
            originals.insert(
                0,
                crate::store::review::DuplicateCandidate {
                    id: n.case_id,
                    description: n.description.clone(),
                    state,
                    captured_at: ms_from_time(n.received_at),
                    received_at: ms_from_time(n.received_at),
                },
            );
        }
    }
    Ok((originals, nearby))
}

/// For a case from a source that needs verifying on site (a report from the public): whether
/// an inspector's visit found it, with a photo — the ledger's own rule for deducting it
/// ([`crate::ledger::proposals`] asks the same). `None` for any other source.
pub async fn site_verification(db: &Db, case: &CaseView) -> ApiResult<Option<bool>> {
    match CaseSource::parse(&case.source) {
        Some(s) if s.needs_site_verification() => {
            let mut conn = db.pool.acquire().await?;
            Ok(Some(store::verified_on_site(&mut conn, case.id).await?))
        }
        _ => Ok(None),
    }
}

async fn visible_case(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<CaseRow> {
    let case = cases::get(&db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let mut conn = db.pool.acquire().await?;
    user.scope(db)
        .await?
        .check_case_visible(&mut conn, user, id, case.zone_id)
        .await?;
    Ok(case)
}

/// Whether `user` reads callers in full: they call them back.
fn reads_callers(user: &AuthUser) -> bool {
    user.is_admin() || user.has(Role::HotlineOperator)
}

/// How case `id` came in, its callers and callbacks, for hotline operators and supervisors.
/// Callers are masked for supervisors.
pub async fn record_of(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<IntakeRecord> {
    user.require_any(INTAKE_ROLES)?;
    let case = visible_case(db, user, id).await?;
    let intake = store::of_case(&db.pool, id).await?;
    let full = reads_callers(user);
    let callers = store::callers(&db.pool, id)
        .await?
        .into_iter()
        .map(|c| CallerView {
            id: c.id,
            name: c.name.map(|n| if full { n } else { mask_name(&n) }),
            phone: c.phone.map(|p| if full { p } else { mask_phone(&p) }),
            merged_from: c.merged_from,
            retain_until: time_from_ms(c.retain_until),
            erased: c.erased_at.is_some(),
        })
        .collect();
    let callbacks = store::callbacks(&db.pool, id)
        .await?
        .into_iter()
        .map(callback_view)
        .collect();
    Ok(IntakeRecord {
        case_id: id,
        channel: case.source,
        external_ref: intake.as_ref().and_then(|i| i.external_ref.clone()),
        address: intake.as_ref().map(|i| i.address.clone()),
        received_by: intake.as_ref().map(|i| i.received_by),
        received_at: intake.as_ref().map(|i| time_from_ms(i.received_at)),
        callers,
        callbacks,
    })
}

fn callback_view(c: CallbackRow) -> CallbackView {
    CallbackView {
        id: c.id,
        caller_id: c.caller_id,
        outcome: CallbackOutcome::parse(&c.outcome).unwrap_or(CallbackOutcome::Unreachable),
        note: c.note,
        called_by: c.called_by,
        called_at: time_from_ms(c.called_at),
    }
}

/// Records a callback (回访) on a closed case from a channel: what the caller said.
pub async fn call_back(
    db: &Db,
    user: &AuthUser,
    id: Uuid,
    input: CallbackInput,
) -> ApiResult<CallbackView> {
    user.require_any(INTAKE_ROLES)?;
    let case = visible_case(db, user, id).await?;
    let callers = store::callers(&db.pool, id).await?;
    if callers.is_empty() && store::of_case(&db.pool, id).await?.is_none() {
        return Err(ApiError::invalid(
            "case",
            "nobody reported this case from outside the patrol: there is nobody to call back",
        ));
    }
    if case.state != CaseState::Closed {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            format!(
                "the case is {}: callers are called back once it is closed",
                case.state.as_str()
            ),
        ));
    }
    let note = optional_text("note", &input.note, 2000)?;
    let caller_id = match input.caller_id {
        Some(c) if callers.iter().any(|k| k.id == c) => Some(c),
        Some(_) => return Err(ApiError::invalid("caller_id", "not a caller of this case")),
        None if callers.len() > 1 => {
            return Err(ApiError::invalid(
                "caller_id",
                "the case has several callers: say which one was called",
            ))
        }
        None => callers.first().map(|c| c.id),
    };
    let row = CallbackRow {
        id: new_id(),
        case_id: id,
        caller_id,
        outcome: input.outcome.as_str().to_owned(),
        note,
        called_by: user.user_id,
        called_at: now_ms(),
    };
    let mut tx = db.begin_write().await?;
    store::insert_callback(tx.conn(), &row).await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "case.callback",
        "case",
        &id.to_string(),
        None::<&serde_json::Value>,
        Some(&json!({ "outcome": row.outcome, "caller_id": row.caller_id })),
    )
    .await?;
    tx.commit().await?;
    Ok(callback_view(row))
}
