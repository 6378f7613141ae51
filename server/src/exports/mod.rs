//! Exports people open as they are: the ledger, a period's ranking and the case list as
//! tables ([`Table`]: CSV or XLSX) or GeoJSON, with names beside every id, closed values
//! (states, sources, kinds) in the reader's language and times in the site's time zone.

pub mod report;
pub mod table;

use std::collections::HashMap;

use jiff::tz::TimeZone;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::i18n::{self, Lang};
use crate::ledger::closing::{scoped_zones, visible_ranking};
use crate::ledger::rankings::Rankings;
use crate::localtime;
use crate::model::{Milli, RosterPerson, Translations};
use crate::store::{cases, ledger as store, reference, review, users, Db};
pub use table::{Cell, Table};

/// Who reads an export: their language and the site's time zone.
#[derive(Debug, Clone)]
pub struct Reader {
    pub lang: Lang,
    pub tz: TimeZone,
}

impl Reader {
    fn time(&self, ms: i64) -> Cell {
        Cell::Time(localtime::civil(&self.tz, ms))
    }

    fn name(&self, set: &str, value: &str) -> Cell {
        Cell::Text(i18n::name(self.lang, set, value))
    }
}

/// Names of the things an export (or a console page) refers to by id or code.
pub struct Names {
    /// Zone id → (code, name as published, translations).
    zones: HashMap<String, (String, String, Translations)>,
    users: HashMap<String, String>,
    /// Taxonomy key → (Chinese name, English name).
    categories: HashMap<String, (String, String)>,
    /// (rulebook version, rule code) → the rule's text as published and its translations.
    rules: HashMap<(i64, String), (String, Translations)>,
}

impl Names {
    pub async fn load(db: &Db) -> ApiResult<Names> {
        let zones = reference::zones(&db.pool, None)
            .await?
            .into_iter()
            .map(|z| (z.id.to_string(), (z.code, z.name, z.translations)))
            .collect();
        let users = users::list(&db.pool)
            .await?
            .into_iter()
            .map(|u| (u.id.to_string(), u.display_name))
            .collect();
        let categories = reference::taxonomy(&db.pool)
            .await?
            .into_iter()
            .map(|t| (t.key, (t.name_zh, t.name_en)))
            .collect();
        let mut rules = HashMap::new();
        for book in reference::rulebooks(&db.pool).await? {
            for rule in book.rules {
                rules.insert(
                    (book.version, rule.code),
                    (rule.description, rule.translations),
                );
            }
        }
        Ok(Names {
            zones,
            users,
            categories,
            rules,
        })
    }

    fn zone_code(&self, id: &str) -> Cell {
        self.zones.get(id).map(|(code, ..)| code.as_str()).into()
    }

    /// The zone's name in `lang`.
    fn zone_name(&self, id: &str, lang: Lang) -> Cell {
        self.zones
            .get(id)
            .map(|(_, name, t)| t.pick(lang, name))
            .into()
    }

    /// The text of a rule of a rulebook version in `lang`, if the rule is known.
    fn rule_text(&self, version: i64, code: &str, lang: Lang) -> Option<String> {
        self.rules
            .get(&(version, code.to_owned()))
            .map(|(text, t)| t.pick(lang, text).to_owned())
    }

    /// A user's display name (the id itself when unknown).
    pub fn user_label(&self, id: &str) -> String {
        self.users.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// A zone's name in `lang` (the id itself when unknown).
    pub fn zone_label(&self, id: &str, lang: Lang) -> String {
        self.zones
            .get(id)
            .map(|(_, name, t)| t.pick(lang, name).to_owned())
            .unwrap_or_else(|| id.to_owned())
    }

    /// A taxonomy entry's name in `lang` (the key itself when unknown).
    pub fn category_label(&self, key: &str, lang: Lang) -> String {
        self.categories
            .get(key)
            .map(|(zh, en)| if lang == Lang::ZhCn { zh } else { en }.clone())
            .unwrap_or_else(|| key.to_owned())
    }

    fn user(&self, id: &str) -> Cell {
        self.users.get(id).map(String::as_str).into()
    }

    fn category(&self, key: Option<&str>, lang: Lang) -> Cell {
        key.and_then(|k| self.categories.get(k))
            .map(|(zh, en)| if lang == Lang::ZhCn { zh } else { en }.as_str())
            .into()
    }

    /// The display names of the people with `role` in a frozen roster, joined by `、`.
    fn people(&self, roster: &[RosterPerson], role: &str) -> Cell {
        let names: Vec<String> = roster
            .iter()
            .filter(|p| p.role == role)
            .map(|p| {
                self.users
                    .get(&p.user_id.to_string())
                    .cloned()
                    .unwrap_or_else(|| p.username.clone())
            })
            .collect();
        if names.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(names.join("、"))
        }
    }
}

impl crate::notify::Labels for Names {
    fn zone_label(&self, id: &str, lang: Lang) -> String {
        Names::zone_label(self, id, lang)
    }
    fn category_label(&self, key: &str, lang: Lang) -> String {
        Names::category_label(self, key, lang)
    }
}

