//! The demo subdistricts: 8 zones, a roster, the default taxonomy, a few hundred coded assets,
//! a rulebook, the current period and zone coefficients. Everything lives in the repository
//! (`server/data/`); nothing is read from outside it.
//!
//! Two of them: [`DemoSite::Taihe`], the seed's subdistrict in Kunming (Guandu district,
//! 530111) in Chinese, which `gridline serve --demo` loads; and [`DemoSite::English`], a
//! subdistrict in Beijing with English names (`--demo en`), on which the tests run. Both have
//! the same logins. The seed article names none of Taihe's communities: the names here are
//! invented, and so are the people's.

use gridline_sync::Role;
use time::OffsetDateTime;

mod history;

use crate::auth::password;
use crate::i18n::Lang;
use crate::model::{
    Asset, Milli, PeriodInput, Rule, RulebookInput, Source, TaxonomyEntry, TaxonomyKind,
    Translations, WorkCategory, ZoneInput,
};
use crate::state::AppState;
use crate::store::{now_ms, reference};
use crate::{accounts, periods};

/// The default taxonomy (GB/T 30428.2-style codes), embedded at build time.
pub const TAXONOMY_CSV: &str = include_str!("../../data/taxonomy.csv");

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "gridline-demo";

/// Which demo subdistrict to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoSite {
    /// 太和街道, Kunming, in Chinese.
    #[value(name = "zh", alias = "taihe")]
    Taihe,
    /// A subdistrict in Beijing with English names (the tests' data).
    #[value(name = "en")]
    English,
}

const ENGLISH_ZONES: [&str; 8] = [
    "Xiangyang Community",
    "Heping Community",
    "Jianshe Community",
    "Minzhu Community",
    "Qingnian Community",
    "Wenhua Community",
    "Yongan Community",
    "Zhongxin Community",
];

/// The English demo's communities in Chinese.
const ENGLISH_ZONES_ZH: [&str; 8] = [
    "向阳社区",
    "和平社区",
    "建设社区",
    "民主社区",
    "青年社区",
    "文化社区",
    "永安社区",
    "中心社区",
];

/// Taihe's communities in English.
const TAIHE_ZONES_EN: [&str; 8] = [
    "Taihe Community",
    "Jinxing Community",
    "Dongzhan Community",
    "Shuangfeng Community",
    "Yunbo Community",
    "Chunyuan Community",
    "Hexie Community",
    "Mingfeng Community",
];

/// Taihe's eight communities (invented names: the seed article gives none).
const TAIHE_ZONES: [&str; 8] = [
    "太和社区",
    "金星社区",
    "东站社区",
    "双凤社区",
    "云波社区",
    "春苑社区",
    "和谐社区",
    "鸣凤社区",
];

/// Family and given names the Taihe roster is made of (invented people).
const SURNAMES: [&str; 16] = [
    "李", "王", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
];
const GIVEN_NAMES: [&str; 16] = [
    "建华", "丽娟", "志强", "海燕", "国庆", "春梅", "晓东", "秀英", "伟", "敏", "俊杰", "红梅",
    "文斌", "玉兰", "永明", "雪莲",
];

impl DemoSite {
    /// The site's zone names.
    fn zone_names(self) -> [&'static str; 8] {
        match self {
            DemoSite::Taihe => TAIHE_ZONES,
            DemoSite::English => ENGLISH_ZONES,
        }
    }

