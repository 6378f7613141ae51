//! Resumable uploads: a cut upload resumes (after a restart, through another instance), an
//! upload born complete, one whole body, tus discovery and checksums, and the clean-up of
//! abandoned uploads and of pieces the store would not list.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gridline_server::config::BlobBackend;
use gridline_sync::validation::MAX_PHOTO_BYTES;
use gridline_testkit::{noisy_jpeg as jpeg, Db};
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::fixtures::{
    case_declaring, completed, cut_body, list, now_ms, offset_after_cut, original, patch_request,
    photo_app, put_photo, sha_hex, tus_create, tus_head, tus_patch, verified,
};

on_both_databases!(
    an_upload_cut_at_random_offsets_resumes_after_a_restart_and_through_another_instance,
    a_whole_photo_in_one_body_is_stored_once_and_a_cut_one_resumes_from_its_piece,
    an_upload_complete_at_creation_takes_the_file_sent_from_zero_and_answers_its_length,
    tus_discovery_checksums_and_termination,
    abandoned_uploads_expire_and_are_cleaned_up,
    pieces_the_store_refuses_to_list_are_counted_and_deleted_by_a_later_clean_up,
);

async fn an_upload_cut_at_random_offsets_resumes_after_a_restart_and_through_another_instance(
    db: Db,
) {
    // A shared store (a folder) so that other server processes see the same pieces.
    let Some(mut first) = photo_app(db)
        .config(|c| {
            c.blob.backend = BlobBackend::Local;
            c.photos.chunk_bytes = 64 * 1024;
        })
        .spawn()
        .await
    else {
        return;
    };
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let photo = jpeg(640, 480, seed);
    let len = photo.len();
    let sha = sha_hex(&photo);
    case_declaring(&first, "Z01", &[&photo], now_ms()).await;
    let token = first.login("inspector1").await;

    // Creation with the first few bytes.
    let first_cut = rng.gen_range(1..len / 4);
    let resp = tus_create(&first, &token, &sha, len, &photo[..first_cut]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");
    assert!(resp.headers().contains_key("upload-expires"));
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        resp.headers()["upload-offset"],
        first_cut.to_string().as_str()
    );

    // The signal drops mid-request: what arrived is kept.
    let cut = rng.gen_range(first_cut + 1..len / 2);
    let _ = tus_patch(
        &first,
        &token,
        &location,
        first_cut,
        cut_body(&photo, first_cut, cut),
    )
    .await;
    let at = offset_after_cut(&first, &token, &location, first_cut as i64).await;
    assert!(
        at > first_cut as i64 && at <= cut as i64,
        "kept {at} of {cut}"
    );

    // The server restarts: a new process on the same database and store.
    first.halt().await;
    let restarted = first.spawn_sibling().await;
    let (status, offset) = tus_head(&restarted, &token, &location).await;
    assert_eq!((status, offset), (StatusCode::OK, Some(at)));
    let cut = rng.gen_range(at as usize + 1..len * 3 / 4);
    let _ = tus_patch(
        &restarted,
        &token,
        &location,
        at as usize,
        cut_body(&photo, at as usize, cut),
    )
    .await;
    let at = offset_after_cut(&restarted, &token, &location, at).await;

    // A stale offset is refused with where the upload stands.
    let resp = tus_patch(
        &restarted,
        &token,
        &location,
        0,
        photo[..10].to_vec().into(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);

    // The rest goes through another instance on another port, sharing database and store.
    let other = restarted.spawn_sibling().await;
    assert_ne!(other.addr, restarted.addr);
    let resp = tus_patch(
        &other,
        &token,
        &location,
        at as usize,
        photo[at as usize..].to_vec().into(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.headers()["upload-offset"], len.to_string().as_str());

    let (status, meta) = restarted
        .get(&format!("/v1/photos/{sha}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta["status"], "verified");
    assert_eq!(meta["size"], len);
    assert_eq!(meta["width"], 640);
    let stored = original(&other, &sha).await;
    assert_eq!(
        sha_hex(&stored),
        sha,
        "the stored original is the declared photo"
    );
    assert!(
        list(other.state.blobs.as_ref(), "uploads").await.is_empty(),
        "pieces deleted"
    );
    // Asking where it stands after completion: complete.
    assert_eq!(
        tus_head(&other, &token, &location).await.1,
        Some(len as i64)
    );
    other.stop().await;
    restarted.stop().await;
    first.stop().await;
}

/// A photo sent whole in one body (offset 0 to the end, with its length known) is verified from
/// memory: its bytes go to the store once, as the original, never as pieces. Such a body cut
/// short keeps what arrived as a piece, and the upload resumes from there as any other.
async fn a_whole_photo_in_one_body_is_stored_once_and_a_cut_one_resumes_from_its_piece(db: Db) {
    use crate::support::SwitchableStore;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    let written = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = written.clone();
    let Some(app) = photo_app(db)
        .state(move |state| {
            state.blobs = Arc::new(SwitchableStore {
                inner: state.blobs.clone(),
                up: Arc::new(AtomicBool::new(true)),
                written: log,
                refuse_listing: Default::default(),
            })
        })
        .spawn()
        .await
    else {
        return;
    };
    // What was written apart from derivatives (the worker writes those when it gets to them).
    let stored = || -> Vec<String> {
        let written = written.lock().unwrap();
        written
            .iter()
            .filter(|p| !p.starts_with("derivatives/"))
            .cloned()
            .collect()
    };
    let whole = jpeg(640, 480, 21);
    let cut = jpeg(640, 480, 22);
    let (sha, cut_sha) = (sha_hex(&whole), sha_hex(&cut));
    case_declaring(&app, "Z01", &[&whole, &cut], now_ms()).await;
    let token = app.login("inspector1").await;

    let resp = tus_create(&app, &token, &sha, whole.len(), &[]).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = patch_request(&app, &token, &location, 0)
        .header(
            "upload-checksum",
            format!("sha256 {}", STANDARD.encode(Sha256::digest(&whole))),
        )
        .body(whole.clone())
        .send()
        .await
        .unwrap();
    completed(&resp, whole.len());
    verified(&app, &token, &sha).await;
    assert_eq!(stored(), vec![format!("photos/{sha}")], "the original only");
    let original = original(&app, &sha).await;
    assert_eq!(original, whole);
    assert_eq!(
        tus_head(&app, &token, &location).await.1,
        Some(whole.len() as i64)
    );

    // The same kind of body, cut after half: the half is kept as one piece.
    written.lock().unwrap().clear();
    let resp = tus_create(&app, &token, &cut_sha, cut.len(), &[]).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let half = cut.len() / 2;
    let sent = patch_request(&app, &token, &location, 0)
        .header("content-length", cut.len().to_string())
        .body(cut_body(&cut, 0, half))
        .send()
        .await;
    assert!(sent.is_err() || !sent.unwrap().status().is_success());
    let at = offset_after_cut(&app, &token, &location, 0).await;
    assert_eq!(at, half as i64, "what arrived is kept");
    let pieces = stored();
    assert_eq!(pieces.len(), 1, "{pieces:?}");
    assert!(pieces[0].starts_with("uploads/"), "{pieces:?}");
    let resp = tus_patch(
        &app,
        &token,
        &location,
        half,
        reqwest::Body::from(cut[half..].to_vec()),
    )
    .await
    .unwrap();
    completed(&resp, cut.len());
    verified(&app, &token, &cut_sha).await;
    let stored = stored();
    assert_eq!(
        stored.last(),
        Some(&format!("photos/{cut_sha}")),
        "{stored:?}"
    );
    assert!(list(app.state.blobs.as_ref(), "uploads").await.is_empty());
}

/// A stock tus client that ignores the offset of an upload born complete (the server already
/// has the photo) sends the file from 0: the body is read and dropped, and the answer is the
/// full length, which the client takes as finished. A conflict over the offset of an upload
/// still receiving says where it stands in `Upload-Offset`, as tus clients read it.
async fn an_upload_complete_at_creation_takes_the_file_sent_from_zero_and_answers_its_length(
    db: Db,
) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let photo = jpeg(320, 240, 23);
    let other = jpeg(320, 240, 24);
    let (sha, other_sha) = (sha_hex(&photo), sha_hex(&other));
    case_declaring(&app, "Z01", &[&photo, &other], now_ms()).await;
    let token = app.login("inspector1").await;
    assert_eq!(
        put_photo(&app, &token, &photo, &sha).await.0,
        StatusCode::CREATED
    );

    let resp = tus_create(&app, &token, &sha, photo.len(), &[]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        resp.headers()["upload-offset"],
        photo.len().to_string().as_str()
    );
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = tus_patch(&app, &token, &location, 0, photo.clone().into())
        .await
        .unwrap();
    completed(&resp, photo.len());
    // An empty PATCH at the end, as after a HEAD, is answered the same way.
    let resp = tus_patch(&app, &token, &location, photo.len(), Vec::new().into())
        .await
        .unwrap();
    completed(&resp, photo.len());
    // More than the upload's length is still refused.
    let mut longer = photo.clone();
    longer.push(0);
    let resp = tus_patch(&app, &token, &location, 0, longer.into())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        original(&app, &sha).await,
        photo,
        "the original is untouched"
    );
    assert!(list(app.state.blobs.as_ref(), "uploads").await.is_empty());

    // An upload still receiving: a PATCH at the wrong offset is a conflict naming the offset.
    let resp = tus_create(&app, &token, &other_sha, other.len(), &other[..1000]).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = tus_patch(&app, &token, &location, 0, other.clone().into())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(resp.headers()["upload-offset"], "1000");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["details"]["offset"].as_i64()),
        (Some("upload_offset_mismatch"), Some(1000))
    );
}

