//! The Open311 GeoReport v2 façade: existing civic apps and city portals file reports and follow
//! them (<http://wiki.open311.org/GeoReport_v2>). Services are the taxonomy, grouped by work
//! category; a request filed here is a case from the `public_report` channel, taken in through
//! `intake::take_in_as` like any other (routed to its zone, the reporter's name and phone kept
//! apart as a caller); requests are listed with their public status only.
//!
//! Only requests filed through the public channel are listed (an inspector's finding or a
//! hotline operator's notes are the office's); answers carry no personal data of anyone: no
//! caller, no reporter, no inspector, no chief.

use gridline_sync::case::{CaseSource, CaseState};
use gridline_sync::ops::{GeoPoint, Severity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::Scope;
use crate::config::IntakeConfig;
use crate::error::{ApiError, ApiResult};
use crate::i18n::Lang;
use crate::intake::{self, CallerInput, IntakeInput, Reporter};
use crate::model::{TaxonomyEntry, TaxonomyKind};
use crate::store::intake::{self as store, Open311Client};
use crate::store::{self as db_store, new_id, now_ms, Db};

/// The newest requests a list answers, and how far back it looks by default (the
/// specification's defaults).
pub const MAX_LISTED: i64 = 1000;
pub const DEFAULT_WINDOW_DAYS: i64 = 90;

/// A service: one entry of the taxonomy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Open311Service)]
pub struct Service {
    /// The taxonomy key, e.g. `event:0102`.
    pub service_code: String,
    pub service_name: String,
    pub description: String,
    /// No service takes extra attributes: the definition lists none.
    pub metadata: bool,
    /// `realtime`: a request is a case at once.
    #[serde(rename = "type")]
    pub kind: String,
    pub keywords: String,
    /// The work category.
    pub group: String,
}

/// `services/{code}`: the service's attributes (none).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Open311ServiceDefinition)]
pub struct ServiceDefinition {
    pub service_code: String,
    #[schema(value_type = Vec<Object>)]
    pub attributes: Vec<serde_json::Value>,
}

/// A request's public state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Open311ServiceRequest)]
pub struct ServiceRequest {
    pub service_request_id: String,
    /// `open` or `closed`.
    pub status: String,
    pub status_notes: Option<String>,
    pub service_name: String,
    pub service_code: String,
    pub description: String,
    pub agency_responsible: Option<String>,
    pub service_notice: Option<String>,
    pub requested_datetime: String,
    pub updated_datetime: String,
    pub expected_datetime: Option<String>,
    pub address: Option<String>,
    pub address_id: Option<String>,
    pub zipcode: Option<String>,
    pub lat: f64,
    pub long: f64,
    pub media_url: Option<String>,
}

/// The answer to a filed request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Open311Filed)]
pub struct Filed {
    pub service_request_id: String,
    pub service_notice: Option<String>,
    pub account_id: Option<String>,
}

/// `POST requests`: the specification's fields (`attribute[…]`, `device_id`, `account_id`
/// and `media_url` are accepted and not kept; `email` is not kept either).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = Open311RequestForm)]
pub struct RequestForm {
    pub api_key: Option<String>,
    pub jurisdiction_id: Option<String>,
    pub service_code: Option<String>,
    pub lat: Option<String>,
    pub long: Option<String>,
    pub address_string: Option<String>,
    pub address_id: Option<String>,
    pub email: Option<String>,
    pub device_id: Option<String>,
    pub account_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub description: Option<String>,
    pub media_url: Option<String>,
}

/// `GET requests`: the specification's filters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub jurisdiction_id: Option<String>,
    /// Comma-separated ids; overrides the other filters.
    pub service_request_id: Option<String>,
    pub service_code: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    /// `open` or `closed`, or both comma-separated.
    pub status: Option<String>,
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Registers a client application: its service account (a disabled user, so nobody signs in
/// as it) and its API key, returned once and kept only as a hash.
pub async fn add_client(
    db: &Db,
    actor: Option<Uuid>,
    name: &str,
) -> ApiResult<(Open311Client, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "1 to 100 characters"));
    }
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let username = format!("open311-{}", &slug[..slug.len().min(40)]);
    let key = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    // The service account: disabled from the start, with a password nobody is told.
    let user = crate::store::users::UserRow {
        id: new_id(),
        username,
        display_name: format!("Open311: {name}"),
        password_hash: crate::auth::password::hash(format!("{key}-unused")).await?,
        roles: vec![gridline_sync::Role::HotlineOperator],
        disabled_at: Some(now_ms()),
        created_at: now_ms(),
        email: None,
    };
    let client = Open311Client {
        id: new_id(),
        name: name.to_owned(),
        user_id: user.id,
        created_at: now_ms(),
        revoked_at: None,
    };
    let mut tx = db.begin_write().await?;
    let taken = || ApiError::conflict(format!("a client named {name} is registered already"));
    if crate::store::users::by_username(tx.conn(), &user.username)
        .await?
        .is_some()
    {
        return Err(taken());
    }
    crate::store::users::insert(tx.conn(), &user).await?;
    if let Err(e) = store::insert_client(tx.conn(), &client, &key_hash(&key)).await {
        return Err(match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => taken(),
            _ => e.into(),
        });
    }
    crate::store::audit::record(
        tx.conn(),
        actor,
        "open311.client.add",
        "open311_client",
        &client.id.to_string(),
        None::<&serde_json::Value>,
        Some(&serde_json::json!({ "name": client.name, "user_id": client.user_id })),
    )
    .await?;
    tx.commit().await?;
    Ok((client, key))
}

