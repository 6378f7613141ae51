//! Scenario `pull`: a phone's first sync of a zone holding many records (seconds and bytes),
//! then incremental pulls after a batch of changes each (latency percentiles), next to the
//! peer's `_changes` (with the documents) on the same data.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gridline_sync::{Change, PullResponse};
use serde_json::{json, Value};

use super::peer::Peer;
use super::phones::{self, SimPhone};
use super::server::{Database, Server};
use super::{percentile_ms, Options, Report, Row};

const PAGE: usize = gridline_sync::MAX_PULL_LIMIT as usize;

/// What one pull from a cursor until `has_more` is false took.
struct PullRun {
    elapsed: Duration,
    bytes: usize,
    /// Changes, and case upserts among them.
    changes: usize,
    cases: usize,
    /// The pages as received, when asked to keep them (for the peer's copy of the cases).
    /// A phone stores each page and lets it go: the run does not hold every parsed change in
    /// memory, whose growing heap slowed every later page (allocator, page faults).
    pages: Vec<bytes::Bytes>,
    cursor: String,
}

impl PullRun {
    /// The cases the pages brought, as (id, data).
    fn case_docs(&self) -> anyhow::Result<Vec<(String, Value)>> {
        let mut out = Vec::with_capacity(self.cases);
        for bytes in &self.pages {
            let page: PullResponse = serde_json::from_slice(bytes)?;
            out.extend(page.changes.into_iter().filter_map(|c| match c {
                Change::Upsert {
                    entity: gridline_sync::EntityKind::Case,
                    id,
                    data,
                    ..
                } => Some((id, data.to_value())),
                _ => None,
            }));
        }
        Ok(out)
    }
}

async fn pull_all(
    http: &reqwest::Client,
    server: &Server,
    phone: &SimPhone,
    cursor: Option<String>,
    max_pages: usize,
    keep_pages: bool,
) -> anyhow::Result<PullRun> {
    let start = Instant::now();
    let mut run = PullRun {
        elapsed: Duration::ZERO,
        bytes: 0,
        changes: 0,
        cases: 0,
        pages: Vec::new(),
        cursor: cursor.unwrap_or_default(),
    };
    for _ in 0..max_pages {
        // As the reference client asks: with its inbox and its plans (the caller's own rows,
        // one more range of the change log read beside the zone's).
        let mut q = vec![
            ("protocol", "1".to_owned()),
            ("limit", PAGE.to_string()),
            ("inbox", "true".to_owned()),
            ("plans", "true".to_owned()),
        ];
        if !run.cursor.is_empty() {
            q.push(("cursor", run.cursor.clone()));
        }
        let resp = http
            .get(server.url("/v1/sync/pull"))
            .bearer_auth(&phone.token)
            .query(&q)
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            bail!(
                "pull answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        run.bytes += bytes.len();
        let page: PullResponse = serde_json::from_slice(&bytes)?;
        run.changes += page.changes.len();
        run.cases += page
            .changes
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Change::Upsert {
                        entity: gridline_sync::EntityKind::Case,
                        ..
                    }
                )
            })
            .count();
        run.cursor = page.cursor;
        if keep_pages {
            run.pages.push(bytes);
        }
        if !page.has_more {
            run.elapsed = start.elapsed();
            return Ok(run);
        }
    }
    bail!("the pull did not finish within {max_pages} pages")
}