impl From<Option<&str>> for Cell {
    fn from(v: Option<&str>) -> Self {
        v.map(|s| Cell::Text(s.to_owned())).unwrap_or(Cell::Empty)
    }
}

/// The ledger (zones in the caller's scope), in chain order.
pub async fn ledger(
    db: &Db,
    user: &AuthUser,
    reader: &Reader,
    period: Option<Uuid>,
    zone: Option<Uuid>,
) -> ApiResult<Table> {
    let zones = scoped_zones(db, user, zone).await?;
    let names = Names::load(db).await?;
    let periods: HashMap<String, String> = reference::periods(&db.pool)
        .await?
        .into_iter()
        .map(|p| (p.id.to_string(), p.code))
        .collect();
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = store::export_entries(&db.pool, period, zones.as_deref(), after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.entry.seq;
        for x in &page {
            let e = &x.entry;
            // Written by the server from `RosterPerson`s; an unreadable one shows no names.
            let roster: Vec<RosterPerson> = serde_json::from_str(&e.roster).unwrap_or_default();
            let evidence: Vec<String> = serde_json::from_str(&e.evidence).unwrap_or_default();
            rows.push(vec![
                Cell::Int(e.seq),
                e.id.clone().into(),
                reader.name("entry", &e.kind),
                names.zone_code(&e.zone_id),
                names.zone_name(&e.zone_id, reader.lang),
                periods.get(&e.period_id).cloned().into(),
                e.rule_code.clone().into(),
                names
                    .rule_text(e.rulebook_version, &e.rule_code, reader.lang)
                    .into(),
                e.source.clone().into(),
                reader.name("source", &e.source),
                e.category_code.clone().into(),
                names.category(e.category_code.as_deref(), reader.lang),
                e.work_category
                    .as_deref()
                    .map(|w| i18n::name(reader.lang, "work", w))
                    .into(),
                Milli::to_f64(e.raw_points_milli).into(),
                Milli::to_f64(e.coefficient_milli).into(),
                Milli::to_f64(e.weighted_points_milli).into(),
                names.people(&roster, "zone_chief"),
                names.people(&roster, "road_chief"),
                names.people(&roster, "section_chief"),
                e.proposed_by
                    .as_deref()
                    .map_or(Cell::Empty, |id| names.user(id)),
                names.user(&e.approved_by),
                reader.time(e.found_at),
                reader.time(e.approved_at),
                e.case_id.clone().into(),
                x.case_description.clone().into(),
                x.note.clone().into(),
                Cell::List(evidence),
                e.reverses_id.clone().into(),
                e.reason.clone().into(),
                e.hash.clone().into(),
            ]);
        }
    }
    Ok(Table {
        name: sheet_name(reader.lang, "台账", "ledger"),
        lang: reader.lang,
        columns: vec![
            "seq",
            "id",
            "kind",
            "zone",
            "zone_name",
            "period",
            "rule",
            "rule_text",
            "source",
            "source_name",
            "category",
            "category_name",
            "work_category",
            "raw_points",
            "coefficient",
            "weighted_points",
            "zone_chief",
            "road_chief",
            "section_chief",
            "proposed_by",
            "approved_by",
            "found_at",
            "approved_at",
            "case_id",
            "case_description",
            "note",
            "evidence",
            "reverses_id",
            "reason",
            "hash",
        ],
        rows,
    })
}

