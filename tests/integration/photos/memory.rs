//! Memory bounds: many large uploads at once keep the process's peak resident memory bounded.

use std::time::Instant;

use bytes::Bytes;
use gridline_server::config::BlobBackend;
use gridline_server::store::photos as photo_store;
use gridline_testkit::{noisy_jpeg as jpeg, Db};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::fixtures::{metadata, now_ms, photo_app, user_id, zone_centre};

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
            // This test's path in the binary: its module's without the crate's name.
            &format!(
                "{}::fifty_concurrent_8mb_uploads_keep_memory_bounded",
                module_path!().split_once("::").expect("a module path").1
            ),
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
    let app = photo_app(Db::Sqlite)
        .config(|c| {
            c.blob.backend = BlobBackend::Local;
            c.limits.request_timeout_secs = 600;
        })
        .spawn()
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
