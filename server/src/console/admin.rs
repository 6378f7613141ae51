//! Administration in the console, for admins: users and their roles, devices (revoke), the roster
//! over time (open, end, reassign; who was accountable at a given moment), zones with their
//! coefficient per open period, the taxonomy and the rulebooks. Every change goes through the
//! same services as the API (`accounts`, `roster`, `periods`, `rulebooks`), so it is checked and
//! audited alike. A new rulebook version is written here from the one in force, and the taxonomy
//! refined and extended (`rulebooks`, `taxonomy`); zone boundaries are published through the API
//! (`POST /v1/zones`, `PUT /v1/zones/{id}`) and shown here with their coefficients.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gridline_sync::Role;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{failure, page, Console, Section};
use crate::accounts::{self, Revoker, UserUpdate};
use crate::error::ApiError;
use crate::exports::Names;
use crate::i18n::{self, Lang};
use crate::model::{PeriodStatus, RosterInput, Rule, RulebookInput, Source, UserInput};
use crate::roster::Reassign;
use crate::state::AppState;
use crate::store::{self, now_ms};
use crate::workdays::TimeLimit;

/// The pages of the administration, for its own navigation.
const TABS: [(&str, &str); 6] = [
    ("/console/admin/users", "console-admin-users"),
    ("/console/admin/devices", "console-admin-devices"),
    ("/console/admin/roster", "console-admin-roster"),
    ("/console/admin/zones", "console-admin-zones"),
    ("/console/admin/reference", "console-admin-reference"),
    (
        "/console/admin/notifications",
        "console-admin-notifications",
    ),
];

pub(super) fn admin_layout(c: &Console, here: &str, title: &str, body: Markup) -> Markup {
    super::tabbed_layout(
        c,
        Section::Admin,
        "console-nav-admin",
        &TABS,
        here,
        title,
        body,
    )
}

/// The answer of an admin page: refused for anyone but an admin, as the API refuses them.
pub(super) async fn admin_page<F>(c: &Console, headers: &HeaderMap, render: F) -> Response
where
    F: std::future::Future<Output = Result<Markup, ApiError>>,
{
    if let Err(e) = c.session.user.require_admin() {
        return failure(c, headers, e);
    }
    match render.await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(c, headers, e),
    }
}

/// A form's fields, repeated names kept (role check boxes).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn read(body: &[u8]) -> Fields {
        Fields(super::form_fields(body))
    }
    /// A field's value exactly as sent (a password keeps its spaces).
    fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn roles(&self) -> Result<Vec<Role>, ApiError> {
        self.all("roles")
            .map(|r| {
                Role::ALL
                    .iter()
                    .copied()
                    .find(|x| x.as_str() == r)
                    .ok_or_else(|| ApiError::invalid("roles", "not a role"))
            })
            .collect()
    }
    fn uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.get(name)
            .map(|v| {
                Uuid::parse_str(v).map_err(|_| ApiError::invalid(name, "not one of the choices"))
            })
            .transpose()
    }
    fn role(&self) -> Result<Role, ApiError> {
        let r = self.get("role").unwrap_or("");
        Role::ALL
            .iter()
            .copied()
            .find(|x| x.as_str() == r)
            .ok_or_else(|| ApiError::invalid("role", "not a role"))
    }
}

/// Runs a change from a posted form (CSRF checked, admins only), then shows `back`.
async fn change<F>(
    c: &Console,
    headers: &HeaderMap,
    fields: &Fields,
    back: &str,
    run: F,
) -> Response
where
    F: std::future::Future<Output = Result<(), ApiError>>,
{
    if let Some(r) = c.csrf_refusal(headers, fields.get("csrf")) {
        return r;
    }
    if let Err(e) = c.session.user.require_admin() {
        return failure(c, headers, e);
    }
    match run.await {
        Ok(()) => Redirect::to(back).into_response(),
        Err(e) => failure(c, headers, e),
    }
}

fn csrf(c: &Console) -> Markup {
    html! { input type="hidden" name="csrf" value=(c.session.csrf); }
}

fn role_name(lang: Lang, r: Role) -> String {
    i18n::name(lang, "role", r.as_str())
}

// ---- users ------------------------------------------------------------------------------------

pub async fn index() -> Redirect {
    Redirect::to("/console/admin/users")
}

pub async fn users(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    admin_page(&c, &headers, users_page(&state, &c)).await
}

