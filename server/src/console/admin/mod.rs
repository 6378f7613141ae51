//! Administration in the console, for admins: users and their roles, devices (revoke), the roster
//! over time (open, end, reassign; who was accountable at a given moment), zones with their
//! coefficient per open period, the taxonomy and the rulebooks. Every change goes through the
//! same services as the API (`accounts`, `roster`, `periods`, `rulebooks`), so it is checked and
//! audited alike. A new rulebook version is written here from the one in force, and the taxonomy
//! refined and extended (`rulebooks`, `taxonomy`); zone boundaries are published through the API
//! (`POST /v1/zones`, `PUT /v1/zones/{id}`) and shown here with their coefficients.
//!
//! One module per tab: `users` (users and devices), `roster`, `zones`, `reference`
//! (rulebooks and the taxonomy) with the working-day `calendar` on the same page; the
//! notification defaults are `console::settings`. This module holds what they share: the tabs,
//! the admin check, and reading and running a posted form.

mod calendar;
mod reference;
mod roster;
mod users;
mod zones;

pub use calendar::import_calendar;
pub use reference::{publish_rulebook, reference, save_taxonomy};
pub use roster::{end_assignment, open_assignment, reassign, roster};
pub use users::{create_user, devices, revoke_device, set_password, update_user, users};
pub use zones::{set_coefficient, zones};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gridline_sync::Role;
use maud::{html, Markup};
use uuid::Uuid;

use super::{failure, page, Console, Section};
use crate::error::ApiError;
use crate::i18n::{self, Lang};

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

pub async fn index() -> Redirect {
    Redirect::to("/console/admin/users")
}
