//! Scenario `ranking`: a period holding many ledger entries. The period's cases are seeded by
//! SQL ([`super::seed`]); the entries — deductions on those cases with the zone's coefficient,
//! a roster snapshot and the evidence hash, and every 33rd a reversal of an earlier one — are
//! chained with the server's own `ledger::chain::entry_hash` and written with
//! `store::insert_rows`, so they verify exactly as approved entries do. Then, timed: the
//! ranking as the ranking and close routes compute it (`ledger::rankings::compute_ranking`), and
//! the chain verification `gridline ledger verify` runs (`store::ledger::verify_chain`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gridline_server::ledger::chain::{self, Entry, GENESIS};
use gridline_server::model::{Milli, PeriodStatus};
use gridline_server::store::{self, insert_rows, reference, review, Val};
use gridline_sync::Role;

use super::seed;
use super::server::{Database, Server};
use super::{Options, Report, Row};

const ENTRY_COLUMNS: &[&str] = &[
    "seq",
    "id",
    "kind",
    "zone_id",
    "period_id",
    "rulebook_version",
    "rule_code",
    "source",
    "category_code",
    "work_category",
    "raw_points_milli",
    "coefficient_milli",
    "weighted_points_milli",
    "roster",
    "approved_by",
    "approved_at",
    "found_at",
    "case_id",
    "case_version",
    "evidence",
    "proposal_id",
    "reverses_id",
    "reason",
    "prev_hash",
    "hash",
];

fn row(e: &Entry) -> Vec<Val> {
    vec![
        e.seq.into(),
        e.id.clone().into(),
        e.kind.clone().into(),
        e.zone_id.clone().into(),
        e.period_id.clone().into(),
        e.rulebook_version.into(),
        e.rule_code.clone().into(),
        e.source.clone().into(),
        e.category_code.clone().into(),
        e.work_category.clone().into(),
        e.raw_points_milli.into(),
        e.coefficient_milli.into(),
        e.weighted_points_milli.into(),
        e.roster.clone().into(),
        e.approved_by.clone().into(),
        e.approved_at.into(),
        e.found_at.into(),
        e.case_id.clone().into(),
        e.case_version.into(),
        e.evidence.clone().into(),
        e.proposal_id.clone().into(),
        e.reverses_id.clone().into(),
        e.reason.clone().into(),
        e.prev_hash.clone().into(),
        e.hash.clone().into(),
    ]
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(f64::NAN, Duration::as_secs_f64)
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    for &backend in &opts.backends {
        let b = backend.name();
        let n = opts.ledger_entries;
        eprintln!("ranking on {b}: a period with {n} ledger entries");
        let dir = tempfile::tempdir()?;
        let db = Database::create(backend, opts, dir.path()).await?;
        let server = Server::start(&db, dir.path()).await?;
        let state = &server.state;
        let pool = &state.db.pool;
        let now = store::now_ms();
        let period = reference::periods(pool)
            .await?
            .into_iter()
            .find(|p| p.status == PeriodStatus::Open)
            .context("the demo period")?;
        let starts = store::ms_from_time(period.starts_at);
        // The period's cases, captured between its start and now.
        let seeded = seed::cases(&state.db, backend, n, (now - starts).max(1000), now).await?;

        let seed_start = Instant::now();
        let reversals = seed_entries(&server, &period, n, now).await?;
        report.note(format!(
            "ranking {b}: {} cases seeded in {:.1} s; {n} chained ledger entries ({} reversals) written in {:.1} s",
            seeded.cases,
            seeded.elapsed.as_secs_f64(),
            reversals,
            seed_start.elapsed().as_secs_f64()
        ));

        let (mut rank_t, mut verify_t, mut both_t) = (Vec::new(), Vec::new(), Vec::new());
        let deadline = Instant::now() + opts.deadline;
        for _ in 0..opts.ranking_runs {
            if Instant::now() > deadline {
                bail!("the ranking runs passed the deadline");
            }
            let t0 = Instant::now();
            let ranking = gridline_server::ledger::rankings::compute_ranking(&state.db, &period)
                .await
                .map_err(|e| anyhow::anyhow!("compute_ranking: {e:?}"))?;
            let t1 = Instant::now();
            let (checked, first_bad) = store::ledger::verify_chain(pool).await?;
            let t2 = Instant::now();
            let counted: i64 = ranking.zones.iter().map(|z| z.entries).sum();
            if counted != n as i64 {
                bail!("the ranking counted {counted} entries, not {n}");
            }
            if checked != n as i64 || first_bad.is_some() {
                bail!("the chain verified {checked} of {n} entries: {first_bad:?}");
            }
            rank_t.push(t1 - t0);
            verify_t.push(t2 - t1);
            both_t.push(t2 - t0);
        }
        let total = median(both_t);
        report.push(Row::new("ranking", b, "compute ranking s", median(rank_t)).lower_is_better());
        report.push(Row::new("ranking", b, "verify chain s", median(verify_t)).lower_is_better());
        report.push(
            Row::new("ranking", b, "ranking + verify s", total)
                .lower_is_better()
                .target("< 1 s", Some(total < 1.0)),
        );
        report.note(format!(
            "ranking {b}: medians of {} runs over {n} entries",
            opts.ranking_runs
        ));
        server.stop().await;
        db.drop_now().await;
    }
    Ok(())
}

