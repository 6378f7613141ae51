//! Reliability: bad networks, crashes, dependency outages and malformed input lose nothing,
//! duplicate nothing and never answer 500.
//!
//! The helpers here are shared by the scenarios: [`SimPhone`] (the reference phone client over
//! HTTP, optionally with real photos to upload), and the checkers, which compare what the
//! clients saw acknowledged with what the server stored, straight from the database and the
//! blob store: [`check_exactly_once`] (sync operations), [`check_photos`] (uploads) and
//! [`check_ledger`] (deductions and the hash chain).

mod check_stored;
mod check_sync;
mod checkers;
mod crash;
mod dependencies;
mod logs;
mod malformed;
mod network;
mod notices;
mod phone;
mod supervisor;

use std::time::Duration;

use gridline_sync::client::RetryPolicy;

pub use check_stored::{check_ledger, check_photos, AckedApproval, ExpectedPhoto};
pub use check_sync::{check_exactly_once, ExpectedDevice};
pub use phone::{SimPhone, SyncTally};

/// A seed from `GRIDLINE_FAULT_SEED`, or a fresh one; printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("GRIDLINE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("{test}: seed {seed} (replay with GRIDLINE_FAULT_SEED={seed})");
    seed
}

/// Bytes per upload `PATCH`: the test photos take a few, so crashes and cuts meet uploads
/// part-way.
const UPLOAD_CHUNK: u64 = 8 * 1024;

/// Short backoff: these phones retry against a local server, not a city's 3G.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(300),
    }
}

/// Panics listing every problem, if any.
fn fail_on(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
