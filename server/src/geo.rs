//! Just enough geometry: validating GeoJSON zone boundaries and point-in-polygon tests.

use serde_json::Value;

/// Checks a GeoJSON `Polygon` or `MultiPolygon` in WGS84; returns a reason when invalid.
pub fn validate_boundary(geometry: &Value) -> Result<(), String> {
    let kind = geometry
        .get("type")
        .and_then(Value::as_str)
        .ok_or("missing `type`")?;
    let coords = geometry.get("coordinates").ok_or("missing `coordinates`")?;
    match kind {
        "Polygon" => validate_polygon(coords),
        "MultiPolygon" => {
            let polys = coords.as_array().ok_or("`coordinates` must be an array")?;
            if polys.is_empty() {
                return Err("a MultiPolygon needs at least one polygon".into());
            }
            polys.iter().try_for_each(validate_polygon)
        }
        other => Err(format!(
            "`type` must be Polygon or MultiPolygon, not {other}"
        )),
    }
}

fn validate_polygon(rings: &Value) -> Result<(), String> {
    let rings = rings
        .as_array()
        .ok_or("a polygon must be an array of rings")?;
    if rings.is_empty() {
        return Err("a polygon needs an outer ring".into());
    }
    for ring in rings {
        let points = ring_points(ring)?;
        if points.len() < 4 {
            return Err("a ring needs at least 4 positions".into());
        }
        if points.first() != points.last() {
            return Err("a ring must be closed (first position = last)".into());
        }
        if points.len() > 100_000 {
            return Err("a ring may have at most 100000 positions".into());
        }
    }
    Ok(())
}

fn ring_points(ring: &Value) -> Result<Vec<(f64, f64)>, String> {
    let positions = ring
        .as_array()
        .ok_or("a ring must be an array of positions")?;
    positions
        .iter()
        .map(|p| {
            let pair = p.as_array().ok_or("a position must be [lon, lat]")?;
            let lon = pair
                .first()
                .and_then(Value::as_f64)
                .ok_or("a position must be [lon, lat]")?;
            let lat = pair
                .get(1)
                .and_then(Value::as_f64)
                .ok_or("a position must be [lon, lat]")?;
            if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
                return Err(format!("position [{lon}, {lat}] is outside WGS84 range"));
            }
            Ok((lon, lat))
        })
        .collect()
}

/// Whether (lon, lat) lies inside the boundary (even-odd rule; holes excluded).
pub fn contains(geometry: &Value, lon: f64, lat: f64) -> bool {
    let polygons: Vec<&Value> = match geometry.get("type").and_then(Value::as_str) {
        Some("Polygon") => geometry.get("coordinates").into_iter().collect(),
        Some("MultiPolygon") => geometry
            .get("coordinates")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => return false,
    };
    polygons.iter().any(|poly| {
        let Some(rings) = poly.as_array() else {
            return false;
        };
        let mut inside = false;
        for (i, ring) in rings.iter().enumerate() {
            let Ok(points) = ring_points(ring) else {
                return false;
            };
            let in_ring = ring_contains(&points, lon, lat);
            if i == 0 {
                inside = in_ring;
            } else if in_ring {
                inside = false;
            }
        }
        inside
    })
}

fn ring_contains(points: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let n = points.len();
    let mut j = n.wrapping_sub(1);
    for i in 0..n {
        let (xi, yi) = points[i];
        let (xj, yj) = points[j];
        if ((yi > y) != (yj > y)) && (x < (xj - xi) * (y - yi) / (yj - yi) + xi) {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// A WGS-84 GeoJSON geometry with every position in `datum` instead (for a map drawn on
/// GCJ-02 or BD-09 tiles). Anything that is not a position is copied as it is.
pub fn in_datum(geometry: &Value, datum: gridline_sync::Datum) -> Value {
    fn convert(v: &Value, datum: gridline_sync::Datum) -> Value {
        match v.as_array() {
            Some(items) => match (
                items.first().and_then(Value::as_f64),
                items.get(1).and_then(Value::as_f64),
            ) {
                (Some(lon), Some(lat)) if items.len() >= 2 => {
                    let (lat, lon) = datum.from_wgs84(lat, lon);
                    let mut out = vec![Value::from(lon), Value::from(lat)];
                    out.extend(items[2..].iter().cloned());
                    Value::Array(out)
                }
                _ => Value::Array(items.iter().map(|i| convert(i, datum)).collect()),
            },
            None => v.clone(),
        }
    }
    let mut out = geometry.clone();
    if let Some(coords) = geometry.get("coordinates") {
        out["coordinates"] = convert(coords, datum);
    }
    out
}

/// A rectangle as a closed GeoJSON polygon.
pub fn rectangle(min_lon: f64, min_lat: f64, max_lon: f64, max_lat: f64) -> Value {
    serde_json::json!({
        "type": "Polygon",
        "coordinates": [[[min_lon, min_lat], [max_lon, min_lat], [max_lon, max_lat], [min_lon, max_lat], [min_lon, min_lat]]]
    })
}

/// Great-circle distance in metres.
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let r = 6_371_000.0_f64;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * r * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangle_contains_its_centre_only() {
        let r = rectangle(116.0, 39.0, 116.1, 39.1);
        assert!(validate_boundary(&r).is_ok());
        assert!(contains(&r, 116.05, 39.05));
        assert!(!contains(&r, 116.2, 39.05));
    }

    #[test]
    fn open_rings_and_bad_types_are_refused() {
        let open =
            serde_json::json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1]]]});
        assert!(validate_boundary(&open).is_err());
        assert!(
            validate_boundary(&serde_json::json!({"type": "Point", "coordinates": [0,0]})).is_err()
        );
        assert!(validate_boundary(&serde_json::json!("x")).is_err());
    }

    #[test]
    fn a_boundary_moves_to_another_datum_position_by_position() {
        let wgs = rectangle(102.70, 25.02, 102.712, 25.029);
        let gcj = in_datum(&wgs, gridline_sync::Datum::Gcj02);
        assert_eq!(gcj["type"], "Polygon");
        let (a, b) = (&wgs["coordinates"][0][1], &gcj["coordinates"][0][1]);
        let (lat, lon) =
            gridline_sync::Datum::Gcj02.from_wgs84(a[1].as_f64().unwrap(), a[0].as_f64().unwrap());
        assert_eq!((b[0].as_f64().unwrap(), b[1].as_f64().unwrap()), (lon, lat));
        assert!(distance_m(a[1].as_f64().unwrap(), a[0].as_f64().unwrap(), lat, lon) > 100.0);
        assert_eq!(in_datum(&wgs, gridline_sync::Datum::Wgs84), wgs);
    }

    #[test]
    fn distance_is_plausible() {
        let d = distance_m(39.9, 116.3, 39.91, 116.3);
        assert!((d - 1112.0).abs() < 5.0, "{d}");
    }
}
