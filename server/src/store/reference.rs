//! Reference data: zones, the roster, the taxonomy, assets, rulebooks, periods and zone
//! coefficients. Every write also appends to the change log so phones receive it on pull.

use gridline_sync::{EntityKind, Role};
use sqlx::{Any, AnyConnection, Executor, Row};
use uuid::Uuid;

use super::changes::{self, ChangeEntity, PendingChange};
use super::decode;
use super::json_rows::Cols;
use super::{insert_rows, new_id, now_ms, parse_uuid, time_from_ms, Val};
use crate::model::{
    Asset, Coefficient, Milli, Period, PeriodSpan, PeriodStatus, RosterEntry, Rule, Rulebook,
    RulebookInput, Source, TaxonomyEntry, TaxonomyKind, Translations, WorkCategory, Zone,
    ZoneInput,
};

type R<T> = Result<T, sqlx::Error>;

fn text_uuid(r: &sqlx::any::AnyRow, col: &str) -> R<Uuid> {
    r.uuid(col)
}

// ---- zones ------------------------------------------------------------------------------------

/// A `translations` column: a JSON object of texts by language.
fn translations(r: &sqlx::any::AnyRow, table: &str) -> R<Translations> {
    let text: String = r.try_get("translations")?;
    serde_json::from_str(&text)
        .map_err(|_| super::unknown_value(&format!("{table}.translations"), &text))
}

fn zone_from_row(r: &sqlx::any::AnyRow) -> R<Zone> {
    let boundary: String = r.try_get("boundary")?;
    Ok(Zone {
        id: text_uuid(r, "id")?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        translations: translations(r, "zones")?,
        boundary: serde_json::from_str(&boundary)
            .map_err(|_| super::unknown_value("zones.boundary", "text that is not JSON"))?,
        version: r.try_get("version")?,
        updated_at: time_from_ms(r.try_get("updated_at")?),
    })
}

/// Zones, all or those whose ids are in `only`.
pub async fn zones<'c, E: Executor<'c, Database = Any>>(
    e: E,
    only: Option<&[Uuid]>,
) -> R<Vec<Zone>> {
    let rows = sqlx::query(
        "SELECT id, code, name, translations, boundary, version, updated_at FROM zones ORDER BY code",
    )
    .fetch_all(e)
    .await?;
    let zones: R<Vec<Zone>> = rows.iter().map(zone_from_row).collect();
    Ok(zones?
        .into_iter()
        .filter(|z| only.is_none_or(|ids| ids.contains(&z.id)))
        .collect())
}

pub async fn zone<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Option<Zone>> {
    let row = sqlx::query(
        "SELECT id, code, name, translations, boundary, version, updated_at FROM zones WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(e)
    .await?;
    row.as_ref().map(zone_from_row).transpose()
}

pub async fn insert_zone(conn: &mut AnyConnection, input: &ZoneInput) -> R<Zone> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO zones (id, code, name, translations, boundary, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $6, $4, 1, $5, $5)",
    )
    .bind(id.to_string())
    .bind(&input.code)
    .bind(&input.name)
    .bind(input.boundary.to_string())
    .bind(now)
    .bind(input.translations.to_json())
    .execute(&mut *conn)
    .await?;
    changes::append(
        &mut *conn,
        &[PendingChange::upsert(
            EntityKind::Zone,
            id,
            Some(id.to_string()),
        )],
    )
    .await?;
    Ok(Zone {
        id,
        code: input.code.clone(),
        name: input.name.clone(),
        translations: input.translations.clone(),
        boundary: input.boundary.clone(),
        version: 1,
        updated_at: time_from_ms(now),
    })
}

pub async fn update_zone(conn: &mut AnyConnection, id: Uuid, input: &ZoneInput) -> R<Option<Zone>> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE zones SET code = $1, name = $2, boundary = $3, version = version + 1, updated_at = $4, \
         translations = $6 WHERE id = $5",
    )
    .bind(&input.code)
    .bind(&input.name)
    .bind(input.boundary.to_string())
    .bind(now)
    .bind(id.to_string())
    .bind(input.translations.to_json())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    changes::append(
        &mut *conn,
        &[PendingChange::upsert(
            EntityKind::Zone,
            id,
            Some(id.to_string()),
        )],
    )
    .await?;
    zone(&mut *conn, id).await
}

// ---- roster -----------------------------------------------------------------------------------

