//! Scenario `console`: the supervisors' console over a million cases. The cases are seeded by
//! SQL as for `queue` (a year of them), the open period gets a ledger of chained entries (as
//! `ranking` writes them), and a supervisor signed in with a console session requests the
//! pages a working day is made of, over HTTP: the overview, the review queue (first page with
//! the default filter and with zone+state, and a deep page by cursor), case pages of cases
//! spread over the year, and the period's ranking. Server time per request (until the whole
//! page has arrived) is reported as p50/p95 against the console's 50 ms target. The page's own
//! scripts and styles are fetched as a browser fetches them (`Accept-Encoding: gzip`) and their
//! transferred sizes summed against the 200 KB budget.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gridline_server::model::PeriodStatus;
use gridline_server::store::{self, reference};

use super::seed;
use super::server::{Database, Server};
use super::{percentile_ms, Options, Report, Row};

/// The path of a page's `k`-th request.
type PathOf = Box<dyn Fn(usize) -> String>;

/// One signed-in console client.
struct Session {
    http: reqwest::Client,
    cookie: String,
}

impl Session {
    async fn sign_in(server: &Server, username: &str) -> anyhow::Result<Session> {
        let (http, cookie) = gridline_testkit::console_sign_in(&server.base, username).await?;
        Ok(Session { http, cookie })
    }

    /// The page at `path`: the time until its last byte, and its text.
    async fn page(&self, server: &Server, path: &str) -> anyhow::Result<(Duration, String)> {
        let start = Instant::now();
        let resp = self
            .http
            .get(server.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        let elapsed = start.elapsed();
        if !status.is_success() {
            bail!("{path} answered {status}: {}", &body[..body.len().min(300)]);
        }
        Ok((elapsed, body))
    }
}

/// The `href`s and `src`s of a page's own scripts and styles (`/console/assets/…`).
fn asset_urls(page: &str) -> Vec<String> {
    let mut out: Vec<String> = page
        .split("\"/console/assets/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| name.ends_with(".js") || name.ends_with(".css"))
        .map(|name| format!("/console/assets/{name}"))
        .collect();
    out.sort();
    out.dedup();
    out
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    for &backend in &opts.backends {
        let b = backend.name();
        let n = opts.queue_cases;
        eprintln!(
            "console on {b}: {n} cases, {} ledger entries",
            opts.console_entries
        );
        let dir = tempfile::tempdir()?;
        let db = Database::create(backend, opts, dir.path()).await?;
        let server = Server::start(&db, dir.path()).await?;
        let now = store::now_ms();
        let seeded = seed::cases(&server.state.db, backend, n, 365 * 24 * 3600 * 1000, now).await?;
        let period = reference::periods(&server.state.db.pool)
            .await?
            .into_iter()
            .find(|p| p.status == PeriodStatus::Open)
            .context("the demo period")?;
        let entries = opts.console_entries.min(n);
        let t = Instant::now();
        super::ranking::seed_entries(&server, &period, entries, now).await?;
        report.note(format!(
            "console {b}: {} cases seeded in {:.1} s; {entries} ledger entries in the open period in {:.1} s",
            seeded.cases,
            seeded.elapsed.as_secs_f64(),
            t.elapsed().as_secs_f64()
        ));

        let s = Session::sign_in(&server, "supervisor1").await?;
        let zone = *seeded.zones.get("Z03").context("zone Z03")?;
        // A deep page of the queue: follow the cursor as a supervisor paging on would.
        let mut deep = "/console/queue?state=any".to_owned();
        for _ in 1..opts.queue_deep_pages.min(20) {
            let (_, page) = s.page(&server, &deep).await?;
            let Some(next) = page
                .split("href=\"/console/queue?")
                .skip(1)
                .filter_map(|r| r.split('"').next())
                .find(|q| q.contains("after="))
            else {
                break;
            };
            deep = format!("/console/queue?{}", next.replace("&amp;", "&"));
        }
        let pages: Vec<(&str, PathOf)> = vec![
            ("overview", Box::new(|_| "/console".to_owned())),
            ("queue", Box::new(|_| "/console/queue".to_owned())),
            (
                "queue zone+state",
                Box::new(move |_| format!("/console/queue?zone_id={zone}&state=reported")),
            ),
            ("queue deep page", {
                let deep = deep.clone();
                Box::new(move |_| deep.clone())
            }),
            (
                "case page",
                Box::new(move |k| {
                    // Cases spread over the whole year, a different one each time.
                    let i = 1 + k.wrapping_mul(7919) % n;
                    format!("/console/cases/{}", seed::case_id(i))
                }),
            ),
            (
                "ranking",
                Box::new(move |_| format!("/console/periods/{}", period.id)),
            ),
        ];
        let deadline = Instant::now() + opts.deadline;
        let mut assets_page = String::new();
        for (name, path) in &pages {
            let mut times = Vec::new();
            // One untimed request first: the first use of a page fills the caches a server
            // that has been running all day would have warm.
            let (first_time, first) = s.page(&server, &path(opts.console_requests)).await?;
            // What that first request cost is reported too: for the ranking it is the
            // computation the later requests are spared (`ledger::rankings`).
            report.push(
                Row::new(
                    "console",
                    b,
                    &format!("{name} first request ms"),
                    first_time.as_secs_f64() * 1000.0,
                )
                .lower_is_better(),
            );
            if name == &"overview" {
                assets_page = first;
            }
            for k in 0..opts.console_requests {
                if Instant::now() > deadline {
                    bail!("the console requests passed the deadline");
                }
                let (t, _) = s.page(&server, &path(k)).await?;
                times.push(t);
            }
            let p95 = percentile_ms(&times, 95.0);
            let target = matches!(
                *name,
                "queue" | "queue zone+state" | "queue deep page" | "case page" | "ranking"
            );
            report.push(
                Row::new(
                    "console",
                    b,
                    &format!("{name} p50 ms"),
                    percentile_ms(&times, 50.0),
                )
                .lower_is_better(),
            );
            let row = Row::new("console", b, &format!("{name} p95 ms"), p95).lower_is_better();
            report.push(if target {
                row.target("< 50 ms", Some(p95 < 50.0))
            } else {
                row
            });
        }

        // The page's own scripts and styles, as a browser receives them.
        let mut total = 0usize;
        let mut sizes = Vec::new();
        for url in asset_urls(&assets_page) {
            let resp = s
                .http
                .get(server.url(&url))
                .header("accept-encoding", "gzip")
                .send()
                .await?;
            let encoding = resp
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_owned();
            let bytes = resp.bytes().await?.len();
            total += bytes;
            sizes.push(format!(
                "{} {bytes} B ({encoding})",
                url.rsplit('/').next().unwrap_or(&url)
            ));
        }
        if sizes.is_empty() {
            bail!("the overview names no script or style");
        }
        let kb = total as f64 / 1024.0;
        report.push(
            Row::new("console", b, "scripts+styles KB (gzip)", kb)
                .lower_is_better()
                .target("< 200 KB", Some(kb < 200.0)),
        );
        report.note(format!(
            "console {b}: {} requests per page after one untimed; assets: {}",
            opts.console_requests,
            sizes.join(", ")
        ));
        server.stop().await;
        db.drop_now().await;
    }
    Ok(())
}
