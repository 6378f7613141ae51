//! Maps drawn by the server as SVG: zone boundaries on a plain background with the open cases
//! as markers (each opening its case, overdue ones marked), and on a case page the zone with
//! the claimed position beside where each photo says it was taken. No tiles and no script are
//! needed, so the map works offline and in an office that reaches no foreign service.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gridline_sync::case::CaseState;
use maud::{html, Markup};
use serde_json::Value;

use super::{failure, layout, page, Console, Section};
use crate::error::ApiError;
use crate::exports::Names;
use crate::i18n;
use crate::model::Zone;
use crate::state::AppState;
use crate::store::{self, now_ms};

/// At most this many open cases are drawn.
const MAX_MARKERS: i64 = 2000;

/// A point to mark: position, the class that styles it, a label, and where it leads.
pub struct Marker {
    pub lat: f64,
    pub lon: f64,
    pub class: &'static str,
    pub label: String,
    pub href: Option<String>,
}

/// A plane projection of a small area (a subdistrict): longitude scaled by the cosine of the
/// middle latitude, so that distances look right.
struct Projection {
    min_lon: f64,
    max_lat: f64,
    scale: f64,
    cos: f64,
    width: f64,
    height: f64,
}

impl Projection {
    fn fit(points: &[(f64, f64)], width: f64) -> Option<Projection> {
        let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) =
            (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (lat, lon) in points {
            min_lat = min_lat.min(*lat);
            max_lat = max_lat.max(*lat);
            min_lon = min_lon.min(*lon);
            max_lon = max_lon.max(*lon);
        }
        if points.is_empty() {
            return None;
        }
        let pad_lat = ((max_lat - min_lat) * 0.05).max(0.0005);
        let pad_lon = ((max_lon - min_lon) * 0.05).max(0.0005);
        let (min_lat, max_lat) = (min_lat - pad_lat, max_lat + pad_lat);
        let (min_lon, max_lon) = (min_lon - pad_lon, max_lon + pad_lon);
        let cos = ((min_lat + max_lat) / 2.0).to_radians().cos();
        let scale = width / ((max_lon - min_lon) * cos);
        Some(Projection {
            min_lon,
            max_lat,
            scale,
            cos,
            width,
            height: (max_lat - min_lat) * scale,
        })
    }

    fn xy(&self, lat: f64, lon: f64) -> (f64, f64) {
        (
            (lon - self.min_lon) * self.cos * self.scale,
            (self.max_lat - lat) * self.scale,
        )
    }
}

/// A ring of a boundary as (lat, lon) points.
type Ring = Vec<(f64, f64)>;

/// The outer rings of a GeoJSON Polygon or MultiPolygon.
fn rings(boundary: &Value) -> Vec<Ring> {
    let ring = |r: &Value| -> Ring {
        r.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get(1)?.as_f64()?, p.get(0)?.as_f64()?)))
            .collect()
    };
    match boundary.get("type").and_then(Value::as_str) {
        Some("Polygon") => boundary["coordinates"]
            .get(0)
            .map(ring)
            .into_iter()
            .collect(),
        Some("MultiPolygon") => boundary["coordinates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|poly| poly.get(0).map(ring))
            .collect(),
        _ => Vec::new(),
    }
}

