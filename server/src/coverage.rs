//! How much of a zone the rounds walked: the tracks recorded in a period, and the share of the
//! zone they came near.
//!
//! The zone's bounding box is split into square cells of [`CELL_M`] metres; a cell whose centre
//! lies inside the zone counts, and is covered when a track passes within [`REACH_M`] metres of
//! that centre. Distances are measured on a local plane (longitude scaled by the cosine of the
//! box's middle latitude), exact enough at the size of a community. Tracks are stored as Google
//! encoded polylines (precision 1e5, latitude first) in WGS-84, the datum of the boundaries.
//!
//! A round hidden from the reader (unannounced, not revealed, not theirs or their plan's) is
//! neither drawn nor counted for them: what they are shown must not tell them an unannounced
//! inspection walked their streets.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::store::{plans as store, reference, time_from_ms, Db};

/// The side of a cell, in metres.
pub const CELL_M: f64 = 50.0;
/// How near a track must pass a cell's centre to cover it, in metres.
pub const REACH_M: f64 = 25.0;
/// Most cells a zone is split into: a larger zone gets larger cells, so that a request stays
/// cheap whatever boundary was published.
pub const MAX_CELLS: f64 = 250_000.0;
/// Longest period one request covers, in days.
pub const MAX_RANGE_DAYS: i64 = 366;

const METRES_PER_DEGREE: f64 = 111_320.0;

/// One round's track.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoundTrack {
    pub round_id: Uuid,
    pub user_id: Uuid,
    /// `routine`, `periodic` or `unannounced`.
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// The positions walked, `[lon, lat]` in WGS-84 (GeoJSON order).
    pub points: Vec<[f64; 2]>,
}

/// The coverage of a zone in a period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ZoneCoverage {
    pub zone_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// The side of the cells counted, in metres (50, more for a very large zone).
    pub cell_m: f64,
    /// Cells whose centre lies inside the zone.
    pub cells: u64,
    /// Those within 25 m of a track.
    pub cells_covered: u64,
    /// `cells_covered` over `cells`, in per cent (0 for a zone of no cell).
    pub percent: f64,
    /// The tracks of the rounds made in the zone that started in the period, by start.
    pub tracks: Vec<RoundTrack>,
}

/// Cells inside and covered, as [`cover`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub cells: u64,
    pub covered: u64,
}

/// A local plane around a latitude: (lat, lon) to metres east and north of an origin.
struct Plane {
    lat0: f64,
    lon0: f64,
    cos: f64,
}

impl Plane {
    fn xy(&self, lat: f64, lon: f64) -> (f64, f64) {
        (
            (lon - self.lon0) * self.cos * METRES_PER_DEGREE,
            (lat - self.lat0) * METRES_PER_DEGREE,
        )
    }
    fn lat_lon(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.lat0 + y / METRES_PER_DEGREE,
            self.lon0 + x / (self.cos * METRES_PER_DEGREE),
        )
    }
}

