//! The coded asset registry: assets listed and read within the caller's scope, and imported
//! from CSV all or nothing (admins). The API's asset routes call it.

use gridline_sync::ErrorCode;
use serde_json::json;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{Asset, ImportReport, Page, RowError, TaxonomyEntry, TaxonomyKind, Zone};
use crate::store::{audit, reference, Db};

/// Assets in the caller's scope (in `zone` if given, which must be visible), by code, after
/// the code `after`, `limit` (1 to 1000) to a page.
pub async fn list(
    db: &Db,
    user: &AuthUser,
    zone: Option<Uuid>,
    after: Option<String>,
    limit: i64,
) -> ApiResult<Page<Asset>> {
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let scope = user.scope(db).await?;
    if let Some(zone) = zone {
        scope.check_visible(zone, "zone")?;
    }
    // Page through, dropping out-of-scope rows, until a page is full or the table ends.
    let mut items = Vec::new();
    let mut after = after;
    loop {
        let batch = reference::assets(&db.pool, zone, after.as_deref(), limit + 1).await?;
        let exhausted = batch.len() as i64 <= limit;
        for a in batch {
            after = Some(a.code.clone());
            if scope.contains(a.zone_id) {
                items.push(a);
            }
            if items.len() as i64 > limit {
                break;
            }
        }
        if items.len() as i64 > limit || exhausted {
            break;
        }
    }
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|a| a.code.clone())
    } else {
        None
    };
    Ok(Page { items, next })
}

/// One asset by code (404 outside the caller's scope).
pub async fn get(db: &Db, user: &AuthUser, code: &str) -> ApiResult<Asset> {
    let asset = reference::asset(&db.pool, code)
        .await?
        .ok_or_else(|| ApiError::not_found("asset"))?;
    user.scope(db)
        .await?
        .check_visible(asset.zone_id, "asset")?;
    Ok(asset)
}

/// Imports assets from a CSV file (see [`parse_csv`]) for an admin, all or nothing: if any
/// row is bad or names an asset that exists, nothing is imported and `details.errors` lists
/// every bad row (the first thousand) with its line number. Audited.
pub async fn import(db: &Db, user: &AuthUser, csv: &[u8]) -> ApiResult<ImportReport> {
    user.require_admin()?;
    let zones = reference::zones(&db.pool, None).await?;
    let taxonomy = reference::taxonomy(&db.pool).await?;
    let (assets, mut errors) = parse_csv(csv, &zones, &taxonomy);
    let mut tx = db.begin_write().await?;
    let codes: Vec<String> = assets.iter().map(|(_, a)| a.code.clone()).collect();
    let existing = reference::existing_asset_codes(tx.conn(), &codes).await?;
    for (line, a) in &assets {
        if existing.contains(&a.code) {
            errors.push(RowError {
                line: *line,
                column: Some("code".into()),
                message: format!("asset {} already exists", a.code),
            });
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        let count = errors.len();
        errors.truncate(1000);
        return Err(ApiError::new(
            ErrorCode::ImportFailed,
            format!("{count} row(s) have errors; nothing was imported"),
        )
        .with_details(json!({ "errors": errors, "error_count": count })));
    }
    let assets: Vec<Asset> = assets.into_iter().map(|(_, a)| a).collect();
    reference::insert_assets(tx.conn(), &assets).await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "asset.import",
        "asset",
        "*",
        None::<&()>,
        Some(&json!({ "imported": assets.len(), "codes": codes })),
    )
    .await?;
    tx.commit().await?;
    Ok(ImportReport {
        imported: assets.len(),
    })
}

const HEADER: [&str; 6] = ["code", "zone_code", "category_code", "name", "lat", "lon"];

/// Parses and checks every row of a file with the header
/// `code,zone_code,category_code,name,lat,lon`; returns the good rows with their line numbers and the errors.
pub fn parse_csv(
    body: &[u8],
    zones: &[Zone],
    taxonomy: &[TaxonomyEntry],
) -> (Vec<(u64, Asset)>, Vec<RowError>) {
    let mut good = Vec::new();
    let mut errors = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    match reader.headers() {
        Ok(h) if h.iter().eq(HEADER.iter().copied()) => {}
        Ok(h) => {
            errors.push(RowError {
                line: 1,
                column: None,
                message: format!(
                    "header must be `{}`, found `{}`",
                    HEADER.join(","),
                    h.iter().collect::<Vec<_>>().join(",")
                ),
            });
            return (good, errors);
        }
        Err(e) => {
            errors.push(RowError {
                line: 1,
                column: None,
                message: format!("unreadable header: {e}"),
            });
            return (good, errors);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(RowError {
                    line,
                    column: None,
                    message: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let mut err = |column: &str, message: String| {
            errors.push(RowError {
                line,
                column: Some(column.into()),
                message,
            })
        };
        let field = |i: usize| record.get(i).unwrap_or("");
        let code = field(0);
        let mut ok = true;
        if code.len() != 16 || !code.chars().all(|c| c.is_ascii_digit()) {
            err("code", format!("`{code}` is not a 16-digit asset code"));
            ok = false;
        } else if !seen.insert(code.to_owned()) {
            err("code", format!("`{code}` appears twice in the file"));
            ok = false;
        }
        let zone = zones.iter().find(|z| z.code == field(1));
        if zone.is_none() {
            err("zone_code", format!("no zone with code `{}`", field(1)));
            ok = false;
        }
        let category = field(2);
        let key = TaxonomyEntry::key_of(TaxonomyKind::Component, category);
        if !taxonomy.iter().any(|t| t.key == key) {
            err(
                "category_code",
                format!("no component with code `{category}`"),
            );
            ok = false;
        } else if code.len() == 16 && category.len() == 4 && code[6..10] != *category {
            err(
                "category_code",
                format!(
                    "`{category}` does not match the code's major+minor digits `{}`",
                    &code[6..10]
                ),
            );
            ok = false;
        }
        let name = field(3);
        if name.is_empty() || name.chars().count() > 200 {
            err("name", "must be 1 to 200 characters".into());
            ok = false;
        }
        let lat = field(4)
            .parse::<f64>()
            .ok()
            .filter(|v| (-90.0..=90.0).contains(v));
        let lon = field(5)
            .parse::<f64>()
            .ok()
            .filter(|v| (-180.0..=180.0).contains(v));
        if lat.is_none() {
            err("lat", format!("`{}` is not a latitude", field(4)));
            ok = false;
        }
        if lon.is_none() {
            err("lon", format!("`{}` is not a longitude", field(5)));
            ok = false;
        }
        if let (true, Some(zone), Some(lat), Some(lon)) = (ok, zone, lat, lon) {
            good.push((
                line,
                Asset {
                    code: code.to_owned(),
                    zone_id: zone.id,
                    category_code: key,
                    name: name.to_owned(),
                    lat,
                    lon,
                },
            ));
        }
    }
    (good, errors)
}
