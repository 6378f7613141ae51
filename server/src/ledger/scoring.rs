//! Zone scores and the ranking of a period: plain data in, plain data out.
//!
//! Formula `score-v1`: every zone starts at 100 points and loses the sum of the weighted points
//! of its ledger entries in the period (reversals carry negated points, so they give points
//! back). All arithmetic is in integer thousandths; the same ledger always gives the same
//! result, and [`compute`] sorts everything it returns, so its JSON is byte-identical too.
//!
//! Ranking: higher score first; equal scores share a rank (1, 2, 2, 4) and are listed by zone
//! code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::Milli;

pub const FORMULA_VERSION: &str = "score-v1";
pub const FORMULA: &str = "score = 100 - sum(weighted points of the zone's ledger entries in the \
                           period); weighted = raw x coefficient, in thousandths, rounded half away \
                           from zero; reversals count negated";
pub const BASE_MILLI: i64 = 100_000;

/// A zone as the ranking names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRef {
    pub id: String,
    pub code: String,
    pub name: String,
}

/// What scoring needs of one ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredEntry {
    pub zone_id: String,
    pub weighted_points_milli: i64,
    pub work_category: Option<String>,
    pub source: String,
    pub rule_code: String,
    pub is_reversal: bool,
}

/// Ledger entries of one zone that share a work category, source and rule, summed: what the
/// ranking query reads instead of every entry (see [`compute_grouped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredGroup {
    pub zone_id: String,
    pub work_category: Option<String>,
    pub source: String,
    pub rule_code: String,
    /// Sum of the entries' weighted points.
    pub weighted_points_milli: i64,
    pub entries: i64,
    /// Of those, reversals.
    pub reversals: i64,
}

/// The field's indicators for one zone and period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Indicators {
    /// Cases captured in the period.
    pub cases_found: i64,
    /// Of those, filed by a supervisor.
    pub filed: i64,
    /// Cases closed in the period.
    pub closed: i64,
    /// Of those, closed by their deadline.
    pub closed_on_time: i64,
    /// Rectifications sent back in the period.
    pub rework: i64,
    /// Cases whose deadline fell in the period and that were not rectified by it.
    pub overdue: i64,
    /// Callers of the zone's cases reached by a callback in the period (回访).
    #[serde(default)]
    pub callbacks: i64,
    /// Of those, satisfied or basically satisfied: with `callbacks`, the satisfaction rate.
    #[serde(default)]
    pub satisfied: i64,
    /// Reports from the public (hotline, public reports, transfers) received in the period.
    #[serde(default)]
    pub public_reports: i64,
    /// Of those, decided (filed or set aside) within `RESPONSE_WINDOW_MS` of their receipt:
    /// with `public_reports`, the response rate.
    #[serde(default)]
    pub responded_in_time: i64,
    /// Planned inspections of the zone whose window ended in the period: each occurrence of a
    /// plan naming the zone (an unannounced plan once revealed).
    #[serde(default)]
    pub inspections_due: i64,
    /// Of those, the ones a round was started for within the window.
    #[serde(default)]
    pub inspections_on_time: i64,
    /// Checklist items failed on the zone's planned rounds started in the period.
    #[serde(default)]
    pub items_failed: i64,
}

