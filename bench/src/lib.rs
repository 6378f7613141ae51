//! `gridline-bench`: the project's performance targets, each measured next to its reference in the same
//! run and reported as a ratio.
//!
//! Everything runs on loopback: the real server in-process (`gridline_server::run`) on a fresh
//! database (SQLite in a temporary folder, or a new PostgreSQL database), driven over HTTP by
//! simulated phones whose operations are signed before the clock starts. The peer (PouchDB
//! Server) runs as a child process when it is installed. Every load loop is bounded in count and
//! time. `BENCHMARKS.md` at the repository root holds a run's table and how to reproduce it.

pub mod console;
pub mod derivatives;
pub mod jpeg;
pub mod limit;
pub mod notices;
pub mod peer;
pub mod phones;
pub mod process;
pub mod pull;
pub mod push;
pub mod queue;
pub mod ranking;
pub mod report;
pub mod seed;
pub mod server;
pub mod upload;
pub mod weaknet;

use std::path::PathBuf;
use std::time::Duration;

pub use report::{Report, Row};

/// The scenarios, in the order of the results table in BENCHMARKS.md (`all` runs them in this order).
pub const SCENARIOS: &[&str] = &[
    "push",
    "pull",
    "upload",
    "derivatives",
    "queue",
    "ranking",
    "console",
    "notices",
    "weaknet",
];

/// Which database a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Sizes and services of a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub backends: Vec<Backend>,
    /// Admin URL of a PostgreSQL server where databases may be created.
    pub postgres_url: String,
    /// The `pouchdb-server` script, or `None` to skip the peer.
    pub peer: Option<PathBuf>,
    /// push: phones and operations queued on each.
    pub phones: usize,
    pub ops_per_phone: usize,
    /// pull: records in the zone, and incremental rounds of `changes_per_round` changes.
    pub records: usize,
    pub rounds: usize,
    pub changes_per_round: usize,
    /// derivatives: the photo's size, and how many times each side makes its derivatives.
    pub photo_size: (u32, u32),
    pub photo_iterations: usize,
    /// queue: cases seeded, timed requests per filter (half first pages, half deep pages),
    /// and how many pages of 50 deep the deep page is.
    pub queue_cases: usize,
    pub queue_requests: usize,
    pub queue_deep_pages: usize,
    /// ranking: ledger entries in the period, and timed runs.
    pub ledger_entries: usize,
    pub ranking_runs: usize,
    /// console: ledger entries in the open period (over `queue_cases` cases), and timed
    /// requests per page.
    pub console_entries: usize,
    pub console_requests: usize,
    /// notices: notices recorded in a burst and delivered to a webhook.
    pub notices: usize,
    /// Upper bound on any one scenario's load loop.
    pub deadline: Duration,
    /// upload and weaknet.
    pub photos: upload::PhotoOptions,
}

impl Options {
    /// The full sizes, those of the results table in BENCHMARKS.md.
    pub fn full() -> Options {
        Options {
            backends: vec![Backend::Sqlite, Backend::Postgres],
            postgres_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            peer: None,
            phones: 200,
            ops_per_phone: 500,
            records: 100_000,
            rounds: 100,
            changes_per_round: 100,
            photo_size: (4000, 3000),
            photo_iterations: 20,
            queue_cases: 1_000_000,
            queue_requests: 200,
            queue_deep_pages: 100,
            ledger_entries: 100_000,
            ranking_runs: 5,
            console_entries: 10_000,
            console_requests: 100,
            notices: 10_000,
            deadline: Duration::from_secs(600),
            photos: upload::PhotoOptions::full(),
        }
    }

    /// A smoke-sized run: every code path, tiny sizes, a few seconds.
    pub fn quick() -> Options {
        Options {
            phones: 4,
            ops_per_phone: 30,
            records: 200,
            rounds: 3,
            changes_per_round: 10,
            photo_size: (800, 600),
            photo_iterations: 1,
            queue_cases: 5_000,
            queue_requests: 4,
            queue_deep_pages: 2,
            ledger_entries: 300,
            ranking_runs: 1,
            console_entries: 300,
            console_requests: 3,
            notices: 200,
            deadline: Duration::from_secs(60),
            photos: upload::PhotoOptions::quick(),
            ..Options::full()
        }
    }
}

/// Runs `scenarios` (names from [`SCENARIOS`]) and returns the table.
pub async fn run(scenarios: &[&str], opts: &Options) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut peer = match &opts.peer {
        Some(script) => Some(peer::Peer::start(script).await?),
        None => {
            report.note("peer not measured (pouchdb-server not installed; see bench/run.sh)");
            None
        }
    };
    for name in scenarios {
        match *name {
            "push" => push::run(opts, peer.as_mut(), &mut report).await?,
            "pull" => pull::run(opts, peer.as_mut(), &mut report).await?,
            "upload" => upload::run(opts, &mut report).await?,
            "weaknet" => weaknet::run(opts, &mut report).await?,
            "derivatives" => derivatives::run(opts, &mut report).await?,
            "queue" => queue::run(opts, &mut report).await?,
            "ranking" => ranking::run(opts, &mut report).await?,
            "console" => console::run(opts, &mut report).await?,
            "notices" => notices::run(opts, &mut report).await?,
            other => anyhow::bail!(
                "unknown scenario `{other}`; use one of: all, {}",
                SCENARIOS.join(", ")
            ),
        }
    }
    if let Some(p) = peer {
        p.stop().await;
    }
    Ok(report)
}

/// Nearest-rank percentile of `samples` (seconds), in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&s, 50.0), 50.0);
        assert_eq!(percentile_ms(&s, 99.0), 99.0);
        assert_eq!(percentile_ms(&s[..1], 99.0), 1.0);
    }
}