async fn users_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let users = store::users::list(&state.db.pool).await?;
    let body = html! {
        table {
            thead { tr {
                th { (c.t("console-username")) }
                th { (c.t("console-display-name")) }
                th { (c.t("console-roles")) }
                th { (c.t("console-account")) }
                th { (c.t("console-new-password")) }
            } }
            tbody {
                @for u in &users {
                    tr #{"user-" (u.username)} {
                        td { (u.username) }
                        td colspan="2" {
                            form.inline method="post" action={"/console/admin/users/" (u.id)} {
                                (csrf(c))
                                label.sr-only for={"name-" (u.id)} { (c.t("console-display-name")) }
                                input #{"name-" (u.id)} name="display_name" value=(u.display_name) required size="10";
                                label.sr-only for={"email-" (u.id)} { (c.t("console-email")) }
                                input #{"email-" (u.id)} type="email" name="email" value=(u.email.as_deref().unwrap_or("")) placeholder=(c.t("console-email")) size="14";
                                fieldset.roles {
                                    legend.sr-only { (c.t("console-roles")) }
                                    @for r in Role::ALL {
                                        label {
                                            input type="checkbox" name="roles" value=(r.as_str()) checked[u.roles.contains(r)];
                                            (role_name(c.lang, *r))
                                        }
                                    }
                                }
                                button type="submit" { (c.t("console-save")) }
                            }
                        }
                        td {
                            form.inline method="post" action={"/console/admin/users/" (u.id)} {
                                (csrf(c))
                                @if u.disabled_at.is_some() {
                                    span.badge.warn { (c.t("console-disabled")) } " "
                                    input type="hidden" name="disabled" value="false";
                                    button type="submit" { (c.t("console-enable")) }
                                } @else {
                                    input type="hidden" name="disabled" value="true";
                                    button.danger type="submit" { (c.t("console-disable")) }
                                }
                            }
                        }
                        td {
                            form.inline method="post" action={"/console/admin/users/" (u.id) "/password"} {
                                (csrf(c))
                                label.sr-only for={"pw-" (u.id)} { (c.t("console-new-password")) }
                                input #{"pw-" (u.id)} type="password" name="password" required minlength="12" size="10" autocomplete="new-password";
                                button type="submit" { (c.t("console-set-password")) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (c.t("console-new-user")) }
        form.filters method="post" action="/console/admin/users" {
            (csrf(c))
            div { label for="nu-name" { (c.t("console-username")) } input #nu-name name="username" required pattern="[A-Za-z0-9._-]{1,64}"; }
            div { label for="nu-display" { (c.t("console-display-name")) } input #nu-display name="display_name" required; }
            div { label for="nu-pw" { (c.t("console-new-password")) } input #nu-pw type="password" name="password" required minlength="12" autocomplete="new-password"; }
            fieldset.roles {
                legend { (c.t("console-roles")) }
                @for r in Role::ALL {
                    label { input type="checkbox" name="roles" value=(r.as_str()); (role_name(c.lang, *r)) }
                }
            }
            button type="submit" { (c.t("console-create")) }
        }
    };
    Ok(admin_layout(
        c,
        "/console/admin/users",
        &c.t("console-admin-users"),
        body,
    ))
}

pub async fn create_user(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let input = UserInput {
            username: f.get("username").unwrap_or("").to_owned(),
            display_name: f.get("display_name").unwrap_or("").to_owned(),
            password: f.raw("password").unwrap_or("").to_owned(),
            roles: f.roles()?,
        };
        accounts::create_user(&state.db, Some(c.session.user.user_id), input).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/users", run).await
}

pub async fn update_user(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        // The roles form sends the name and the boxes; the account form only `disabled`.
        let update = match f.get("disabled") {
            Some(d) => UserUpdate {
                disabled: Some(d == "true"),
                ..UserUpdate::default()
            },
            None => UserUpdate {
                display_name: f.get("display_name").map(str::to_owned),
                roles: Some(f.roles()?),
                disabled: None,
                // Present and empty: the address is removed.
                email: f.raw("email").map(str::to_owned),
            },
        };
        accounts::update_user(&state.db, &c.session.user, id, update).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/users", run).await
}

pub async fn set_password(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let password = f.raw("password").unwrap_or("").to_owned();
        accounts::set_password(&state.db, Some(c.session.user.user_id), id, password).await
    };
    change(&c, &headers, &f, "/console/admin/users", run).await
}

// ---- devices ----------------------------------------------------------------------------------

pub async fn devices(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    admin_page(&c, &headers, devices_page(&state, &c)).await
}

async fn devices_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let devices = store::devices::list(&state.db.pool, None).await?;
    let names = Names::load(&state.db).await?;
    let body = html! {
        @if devices.is_empty() { p.muted { (c.t("console-no-devices")) } }
        @else {
            table {
                thead { tr {
                    th { (c.t("console-device")) }
                    th { (c.t("console-person")) }
                    th { (c.t("console-enrolled")) }
                    th { (c.t("console-account")) }
                } }
                tbody {
                    @for d in &devices {
                        tr {
                            td { (d.name) }
                            td { (names.user_label(&d.user_id.to_string())) }
                            td { (c.time(d.enrolled_at)) }
                            td {
                                @if let Some(at) = d.revoked_at {
                                    span.badge.warn { (c.t("console-revoked")) } " " (c.time(at))
                                } @else {
                                    form.inline method="post" action={"/console/admin/devices/" (d.id) "/revoke"} {
                                        (csrf(c))
                                        button.danger type="submit" { (c.t("console-revoke")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(admin_layout(
        c,
        "/console/admin/devices",
        &c.t("console-admin-devices"),
        body,
    ))
}

pub async fn revoke_device(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let by = Revoker::User {
        id: c.session.user.user_id,
        admin: true,
    };
    let run = async {
        accounts::revoke_device(&state.db, by, id).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/devices", run).await
}

// ---- the roster -------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct RosterParams {
    /// A local date and time (`datetime-local`): the roster valid then; default now.
    at: Option<String>,
    /// `true`: every row ever.
    history: Option<String>,
}

pub async fn roster(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Query(q): Query<RosterParams>,
) -> Response {
    admin_page(&c, &headers, roster_page(&state, &c, &q)).await
}

/// The roles a person may be rostered in (admins see everything without one).
fn rostered_roles() -> impl Iterator<Item = Role> {
    Role::ALL.iter().copied().filter(|r| *r != Role::Admin)
}

async fn roster_page(state: &AppState, c: &Console, q: &RosterParams) -> Result<Markup, ApiError> {
    let now = now_ms();
    let history = q.history.as_deref() == Some("true");
    let at = match q.at.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => crate::localtime::parse_local(&c.tz, text)
            .ok_or_else(|| ApiError::invalid("at", "must be a local date and time"))?,
        None => now,
    };
    let rows = crate::roster::list(
        &state.db,
        &c.session.user,
        None,
        None,
        (!history).then_some(at),
    )
    .await?;
    let names = Names::load(&state.db).await?;
    let zones = store::reference::zones(&state.db.pool, None).await?;
    let users = store::users::list(&state.db.pool).await?;
    let zone_name = |z: &Option<Uuid>| match z {
        Some(z) => names.zone_label(&z.to_string(), c.lang),
        None => c.t("console-every-zone"),
    };
    let zone_options = |current: Option<Uuid>| {
        html! {
            option value="" selected[current.is_none()] { (c.t("console-every-zone")) }
            @for z in &zones {
                option value=(z.id) selected[current == Some(z.id)] { (z.code) " " (z.translations.pick(c.lang, &z.name)) }
            }
        }
    };
    let body = html! {
        form.filters method="get" action="/console/admin/roster" {
            div {
                label for="r-at" { (c.t("console-roster-at")) }
                input #r-at type="datetime-local" name="at" value=(crate::localtime::input_value(&c.tz, at));
            }
            button type="submit" { (c.t("console-apply")) }
            a.button href="/console/admin/roster?history=true" { (c.t("console-roster-history")) }
        }
        p.muted {
            @if history { (c.t("console-roster-all")) }
            @else { (c.ta("console-roster-valid-at", &[("at", &c.time(at))])) }
        }
        table {
            thead { tr {
                th { (c.t("console-person")) }
                th { (c.t("console-role")) }
                th { (c.t("col-zone_name")) }
                th { (c.t("console-valid-from")) }
                th { (c.t("console-valid-to")) }
                th { (c.t("console-actions")) }
            } }
            tbody {
                @for r in &rows {
                    tr {
                        td { (names.user_label(&r.user_id.to_string())) " " span.muted { (r.username) } }
                        td { (role_name(c.lang, r.role)) }
                        td { (zone_name(&r.zone_id)) }
                        td { (c.time(store::ms_from_time(r.valid_from))) }
                        td { @if let Some(to) = r.valid_to { (c.time(store::ms_from_time(to))) } @else { span.badge.ok { (c.t("console-current")) } } }
                        td.actions {
                            @if r.valid_to.is_none() {
                                form.inline method="post" action={"/console/admin/roster/" (r.id) "/reassign"} {
                                    (csrf(c))
                                    label.sr-only for={"rz-" (r.id)} { (c.t("col-zone_name")) }
                                    select #{"rz-" (r.id)} name="zone_id" { (zone_options(r.zone_id)) }
                                    label.sr-only for={"rr-" (r.id)} { (c.t("console-role")) }
                                    select #{"rr-" (r.id)} name="role" {
                                        @for role in rostered_roles() {
                                            option value=(role.as_str()) selected[role == r.role] { (role_name(c.lang, role)) }
                                        }
                                    }
                                    button type="submit" { (c.t("console-reassign")) }
                                }
                                form.inline method="post" action={"/console/admin/roster/" (r.id) "/end"} {
                                    (csrf(c))
                                    button.danger type="submit" { (c.t("console-end-assignment")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (c.t("console-new-assignment")) }
        form.filters method="post" action="/console/admin/roster" {
            (csrf(c))
            div {
                label for="na-user" { (c.t("console-person")) }
                select #na-user name="user_id" required {
                    option value="" { (c.t("console-choose")) }
                    @for u in users.iter().filter(|u| u.disabled_at.is_none()) {
                        option value=(u.id) { (u.display_name) " (" (u.username) ")" }
                    }
                }
            }
            div {
                label for="na-role" { (c.t("console-role")) }
                select #na-role name="role" {
                    @for role in rostered_roles() { option value=(role.as_str()) { (role_name(c.lang, role)) } }
                }
            }
            div {
                label for="na-zone" { (c.t("col-zone_name")) }
                select #na-zone name="zone_id" { (zone_options(None)) }
            }
            button type="submit" { (c.t("console-open-assignment")) }
        }
    };
    Ok(admin_layout(
        c,
        "/console/admin/roster",
        &c.t("console-admin-roster"),
        body,
    ))
}

pub async fn open_assignment(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let input = RosterInput {
            user_id: f
                .uuid("user_id")?
                .ok_or_else(|| ApiError::invalid("user_id", "choose a person"))?,
            zone_id: f.uuid("zone_id")?,
            role: f.role()?,
        };
        crate::roster::open(&state.db, &c.session.user, &input).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/roster", run).await
}

pub async fn end_assignment(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        crate::roster::end(&state.db, &c.session.user, id).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/roster", run).await
}

pub async fn reassign(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let input = Reassign {
            zone_id: f.uuid("zone_id")?,
            role: f.role()?,
        };
        crate::roster::reassign(&state.db, &c.session.user, id, &input).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/roster", run).await
}

// ---- zones and coefficients -------------------------------------------------------------------

pub async fn zones(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    admin_page(&c, &headers, zones_page(&state, &c)).await
}

async fn zones_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let zones = store::reference::zones(&state.db.pool, None).await?;
    let periods: Vec<_> = store::reference::periods(&state.db.pool)
        .await?
        .into_iter()
        .filter(|p| p.status != PeriodStatus::Closed)
        .collect();
    let mut coefficients = Vec::new();
    for p in &periods {
        coefficients.push(store::reference::coefficients(&state.db.pool, p.id).await?);
    }
    let body = html! {
        p.hint { (c.t("console-zones-hint")) }
        table {
            thead { tr {
                th { (c.t("console-code")) }
                th { (c.t("col-zone_name")) }
                @for p in &periods { th { (c.ta("console-coefficient-in", &[("period", &p.code)])) } }
            } }
            tbody {
                @for z in &zones {
                    tr {
                        td { (z.code) }
                        td {
                            (z.name)
                            @for (tag, text) in &z.translations.0 { br; span.muted lang=(tag) { (text) } }
                        }
                        @for (p, set) in periods.iter().zip(&coefficients) {
                            @let current = set.iter().find(|k| k.zone_id == z.id).map(|k| k.coefficient);
                            td {
                                form.inline method="post" action={"/console/admin/periods/" (p.id) "/coefficients/" (z.id)} {
                                    (csrf(c))
                                    label.sr-only for={"k-" (p.id) "-" (z.id)} { (c.ta("console-coefficient-in", &[("period", &p.code)])) " " (z.code) }
                                    input #{"k-" (p.id) "-" (z.id)} name="coefficient" type="number" step="0.001" min="0.001" max="10"
                                        value=(current.map(|k| k.to_string()).unwrap_or_default()) size="5" required;
                                    button type="submit" { (c.t("console-save")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if periods.is_empty() { p.muted { (c.t("console-no-open-period")) } }
    };
    Ok(admin_layout(
        c,
        "/console/admin/zones",
        &c.t("console-admin-zones"),
        body,
    ))
}

pub async fn set_coefficient(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path((period, zone)): Path<(Uuid, Uuid)>,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let k: f64 = f
            .get("coefficient")
            .and_then(|v| v.parse().ok())
            .filter(|k: &f64| k.is_finite())
            .ok_or_else(|| ApiError::invalid("coefficient", "must be a number"))?;
        crate::periods::set_coefficient(&state.db, &c.session.user, period, zone, k).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/zones", run).await
}

// ---- taxonomy and rulebooks -------------------------------------------------------------------

pub async fn reference(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    admin_page(&c, &headers, reference_page(&state, &c)).await
}

async fn reference_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let taxonomy = store::reference::taxonomy(&state.db.pool).await?;
    let rulebooks = store::reference::rulebooks(&state.db.pool).await?;
    let active = store::reference::active_rulebook(&state.db.pool, now_ms()).await?;
    let names = Names::load(&state.db).await?;
    let body = html! {
        p.hint { (c.t("console-reference-hint")) }
        h2 { (c.t("console-rulebooks")) }
        @for b in rulebooks.iter().rev() {
            details open[active.as_ref().is_some_and(|a| a.id == b.id)] {
                summary {
                    (b.translations.pick(c.lang, &b.name)) " · v" (b.version) " · "
                    (c.ta("console-effective-from", &[("at", &c.time(store::ms_from_time(b.effective_from)))]))
                    @if active.as_ref().is_some_and(|a| a.id == b.id) { " " span.badge.ok { (c.t("console-current")) } }
                }
                table {
                    thead { tr {
                        th { (c.t("console-code")) }
                        th { (c.t("col-rule_text")) }
                        th.num { (c.t("col-raw_points")) }
                        th { (c.t("console-sources")) }
                        th { (c.t("col-category_name")) }
                    } }
                    tbody {
                        @for r in &b.rules {
                            tr {
                                td { (r.code) }
                                td { (r.translations.pick(c.lang, &r.description)) }
                                td.num { (r.points) }
                                td { @for (i, s) in r.sources.iter().enumerate() { @if i > 0 { "、" } (i18n::name(c.lang, "source", s.as_str())) } }
                                td {
                                    @if r.taxonomy_codes.is_empty() { span.muted { (c.t("console-any")) } }
                                    @for (i, k) in r.taxonomy_codes.iter().enumerate() { @if i > 0 { "、" } (names.category_label(k, c.lang)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (rulebook_editor(c, active.as_ref(), &taxonomy))
        (taxonomy_editor(c, &taxonomy))
        (calendar_section(state, c).await?)
    };
    Ok(admin_layout(
        c,
        "/console/admin/reference",
        &c.t("console-admin-reference"),
        body,
    ))
}

// ---- the working-day calendar ---------------------------------------------------------------

/// This year's and next year's holidays and make-up working days, and the form that imports a
/// year's file.
async fn calendar_section(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let week = state.config.work_week();
    let this_year = crate::localtime::civil(&week.tz, now_ms()).year();
    let mut years = Vec::new();
    for year in [this_year, this_year + 1] {
        years.push(crate::workcalendar::year(&state.db, &week, year).await?);
    }
    let weekend: Vec<String> = years[0]
        .weekend
        .iter()
        .map(|d| c.t(&format!("console-weekday-{d}")))
        .collect();
    Ok(html! {
        h2 #calendar { (c.t("console-calendar")) }
        p.hint {
            (c.ta("console-calendar-hint", &[
                ("start", &years[0].day_start),
                ("end", &years[0].day_end),
                ("weekend", &weekend.join("、")),
            ]))
        }
        @for y in &years {
            details open[y.year == this_year] {
                summary { (c.ta("console-calendar-year", &[("year", &y.year.to_string()), ("days", &y.days.len().to_string())])) }
                @if y.days.is_empty() {
                    p.muted { (c.t("console-calendar-empty")) }
                } @else {
                    table {
                        thead { tr {
                            th { (c.t("console-date")) }
                            th { (c.t("console-calendar-kind")) }
                            th { (c.t("console-name")) }
                        } }
                        tbody {
                            @for d in &y.days {
                                tr {
                                    td { (d.date) }
                                    td { (c.t(&format!("console-calendar-{}", d.kind))) }
                                    td { (d.name) }
                                }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action="/console/admin/calendar" {
            (csrf(c))
            label for="calendar-csv" { (c.t("console-calendar-import")) }
            p.hint #calendar-csv-hint { (c.t("console-calendar-format")) }
            textarea #calendar-csv name="csv" rows="8" cols="60" required
                aria-describedby="calendar-csv-hint"
                placeholder="date,kind,name\n2027-01-01,holiday,元旦\n2027-02-07,workday,调休上班" {}
            button type="submit" { (c.t("console-calendar-import-button")) }
        }
    })
}

/// `POST /console/admin/calendar`: a pasted calendar file, through the same service as
/// `POST /v1/calendar`.
pub async fn import_calendar(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let text = f.raw("csv").unwrap_or("");
        crate::workcalendar::import(&state.db, Some(c.session.user.user_id), text).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/reference#calendar", run).await
}

// ---- a new rulebook version ------------------------------------------------------------------

/// Empty rows under the rules of the version in force, for new rules.
const NEW_RULE_ROWS: usize = 3;

/// The form that publishes a new rulebook version, filled with the one in force: a rule is
/// changed in its row, dropped by clearing its code, added in an empty row.
fn rulebook_editor(
    c: &Console,
    active: Option<&crate::model::Rulebook>,
    taxonomy: &[crate::model::TaxonomyEntry],
) -> Markup {
    let rules: Vec<Option<&Rule>> = active
        .map(|b| b.rules.iter().map(Some).collect())
        .unwrap_or_default();
    let rows = rules
        .into_iter()
        .chain(std::iter::repeat_n(None, NEW_RULE_ROWS));
    html! {
        h2 #new-rulebook { (c.t("console-rulebook-new")) }
        p.hint { (c.t("console-rulebook-new-hint")) }
        form.rule-editor method="post" action="/console/admin/rulebooks" {
            (csrf(c))
            div.filters {
                div {
                    label for="rb-name" { (c.t("console-rulebook-name")) }
                    input #rb-name name="name" required maxlength="200"
                        value=(active.map(|b| b.name.as_str()).unwrap_or(""));
                }
                div {
                    label for="rb-from" { (c.t("console-rulebook-from")) }
                    input #rb-from type="datetime-local" name="effective_from" required
                        value=(crate::localtime::input_value(&c.tz, now_ms()));
                }
            }
            div.scroll {
                table {
                    thead { tr {
                        th { (c.t("console-code")) }
                        th { (c.t("col-rule_text")) }
                        th.num { (c.t("col-raw_points")) }
                        th { (c.t("console-sources")) }
                        th { (c.t("col-category_name")) }
                    } }
                    tbody {
                        @for (i, r) in rows.enumerate() {
                            tr {
                                td {
                                    label.sr-only for={"rule-" (i) "-code"} { (c.t("console-code")) }
                                    input #{"rule-" (i) "-code"} name={"rule-" (i) "-code"} maxlength="64" size="12"
                                        value=(r.map(|r| r.code.as_str()).unwrap_or(""));
                                }
                                td {
                                    label.sr-only for={"rule-" (i) "-text"} { (c.t("col-rule_text")) }
                                    input #{"rule-" (i) "-text"} name={"rule-" (i) "-text"} maxlength="1000" size="36"
                                        value=(r.map(|r| r.description.as_str()).unwrap_or(""));
                                }
                                td.num {
                                    label.sr-only for={"rule-" (i) "-points"} { (c.t("col-raw_points")) }
                                    input #{"rule-" (i) "-points"} name={"rule-" (i) "-points"} type="number"
                                        min="0" max="100" step="0.001" size="5"
                                        value=(r.map(|r| r.points.to_string()).unwrap_or_default());
                                }
                                td {
                                    fieldset.roles {
                                        legend.sr-only { (c.t("console-sources")) }
                                        @for s in Source::ALL {
                                            label {
                                                input type="checkbox" name={"rule-" (i) "-sources"} value=(s.as_str())
                                                    checked[r.is_some_and(|r| r.sources.contains(s))];
                                                (i18n::name(c.lang, "source", s.as_str()))
                                            }
                                        }
                                    }
                                }
                                td {
                                    label.sr-only for={"rule-" (i) "-categories"} { (c.t("col-category_name")) }
                                    select #{"rule-" (i) "-categories"} name={"rule-" (i) "-categories"} multiple size="3"
                                        title=(c.t("console-rulebook-any-category")) {
                                        @for t in taxonomy {
                                            option value=(t.key) selected[r.is_some_and(|r| r.taxonomy_codes.contains(&t.key))] {
                                                (t.code) " " (if c.lang == Lang::ZhCn { &t.name_zh } else { &t.name_en })
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            button type="submit" { (c.t("console-rulebook-publish")) }
        }
    }
}

/// `POST /console/admin/rulebooks`: publishes the edited rulebook as a new version through
/// the same service as `POST /v1/rulebooks`. A rule keeps its translations while its code and
/// published text stay the same; the book keeps its name's while the name does.
pub async fn publish_rulebook(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let active = store::reference::active_rulebook(&state.db.pool, now_ms()).await?;
        let input = rulebook_input(&f, &c.tz, active.as_ref())?;
        crate::rulebooks::publish(&state.db, &c.session.user, &input).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/reference", run).await
}

/// The rulebook a filled editor describes.
fn rulebook_input(
    f: &Fields,
    tz: &jiff::tz::TimeZone,
    active: Option<&crate::model::Rulebook>,
) -> Result<RulebookInput, ApiError> {
    let name = f.get("name").unwrap_or("").to_owned();
    let effective_from = f
        .get("effective_from")
        .and_then(|v| crate::localtime::parse_local(tz, v))
        .map(store::time_from_ms)
        .ok_or_else(|| ApiError::invalid("effective_from", "a date and time"))?;
    let mut rules = Vec::new();
    for i in 0.. {
        let key = |field: &str| format!("rule-{i}-{field}");
        let Some(code) = f.raw(&key("code")) else {
            break;
        };
        let code = code.trim();
        if code.is_empty() {
            continue;
        }
        let description = f.get(&key("text")).unwrap_or("").to_owned();
        let points: f64 = f.get(&key("points")).unwrap_or("").parse().map_err(|_| {
            ApiError::invalid(&format!("rules[{}].points", rules.len()), "a number")
        })?;
        let sources = f
            .all(&key("sources"))
            .map(|s| {
                Source::parse(s).ok_or_else(|| {
                    ApiError::invalid(&format!("rules[{}].sources", rules.len()), "not a source")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let translations = active
            .and_then(|b| b.rules.iter().find(|r| r.code == code))
            .filter(|r| r.description == description)
            .map(|r| r.translations.clone())
            .unwrap_or_default();
        rules.push(Rule {
            code: code.to_owned(),
            description,
            translations,
            points,
            sources,
            taxonomy_codes: f.all(&key("categories")).map(str::to_owned).collect(),
        });
    }
    let translations = active
        .filter(|b| b.name == name)
        .map(|b| b.translations.clone())
        .unwrap_or_default();
    Ok(RulebookInput {
        name,
        translations,
        effective_from,
        rules,
    })
}

// ---- the taxonomy -----------------------------------------------------------------------------

/// Empty rows under the taxonomy, for new entries.
const NEW_TERM_ROWS: usize = 2;

/// The taxonomy as a form: each entry's names, work category and time limit editable in its
/// row, new entries in the empty rows; saving sends them all and only the changed are stored.
fn taxonomy_editor(c: &Console, taxonomy: &[crate::model::TaxonomyEntry]) -> Markup {
    use crate::model::{TaxonomyKind, WorkCategory};
    let rows = taxonomy
        .iter()
        .map(Some)
        .chain(std::iter::repeat_n(None, NEW_TERM_ROWS));
    html! {
        h2 #taxonomy { (c.t("console-taxonomy")) }
        p.hint { (c.t("console-taxonomy-hint")) }
        form.rule-editor method="post" action="/console/admin/taxonomy" {
            (csrf(c))
            div.scroll {
                table {
                    thead { tr {
                        th { (c.t("console-code")) }
                        th { (c.t("console-name-zh")) }
                        th { (c.t("console-name-en")) }
                        th { (c.t("col-work_category")) }
                        th.num { (c.t("console-time-limit")) }
                    } }
                    tbody {
                        @for (i, t) in rows.enumerate() {
                            tr {
                                td {
                                    @if let Some(t) = t {
                                        input type="hidden" name={"t-" (i) "-kind"} value=(t.kind.as_str());
                                        input type="hidden" name={"t-" (i) "-code"} value=(t.code);
                                        (t.key)
                                    } @else {
                                        label.sr-only for={"t-" (i) "-kind"} { (c.t("console-taxonomy-kind")) }
                                        select #{"t-" (i) "-kind"} name={"t-" (i) "-kind"} {
                                            @for k in [TaxonomyKind::Event, TaxonomyKind::Component] {
                                                option value=(k.as_str()) { (c.t(&format!("console-kind-{}", k.as_str()))) }
                                            }
                                        }
                                        label.sr-only for={"t-" (i) "-code"} { (c.t("console-code")) }
                                        input #{"t-" (i) "-code"} name={"t-" (i) "-code"} size="5" maxlength="4"
                                            pattern="[0-9]{2}([0-9]{2})?" placeholder="2101";
                                    }
                                }
                                td {
                                    label.sr-only for={"t-" (i) "-zh"} { (c.t("console-name-zh")) }
                                    input #{"t-" (i) "-zh"} name={"t-" (i) "-zh"} size="14" maxlength="200"
                                        value=(t.map(|t| t.name_zh.as_str()).unwrap_or(""));
                                }
                                td {
                                    label.sr-only for={"t-" (i) "-en"} { (c.t("console-name-en")) }
                                    input #{"t-" (i) "-en"} name={"t-" (i) "-en"} size="20" maxlength="200"
                                        value=(t.map(|t| t.name_en.as_str()).unwrap_or(""));
                                }
                                td {
                                    label.sr-only for={"t-" (i) "-work"} { (c.t("col-work_category")) }
                                    select #{"t-" (i) "-work"} name={"t-" (i) "-work"} {
                                        @for w in WorkCategory::ALL {
                                            option value=(w.as_str()) selected[t.is_some_and(|t| t.work_category == *w)] {
                                                (i18n::name(c.lang, "work", w.as_str()))
                                            }
                                        }
                                    }
                                }
                                td.num {
                                    label.sr-only for={"t-" (i) "-hours"} { (c.t("console-time-limit")) }
                                    @let limit = t.and_then(|t| t.time_limit());
                                    input #{"t-" (i) "-hours"} name={"t-" (i) "-hours"} type="number" min="1" max="8760" size="5"
                                        placeholder=(crate::review::DEFAULT_TIME_LIMIT_HOURS)
                                        value=(limit.map(|l| l.amount().to_string()).unwrap_or_default());
                                    label.sr-only for={"t-" (i) "-unit"} { (c.t("console-time-limit-unit")) }
                                    select #{"t-" (i) "-unit"} name={"t-" (i) "-unit"} {
                                        @for unit in TimeLimit::UNITS {
                                            option value=(unit) selected[limit.is_some_and(|l| l.unit() == *unit)] {
                                                (c.t(&format!("console-unit-{unit}")))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            button type="submit" { (c.t("console-save")) }
        }
    }
}

/// `POST /console/admin/taxonomy`: the edited taxonomy, through the same service as
/// `PUT /v1/taxonomy`.
pub async fn save_taxonomy(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let entries = taxonomy_entries(&f)?;
        crate::taxonomy::upsert(&state.db, &c.session.user, entries).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/reference#taxonomy", run).await
}

/// The entries a filled taxonomy form describes (rows without a code are left out).
fn taxonomy_entries(f: &Fields) -> Result<Vec<crate::model::TaxonomyEntry>, ApiError> {
    use crate::model::{TaxonomyEntry, TaxonomyKind, WorkCategory};
    let mut entries = Vec::new();
    for i in 0.. {
        let key = |field: &str| format!("t-{i}-{field}");
        let Some(code) = f.raw(&key("code")) else {
            break;
        };
        let code = code.trim();
        if code.is_empty() {
            continue;
        }
        let at = |field: &str| format!("[{}].{field}", entries.len());
        let kind = TaxonomyKind::parse(f.get(&key("kind")).unwrap_or(""))
            .ok_or_else(|| ApiError::invalid(&at("kind"), "component or event"))?;
        let work_category = WorkCategory::parse(f.get(&key("work")).unwrap_or(""))
            .ok_or_else(|| ApiError::invalid(&at("work_category"), "not a work category"))?;
        let amount = f
            .get(&key("hours"))
            .map(|h| {
                h.parse::<i64>().map_err(|_| {
                    ApiError::invalid(&at("time_limit_hours"), "a whole number of hours or days")
                })
            })
            .transpose()?;
        let unit = f.get(&key("unit")).unwrap_or("hours");
        let limit = amount
            .map(|a| {
                TimeLimit::of(unit, a)
                    .ok_or_else(|| ApiError::invalid(&at("time_limit_unit"), "not a unit"))
            })
            .transpose()?;
        entries.push(TaxonomyEntry {
            key: String::new(),
            code: code.to_owned(),
            kind,
            name_zh: f.get(&key("zh")).unwrap_or("").to_owned(),
            name_en: f.get(&key("en")).unwrap_or("").to_owned(),
            work_category,
            time_limit_hours: limit.and_then(TimeLimit::hours),
            time_limit_working_hours: limit.and_then(TimeLimit::working_hours),
            time_limit_working_days: limit.and_then(TimeLimit::working_days),
        });
    }
    Ok(entries)
}
