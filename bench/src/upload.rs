//! Scenario `upload`: photos of about 4 MB uploaded with tus, `in_flight` at once, into a
//! server that runs as a process of its own with Garage (S3) as its store; MB/s until each
//! photo is verified, next to the same bytes PUT straight into the same Garage (the limit).
//! Then the server's memory with `memory_in_flight` uploads at once: peak RSS (`VmHWM`) of a
//! freshly started server process, and its growth over the idle process.
//!
//! Uploads go as the reference client sends them on a fast link (`gridline_sync::client::upload`,
//! whose chunk sizer reaches its largest `PATCH` on loopback): create (`POST /v1/uploads`),
//! then `PATCH`es of [`DEFAULT_UPLOAD_CHUNK`] bytes, each with its `Upload-Checksum`; a photo
//! counts when the `PATCH` that completes it answers, which the server does only once it has
//! hashed, validated and stored the photo. Bodies come from memory and chunk checksums are
//! computed before the clock starts: the phone's own costs are not the server's. The time
//! until the derivatives of every photo are made (after the clock: the server makes them in
//! the background, at low priority) is reported beside it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gridline_sync::client::DEFAULT_UPLOAD_CHUNK;
use sha2::{Digest, Sha256};

use super::jpeg::{self, BenchPhoto};
use super::phones::{self, SimPhone};
use super::process::{self, ServerProcess, Spawn};
use super::server::Database;
use super::{percentile_ms, Options, Report, Row};
use gridline_testkit::garage::{self, Garage};

const TARGET_RATIO: f64 = 0.8;
const TARGET_RSS_MB: f64 = 256.0;
/// Phones the photos are spread over (each declares its photos in cases of its own zone).
const PHONES: usize = 8;

/// Photo sizes, counts and concurrency of the photo scenarios.
#[derive(Debug, Clone)]
pub struct PhotoOptions {
    /// Bytes per photo (each is a valid JPEG of about this size).
    pub photo_bytes: usize,
    /// upload: photos uploaded for the throughput figure, and how many at once.
    pub upload_photos: usize,
    pub in_flight: usize,
    /// upload: uploads at once (one photo each) for the memory figure.
    pub memory_in_flight: usize,
    /// weaknet: photos, link rate, loss, and a disconnect every so often for so long.
    pub weak_photos: usize,
    pub weak_rate_kbit: u32,
    pub weak_loss_pct: u32,
    pub weak_disconnect_every: Duration,
    pub weak_disconnect_for: Duration,
    /// weaknet: shape a link between network namespaces (needs root, `ip`, `tc`, `nft`);
    /// without it, loopback through a proxy that only cuts connections.
    pub weak_netns: bool,
    /// weaknet: bytes per `PATCH` (`None`: the client's default).
    pub weak_chunk: Option<u64>,
    /// The server binary (`gridline-under-test`); found beside the bench when `None`.
    pub server_bin: Option<std::path::PathBuf>,
}

impl PhotoOptions {
    pub fn full() -> PhotoOptions {
        PhotoOptions {
            photo_bytes: 4_000_000,
            upload_photos: 96,
            in_flight: 32,
            memory_in_flight: 200,
            weak_photos: 8,
            weak_rate_kbit: 1000,
            weak_loss_pct: 5,
            weak_disconnect_every: Duration::from_secs(30),
            weak_disconnect_for: Duration::from_secs(3),
            weak_netns: true,
            weak_chunk: None,
            server_bin: None,
        }
    }

    pub fn quick() -> PhotoOptions {
        PhotoOptions {
            photo_bytes: 256 * 1024,
            upload_photos: 8,
            in_flight: 4,
            memory_in_flight: 8,
            weak_photos: 2,
            // Loopback is fast: small PATCHes and frequent cuts, so that some land mid-upload.
            weak_disconnect_every: Duration::from_millis(250),
            weak_disconnect_for: Duration::from_millis(30),
            weak_netns: false,
            weak_chunk: Some(8 * 1024),
            ..PhotoOptions::full()
        }
    }
}

/// A photo ready to send: its chunks' `Upload-Checksum` values computed.
struct Ready {
    photo: BenchPhoto,
    checksums: Vec<String>,
    token: String,
}

