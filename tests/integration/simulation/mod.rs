//! The simulation: inspectors in three zones and two supervisors, each a real reference
//! [`Client`] with its own SQLite outbox, capture and edit the same cases offline while the
//! network drops requests, drops responses after the server acted, duplicates requests and holds
//! batches back behind other devices' syncs. Then the network heals, everything syncs, and the
//! server and every phone must agree:
//!
//! - every captured operation was applied exactly once, or visibly rejected, or applied with a
//!   recorded conflict that keeps both values;
//! - the server's event log of every case accounts for each version exactly once, and every
//!   event is claimed by the one operation that caused it;
//! - every field holds the value of the last operation that wrote it;
//! - each phone's mirror equals the server's view of its scope.
//!
//! Seeds come from proptest; a failure names the seed. Replay one with `GRIDLINE_SIM_SEED=<n>`;
//! change how many run with `GRIDLINE_SIM_CASES=<n>`.

mod check;
mod device;
mod network;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gridline_testkit::{Db, TestApp};
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use check::check;
use device::{act, enrol};
use network::Network;

const CATEGORIES: &[&str] = &["event:0102", "event:0103", "event:0501"];
const STEPS: usize = 60;

#[test]
fn simulation_on_sqlite() {
    run_seeds(Db::Sqlite, 24);
}

#[test]
fn simulation_on_postgres() {
    if gridline_testkit::postgres_admin_url().is_none() {
        return;
    }
    run_seeds(Db::Postgres, 6);
}

fn run_seeds(db: Db, default_cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(seed) = std::env::var("GRIDLINE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        runtime.block_on(simulate(db, seed));
        return;
    }
    let cases = std::env::var("GRIDLINE_SIM_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        // A seed is not made smaller by shrinking it: report the first failure as it is.
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::prelude::any::<u64>(), |seed| {
            runtime.block_on(simulate(db, seed));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("simulation on {db:?} failed: {e}"));
}

async fn simulate(db: Db, seed: u64) {
    let Some(app) = TestApp::on(db).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Arc::new(Network::default());
    let names = [
        "inspector1",
        "inspector2",
        "inspector3",
        "inspector4",
        "inspector5",
        "inspector6",
        "supervisor1",
        "supervisor2",
    ];
    let mut devices = Vec::new();
    for (i, name) in names.iter().enumerate() {
        devices.push(enrol(&app, dir.path(), &net, seed, i, name).await);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut everyone: Vec<(Uuid, usize)> = Vec::new();

    net.faults.store(true, Ordering::SeqCst);
    for _ in 0..STEPS {
        let i = rng.gen_range(0..devices.len());
        match rng.gen_range(0..100) {
            0..=7 => net.deliver_delayed(&mut rng).await,
            8..=24 => devices[i].sync().await,
            25..=34 => {
                // Two phones sync at the same moment.
                let j = (i + rng.gen_range(1..devices.len())) % devices.len();
                tokio::join!(devices[i].sync(), devices[j].sync());
            }
            _ => {
                if let Some(created) = act(&mut devices[i], &mut rng, &everyone).await {
                    everyone.push(created);
                }
            }
        }
    }

    // The network heals: late requests land, then everyone syncs until the queues are empty,
    // then everyone pulls once more so each sees the others' last pushes.
    net.faults.store(false, Ordering::SeqCst);
    net.deliver_delayed(&mut rng).await;
    for d in &devices {
        let report = d
            .client
            .sync()
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {} final sync: {e}", d.username));
        let status = d.client.status().await.expect("status");
        assert_eq!(status.pending, 0, "seed {seed}: {} {report:?}", d.username);
    }
    for d in &devices {
        d.client
            .pull()
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {} final pull: {e}", d.username));
    }

    let errors = net.server_errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "seed {seed}: the server failed: {errors:?}"
    );
    check(&app, &devices, seed).await;
    eprintln!(
        "seed {seed}: faults {:?}",
        net.injected.lock().unwrap().clone()
    );
    app.stop().await;
}
