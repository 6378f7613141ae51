//! Rankings as the pages and exports read them, without recomputing one per request.
//!
//! A closed period's ranking is the one stored when it closed (`period_results`): the official
//! result, read rather than recomputed. An open period's ranking is computed from its ledger
//! entries and the indicators of its cases and events (see [`compute_ranking`]), which at a
//! busy site means tens of thousands of rows; it is kept in memory while the heads of the
//! ledger and of the change log stay where they were, and for at most [`FRESH_FOR`]. Every
//! write that can move a ranking advances one of those heads (`store::ledger::heads`), in
//! whichever instance made it, so a posted entry or a closed case shows on the next request;
//! the time limit covers what changes with no write at all, a deadline passing (the overdue
//! indicator).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::scoring::{self, Ranking};
use crate::error::ApiResult;
use crate::model::{Period, PeriodStatus};
use crate::store::{ledger as store, ms_from_time, now_ms, Db};

/// How long an open period's ranking is served without a write: the most a reader sees it
/// late when only the clock moved (a case's deadline passing).
pub const FRESH_FOR: Duration = Duration::from_secs(10);

/// The ranking of a period, computed from its ledger entries and its cases' indicators (what
/// [`Rankings::get`] keeps; closing a period stores it).
pub async fn compute_ranking(db: &Db, period: &Period) -> ApiResult<Ranking> {
    let mut conn = db.pool.acquire().await?;
    let starts = ms_from_time(period.starts_at);
    let ends = ms_from_time(period.ends_at);
    let cutoff = period.closed_at.map(ms_from_time).unwrap_or_else(now_ms);
    let as_of = cutoff.min(ends);
    let zones = store::zone_refs(&mut *conn).await?;
    let groups = store::scored_groups(&mut *conn, period.id).await?;
    let mut indicators = store::indicators(&mut conn, starts, as_of).await?;
    for (zone, (due, on_time, failed)) in
        crate::plans::zone_inspections(&mut conn, starts, as_of).await?
    {
        let slot = indicators.entry(zone).or_default();
        slot.inspections_due = due;
        slot.inspections_on_time = on_time;
        slot.items_failed = failed;
    }
    Ok(scoring::compute_grouped(
        &period.id.to_string(),
        &period.code,
        &zones,
        &groups,
        &indicators,
    ))
}

/// The rankings kept by this process, one per open period. Cheap to share (`Arc`).
#[derive(Default)]
pub struct Rankings {
    open: Mutex<HashMap<Uuid, Kept>>,
}

struct Kept {
    heads: (i64, i64),
    at: Instant,
    ranking: Arc<Ranking>,
}

impl Rankings {
    /// The ranking of `period` over every zone (callers narrow it to what a reader may see).
    pub async fn get(&self, db: &Db, period: &Period) -> ApiResult<Arc<Ranking>> {
        if period.status == PeriodStatus::Closed {
            if let Some(stored) = stored(db, period.id).await? {
                return Ok(Arc::new(stored));
            }
            // Closed but not yet stored: the close computes and stores it just after its
            // commit, and this request came in between.
            return Ok(Arc::new(compute_ranking(db, period).await?));
        }
        // The heads are read before computing: a write landing during the computation moves
        // them, and the next request recomputes.
        let heads = store::heads(&db.pool).await?;
        if let Some(kept) = self.lock().get(&period.id) {
            if kept.heads == heads && kept.at.elapsed() < FRESH_FOR {
                return Ok(kept.ranking.clone());
            }
        }
        let ranking = Arc::new(compute_ranking(db, period).await?);
        let mut open = self.lock();
        // Periods close and new ones open; forget those not asked for in a while.
        open.retain(|_, k| k.at.elapsed() < FRESH_FOR);
        open.insert(
            period.id,
            Kept {
                heads,
                at: Instant::now(),
                ranking: ranking.clone(),
            },
        );
        Ok(ranking)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Kept>> {
        // The map holds only finished values: a panic elsewhere cannot leave one half-made.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The ranking stored at the close. A body this build cannot read (written under another
/// formula's shape) is reported and the ranking recomputed, which then differs from the
/// stored one only if the formula did.
async fn stored(db: &Db, period: Uuid) -> ApiResult<Option<Ranking>> {
    let Some((version, body, _)) = store::result(&db.pool, period).await? else {
        return Ok(None);
    };
    match serde_json::from_str(&body) {
        Ok(ranking) => Ok(Some(ranking)),
        Err(e) => {
            tracing::warn!(%period, formula_version = %version, error = %e,
                "a stored ranking does not read as this build's ranking; recomputing it");
            Ok(None)
        }
    }
}
