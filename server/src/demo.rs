//! The demo subdistrict: 8 zones, a roster, the default taxonomy, a few hundred coded assets,
//! a rulebook, the current period and zone coefficients. Everything lives in the repository
//! (`server/data/`); nothing is read from outside it.

use gridline_sync::Role;
use time::{Month, OffsetDateTime};

use crate::auth::password;
use crate::model::{
    Asset, Milli, PeriodInput, Rule, RulebookInput, Source, TaxonomyEntry, TaxonomyKind,
    WorkCategory, ZoneInput,
};
use crate::state::AppState;
use crate::store::{now_ms, reference};
use crate::{accounts, periods};

/// The default taxonomy (GB/T 30428.2-style codes), embedded at build time.
pub const TAXONOMY_CSV: &str = include_str!("../data/taxonomy.csv");

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "gridline-demo";

const ZONE_NAMES: [&str; 8] = [
    "Xiangyang Community",
    "Heping Community",
    "Jianshe Community",
    "Minzhu Community",
    "Qingnian Community",
    "Wenhua Community",
    "Yongan Community",
    "Zhongxin Community",
];

/// Parses the embedded taxonomy CSV (`kind,code,name_zh,name_en,work_category`).
pub fn default_taxonomy() -> anyhow::Result<Vec<TaxonomyEntry>> {
    let mut reader = csv::Reader::from_reader(TAXONOMY_CSV.as_bytes());
    let mut out = Vec::new();
    for record in reader.records() {
        let r = record?;
        let kind =
            TaxonomyKind::parse(&r[0]).ok_or_else(|| anyhow::anyhow!("bad kind {}", &r[0]))?;
        let work_category = WorkCategory::parse(&r[4])
            .ok_or_else(|| anyhow::anyhow!("bad work category {}", &r[4]))?;
        out.push(TaxonomyEntry {
            key: TaxonomyEntry::key_of(kind, &r[1]),
            code: r[1].to_owned(),
            kind,
            name_zh: r[2].to_owned(),
            name_en: r[3].to_owned(),
            work_category,
            // Events (garbage, vending) are fixed within a day; components (covers, lamps) in three.
            time_limit_hours: Some(if kind == TaxonomyKind::Event { 24 } else { 72 }),
        });
    }
    Ok(out)
}

/// A demo login, printed for people trying the system.
pub struct DemoLogin {
    pub username: String,
    pub role: Role,
    pub zone: Option<String>,
}

/// Zone boundary of demo zone `i` (0..8): a 4 × 2 grid of 1 km-ish cells.
pub fn zone_rect(i: usize) -> (f64, f64, f64, f64) {
    let (col, row) = ((i % 4) as f64, (i / 4) as f64);
    let min_lon = 116.30 + col * 0.012;
    let min_lat = 39.90 + row * 0.009;
    (min_lon, min_lat, min_lon + 0.012, min_lat + 0.009)
}