/// An SVG map of `zones` with `markers`, `width` pixels wide.
pub fn svg(c: &Console, zones: &[Zone], markers: &[Marker], width: f64, title: &str) -> Markup {
    let zone_rings: Vec<(&Zone, Vec<Ring>)> =
        zones.iter().map(|z| (z, rings(&z.boundary))).collect();
    let mut all: Vec<(f64, f64)> = zone_rings
        .iter()
        .flat_map(|(_, rs)| rs.iter().flatten().copied())
        .collect();
    all.extend(markers.iter().map(|m| (m.lat, m.lon)));
    let Some(proj) = Projection::fit(&all, width) else {
        return html! { p.muted { (c.t("console-map-empty")) } };
    };
    let points = |ring: &[(f64, f64)]| {
        ring.iter()
            .map(|(lat, lon)| {
                let (x, y) = proj.xy(*lat, *lon);
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    // A map with links is a group of links to assistive technology, one without an image.
    let role = if markers.iter().any(|m| m.href.is_some()) {
        "group"
    } else {
        "img"
    };
    html! {
        svg.map xmlns="http://www.w3.org/2000/svg" role=(role) aria-label=(title)
            viewBox={"0 0 " (format!("{:.0}", proj.width)) " " (format!("{:.0}", proj.height))}
            width=(format!("{:.0}", proj.width)) height=(format!("{:.0}", proj.height)) {
            title { (title) }
            rect.sea x="0" y="0" width=(format!("{:.0}", proj.width)) height=(format!("{:.0}", proj.height)) {}
            @for (zone, rs) in &zone_rings {
                @for r in rs {
                    polygon.zone points=(points(r)) {}
                }
                @if let Some(first) = rs.first() {
                    @let n = first.len().max(1) as f64;
                    @let (lat, lon) = first.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
                    @let (x, y) = proj.xy(lat, lon);
                    text.zone-label x=(format!("{x:.1}")) y=(format!("{y:.1}")) text-anchor="middle" {
                        (zone.translations.pick(c.lang, &zone.name))
                    }
                }
            }
            @for m in markers {
                @let (x, y) = proj.xy(m.lat, m.lon);
                @if let Some(href) = &m.href {
                    a href=(href) {
                        circle class=(m.class) cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="6" {
                            title { (m.label) }
                        }
                    }
                } @else {
                    circle class=(m.class) cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="6" {
                        title { (m.label) }
                    }
                }
            }
        }
    }
}

/// `GET /console/map`: the zones in the reader's scope and their open cases.
pub async fn map(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    match map_page(&state, &c).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn map_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let user = &c.session.user;
    let scope = user.scope(&state.db).await?;
    let zones = store::reference::zones(&state.db.pool, scope.zones()).await?;
    let cases = store::cases::list(
        &state.db.pool,
        scope.zones(),
        None,
        None,
        MAX_MARKERS,
        user.confidential_reader(),
    )
    .await?;
    let open: Vec<&store::cases::CaseRow> = cases
        .iter()
        .filter(|c| !gridline_sync::case::FINAL_STATES.contains(&c.state))
        .collect();
    let ids: Vec<uuid::Uuid> = open.iter().map(|c| c.id).collect();
    let mut conn = state.db.pool.acquire().await?;
    let workflows = store::review::workflows(&mut conn, &ids).await?;
    let names = Names::load(&state.db).await?;
    let now = now_ms();
    let mut overdue = 0;
    let markers: Vec<Marker> = open
        .iter()
        .map(|case| {
            let deadline = workflows.get(&case.id).and_then(|w| w.deadline_at);
            let late = gridline_sync::workflow::is_overdue(case.state, deadline, now);
            overdue += usize::from(late);
            let class = if late {
                "overdue"
            } else if case.state == CaseState::Reported {
                "reported"
            } else {
                "open"
            };
            Marker {
                lat: case.lat,
                lon: case.lon,
                class,
                label: format!(
                    "{} · {}",
                    names.category_label(&case.category_code, c.lang),
                    i18n::name(c.lang, "state", case.state.as_str())
                ),
                href: Some(format!("/console/cases/{}", case.id)),
            }
        })
        .collect();
    let title = c.t("console-map-title");
    let body = html! {
        h1 { (title) }
        p.bar {
            span.legend.reported { (c.t("state-reported")) }
            span.legend.open { (c.t("console-map-open")) }
            span.legend.overdue { (c.t("console-map-overdue")) " (" (overdue) ")" }
            span.hint { (c.ta("console-map-count", &[("count", &markers.len().to_string())])) }
        }
        div.mapbox { (svg(c, &zones, &markers, 1100.0, &title)) }
    };
    Ok(layout(c, Section::Map, &title, body))
}