async fn tus_discovery_checksums_and_termination(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let resp = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(h["tus-resumable"], "1.0.0");
    assert_eq!(h["tus-version"], "1.0.0");
    assert_eq!(h["tus-checksum-algorithm"], "sha256");
    assert!(h["tus-extension"]
        .to_str()
        .unwrap()
        .contains("creation-with-upload"));
    assert!(h["tus-extension"].to_str().unwrap().contains("termination"));
    assert_eq!(h["tus-max-size"], MAX_PHOTO_BYTES.to_string().as_str());

    let photo = jpeg(100, 100, 13);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let token = app.login("inspector1").await;

    // Another protocol version: 412 with the version we speak.
    let resp = app
        .http
        .post(app.url("/v1/uploads"))
        .bearer_auth(&token)
        .header("tus-resumable", "0.2.2")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(resp.headers()["tus-version"], "1.0.0");

    let resp = tus_create(&app, &token, &sha, photo.len(), &[]).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["upload-offset"], "0");
    // A body whose checksum does not match is dropped whole (460).
    let wrong = STANDARD.encode(Sha256::digest(b"something else"));
    let resp = app
        .http
        .patch(app.url(&location))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-checksum", format!("sha256 {wrong}"))
        .body(photo[..500].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 460);
    assert_eq!(tus_head(&app, &token, &location).await.1, Some(0));
    let right = STANDARD.encode(Sha256::digest(&photo[..500]));
    let resp = app
        .http
        .patch(app.url(&location))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-checksum", format!("sha256 {right}"))
        .body(photo[..500].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.headers()["upload-offset"], "500");
    // Someone else's upload does not exist for them.
    let other = app.login("inspector2").await;
    assert_eq!(
        tus_head(&app, &other, &location).await.0,
        StatusCode::NOT_FOUND
    );
    // Termination deletes it and its bytes.
    let resp = app
        .http
        .delete(app.url(&location))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        tus_head(&app, &token, &location).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(list(app.state.blobs.as_ref(), "uploads").await.is_empty());
}