/// Writes `n` chained ledger entries into `period`: deductions on seeded cases 1..=n (which
/// must exist) with their zone's coefficient, a roster snapshot and the evidence hash, every
/// 33rd a reversal of an earlier one, approved at even steps from the period's start to `now`.
/// Returns how many are reversals.
pub async fn seed_entries(
    server: &Server,
    period: &gridline_server::model::Period,
    n: usize,
    now: i64,
) -> anyhow::Result<usize> {
    let state = &server.state;
    let pool = &state.db.pool;
    let starts = store::ms_from_time(period.starts_at);
    let zone_ids: std::collections::HashMap<String, uuid::Uuid> = reference::zones(pool, None)
        .await?
        .into_iter()
        .map(|z| (z.code, z.id))
        .collect();
    let supervisor = store::users::by_username(pool, "supervisor1")
        .await?
        .context("supervisor1")?;
    let rulebook = reference::rulebooks(pool)
        .await?
        .into_iter()
        .next_back()
        .context("the demo rulebook")?;
    anyhow::ensure!(!rulebook.rules.is_empty(), "the demo rulebook has no rules");
    let coefficients = reference::coefficients(pool, period.id).await?;
    let taxonomy = reference::taxonomy(pool).await?;
    let mut zones = Vec::new();
    for z in 0..8 {
        let id = zone_ids[&format!("Z0{}", z + 1)];
        let coefficient = coefficients
            .iter()
            .find(|c| c.zone_id == id)
            .and_then(|c| Milli::from_f64(c.coefficient, 10.0))
            .context("a zone coefficient")?;
        let roster = review::roster_at(
            pool,
            id,
            &[Role::ZoneChief, Role::RoadChief, Role::SectionChief],
            false,
            now,
        )
        .await?;
        zones.push((id.to_string(), coefficient, serde_json::to_string(&roster)?));
    }
    let step = ((now - starts) / n.max(1) as i64).max(1);
    let mut entries: Vec<Entry> = Vec::with_capacity(n);
    let mut prev = GENESIS.to_owned();
    for seq in 1..=n {
        // Case `seq` is in zone `seq % 8` (see seed.rs).
        let (zone_id, coefficient, roster) = &zones[seq % 8];
        let rule = &rulebook.rules[seq % rulebook.rules.len()];
        let category = &taxonomy[(seq * 7) % taxonomy.len()];
        let mut e = if seq % 33 == 0 && seq > 100 {
            gridline_testkit::kit::reversal_of(
                &entries[seq - 101],
                "correction: the bin belongs to the market, not the zone",
            )
        } else {
            let raw = Milli::from_f64(rule.points, 1000.0).unwrap_or(1000);
            Entry {
                seq: 0,
                id: String::new(),
                kind: "deduction".into(),
                zone_id: zone_id.clone(),
                period_id: period.id.to_string(),
                rulebook_version: rulebook.version,
                rule_code: rule.code.clone(),
                source: rule
                    .sources
                    .first()
                    .map_or("inspection", |s| s.as_str())
                    .to_owned(),
                category_code: Some(category.key.clone()),
                work_category: Some(category.work_category.as_str().to_owned()),
                raw_points_milli: raw,
                coefficient_milli: *coefficient,
                weighted_points_milli: chain::weighted_milli(raw, *coefficient),
                roster: roster.clone(),
                approved_by: String::new(),
                approved_at: 0,
                found_at: now - (n - seq) as i64 * step - 600_000,
                case_id: Some(seed::case_id(seq).to_string()),
                case_version: Some(3),
                evidence: serde_json::to_string(&[seed::photo_sha(seq, 0)])?,
                proposal_id: Some(
                    uuid::Uuid::from_u128(0x0190_d000_0000_7000_8000_0000_0000_0000 | seq as u128)
                        .to_string(),
                ),
                reverses_id: None,
                reason: None,
                prev_hash: String::new(),
                hash: String::new(),
                proposed_by: None,
            }
        };
        e.seq = seq as i64;
        e.id = uuid::Uuid::from_u128(0x0190_c000_0000_7000_8000_0000_0000_0000 | seq as u128)
            .to_string();
        e.approved_by = supervisor.id.to_string();
        e.approved_at = now - (n - seq) as i64 * step;
        e.prev_hash = prev;
        e.hash = chain::entry_hash(&e);
        prev = e.hash.clone();
        entries.push(e);
    }
    for chunk in entries.chunks(10_000) {
        let rows: Vec<Vec<Val>> = chunk.iter().map(row).collect();
        let mut tx = state.db.begin_write().await?;
        insert_rows(tx.conn(), "ledger_entries", ENTRY_COLUMNS, &rows).await?;
        tx.commit().await?;
    }
    sqlx::query("UPDATE counters SET value = $1 WHERE name = 'ledger'")
        .bind(n as i64)
        .execute(pool)
        .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(entries.iter().filter(|e| e.kind == "reversal").count())
}
