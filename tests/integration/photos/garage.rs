//! Photos in an S3 store (single-node Garage): originals and derivatives land in the bucket,
//! links are scoped and expire.

use std::time::Duration;

use gridline_testkit::{noisy_jpeg as jpeg, Db};
use reqwest::StatusCode;

use super::fixtures::{
    case_declaring, cut_body, link, list, now_ms, offset_after_cut, photo_app, sha_hex, tus_create,
    tus_patch, wait_for_derivatives,
};

on_both_databases!(
    against_garage_originals_and_derivatives_are_in_the_bucket_and_links_are_scoped_and_expire,
);

async fn against_garage_originals_and_derivatives_are_in_the_bucket_and_links_are_scoped_and_expire(
    db: Db,
) {
    let Some(app) = photo_app(db)
        .garage()
        .config(|c| {
            c.photos.link_ttl_secs = 1;
            c.photos.chunk_bytes = 64 * 1024;
        })
        .spawn()
        .await
    else {
        return;
    };
    let garage = app.garage.as_ref().expect("the app's Garage");
    let photo = jpeg(1800, 1200, 14);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let token = app.login("inspector1").await;
    // Resumable, in two requests with a cut between.
    let resp = tus_create(&app, &token, &sha, photo.len(), &photo[..70_000]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let _ = tus_patch(
        &app,
        &token,
        &location,
        70_000,
        cut_body(&photo, 70_000, 150_000),
    )
    .await;
    let at = offset_after_cut(&app, &token, &location, 70_000).await as usize;
    let resp = tus_patch(&app, &token, &location, at, photo[at..].to_vec().into())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let meta = wait_for_derivatives(&app, &token, &sha).await;
    assert_eq!(meta["derivatives"], "ready", "{meta}");

    // In the bucket, read with a client of its own.
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&garage.endpoint)
        .with_allow_http(true)
        .with_region(gridline_testkit::garage::REGION)
        .with_bucket_name(gridline_testkit::garage::BUCKET)
        .with_access_key_id(gridline_testkit::garage::KEY_ID)
        .with_secret_access_key(gridline_testkit::garage::SECRET_KEY)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    let mut keys = list(&bucket, "").await;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("derivatives/{sha}/preview.jpg"),
            format!("derivatives/{sha}/thumb.jpg"),
            format!("photos/{sha}"),
        ]
    );

    // A presigned link works for someone in scope, not for someone outside it, and expires.
    let supervisor = app.login("supervisor1").await;
    let expired = |status: StatusCode, body: &str| {
        // Garage answers an expired presigned URL with 400 (AWS: 403).
        status.is_client_error() && (body.contains("expire") || body.contains("too old"))
    };
    // The link lives a second (counted in whole seconds), so on a loaded machine the first
    // fetch can come too late: then a fresh link is asked for, and one must be fetched in time.
    let mut fetched = None;
    for _ in 0..5 {
        let (status, given) = link(&app, &supervisor, &sha, "thumb").await;
        assert_eq!(status, StatusCode::OK, "{given}");
        let url = given["url"].as_str().unwrap().to_owned();
        assert!(url.starts_with(&garage.endpoint), "{url}");
        let resp = reqwest::get(&url).await.unwrap();
        let status = resp.status();
        if status == StatusCode::OK {
            fetched = Some((url, resp.bytes().await.unwrap()));
            break;
        }
        let body = resp.text().await.unwrap();
        assert!(expired(status, &body), "{status} {body}");
    }
    let (url, thumb) = fetched.expect("a fresh link is fetched within its lifetime");
    assert!(image::load_from_memory(&thumb).unwrap().width() <= 256);
    let outsider = app.login("inspector3").await;
    for variant in ["original", "thumb", "preview"] {
        let (status, _) = link(&app, &outsider, &sha, variant).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = reqwest::get(&url).await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(expired(status, &body), "{status} {body}");
}