/// How soon a report from the public is to be decided (filed, or set aside as not filed or a
/// duplicate) to count as answered in time: one day, the hotlines' usual rule for a first
/// answer.
pub const RESPONSE_WINDOW_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BreakdownLine {
    pub key: String,
    pub weighted_points: f64,
    pub entries: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ZoneScore {
    pub rank: i64,
    pub zone_id: String,
    pub zone_code: String,
    pub zone_name: String,
    pub score: f64,
    /// Sum of weighted points (after reversals).
    pub deductions: f64,
    pub entries: i64,
    pub reversals: i64,
    pub by_work_category: Vec<BreakdownLine>,
    pub by_source: Vec<BreakdownLine>,
    pub by_rule: Vec<BreakdownLine>,
    pub indicators: Indicators,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ranking {
    pub period_id: String,
    pub period_code: String,
    pub formula_version: String,
    pub formula: String,
    pub zones: Vec<ZoneScore>,
}

fn lines(map: BTreeMap<String, (i64, i64)>) -> Vec<BreakdownLine> {
    map.into_iter()
        .map(|(key, (milli, n))| BreakdownLine {
            key,
            weighted_points: Milli::to_f64(milli),
            entries: n,
        })
        .collect()
}

#[derive(Default)]
struct Acc {
    total: i64,
    entries: i64,
    reversals: i64,
    by_wc: BTreeMap<String, (i64, i64)>,
    by_source: BTreeMap<String, (i64, i64)>,
    by_rule: BTreeMap<String, (i64, i64)>,
}

/// The zones' running sums; entries of zones not ranked are ignored.
struct Sums<'z>(BTreeMap<&'z str, Acc>);

impl<'z> Sums<'z> {
    fn new(zones: &'z [ZoneRef]) -> Self {
        Sums(
            zones
                .iter()
                .map(|z| (z.id.as_str(), Acc::default()))
                .collect(),
        )
    }

    /// Adds `entries` entries (`reversals` of them reversals) weighing `w` in total.
    fn add(
        &mut self,
        zone_id: &str,
        work_category: Option<&str>,
        source: &str,
        rule_code: &str,
        (w, entries, reversals): (i64, i64, i64),
    ) {
        let Some(a) = self.0.get_mut(zone_id) else {
            return;
        };
        a.total += w;
        a.entries += entries;
        a.reversals += reversals;
        let bump = |m: &mut BTreeMap<String, (i64, i64)>, k: &str| {
            let slot = m.entry(k.to_owned()).or_default();
            slot.0 += w;
            slot.1 += entries;
        };
        bump(&mut a.by_wc, work_category.unwrap_or("unclassified"));
        bump(&mut a.by_source, source);
        bump(&mut a.by_rule, rule_code);
    }

    fn rank(
        mut self,
        period_id: &str,
        period_code: &str,
        zones: &[ZoneRef],
        indicators: &BTreeMap<String, Indicators>,
    ) -> Ranking {
        let mut scored: Vec<(i64, &ZoneRef, Acc)> = zones
            .iter()
            .map(|z| {
                let a = self.0.remove(z.id.as_str()).unwrap_or_default();
                (BASE_MILLI - a.total, z, a)
            })
            .collect();
        scored.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.code.cmp(&y.1.code)));
        let mut out = Vec::with_capacity(scored.len());
        let mut rank = 0;
        let mut last = None;
        for (i, (score, z, a)) in scored.into_iter().enumerate() {
            if last != Some(score) {
                rank = i as i64 + 1;
                last = Some(score);
            }
            out.push(ZoneScore {
                rank,
                zone_id: z.id.clone(),
                zone_code: z.code.clone(),
                zone_name: z.name.clone(),
                score: Milli::to_f64(score),
                deductions: Milli::to_f64(a.total),
                entries: a.entries,
                reversals: a.reversals,
                by_work_category: lines(a.by_wc),
                by_source: lines(a.by_source),
                by_rule: lines(a.by_rule),
                indicators: indicators.get(&z.id).copied().unwrap_or_default(),
            });
        }
        Ranking {
            period_id: period_id.to_owned(),
            period_code: period_code.to_owned(),
            formula_version: FORMULA_VERSION.to_owned(),
            formula: FORMULA.to_owned(),
            zones: out,
        }
    }
}

/// Scores every zone in `zones` (a zone with no entries keeps 100) and ranks them. The
/// reference: [`compute_grouped`] must give the same ranking from the same ledger.
pub fn compute(
    period_id: &str,
    period_code: &str,
    zones: &[ZoneRef],
    entries: &[ScoredEntry],
    indicators: &BTreeMap<String, Indicators>,
) -> Ranking {
    let mut sums = Sums::new(zones);
    for e in entries {
        sums.add(
            &e.zone_id,
            e.work_category.as_deref(),
            &e.source,
            &e.rule_code,
            (e.weighted_points_milli, 1, i64::from(e.is_reversal)),
        );
    }
    sums.rank(period_id, period_code, zones, indicators)
}

