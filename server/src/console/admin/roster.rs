//! The roster over time, for admins: who held which role in which zone at a moment (or ever),
//! and opening, ending and reassigning assignments through `roster`, as the API does.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use gridline_sync::Role;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{admin_layout, admin_page, change, csrf, role_name, Fields};
use crate::console::Console;
use crate::error::ApiError;
use crate::exports::Names;
use crate::model::{RosterEntry, RosterInput, Zone};
use crate::roster::Reassign;
use crate::state::AppState;
use crate::store::users::UserRow;
use crate::store::{self, now_ms};

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
    let roster = Roster {
        at,
        history,
        rows,
        names: Names::load(&state.db).await?,
        zones: store::reference::zones(&state.db.pool, None).await?,
        users: store::users::list(&state.db.pool).await?,
    };
    Ok(roster_markup(c, &roster))
}

/// What the roster page shows: the rows valid at `at` (every row with `history`), and what
/// the forms choose from.
struct Roster {
    at: i64,
    history: bool,
    rows: Vec<RosterEntry>,
    names: Names,
    zones: Vec<Zone>,
    users: Vec<UserRow>,
}

/// The roster's rows, each current one with its reassign and end forms, and the form that
/// opens an assignment.
fn roster_markup(c: &Console, r: &Roster) -> Markup {
    let Roster {
        at,
        history,
        rows,
        names,
        zones,
        users,
    } = r;
    let (at, history) = (*at, *history);
    let zone_name = |z: &Option<Uuid>| match z {
        Some(z) => names.zone_label(&z.to_string(), c.lang),
        None => c.t("console-every-zone"),
    };
    let zone_options = |current: Option<Uuid>| {
        html! {
            option value="" selected[current.is_none()] { (c.t("console-every-zone")) }
            @for z in zones {
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
                @for r in rows {
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
    admin_layout(
        c,
        "/console/admin/roster",
        &c.t("console-admin-roster"),
        body,
    )
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
