//! The benchmark tool (`gridline-bench`, BENCHMARKS.md) at smoke size, so it cannot rot: every
//! scenario runs end to end on tiny data. Timings are not asserted; CI machines vary.

use gridline_tests::bench::{self, Backend, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_at_smoke_size() {
    let mut opts = Options::quick();
    opts.backends = vec![Backend::Sqlite];
    if let Ok(url) = std::env::var("GRIDLINE_TEST_DATABASE_URL") {
        if !url.is_empty() {
            opts.backends.push(Backend::Postgres);
            opts.postgres_url = url;
        }
    }
    let report = bench::run(bench::SCENARIOS, &opts)
        .await
        .expect("bench run");
    for scenario in bench::SCENARIOS {
        for backend in &opts.backends {
            assert!(
                report.rows.iter().any(|r| r.scenario == *scenario
                    // `—`: a scenario without a database (derivatives).
                    && (r.backend == backend.name() || r.backend == "—")
                    && r.value.is_finite()),
                "no figure for {scenario} on {}",
                backend.name()
            );
        }
    }
    assert!(report.to_markdown().contains("| push |"));
}
