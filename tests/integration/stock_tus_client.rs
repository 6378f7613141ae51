//! A stock tus client, tuspy, unmodified, against the real server: it uploads a declared photo,
//! is cut off mid-upload by the fault proxy and resumes where the server stands, and finishes
//! an upload of a photo the server already has (complete at creation) although it sends the
//! file from offset 0 anyway. Needs `python3` with `tuspy` (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gridline_testkit::faultproxy::{FaultProxy, Faults};
use gridline_testkit::{new_case, noisy_jpeg as jpeg, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::photos::original;

on_both_backends!(a_stock_tus_client_uploads_is_cut_and_resumes_and_finishes_a_stored_photo);

/// What the script prints and how it ended.
struct Run {
    status: i32,
    out: Value,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/tus_upload.py")
}

/// Whether `python3` with tuspy is here; otherwise skips (or fails when services are required).
fn tuspy_available() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import tusclient"])
        .output()
        .is_ok_and(|o| o.status.success());
    found
        || gridline_testkit::skip_or_fail(
            "python3 with tuspy is not installed (python3 -m pip install tuspy==1.1.0)",
        )
        .is_some()
}

/// Runs the tuspy script once: upload `file` through `base`, resuming what `storage` recorded.
async fn tuspy(base: &str, token: &str, file: &Path, sha: &str, storage: &Path) -> Run {
    let output = tokio::process::Command::new("python3")
        .arg(script())
        .args(["--endpoint", &format!("{base}/v1/uploads")])
        .args(["--token", token])
        .arg("--file")
        .arg(file)
        .args(["--sha256", sha])
        .arg("--url-storage")
        .arg(storage)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let status = output.status.code().unwrap_or(-1);
    let out = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("tuspy script (exit {status}): {stdout}\n{stderr}"));
    Run { status, out }
}

/// The offset the server recorded for the uploads of `sha`, once it is past 0 (a cut body's
/// bytes are recorded by the server as it notices the cut), bounded.
async fn kept_after_cut(app: &TestApp, sha: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let received: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(received), 0) FROM uploads WHERE sha256 = $1")
                .bind(sha)
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap();
        if received > 0 || Instant::now() > deadline {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn uploads_of(app: &TestApp, sha: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM uploads WHERE sha256 = $1")
        .bind(sha)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn a_stock_tus_client_uploads_is_cut_and_resumes_and_finishes_a_stored_photo(app: TestApp) {
    if !tuspy_available() {
        return;
    }
    let photo = jpeg(640, 480, 31);
    let sha = hex::encode(Sha256::digest(&photo));
    // The phone declares the photo in a case it pushes.
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let (_, mut payload) = new_case(app.zone("Z01"), 0, "event:0102");
    payload["photos"][0]["sha256"] = sha.clone().into();
    payload["photos"][0]["size"] = photo.len().into();
    let op = phone.op("case.create@1", payload);
    let (status, body) = phone.push(&app, &[op]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "applied", "{body}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("photo.jpg");
    std::fs::write(&file, &photo).unwrap();
    let storage = dir.path().join("tuspy-urls.json");

    // Every request is cut within the first half of the photo, past 4 KiB: bodies are cut,
    // the small creation and `HEAD` requests pass.
    let proxy = FaultProxy::start(
        app.addr,
        rand::random(),
        Faults {
            cut_request: 1.0,
            min_cut_offset: 4096,
            max_cut_offset: photo.len() / 2,
            ..Faults::none()
        },
    )
    .await;
    let cut = tuspy(&proxy.url(), &phone.token, &file, &sha, &storage).await;
    assert_eq!(cut.status, 3, "tuspy gives up when cut: {}", cut.out);
    assert_eq!(proxy.counts().cut_requests, 1, "{}", proxy.counts());
    let kept = kept_after_cut(&app, &sha).await;
    assert!(
        kept > 0 && kept < photo.len() as i64,
        "the server keeps what arrived: {kept}"
    );

    // The signal is back: the same client, run again, resumes the same upload and finishes.
    proxy.set_faults(Faults::none());
    let resumed = tuspy(&proxy.url(), &phone.token, &file, &sha, &storage).await;
    assert_eq!(resumed.status, 0, "{}", resumed.out);
    assert_eq!(resumed.out["offset"], photo.len());
    assert_eq!(uploads_of(&app, &sha).await, 1, "resumed, not started over");
    assert_eq!(original(&app, &sha).await, photo, "stored byte for byte");

    // A client with no stored URL for the photo (another phone, a reinstalled app) while the
    // server already has it: the upload is complete at creation, tuspy sends the file from 0
    // regardless, and is told it is done.
    let other = dir.path().join("other-tuspy-urls.json");
    let stored = tuspy(&app.base, &phone.token, &file, &sha, &other).await;
    assert_eq!(stored.status, 0, "{}", stored.out);
    assert_eq!(stored.out["offset"], photo.len());
    assert_eq!(uploads_of(&app, &sha).await, 2);
    assert_eq!(original(&app, &sha).await, photo);
}