fn ready(photos: Vec<BenchPhoto>, tokens: &[String]) -> Vec<Ready> {
    let chunk = DEFAULT_UPLOAD_CHUNK as usize;
    photos
        .into_iter()
        .enumerate()
        .map(|(i, photo)| Ready {
            checksums: photo
                .bytes
                .chunks(chunk)
                .map(|c| format!("sha256 {}", STANDARD.encode(Sha256::digest(c))))
                .collect(),
            token: tokens[i % tokens.len()].clone(),
            photo,
        })
        .collect()
}

/// Declares every photo (one case each, on the phone that will upload it) with sync push.
async fn declare(
    http: &reqwest::Client,
    base: &str,
    fleet: &mut [SimPhone],
    photos: &[&BenchPhoto],
) -> anyhow::Result<()> {
    let n = fleet.len();
    for (i, p) in photos.iter().enumerate() {
        fleet[i % n].queue_create_with(&[(p.sha256.clone(), p.bytes.len() as u64)]);
    }
    let batches = fleet
        .iter_mut()
        .map(|p| (p.token.clone(), p.take_batches()))
        .collect();
    phones::push_fleet_at(http, base, batches, Duration::from_secs(300))
        .await
        .context("declare the photos")?;
    Ok(())
}

/// Uploads one photo as the reference client does; a failed `PATCH` (a 503 under load, a
/// dropped connection) asks where the upload stands (`HEAD`) and goes on from there.
async fn tus_upload(http: &reqwest::Client, base: &str, r: &Ready) -> anyhow::Result<usize> {
    let len = r.photo.bytes.len();
    let resp = http
        .post(format!("{base}/v1/uploads"))
        .bearer_auth(&r.token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", len)
        .header(
            "upload-metadata",
            format!("sha256 {}", STANDARD.encode(&r.photo.sha256)),
        )
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 201,
        "create answered {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("no Location")?;
    let url = format!("{base}{location}");
    let chunk = DEFAULT_UPLOAD_CHUNK as usize;
    let mut offset = 0;
    let mut retries = 0;
    // The empty PATCH at the end (after a failure there) asks the server to finish.
    while offset < len || retries > 0 {
        let end = (offset + chunk).min(len);
        let mut req = http
            .patch(&url)
            .bearer_auth(&r.token)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset);
        if end > offset {
            req = req.header("upload-checksum", &r.checksums[offset / chunk]);
        }
        let sent = req.body(r.photo.bytes.slice(offset..end)).send().await;
        let at = match sent {
            Ok(resp) if resp.status().as_u16() == 204 => resp
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .context("no Upload-Offset")?,
            Ok(resp) if resp.status().as_u16() == 409 && offset == len => return Ok(retries),
            Ok(resp) if !matches!(resp.status().as_u16(), 409 | 460 | 503) => bail!(
                "PATCH answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            ),
            _ => {
                retries += 1;
                ensure!(retries <= 20, "photo {}: 20 failed PATCHes", r.photo.sha256);
                tokio::time::sleep(Duration::from_millis(200)).await;
                let head = http
                    .head(&url)
                    .bearer_auth(&r.token)
                    .header("tus-resumable", "1.0.0")
                    .send()
                    .await?;
                offset = head
                    .headers()
                    .get("upload-offset")
                    .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                    .context("HEAD without Upload-Offset")?;
                continue;
            }
        };
        offset = at;
        if offset == len {
            break;
        }
    }
    Ok(retries)
}

/// What uploading a set of photos measured.
struct UploadRun {
    elapsed: Duration,
    bytes: usize,
    latencies: Vec<Duration>,
    retries: usize,
}

/// Uploads all `photos`, `in_flight` at once.
async fn upload_all(
    http: &reqwest::Client,
    base: &str,
    photos: Vec<Ready>,
    in_flight: usize,
    deadline: Duration,
) -> anyhow::Result<UploadRun> {
    let photos = Arc::new(photos);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight.min(photos.len()) {
        let (http, base, photos, next) =
            (http.clone(), base.to_owned(), photos.clone(), next.clone());
        tasks.spawn(async move {
            let mut done = (Vec::new(), 0usize, 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = photos.get(i) else {
                    return anyhow::Ok(done);
                };
                let t = Instant::now();
                done.2 += tus_upload(&http, &base, r)
                    .await
                    .with_context(|| format!("upload photo {i}"))?;
                done.0.push(t.elapsed());
                done.1 += r.photo.bytes.len();
            }
        });
    }
    let mut run = UploadRun {
        elapsed: Duration::ZERO,
        bytes: 0,
        latencies: Vec::new(),
        retries: 0,
    };
    let collect = async {
        while let Some(done) = tasks.join_next().await {
            let (lat, bytes, retries) = done??;
            run.latencies.extend(lat);
            run.bytes += bytes;
            run.retries += retries;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(deadline, collect)
        .await
        .context("the uploads did not finish before the deadline")??;
    run.elapsed = start.elapsed();
    Ok(run)
}

/// The limit: the same bytes PUT straight into Garage by the server's own S3 client
/// configuration, `in_flight` at once.
async fn limit_put(
    g: &Garage,
    photos: &[BenchPhoto],
    in_flight: usize,
) -> anyhow::Result<UploadRun> {
    let mut config = gridline_server::config::Config::default();
    g.configure(&mut config);
    let store = gridline_server::blob::open(&config)?;
    let photos = Arc::new(photos.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight.min(photos.len()) {
        let (store, photos, next, bytes) =
            (store.clone(), photos.clone(), next.clone(), bytes.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            while let Some(p) = photos.get(next.fetch_add(1, Ordering::Relaxed)) {
                let t = Instant::now();
                let key = object_store::path::Path::from(format!("limit/{}", p.sha256));
                store.put(&key, p.bytes.clone().into()).await?;
                lat.push(t.elapsed());
                bytes.fetch_add(p.bytes.len() as u64, Ordering::Relaxed);
            }
            anyhow::Ok(lat)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    Ok(UploadRun {
        elapsed: start.elapsed(),
        bytes: bytes.load(Ordering::Relaxed) as usize,
        latencies,
        retries: 0,
    })
}

/// Waits until no photo's derivatives are pending (polling the database, a measurement and
/// not a test); how long that took.
async fn derivatives_done(url: &str, deadline: Duration) -> anyhow::Result<Duration> {
    let db = gridline_server::store::Db::connect(url, 1).await?;
    let start = Instant::now();
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM photos WHERE derivatives = 'pending'")
                .fetch_one(&db.pool)
                .await?;
        if pending == 0 {
            break;
        }
        ensure!(
            start.elapsed() < deadline,
            "{pending} photos still wait for their derivatives"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.pool.close().await;
    Ok(start.elapsed())
}

fn mb_per_s(run: &UploadRun) -> f64 {
    run.bytes as f64 / 1e6 / run.elapsed.as_secs_f64()
}

/// Photos of one stream (gridline, limit, memory) of one backend: distinct from all others.
fn stream(
    base: &[u8],
    o: &PhotoOptions,
    stream: usize,
    count: usize,
) -> anyhow::Result<Vec<BenchPhoto>> {
    (0..count)
        .map(|i| jpeg::photo(base, o.photo_bytes, i * 8 + stream))
        .collect()
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let o = &opts.photos;
    let binary = process::find_server_binary(o.server_bin.as_deref())?;
    let Some(garage) = tokio::task::spawn_blocking(Garage::start).await? else {
        report.note("upload: not measured (Garage is not installed; see bench/run.sh)");
        return Ok(());
    };
    let size = o.photo_bytes;
    let base = tokio::task::spawn_blocking(move || jpeg::base_image(size)).await??;
    eprintln!(
        "upload: base JPEG {} bytes; {} photos, {} in flight; memory with {} in flight",
        base.len(),
        o.upload_photos,
        o.in_flight,
        o.memory_in_flight
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(o.memory_in_flight.max(o.in_flight))
        .timeout(Duration::from_secs(120))
        .build()?;
    for (bi, &backend) in opts.backends.iter().enumerate() {
        let b = backend.name();
        let gridline_set = stream(&base, o, bi * 3, o.upload_photos)?;
        let limit_set = stream(&base, o, bi * 3 + 1, o.upload_photos)?;
        let memory_set = stream(&base, o, bi * 3 + 2, o.memory_in_flight)?;

        let dir = tempfile::tempdir()?;
        let db = Database::create(backend, opts, dir.path()).await?;
        let listen = format!("127.0.0.1:{}", process::free_port()?);
        let spawn = || Spawn {
            binary: &binary,
            data_dir: dir.path(),
            listen: listen.clone(),
            database_url: &db.url,
            env: garage::server_env(&garage),
            netns: None,
        };
        let server = ServerProcess::start(spawn()).await?;
        let zones = {
            let conn = gridline_server::store::Db::connect(&db.url, 1).await?;
            let z = phones::zone_ids(&conn.pool).await?;
            conn.pool.close().await;
            z
        };
        let users: Vec<(String, usize)> = (1..=phones::INSPECTORS).map(phones::inspector).collect();
        let mut fleet = phones::enrol_at(&http, &server.base, &zones, &users, PHONES).await?;
        let all: Vec<&BenchPhoto> = gridline_set.iter().chain(&memory_set).collect();
        declare(&http, &server.base, &mut fleet, &all).await?;
        let tokens: Vec<String> = fleet.iter().map(|p| p.token.clone()).collect();

        let lim = limit_put(&garage, &limit_set, o.in_flight)
            .await
            .context("the limit: PUT to Garage")?;
        drop(limit_set);
        let run = upload_all(
            &http,
            &server.base,
            ready(gridline_set, &tokens),
            o.in_flight,
            opts.deadline,
        )
        .await
        .with_context(|| format!("upload on {b}; server log:\n{}", server.log_tail(20)))?;
        let (ours, limit) = (mb_per_s(&run), mb_per_s(&lim));
        let derived = derivatives_done(&db.url, opts.deadline)
            .await
            .with_context(|| format!("derivatives on {b}; server log:\n{}", server.log_tail(20)))?;
        let peak_throughput = server.peak_rss();
        report.push(
            Row::new("upload", b, "MB/s until verified", ours)
                .reference("limit: the same bytes PUT straight to Garage", Some(limit))
                .target("≥ 0.80× limit", Some(ours >= TARGET_RATIO * limit)),
        );
        report.note(format!(
            "upload {b}: {} photos of {:.2} MB, {} at once, took {:.2} s (p50 {:.0} ms, p99 {:.0} ms per photo, {} PATCHes retried); \
             the limit PUT the same bytes in {:.2} s (p50 {:.0} ms); the derivatives of every photo were ready {:.2} s after \
             the last was verified; server peak RSS in that phase {:.0} MB",
            run.latencies.len(),
            o.photo_bytes as f64 / 1e6,
            o.in_flight,
            run.elapsed.as_secs_f64(),
            percentile_ms(&run.latencies, 50.0),
            percentile_ms(&run.latencies, 99.0),
            run.retries,
            lim.elapsed.as_secs_f64(),
            percentile_ms(&lim.latencies, 50.0),
            derived.as_secs_f64(),
            peak_throughput.unwrap_or(0) as f64 / 1e6,
        ));

        // Memory: a fresh process (its VmHWM is this phase's), everything at once.
        server.stop().await;
        let server = ServerProcess::start(spawn()).await?;
        http.get(server.url("/healthz")).send().await.ok();
        let idle = server.rss().unwrap_or(0);
        let sampling = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (pid_rss, max) = (server.pid, sampling.clone());
            tokio::spawn(async move {
                loop {
                    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid_rss}/status")) {
                        if let Some(kb) = s
                            .lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                        {
                            max.fetch_max(kb * 1024, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let mem_run = upload_all(
            &http,
            &server.base,
            ready(memory_set, &tokens),
            o.memory_in_flight,
            opts.deadline,
        )
        .await
        .with_context(|| format!("memory phase on {b}; server log:\n{}", server.log_tail(20)))?;
        sampler.abort();
        let peak = server
            .peak_rss()
            .unwrap_or(sampling.load(Ordering::Relaxed));
        let peak_mb = peak as f64 / 1e6;
        report.push(
            Row::new(
                "upload",
                b,
                &format!("peak server RSS MB, {} uploads at once", o.memory_in_flight),
                peak_mb,
            )
            .reference("the idle server process", Some(idle as f64 / 1e6))
            .lower_is_better()
            .target("< 256 MB", Some(peak_mb < TARGET_RSS_MB)),
        );
        report.note(format!(
            "upload {b}: {} uploads at once finished in {:.2} s ({:.1} MB/s, {} PATCHes retried); server RSS idle {:.0} MB, \
             peak {:.0} MB (VmHWM; highest 20 ms sample {:.0} MB), growth {:.0} MB",
            o.memory_in_flight,
            mem_run.elapsed.as_secs_f64(),
            mb_per_s(&mem_run),
            mem_run.retries,
            idle as f64 / 1e6,
            peak_mb,
            sampling.load(Ordering::Relaxed) as f64 / 1e6,
            (peak.saturating_sub(idle)) as f64 / 1e6,
        ));
        server.stop().await;
        db.drop_now().await;
    }
    Ok(())
}