/// Loads the demo data unless zones already exist. Returns the logins either way.
pub async fn load(state: &AppState) -> anyhow::Result<Vec<DemoLogin>> {
    let existing = reference::zones(&state.db.pool, None).await?;
    let mut logins = Vec::new();
    let plan = roster_plan();
    if !existing.is_empty() {
        for (username, _, role, zone) in &plan {
            logins.push(DemoLogin {
                username: username.clone(),
                role: *role,
                zone: zone.map(|z| format!("Z0{}", z + 1)),
            });
        }
        return Ok(logins);
    }
    let taxonomy = default_taxonomy()?;
    let mut tx = state.db.begin_write().await?;
    reference::upsert_taxonomy(tx.conn(), &taxonomy).await?;
    let mut zone_ids = Vec::new();
    for (i, name) in ZONE_NAMES.iter().enumerate() {
        let (a, b, c, d) = zone_rect(i);
        let zone = reference::insert_zone(
            tx.conn(),
            &ZoneInput {
                code: format!("Z0{}", i + 1),
                name: (*name).to_owned(),
                boundary: crate::geo::rectangle(a, b, c, d),
            },
        )
        .await?;
        zone_ids.push(zone.id);
    }
    // 40 coded assets per zone, spread over the component codes.
    let components: Vec<&TaxonomyEntry> = taxonomy
        .iter()
        .filter(|t| t.kind == TaxonomyKind::Component && t.code.len() == 4)
        .collect();
    let mut assets = Vec::new();
    for (zi, zone_id) in zone_ids.iter().enumerate() {
        let (min_lon, min_lat, max_lon, max_lat) = zone_rect(zi);
        for n in 0..40usize {
            let cat = components[(zi * 7 + n) % components.len()];
            let serial = zi * 1000 + n + 1;
            let fx = ((n * 37) % 97) as f64 / 97.0;
            let fy = ((n * 61) % 89) as f64 / 89.0;
            assets.push(Asset {
                code: format!("110108{}{:06}", cat.code, serial),
                zone_id: *zone_id,
                category_code: cat.key.clone(),
                name: format!("{} #{}", cat.name_en, n + 1),
                lat: min_lat + 0.0005 + fy * (max_lat - min_lat - 0.001),
                lon: min_lon + 0.0005 + fx * (max_lon - min_lon - 0.001),
            });
        }
    }
    reference::insert_assets(tx.conn(), &assets).await?;
    let now = OffsetDateTime::now_utc();
    reference::insert_rulebook(tx.conn(), &demo_rulebook(now), None).await?;
    tx.commit().await?;

    // The current month, with a coefficient per zone: Z01 is the easiest (1.0), Z08 the hardest
    // (0.65); a harder zone loses fewer points for the same finding.
    let start = now.replace_day(1)?.replace_time(time::Time::MIDNIGHT);
    let (ny, nm) = if now.month() == Month::December {
        (now.year() + 1, Month::January)
    } else {
        (now.year(), now.month().next())
    };
    let end = start.replace_year(ny)?.replace_month(nm)?;
    let period = periods::create_period(
        &state.db,
        None,
        &PeriodInput {
            code: format!("{}-{:02}", now.year(), now.month() as u8),
            starts_at: start,
            ends_at: end,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = state.db.begin_write().await?;
    for (i, zone_id) in zone_ids.iter().enumerate() {
        let milli = Milli::from_f64(1.0 - 0.05 * i as f64, 10.0).unwrap_or(1000);
        reference::set_coefficient(tx.conn(), *zone_id, period.id, milli, None).await?;
    }
    tx.commit().await?;

    // One hash for every demo account: hashing dozens of times would only slow the start.
    let hash = password::hash(DEMO_PASSWORD.to_owned()).await?;
    for (username, display, role, zone) in plan {
        let mut roles = vec![role];
        if username == "admin" {
            roles = vec![Role::Admin];
        }
        let user = accounts::insert_user(&state.db, None, &username, &display, &hash, &roles)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if role != Role::Admin {
            let mut tx = state.db.begin_write().await?;
            reference::open_assignment(
                tx.conn(),
                user.id,
                zone.map(|z| zone_ids[z]),
                role,
                None,
                now_ms(),
            )
            .await?;
            tx.commit().await?;
        }
        logins.push(DemoLogin {
            username,
            role,
            zone: zone.map(|z| format!("Z0{}", z + 1)),
        });
    }
    Ok(logins)
}

/// (username, display name, role, zone index or `None` for every zone).
fn roster_plan() -> Vec<(String, String, Role, Option<usize>)> {
    let mut plan = vec![(
        "admin".to_owned(),
        "Administrator".to_owned(),
        Role::Admin,
        None,
    )];
    for i in 1..=2 {
        plan.push((
            format!("supervisor{i}"),
            format!("Assessment office {i}"),
            Role::Supervisor,
            None,
        ));
    }
    for i in 1..=4 {
        plan.push((
            format!("zonechief{i}"),
            format!("Zone chief {i}"),
            Role::ZoneChief,
            None,
        ));
    }
    for z in 0..8 {
        plan.push((
            format!("roadchief{}", z + 1),
            format!("Road chief Z0{}", z + 1),
            Role::RoadChief,
            Some(z),
        ));
        plan.push((
            format!("sectionchief{}", z + 1),
            format!("Section chief Z0{}", z + 1),
            Role::SectionChief,
            Some(z),
        ));
        for k in 1..=2 {
            let n = z * 2 + k;
            plan.push((
                format!("inspector{n}"),
                format!("Inspector {n} (Z0{})", z + 1),
                Role::Inspector,
                Some(z),
            ));
        }
    }
    for i in 1..=3 {
        plan.push((
            format!("squad{i}"),
            format!("Emergency squad {i}"),
            Role::SquadMember,
            None,
        ));
    }
    plan
}

fn rule(code: &str, description: &str, points: f64, sources: &[Source], taxonomy: &[&str]) -> Rule {
    Rule {
        code: code.to_owned(),
        description: description.to_owned(),
        points,
        sources: sources.to_vec(),
        taxonomy_codes: taxonomy.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn demo_rulebook(now: OffsetDateTime) -> RulebookInput {
    use Source::*;
    RulebookInput {
        name: "Subdistrict city management assessment rules".to_owned(),
        effective_from: now.replace_year(now.year() - 1).unwrap_or(now),
        rules: vec![
            rule(
                "INSP-GARBAGE",
                "Exposed garbage found by inspection",
                0.2,
                &[Inspection],
                &["event:0102"],
            ),
            rule(
                "INSP-VENDING",
                "Unlicensed street vending found by inspection",
                0.3,
                &[Inspection],
                &["event:0501"],
            ),
            rule(
                "INSP-COVER",
                "Missing or damaged manhole cover found by inspection",
                0.5,
                &[Inspection],
                &[
                    "component:0101",
                    "component:0102",
                    "component:0103",
                    "component:0105",
                    "component:0114",
                ],
            ),
            rule(
                "INSP-GENERAL",
                "Other problem found by inspection",
                0.1,
                &[Inspection],
                &[],
            ),
            rule(
                "OVERDUE",
                "Not rectified by the deadline (additional)",
                0.5,
                &[Inspection, PublicComplaint],
                &[],
            ),
            rule("MEDIA", "Problem exposed by the media", 2.0, &[Media], &[]),
            rule(
                "LEADER",
                "Problem criticised by a leader",
                1.0,
                &[LeaderCriticism],
                &[],
            ),
            rule(
                "COMPLAINT",
                "Substantiated public complaint to the hotline",
                0.5,
                &[PublicComplaint],
                &[],
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_taxonomy_parses() {
        let t = default_taxonomy().unwrap();
        assert!(t.len() >= 90);
        assert!(t
            .iter()
            .any(|e| e.code == "0101" && e.kind == TaxonomyKind::Component));
    }

    #[test]
    fn demo_rulebook_is_valid_milli() {
        for r in demo_rulebook(OffsetDateTime::now_utc()).rules {
            assert!(Milli::from_f64(r.points, 100.0).is_some());
        }
    }

    #[test]
    fn demo_zones_do_not_overlap() {
        for i in 0..8 {
            let (a, b, c, d) = zone_rect(i);
            let centre = ((a + c) / 2.0, (b + d) / 2.0);
            for j in 0..8 {
                let (a2, b2, c2, d2) = zone_rect(j);
                let inside = centre.0 > a2 && centre.0 < c2 && centre.1 > b2 && centre.1 < d2;
                assert_eq!(inside, i == j);
            }
        }
    }
}
