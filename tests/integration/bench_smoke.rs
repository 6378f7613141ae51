//! The benchmark tool (`gridline-bench`, BENCHMARKS.md) at smoke size, so it cannot rot: every
//! scenario runs end to end on tiny data. Timings are not asserted; CI machines vary.

use gridline_bench::{self as bench, Backend, Options};

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
    // upload and weaknet run the server as a process. weaknet runs on loopback here (no root
    // needed): disconnects through the fault proxy, no rate limit, no loss.
    opts.photos.server_bin = Some(env!("CARGO_BIN_EXE_gridline-under-test").into());
    let report = bench::run(bench::SCENARIOS, &opts)
        .await
        .expect("bench run");
    for scenario in bench::SCENARIOS {
        // Skipped (with a note) only when Garage is missing and services are not required.
        if report
            .notes
            .iter()
            .any(|n| n.starts_with(&format!("{scenario}: not measured")))
        {
            continue;
        }
        for backend in &opts.backends {
            // weaknet's server always runs on SQLite (the link is what it measures).
            if *scenario == "weaknet" && *backend != Backend::Sqlite {
                continue;
            }
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
