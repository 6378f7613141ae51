//! Integrity flags a photo raises on its case: a reused photo, GPS outside the zone, and
//! positions declared in GCJ-02 compared with EXIF in WGS-84.

use gridline_server::store::photos as photo_store;
use gridline_testkit::{new_case, noisy_jpeg as jpeg, Db, Phone};
use reqwest::StatusCode;
use serde_json::json;

use super::fixtures::{
    case_declaring, photo_app, put_photo, sha_hex, with_exif, zone_centre, ExifSpec,
};

on_both_databases!(
    integrity_flags_for_a_reused_photo_and_gps_outside_the_zone,
    a_position_in_gcj02_is_stored_in_wgs84_and_checked_against_exif_there,
);

async fn integrity_flags_for_a_reused_photo_and_gps_outside_the_zone(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let (lat, lon) = zone_centre(&app, "Z01").await;
    let captured_at = 1_714_530_600_000; // 2024-05-01 10:30:00 +08:00
                                         // Taken where the case says, at the time it says.
    let honest = with_exif(
        &jpeg(80, 60, 9),
        &ExifSpec {
            taken: Some("2024:05:01 10:31:00"),
            gps: Some((lat, lon)),
            ..ExifSpec::default()
        },
    );
    // Taken 3 km away (outside Z01) and a day earlier.
    let elsewhere = with_exif(
        &jpeg(80, 60, 10),
        &ExifSpec {
            taken: Some("2024:04:30 10:30:00"),
            gps: Some((lat + 0.03, lon + 0.03)),
            ..ExifSpec::default()
        },
    );
    let never_sent = jpeg(80, 60, 11);
    let case = case_declaring(&app, "Z01", &[&honest, &elsewhere], captured_at).await;
    let token = app.login("inspector1").await;
    for p in [&honest, &elsewhere] {
        assert_eq!(
            put_photo(&app, &token, p, &sha_hex(p)).await.0,
            StatusCode::CREATED
        );
    }
    let summary = photo_store::evidence(&app.state.db, case).await.unwrap();
    assert!(summary.complete);
    let flags_of = |sha: &str| {
        summary
            .photos
            .iter()
            .find(|p| p.sha256 == sha)
            .unwrap()
            .flags
            .clone()
    };
    assert!(flags_of(&sha_hex(&honest)).is_empty(), "{summary:?}");
    assert_eq!(
        flags_of(&sha_hex(&elsewhere)),
        [
            "exif_time_mismatch",
            "exif_gps_mismatch",
            "exif_gps_outside_zone"
        ]
    );
    let (status, meta) = app
        .get(&format!("/v1/photos/{}", sha_hex(&elsewhere)), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        (meta["exif_lat"].as_f64().unwrap() - (lat + 0.03)).abs() < 1e-4,
        "{meta}"
    );

    // Another case declares the honest photo too: it is reused; and a photo not yet arrived
    // leaves that case's evidence incomplete.
    let reuser = case_declaring(&app, "Z01", &[&honest, &never_sent], captured_at).await;
    let summary = photo_store::evidence(&app.state.db, case).await.unwrap();
    assert!(
        summary.flags.contains(&"photo_reused".to_owned()),
        "{summary:?}"
    );
    let other = photo_store::evidence(&app.state.db, reuser).await.unwrap();
    assert!(!other.complete);
    assert!(other.flags.contains(&"photo_reused".to_owned()));
    assert!(other.flags.contains(&"evidence_incomplete".to_owned()));
    let missing = other
        .photos
        .iter()
        .find(|p| p.sha256 == sha_hex(&never_sent))
        .unwrap();
    assert!(!missing.verified && !missing.thumb_ready);
}

/// Domestic map pickers give GCJ-02, hundreds of metres from the WGS-84 of GPS and EXIF. A
/// position declared in GCJ-02 is stored in WGS-84: an honest inspector's photo then matches
/// it, and one taken 300 m from the declared place still does not. Declared as WGS-84, the
/// same GCJ-02 numbers would be flagged (the datum is what makes the difference).
async fn a_position_in_gcj02_is_stored_in_wgs84_and_checked_against_exif_there(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let (lat, lon) = zone_centre(&app, "Z01").await;
    let datum = gridline_sync::Datum::Gcj02;
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let sup = app.login("supervisor1").await;
    // (declared WGS-84 place, datum written in the operation, where the photo was taken)
    let cases = [
        ((lat, lon), Some("gcj02"), (lat, lon), 31),
        ((lat + 0.0027, lon), Some("gcj02"), (lat, lon), 32),
        ((lat, lon), None, (lat, lon), 33),
    ];
    let mut flags = Vec::new();
    for ((wlat, wlon), written, (exif_lat, exif_lon), seed) in cases {
        let (glat, glon) = datum.from_wgs84(wlat, wlon);
        assert!(
            gridline_server::geo::distance_m(wlat, wlon, glat, glon) > 250.0,
            "GCJ-02 is far from WGS-84 in Beijing"
        );
        let photo = with_exif(
            &jpeg(80, 60, seed),
            &ExifSpec {
                taken: Some("2024:05:01 10:31:00"),
                gps: Some((exif_lat, exif_lon)),
                ..ExifSpec::default()
            },
        );
        let (case_id, mut payload) = new_case(app.zone("Z01"), 0, "event:0102");
        payload["location"] = json!({"lat": glat, "lon": glon, "accuracy_m": 5.0});
        if let Some(d) = written {
            payload["location"]["datum"] = json!(d);
        }
        payload["captured_at"] = json!("2024-05-01T02:30:00Z");
        payload["photos"][0] = json!({"sha256": sha_hex(&photo), "size": photo.len(),
            "captured_at": "2024-05-01T02:30:00Z", "role": "before"});
        let op = phone.op("case.create@1", payload);
        let (status, body) = phone.push(&app, &[op]).await;
        assert_eq!(body["results"][0]["status"], "applied", "{status} {body}");
        assert_eq!(
            put_photo(&app, &phone.token, &photo, &sha_hex(&photo))
                .await
                .0,
            StatusCode::CREATED
        );
        let (_, view) = app.get(&format!("/v1/cases/{case_id}"), Some(&sup)).await;
        let stored = (
            view["location"]["lat"].as_f64().unwrap(),
            view["location"]["lon"].as_f64().unwrap(),
        );
        if written.is_some() {
            // Stored in WGS-84, to well under a metre.
            assert!(
                gridline_server::geo::distance_m(stored.0, stored.1, wlat, wlon) < 0.5,
                "{stored:?} vs {:?}",
                (wlat, wlon)
            );
        } else {
            assert_eq!(stored, (glat, glon), "taken as given");
        }
        let summary = photo_store::evidence(&app.state.db, case_id).await.unwrap();
        flags.push(summary.photos[0].flags.clone());
    }
    assert!(flags[0].is_empty(), "honest, in GCJ-02: {flags:?}");
    assert!(
        flags[1].contains(&"exif_gps_mismatch".to_owned()),
        "300 m off: {flags:?}"
    );
    assert!(
        flags[2].contains(&"exif_gps_mismatch".to_owned()),
        "GCJ-02 numbers taken for WGS-84: {flags:?}"
    );
}