/// Every position of a boundary's outer rings, `(lat, lon)`.
fn boundary_points(boundary: &Value) -> Vec<(f64, f64)> {
    let polygons: Vec<&Value> = match boundary.get("type").and_then(Value::as_str) {
        Some("Polygon") => boundary.get("coordinates").into_iter().collect(),
        Some("MultiPolygon") => boundary
            .get("coordinates")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    polygons
        .iter()
        .filter_map(|p| p.get(0)?.as_array())
        .flatten()
        .filter_map(|p| Some((p.get(1)?.as_f64()?, p.get(0)?.as_f64()?)))
        .collect()
}

/// The distance from point `p` to the segment `a`–`b`, on the plane.
fn to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// The cells of `boundary` (GeoJSON, WGS-84) and those within [`REACH_M`] of `tracks` (each a
/// line of `(lat, lon)`), with the cell side used.
pub fn cover(boundary: &Value, tracks: &[Vec<(f64, f64)>]) -> (Count, f64) {
    let points = boundary_points(boundary);
    let none = Count {
        cells: 0,
        covered: 0,
    };
    if points.is_empty() {
        return (none, CELL_M);
    }
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) =
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (lat, lon) in &points {
        min_lat = min_lat.min(*lat);
        max_lat = max_lat.max(*lat);
        min_lon = min_lon.min(*lon);
        max_lon = max_lon.max(*lon);
    }
    let plane = Plane {
        lat0: min_lat,
        lon0: min_lon,
        cos: ((min_lat + max_lat) / 2.0).to_radians().cos(),
    };
    let (width, height) = plane.xy(max_lat, max_lon);
    let mut cell = CELL_M;
    if (width / cell).ceil() * (height / cell).ceil() > MAX_CELLS {
        cell = (width * height / MAX_CELLS).sqrt().ceil();
    }
    let nx = ((width / cell).ceil() as usize).max(1);
    let ny = ((height / cell).ceil() as usize).max(1);
    let centre = |i: usize, j: usize| ((i as f64 + 0.5) * cell, (j as f64 + 0.5) * cell);
    let mut inside = vec![false; nx * ny];
    for j in 0..ny {
        for i in 0..nx {
            let (x, y) = centre(i, j);
            let (lat, lon) = plane.lat_lon(x, y);
            inside[j * nx + i] = crate::geo::contains(boundary, lon, lat);
        }
    }
    // Each segment marks only the cells near its own box, so the work grows with the length
    // walked rather than with the zone times the track.
    let mut covered = vec![false; nx * ny];
    let cell_range = |lo: f64, hi: f64, n: usize| {
        let first = ((lo - REACH_M) / cell).floor().max(0.0) as usize;
        let last = (((hi + REACH_M) / cell).floor().max(0.0) as usize).min(n - 1);
        first..=last
    };
    for track in tracks {
        let xy: Vec<(f64, f64)> = track
            .iter()
            .map(|(lat, lon)| plane.xy(*lat, *lon))
            .collect();
        let segments: Vec<((f64, f64), (f64, f64))> = match xy.len() {
            0 => continue,
            1 => vec![(xy[0], xy[0])],
            _ => xy.windows(2).map(|w| (w[0], w[1])).collect(),
        };
        for (a, b) in segments {
            if a.0.max(b.0) + REACH_M < 0.0
                || a.1.max(b.1) + REACH_M < 0.0
                || a.0.min(b.0) - REACH_M > width
                || a.1.min(b.1) - REACH_M > height
            {
                continue;
            }
            for j in cell_range(a.1.min(b.1), a.1.max(b.1), ny) {
                for i in cell_range(a.0.min(b.0), a.0.max(b.0), nx) {
                    let k = j * nx + i;
                    if inside[k] && !covered[k] && to_segment(centre(i, j), a, b) <= REACH_M {
                        covered[k] = true;
                    }
                }
            }
        }
    }
    let count = Count {
        cells: inside.iter().filter(|c| **c).count() as u64,
        covered: covered.iter().filter(|c| **c).count() as u64,
    };
    (count, cell)
}

