//! `gridline-bench`: Gridline's numbers next to the limit and a peer (BENCHMARKS.md).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gridline_bench::{self as bench, Backend, Options};

#[derive(Parser)]
#[command(
    name = "gridline-bench",
    about = "Benchmarks Gridline against the limit and a peer, on loopback"
)]
struct Args {
    /// `all`, or one scenario: push, pull, upload, derivatives, queue, ranking, console,
    /// notices, weaknet.
    #[arg(default_value = "all")]
    scenario: String,
    /// Small sizes: a smoke run of every code path in seconds.
    #[arg(long)]
    quick: bool,
    /// Databases, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    db: Vec<String>,
    /// Admin URL of a PostgreSQL server where the tool may create (and drops) databases.
    #[arg(
        long,
        env = "GRIDLINE_BENCH_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// The `pouchdb-server` script (bench/run.sh installs it); the peer is skipped without it.
    #[arg(long, env = "GRIDLINE_BENCH_PEER")]
    peer: Option<PathBuf>,
    /// push: phones, and operations queued on each.
    #[arg(long)]
    phones: Option<usize>,
    #[arg(long)]
    ops: Option<usize>,
    /// pull: records in the zone; incremental rounds.
    #[arg(long)]
    records: Option<usize>,
    #[arg(long)]
    rounds: Option<usize>,
    /// derivatives: runs of each side.
    #[arg(long)]
    iterations: Option<usize>,
    /// queue: cases seeded; timed requests per filter.
    #[arg(long)]
    cases: Option<usize>,
    #[arg(long)]
    requests: Option<usize>,
    /// ranking: ledger entries in the period.
    #[arg(long)]
    entries: Option<usize>,
    /// notices: notices in the burst.
    #[arg(long)]
    notices: Option<usize>,
    /// Give up on any scenario's load after this many seconds.
    #[arg(long)]
    deadline_secs: Option<u64>,
    /// upload, weaknet: bytes per photo (a JPEG of about this size).
    #[arg(long)]
    photo_bytes: Option<usize>,
    /// upload: photos for the MB/s figure, uploads at once, and uploads at once for the
    /// memory figure.
    #[arg(long)]
    uploads: Option<usize>,
    #[arg(long)]
    in_flight: Option<usize>,
    #[arg(long)]
    memory_in_flight: Option<usize>,
    /// weaknet: photos (the full size is 200: about two hours at 1 Mbit/s).
    #[arg(long)]
    photos: Option<usize>,
    /// weaknet: link rate, kbit/s, and packet loss, %.
    #[arg(long)]
    rate_kbit: Option<u32>,
    #[arg(long)]
    loss_pct: Option<u32>,
    /// weaknet: a disconnect every this many seconds, lasting this many.
    #[arg(long)]
    disconnect_every_secs: Option<f64>,
    #[arg(long)]
    disconnect_secs: Option<f64>,
    /// weaknet: loopback through a proxy (disconnects only, no rate or loss; no root needed)
    /// instead of the shaped link between network namespaces.
    #[arg(long)]
    weak_loopback: bool,
    /// weaknet: KiB per upload PATCH (default: the reference client's).
    #[arg(long)]
    chunk_kib: Option<u64>,
    /// The server binary the photo scenarios run as a process (default: `gridline-under-test`
    /// beside this tool).
    #[arg(long, env = "GRIDLINE_BENCH_SERVER")]
    server_bin: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut opts = if args.quick {
        Options::quick()
    } else {
        Options::full()
    };
    opts.backends = args
        .db
        .iter()
        .map(|d| match d.as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" => Ok(Backend::Postgres),
            other => Err(anyhow::anyhow!(
                "unknown database `{other}`; use sqlite, postgres"
            )),
        })
        .collect::<anyhow::Result<_>>()?;
    opts.postgres_url = args.postgres;
    opts.peer = args.peer;
    opts.phones = args.phones.unwrap_or(opts.phones);
    opts.ops_per_phone = args.ops.unwrap_or(opts.ops_per_phone);
    opts.records = args.records.unwrap_or(opts.records);
    opts.rounds = args.rounds.unwrap_or(opts.rounds);
    let p = &mut opts.photos;
    p.photo_bytes = args.photo_bytes.unwrap_or(p.photo_bytes);
    p.upload_photos = args.uploads.unwrap_or(p.upload_photos);
    p.in_flight = args.in_flight.unwrap_or(p.in_flight);
    p.memory_in_flight = args.memory_in_flight.unwrap_or(p.memory_in_flight);
    p.weak_photos = args.photos.unwrap_or(p.weak_photos);
    p.weak_rate_kbit = args.rate_kbit.unwrap_or(p.weak_rate_kbit);
    p.weak_loss_pct = args.loss_pct.unwrap_or(p.weak_loss_pct);
    if let Some(s) = args.disconnect_every_secs {
        p.weak_disconnect_every = Duration::from_secs_f64(s);
    }
    if let Some(s) = args.disconnect_secs {
        p.weak_disconnect_for = Duration::from_secs_f64(s);
    }
    if args.weak_loopback {
        p.weak_netns = false;
    }
    if let Some(k) = args.chunk_kib {
        p.weak_chunk = Some(k * 1024);
    }
    p.server_bin = args.server_bin;
    opts.photo_iterations = args.iterations.unwrap_or(opts.photo_iterations);
    opts.queue_cases = args.cases.unwrap_or(opts.queue_cases);
    opts.queue_requests = args.requests.unwrap_or(opts.queue_requests);
    opts.ledger_entries = args.entries.unwrap_or(opts.ledger_entries);
    opts.notices = args.notices.unwrap_or(opts.notices);
    if let Some(s) = args.deadline_secs {
        opts.deadline = Duration::from_secs(s);
    }
    let scenarios: Vec<&str> = if args.scenario == "all" {
        bench::SCENARIOS.to_vec()
    } else {
        vec![args.scenario.as_str()]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(bench::run(&scenarios, &opts))?;
    println!("{}", report.to_markdown());
    Ok(())
}