/// The client an API key belongs to (`forbidden` for none or a revoked one).
pub async fn client(db: &Db, api_key: Option<&str>) -> ApiResult<Open311Client> {
    let key = api_key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::forbidden("an api_key is required to file a request"))?;
    store::client_by_key(&db.pool, &key_hash(key))
        .await?
        .ok_or_else(|| ApiError::forbidden("unknown api_key"))
}

fn service_of(t: &TaxonomyEntry, lang: Lang) -> Service {
    let name = match lang {
        Lang::ZhCn => &t.name_zh,
        Lang::En => &t.name_en,
    };
    Service {
        service_code: t.key.clone(),
        service_name: name.clone(),
        description: String::new(),
        metadata: false,
        kind: "realtime".into(),
        keywords: format!(
            "{} {}",
            match t.kind {
                TaxonomyKind::Component => "component",
                TaxonomyKind::Event => "event",
            },
            t.code
        ),
        group: crate::i18n::name(lang, "work", t.work_category.as_str()),
    }
}

/// Every service, grouped by work category.
pub async fn services(db: &Db, lang: Lang) -> ApiResult<Vec<Service>> {
    let mut out: Vec<Service> = db_store::reference::taxonomy(&db.pool)
        .await?
        .iter()
        .map(|t| service_of(t, lang))
        .collect();
    out.sort_by(|a, b| {
        a.group
            .cmp(&b.group)
            .then(a.service_code.cmp(&b.service_code))
    });
    Ok(out)
}

pub async fn definition(db: &Db, code: &str) -> ApiResult<ServiceDefinition> {
    db_store::reference::taxonomy_entry(&db.pool, code)
        .await?
        .ok_or_else(|| ApiError::not_found("service"))?;
    Ok(ServiceDefinition {
        service_code: code.to_owned(),
        attributes: Vec::new(),
    })
}

fn text(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn coordinate(field: &str, v: &Option<String>) -> ApiResult<Option<f64>> {
    text(v)
        .map(|s| {
            s.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| ApiError::invalid(field, "must be a decimal number"))
        })
        .transpose()
}

/// Files a request from `client` as a case of the `public_report` channel.
pub async fn file(
    db: &Db,
    config: &IntakeConfig,
    client: &Open311Client,
    form: RequestForm,
) -> ApiResult<Filed> {
    let service_code =
        text(&form.service_code).ok_or_else(|| ApiError::invalid("service_code", "required"))?;
    let location = match (
        coordinate("lat", &form.lat)?,
        coordinate("long", &form.long)?,
    ) {
        (Some(lat), Some(lon)) => Some(GeoPoint::wgs84(lat, lon)),
        (None, None) => None,
        _ => return Err(ApiError::invalid("lat", "give both lat and long")),
    };
    let address = text(&form.address_string);
    if location.is_none() {
        // The specification allows an address alone; without a geocoder it cannot be placed.
        return Err(ApiError::invalid(
            "lat",
            "lat and long are required: this server does not geocode addresses",
        ));
    }
    let name = match (text(&form.first_name), text(&form.last_name)) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    };
    let caller = CallerInput {
        name,
        phone: text(&form.phone),
    };
    let input = IntakeInput {
        channel: CaseSource::PublicReport,
        external_ref: None,
        category_code: service_code,
        description: text(&form.description).unwrap_or_default(),
        severity: Severity::Medium,
        address: address.unwrap_or_else(|| "—".into()),
        location,
        asset_code: None,
        zone_id: None,
        caller: (caller.name.is_some() || caller.phone.is_some()).then_some(caller),
        received_at: None,
        photos: Vec::new(),
    };
    let reporter = Reporter {
        user_id: client.user_id,
        supervisor_level: false,
        scope: Scope::All,
        // Its answer names no other case: nothing is read on its behalf.
        reader: Some(client.user_id),
    };
    let outcome = intake::take_in_as(db, config, &reporter, input).await?;
    Ok(Filed {
        service_request_id: outcome.case.id.to_string(),
        service_notice: None,
        account_id: None,
    })
}

