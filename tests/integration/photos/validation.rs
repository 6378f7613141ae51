//! What an upload is refused for: bytes that are not the declared ones, photos not declared
//! or out of scope, bad files, a full receive budget, a faulty request, a size over the limit;
//! and the same bytes stored once.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gridline_server::store::photos as photo_store;
use gridline_sync::validation::MAX_PHOTO_BYTES;
use gridline_testkit::{noisy_jpeg as jpeg, Db};
use reqwest::StatusCode;
use serde_json::Value;

use super::fixtures::{
    case_declaring, completed, list, now_ms, patch_request, photo_app, png, put_photo, sha_hex,
    tus_create, tus_head, tus_patch, verified,
};

on_both_databases!(
    wrong_bytes_for_a_declared_hash_are_refused_and_nothing_is_stored,
    undeclared_or_out_of_scope_photos_are_refused,
    bad_files_each_get_their_own_error,
    the_same_bytes_are_stored_once,
    a_full_receive_budget_answers_503_and_keeps_nothing_of_the_waiting_body,
    a_faulty_upload_request_is_refused_as_a_request_not_as_a_photo,
    every_photo_size_a_phone_may_declare_can_be_uploaded_and_no_larger,
);

async fn wrong_bytes_for_a_declared_hash_are_refused_and_nothing_is_stored(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let declared = jpeg(64, 48, 1);
    let other = jpeg(64, 48, 2);
    let sha = sha_hex(&declared);
    case_declaring(&app, "Z01", &[&declared], now_ms()).await;
    let token = app.login("inspector1").await;

    let (status, body) = put_photo(&app, &token, &other, &sha).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "hash_mismatch");
    assert_eq!(body["details"]["declared"], sha.as_str());
    assert_eq!(body["details"]["computed"], sha_hex(&other).as_str());

    // Through tus the same: the completing request says so and the upload is gone.
    let resp = tus_create(&app, &token, &sha, other.len(), &other).await;
    let status = resp.status();
    let body = gridline_testkit::into_json(resp).await.1;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "hash_mismatch");

    assert!(list(app.state.blobs.as_ref(), "photos").await.is_empty());
    assert!(list(app.state.blobs.as_ref(), "uploads").await.is_empty());
    assert_eq!(
        app.get(&format!("/v1/photos/{sha}"), Some(&token)).await.0,
        StatusCode::NOT_FOUND
    );

    // The right bytes still go in afterwards.
    let (status, body) = put_photo(&app, &token, &declared, &sha).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "verified");
}

