//! Photo evidence: resumable uploads verified by the server, validation, derivatives, links,
//! integrity flags, and memory bounds.
//!
//! Cases and their photo manifests are inserted directly here (the sync push fills them in
//! production): these specs are about what happens to the bytes.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use gridline_server::config::{BlobBackend, Config};
use gridline_server::store::photos as photo_store;
use gridline_sync::validation::MAX_PHOTO_BYTES;
use gridline_tests::garage::Garage;
use gridline_tests::{new_case, noisy_jpeg as jpeg, Db, Phone, TestApp};
use object_store::path::Path;
use object_store::ObjectStore;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Runs each `async fn(Db)` on SQLite and on PostgreSQL; each spec builds its own server.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(gridline_tests::Db::Sqlite).await; }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(gridline_tests::Db::Postgres).await; }
            )*
        }
    };
}

on_both_databases!(
    an_upload_cut_at_random_offsets_resumes_after_a_restart_and_through_another_instance,
    wrong_bytes_for_a_declared_hash_are_refused_and_nothing_is_stored,
    undeclared_or_out_of_scope_photos_are_refused,
    bad_files_each_get_their_own_error,
    damaged_image_data_is_kept_and_flagged_undecodable,
    the_same_bytes_are_stored_once,
    derivatives_are_made_in_the_background_oriented_and_stripped,
    streamed_links_are_scoped_logged_unwidenable_and_expire,
    integrity_flags_for_a_reused_photo_and_gps_outside_the_zone,
    abandoned_uploads_expire_and_are_cleaned_up,
    tus_discovery_checksums_and_termination,
    a_full_receive_budget_answers_503_and_keeps_nothing_of_the_waiting_body,
    against_garage_originals_and_derivatives_are_in_the_bucket_and_links_are_scoped_and_expire,
    a_whole_photo_in_one_body_is_stored_once_and_a_cut_one_resumes_from_its_piece,
    an_upload_complete_at_creation_takes_the_file_sent_from_zero_and_answers_its_length,
    a_faulty_upload_request_is_refused_as_a_request_not_as_a_photo,
    every_photo_size_a_phone_may_declare_can_be_uploaded_and_no_larger,
    pieces_the_store_refuses_to_list_are_counted_and_deleted_by_a_later_clean_up,
    a_photo_cannot_be_borrowed_by_declaring_its_hash_in_another_case,
    a_position_in_gcj02_is_stored_in_wgs84_and_checked_against_exif_there,
);

// ---- fixtures ---------------------------------------------------------------------------------

async fn app_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    TestApp::spawn_with(db, |c| {
        c.photos.worker_poll_secs = 1;
        tweak(c);
    })
    .await
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::GrayImage::new(width, height);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// EXIF facts to write into a test JPEG.
#[derive(Default)]
struct ExifSpec {
    make: Option<&'static str>,
    orientation: Option<u16>,
    taken: Option<&'static str>,
    gps: Option<(f64, f64)>,
}