fn roster_from_row(r: &sqlx::any::AnyRow) -> R<RosterEntry> {
    let role: String = r.try_get("role")?;
    Ok(RosterEntry {
        id: text_uuid(r, "id")?,
        user_id: text_uuid(r, "user_id")?,
        username: r.try_get("username")?,
        zone_id: r.opt_uuid("zone_id")?,
        role: match crate::store::users::roles_from_text("roster.role", &role)?[..] {
            [one] => one,
            _ => return Err(super::unknown_value("roster.role", &role)),
        },
        valid_from: time_from_ms(r.try_get("valid_from")?),
        valid_to: r.try_get::<Option<i64>, _>("valid_to")?.map(time_from_ms),
    })
}

/// Roster rows valid at `at` (or all rows when `at` is `None`), optionally for one zone/user.
pub async fn roster<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zone_id: Option<Uuid>,
    user_id: Option<Uuid>,
    at: Option<i64>,
) -> R<Vec<RosterEntry>> {
    let rows = sqlx::query(
        "SELECT r.id, r.user_id, u.username, r.zone_id, r.role, r.valid_from, r.valid_to \
         FROM roster r JOIN users u ON u.id = r.user_id \
         WHERE ($1 IS NULL OR r.zone_id = $1 OR r.zone_id IS NULL) \
           AND ($2 IS NULL OR r.user_id = $2) \
           AND ($3 IS NULL OR (r.valid_from <= $3 AND (r.valid_to IS NULL OR r.valid_to > $3))) \
         ORDER BY r.valid_from, r.id",
    )
    .bind(zone_id.map(|z| z.to_string()))
    .bind(user_id.map(|u| u.to_string()))
    .bind(at)
    .fetch_all(e)
    .await?;
    rows.iter().map(roster_from_row).collect()
}

pub async fn roster_entry<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
) -> R<Option<RosterEntry>> {
    let row = sqlx::query(
        "SELECT r.id, r.user_id, u.username, r.zone_id, r.role, r.valid_from, r.valid_to \
         FROM roster r JOIN users u ON u.id = r.user_id WHERE r.id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(e)
    .await?;
    row.as_ref().map(roster_from_row).transpose()
}

pub async fn open_assignment(
    conn: &mut AnyConnection,
    user_id: Uuid,
    zone_id: Option<Uuid>,
    role: Role,
    by: Option<Uuid>,
    at: i64,
) -> R<Uuid> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO roster (id, user_id, zone_id, role, valid_from, valid_to, created_by) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6)",
    )
    .bind(id.to_string())
    .bind(user_id.to_string())
    .bind(zone_id.map(|z| z.to_string()))
    .bind(role.as_str())
    .bind(at)
    .bind(by.map(|b| b.to_string()))
    .execute(&mut *conn)
    .await?;
    // The assignee's scope changed: a roster change for the zone tells pullers to re-evaluate.
    changes::append(
        &mut *conn,
        &[PendingChange::upsert(
            ChangeEntity::Roster,
            id,
            zone_id.map(|z| z.to_string()),
        )],
    )
    .await?;
    Ok(id)
}

/// Closes a current assignment. Returns false if it was already closed or does not exist.
pub async fn close_assignment(conn: &mut AnyConnection, id: Uuid, at: i64) -> R<bool> {
    let zone: Option<Option<String>> =
        sqlx::query_scalar("SELECT zone_id FROM roster WHERE id = $1 AND valid_to IS NULL")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(zone) = zone else { return Ok(false) };
    sqlx::query("UPDATE roster SET valid_to = $1 WHERE id = $2 AND valid_to IS NULL")
        .bind(at)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    changes::append(
        &mut *conn,
        &[PendingChange::upsert(ChangeEntity::Roster, id, zone)],
    )
    .await?;
    Ok(true)
}

/// The zones a user covers now: `None` means every zone (an all-zones assignment).
pub async fn current_zones<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: Uuid,
    at: i64,
) -> R<Option<Vec<Uuid>>> {
    let rows: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT zone_id FROM roster WHERE user_id = $1 AND valid_from <= $2 \
         AND (valid_to IS NULL OR valid_to > $2)",
    )
    .bind(user_id.to_string())
    .bind(at)
    .fetch_all(e)
    .await?;
    if rows.iter().any(|z| z.is_none()) {
        return Ok(None);
    }
    let mut zones = rows
        .into_iter()
        .flatten()
        .map(|z| parse_uuid("assignments.zone_id", &z))
        .collect::<R<Vec<Uuid>>>()?;
    zones.sort();
    zones.dedup();
    Ok(Some(zones))
}

// ---- taxonomy ---------------------------------------------------------------------------------