async fn undeclared_or_out_of_scope_photos_are_refused(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let in_z02 = jpeg(32, 32, 3);
    let nowhere = jpeg(32, 32, 4);
    case_declaring(&app, "Z02", &[&in_z02], now_ms()).await;
    let inspector1 = app.login("inspector1").await; // Z01
    for bytes in [&in_z02, &nowhere] {
        let (status, body) = put_photo(&app, &inspector1, bytes, &sha_hex(bytes)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "photo_not_declared");
        let resp = tus_create(&app, &inspector1, &sha_hex(bytes), bytes.len(), &[]).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    assert!(
        list(app.state.blobs.as_ref(), "").await.is_empty(),
        "nothing stored"
    );
    // The inspector of Z02 may.
    let inspector3 = app.login("inspector3").await;
    let (status, _) = put_photo(&app, &inspector3, &in_z02, &sha_hex(&in_z02)).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn bad_files_each_get_their_own_error(db: Db) {
    let Some(app) = photo_app(db)
        .config(|c| {
            c.photos.max_single_put_bytes = 1024 * 1024;
            c.photos.max_megapixels = 1.0;
        })
        .spawn()
        .await
    else {
        return;
    };
    let good = jpeg(400, 300, 5);
    // 4 megapixels of black in a few kilobytes: a decompression bomb for a 1-megapixel limit.
    let bomb = png(2000, 2000);
    assert!(bomb.len() < 64 * 1024);
    let truncated = good[..good.len() / 2].to_vec();
    let not_an_image = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n".repeat(20);
    let mut corrupt = good.clone();
    // Damage the frame header: the image's dimensions become nonsense (zero height).
    let sof = corrupt.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    corrupt[sof + 5] = 0;
    corrupt[sof + 6] = 0;
    let oversized_len = MAX_PHOTO_BYTES as usize + 1;

    case_declaring(
        &app,
        "Z01",
        &[&bomb, &truncated, &not_an_image, &corrupt],
        now_ms(),
    )
    .await;
    let token = app.login("inspector1").await;
    let mut codes = Vec::new();
    for (bytes, status, code) in [
        (&bomb, StatusCode::UNPROCESSABLE_ENTITY, "image_too_large"),
        (
            &truncated,
            StatusCode::UNPROCESSABLE_ENTITY,
            "truncated_image",
        ),
        (
            &not_an_image,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media",
        ),
        (&corrupt, StatusCode::UNPROCESSABLE_ENTITY, "corrupt_image"),
    ] {
        let (got, body) = put_photo(&app, &token, bytes, &sha_hex(bytes)).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
        codes.push(code);
        // The refusal is remembered with its reason, and nothing is stored.
        let photo = photo_store::photo(&app.state.db.pool, &sha_hex(bytes))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (photo.status.as_str(), photo.error_code.as_deref()),
            ("rejected", Some(code))
        );
    }
    // Too big is refused before a byte is sent.
    let big = vec![0u8; 16];
    case_declaring(&app, "Z01", &[&big], now_ms()).await;
    let resp = tus_create(&app, &token, &sha_hex(&big), oversized_len, &[]).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = gridline_testkit::into_json(resp).await.1;
    assert_eq!(body["code"], "photo_too_large");
    assert_eq!(body["details"]["max_bytes"], MAX_PHOTO_BYTES);
    assert!(
        list(app.state.blobs.as_ref(), "").await.is_empty(),
        "nothing stored"
    );
}

async fn the_same_bytes_are_stored_once(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let photo = jpeg(120, 90, 6);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let token = app.login("inspector1").await;
    assert_eq!(
        put_photo(&app, &token, &photo, &sha).await.0,
        StatusCode::CREATED
    );
    // Again, by another user: already there.
    let other = app.login("inspector2").await;
    assert_eq!(
        put_photo(&app, &other, &photo, &sha).await.0,
        StatusCode::OK
    );
    // A tus creation for it is complete at once.
    let resp = tus_create(&app, &other, &sha, photo.len(), &[]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        resp.headers()["upload-offset"],
        photo.len().to_string().as_str()
    );
    assert_eq!(
        list(app.state.blobs.as_ref(), "photos").await,
        [format!("photos/{sha}")]
    );
}

async fn a_full_receive_budget_answers_503_and_keeps_nothing_of_the_waiting_body(db: Db) {
    // One piece of budget, and one second of receiving time (half the request timeout).
    let Some(app) = photo_app(db)
        .config(|c| {
            c.photos.chunk_bytes = 64 * 1024;
            c.photos.receive_budget_bytes = 64 * 1024;
            c.limits.request_timeout_secs = 2;
        })
        .spawn()
        .await
    else {
        return;
    };
    let photo = jpeg(100, 100, 14);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let token = app.login("inspector1").await;
    let resp = tus_create(&app, &token, &sha, photo.len(), &[]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();

    // Other requests hold the whole budget: this body waits for room, then gets 503 with
    // Retry-After, and none of it is kept.
    let held = app
        .state
        .photos
        .receiving
        .acquire_many(64 * 1024)
        .await
        .unwrap();
    let resp = tus_patch(&app, &token, &location, 0, photo.clone().into())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("retry"),
        "{body}"
    );
    assert_eq!(
        tus_head(&app, &token, &location).await,
        (StatusCode::OK, Some(0))
    );
    assert!(list(app.state.blobs.as_ref(), "uploads").await.is_empty());

    // Room again: the same request is received whole and the photo verified.
    drop(held);
    let resp = tus_patch(&app, &token, &location, 0, photo.clone().into())
        .await
        .unwrap();
    completed(&resp, photo.len());
    verified(&app, &token, &sha).await;
    assert_eq!(app.state.photos.receiving.available_permits(), 64 * 1024);
}

/// A mistake in an upload request (a client's bug) is answered with a code about the request:
/// never one of the verdicts that tell a phone to give up on the photo for good.
async fn a_faulty_upload_request_is_refused_as_a_request_not_as_a_photo(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let photo = jpeg(100, 100, 25);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let token = app.login("inspector1").await;
    let resp = tus_create(&app, &token, &sha, photo.len(), &[]).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();

    // tus: a PATCH of another content type is 415, here with a code of its own.
    let resp = app
        .http
        .patch(app.url(&location))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/octet-stream")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unsupported_content_type", "{body}");
    // tus checksum extension: an algorithm the server does not support is 400.
    let sha1 = STANDARD.encode([0u8; 20]);
    let resp = patch_request(&app, &token, &location, 0)
        .header("upload-checksum", format!("sha1 {sha1}"))
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unsupported_checksum_algorithm", "{body}");
    assert_eq!(body["details"]["supported"], serde_json::json!(["sha256"]));
    // Nothing was kept, and the photo is neither refused nor recorded.
    assert_eq!(tus_head(&app, &token, &location).await.1, Some(0));
    assert!(photo_store::photo(&app.state.db.pool, &sha)
        .await
        .unwrap()
        .is_none());
    // Sent right, it is verified.
    let resp = tus_patch(&app, &token, &location, 0, photo.clone().into())
        .await
        .unwrap();
    completed(&resp, photo.len());
    verified(&app, &token, &sha).await;
}

/// One limit: the largest photo a phone may declare in its manifest is the largest upload the
/// server takes and announces, and a byte more is refused at both.
async fn every_photo_size_a_phone_may_declare_can_be_uploaded_and_no_larger(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let mut phone = gridline_testkit::Phone::enrol(&app, "inspector1").await;
    let resp = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["tus-max-size"],
        MAX_PHOTO_BYTES.to_string().as_str()
    );
    for (size, declared) in [(MAX_PHOTO_BYTES, true), (MAX_PHOTO_BYTES + 1, false)] {
        let sha = sha_hex(&size.to_le_bytes());
        let (_, mut payload) = gridline_testkit::new_case(app.zone("Z01"), 0, "event:0102");
        payload["photos"][0]["sha256"] = sha.clone().into();
        payload["photos"][0]["size"] = size.into();
        let op = phone.op("case.create@1", payload);
        let (status, body) = phone.push(&app, &[op]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let result = &body["results"][0];
        let resp = tus_create(&app, &phone.token, &sha, size as usize, &[]).await;
        if declared {
            assert_eq!(result["status"], "applied", "{body}");
            assert_eq!(
                resp.status(),
                StatusCode::CREATED,
                "a declared size uploads"
            );
            assert_eq!(resp.headers()["upload-offset"], "0");
        } else {
            assert_eq!(result["code"], "invalid_request", "{body}");
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let body = gridline_testkit::into_json(resp).await.1;
            assert_eq!(body["code"], "photo_too_large", "{body}");
        }
    }
}