/// Inserts an APP1 EXIF segment (a little-endian TIFF built by hand) right after SOI.
fn with_exif(jpeg: &[u8], spec: &ExifSpec) -> Vec<u8> {
    // (tag, type, count, value bytes); type 2 ASCII, 3 SHORT, 4 LONG, 5 RATIONAL.
    type Entry = (u16, u16, u32, Vec<u8>);
    fn ascii(tag: u16, s: &str) -> Entry {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        (tag, 2, v.len() as u32, v)
    }
    fn dms(tag: u16, deg: f64) -> Entry {
        let d = deg.abs().trunc();
        let m = ((deg.abs() - d) * 60.0).trunc();
        let s = ((deg.abs() - d) * 60.0 - m) * 60.0;
        let mut v = Vec::new();
        for (n, den) in [
            (d as u32, 1u32),
            (m as u32, 1),
            ((s * 1000.0).round() as u32, 1000),
        ] {
            v.extend_from_slice(&n.to_le_bytes());
            v.extend_from_slice(&den.to_le_bytes());
        }
        (tag, 5, 3, v)
    }
    /// Writes an IFD at the end of `buf`; returns its offset.
    fn write_ifd(buf: &mut Vec<u8>, entries: &[Entry]) -> u32 {
        let start = buf.len() as u32;
        let mut data_at = start + 2 + 12 * entries.len() as u32 + 4;
        let mut data = Vec::new();
        buf.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, ty, count, value) in entries {
            buf.extend_from_slice(&tag.to_le_bytes());
            buf.extend_from_slice(&ty.to_le_bytes());
            buf.extend_from_slice(&count.to_le_bytes());
            if value.len() <= 4 {
                let mut v = value.clone();
                v.resize(4, 0);
                buf.extend_from_slice(&v);
            } else {
                buf.extend_from_slice(&data_at.to_le_bytes());
                data.extend_from_slice(value);
                data_at += value.len() as u32;
            }
        }
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&data);
        start
    }
    let mut tiff = b"II*\0\0\0\0\0".to_vec();
    let exif_ifd = spec
        .taken
        .map(|t| write_ifd(&mut tiff, &[ascii(0x9003, t)]));
    let gps_ifd = spec.gps.map(|(lat, lon)| {
        write_ifd(
            &mut tiff,
            &[
                ascii(1, if lat < 0.0 { "S" } else { "N" }),
                dms(2, lat),
                ascii(3, if lon < 0.0 { "W" } else { "E" }),
                dms(4, lon),
            ],
        )
    });
    let mut ifd0 = Vec::new();
    if let Some(make) = spec.make {
        ifd0.push(ascii(0x010F, make));
    }
    if let Some(o) = spec.orientation {
        ifd0.push((0x0112, 3, 1, o.to_le_bytes().to_vec()));
    }
    if let Some(at) = exif_ifd {
        ifd0.push((0x8769, 4, 1, at.to_le_bytes().to_vec()));
    }
    if let Some(at) = gps_ifd {
        ifd0.push((0x8825, 4, 1, at.to_le_bytes().to_vec()));
    }
    let ifd0_at = write_ifd(&mut tiff, &ifd0);
    tiff[4..8].copy_from_slice(&ifd0_at.to_le_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The centre of a demo zone, (lat, lon).
async fn zone_centre(app: &TestApp, code: &str) -> (f64, f64) {
    let zone = gridline_server::store::reference::zone(&app.state.db.pool, app.zone(code))
        .await
        .unwrap()
        .unwrap();
    let ring = zone.boundary["coordinates"][0].as_array().unwrap().clone();
    let n = (ring.len() - 1) as f64;
    let lon = ring[..ring.len() - 1]
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .sum::<f64>()
        / n;
    let lat = ring[..ring.len() - 1]
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .sum::<f64>()
        / n;
    (lat, lon)
}

async fn user_id(app: &TestApp, username: &str) -> String {
    sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

/// A case in `zone` reported at its centre at `captured_at`, declaring `photos`.
async fn case_declaring(app: &TestApp, zone: &str, photos: &[&[u8]], captured_at: i64) -> Uuid {
    let id = Uuid::now_v7();
    let (lat, lon) = zone_centre(app, zone).await;
    let reporter = user_id(app, "inspector1").await;
    sqlx::query(
        "INSERT INTO cases (id, zone_id, reporter_id, device_id, source, state, category_code, \
           description, severity, asset_code, lat, lon, accuracy_m, captured_at, queued_at, \
           received_at, round_id, version, locked_at, flags, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, 'inspection', 'reported', '0101', 'broken cover', 'low', \
           NULL, $4, $5, 5.0, $6, $6, $6, NULL, 1, NULL, '[]', $6, $6)",
    )
    .bind(id.to_string())
    .bind(app.zone(zone).to_string())
    .bind(&reporter)
    .bind(lat)
    .bind(lon)
    .bind(captured_at)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    for bytes in photos {
        sqlx::query(
            "INSERT INTO case_photos (case_id, sha256, size, captured_at, gps_lat, gps_lon, role, \
               declared_by, declared_at) VALUES ($1, $2, $3, $4, NULL, NULL, 'before', $5, $4)",
        )
        .bind(id.to_string())
        .bind(sha_hex(bytes))
        .bind(bytes.len() as i64)
        .bind(captured_at)
        .bind(&reporter)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    }
    id
}

fn now_ms() -> i64 {
    gridline_server::store::now_ms()
}

pub(crate) async fn put_photo(
    app: &TestApp,
    token: &str,
    bytes: &[u8],
    as_sha: &str,
) -> (StatusCode, Value) {
    let resp = app
        .http
        .put(app.url(&format!("/v1/photos/{as_sha}")))
        .bearer_auth(token)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    gridline_tests::into_json(resp).await
}

fn metadata(sha: &str) -> String {
    format!("sha256 {},filename cGhvdG8uanBn", STANDARD.encode(sha))
}

/// tus creation, with the first `first` bytes of `bytes` as creation-with-upload.
async fn tus_create(
    app: &TestApp,
    token: &str,
    sha: &str,
    length: usize,
    first: &[u8],
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/v1/uploads"))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", metadata(sha));
    if !first.is_empty() {
        req = req
            .header("content-type", "application/offset+octet-stream")
            .body(first.to_vec());
    }
    req.send().await.unwrap()
}

async fn tus_head(app: &TestApp, token: &str, location: &str) -> (StatusCode, Option<i64>) {
    let resp = app
        .http
        .head(app.url(location))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let offset = resp
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (resp.status(), offset)
}

async fn tus_patch(
    app: &TestApp,
    token: &str,
    location: &str,
    offset: usize,
    body: reqwest::Body,
) -> Result<reqwest::Response, reqwest::Error> {
    patch_request(app, token, location, offset)
        .body(body)
        .send()
        .await
}

/// A tus `PATCH` at `offset`, without its body.
fn patch_request(
    app: &TestApp,
    token: &str,
    location: &str,
    offset: usize,
) -> reqwest::RequestBuilder {
    app.http
        .patch(app.url(location))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
}

/// Sends `bytes[from..to]` and then, a moment later, cuts the connection, as a phone losing
/// signal does.
fn cut_body(bytes: &[u8], from: usize, to: usize) -> reqwest::Body {
    use futures::StreamExt;
    let piece = Bytes::copy_from_slice(&bytes[from..to]);
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(piece)]).chain(
        futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "signal lost",
            ))
        }),
    );
    reqwest::Body::wrap_stream(stream)
}