pub async fn run(
    opts: &Options,
    mut peer: Option<&mut Peer>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    // The two inspectors of zone Z01 fill it; a third device of theirs pulls it.
    let users: Vec<(String, usize)> = (1..=2).map(phones::inspector).collect();
    let mut peer_figures: Option<PeerPull> = None;
    for &backend in &opts.backends {
        let b = backend.name();
        eprintln!("pull on {b}: a zone with {} records", opts.records);
        let dir = tempfile::tempdir()?;
        let db = Database::create(backend, opts, dir.path()).await?;
        let server = Server::start(&db, dir.path()).await?;
        let seeders = opts
            .records
            .div_ceil(gridline_sync::MAX_BATCH_OPS)
            .clamp(1, 200);
        let mut fleet = phones::enrol(&http, &server, &users, seeders + 1).await?;
        let puller = fleet.pop().context("a puller")?;
        let per_phone = opts.records.div_ceil(seeders);
        let batches = phones::prepare(&mut fleet, |p| {
            for _ in 0..per_phone {
                p.queue_create();
            }
        });
        let seeded = phones::push_fleet(&http, &server, batches, opts.deadline).await?;
        report.note(format!(
            "pull {b}: the zone was filled with {} case creations by push in {:.1} s",
            seeded.ops,
            seeded.elapsed.as_secs_f64()
        ));

        let max_pages = opts.records / PAGE + 100;
        let for_peer = peer.is_some() && peer_figures.is_none();
        let first = pull_all(&http, &server, &puller, None, max_pages, for_peer).await?;
        if first.cases < opts.records {
            bail!(
                "the first sync brought {} cases, not {}",
                first.cases,
                opts.records
            );
        }

        let editor = &mut fleet[0];
        let mut cursor = first.cursor.clone();
        let mut latencies = Vec::new();
        let deadline = Instant::now() + opts.deadline;
        for round in 0..opts.rounds {
            if Instant::now() > deadline {
                bail!("incremental pulls passed the deadline after {round} rounds");
            }
            for k in 0..opts.changes_per_round {
                editor.queue_edit_of(round * opts.changes_per_round + k);
            }
            let batch = vec![(editor.token.clone(), editor.take_batches())];
            phones::push_fleet(&http, &server, batch, opts.deadline).await?;
            let inc = pull_all(&http, &server, &puller, Some(cursor), 100, false).await?;
            if inc.changes < opts.changes_per_round.min(editor.cases.len()) {
                bail!(
                    "an incremental pull brought {} changes, not {}",
                    inc.changes,
                    opts.changes_per_round
                );
            }
            latencies.push(inc.elapsed);
            cursor = inc.cursor;
        }
        server.stop().await;
        db.drop_now().await;

        if peer_figures.is_none() {
            if let Some(p) = peer.as_deref_mut() {
                let cases = first.case_docs()?;
                peer_figures = Some(peer_pull(p, &cases, opts).await.context("the peer pull")?);
            }
        }
        let pf = peer_figures.as_ref();
        report.push(
            Row::new("pull", b, "first sync s", first.elapsed.as_secs_f64())
                .reference(
                    "peer: _changes?include_docs",
                    pf.map(|p| p.first.as_secs_f64()),
                )
                .lower_is_better()
                .target("< 3 s", Some(first.elapsed.as_secs_f64() < 3.0)),
        );
        report.push(
            Row::new("pull", b, "first sync MB", first.bytes as f64 / 1e6)
                .reference(
                    "peer: _changes?include_docs",
                    pf.map(|p| p.first_bytes as f64 / 1e6),
                )
                .lower_is_better(),
        );
        let p99 = percentile_ms(&latencies, 99.0);
        report.push(
            Row::new(
                "pull",
                b,
                &format!("incremental p50 ms ({} changes)", opts.changes_per_round),
                percentile_ms(&latencies, 50.0),
            )
            .reference(
                "peer: _changes since",
                pf.map(|p| percentile_ms(&p.incremental, 50.0)),
            )
            .lower_is_better(),
        );
        report.push(
            Row::new(
                "pull",
                b,
                &format!("incremental p99 ms ({} changes)", opts.changes_per_round),
                p99,
            )
            .reference(
                "peer: _changes since",
                pf.map(|p| percentile_ms(&p.incremental, 99.0)),
            )
            .lower_is_better()
            .target("< 20 ms", Some(p99 < 20.0)),
        );
        report.note(format!(
            "pull {b}: first sync brought {} changes ({} cases) in {} pages of ≤ {PAGE}; {} incremental rounds",
            first.changes, first.cases, max_pages.min(first.changes / PAGE + 1), latencies.len()
        ));
    }
    Ok(())
}

struct PeerPull {
    first: Duration,
    first_bytes: usize,
    incremental: Vec<Duration>,
}

/// The same case documents in the peer, read with `_changes?include_docs=true` in pages of the
/// same size; then rounds of the same number of document updates, each followed by a
/// `_changes` from the last sequence.
async fn peer_pull(
    peer: &Peer,
    cases: &[(String, Value)],
    opts: &Options,
) -> anyhow::Result<PeerPull> {
    const DB: &str = "bench_pull";
    peer.fresh_db(DB).await?;
    let mut revs: HashMap<String, String> = HashMap::new();
    for chunk in cases.chunks(PAGE) {
        let docs: Vec<Value> = chunk
            .iter()
            .map(|(id, data)| {
                let mut d = data.clone();
                d["_id"] = json!(id);
                d
            })
            .collect();
        let results = peer
            .bulk_docs(DB, serde_json::to_vec(&json!({"docs": docs}))?, docs.len())
            .await?;
        for r in results.as_array().into_iter().flatten() {
            if let (Some(id), Some(rev)) = (r["id"].as_str(), r["rev"].as_str()) {
                revs.insert(id.to_owned(), rev.to_owned());
            }
        }
    }
    let max_pages = cases.len() / PAGE + 100;
    let read_all = |since: Value| async move {
        let start = Instant::now();
        let (mut since, mut bytes, mut n) = (since, 0, 0);
        for _ in 0..max_pages {
            let (b, page) = peer.changes(DB, &since, PAGE).await?;
            bytes += b;
            let got = page["results"].as_array().map(Vec::len).unwrap_or(0);
            n += got;
            since = page["last_seq"].clone();
            if got < PAGE {
                return anyhow::Ok((start.elapsed(), bytes, n, since));
            }
        }
        bail!("peer _changes did not finish within {max_pages} pages")
    };
    let (first, first_bytes, n, mut since) = read_all(json!(0)).await?;
    anyhow::ensure!(
        n >= cases.len(),
        "peer _changes brought {n} of {} documents",
        cases.len()
    );
    let mut incremental = Vec::new();
    for round in 0..opts.rounds {
        let docs: Vec<Value> = (0..opts.changes_per_round)
            .map(|k| {
                let (id, data) = &cases[(round * opts.changes_per_round + k) % cases.len()];
                let mut d = data.clone();
                d["_id"] = json!(id);
                d["_rev"] = json!(revs[id]);
                d["description"] = json!(format!("Still there at round {round}"));
                d
            })
            .collect();
        let results = peer
            .bulk_docs(DB, serde_json::to_vec(&json!({"docs": docs}))?, docs.len())
            .await?;
        for r in results.as_array().into_iter().flatten() {
            if let (Some(id), Some(rev)) = (r["id"].as_str(), r["rev"].as_str()) {
                revs.insert(id.to_owned(), rev.to_owned());
            }
        }
        let (t, _, got, next) = read_all(since).await?;
        anyhow::ensure!(
            got >= docs.len().min(cases.len()),
            "peer incremental brought {got}"
        );
        incremental.push(t);
        since = next;
    }
    Ok(PeerPull {
        first,
        first_bytes,
        incremental,
    })
}
