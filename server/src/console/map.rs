//! Maps drawn by the server as SVG: zone boundaries with the open cases as markers (each opening
//! its case, overdue ones marked), and on a case page the zone with the claimed position beside
//! where each photo says it was taken. No script is needed. With no tile service configured the
//! map has a plain background, so it works offline and in an office that reaches no foreign
//! service; with one (`console.map_tiles`, e.g. a domestic service in GCJ-02) the tiles are laid
//! under the boundaries in Web Mercator, each position converted to the tiles' datum first.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gridline_sync::case::CaseState;
use maud::{html, Markup};
use serde_json::Value;

use super::{failure, layout, page, Console, Section};
use crate::config::MapTiles;
use crate::error::ApiError;
use crate::exports::Names;
use crate::i18n;
use crate::model::Zone;
use crate::review::overview::OpenCase;
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

/// A line to draw over the zones (a round's track): its positions (lat, lon), the class that
/// styles it and a label.
pub struct Track {
    pub points: Vec<(f64, f64)>,
    pub class: &'static str,
    pub label: String,
}

/// How positions become points of the picture.
enum Projection {
    /// A plane projection of a small area (a subdistrict): longitude scaled by the cosine of
    /// the middle latitude, so that distances look right.
    Plain {
        min_lon: f64,
        max_lat: f64,
        scale: f64,
        cos: f64,
    },
    /// Web Mercator at a tile zoom level, scaled by `scale`, with positions first converted to
    /// the tiles' datum.
    Mercator {
        zoom: u8,
        /// World pixels (at `zoom`) of the picture's top-left corner.
        left: f64,
        top: f64,
        scale: f64,
        datum: gridline_sync::Datum,
    },
}

/// A map's projection and its size in pixels.
struct Frame {
    projection: Projection,
    width: f64,
    height: f64,
}

/// The bounding box of `points` (lat, lon) with a margin: (min_lat, max_lat, min_lon, max_lon).
fn padded_bounds(points: &[(f64, f64)]) -> Option<(f64, f64, f64, f64)> {
    if points.is_empty() {
        return None;
    }
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) =
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (lat, lon) in points {
        min_lat = min_lat.min(*lat);
        max_lat = max_lat.max(*lat);
        min_lon = min_lon.min(*lon);
        max_lon = max_lon.max(*lon);
    }
    let pad_lat = ((max_lat - min_lat) * 0.05).max(0.0005);
    let pad_lon = ((max_lon - min_lon) * 0.05).max(0.0005);
    Some((
        min_lat - pad_lat,
        max_lat + pad_lat,
        min_lon - pad_lon,
        max_lon + pad_lon,
    ))
}

/// World pixel coordinates of a position in Web Mercator at `zoom` (256-pixel tiles).
fn mercator(lat: f64, lon: f64, zoom: u8) -> (f64, f64) {
    let world = 256.0 * f64::from(1u32 << zoom);
    let lat = lat.clamp(-85.0511, 85.0511).to_radians();
    let x = (lon + 180.0) / 360.0 * world;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * world;
    (x, y)
}

impl Frame {
    fn fit(points: &[(f64, f64)], width: f64, tiles: Option<&MapTiles>) -> Option<Frame> {
        let (min_lat, max_lat, min_lon, max_lon) = padded_bounds(points)?;
        // A picture at most twice as tall as it is wide: points spread far north and south
        // (a photo's position gone wrong) shrink the map instead of stretching it.
        let max_height = 2.0 * width;
        let Some(tiles) = tiles else {
            let cos = ((min_lat + max_lat) / 2.0).to_radians().cos();
            let scale = (width / ((max_lon - min_lon) * cos)).min(max_height / (max_lat - min_lat));
            return Some(Frame {
                projection: Projection::Plain {
                    min_lon,
                    max_lat,
                    scale,
                    cos,
                },
                width: (max_lon - min_lon) * cos * scale,
                height: (max_lat - min_lat) * scale,
            });
        };
        let datum = tiles.datum;
        let (top_lat, left_lon) = datum.from_wgs84(max_lat, min_lon);
        let (bottom_lat, right_lon) = datum.from_wgs84(min_lat, max_lon);
        // The deepest zoom at which the area fits the picture; then scaled up to fill it. The
        // tiles drawn are then at most about (width/256 + 2) × (2·width/256 + 2).
        let mut zoom = tiles.max_zoom;
        while zoom > 1 {
            let (l, t) = mercator(top_lat, left_lon, zoom);
            let (r, b) = mercator(bottom_lat, right_lon, zoom);
            if r - l <= width && b - t <= max_height {
                break;
            }
            zoom -= 1;
        }
        let (left, top) = mercator(top_lat, left_lon, zoom);
        let (right, bottom) = mercator(bottom_lat, right_lon, zoom);
        let scale = (width / (right - left).max(1.0)).min(max_height / (bottom - top).max(1.0));
        let width = (right - left) * scale;
        Some(Frame {
            projection: Projection::Mercator {
                zoom,
                left,
                top,
                scale,
                datum,
            },
            width,
            height: (bottom - top) * scale,
        })
    }