fn rfc3339(ms: i64) -> String {
    db_store::rfc3339(ms)
}

fn date(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    text(v)
        .map(|s| {
            OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .map(db_store::ms_from_time)
                .map_err(|_| {
                    ApiError::invalid(field, "must be a w3 date-time such as 2026-12-01T00:00:00Z")
                })
        })
        .transpose()
}

/// Requests filed through the public channel, newest first, filtered as the specification
/// says (by default the last 90 days, at most 1000).
pub async fn list(db: &Db, lang: Lang, q: &ListQuery) -> ApiResult<Vec<ServiceRequest>> {
    let now = now_ms();
    let ids: Option<Vec<Uuid>> = text(&q.service_request_id).map(|s| {
        s.split(',')
            .filter_map(|id| Uuid::parse_str(id.trim()).ok())
            .take(MAX_LISTED as usize)
            .collect()
    });
    let statuses: Vec<String> = text(&q.status)
        .map(|s| s.split(',').map(|x| x.trim().to_lowercase()).collect())
        .unwrap_or_default();
    if statuses.iter().any(|s| s != "open" && s != "closed") {
        return Err(ApiError::invalid("status", "open, closed or both"));
    }
    let (from, to, category) = if ids.is_some() {
        (i64::MIN, i64::MAX, None)
    } else {
        let end = date("end_date", &q.end_date)?.unwrap_or(now + 1);
        let start =
            date("start_date", &q.start_date)?.unwrap_or(end - DEFAULT_WINDOW_DAYS * 86_400_000);
        (start, end, text(&q.service_code))
    };
    if ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let found = store::public_reports(
        &db.pool,
        (from, to),
        category.as_deref(),
        ids.as_deref(),
        MAX_LISTED,
    )
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for id in found {
        let Some(case) = db_store::cases::get(&db.pool, id).await? else {
            continue;
        };
        let r = request_of(db, lang, case).await?;
        if statuses.is_empty() || statuses.contains(&r.status) {
            out.push(r);
        }
    }
    Ok(out)
}

/// One request (`not_found` for any case not filed through the public channel).
pub async fn get(db: &Db, lang: Lang, id: &str) -> ApiResult<ServiceRequest> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found("service request"))?;
    let case = db_store::cases::get(&db.pool, id)
        .await?
        .filter(|c| c.source == CaseSource::PublicReport.as_str())
        .ok_or_else(|| ApiError::not_found("service request"))?;
    request_of(db, lang, case).await
}

async fn request_of(
    db: &Db,
    lang: Lang,
    case: db_store::cases::CaseRow,
) -> ApiResult<ServiceRequest> {
    let id = case.id;
    let intake = store::of_case(&db.pool, id).await?;
    let mut conn = db.pool.acquire().await?;
    let wf = db_store::review::workflows(&mut conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let names = db_store::reference::taxonomy_entry(&db.pool, &case.category_code).await?;
    use CaseState::*;
    let closed = matches!(case.state, Closed | NotFiled | Duplicate | Withdrawn);
    let notes = match case.state {
        Reported => None,
        Filed | Dispatched | InProgress | PendingVerification => {
            Some(crate::i18n::name(lang, "state", case.state.as_str()))
        }
        Closed | NotFiled | Duplicate | Withdrawn => {
            Some(crate::i18n::name(lang, "state", case.state.as_str()))
        }
    };
    Ok(ServiceRequest {
        service_request_id: id.to_string(),
        status: if closed { "closed" } else { "open" }.into(),
        status_notes: notes,
        service_name: names
            .map(|t| match lang {
                Lang::ZhCn => t.name_zh,
                Lang::En => t.name_en,
            })
            .unwrap_or_else(|| case.category_code.clone()),
        service_code: case.category_code.clone(),
        description: case.description.clone(),
        agency_responsible: None,
        service_notice: None,
        requested_datetime: rfc3339(case.received_at),
        updated_datetime: rfc3339(case.updated_at),
        expected_datetime: wf.deadline_at.map(rfc3339),
        address: intake.map(|i| i.address),
        address_id: None,
        zipcode: None,
        lat: case.lat,
        long: case.lon,
        media_url: None,
    })
}
