//! The case page (`sync::view::visible_case`, `review::workflow_of`, the deduction, duplicate
//! choices and intake record) and the transitions it and the queue send, which go through the
//! API's own workflow (`review::transition_case`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use gridline_sync::workflow::WorkflowAction;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::queue::non_empty;
use super::{failure, fragment, layout, page, Console, Section};
use crate::error::{ApiError, ApiResult};
use crate::exports::Names;
use crate::i18n;
use crate::ledger::preview::CaseDeduction;
use crate::model::CaseView;
use crate::review::TransitionRequest;
use crate::state::AppState;
use crate::store;

pub async fn case_page(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Response {
    match case_view_page(&state, &c, id).await {
        Ok(m) => super::map::with_tiles(&state, page(StatusCode::OK, m)),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn case_view_page(state: &AppState, c: &Console, id: Uuid) -> ApiResult<Markup> {
    let (db, user) = (&state.db, &c.session.user);
    let view = crate::sync::view::visible_case(db, user, id).await?;
    let wf = crate::review::workflow_of(db, user, id).await?;
    let names = Names::load(db).await?;
    let deduction =
        crate::ledger::preview::case_deduction(&state.ledger_service(), user, &view).await?;
    let map = case_map(state, c, &view).await?;
    let (originals, nearby) =
        crate::intake::duplicate_choices(db, &state.config.intake, user, &view).await?;
    let intake = intake_of(state, c, id).await?;
    let verified = crate::intake::site_verification(db, &view).await?;
    let actions = crate::review::possible_actions(user, &view, &wf);
    let parts = CaseParts {
        v: &view,
        wf: &wf,
        actions: &actions,
        deduction: &deduction,
        originals: &originals,
        nearby: &nearby,
        intake: intake.as_ref(),
        verified,
    };
    Ok(case_markup(c, &names, parts, map))
}

/// How case `id` came in and its documents, for a reader who takes reports in, when there is
/// something to show.
async fn intake_of(
    state: &AppState,
    c: &Console,
    id: Uuid,
) -> ApiResult<
    Option<(
        crate::intake::IntakeRecord,
        Vec<crate::documents::DocumentView>,
    )>,
> {
    if !super::intake::takes_reports(c) {
        return Ok(None);
    }
    let record = crate::intake::record_of(&state.db, &c.session.user, id).await?;
    let documents = crate::documents::list(&state.db, &c.session.user, id).await?;
    let any = record.received_at.is_some() || !record.callers.is_empty() || !documents.is_empty();
    Ok(any.then_some((record, documents)))
}

/// The case's zone with the position the phone claimed and where each photo says (EXIF) it
/// was taken, with the distance between them.
async fn case_map(state: &AppState, c: &Console, v: &CaseView) -> ApiResult<Markup> {
    let zone = store::reference::zone(&state.db.pool, v.zone_id).await?;
    let mut taken_at = Vec::new();
    for p in &v.photos {
        let Some(meta) = store::photos::photo(&state.db.pool, &p.sha256).await? else {
            continue;
        };
        if let (Some(lat), Some(lon)) = (meta.exif_lat, meta.exif_lon) {
            taken_at.push((p.sha256.clone(), lat, lon));
        }
    }
    Ok(case_map_markup(c, state, v, zone.as_slice(), &taken_at))
}

/// The case's map: `zone`, where the phone said the case is, and where each photo of
/// `taken_at` (hash, latitude, longitude) says it was taken.
fn case_map_markup(
    c: &Console,
    state: &AppState,
    v: &CaseView,
    zone: &[crate::model::Zone],
    taken_at: &[(String, f64, f64)],
) -> Markup {
    let mut markers = vec![super::map::Marker {
        lat: v.location.lat,
        lon: v.location.lon,
        class: "claimed",
        label: c.t("console-claimed"),
        href: None,
    }];
    let mut distances = Vec::new();
    for (sha, lat, lon) in taken_at {
        let d = crate::geo::distance_m(v.location.lat, v.location.lon, *lat, *lon);
        distances.push((sha.clone(), d));
        markers.push(super::map::Marker {
            lat: *lat,
            lon: *lon,
            class: "exif",
            label: c.t("console-exif-position"),
            href: None,
        });
    }
    let title = c.t("console-map-case");
    html! {
        p.bar {
            span.legend.claimed { (c.t("console-claimed")) }
            span.legend.exif { (c.t("console-exif-position")) }
        }
        @for (sha, d) in &distances {
            p.hint { code { (sha.get(..12).unwrap_or(sha)) "…" } " " (c.ta("console-exif-distance", &[("metres", &format!("{d:.0}"))])) }
        }
        div.mapbox.small { (super::map::svg(c, zone, &markers, 480.0, &title, state.config.console.map_tiles.as_ref())) }
        (super::map::attribution(state))
    }
}

/// What the case page shows of a case, beside its map.
struct CaseParts<'a> {
    v: &'a CaseView,
    wf: &'a crate::review::CaseWorkflow,
    /// The decisions the reader may take on it.
    actions: &'a [WorkflowAction],
    deduction: &'a CaseDeduction,
    /// Cases it may be marked a duplicate of.
    originals: &'a [crate::store::review::DuplicateCandidate],
    /// Open cases near it or on its asset (a report is often about a known problem).
    nearby: &'a [crate::intake::DuplicateSuggestion],
    /// How it came in and its documents, for readers who take reports in.
    intake: Option<&'a (
        crate::intake::IntakeRecord,
        Vec<crate::documents::DocumentView>,
    )>,
    /// For a report from the public: whether an inspector verified it on site.
    verified: Option<bool>,
}

fn case_markup(c: &Console, names: &Names, parts: CaseParts<'_>, map: Markup) -> Markup {
    let CaseParts {
        v,
        wf,
        actions,
        deduction,
        originals,
        nearby,
        intake,
        verified,
    } = parts;
    let title = names.category_label(&v.category_code, c.lang);
    let evidence = v.evidence.as_ref();
    let body = html! {
        p { a href="/console/queue" { "← " (c.t("console-back-to-queue")) } }
        h1 {
            (title) " "
            span.badge { (i18n::name(c.lang, "state", v.state.as_str())) }
            @if wf.overdue { " " span.badge.warn { (c.t("col-overdue")) } }
            @match verified {
                Some(true) => { " " span.badge.ok { (c.t("console-verification-done")) } }
                Some(false) => { " " span.badge.warn { (c.t("console-verification-pending")) } }
                None => {}
            }
        }
        div.grid2 {
            section aria-labelledby="facts-h" {
                h2 #facts-h { (c.t("console-facts")) }
                dl.facts {
                    dt { (c.t("col-description")) } dd { (v.description) }
                    dt { (c.t("col-zone_name")) } dd { (names.zone_label(&v.zone_id.to_string(), c.lang)) }
                    dt { (c.t("col-severity_name")) } dd { (i18n::name(c.lang, "severity", v.severity.as_str())) }
                    dt { (c.t("col-source_name")) } dd { (i18n::name(c.lang, "source", &v.source)) }
                    dt { (c.t("col-captured_at")) } dd { (c.time(v.captured_at.unix_timestamp() * 1000)) }
                    dt { (c.t("col-received_at")) } dd { (c.time(v.received_at.unix_timestamp() * 1000)) }
                    dt { (c.t("console-reporter")) } dd { (names.user_label(&v.reporter_id.to_string())) }
                    dt { (c.t("console-position")) } dd { (format!("{:.6}, {:.6}", v.location.lat, v.location.lon)) " (±" (v.location.accuracy_m) " m)" }
                    @if let Some(a) = &v.asset_code { dt { (c.t("console-asset")) } dd { (a) } }
                    @if let Some(d) = wf.deadline {
                        dt { (c.t("col-deadline")) } dd { (c.time(d.unix_timestamp() * 1000)) }
                    }
                    @if !wf.assignees.is_empty() {
                        dt { (c.t("console-assignees")) }
                        dd {
                            @for (i, a) in wf.assignees.iter().enumerate() {
                                @if i > 0 { "、" }
                                (names.user_label(&a.to_string()))
                            }
                        }
                    }
                }
            }
            section aria-labelledby="actions-h" {
                h2 #actions-h { (c.t("console-actions")) }
                div.actions {
                    @if actions.is_empty() { p.muted { (c.t("console-no-actions")) } }
                    @for a in actions {
                        form method="post" hx-boost="true" action={"/console/cases/" (v.id) "/transition"} {
                            input type="hidden" name="csrf" value=(c.session.csrf);
                            input type="hidden" name="action" value=(a.as_str());
                            input type="hidden" name="base_version" value=(v.version);
                            @if a.needs_comment() {
                                label.sr-only for={"c-" (a.as_str())} { (c.t("console-reason")) }
                                input #{"c-" (a.as_str())} name="comment" required placeholder=(c.t("console-reason"));
                            }
                            @if *a == WorkflowAction::MarkDuplicate {
                                label for="dup-of" { (c.t("console-duplicate-of")) }
                                (super::queue::original_select(c, "dup-of", originals))
                            }
                            button type="submit" class=(if matches!(a, WorkflowAction::Reject | WorkflowAction::Return) { "danger" } else { "" }) {
                                (c.t(&format!("action-{}", a.as_str())))
                            }
                        }
                    }
                }
                h2 { (c.t("console-evidence")) }
                @if let Some(e) = evidence {
                    @if e.photos.is_empty() {
                        p { span.badge { (c.t("console-evidence-no-photo")) } }
                    } @else if e.complete {
                        p { span.badge.ok { (c.t("console-evidence-complete")) } }
                    } @else {
                        p { span.badge.warn { (c.t("console-evidence-incomplete")) } }
                    }
                    @for f in &e.flags {
                        p.notice.error { strong { (c.t(&format!("flag-{f}"))) } }
                    }
                }
            }
        }
        @if !nearby.is_empty() {
            section aria-labelledby="nearby-h" {
                h2 #nearby-h { (c.t("console-intake-duplicates")) }
                ul {
                    @for n in nearby {
                        li {
                            a href={"/console/cases/" (n.case_id)} { (names.category_label(&n.category_code, c.lang)) }
                            " · " (i18n::name(c.lang, "source", &n.source))
                            " · " (i18n::name(c.lang, "state", &n.state))
                            " · " @if n.same_asset { (c.t("console-intake-same-asset")) } @else {
                                (c.ta("console-intake-distance", &[("metres", &format!("{:.0}", n.distance_m))]))
                            }
                            " · " (n.description.chars().take(60).collect::<String>())
                        }
                    }
                }
            }
        }
        @if let Some((record, documents)) = intake {
            (super::intake::record_section(c, record, documents, v.state, v.locked))
        }
        (super::deductions::deduction_markup(c, names, v, deduction))
        h2 { (c.t("console-map-case")) }
        (map)
        h2 { (c.t("console-photos")) }
        div.grid2 {
            @for role in ["before", "after", "intake", "verification"].into_iter()
                .filter(|r| matches!(*r, "before" | "after") || v.photos.iter().any(|p| p.role == *r)) {
                section {
                    h3 { (c.t(&format!("console-role-{role}"))) }
                    div.photos {
                        @for p in v.photos.iter().filter(|p| p.role == role) {
                            @let state = evidence.and_then(|e| e.photos.iter().find(|x| x.sha256 == p.sha256));
                            figure {
                                a href={"/console/photos/" (p.sha256) "/original"} target="_blank" rel="noopener" {
                                    img src={"/console/photos/" (p.sha256) "/thumb"} loading="lazy"
                                        alt=(c.ta("console-photo-alt", &[("role", &c.t(&format!("console-role-{role}")))]));
                                }
                                figcaption {
                                    (c.time(p.captured_at.unix_timestamp() * 1000))
                                    @if let Some(s) = state {
                                        @if !s.verified { " · " span.badge.warn { (c.t("console-not-verified")) } }
                                        @for f in &s.flags { " · " span.badge.flag { (c.t(&format!("flag-{f}"))) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (c.t("console-timeline")) }
        ol.timeline {
            @for e in &v.events {
                li {
                    strong { (c.t(&format!("event-{}", e.kind))) }
                    @if let (Some(from), Some(to)) = (&e.from_state, &e.to_state) {
                        " " (i18n::name(c.lang, "state", from)) " → " (i18n::name(c.lang, "state", to))
                    }
                    " · " (names.user_label(&e.actor_id.to_string()))
                    " · " (c.time(e.at.unix_timestamp() * 1000))
                    @if let Some(comment) = &e.comment { br; span.muted { (comment) } }
                }
            }
        }
        @if !v.conflicts.is_empty() {
            h2 { (c.t("console-conflicts")) }
            table {
                thead { tr {
                    th { (c.t("console-field")) }
                    th { (c.t("console-server-value")) }
                    th { (c.t("console-incoming-value")) }
                    th { (c.t("console-resolution")) }
                } }
                tbody {
                    @for k in &v.conflicts {
                        tr {
                            td { (k.field) }
                            td { (k.server_value.to_string()) }
                            td { (k.incoming_value.to_string()) }
                            td { (k.resolution) }
                        }
                    }
                }
            }
        }
    };
    layout(c, Section::Case, &title, body)
}

#[derive(Debug, Deserialize)]
pub struct TransitionForm {
    csrf: Option<String>,
    action: WorkflowAction,
    base_version: i64,
    comment: Option<String>,
    duplicate_of: Option<String>,
    /// Set by the queue: answer with the case's queue row rather than the case page.
    row: Option<String>,
}

impl TransitionForm {
    /// The workflow's request, or what is wrong with the form.
    fn request(&self) -> ApiResult<TransitionRequest> {
        let duplicate_of = match non_empty(&self.duplicate_of) {
            Some(d) => Some(
                Uuid::parse_str(d)
                    .map_err(|_| ApiError::invalid("duplicate_of", "must be a case id"))?,
            ),
            None => None,
        };
        Ok(TransitionRequest {
            action: self.action,
            base_version: self.base_version,
            comment: self.comment.clone(),
            duplicate_of,
            target: None,
            photos: Vec::new(),
        })
    }
}

pub async fn transition(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<TransitionForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let week = state.config.work_week();
    let done = match form.request() {
        Ok(req) => crate::review::transition_case(&state.db, &week, &c.session.user, id, req).await,
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        return failure(&c, &headers, e);
    }
    if form.row.is_some() && headers.contains_key("hx-request") {
        // The queue keeps its place: the row shows the case as it is now.
        let row = queue_row(&state, &c, id).await;
        return match row {
            Ok(m) => fragment(StatusCode::OK, m),
            Err(e) => failure(&c, &headers, e),
        };
    }
    Redirect::to(&format!("/console/cases/{id}")).into_response()
}

/// Case `id`'s row of the queue, as it stands now.
async fn queue_row(state: &AppState, c: &Console, id: Uuid) -> ApiResult<Markup> {
    let item = crate::review::queue::item(&state.db, &c.session.user, id).await?;
    let names = Names::load(&state.db).await?;
    Ok(super::queue::queue_row(c, &names, &item, &[]))
}