pub async fn taxonomy<'c, E: Executor<'c, Database = Any>>(e: E) -> R<Vec<TaxonomyEntry>> {
    let rows = sqlx::query(
        "SELECT key, code, kind, name_zh, name_en, work_category, time_limit_hours, \
         time_limit_working_hours, time_limit_working_days FROM taxonomy ORDER BY kind, code",
    )
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TaxonomyEntry {
                key: r.try_get("key")?,
                code: r.try_get("code")?,
                kind: {
                    let kind: String = r.try_get("kind")?;
                    TaxonomyKind::parse(&kind)
                        .ok_or_else(|| super::unknown_value("taxonomy.kind", &kind))?
                },
                name_zh: r.try_get("name_zh")?,
                name_en: r.try_get("name_en")?,
                work_category: {
                    let category: String = r.try_get("work_category")?;
                    WorkCategory::parse(&category)
                        .ok_or_else(|| super::unknown_value("taxonomy.work_category", &category))?
                },
                time_limit_hours: r.try_get("time_limit_hours")?,
                time_limit_working_hours: r.try_get("time_limit_working_hours")?,
                time_limit_working_days: r.try_get("time_limit_working_days")?,
            })
        })
        .collect()
}

pub async fn taxonomy_entry<'c, E: Executor<'c, Database = Any>>(
    e: E,
    key: &str,
) -> R<Option<TaxonomyEntry>> {
    // Small table, read whole: keeps the row mapping in one place.
    Ok(taxonomy(e).await?.into_iter().find(|t| t.key == key))
}

/// Inserts or replaces taxonomy entries (a code's meaning may be refined, never its code).
pub async fn upsert_taxonomy(conn: &mut AnyConnection, entries: &[TaxonomyEntry]) -> R<()> {
    let now = now_ms();
    let mut pending = Vec::with_capacity(entries.len());
    for t in entries {
        sqlx::query(
            "INSERT INTO taxonomy (key, code, kind, name_zh, name_en, work_category, time_limit_hours, \
             version, time_limit_working_hours, time_limit_working_days) \
             VALUES ($8, $1, $2, $3, $4, $5, $6, $7, $9, $10) \
             ON CONFLICT (key) DO UPDATE SET name_zh = excluded.name_zh, \
             name_en = excluded.name_en, work_category = excluded.work_category, \
             time_limit_hours = excluded.time_limit_hours, version = excluded.version, \
             time_limit_working_hours = excluded.time_limit_working_hours, \
             time_limit_working_days = excluded.time_limit_working_days",
        )
        .bind(&t.code)
        .bind(t.kind.as_str())
        .bind(&t.name_zh)
        .bind(&t.name_en)
        .bind(t.work_category.as_str())
        .bind(t.time_limit_hours)
        .bind(now)
        .bind(TaxonomyEntry::key_of(t.kind, &t.code))
        .bind(t.time_limit_working_hours)
        .bind(t.time_limit_working_days)
        .execute(&mut *conn)
        .await?;
        pending.push(PendingChange::upsert(
            EntityKind::Taxonomy,
            TaxonomyEntry::key_of(t.kind, &t.code),
            None,
        ));
    }
    changes::append(conn, &pending).await
}

// ---- assets -----------------------------------------------------------------------------------

fn asset_from_row(r: &sqlx::any::AnyRow) -> R<Asset> {
    Ok(Asset {
        code: r.try_get("code")?,
        zone_id: text_uuid(r, "zone_id")?,
        category_code: r.try_get("category_code")?,
        name: r.try_get("name")?,
        lat: r.try_get("lat")?,
        lon: r.try_get("lon")?,
    })
}

/// A page of assets ordered by code, after `after_code`, optionally in some zones only.
pub async fn assets<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zone: Option<Uuid>,
    after_code: Option<&str>,
    limit: i64,
) -> R<Vec<Asset>> {
    let rows = sqlx::query(
        "SELECT code, zone_id, category_code, name, lat, lon FROM assets \
         WHERE ($1 IS NULL OR zone_id = $1) AND ($2 IS NULL OR code > $2) ORDER BY code LIMIT $3",
    )
    .bind(zone.map(|z| z.to_string()))
    .bind(after_code)
    .bind(limit)
    .fetch_all(e)
    .await?;
    rows.iter().map(asset_from_row).collect()
}

