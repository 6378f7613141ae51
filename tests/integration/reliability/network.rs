//! Phones on a bad network: every request goes through the fault proxy, which drops, cuts,
//! delays and duplicates. When the phones are quiescent, every operation is applied once, and
//! every photo they uploaded (tus, resuming after each fault) is stored once with the right
//! hash and verified.

use std::time::Duration;

use gridline_testkit::faultproxy::{FaultProxy, Faults};
use gridline_testkit::{Db, TestApp};

use super::{check_exactly_once, check_photos, seed, ExpectedPhoto, SimPhone, SyncTally};

const PHONES: usize = 12;
const ROUNDS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sync_through_a_faulty_network_applies_every_operation_once() {
    sync_through_a_faulty_network(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sync_through_a_faulty_network_applies_every_operation_once() {
    sync_through_a_faulty_network(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_uploads_through_a_faulty_network_store_every_photo_once() {
    uploads_through_a_faulty_network(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_uploads_through_a_faulty_network_store_every_photo_once() {
    uploads_through_a_faulty_network(Db::Postgres).await;
}

async fn sync_through_a_faulty_network(db: Db) {
    let Some(app) = TestApp::builder()
        .db(db)
        .config(|c| c.limits.requests_per_minute = 0)
        .spawn()
        .await
    else {
        return;
    };
    let proxy = FaultProxy::start(app.addr, seed("faulty network"), Faults::flaky_network()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);

    // One task drives every phone (the client's store futures are not `Send`); the server
    // runs on the runtime's workers.
    let phones = (0..PHONES).map(|i| {
        let zone_index = i / 2;
        let zone_id = app.zone(&format!("Z0{}", zone_index + 1));
        let url = proxy.url();
        async move {
            let username = format!("inspector{}", i + 1);
            let mut phone = SimPhone::enrol(&url, &username, zone_id, zone_index, deadline).await;
            let mut tally = SyncTally::default();
            for round in 0..ROUNDS {
                phone.capture(1 + (i + round) % 3).await;
                tally.record(phone.sync().await);
            }
            tally.merge(&phone.drain(deadline).await);
            (phone.expected().await, tally)
        }
    });
    let mut expected = Vec::new();
    let mut tally = SyncTally::default();
    for (e, t) in futures::future::join_all(phones).await {
        expected.push(e);
        tally.merge(&t);
    }
    let counts = proxy.counts();
    let checked = check_exactly_once(&app.state.db.pool, &expected).await;
    println!(
        "faulty network ({db:?}): {} operations from {} phones checked, {} cases; {counts}; \
         syncs: {} ok, {} failed {:?}",
        checked.operations, checked.devices, checked.cases, tally.ok, tally.failed, tally.errors
    );
    assert!(
        !tally.server_was_behind,
        "an acknowledged operation was lost"
    );
    // The run must have met the faults it is about.
    assert!(counts.cut_responses > 0, "{counts}");
    assert!(counts.cut_requests > 0, "{counts}");
    assert!(counts.duplicated > 0, "{counts}");
    assert!(counts.dropped > 0, "{counts}");
}

const UPLOADING_PHONES: usize = 6;
const UPLOAD_ROUNDS: usize = 6;

async fn uploads_through_a_faulty_network(db: Db) {
    let Some(app) = TestApp::builder()
        .db(db)
        .config(|c| c.limits.requests_per_minute = 0)
        .spawn()
        .await
    else {
        return;
    };
    let proxy = FaultProxy::start(
        app.addr,
        seed("faulty network, uploads"),
        Faults::flaky_uploads(super::UPLOAD_CHUNK as usize),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let phones = (0..UPLOADING_PHONES).map(|i| {
        let zone_index = i / 2;
        let zone_id = app.zone(&format!("Z0{}", zone_index + 1));
        let url = proxy.url();
        async move {
            let username = format!("inspector{}", i + 1);
            let mut phone = SimPhone::enrol(&url, &username, zone_id, zone_index, deadline)
                .await
                .with_photos();
            let mut tally = SyncTally::default();
            for round in 0..UPLOAD_ROUNDS {
                phone.capture(1 + (i + round) % 2).await;
                tally.record(phone.sync().await);
            }
            tally.merge(&phone.drain(deadline).await);
            assert_eq!(phone.server_errors(), Vec::<String>::new(), "{username}");
            (phone.expected().await, phone.expected_photos().await, tally)
        }
    });
    let mut expected = Vec::new();
    let mut photos: Vec<ExpectedPhoto> = Vec::new();
    let mut tally = SyncTally::default();
    for (e, p, t) in futures::future::join_all(phones).await {
        expected.push(e);
        photos.extend(p);
        tally.merge(&t);
    }
    let counts = proxy.counts();
    let pool = &app.state.db.pool;
    let checked = check_exactly_once(pool, &expected).await;
    let photo_check = check_photos(pool, app.state.blobs.as_ref(), &photos).await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM photos")
        .fetch_one(pool)
        .await
        .expect("count photos");
    println!(
        "faulty network, uploads ({db:?}): {} photos uploaded, verified and stored once ({} \
         uploads resumed after a fault, {} upload rows checked); {} operations from {} phones; {counts}; syncs: {} ok, {} failed \
         {:?}",
        photo_check.acknowledged,
        tally.uploads_resumed,
        photo_check.uploads,
        checked.operations,
        checked.devices,
        tally.ok,
        tally.failed,
        tally.errors
    );
    let unacked: Vec<_> = photos.iter().filter(|p| !p.acknowledged).collect();
    assert!(unacked.is_empty(), "photos never uploaded: {unacked:?}");
    assert_eq!(
        photo_check.acknowledged,
        photos.len(),
        "a photo declared twice"
    );
    assert_eq!(photos.len(), checked.cases, "one photo per case");
    assert_eq!(
        rows,
        photos.len() as i64,
        "photo rows beyond the photos sent"
    );
    assert!(
        !tally.server_was_behind,
        "an acknowledged operation was lost"
    );
    assert!(counts.cut_responses > 0, "{counts}");
    assert!(counts.cut_requests > 0, "{counts}");
    assert!(counts.duplicated > 0, "{counts}");
    assert!(counts.dropped > 0, "{counts}");
}
