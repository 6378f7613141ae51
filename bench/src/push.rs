//! Scenario `push`: a fleet of phones pushes its queues at once; operations per second and batch
//! latency, next to the same rows written by plain batched INSERTs (the limit) and to the peer
//! storing one equivalent document per operation with `_bulk_docs`.

use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

use super::peer::Peer;
use super::phones::{self, FleetRun, SimPhone};
use super::server::{Database, Server};
use super::{limit, percentile_ms, Options, Report, Row};

const TARGET_OPS: f64 = 20_000.0;

pub async fn run(
    opts: &Options,
    mut peer: Option<&mut Peer>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let users: Vec<(String, usize)> = (1..=phones::INSPECTORS).map(phones::inspector).collect();
    let mut peer_run: Option<FleetRun> = None;
    for &backend in &opts.backends {
        eprintln!(
            "push on {}: {} phones × {} operations",
            backend.name(),
            opts.phones,
            opts.ops_per_phone
        );
        let dir = tempfile::tempdir()?;
        let db = Database::create(backend, opts, dir.path()).await?;
        let server = Server::start(&db, dir.path()).await?;
        let mut fleet = phones::enrol(&http, &server, &users, opts.phones).await?;
        let t = Instant::now();
        let batches = phones::prepare(&mut fleet, |p| p.queue_mixed(opts.ops_per_phone));
        let n_batches: usize = batches.iter().map(|b| b.1.len()).sum();
        eprintln!(
            "  {} operations signed in {:.1} s, {n_batches} batches",
            opts.phones * opts.ops_per_phone,
            t.elapsed().as_secs_f64()
        );
        let changes_before = gridline_server::store::changes::head(&server.state.db.pool).await?;

        // The limit writes into a copy of the database as it is now, before the push.
        server.stop().await;
        let snap_dir = tempfile::tempdir()?;
        let snapshot = db.snapshot(snap_dir.path()).await?;
        let server = Server::start(&db, dir.path()).await?;

        let run = phones::push_fleet(&http, &server, batches, opts.deadline).await?;
        let ops_per_s = run.ops as f64 / run.elapsed.as_secs_f64();

        let devices: Vec<String> = fleet.iter().map(|p| p.device_id.to_string()).collect();
        let (rows, row_count) =
            limit::rows_written(&server.state.db.pool, backend, &devices, changes_before).await?;
        let connections = server.state.config.database_max_connections;
        server.stop().await;
        let lim = limit::write(&snapshot, connections, rows)
            .await
            .context("the limit")?;
        let lim_ops = run.ops as f64 / lim.elapsed.as_secs_f64();
        snapshot.drop_now().await;
        db.drop_now().await;

        if peer_run.is_none() {
            if let Some(p) = peer.as_deref_mut() {
                peer_run = Some(peer_push(p, &fleet, opts).await.context("the peer push")?);
            }
        }
        let peer_ops = peer_run
            .as_ref()
            .map(|r| r.ops as f64 / r.elapsed.as_secs_f64());

        let b = backend.name();
        report.push(
            Row::new("push", b, "ops/s", ops_per_s)
                .reference(
                    "limit: plain batched INSERT of the same rows",
                    Some(lim_ops),
                )
                .target("≥ 0.50× limit", Some(ops_per_s >= 0.5 * lim_ops)),
        );
        report.push(
            Row::new("push", b, "ops/s", ops_per_s)
                .reference("peer: PouchDB Server _bulk_docs", peer_ops)
                .target("≥ 4× peer", peer_ops.map(|p| ops_per_s >= 4.0 * p)),
        );
        if backend == super::Backend::Postgres {
            report.push(
                Row::new("push", b, "ops/s", ops_per_s)
                    .target("≥ 20,000 ops/s", Some(ops_per_s >= TARGET_OPS)),
            );
        }
        for (label, p) in [("p50", 50.0), ("p99", 99.0)] {
            report.push(
                Row::new(
                    "push",
                    b,
                    &format!("batch {label} ms"),
                    percentile_ms(&run.latencies, p),
                )
                .reference(
                    &format!("limit: batch transaction {label}"),
                    Some(percentile_ms(&lim.latencies, p)),
                )
                .lower_is_better(),
            );
            report.push(
                Row::new(
                    "push",
                    b,
                    &format!("batch {label} ms"),
                    percentile_ms(&run.latencies, p),
                )
                .reference(
                    &format!("peer: _bulk_docs {label}"),
                    peer_run.as_ref().map(|r| percentile_ms(&r.latencies, p)),
                )
                .lower_is_better(),
            );
        }
        report.note(format!(
            "push {b}: {} operations in {} batches ({:.1} MB of request bodies) took {:.2} s; {} retried after 429/503; \
             the limit wrote the {row_count} rows they produced in {:.2} s",
            run.ops, run.latencies.len(), run.request_bytes as f64 / 1e6, run.elapsed.as_secs_f64(), run.retries,
            lim.elapsed.as_secs_f64()
        ));
    }
    if let Some(r) = &peer_run {
        report.note(format!(
            "push peer: {} documents in {} _bulk_docs requests took {:.2} s",
            r.ops,
            r.latencies.len(),
            r.elapsed.as_secs_f64()
        ));
    }
    Ok(())
}

/// The peer stores one document per operation (the operation's type, device, sequence and
/// payload), in the same batches, all phones at once, into one database.
async fn peer_push(peer: &Peer, fleet: &[SimPhone], opts: &Options) -> anyhow::Result<FleetRun> {
    const DB: &str = "bench_push";
    peer.fresh_db(DB).await?;
    let mut bodies: Vec<Vec<(usize, Vec<u8>)>> = Vec::new();
    for phone in fleet {
        let mut mine = Vec::new();
        for (i, chunk) in phone
            .payloads
            .chunks(gridline_sync::MAX_BATCH_OPS)
            .enumerate()
        {
            let docs: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(k, (op_id, op_type, payload))| {
                    json!({"_id": op_id.to_string(), "type": op_type, "device_id": phone.device_id,
                           "seq": i * gridline_sync::MAX_BATCH_OPS + k + 1, "payload": payload})
                })
                .collect();
            mine.push((docs.len(), serde_json::to_vec(&json!({"docs": docs}))?));
        }
        bodies.push(mine);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mine in bodies {
        let (http, url) = (peer.http.clone(), peer.url(&format!("/{DB}/_bulk_docs")));
        tasks.spawn(async move {
            let mut run = FleetRun::default();
            for (count, body) in mine {
                let t = Instant::now();
                super::peer::post_bulk_docs(&http, &url, body, count).await?;
                run.latencies.push(t.elapsed());
                run.ops += count;
            }
            anyhow::Ok(run)
        });
    }
    let mut total = FleetRun::default();
    let collect = async {
        while let Some(done) = tasks.join_next().await {
            let r = done??;
            total.ops += r.ops;
            total.latencies.extend(r.latencies);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(opts.deadline, collect)
        .await
        .context("peer push deadline")??;
    total.elapsed = start.elapsed();
    Ok(total)
}