/// The ranking of a period: one row per zone with score and indicators, the zones the
/// caller may see as in `GET /v1/periods/{id}/ranking`. Also answers the period's code.
pub async fn ranking(
    db: &Db,
    rankings: &Rankings,
    user: &AuthUser,
    reader: &Reader,
    period_id: Uuid,
) -> ApiResult<(Table, String)> {
    let period = reference::period(&db.pool, period_id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    let r = visible_ranking(db, rankings, user, &period).await?;
    let names = Names::load(db).await?;
    let rows = r
        .zones
        .iter()
        .map(|z| {
            vec![
                Cell::Int(z.rank),
                z.zone_code.clone().into(),
                names.zone_name(&z.zone_id, reader.lang),
                z.score.into(),
                z.deductions.into(),
                Cell::Int(z.entries),
                Cell::Int(z.reversals),
                Cell::Int(z.indicators.cases_found),
                Cell::Int(z.indicators.filed),
                Cell::Int(z.indicators.closed),
                Cell::Int(z.indicators.closed_on_time),
                Cell::Int(z.indicators.rework),
                Cell::Int(z.indicators.overdue),
                Cell::Int(z.indicators.callbacks),
                Cell::Int(z.indicators.satisfied),
                Cell::Int(z.indicators.public_reports),
                Cell::Int(z.indicators.responded_in_time),
                Cell::Int(z.indicators.inspections_due),
                Cell::Int(z.indicators.inspections_on_time),
                Cell::Int(z.indicators.items_failed),
                r.formula_version.clone().into(),
            ]
        })
        .collect();
    let table = Table {
        name: sheet_name(reader.lang, "排名", "ranking"),
        lang: reader.lang,
        columns: vec![
            "rank",
            "zone",
            "zone_name",
            "score",
            "deductions",
            "entries",
            "reversals",
            "cases_found",
            "filed",
            "closed",
            "closed_on_time",
            "rework",
            "overdue",
            "callbacks",
            "satisfied",
            "public_reports",
            "responded_in_time",
            "inspections_due",
            "inspections_on_time",
            "items_failed",
            "formula_version",
        ],
        rows,
    };
    Ok((table, period.code))
}

/// At most this many cases in one export.
pub const MAX_CASES: usize = 100_000;

/// The case list: a table, and each row's case id and position (for GeoJSON).
pub struct CaseExport {
    pub table: Table,
    pub points: Vec<(Uuid, f64, f64)>,
}

/// Cases in the caller's scope (at most [`MAX_CASES`]), optionally in one state.
pub async fn cases(
    db: &Db,
    user: &AuthUser,
    reader: &Reader,
    state: Option<&str>,
) -> ApiResult<CaseExport> {
    let scope = user.scope(db).await?;
    let mut all = Vec::new();
    let mut after = None;
    while all.len() < MAX_CASES {
        let page = cases::list(
            &db.pool,
            scope.zones(),
            state,
            after,
            1000,
            user.confidential_reader(),
        )
        .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page);
    }
    all.truncate(MAX_CASES);
    let names = Names::load(db).await?;
    let ids: Vec<Uuid> = all.iter().map(|c| c.id).collect();
    let mut conn = db.pool.acquire().await?;
    let workflows = review::workflows(&mut conn, &ids).await?;
    let now = crate::store::now_ms();
    let mut rows = Vec::with_capacity(all.len());
    let mut points = Vec::with_capacity(all.len());
    for c in &all {
        let w = workflows.get(&c.id).cloned().unwrap_or_default();
        let zone = c.zone_id.to_string();
        rows.push(vec![
            c.id.to_string().into(),
            names.zone_code(&zone),
            names.zone_name(&zone, reader.lang),
            c.state.as_str().into(),
            reader.name("state", c.state.as_str()),
            c.category_code.clone().into(),
            names.category(Some(&c.category_code), reader.lang),
            c.source.clone().into(),
            reader.name("source", &c.source),
            c.severity.as_str().into(),
            reader.name("severity", c.severity.as_str()),
            c.description.clone().into(),
            c.lat.into(),
            c.lon.into(),
            reader.time(c.captured_at),
            reader.time(c.received_at),
            w.deadline_at.map_or(Cell::Empty, |d| reader.time(d)),
            gridline_sync::workflow::is_overdue(c.state, w.deadline_at, now).into(),
            Cell::Int(w.rework_count),
            Cell::Int(c.version),
            c.locked_at.is_some().into(),
            Cell::List(c.flags.clone()),
        ]);
        points.push((c.id, c.lon, c.lat));
    }
    Ok(CaseExport {
        table: Table {
            name: sheet_name(reader.lang, "案件", "cases"),
            lang: reader.lang,
            columns: vec![
                "id",
                "zone",
                "zone_name",
                "state",
                "state_name",
                "category",
                "category_name",
                "source",
                "source_name",
                "severity",
                "severity_name",
                "description",
                "lat",
                "lon",
                "captured_at",
                "received_at",
                "deadline",
                "overdue",
                "rework",
                "version",
                "locked",
                "flags",
            ],
            rows,
        },
        points,
    })
}

impl CaseExport {
    /// A GeoJSON FeatureCollection of points: properties under the column keys, with real
    /// booleans and arrays, times in the site's time zone (named by `time_zone`), positions in
    /// `datum` (WGS-84 as stored, or converted for a map on GCJ-02 or BD-09 tiles).
    pub fn to_geojson(&self, tz: &str, datum: gridline_sync::Datum) -> serde_json::Value {
        let features: Vec<serde_json::Value> = self
            .table
            .rows
            .iter()
            .zip(&self.points)
            .map(|(cells, (id, lon, lat))| {
                let (lat, lon) = datum.from_wgs84(*lat, *lon);
                let props: serde_json::Map<String, serde_json::Value> = self
                    .table
                    .columns
                    .iter()
                    .zip(cells)
                    .map(|(key, cell)| ((*key).to_owned(), cell.to_json()))
                    .collect();
                serde_json::json!({
                    "type": "Feature",
                    "id": id,
                    "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    "properties": props,
                })
            })
            .collect();
        serde_json::json!({
            "type": "FeatureCollection",
            "time_zone": tz,
            "datum": datum.as_str(),
            "features": features,
        })
    }
}

fn sheet_name(lang: Lang, zh: &str, en: &str) -> String {
    if lang == Lang::ZhCn { zh } else { en }.to_owned()
}