    fn xy(&self, lat: f64, lon: f64) -> (f64, f64) {
        match &self.projection {
            Projection::Plain {
                min_lon,
                max_lat,
                scale,
                cos,
            } => ((lon - min_lon) * cos * scale, (max_lat - lat) * scale),
            Projection::Mercator {
                zoom,
                left,
                top,
                scale,
                datum,
            } => {
                let (lat, lon) = datum.from_wgs84(lat, lon);
                let (x, y) = mercator(lat, lon, *zoom);
                ((x - left) * scale, (y - top) * scale)
            }
        }
    }

    /// How a point of the picture turns back into a position, for the script that lets a
    /// click on a map fill in a place (`console.js`): the projection's name, four numbers and
    /// the datum the position comes out in. Plain: `min_lon`, `max_lat`, `scale`, `cos`;
    /// Mercator: `left`, `top`, `scale`, `zoom` (of 256-pixel tiles).
    fn inverse(&self) -> (&'static str, [f64; 4], &'static str) {
        match &self.projection {
            Projection::Plain {
                min_lon,
                max_lat,
                scale,
                cos,
            } => ("plain", [*min_lon, *max_lat, *scale, *cos], "wgs84"),
            Projection::Mercator {
                zoom,
                left,
                top,
                scale,
                datum,
            } => (
                "mercator",
                [*left, *top, *scale, f64::from(*zoom)],
                datum.as_str(),
            ),
        }
    }

