//! Scenario `queue`: the review queue over a million cases. The cases are seeded by direct SQL
//! ([`super::seed`]), then a supervisor calls `GET /v1/review/queue` over HTTP with five filter
//! combinations, each on its first page and on a deep page reached by following the keyset
//! cursor, and the latencies are reported as p50/p99 per filter and overall.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::seed::{self, Seeded};
use super::server::{Database, Server};
use super::{percentile_ms, Options, Report, Row};

/// Items per page (the endpoint's default).
const PAGE: usize = 50;

/// Query-string pairs of one filter.
type Query = Vec<(String, String)>;

/// The five filter combinations, named.
fn filters(seeded: &Seeded) -> anyhow::Result<Vec<(&'static str, Query)>> {
    let q = |pairs: &[(&str, &str)]| -> Query {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let zone = seeded.zones.get("Z03").context("zone Z03")?.to_string();
    let category = seeded.categories.get(3).context("a category")?.clone();
    Ok(vec![
        (
            "zone+state",
            q(&[("zone_id", &zone), ("state", "reported")]),
        ),
        ("category", q(&[("category", &category)])),
        (
            "overdue",
            q(&[("state", "dispatched,in_progress"), ("overdue", "true")]),
        ),
        (
            "source+evidence",
            q(&[("source", seed::SOURCE), ("evidence", "complete")]),
        ),
        ("flag", q(&[("flag", seed::FLAG)])),
    ])
}

async fn get_page(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    query: &[(String, String)],
    limit: usize,
    after: Option<&str>,
) -> anyhow::Result<(Duration, usize, Option<String>)> {
    let mut q: Vec<(String, String)> = query.to_vec();
    q.push(("limit".into(), limit.to_string()));
    if let Some(a) = after {
        q.push(("after".into(), a.to_owned()));
    }
    let start = Instant::now();
    let resp = http
        .get(server.url("/v1/review/queue"))
        .bearer_auth(token)
        .query(&q)
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    let elapsed = start.elapsed();
    if !status.is_success() {
        bail!(
            "queue answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let page: Value = serde_json::from_slice(&body)?;
    let items = page["items"].as_array().map(Vec::len).unwrap_or(0);
    Ok((elapsed, items, page["next"].as_str().map(str::to_owned)))
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for &backend in &opts.backends {
        let b = backend.name();
        eprintln!("queue on {b}: {} cases", opts.queue_cases);
        let dir = tempfile::tempdir()?;
        let db = Database::create(backend, opts, dir.path()).await?;
        let server = Server::start(&db, dir.path()).await?;
        let now = gridline_server::store::now_ms();
        let seeded = seed::cases(
            &server.state.db,
            backend,
            opts.queue_cases,
            365 * 24 * 3600 * 1000,
            now,
        )
        .await?;
        report.note(format!(
            "queue {b}: {} cases (1.2 declared photos each, 93 % of them verified; a creation event each) seeded by SQL and analysed in {:.1} s",
            seeded.cases,
            seeded.elapsed.as_secs_f64()
        ));
        let login: Value = http
            .post(server.url("/v1/auth/login"))
            .json(&json!({"username": "supervisor1", "password": gridline_server::demo::DEMO_PASSWORD}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = login["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned();

        let mut all = Vec::new();
        let deadline = Instant::now() + opts.deadline;
        for (name, query) in filters(&seeded)? {
            // Walk to a deep page with the cursor, as a supervisor paging on would.
            let (_, first_items, mut next) =
                get_page(&http, &server, &token, &query, PAGE, None).await?;
            if first_items == 0 {
                bail!("the {name} filter matched no case");
            }
            // `deep`: the cursor of the deepest page reached, and how many items come before it.
            let mut deep: Option<String> = None;
            let (mut depth, mut walked) = (0, first_items);
            for _ in 1..opts.queue_deep_pages {
                let Some(cursor) = next.take() else { break };
                let (_, n, after) =
                    get_page(&http, &server, &token, &query, PAGE, Some(&cursor)).await?;
                (deep, depth) = (Some(cursor), walked);
                walked += n;
                next = after;
            }
            let mut first = Vec::new();
            let mut deep_t = Vec::new();
            for k in 0..opts.queue_requests {
                if Instant::now() > deadline {
                    bail!("the queue requests passed the deadline");
                }
                let after = deep.as_deref().filter(|_| k % 2 == 1);
                let (t, n, _) = get_page(&http, &server, &token, &query, PAGE, after).await?;
                if n == 0 {
                    bail!("a {name} page came back empty");
                }
                if after.is_some() {
                    deep_t.push(t);
                } else {
                    first.push(t);
                }
            }
            let both: Vec<Duration> = first.iter().chain(&deep_t).copied().collect();
            let p99 = percentile_ms(&both, 99.0);
            report.push(
                Row::new(
                    "queue",
                    b,
                    &format!("{name} p50 ms"),
                    percentile_ms(&both, 50.0),
                )
                .lower_is_better(),
            );
            report.push(
                Row::new("queue", b, &format!("{name} p99 ms"), p99)
                    .lower_is_better()
                    .target("< 50 ms", Some(p99 < 50.0)),
            );
            let deep_text = if deep_t.is_empty() {
                "no deep page (the filter has one page)".to_owned()
            } else {
                format!(
                    "deep page (after {depth} items) p50 {:.1} / p99 {:.1} ms",
                    percentile_ms(&deep_t, 50.0),
                    percentile_ms(&deep_t, 99.0)
                )
            };
            report.note(format!(
                "queue {b} {name}: first page p50 {:.1} / p99 {:.1} ms, {deep_text}, {} requests",
                percentile_ms(&first, 50.0),
                percentile_ms(&first, 99.0),
                both.len()
            ));
            all.extend(both);
        }
        let p99 = percentile_ms(&all, 99.0);
        report.push(
            Row::new("queue", b, "all filters p50 ms", percentile_ms(&all, 50.0)).lower_is_better(),
        );
        report.push(
            Row::new("queue", b, "all filters p99 ms", p99)
                .lower_is_better()
                .target("< 50 ms", Some(p99 < 50.0)),
        );
        server.stop().await;
        db.drop_now().await;
    }
    Ok(())
}