pub async fn asset<'c, E: Executor<'c, Database = Any>>(e: E, code: &str) -> R<Option<Asset>> {
    let row = sqlx::query(
        "SELECT code, zone_id, category_code, name, lat, lon FROM assets WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(e)
    .await?;
    row.as_ref().map(asset_from_row).transpose()
}

pub async fn existing_asset_codes(conn: &mut AnyConnection, codes: &[String]) -> R<Vec<String>> {
    let mut found = Vec::new();
    for chunk in codes.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT code FROM assets WHERE code IN ({})",
            placeholders.join(",")
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for c in chunk {
            q = q.bind(c.clone());
        }
        found.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

pub async fn insert_assets(conn: &mut AnyConnection, assets: &[Asset]) -> R<()> {
    let now = now_ms();
    let rows: Vec<Vec<Val>> = assets
        .iter()
        .map(|a| {
            vec![
                a.code.clone().into(),
                a.zone_id.into(),
                a.category_code.clone().into(),
                a.name.clone().into(),
                a.lat.into(),
                a.lon.into(),
                1_i64.into(),
                now.into(),
            ]
        })
        .collect();
    insert_rows(
        &mut *conn,
        "assets",
        &[
            "code",
            "zone_id",
            "category_code",
            "name",
            "lat",
            "lon",
            "version",
            "created_at",
        ],
        &rows,
    )
    .await?;
    let pending: Vec<PendingChange> = assets
        .iter()
        .map(|a| PendingChange::upsert(EntityKind::Asset, &a.code, Some(a.zone_id.to_string())))
        .collect();
    changes::append(conn, &pending).await
}

// ---- rulebooks --------------------------------------------------------------------------------

async fn rules_of<'c, E: Executor<'c, Database = Any>>(e: E, rulebook_id: &str) -> R<Vec<Rule>> {
    let rows = sqlx::query(
        "SELECT code, description, translations, points_milli, sources, taxonomy_codes FROM rules \
         WHERE rulebook_id = $1 ORDER BY code",
    )
    .bind(rulebook_id)
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            let sources: String = r.try_get("sources")?;
            let codes: String = r.try_get("taxonomy_codes")?;
            Ok(Rule {
                code: r.try_get("code")?,
                description: r.try_get("description")?,
                translations: translations(r, "rules")?,
                points: Milli::to_f64(r.try_get("points_milli")?),
                sources: sources.split(',').filter_map(Source::parse).collect(),
                taxonomy_codes: codes
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

pub async fn rulebooks(db: &sqlx::AnyPool) -> R<Vec<Rulebook>> {
    let rows = sqlx::query(
        "SELECT id, version, name, translations, effective_from FROM rulebooks ORDER BY version",
    )
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get("id")?;
        out.push(Rulebook {
            id: parse_uuid("rulebooks.id", &id)?,
            version: r.try_get("version")?,
            name: r.try_get("name")?,
            translations: translations(&r, "rulebooks")?,
            effective_from: time_from_ms(r.try_get("effective_from")?),
            rules: rules_of(db, &id).await?,
        });
    }
    Ok(out)
}

/// The rulebook in force at `at`: the highest version whose `effective_from` has passed.
pub async fn active_rulebook(db: &sqlx::AnyPool, at: i64) -> R<Option<Rulebook>> {
    Ok(rulebooks(db)
        .await?
        .into_iter()
        .filter(|rb| super::ms_from_time(rb.effective_from) <= at)
        .max_by_key(|rb| rb.version))
}

pub async fn insert_rulebook(
    conn: &mut AnyConnection,
    input: &RulebookInput,
    by: Option<Uuid>,
) -> R<Rulebook> {
    let id = new_id();
    let version: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM rulebooks")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO rulebooks (id, version, name, effective_from, created_by, created_at, translations) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(version)
    .bind(&input.name)
    .bind(super::ms_from_time(input.effective_from))
    .bind(by.map(|b| b.to_string()))
    .bind(now_ms())
    .bind(input.translations.to_json())
    .execute(&mut *conn)
    .await?;
    for rule in &input.rules {
        let sources: Vec<&str> = rule.sources.iter().map(|s| s.as_str()).collect();
        sqlx::query(
            "INSERT INTO rules (id, rulebook_id, code, description, points_milli, sources, taxonomy_codes, translations) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id().to_string())
        .bind(id.to_string())
        .bind(&rule.code)
        .bind(&rule.description)
        .bind(Milli::from_f64(rule.points, 1000.0).unwrap_or(0))
        .bind(sources.join(","))
        .bind(rule.taxonomy_codes.join(","))
        .bind(rule.translations.to_json())
        .execute(&mut *conn)
        .await?;
    }
    changes::append(
        &mut *conn,
        &[PendingChange::upsert(EntityKind::Rule, id, None)],
    )
    .await?;
    Ok(Rulebook {
        id,
        version,
        name: input.name.clone(),
        translations: input.translations.clone(),
        effective_from: input.effective_from,
        rules: input.rules.clone(),
    })
}

// ---- periods and coefficients -----------------------------------------------------------------

fn period_from_row(r: &sqlx::any::AnyRow) -> R<Period> {
    Ok(Period {
        id: text_uuid(r, "id")?,
        code: r.try_get("code")?,
        starts_at: time_from_ms(r.try_get("starts_at")?),
        ends_at: time_from_ms(r.try_get("ends_at")?),
        status: decode::parse("periods.status", &r.try_get::<String, _>("status")?)?,
        closed_at: r.try_get::<Option<i64>, _>("closed_at")?.map(time_from_ms),
    })
}

const PERIOD_COLUMNS: &str = "id, code, starts_at, ends_at, status, closed_at";

pub async fn periods<'c, E: Executor<'c, Database = Any>>(e: E) -> R<Vec<Period>> {
    let rows = sqlx::query(&format!(
        "SELECT {PERIOD_COLUMNS} FROM periods ORDER BY starts_at"
    ))
    .fetch_all(e)
    .await?;
    rows.iter().map(period_from_row).collect()
}

pub async fn period<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Option<Period>> {
    let row = sqlx::query(&format!(
        "SELECT {PERIOD_COLUMNS} FROM periods WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(e)
    .await?;
    row.as_ref().map(period_from_row).transpose()
}

/// Periods whose time range overlaps `[starts, ends)`.
pub async fn overlapping_periods(
    conn: &mut AnyConnection,
    starts: i64,
    ends: i64,
) -> R<Vec<Period>> {
    let rows = sqlx::query(&format!(
        "SELECT {PERIOD_COLUMNS} FROM periods WHERE starts_at < $2 AND ends_at > $1"
    ))
    .bind(starts)
    .bind(ends)
    .fetch_all(conn)
    .await?;
    rows.iter().map(period_from_row).collect()
}

pub async fn insert_period(conn: &mut AnyConnection, input: &PeriodSpan) -> R<Period> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO periods (id, code, starts_at, ends_at, status, created_at) VALUES ($1, $2, $3, $4, 'open', $5)",
    )
    .bind(id.to_string())
    .bind(&input.code)
    .bind(super::ms_from_time(input.starts_at))
    .bind(super::ms_from_time(input.ends_at))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    changes::append(
        &mut *conn,
        &[PendingChange::upsert(EntityKind::Period, id, None)],
    )
    .await?;
    Ok(Period {
        id,
        code: input.code.clone(),
        starts_at: input.starts_at,
        ends_at: input.ends_at,
        status: PeriodStatus::Open,
        closed_at: None,
    })
}

pub async fn coefficients<'c, E: Executor<'c, Database = Any>>(
    e: E,
    period_id: Uuid,
) -> R<Vec<Coefficient>> {
    let rows = sqlx::query(
        "SELECT c.zone_id, c.period_id, c.coefficient_milli FROM zone_coefficients c \
         JOIN zones z ON z.id = c.zone_id WHERE c.period_id = $1 ORDER BY z.code",
    )
    .bind(period_id.to_string())
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Coefficient {
                zone_id: text_uuid(r, "zone_id")?,
                period_id: text_uuid(r, "period_id")?,
                coefficient: Milli::to_f64(r.try_get("coefficient_milli")?),
            })
        })
        .collect()
}

/// Sets a zone's coefficient for a period; returns the previous value (thousandths), if any.
pub async fn set_coefficient(
    conn: &mut AnyConnection,
    zone_id: Uuid,
    period_id: Uuid,
    milli: i64,
    by: Option<Uuid>,
) -> R<Option<i64>> {
    let before: Option<i64> = sqlx::query_scalar(
        "SELECT coefficient_milli FROM zone_coefficients WHERE zone_id = $1 AND period_id = $2",
    )
    .bind(zone_id.to_string())
    .bind(period_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO zone_coefficients (id, zone_id, period_id, coefficient_milli, set_by, set_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (zone_id, period_id) DO UPDATE SET coefficient_milli = excluded.coefficient_milli, \
         set_by = excluded.set_by, set_at = excluded.set_at",
    )
    .bind(new_id().to_string())
    .bind(zone_id.to_string())
    .bind(period_id.to_string())
    .bind(milli)
    .bind(by.map(|b| b.to_string()))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(before)
}
