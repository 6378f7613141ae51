//! Dependencies going away: PostgreSQL switched off behind a fault proxy mid-load, and the
//! object store failing while phones upload photos. Requests answer 503 with Retry-After
//! (never 500), nothing is acknowledged that is not stored, `/readyz` says what is down, and
//! service comes back by itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridline_server::config::{BlobBackend, Config, Secret};
use gridline_server::AppState;
use gridline_sync::{OpStatus, PushResponse, SignedOperation};
use gridline_testkit::faultproxy::{FaultProxy, Faults, Mode};
use gridline_testkit::garage::Garage;
use gridline_testkit::{new_case, postgres_admin_url, Db, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::SwitchableStore;

use super::{check_exactly_once, check_photos, seed, ExpectedDevice, SimPhone, SyncTally};

const PHONES: usize = 4;

/// `host:port` of a `postgres://user@host:port/db?…` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Polls `cond` every 50 ms until it holds, or panics after `limit` naming `what`.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/readyz` until it answers `want`; returns the body.
async fn readyz_until(app: &TestApp, want: StatusCode, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (status, body) = app.get("/readyz", None).await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still {status} {body}, waiting for {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unavailable: AtomicU64,
    /// Anything but 200 and 503-with-Retry-After, and requests that hung.
    wrong: Mutex<Vec<String>>,
}

/// A phone pushing its queue over and over; returns every operation it made.
async fn pushing_phone(
    app: Arc<TestApp>,
    mut phone: Phone,
    zone: usize,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> ExpectedDevice {
    let zone_id = app.zone(&format!("Z0{}", zone + 1));
    let mut all: Vec<SignedOperation> = Vec::new();
    let mut queue: Vec<SignedOperation> = Vec::new();
    let mut cases = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && queue.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "phone never drained"
        );
        if !stopping && queue.len() < 20 {
            let op = if cases.is_empty() || rand::random::<bool>() {
                let (case_id, payload) = new_case(zone_id, zone, "event:0102");
                cases.push(case_id);
                phone.op("case.create@1", payload)
            } else {
                let case_id = cases[rand::random::<usize>() % cases.len()];
                phone.op(
                    "case.comment@1",
                    json!({"case_id": case_id, "comment_id": uuid::Uuid::now_v7(), "text": "still there"}),
                )
            };
            queue.push(op.clone());
            all.push(op);
        }
        let sent = app
            .http
            .post(app.url("/v1/sync/push"))
            .bearer_auth(&phone.token)
            .json(&phone.push_body(&queue))
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                tally.wrong.lock().unwrap().push(format!("no answer: {e}"));
                continue;
            }
        };
        let status = resp.status();
        let retry_after = resp.headers().contains_key("retry-after");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        match status {
            StatusCode::OK => {
                let r: PushResponse = serde_json::from_value(body).expect("push response");
                for res in &r.results {
                    assert_eq!(res.effective_status(), OpStatus::Applied, "{res:?}");
                }
                queue.retain(|op| {
                    let seq = serde_json::from_str::<Value>(&op.op).unwrap()["seq"]
                        .as_u64()
                        .unwrap();
                    seq > r.acked_through
                });
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            StatusCode::SERVICE_UNAVAILABLE if retry_after && body["code"] == "unavailable" => {
                tally.unavailable.fetch_add(1, Ordering::Relaxed);
                // Retry-After is honoured by the reference client (its own tests); here the
                // phone only backs off a little to keep the test short.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => tally
                .wrong
                .lock()
                .unwrap()
                .push(format!("{other} (Retry-After: {retry_after}) {body}")),
        }
    }
    ExpectedDevice::from_ops(phone.device_id, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_acknowledges_only_what_is_stored_and_recovers() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let pg: SocketAddr = tokio::net::lookup_host(host_port(&admin))
        .await
        .expect("resolve PostgreSQL")
        .next()
        .expect("an address");
    let proxy = FaultProxy::start(pg, seed("postgres outage"), Faults::none()).await;
    let proxied = proxy.addr.to_string();
    let app = TestApp::builder()
        .postgres()
        .config(|c| {
            let url = c.database_url.as_ref().expect("postgres url").expose();
            c.database_url = Some(Secret::new(url.replace(&host_port(url), &proxied)));
            c.limits.requests_per_minute = 0;
        })
        .spawn()
        .await
        .expect("app");
    let app = Arc::new(app);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..PHONES {
        let phone = Phone::enrol(&app, &format!("inspector{}", 2 * i + 1)).await;
        tasks.push(tokio::spawn(pushing_phone(
            app.clone(),
            phone,
            i,
            tally.clone(),
            stop.clone(),
        )));
    }
    let ok = || tally.ok.load(Ordering::Relaxed);
    until("pushes before the outage", Duration::from_secs(30), || {
        ok() >= 10
    })
    .await;

    // Refused connections fail at once; a blackhole (a partition) only times out.
    for mode in [Mode::Refuse, Mode::Blackhole] {
        let unavailable = tally.unavailable.load(Ordering::Relaxed);
        proxy.set_mode(mode);
        let outage = readyz_until(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(20),
        )
        .await;
        assert_ne!(outage["database"], "ok", "{mode:?}: {outage}");
        assert_eq!(outage["blob_store"], "ok", "{mode:?}: {outage}");
        until(
            "every phone to meet the outage",
            Duration::from_secs(90),
            || tally.unavailable.load(Ordering::Relaxed) >= unavailable + PHONES as u64,
        )
        .await;

        proxy.set_mode(Mode::On);
        readyz_until(&app, StatusCode::OK, Duration::from_secs(30)).await;
        let after = ok();
        until("pushes after the outage", Duration::from_secs(30), || {
            ok() >= after + 10
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut expected = Vec::new();
    for t in tasks {
        expected.push(t.await.expect("phone"));
    }
    let wrong = tally.wrong.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "{} bad answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let checked = check_exactly_once(&app.state.db.pool, &expected).await;
    println!(
        "postgres outage: {} pushes ok, {} answered 503 + Retry-After, 0 other; {} operations \
         checked exactly once; proxy: {}",
        tally.ok.load(Ordering::Relaxed),
        tally.unavailable.load(Ordering::Relaxed),
        checked.operations,
        proxy.counts()
    );
}

#[tokio::test]
async fn object_store_outage_shows_in_readyz_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.blob.backend = BlobBackend::Memory;
    let mut state = AppState::build(config).await.unwrap();
    let up = Arc::new(AtomicBool::new(true));
    state.blobs = Arc::new(SwitchableStore {
        inner: state.blobs.clone(),
        up: up.clone(),
        written: Default::default(),
        refuse_listing: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gridline_server::run(listener, state, async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let readyz = || async {
        let resp = http.get(&url).send().await.unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };

    assert_eq!(readyz().await.0, StatusCode::OK);
    up.store(false, Ordering::Relaxed);
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "unavailable", "database": "ok", "blob_store": "unavailable"})
    );
    up.store(true, Ordering::Relaxed);
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["blob_store"], "ok");
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_object_store_outage_during_uploads_answers_503_and_recovers() {
    store_outage_during_uploads(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_object_store_outage_during_uploads_answers_503_and_recovers() {
    store_outage_during_uploads(Db::Postgres).await;
}

/// Photos the database holds as verified.
async fn verified_photos(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM photos WHERE status = 'verified'")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count photos")
}

/// Waits until `verified_photos` exceeds `than`, or panics after `limit`.
async fn verified_beyond(app: &TestApp, than: i64, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while verified_photos(app).await <= than {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no photo verified beyond {than}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Phones capture cases with photos and sync (push, upload, pull) on a local-disk store that
/// is switched off for a while: uploads answer 503 with Retry-After and never 500, no photo is
/// verified while the store is down, `/readyz` names the store, and once it is back every
/// photo is uploaded, verified and in the store with the right hash.
async fn store_outage_during_uploads(db: Db) {
    let up = Arc::new(AtomicBool::new(true));
    let switch = up.clone();
    let Some(app) = TestApp::builder()
        .db(db)
        .config(|c| c.blob.backend = BlobBackend::Local)
        .state(move |state| {
            state.blobs = Arc::new(SwitchableStore {
                inner: state.blobs.clone(),
                up: switch,
                written: Default::default(),
                refuse_listing: Default::default(),
            })
        })
        .spawn()
        .await
    else {
        return;
    };
    // The store as it is on disk, not through the switch.
    let disk = gridline_server::blob::open(&app.state.config).expect("blob store");
    uploads_through_an_outage(
        &app,
        |on| up.store(on, Ordering::Relaxed),
        disk.as_ref(),
        "switched off",
    )
    .await;
}

/// Production's pair, PostgreSQL and an S3 store, with Garage behind the fault proxy refusing
/// every connection for a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_garage_refusing_connections_during_uploads_answers_503_and_recovers() {
    garage_unreachable_during_uploads(Mode::Refuse).await;
}

/// The same with Garage partitioned away (connections accepted, never answered): the S3
/// client's timeouts and retries must give up in time for a 503 with Retry-After, not hold
/// each upload past the phone's patience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_garage_partitioned_during_uploads_answers_503_and_recovers() {
    garage_unreachable_during_uploads(Mode::Blackhole).await;
}

async fn garage_unreachable_during_uploads(outage: Mode) {
    let Some(garage) = Garage::start() else {
        return;
    };
    let s3: SocketAddr = garage
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("garage address");
    let proxy = FaultProxy::start(s3, seed("garage outage"), Faults::none()).await;
    let through_proxy = proxy.url();
    let Some(app) = TestApp::builder()
        .postgres()
        .config(|c| {
            garage.configure(c);
            c.blob.s3.endpoint = through_proxy;
        })
        .spawn()
        .await
    else {
        return;
    };
    let bucket = {
        let mut config = (*app.state.config).clone();
        garage.configure(&mut config);
        gridline_server::blob::open(&config).expect("bucket")
    };
    uploads_through_an_outage(
        &app,
        |on| proxy.set_mode(if on { Mode::On } else { outage }),
        bucket.as_ref(),
        &format!("garage {outage:?}"),
    )
    .await;
    println!("garage {outage:?} proxy: {}", proxy.counts());
}

/// Phones upload while `switch(false)` keeps the store away; `store` reads it directly.
async fn uploads_through_an_outage(
    app: &TestApp,
    switch: impl Fn(bool),
    store: &dyn object_store::ObjectStore,
    what: &str,
) {
    let db = app.db;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut phones = Vec::new();
    for i in 0..PHONES {
        let zone = format!("Z0{}", i + 1);
        let username = format!("inspector{}", 2 * i + 1);
        let phone = SimPhone::enrol(&app.base, &username, app.zone(&zone), i, deadline).await;
        phones.push(phone.with_photos());
    }
    let unavailable: Vec<Arc<AtomicU64>> = phones
        .iter()
        .map(|p| p.client.transport().watch.unavailable.clone())
        .collect();
    let unavailable_now = || -> Vec<u64> {
        unavailable
            .iter()
            .map(|u| u.load(Ordering::Relaxed))
            .collect()
    };
    let stop = Arc::new(AtomicBool::new(false));
    // One task drives every phone (the client's store futures are not `Send`).
    let load = futures::future::join_all(phones.into_iter().map(|mut phone| {
        let stop = stop.clone();
        async move {
            let mut tally = SyncTally::default();
            while !stop.load(Ordering::Relaxed) {
                phone.capture(1).await;
                tally.record(phone.sync().await);
            }
            tally.merge(&phone.drain(deadline).await);
            (phone, tally)
        }
    }));
    let outage = async {
        verified_beyond(app, PHONES as i64 - 1, Duration::from_secs(60)).await;
        switch(false);
        let before = unavailable_now();
        let down = readyz_until(
            app,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(down["database"], "ok", "{down}");
        assert_ne!(down["blob_store"], "ok", "{down}");
        // Once every phone has met the outage, no upload from before it is still in flight:
        // from then on nothing may be verified.
        let met = |n: u64| {
            let before = before.clone();
            let unavailable = &unavailable;
            move || {
                unavailable
                    .iter()
                    .zip(&before)
                    .all(|(u, b)| u.load(Ordering::Relaxed) >= b + n)
            }
        };
        until(
            "every phone to meet the outage",
            Duration::from_secs(90),
            met(1),
        )
        .await;
        let verified = verified_photos(app).await;
        until(
            "more 503s during the outage",
            Duration::from_secs(90),
            met(3),
        )
        .await;
        assert_eq!(
            verified_photos(app).await,
            verified,
            "a photo was verified while the store was down"
        );
        switch(true);
        readyz_until(app, StatusCode::OK, Duration::from_secs(30)).await;
        verified_beyond(app, verified, Duration::from_secs(60)).await;
        stop.store(true, Ordering::Relaxed);
        verified
    };
    let (phones, verified_in_outage) = tokio::join!(load, outage);
    let mut expected = Vec::new();
    let mut photos = Vec::new();
    let mut tally = SyncTally::default();
    let mut server_errors = Vec::new();
    for (phone, t) in phones {
        tally.merge(&t);
        server_errors.extend(phone.server_errors());
        expected.push(phone.expected().await);
        photos.extend(phone.expected_photos().await);
    }
    let unavailable: u64 = unavailable_now().iter().sum();
    assert!(
        server_errors.is_empty(),
        "answers other than 503 + Retry-After: {server_errors:?}"
    );
    let checked = check_exactly_once(&app.state.db.pool, &expected).await;
    let photo_check = check_photos(&app.state.db.pool, store, &photos).await;
    let unacked: Vec<_> = photos.iter().filter(|p| !p.acknowledged).collect();
    assert!(unacked.is_empty(), "photos never uploaded: {unacked:?}");
    println!(
        "object store {what} ({db:?}): {unavailable} answers 503 + Retry-After, 0 other 5xx; \
         {verified_in_outage} photos verified before it, none during it, {} in all, each in \
         the store with its hash; {} operations checked exactly once; syncs {} ok, {} failed",
        photo_check.acknowledged, checked.operations, tally.ok, tally.failed
    );
    assert!(photo_check.acknowledged > verified_in_outage as usize);
}