    /// The zone names in the site's other language, and that language.
    fn zone_translations(self) -> ([&'static str; 8], Lang) {
        match self {
            DemoSite::Taihe => (TAIHE_ZONES_EN, Lang::En),
            DemoSite::English => (ENGLISH_ZONES_ZH, Lang::ZhCn),
        }
    }

    /// Published text and its translation: Chinese at Taihe, English elsewhere.
    fn texts(self, en: &str, zh: &str) -> (String, Translations) {
        let (published, other, lang) = match self {
            DemoSite::Taihe => (zh, en, Lang::En),
            DemoSite::English => (en, zh, Lang::ZhCn),
        };
        let mut t = Translations::default();
        t.0.insert(lang.tag().to_owned(), other.to_owned());
        (published.to_owned(), t)
    }

    /// The zones a person of the plan is rostered on. At Taihe each of the four zone chiefs
    /// (片长) answers for two communities, so every finding's chain names one; in the English
    /// demo they answer for every zone.
    fn assignments(self, username: &str, role: Role, zone: Option<usize>) -> Vec<Option<usize>> {
        let chief = username
            .strip_prefix("zonechief")
            .and_then(|n| n.parse::<usize>().ok());
        match (self, role, chief) {
            (DemoSite::Taihe, Role::ZoneChief, Some(n)) if n >= 1 => {
                vec![Some((2 * (n - 1)) % 8), Some((2 * (n - 1) + 1) % 8)]
            }
            _ => vec![zone],
        }
    }

    /// A login as printed: the zones its person is rostered on (`None`: every zone).
    fn login(self, username: &str, role: Role, zone: Option<usize>) -> DemoLogin {
        let zones: Vec<String> = self
            .assignments(username, role, zone)
            .into_iter()
            .flatten()
            .map(|z| format!("Z0{}", z + 1))
            .collect();
        DemoLogin {
            username: username.to_owned(),
            role,
            zone: (!zones.is_empty()).then(|| zones.join(", ")),
        }
    }

    /// The district code asset codes start with (GB/T 2260): 530111 Guandu, Kunming;
    /// 110108 Haidian, Beijing.
    fn district_code(self) -> &'static str {
        match self {
            DemoSite::Taihe => "530111",
            DemoSite::English => "110108",
        }
    }

    /// Zone boundary of zone `i` (0..8): a 4 × 2 grid of 1 km-ish cells (WGS-84).
    pub fn zone_rect(self, i: usize) -> (f64, f64, f64, f64) {
        let (origin_lon, origin_lat) = match self {
            DemoSite::Taihe => (102.700, 25.020),
            DemoSite::English => (116.30, 39.90),
        };
        let (col, row) = ((i % 4) as f64, (i / 4) as f64);
        let min_lon = origin_lon + col * 0.012;
        let min_lat = origin_lat + row * 0.009;
        (min_lon, min_lat, min_lon + 0.012, min_lat + 0.009)
    }

    /// The difficulty coefficient of zone `i`: a harder zone (an old town, a station, a
    /// market street) loses fewer points for the same finding.
    fn coefficient(self, i: usize) -> f64 {
        match self {
            DemoSite::Taihe => [1.0, 0.9, 0.8, 0.95, 0.85, 1.0, 0.9, 0.85][i % 8],
            DemoSite::English => 1.0 - 0.05 * i as f64,
        }
    }

    fn asset_name(self, category: &TaxonomyEntry, n: usize) -> String {
        match self {
            DemoSite::Taihe => format!("{}{}号", category.name_zh, n),
            DemoSite::English => format!("{} #{}", category.name_en, n),
        }
    }

    /// A person's display name: `what` in English, a Chinese name (with the post) at Taihe.
    fn person(self, n: usize, english: String, post: &str) -> String {
        match self {
            DemoSite::Taihe => format!(
                "{}{}（{post}）",
                SURNAMES[(n * 7) % SURNAMES.len()],
                GIVEN_NAMES[(n * 5 + n / SURNAMES.len()) % GIVEN_NAMES.len()]
            ),
            DemoSite::English => english,
        }
    }
}

/// Zone boundary of zone `i` of the English demo (the tests' subdistrict).
pub fn zone_rect(i: usize) -> (f64, f64, f64, f64) {
    DemoSite::English.zone_rect(i)
}

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
            time_limit_working_hours: None,
            time_limit_working_days: None,
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