/// A stored track decoded to `(lat, lon)` points; `None` when it is not a valid polyline.
pub fn decode(track: &str) -> Option<Vec<(f64, f64)>> {
    let line = polyline::decode_polyline(track, 5).ok()?;
    Some(line.coords().map(|c| (c.y, c.x)).collect())
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The coverage of zone `zone` by the rounds that started in `[from, to)` (at most a year), as
/// `user` may see it: a zone outside their scope is `404`, and the rounds hidden from them are
/// left out.
pub async fn zone_coverage(
    db: &Db,
    user: &AuthUser,
    zone: Uuid,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> ApiResult<ZoneCoverage> {
    if to <= from {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    if ms(to) - ms(from) > MAX_RANGE_DAYS * 86_400_000 {
        return Err(ApiError::invalid(
            "to",
            format!("at most {MAX_RANGE_DAYS} days after from"),
        ));
    }
    let scope = user.scope(db).await?;
    if !scope.contains(zone) {
        return Err(ApiError::not_found("zone"));
    }
    let z = reference::zone(&db.pool, zone)
        .await?
        .ok_or_else(|| ApiError::not_found("zone"))?;
    let mut conn = db.pool.acquire().await?;
    let rows = store::tracks_in_zone(
        &mut conn,
        zone,
        ms(from),
        ms(to),
        user.confidential_reader(),
    )
    .await?;
    let mut tracks = Vec::new();
    for row in rows {
        // A track the phone sent garbled is left out rather than failing the whole zone.
        let Some(points) = decode(&row.track) else {
            tracing::warn!(round = %row.round_id, "coverage: a track that is no polyline");
            continue;
        };
        tracks.push(RoundTrack {
            round_id: row.round_id,
            user_id: row.user_id,
            kind: row.kind,
            started_at: time_from_ms(row.started_at),
            points: points.iter().map(|(lat, lon)| [*lon, *lat]).collect(),
        });
    }
    let lines: Vec<Vec<(f64, f64)>> = tracks
        .iter()
        .map(|t| t.points.iter().map(|[lon, lat]| (*lat, *lon)).collect())
        .collect();
    let (count, cell_m) = cover(&z.boundary, &lines);
    let percent = if count.cells == 0 {
        0.0
    } else {
        (count.covered as f64 * 1000.0 / count.cells as f64).round() / 10.0
    };
    Ok(ZoneCoverage {
        zone_id: zone,
        from,
        to,
        cell_m,
        cells: count.cells,
        cells_covered: count.covered,
        percent,
        tracks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A square of about 500 m a side at Kunming's latitude.
    fn square() -> Value {
        let (lat, lon): (f64, f64) = (25.0, 102.7);
        let dlat = 500.0 / METRES_PER_DEGREE;
        let dlon = 500.0 / (METRES_PER_DEGREE * lat.to_radians().cos());
        crate::geo::rectangle(lon, lat, lon + dlon, lat + dlat)
    }

    #[test]
    fn a_square_of_500_m_has_a_hundred_cells_and_no_track_covers_none() {
        let (count, cell) = cover(&square(), &[]);
        assert_eq!(cell, CELL_M);
        assert!((95..=110).contains(&count.cells), "{count:?}");
        assert_eq!(count.covered, 0);
    }

    #[test]
    fn a_walk_across_the_middle_covers_one_row_of_cells() {
        let (lat, lon): (f64, f64) = (25.0, 102.7);
        let dlat = 500.0 / METRES_PER_DEGREE;
        let dlon = 500.0 / (METRES_PER_DEGREE * lat.to_radians().cos());
        // Along the centres of a row: that row only (the next centres are 50 m away).
        let mid = lat + dlat * 0.55;
        let walk = vec![(mid, lon - dlon * 0.1), (mid, lon + dlon * 1.1)];
        let (count, _) = cover(&square(), std::slice::from_ref(&walk));
        assert!((9..=11).contains(&count.covered), "{count:?}");
        // Walked twice: the same cells.
        let (twice, _) = cover(&square(), &[walk.clone(), walk]);
        assert_eq!(twice.covered, count.covered);
        // A walk far away covers nothing.
        let (away, _) = cover(
            &square(),
            &[vec![(lat + 1.0, lon), (lat + 1.0, lon + 0.01)]],
        );
        assert_eq!(away.covered, 0);
    }

    #[test]
    fn a_huge_zone_gets_larger_cells() {
        let b = crate::geo::rectangle(100.0, 20.0, 104.0, 24.0);
        let (count, cell) = cover(&b, &[]);
        assert!(cell > CELL_M);
        assert!(count.cells as f64 <= MAX_CELLS * 1.01, "{count:?}");
    }

    #[test]
    fn the_reference_polyline_decodes_latitude_first() {
        // Google's documented example: (38.5, -120.2), (40.7, -120.95), (43.252, -126.453).
        let points = decode("_p~iF~ps|U_ulLnnqC_mqNvxq`@").unwrap();
        assert_eq!(points.len(), 3);
        assert!((points[0].0 - 38.5).abs() < 1e-9 && (points[0].1 + 120.2).abs() < 1e-9);
        assert!((points[2].0 - 43.252).abs() < 1e-9);
        assert!(decode("not a polyline \u{1}").is_none());
    }
}
