//! Taking reports in from outside the patrol (hotline operators and supervisors): the intake
//! form, and on a case's page its intake record — channel, ticket, callers, callbacks — with
//! the callback form once the case is closed. The work is `crate::intake`'s.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use gridline_sync::case::{CaseSource, CaseState};
use gridline_sync::ops::{GeoPoint, Severity};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{failure, layout, page, Console, Section};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::i18n;
use crate::intake::{CallbackInput, CallbackOutcome, CallerInput, IntakeInput, IntakeRecord};
use crate::model::{TaxonomyEntry, Zone};
use crate::state::AppState;
use crate::store;

/// Whether the signed-in user takes reports in (and so sees the intake pages).
pub fn takes_reports(c: &Console) -> bool {
    c.session
        .user
        .require_any(crate::intake::INTAKE_ROLES)
        .is_ok()
}

pub async fn form(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    match form_page(&state, &c).await {
        Ok(m) => super::map::with_tiles(&state, page(StatusCode::OK, m)),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn form_page(state: &AppState, c: &Console) -> ApiResult<Markup> {
    c.session.user.require_any(crate::intake::INTAKE_ROLES)?;
    let taxonomy = store::reference::taxonomy(&state.db.pool).await?;
    let zones = store::reference::zones(&state.db.pool, None).await?;
    Ok(form_markup(c, &state.config, &taxonomy, &zones))
}

/// The intake form: the report, its place (with a map to pick it on) and the caller.
fn form_markup(c: &Console, config: &Config, taxonomy: &[TaxonomyEntry], zones: &[Zone]) -> Markup {
    let channels = CaseSource::ALL
        .iter()
        .filter(|s| **s != CaseSource::Inspection);
    let body = html! {
        h1 { (c.t("console-intake-title")) }
        p.muted { (c.t("console-intake-lead")) }
        form.intake method="post" action="/console/intake" hx-boost="true" {
            input type="hidden" name="csrf" value=(c.session.csrf);
            fieldset {
                legend { (c.t("console-intake-report")) }
                div {
                    label for="in-channel" { (c.t("col-source_name")) }
                    select #in-channel name="channel" required {
                        @for s in channels {
                            option value=(s.as_str()) { (i18n::name(c.lang, "source", s.as_str())) }
                        }
                    }
                }
                div {
                    label for="in-ref" { (c.t("console-intake-ticket")) }
                    input #in-ref name="external_ref" maxlength="64" autocomplete="off";
                }
                div {
                    label for="in-category" { (c.t("col-category_name")) }
                    select #in-category name="category_code" required {
                        option value="" { (c.t("console-choose")) }
                        @for t in taxonomy {
                            option value=(t.key) {
                                (t.code) " " (if c.lang == i18n::Lang::ZhCn { &t.name_zh } else { &t.name_en })
                            }
                        }
                    }
                }
                div {
                    label for="in-severity" { (c.t("col-severity_name")) }
                    select #in-severity name="severity" {
                        @for s in ["medium", "low", "high"] {
                            option value=(s) { (i18n::name(c.lang, "severity", s)) }
                        }
                    }
                }
                div.wide {
                    label for="in-description" { (c.t("col-description")) }
                    textarea #in-description name="description" rows="3" maxlength="4000" {}
                }
            }
            fieldset {
                legend { (c.t("console-intake-place")) }
                div.wide {
                    label for="in-address" { (c.t("console-intake-address")) }
                    input #in-address name="address" required maxlength="300";
                }
                div {
                    label for="in-lat" { (c.t("console-intake-lat")) }
                    input #in-lat name="lat" inputmode="decimal" pattern="-?[0-9]+(\\.[0-9]+)?";
                }
                div {
                    label for="in-lon" { (c.t("console-intake-lon")) }
                    input #in-lon name="lon" inputmode="decimal" pattern="-?[0-9]+(\\.[0-9]+)?";
                }
                div {
                    label for="in-datum" { (c.t("console-intake-datum")) }
                    select #in-datum name="datum" {
                        option value="gcj02" { (c.t("console-datum-gcj02")) }
                        option value="wgs84" { (c.t("console-datum-wgs84")) }
                        option value="bd09" { (c.t("console-datum-bd09")) }
                    }
                }
                div {
                    label for="in-asset" { (c.t("console-asset")) }
                    input #in-asset name="asset_code" inputmode="numeric" pattern="[0-9]{16}" autocomplete="off";
                }
                div {
                    label for="in-zone" { (c.t("console-intake-zone")) }
                    select #in-zone name="zone_id" {
                        option value="" { (c.t("console-intake-zone-auto")) }
                        @for z in zones {
                            option value=(z.id) { (z.code) " " (z.translations.pick(c.lang, &z.name)) }
                        }
                    }
                }
                p.muted.wide { (c.t("console-intake-place-help")) }
                div.wide.pick-map data-lat="#in-lat" data-lon="#in-lon" data-datum="#in-datum" {
                    p.muted { (c.t("console-intake-map-help")) }
                    (super::map::svg(c, zones, &[], 900.0, &c.t("console-intake-map"), config.console.map_tiles.as_ref()))
                }
            }
            fieldset {
                legend { (c.t("console-intake-caller")) }
                div {
                    label for="in-name" { (c.t("console-intake-caller-name")) }
                    input #in-name name="caller_name" maxlength="100" autocomplete="off";
                }
                div {
                    label for="in-phone" { (c.t("console-intake-caller-phone")) }
                    input #in-phone name="caller_phone" type="tel" maxlength="32" autocomplete="off";
                }
                p.muted.wide {
                    (c.ta("console-intake-caller-help", &[("days", &config.intake.caller_retention_days.to_string())]))
                }
            }
            button type="submit" { (c.t("console-intake-submit")) }
        }
    };
    layout(c, Section::Intake, &c.t("console-intake-title"), body)
}