/// Waits (bounded) until the server has recorded an offset past `past` after a cut.
async fn offset_after_cut(app: &TestApp, token: &str, location: &str, past: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, offset) = tus_head(app, token, location).await;
        assert_eq!(status, StatusCode::OK);
        let offset = offset.unwrap();
        if offset > past || Instant::now() > deadline {
            return offset;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The answer of the `PATCH` that completed an upload of `len` bytes.
fn completed(resp: &reqwest::Response, len: usize) {
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        resp.headers()["upload-offset"],
        len.to_string().as_str(),
        "complete"
    );
}

/// The photo's metadata, which must say it is verified.
async fn verified(app: &TestApp, token: &str, sha: &str) -> Value {
    let (status, photo) = app.get(&format!("/v1/photos/{sha}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{photo}");
    assert_eq!(photo["status"], "verified", "{photo}");
    photo
}

/// The original of photo `sha` as the store holds it.
pub(crate) async fn original(app: &TestApp, sha: &str) -> Bytes {
    app.state
        .blobs
        .get(&Path::from(format!("photos/{sha}")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

/// `GET /v1/photos/{sha}/link?variant=…` as `token`.
async fn link(app: &TestApp, token: &str, sha: &str, variant: &str) -> (StatusCode, Value) {
    app.get(
        &format!("/v1/photos/{sha}/link?variant={variant}"),
        Some(token),
    )
    .await
}

async fn list(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    use futures::StreamExt;
    store
        .list(Some(&Path::from(prefix)))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await
}

async fn wait_for_derivatives(app: &TestApp, token: &str, sha: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, photo) = app.get(&format!("/v1/photos/{sha}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{photo}");
        if photo["derivatives"] != "pending" || Instant::now() > deadline {
            return photo;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- specs ------------------------------------------------------------------------------------

async fn an_upload_cut_at_random_offsets_resumes_after_a_restart_and_through_another_instance(
    db: Db,
) {
    // A shared store (a folder) so that other server processes see the same pieces.
    let Some(mut first) = app_with(db, |c| {
        c.blob.backend = BlobBackend::Local;
        c.photos.chunk_bytes = 64 * 1024;
    })
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

async fn wrong_bytes_for_a_declared_hash_are_refused_and_nothing_is_stored(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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
    let body = gridline_tests::into_json(resp).await.1;
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
    let Some(app) = app_with(db, |_| {}).await else {
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
    let Some(app) = app_with(db, |c| {
        c.photos.max_single_put_bytes = 1024 * 1024;
        c.photos.max_megapixels = 1.0;
    })
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
    let body = gridline_tests::into_json(resp).await.1;
    assert_eq!(body["code"], "photo_too_large");
    assert_eq!(body["details"]["max_bytes"], MAX_PHOTO_BYTES);
    assert!(
        list(app.state.blobs.as_ref(), "").await.is_empty(),
        "nothing stored"
    );
}

/// Pixel data that does not decode is found by the derivative worker, not at upload: the bytes
/// are the declared ones, so the photo is kept as the phone captured it, with no derivatives,
/// no retry, and a flag on its case.
async fn damaged_image_data_is_kept_and_flagged_undecodable(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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

async fn the_same_bytes_are_stored_once(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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

async fn derivatives_are_made_in_the_background_oriented_and_stripped(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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

async fn streamed_links_are_scoped_logged_unwidenable_and_expire(db: Db) {
    let Some(app) = app_with(db, |c| c.photos.link_ttl_secs = 1).await else {
        return;
    };
    let photo = jpeg(300, 200, 8);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let inspector = app.login("inspector1").await;
    put_photo(&app, &inspector, &photo, &sha).await;
    let supervisor = app.login("supervisor1").await;

    let (status, given) = link(&app, &supervisor, &sha, "original").await;
    assert_eq!(status, StatusCode::OK, "{given}");
    let url = given["url"].as_str().unwrap().to_owned();
    let resp = app.http.get(app.url(&url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(sha_hex(&resp.bytes().await.unwrap()), sha);

    // Outside the scope: as if the photo did not exist.
    let outsider = app.login("inspector3").await; // Z02
    let (status, _) = app
        .get(&format!("/v1/photos/{sha}/link"), Some(&outsider))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/v1/photos/{sha}"), Some(&outsider))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // A token cannot be stretched to another variant.
    let (payload, mac) = url
        .trim_start_matches("/v1/photo-content/")
        .split_once('.')
        .unwrap();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["v"] = "preview".into();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).unwrap());
    let (status, body) = app
        .get(&format!("/v1/photo-content/{forged}.{mac}"), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("link_expired"))
    );

    // Every link handed out is a logged view.
    let views = photo_store::views(&app.state.db.pool, &sha).await.unwrap();
    let supervisor_id = user_id(&app, "supervisor1").await;
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].0.to_string(), supervisor_id);
    assert_eq!(views[0].1, "original");

    // The link dies with its time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = app.get(&url, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("link_expired"))
    );
}

async fn integrity_flags_for_a_reused_photo_and_gps_outside_the_zone(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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

async fn abandoned_uploads_expire_and_are_cleaned_up(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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

async fn a_full_receive_budget_answers_503_and_keeps_nothing_of_the_waiting_body(db: Db) {
    // One piece of budget, and one second of receiving time (half the request timeout).
    let Some(app) = app_with(db, |c| {
        c.photos.chunk_bytes = 64 * 1024;
        c.photos.receive_budget_bytes = 64 * 1024;
        c.limits.request_timeout_secs = 2;
    })
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

/// A photo sent whole in one body (offset 0 to the end, with its length known) is verified from
/// memory: its bytes go to the store once, as the original, never as pieces. Such a body cut
/// short keeps what arrived as a piece, and the upload resumes from there as any other.
async fn a_whole_photo_in_one_body_is_stored_once_and_a_cut_one_resumes_from_its_piece(db: Db) {
    use crate::support::SwitchableStore;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    let written = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = written.clone();
    let Some(app) = TestApp::spawn_wrapping(
        db,
        |c| c.photos.worker_poll_secs = 1,
        move |state| {
            state.blobs = Arc::new(SwitchableStore {
                inner: state.blobs.clone(),
                up: Arc::new(AtomicBool::new(true)),
                written: log,
                refuse_listing: Default::default(),
            })
        },
    )
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
    let Some(app) = app_with(db, |_| {}).await else {
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

/// A mistake in an upload request (a client's bug) is answered with a code about the request:
/// never one of the verdicts that tell a phone to give up on the photo for good.
async fn a_faulty_upload_request_is_refused_as_a_request_not_as_a_photo(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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
    let Some(app) = app_with(db, |_| {}).await else {
        return;
    };
    let mut phone = gridline_tests::Phone::enrol(&app, "inspector1").await;
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
        let (_, mut payload) = gridline_tests::new_case(app.zone("Z01"), 0, "event:0102");
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
            let body = gridline_tests::into_json(resp).await.1;
            assert_eq!(body["code"], "photo_too_large", "{body}");
        }
    }
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
    let Some(app) = TestApp::spawn_wrapping(
        db,
        |c| c.photos.worker_poll_secs = 1,
        move |state| {
            state.blobs = Arc::new(SwitchableStore {
                inner: state.blobs.clone(),
                up: Arc::new(AtomicBool::new(true)),
                written: Default::default(),
                refuse_listing: switch,
            })
        },
    )
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

async fn tus_discovery_checksums_and_termination(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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

async fn against_garage_originals_and_derivatives_are_in_the_bucket_and_links_are_scoped_and_expire(
    db: Db,
) {
    let Some(garage) = Garage::start() else {
        return;
    };
    let Some(app) = app_with(db, |c| {
        garage.configure(c);
        c.photos.link_ttl_secs = 1;
        c.photos.chunk_bytes = 64 * 1024;
    })
    .await
    else {
        return;
    };
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
        .with_region(gridline_tests::garage::REGION)
        .with_bucket_name(gridline_tests::garage::BUCKET)
        .with_access_key_id(gridline_tests::garage::KEY_ID)
        .with_secret_access_key(gridline_tests::garage::SECRET_KEY)
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

// ---- memory -----------------------------------------------------------------------------------

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 50 concurrent 8 MiB tus uploads (400 MiB in all): the peak resident memory of the process
/// (server and client) grows by a bounded amount, far below what holding each body whole would
/// take. Measured from `/proc/self/status` (VmHWM, the peak, against VmRSS before), in a child
/// process of its own so that no other test's memory counts. The child runs with
/// `MALLOC_ARENA_MAX=2`: glibc otherwise keeps freed piece buffers in one arena per thread and
/// the peak measures the allocator (about 280 MiB here) more than the server (about 110 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_8mb_uploads_keep_memory_bounded() {
    if std::env::var("GRIDLINE_MEMORY_CHILD").is_ok() {
        return fifty_uploads_in_this_process().await;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "photos::fifty_concurrent_8mb_uploads_keep_memory_bounded",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GRIDLINE_MEMORY_CHILD", "1")
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran the test: {text}");
    for line in text
        .lines()
        .filter_map(|l| l.find("memory:").map(|i| &l[i..]))
    {
        eprintln!("{line}");
    }
}

async fn fifty_uploads_in_this_process() {
    const UPLOADS: usize = 50;
    const SIZE: usize = 8 * 1024 * 1024;
    let app = app_with(Db::Sqlite, |c| {
        c.blob.backend = BlobBackend::Local;
        c.limits.request_timeout_secs = 600;
    })
    .await
    .unwrap();
    // One real 3-megapixel JPEG padded to 8 MiB after its end marker; the last 8 bytes make
    // each of the 50 files distinct. The client shares the common part: its memory stays flat.
    let mut common = jpeg(2000, 1500, 15);
    common.resize(SIZE - 8, 0);
    let common = Bytes::from(common);
    let files: Vec<(Bytes, String)> = (0..UPLOADS as u64)
        .map(|i| {
            let tail = Bytes::copy_from_slice(&i.to_le_bytes());
            let mut h = Sha256::new();
            h.update(&common);
            h.update(&tail);
            (tail, hex::encode(h.finalize()))
        })
        .collect();
    let shas: Vec<&str> = files.iter().map(|(_, s)| s.as_str()).collect();
    let case = Uuid::now_v7();
    {
        // Declared by one case (sizes and hashes only matter here).
        let (lat, lon) = zone_centre(&app, "Z01").await;
        let reporter = user_id(&app, "inspector1").await;
        sqlx::query(
            "INSERT INTO cases (id, zone_id, reporter_id, device_id, source, state, category_code, \
               description, severity, asset_code, lat, lon, accuracy_m, captured_at, queued_at, \
               received_at, round_id, version, locked_at, flags, created_at, updated_at) \
             VALUES ($1, $2, $3, NULL, 'inspection', 'reported', '0101', 'x', 'minor', NULL, $4, \
               $5, 5.0, $6, $6, $6, NULL, 1, NULL, '[]', $6, $6)",
        )
        .bind(case.to_string())
        .bind(app.zone("Z01").to_string())
        .bind(&reporter)
        .bind(lat)
        .bind(lon)
        .bind(now_ms())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
        for sha in &shas {
            sqlx::query(
                "INSERT INTO case_photos (case_id, sha256, size, captured_at, gps_lat, gps_lon, \
                   role, declared_by, declared_at) VALUES ($1, $2, $3, $4, NULL, NULL, 'before', $5, $4)",
            )
            .bind(case.to_string())
            .bind(*sha)
            .bind(SIZE as i64)
            .bind(now_ms())
            .bind(&reporter)
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        }
    }
    let token = app.login("inspector1").await;
    let before_kb = status_kb("VmRSS:");
    let started = Instant::now();
    let uploads = files.iter().map(|(tail, sha)| {
        let body = futures::stream::iter(vec![
            Ok::<_, std::io::Error>(common.clone()),
            Ok(tail.clone()),
        ]);
        app.http
            .post(app.url("/v1/uploads"))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", SIZE.to_string())
            .header("upload-metadata", metadata(sha))
            .header("content-type", "application/offset+octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .send()
    });
    let responses = futures::future::join_all(uploads).await;
    let peak_kb = status_kb("VmHWM:");
    for resp in responses {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["upload-offset"], SIZE.to_string().as_str());
    }
    let summary = photo_store::evidence(&app.state.db, case).await.unwrap();
    assert!(summary.complete, "all 50 verified");
    let growth_mb = peak_kb.saturating_sub(before_kb) / 1024;
    println!(
        "memory: {UPLOADS} concurrent uploads of {} MiB in {:.1} s: RSS before {} MiB, peak {} MiB, growth {growth_mb} MiB",
        SIZE >> 20,
        started.elapsed().as_secs_f64(),
        before_kb / 1024,
        peak_kb / 1024
    );
    // Holding bodies whole would need 400 MiB. The bound: 50 pieces of `chunk_bytes` (1 MiB) in
    // flight, plus `max_concurrent_decodes` (2) photos being verified (the file, the multipart
    // buffer and the decoded pixels), plus allocator slack.
    assert!(growth_mb < 200, "peak memory grew by {growth_mb} MiB");
}

/// A case of `phone`'s in zone `zone` (index `index` of the demo zones) declaring `photo` with
/// `size`; the push's result for it.
async fn push_case_declaring(
    app: &TestApp,
    phone: &mut Phone,
    zone: &str,
    index: usize,
    photo: &[u8],
    size: usize,
) -> (Uuid, Value) {
    let (case_id, mut payload) = new_case(app.zone(zone), index, "event:0102");
    payload["photos"][0]["sha256"] = serde_json::json!(sha_hex(photo));
    payload["photos"][0]["size"] = serde_json::json!(size);
    let op = phone.op("case.create@1", payload);
    let (status, body) = phone.push(app, &[op]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (case_id, body["results"][0].clone())
}

/// Hashes are not secret (case views and the ledger export show them): declaring another
/// zone's photo in one's own case opens neither its bytes nor its metadata, a declaration
/// with another size than the stored photo's is refused, and the supervisor deciding on the
/// borrowing case sees the reuse.
async fn a_photo_cannot_be_borrowed_by_declaring_its_hash_in_another_case(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
        return;
    };
    let photo = jpeg(80, 60, 21);
    let sha = sha_hex(&photo);
    let mut owner = Phone::enrol(&app, "inspector1").await;
    let (owned, result) =
        push_case_declaring(&app, &mut owner, "Z01", 0, &photo, photo.len()).await;
    assert_eq!(result["status"], "applied", "{result}");
    assert_eq!(
        put_photo(&app, &owner.token, &photo, &sha).await.0,
        StatusCode::CREATED
    );

    let mut borrower = Phone::enrol(&app, "inspector3").await;
    let (refused, result) =
        push_case_declaring(&app, &mut borrower, "Z02", 1, &photo, 123_456).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["code"], "invalid_request", "{result}");
    let sup = app.login("supervisor1").await;
    assert_eq!(
        app.get(&format!("/v1/cases/{refused}"), Some(&sup)).await.0,
        StatusCode::NOT_FOUND
    );
    let (borrowing, result) =
        push_case_declaring(&app, &mut borrower, "Z02", 1, &photo, photo.len()).await;
    assert_eq!(result["status"], "applied", "{result}");

    for variant in ["original", "thumb"] {
        assert_eq!(
            link(&app, &borrower.token, &sha, variant).await.0,
            StatusCode::NOT_FOUND,
            "{variant}"
        );
    }
    let (status, _) = app
        .get(&format!("/v1/photos/{sha}"), Some(&borrower.token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = put_photo(&app, &borrower.token, &photo, &sha).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "photo_not_declared");
    // The owner's access is unchanged.
    assert_eq!(
        link(&app, &owner.token, &sha, "original").await.0,
        StatusCode::OK
    );

    // Where the supervisor decides: the queue and the case view flag both cases.
    let (status, queue) = app.get("/v1/review/queue?limit=100", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    for case in [owned, borrowing] {
        let item = queue["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["case"]["id"] == serde_json::json!(case))
            .unwrap_or_else(|| panic!("{case} in the queue: {queue}"));
        assert!(
            item["evidence"]["flags"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("photo_reused")),
            "{item}"
        );
        let (_, view) = app.get(&format!("/v1/cases/{case}"), Some(&sup)).await;
        assert!(
            view["evidence"]["flags"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("photo_reused")),
            "{view}"
        );
    }
}

/// Domestic map pickers give GCJ-02, hundreds of metres from the WGS-84 of GPS and EXIF. A
/// position declared in GCJ-02 is stored in WGS-84: an honest inspector's photo then matches
/// it, and one taken 300 m from the declared place still does not. Declared as WGS-84, the
/// same GCJ-02 numbers would be flagged (the datum is what makes the difference).
async fn a_position_in_gcj02_is_stored_in_wgs84_and_checked_against_exif_there(db: Db) {
    let Some(app) = app_with(db, |_| {}).await else {
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
