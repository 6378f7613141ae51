//! Zones with their coefficient in each period not yet closed, for admins; a coefficient is set
//! through `periods`, as the API does. Boundaries are published through the API.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};
use uuid::Uuid;

use super::{admin_layout, admin_page, change, csrf, Fields};
use crate::console::Console;
use crate::error::ApiError;
use crate::model::{Coefficient, Period, Zone};
use crate::state::AppState;
use crate::store;

pub async fn zones(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    admin_page(&c, &headers, zones_page(&state, &c)).await
}

async fn zones_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let zones = store::reference::zones(&state.db.pool, None).await?;
    let periods = crate::periods::open_coefficients(&state.db).await?;
    Ok(zones_markup(c, &zones, &periods))
}

/// Each zone's names, and for each period not yet closed its coefficient in a form.
fn zones_markup(c: &Console, zones: &[Zone], periods: &[(Period, Vec<Coefficient>)]) -> Markup {
    let body = html! {
        p.hint { (c.t("console-zones-hint")) }
        table {
            thead { tr {
                th { (c.t("console-code")) }
                th { (c.t("col-zone_name")) }
                @for (p, _) in periods { th { (c.ta("console-coefficient-in", &[("period", &p.code)])) } }
            } }
            tbody {
                @for z in zones {
                    tr {
                        td { (z.code) }
                        td {
                            (z.name)
                            @for (tag, text) in &z.translations.0 { br; span.muted lang=(tag) { (text) } }
                        }
                        @for (p, set) in periods {
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
    admin_layout(c, "/console/admin/zones", &c.t("console-admin-zones"), body)
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