    /// The tiles covering the picture: each tile's address and its place (x, y, size).
    fn tiles(&self, tiles: &MapTiles) -> Vec<(String, f64, f64, f64)> {
        let Projection::Mercator {
            zoom,
            left,
            top,
            scale,
            ..
        } = &self.projection
        else {
            return Vec::new();
        };
        let n = 1u32 << zoom;
        let first_x = (left / 256.0).floor().max(0.0) as u32;
        let first_y = (top / 256.0).floor().max(0.0) as u32;
        let last_x = (((left + self.width / scale) / 256.0).floor() as u32).min(n - 1);
        let last_y = (((top + self.height / scale) / 256.0).floor() as u32).min(n - 1);
        let mut out = Vec::new();
        for ty in first_y..=last_y {
            for tx in first_x..=last_x {
                let x = (f64::from(tx) * 256.0 - left) * scale;
                let y = (f64::from(ty) * 256.0 - top) * scale;
                out.push((tiles.tile_url(*zoom, tx, ty), x, y, 256.0 * scale));
            }
        }
        out
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

/// An SVG map of `zones` with `markers`, `width` pixels wide, over `tiles` if a service is
/// configured.
pub fn svg(
    c: &Console,
    zones: &[Zone],
    markers: &[Marker],
    width: f64,
    title: &str,
    tiles: Option<&MapTiles>,
) -> Markup {
    svg_with_tracks(c, zones, &[], markers, width, title, tiles)
}

/// [`svg`] with `tracks` drawn as lines between the zones and the markers.
pub fn svg_with_tracks(
    c: &Console,
    zones: &[Zone],
    tracks: &[Track],
    markers: &[Marker],
    width: f64,
    title: &str,
    tiles: Option<&MapTiles>,
) -> Markup {
    let zone_rings: Vec<(&Zone, Vec<Ring>)> =
        zones.iter().map(|z| (z, rings(&z.boundary))).collect();
    let mut all: Vec<(f64, f64)> = zone_rings
        .iter()
        .flat_map(|(_, rs)| rs.iter().flatten().copied())
        .collect();
    all.extend(markers.iter().map(|m| (m.lat, m.lon)));
    all.extend(tracks.iter().flat_map(|t| t.points.iter().copied()));
    let Some(proj) = Frame::fit(&all, width, tiles) else {
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
    let (kind, numbers, datum) = proj.inverse();
    let numbers = numbers
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        svg.map xmlns="http://www.w3.org/2000/svg" role=(role) aria-label=(title)
            data-projection=(kind) data-inverse=(numbers) data-datum=(datum)
            viewBox={"0 0 " (format!("{:.0}", proj.width)) " " (format!("{:.0}", proj.height))}
            width=(format!("{:.0}", proj.width)) height=(format!("{:.0}", proj.height)) {
            title { (title) }
            rect.sea x="0" y="0" width=(format!("{:.0}", proj.width)) height=(format!("{:.0}", proj.height)) {}
            @if let Some(t) = tiles {
                g.tiles aria-hidden="true" {
                    @for (href, x, y, size) in proj.tiles(t) {
                        image href=(href) x=(format!("{x:.1}")) y=(format!("{y:.1}"))
                            width=(format!("{:.1}", size + 0.5)) height=(format!("{:.1}", size + 0.5)) {}
                    }
                }
            }
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
            @for t in tracks {
                polyline class=(t.class) points=(points(&t.points)) {
                    title { (t.label) }
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
        Ok(m) => with_tiles(&state, page(StatusCode::OK, m)),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn map_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let open =
        crate::review::overview::open_cases(&state.db, &c.session.user, MAX_MARKERS, now_ms())
            .await?;
    let names = Names::load(&state.db).await?;
    let scope = c.session.user.scope(&state.db).await?;
    let zones = store::reference::zones(&state.db.pool, scope.zones()).await?;
    Ok(map_markup(c, state, &names, &zones, &open))
}

/// The map page: `zones`, and the open cases as markers coloured by state, the overdue apart.
fn map_markup(
    c: &Console,
    state: &AppState,
    names: &Names,
    zones: &[Zone],
    open: &[OpenCase],
) -> Markup {
    let truncated = open.len() as i64 >= MAX_MARKERS;
    let overdue = open.iter().filter(|o| o.overdue).count();
    let markers: Vec<Marker> = open
        .iter()
        .map(|OpenCase { case, overdue }| {
            let class = if *overdue {
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
            @if truncated {
                span.hint { (c.ta("console-map-truncated", &[("count", &MAX_MARKERS.to_string())])) }
            }
        }
        div.mapbox { (svg(c, zones, &markers, 1100.0, &title, state.config.console.map_tiles.as_ref())) }
        (attribution(state))
    };
    layout(c, Section::Map, &title, body)
}

/// The tile service's credit, under a map drawn on its tiles.
pub fn attribution(state: &AppState) -> Markup {
    html! {
        @if let Some(t) = &state.config.console.map_tiles {
            @if !t.attribution.is_empty() { p.muted.attribution { (t.attribution) } }
        }
    }
}

/// A page with a map: its security policy also lets images come from the tile service.
pub fn with_tiles(state: &AppState, mut response: Response) -> Response {
    let Some(tiles) = &state.config.console.map_tiles else {
        return response;
    };
    let policy = super::PAGE_POLICY.replace(
        "img-src 'self' data:",
        &format!("img-src 'self' data: {}", tiles.origins().join(" ")),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiles() -> MapTiles {
        MapTiles {
            url: "https://t{s}.example.cn/{z}/{x}/{y}.png".into(),
            subdomains: vec!["1".into(), "2".into()],
            datum: gridline_sync::Datum::Wgs84,
            attribution: String::new(),
            max_zoom: 18,
        }
    }

    #[test]
    fn mercator_puts_a_known_place_in_its_known_tile() {
        // Tiananmen (39.9087 N, 116.3975 E) is in tile 13/6744/3104 of the XYZ scheme (as the
        // slippy-map formula with asinh gives it).
        let (x, y) = mercator(39.9087, 116.3975, 13);
        assert_eq!(((x / 256.0) as u32, (y / 256.0) as u32), (6744, 3104));
    }

    #[test]
    fn a_tiled_map_covers_its_area_with_tiles_and_keeps_points_inside() {
        let points = [(31.20, 121.40), (31.23, 121.45)];
        let t = tiles();
        let frame = Frame::fit(&points, 800.0, Some(&t)).unwrap();
        let list = frame.tiles(&t);
        assert!(!list.is_empty());
        for (lat, lon) in points {
            let (x, y) = frame.xy(lat, lon);
            assert!((0.0..=frame.width).contains(&x) && (0.0..=frame.height).contains(&y));
            // Some tile lies under every point.
            assert!(list
                .iter()
                .any(|(_, tx, ty, s)| *tx <= x && x <= tx + s && *ty <= y && y <= ty + s));
        }
        assert!(list
            .iter()
            .all(|(u, ..)| u.starts_with("https://t1.example.cn/")
                || u.starts_with("https://t2.example.cn/")));
        assert_eq!(
            t.origins(),
            vec!["https://t1.example.cn", "https://t2.example.cn"]
        );
    }

    #[test]
    fn points_far_apart_shrink_the_map_instead_of_stretching_it() {
        // A photo whose latitude lost its sign, beside the claimed position.
        let points = [(31.20, 121.40), (-31.20, 121.40)];
        let t = tiles();
        let frame = Frame::fit(&points, 800.0, Some(&t)).unwrap();
        assert!(
            frame.height <= 1600.5 && frame.width <= 800.5,
            "{} × {}",
            frame.width,
            frame.height
        );
        assert!(
            frame.tiles(&t).len() <= 100,
            "{} tiles",
            frame.tiles(&t).len()
        );
        let plain = Frame::fit(&points, 800.0, None).unwrap();
        assert!(plain.height <= 1600.5 && plain.width <= 800.5);
    }

    #[test]
    fn tiles_in_gcj02_move_the_drawing_with_them() {
        let points = [(31.20, 121.40), (31.23, 121.45)];
        let wgs = Frame::fit(&points, 800.0, Some(&tiles())).unwrap();
        let gcj = Frame::fit(
            &points,
            800.0,
            Some(&MapTiles {
                datum: gridline_sync::Datum::Gcj02,
                ..tiles()
            }),
        )
        .unwrap();
        // The same place is drawn where each service's tiles show it: the GCJ-02 offset is a
        // few hundred metres, so the tile under it differs while the frame's size does not.
        let (Projection::Mercator { left: a, .. }, Projection::Mercator { left: b, .. }) =
            (&wgs.projection, &gcj.projection)
        else {
            panic!("a tiled map is drawn in Web Mercator");
        };
        assert!((a - b).abs() > 1.0);
    }
}