/// Loads the demo data of `site` unless zones already exist. Returns the logins either way.
pub async fn load(state: &AppState, site: DemoSite) -> anyhow::Result<Vec<DemoLogin>> {
    let existing = reference::zones(&state.db.pool, None).await?;
    let mut logins = Vec::new();
    let plan = roster_plan(site);
    if !existing.is_empty() {
        for (username, _, role, zone) in &plan {
            logins.push(site.login(username, *role, *zone));
        }
        return Ok(logins);
    }
    let taxonomy = default_taxonomy()?;
    let mut tx = state.db.begin_write().await?;
    reference::upsert_taxonomy(tx.conn(), &taxonomy).await?;
    let mut zone_ids = Vec::new();
    let (other_names, other_lang) = site.zone_translations();
    for (i, name) in site.zone_names().iter().enumerate() {
        let (a, b, c, d) = site.zone_rect(i);
        let mut translations = Translations::default();
        translations
            .0
            .insert(other_lang.tag().to_owned(), other_names[i].to_owned());
        let zone = reference::insert_zone(
            tx.conn(),
            &ZoneInput {
                code: format!("Z0{}", i + 1),
                name: (*name).to_owned(),
                translations,
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
        let (min_lon, min_lat, max_lon, max_lat) = site.zone_rect(zi);
        for n in 0..40usize {
            let cat = components[(zi * 7 + n) % components.len()];
            let serial = zi * 1000 + n + 1;
            let fx = ((n * 37) % 97) as f64 / 97.0;
            let fy = ((n * 61) % 89) as f64 / 89.0;
            assets.push(Asset {
                code: format!("{}{}{:06}", site.district_code(), cat.code, serial),
                zone_id: *zone_id,
                category_code: cat.key.clone(),
                name: site.asset_name(cat, n + 1),
                lat: min_lat + 0.0005 + fy * (max_lat - min_lat - 0.001),
                lon: min_lon + 0.0005 + fx * (max_lon - min_lon - 0.001),
            });
        }
    }
    reference::insert_assets(tx.conn(), &assets).await?;
    let now = OffsetDateTime::now_utc();
    reference::insert_rulebook(tx.conn(), &demo_rulebook(site, now), None).await?;
    tx.commit().await?;

    // The current month of the site's time zone, with a coefficient per zone.
    let tz = state.config.site.tz();
    let month = crate::localtime::month_of(&tz, now);
    let period = periods::create_period(
        &state.db,
        None,
        &PeriodInput {
            code: month.clone(),
            month: Some(month),
            starts_at: None,
            ends_at: None,
        },
        &tz,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = state.db.begin_write().await?;
    for (i, zone_id) in zone_ids.iter().enumerate() {
        let milli = Milli::from_f64(site.coefficient(i), 10.0).unwrap_or(1000);
        reference::set_coefficient(tx.conn(), *zone_id, period.id, milli, None).await?;
    }
    tx.commit().await?;

    // Taihe's roster has been in place since before its history begins, so each finding's
    // accountable people are on record; the English one starts now.
    let rostered_from = match site {
        DemoSite::Taihe => now_ms() - 90 * 86_400_000,
        DemoSite::English => now_ms(),
    };
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
            for zone in site.assignments(&username, role, zone) {
                reference::open_assignment(
                    tx.conn(),
                    user.id,
                    zone.map(|z| zone_ids[z]),
                    role,
                    None,
                    rostered_from,
                )
                .await?;
            }
            tx.commit().await?;
        }
        logins.push(site.login(&username, role, zone));
    }
    if site == DemoSite::Taihe {
        history::load(state, site, &zone_ids).await?;
    }
    Ok(logins)
}

/// (username, display name, role, zone index or `None` for every zone). The usernames are
/// the same at every site.
fn roster_plan(site: DemoSite) -> Vec<(String, String, Role, Option<usize>)> {
    let zone = |z: usize| format!("Z0{}", z + 1);
    let names = site.zone_names();
    let mut n = 0;
    let mut person = |english: String, post: String| {
        n += 1;
        site.person(n, english, &post)
    };
    let mut plan = vec![(
        "admin".to_owned(),
        person("Administrator".into(), "系统管理员".into()),
        Role::Admin,
        None,
    )];
    for i in 1..=2 {
        plan.push((
            format!("supervisor{i}"),
            person(format!("Assessment office {i}"), "考核办".into()),
            Role::Supervisor,
            None,
        ));
    }
    for i in 1..=4 {
        plan.push((
            format!("zonechief{i}"),
            person(format!("Zone chief {i}"), "片长".into()),
            Role::ZoneChief,
            None,
        ));
    }
    for (z, zone_name) in names.iter().enumerate() {
        plan.push((
            format!("roadchief{}", z + 1),
            person(
                format!("Road chief {}", zone(z)),
                format!("{zone_name}路长"),
            ),
            Role::RoadChief,
            Some(z),
        ));
        plan.push((
            format!("sectionchief{}", z + 1),
            person(
                format!("Section chief {}", zone(z)),
                format!("{zone_name}段长"),
            ),
            Role::SectionChief,
            Some(z),
        ));
        for k in 1..=2 {
            let i = z * 2 + k;
            plan.push((
                format!("inspector{i}"),
                person(
                    format!("Inspector {i} ({})", zone(z)),
                    format!("{zone_name}巡查员"),
                ),
                Role::Inspector,
                Some(z),
            ));
        }
    }
    for i in 1..=3 {
        plan.push((
            format!("squad{i}"),
            person(format!("Emergency squad {i}"), "应急队员".into()),
            Role::SquadMember,
            None,
        ));
    }
    plan.push((
        "hotline1".to_owned(),
        person("Hotline operator".into(), "热线受理员".into()),
        Role::HotlineOperator,
        None,
    ));
    plan
}

fn rule(
    code: &str,
    (description, translations): (String, Translations),
    points: f64,
    sources: &[Source],
    taxonomy: &[&str],
) -> Rule {
    Rule {
        code: code.to_owned(),
        description,
        translations,
        points,
        sources: sources.to_vec(),
        taxonomy_codes: taxonomy.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn demo_rulebook(site: DemoSite, now: OffsetDateTime) -> RulebookInput {
    use Source::*;
    let text = |en: &str, zh: &str| site.texts(en, zh);
    let covers = [
        "component:0101",
        "component:0102",
        "component:0103",
        "component:0105",
        "component:0114",
    ];
    let (name, translations) = text(
        "Subdistrict city management assessment rules",
        "街道城市管理考核细则",
    );
    RulebookInput {
        name,
        translations,
        effective_from: now.replace_year(now.year() - 1).unwrap_or(now),
        rules: vec![
            rule(
                "INSP-GARBAGE",
                text("Exposed garbage found by inspection", "检查发现垃圾暴露"),
                0.2,
                &[Inspection],
                &["event:0102"],
            ),
            rule(
                "INSP-VENDING",
                text(
                    "Unlicensed street vending found by inspection",
                    "检查发现占道经营",
                ),
                0.3,
                &[Inspection],
                &["event:0501"],
            ),
            rule(
                "INSP-COVER",
                text(
                    "Missing or damaged manhole cover found by inspection",
                    "检查发现窨井盖缺失或破损",
                ),
                0.5,
                &[Inspection],
                &covers,
            ),
            rule(
                "INSP-GENERAL",
                text("Other problem found by inspection", "检查发现其他问题"),
                0.1,
                &[Inspection],
                &[],
            ),
            rule(
                "OVERDUE",
                text(
                    "Not rectified by the deadline (additional)",
                    "逾期未整改（加扣）",
                ),
                0.5,
                &[Inspection, PublicComplaint],
                &[],
            ),
            rule(
                "MEDIA",
                text("Problem exposed by the media", "被新闻媒体曝光"),
                2.0,
                &[Media],
                &[],
            ),
            rule(
                "LEADER",
                text("Problem criticised by a leader", "被领导批评"),
                1.0,
                &[LeaderCriticism],
                &[],
            ),
            rule(
                "COMPLAINT",
                text(
                    "Substantiated public complaint to the hotline",
                    "群众投诉经查属实",
                ),
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
        for site in [DemoSite::Taihe, DemoSite::English] {
            for r in demo_rulebook(site, OffsetDateTime::now_utc()).rules {
                assert!(Milli::from_f64(r.points, 100.0).is_some());
            }
        }
    }

    #[test]
    fn demo_zones_do_not_overlap() {
        for site in [DemoSite::Taihe, DemoSite::English] {
            for i in 0..8 {
                let (a, b, c, d) = site.zone_rect(i);
                let centre = ((a + c) / 2.0, (b + d) / 2.0);
                for j in 0..8 {
                    let (a2, b2, c2, d2) = site.zone_rect(j);
                    let inside = centre.0 > a2 && centre.0 < c2 && centre.1 > b2 && centre.1 < d2;
                    assert_eq!(inside, i == j);
                }
            }
        }
    }

    #[test]
    fn taihe_speaks_chinese_and_lies_in_kunming() {
        let plan = roster_plan(DemoSite::Taihe);
        let han = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        assert!(
            plan.iter().all(|(_, display, _, _)| han(display)),
            "{plan:?}"
        );
        let english: Vec<String> = roster_plan(DemoSite::English)
            .into_iter()
            .map(|(u, ..)| u)
            .collect();
        let taihe: Vec<String> = plan.into_iter().map(|(u, ..)| u).collect();
        assert_eq!(english, taihe, "the same logins at both sites");
        let (a, b, ..) = DemoSite::Taihe.zone_rect(0);
        assert!((102.6..102.8).contains(&a) && (24.9..25.1).contains(&b));
        assert!(demo_rulebook(DemoSite::Taihe, OffsetDateTime::now_utc())
            .rules
            .iter()
            .all(|r| han(&r.description)));
    }
}