#[derive(Debug, Deserialize)]
pub struct IntakeForm {
    csrf: Option<String>,
    channel: String,
    external_ref: Option<String>,
    category_code: String,
    severity: Option<String>,
    description: Option<String>,
    address: String,
    lat: Option<String>,
    lon: Option<String>,
    datum: Option<String>,
    asset_code: Option<String>,
    zone_id: Option<String>,
    caller_name: Option<String>,
    caller_phone: Option<String>,
}

/// A form field as the browser sends it: absent and blank are the same.
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn number(field: &str, v: &Option<String>) -> ApiResult<Option<f64>> {
    given(v)
        .map(|s| {
            s.parse::<f64>()
                .map_err(|_| ApiError::invalid(field, "must be a number"))
        })
        .transpose()
}

fn input_of(form: IntakeForm) -> ApiResult<IntakeInput> {
    let channel = CaseSource::parse(&form.channel)
        .ok_or_else(|| ApiError::invalid("channel", "unknown channel"))?;
    let severity = match form.severity.as_deref() {
        Some("low") => Severity::Low,
        Some("high") => Severity::High,
        _ => Severity::Medium,
    };
    let datum = match form.datum.as_deref() {
        Some("wgs84") => gridline_sync::Datum::Wgs84,
        Some("bd09") => gridline_sync::Datum::Bd09,
        _ => gridline_sync::Datum::Gcj02,
    };
    let location = match (number("lat", &form.lat)?, number("lon", &form.lon)?) {
        (Some(lat), Some(lon)) => Some(GeoPoint { lat, lon, datum }),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "location",
                "give both latitude and longitude",
            ))
        }
    };
    let zone_id = given(&form.zone_id)
        .map(|z| {
            z.parse::<Uuid>()
                .map_err(|_| ApiError::invalid("zone_id", "unknown zone"))
        })
        .transpose()?;
    let caller = CallerInput {
        name: given(&form.caller_name),
        phone: given(&form.caller_phone),
    };
    Ok(IntakeInput {
        channel,
        external_ref: given(&form.external_ref),
        category_code: form.category_code,
        description: given(&form.description).unwrap_or_default(),
        severity,
        address: form.address,
        location,
        asset_code: given(&form.asset_code),
        zone_id,
        caller: (caller.name.is_some() || caller.phone.is_some()).then_some(caller),
        received_at: None,
        photos: Vec::new(),
    })
}

