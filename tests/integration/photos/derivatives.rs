//! Derivatives made in the background: oriented and stripped of metadata, and a photo whose
//! pixel data does not decode kept as captured and flagged.

use gridline_server::store::photos as photo_store;
use gridline_testkit::{noisy_jpeg as jpeg, Db};
use object_store::path::Path;
use object_store::ObjectStore;
use reqwest::StatusCode;

use super::fixtures::{
    case_declaring, link, list, now_ms, original, photo_app, put_photo, sha_hex,
    wait_for_derivatives, with_exif, ExifSpec,
};

on_both_databases!(
    derivatives_are_made_in_the_background_oriented_and_stripped,
    damaged_image_data_is_kept_and_flagged_undecodable,
);

async fn derivatives_are_made_in_the_background_oriented_and_stripped(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    // 2000×1000 landscape, EXIF orientation 6 (turn 90° clockwise to view): portrait.
    let photo = with_exif(
        &jpeg(2000, 1000, 7),
        &ExifSpec {
            make: Some("TestCam"),
            orientation: Some(6),
            ..ExifSpec::default()
        },
    );
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let token = app.login("inspector1").await;
    let (status, body) = put_photo(&app, &token, &photo, &sha).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["make"], "TestCam");
    assert_eq!(body["orientation"], 6);
    let meta = wait_for_derivatives(&app, &token, &sha).await;
    assert_eq!(meta["derivatives"], "ready", "{meta}");
    for (variant, long_side) in [("thumb", 256), ("preview", 1600)] {
        let bytes = app
            .state
            .blobs
            .get(&Path::from(format!("derivatives/{sha}/{variant}.jpg")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (long_side / 2, long_side),
            "{variant} is upright"
        );
        let exif = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&bytes));
        assert!(exif.is_err(), "{variant} carries no metadata");
    }
    // The original is untouched.
    let original = original(&app, &sha).await;
    assert_eq!(sha_hex(&original), sha);
}

/// Pixel data that does not decode is found by the derivative worker, not at upload: the bytes
/// are the declared ones, so the photo is kept as the phone captured it, with no derivatives,
/// no retry, and a flag on its case.
async fn damaged_image_data_is_kept_and_flagged_undecodable(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let mut damaged = jpeg(400, 300, 5);
    // A second frame header inside the entropy-coded data: the header and the end marker are
    // fine, the image data is not.
    let sos = damaged.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    damaged[sos + 200] = 0xFF;
    damaged[sos + 201] = 0xC0;
    let sha = sha_hex(&damaged);
    let case = case_declaring(&app, "Z01", &[&damaged], now_ms()).await;
    let token = app.login("inspector1").await;
    let (status, body) = put_photo(&app, &token, &damaged, &sha).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["width"].as_i64(), body["height"].as_i64()),
        (Some(400), Some(300))
    );
    let meta = wait_for_derivatives(&app, &token, &sha).await;
    assert_eq!(meta["derivatives"], "undecodable", "{meta}");
    assert_eq!(meta["derivative_attempts"], 1, "not retried: {meta}");
    assert!(
        meta["derivative_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("corrupt_image: ")),
        "{meta}"
    );
    assert_eq!(original(&app, &sha).await, damaged, "kept as it arrived");
    assert!(
        list(app.state.blobs.as_ref(), &format!("derivatives/{sha}"))
            .await
            .is_empty()
    );
    let summary = photo_store::evidence(&app.state.db, case).await.unwrap();
    assert!(summary.complete, "{summary:?}");
    assert_eq!(
        summary.photos[0].flags,
        ["photo_undecodable"],
        "{summary:?}"
    );
    assert!(!summary.photos[0].thumb_ready);
    assert_eq!(summary.flags, ["photo_undecodable"]);
    let (status, body) = link(&app, &token, &sha, "thumb").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["details"]["derivatives"], "undecodable");
    let (status, body) = link(&app, &token, &sha, "original").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the original can still be looked at: {body}"
    );
    // Supervisors see it where they decide: the case view and the review queue.
    let supervisor = app.login("supervisor1").await;
    let (status, view) = app
        .get(&format!("/v1/cases/{case}"), Some(&supervisor))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["evidence"]["flags"][0], "photo_undecodable", "{view}");
    let (status, queue) = app
        .get("/v1/review/queue?limit=200", Some(&supervisor))
        .await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let item = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["case"]["id"] == case.to_string())
        .unwrap_or_else(|| panic!("the case is in the queue: {queue}"));
    assert_eq!(
        item["evidence"]["photos"][0]["derivatives"], "undecodable",
        "{item}"
    );
}