async fn abandoned_uploads_expire_and_are_cleaned_up(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let photo = jpeg(200, 100, 12);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let token = app.login("inspector1").await;
    let resp = tus_create(&app, &token, &sha, photo.len(), &photo[..100]).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(list(app.state.blobs.as_ref(), "uploads").await.len(), 1);

    // Still fresh: the cleanup leaves it.
    let cleaned = gridline_server::photos::upload::cleanup_expired(&app.state.photo_service())
        .await
        .unwrap();
    assert_eq!(cleaned, 0);
    // Its time passes (moved, not waited for).
    sqlx::query("UPDATE uploads SET expires_at = $1")
        .bind(now_ms() - 1)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let resp = tus_patch(&app, &token, &location, 100, photo[100..].to_vec().into())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::GONE);
    let cleaned = gridline_server::photos::upload::cleanup_expired(&app.state.photo_service())
        .await
        .unwrap();
    assert_eq!(cleaned, 1);
    assert_eq!(
        tus_head(&app, &token, &location).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(list(app.state.blobs.as_ref(), "uploads").await.is_empty());
}

/// When the store refuses to list an upload's pieces (an outage, or a bucket policy without
/// ListBucket), the photo is still verified, the failure shows in `/metrics`, and the pieces
/// are not forgotten: the clean-up job deletes them once the store lists again.
async fn pieces_the_store_refuses_to_list_are_counted_and_deleted_by_a_later_clean_up(db: Db) {
    use crate::support::SwitchableStore;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let refuse_listing = Arc::new(AtomicBool::new(false));
    let switch = refuse_listing.clone();
    let Some(app) = photo_app(db)
        .state(move |state| {
            state.blobs = Arc::new(SwitchableStore {
                inner: state.blobs.clone(),
                up: Arc::new(AtomicBool::new(true)),
                written: Default::default(),
                refuse_listing: switch,
            })
        })
        .spawn()
        .await
    else {
        return;
    };
    let photo = jpeg(640, 480, 26);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let token = app.login("inspector1").await;
    // Two requests: the first half waits in the store as a piece until the rest arrives.
    let half = photo.len() / 2;
    let resp = tus_create(&app, &token, &sha, photo.len(), &photo[..half]).await;
    assert_eq!(resp.headers()["upload-offset"], half.to_string().as_str());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let pieces = list(app.state.blobs.as_ref(), "uploads").await;
    assert!(!pieces.is_empty());

    refuse_listing.store(true, Ordering::Relaxed);
    let resp = tus_patch(&app, &token, &location, half, photo[half..].to_vec().into())
        .await
        .unwrap();
    completed(&resp, photo.len());
    verified(&app, &token, &sha).await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gridline_upload_cleanup_failures_total"),
        "{metrics}"
    );

    // The store lists again: the pieces are still there until the clean-up job runs.
    refuse_listing.store(false, Ordering::Relaxed);
    let left = list(app.state.blobs.as_ref(), "uploads").await;
    assert!(pieces.iter().all(|p| left.contains(p)), "{left:?}");
    gridline_server::photos::upload::cleanup_expired(&app.state.photo_service())
        .await
        .unwrap();
    assert!(list(app.state.blobs.as_ref(), "uploads").await.is_empty());
    assert_eq!(original(&app, &sha).await, photo);
}
