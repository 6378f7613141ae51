//! Users and their roles, and devices (revoke), for admins, through `accounts` as the API.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use gridline_sync::Role;
use maud::{html, Markup};
use uuid::Uuid;

use super::{admin_layout, admin_page, change, csrf, role_name, Fields};
use crate::accounts::{self, Revoker, UserUpdate};
use crate::console::Console;
use crate::error::ApiError;
use crate::exports::Names;
use crate::model::UserInput;
use crate::state::AppState;
use crate::store;
use crate::store::devices::DeviceRow;
use crate::store::users::UserRow;

// ---- users ------------------------------------------------------------------------------------

pub async fn users(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    admin_page(&c, &headers, users_page(&state, &c)).await
}

async fn users_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let users = store::users::list(&state.db.pool).await?;
    Ok(users_markup(c, &users))
}

/// Each user's name, address and roles, account and password forms, and the new user's form.
fn users_markup(c: &Console, users: &[UserRow]) -> Markup {
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
                @for u in users {
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
    admin_layout(c, "/console/admin/users", &c.t("console-admin-users"), body)
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
    Ok(devices_markup(c, &devices, &names))
}

/// The enrolled devices, each with its person and a revoke form while it is not revoked.
fn devices_markup(c: &Console, devices: &[DeviceRow], names: &Names) -> Markup {
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
                    @for d in devices {
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
    admin_layout(
        c,
        "/console/admin/devices",
        &c.t("console-admin-devices"),
        body,
    )
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