/// [`compute`] from the entries already summed per zone, work category, source and rule.
pub fn compute_grouped(
    period_id: &str,
    period_code: &str,
    zones: &[ZoneRef],
    groups: &[ScoredGroup],
    indicators: &BTreeMap<String, Indicators>,
) -> Ranking {
    let mut sums = Sums::new(zones);
    for g in groups {
        sums.add(
            &g.zone_id,
            g.work_category.as_deref(),
            &g.source,
            &g.rule_code,
            (g.weighted_points_milli, g.entries, g.reversals),
        );
    }
    sums.rank(period_id, period_code, zones, indicators)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zone(i: usize) -> ZoneRef {
        ZoneRef {
            id: format!("id{i}"),
            code: format!("Z0{i}"),
            name: format!("Zone {i}"),
        }
    }

    fn entry(zone: usize, w: i64, rule: &str) -> ScoredEntry {
        ScoredEntry {
            zone_id: format!("id{zone}"),
            weighted_points_milli: w,
            // Unclassified entries, and a second source, in the breakdowns too.
            work_category: (rule != "C").then(|| "greening".into()),
            source: if w % 2 == 0 { "inspection" } else { "media" }.into(),
            rule_code: rule.into(),
            is_reversal: w < 0,
        }
    }

    #[test]
    fn scores_are_100_minus_weighted_and_ties_share_a_rank() {
        let zones = [zone(1), zone(2), zone(3), zone(4)];
        let entries = [
            entry(2, 210, "A"),
            entry(2, 500, "B"),
            entry(3, 710, "A"),
            entry(4, 300, "A"),
            entry(4, -300, "A"),
        ];
        let r = compute("p", "2026-01", &zones, &entries, &BTreeMap::new());
        let got: Vec<(i64, &str, f64)> = r
            .zones
            .iter()
            .map(|z| (z.rank, z.zone_code.as_str(), z.score))
            .collect();
        assert_eq!(
            got,
            [
                (1, "Z01", 100.0),
                (1, "Z04", 100.0),
                (3, "Z02", 99.29),
                (3, "Z03", 99.29)
            ]
        );
        let z2 = r.zones.iter().find(|z| z.zone_code == "Z02").unwrap();
        assert_eq!(z2.by_rule.len(), 2);
        assert_eq!(z2.by_rule[0].weighted_points, 0.21);
        let z4 = r.zones.iter().find(|z| z.zone_code == "Z04").unwrap();
        assert_eq!((z4.entries, z4.reversals), (2, 1));
    }

    proptest! {
        /// The result does not depend on the order the ledger and the zones come in.
        #[test]
        fn order_of_inputs_does_not_matter(
            ws in prop::collection::vec((0usize..5, -2000i64..2000, 0usize..3), 0..40),
            seed in any::<u64>(),
        ) {
            let zones: Vec<ZoneRef> = (0..5).map(zone).collect();
            let rules = ["A", "B", "C"];
            let entries: Vec<ScoredEntry> =
                ws.iter().map(|(z, w, r)| entry(*z, *w, rules[*r])).collect();
            let a = compute("p", "c", &zones, &entries, &BTreeMap::new());
            let mut shuffled = entries.clone();
            let mut zs = zones.clone();
            let n = shuffled.len().max(1);
            shuffled.rotate_left((seed as usize) % n);
            shuffled.reverse();
            zs.reverse();
            let b = compute("p", "c", &zs, &shuffled, &BTreeMap::new());
            prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
            // Summed per zone, work category, source and rule, the same ledger ranks the same.
            let mut groups: BTreeMap<(String, Option<String>, String, String), ScoredGroup> =
                BTreeMap::new();
            for e in &shuffled {
                let key = (
                    e.zone_id.clone(),
                    e.work_category.clone(),
                    e.source.clone(),
                    e.rule_code.clone(),
                );
                let g = groups.entry(key).or_insert_with(|| ScoredGroup {
                    zone_id: e.zone_id.clone(),
                    work_category: e.work_category.clone(),
                    source: e.source.clone(),
                    rule_code: e.rule_code.clone(),
                    weighted_points_milli: 0,
                    entries: 0,
                    reversals: 0,
                });
                g.weighted_points_milli += e.weighted_points_milli;
                g.entries += 1;
                g.reversals += i64::from(e.is_reversal);
            }
            let groups: Vec<ScoredGroup> = groups.into_values().collect();
            let c = compute_grouped("p", "c", &zones, &groups, &BTreeMap::new());
            prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&c).unwrap());
            let total: i64 = entries.iter().map(|e| e.weighted_points_milli).sum();
            let lost: i64 = a.zones.iter().map(|z| BASE_MILLI - (z.score * 1000.0).round() as i64).sum();
            prop_assert_eq!(total, lost);
        }
    }
}