pub async fn take_in(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Form(form): Form<IntakeForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let taken = async {
        let input = input_of(form)?;
        crate::intake::take_in(&state.db, &state.config.intake, &c.session.user, input).await
    }
    .await;
    match taken {
        Ok(outcome) => Redirect::to(&format!("/console/cases/{}", outcome.case.id)).into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackForm {
    csrf: Option<String>,
    caller_id: Option<String>,
    outcome: String,
    note: Option<String>,
}

pub async fn call_back(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<CallbackForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let done = async {
        let outcome = CallbackOutcome::parse(&form.outcome)
            .ok_or_else(|| ApiError::invalid("outcome", "unknown outcome"))?;
        let caller_id = given(&form.caller_id)
            .map(|s| {
                s.parse::<Uuid>()
                    .map_err(|_| ApiError::invalid("caller_id", "not a caller of this case"))
            })
            .transpose()?;
        let input = CallbackInput {
            caller_id,
            outcome,
            note: given(&form.note),
        };
        crate::intake::call_back(&state.db, &c.session.user, id, input).await
    }
    .await;
    match done {
        Ok(_) => Redirect::to(&format!("/console/cases/{id}")).into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}

/// The intake record on a case's page: how it came in, who called (masked unless the reader
/// calls back), the callbacks, and the callback form once the case is closed.
pub fn record_section(
    c: &Console,
    record: &IntakeRecord,
    documents: &[crate::documents::DocumentView],
    state: CaseState,
    locked: bool,
) -> Markup {
    html! {
        section aria-labelledby="intake-h" {
            h2 #intake-h { (c.t("console-intake-record")) }
            dl.facts {
                dt { (c.t("col-source_name")) } dd { (i18n::name(c.lang, "source", &record.channel)) }
                @if let Some(r) = &record.external_ref {
                    dt { (c.t("console-intake-ticket")) } dd { (r) }
                }
                @if let Some(a) = &record.address {
                    dt { (c.t("console-intake-address")) } dd { (a) }
                }
                @if let Some(at) = record.received_at {
                    dt { (c.t("console-intake-received")) } dd { (c.time(crate::store::ms_from_time(at))) }
                }
            }
            h3 { (c.t("console-intake-callers")) }
            @if record.callers.is_empty() {
                p.muted { (c.t("console-intake-no-callers")) }
            } @else {
                ul {
                    @for k in &record.callers {
                        li {
                            @if k.erased {
                                span.muted { (c.t("console-intake-erased")) }
                            } @else {
                                (k.name.as_deref().unwrap_or("—")) " · " (k.phone.as_deref().unwrap_or("—"))
                            }
                            @if k.merged_from.is_some() { " " span.badge { (c.t("console-intake-merged")) } }
                        }
                    }
                }
            }
            @if !record.callbacks.is_empty() {
                h3 { (c.t("console-intake-callbacks")) }
                ul {
                    @for b in &record.callbacks {
                        li {
                            (c.time(crate::store::ms_from_time(b.called_at))) " · "
                            strong { (c.t(&format!("callback-{}", b.outcome.as_str()))) }
                            @if let Some(n) = &b.note { " · " (n) }
                        }
                    }
                }
            }
            h3 { (c.t("console-documents")) }
            @if documents.is_empty() {
                p.muted { (c.t("console-documents-none")) }
            } @else {
                ul {
                    @for d in documents {
                        li {
                            a href={"/console/cases/" (record.case_id) "/documents/" (d.sha256)} { (d.filename) }
                            " · " (format!("{:.0} KB", d.size as f64 / 1024.0))
                            " · " (c.time(crate::store::ms_from_time(d.added_at)))
                        }
                    }
                }
            }
            @if !locked {
                form.filters method="post" enctype="multipart/form-data" action={"/console/cases/" (record.case_id) "/documents"} {
                    input type="hidden" name="csrf" value=(c.session.csrf);
                    div {
                        label for="doc-file" { (c.t("console-documents-add")) }
                        input #doc-file type="file" name="file" accept="application/pdf,.pdf" required;
                    }
                    button type="submit" { (c.t("console-documents-upload")) }
                }
            }
            @if state == CaseState::Closed && !record.callers.is_empty() {
                form.filters method="post" hx-boost="true" action={"/console/cases/" (record.case_id) "/callback"} {
                    input type="hidden" name="csrf" value=(c.session.csrf);
                    @if record.callers.len() > 1 {
                        div {
                            label for="cb-caller" { (c.t("console-intake-caller")) }
                            select #cb-caller name="caller_id" required {
                                @for (i, k) in record.callers.iter().enumerate() {
                                    option value=(k.id) { (i + 1) ". " (k.name.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                    div {
                        label for="cb-outcome" { (c.t("console-intake-outcome")) }
                        select #cb-outcome name="outcome" {
                            @for o in CallbackOutcome::ALL {
                                option value=(o.as_str()) { (c.t(&format!("callback-{}", o.as_str()))) }
                            }
                        }
                    }
                    div {
                        label for="cb-note" { (c.t("console-intake-note")) }
                        input #cb-note name="note" maxlength="2000";
                    }
                    button type="submit" { (c.t("console-intake-call-back")) }
                }
            }
        }
    }
}

/// `POST /console/cases/{id}/documents`: a PDF sent by the form (multipart), with the
/// session's CSRF token as its first field.
pub async fn add_document(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    mut form: axum::extract::Multipart,
) -> Response {
    let (csrf, file) = read_document_form(&mut form).await;
    if let Some(r) = c.csrf_refusal(&headers, csrf.as_deref()) {
        return r;
    }
    let added = async {
        let (name, bytes) = file?;
        crate::documents::add(&state.db, &state.blobs, &c.session.user, id, &name, bytes).await
    }
    .await;
    match added {
        Ok(_) => Redirect::to(&format!("/console/cases/{id}")).into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}

/// The CSRF token and the file (its name and bytes) of the document form. The token is read
/// even when the file is not, so that a request from elsewhere is refused as such.
async fn read_document_form(
    form: &mut axum::extract::Multipart,
) -> (Option<String>, ApiResult<(String, axum::body::Bytes)>) {
    let mut csrf = None;
    let mut file = None;
    let read = async {
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::invalid("file", e.body_text()))?
        {
            match field.name() {
                Some("csrf") => {
                    csrf = Some(
                        field
                            .text()
                            .await
                            .map_err(|e| ApiError::invalid("csrf", e.body_text()))?,
                    )
                }
                Some("file") => {
                    let name = field.file_name().unwrap_or("document.pdf").to_owned();
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| ApiError::invalid("file", e.body_text()))?;
                    file = Some((name, bytes));
                }
                _ => {}
            }
        }
        Ok::<_, ApiError>(())
    }
    .await;
    let file =
        read.and_then(|()| file.ok_or_else(|| ApiError::invalid("file", "choose a PDF file")));
    (csrf, file)
}

/// `GET /console/cases/{id}/documents/{sha256}`: the PDF, for the reader's browser.
pub async fn document(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path((id, sha256)): Path<(Uuid, String)>,
) -> Response {
    match crate::documents::fetch(&state.db, &state.blobs, &c.session.user, id, &sha256).await {
        Ok((doc, bytes)) => crate::download::pdf(&doc.filename, bytes),
        Err(e) => failure(&c, &headers, e),
    }
}
