//! What the photo specs share: servers, cases declaring photos, tus requests, EXIF-bearing
//! JPEGs, and reads of the store.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use gridline_testkit::{Db, TestApp, TestAppBuilder};
use object_store::path::Path;
use object_store::ObjectStore;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A demo server on `db` to build, whose derivative worker looks for work every second.
pub(super) fn photo_app<'a>(db: Db) -> TestAppBuilder<'a> {
    TestApp::builder()
        .db(db)
        .config(|c| c.photos.worker_poll_secs = 1)
}

pub(super) fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(super) fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::GrayImage::new(width, height);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// EXIF facts to write into a test JPEG.
#[derive(Default)]
pub(super) struct ExifSpec {
    pub(super) make: Option<&'static str>,
    pub(super) orientation: Option<u16>,
    pub(super) taken: Option<&'static str>,
    pub(super) gps: Option<(f64, f64)>,
}

/// Inserts an APP1 EXIF segment (a little-endian TIFF built by hand) right after SOI.
pub(super) fn with_exif(jpeg: &[u8], spec: &ExifSpec) -> Vec<u8> {
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
pub(super) async fn zone_centre(app: &TestApp, code: &str) -> (f64, f64) {
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

pub(super) async fn user_id(app: &TestApp, username: &str) -> String {
    sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

/// A case in `zone` reported at its centre at `captured_at`, declaring `photos`.
pub(super) async fn case_declaring(
    app: &TestApp,
    zone: &str,
    photos: &[&[u8]],
    captured_at: i64,
) -> Uuid {
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

pub(super) fn now_ms() -> i64 {
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
    gridline_testkit::into_json(resp).await
}

pub(super) fn metadata(sha: &str) -> String {
    format!("sha256 {},filename cGhvdG8uanBn", STANDARD.encode(sha))
}

/// tus creation, with the first `first` bytes of `bytes` as creation-with-upload.
pub(super) async fn tus_create(
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

pub(super) async fn tus_head(
    app: &TestApp,
    token: &str,
    location: &str,
) -> (StatusCode, Option<i64>) {
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

pub(super) async fn tus_patch(
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
pub(super) fn patch_request(
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
pub(super) fn cut_body(bytes: &[u8], from: usize, to: usize) -> reqwest::Body {
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
pub(super) async fn offset_after_cut(app: &TestApp, token: &str, location: &str, past: i64) -> i64 {
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
pub(super) fn completed(resp: &reqwest::Response, len: usize) {
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        resp.headers()["upload-offset"],
        len.to_string().as_str(),
        "complete"
    );
}

/// The photo's metadata, which must say it is verified.
pub(super) async fn verified(app: &TestApp, token: &str, sha: &str) -> Value {
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
pub(super) async fn link(
    app: &TestApp,
    token: &str,
    sha: &str,
    variant: &str,
) -> (StatusCode, Value) {
    app.get(
        &format!("/v1/photos/{sha}/link?variant={variant}"),
        Some(token),
    )
    .await
}

pub(super) async fn list(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    use futures::StreamExt;
    store
        .list(Some(&Path::from(prefix)))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await
}

pub(super) async fn wait_for_derivatives(app: &TestApp, token: &str, sha: &str) -> Value {
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
