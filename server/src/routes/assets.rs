//! The coded asset registry, with all-or-nothing CSV import.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::ErrorCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{Asset, ImportReport, Page, RowError, TaxonomyEntry, TaxonomyKind};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::{audit, reference};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(import))
}

/// Largest CSV import.
pub const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AssetQuery {
    pub zone_id: Option<Uuid>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 200).
    pub limit: Option<i64>,
}

/// Assets in the caller's scope, by code, paged.
#[utoipa::path(get, path = "/v1/assets", operation_id = "list_assets", tag = "reference", security(("bearer" = [])), params(AssetQuery),
    responses((status = 200, body = Page<Asset>)))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<AssetQuery>,
) -> ApiResult<Json<Page<Asset>>> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let scope = user.scope(&state.db).await?;
    if let Some(zone) = q.zone_id {
        scope.check_visible(zone, "zone")?;
    }
    // Page through, dropping out-of-scope rows, until a page is full or the table ends.
    let mut items = Vec::new();
    let mut after = q.after.clone();
    loop {
        let batch =
            reference::assets(&state.db.pool, q.zone_id, after.as_deref(), limit + 1).await?;
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
    Ok(Json(Page { items, next }))
}

/// One asset by code (404 outside the caller's scope).
#[utoipa::path(get, path = "/v1/assets/{code}", operation_id = "get_asset", tag = "reference", security(("bearer" = [])), params(("code" = String, Path)),
    responses((status = 200, body = Asset), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(code): PathParam<String>,
) -> ApiResult<Json<Asset>> {
    let asset = reference::asset(&state.db.pool, &code)
        .await?
        .ok_or_else(|| ApiError::not_found("asset"))?;
    user.scope(&state.db)
        .await?
        .check_visible(asset.zone_id, "asset")?;
    Ok(Json(asset))
}

/// Import assets from CSV (admin): header `code,zone_code,category_code,name,lat,lon`, where
/// `category_code` is the 4-digit component code (its digits must match the asset code's). Every
/// row is checked first; if any row is bad, nothing is imported and every bad row is reported
/// in `details.errors` with its line number.
#[utoipa::path(post, path = "/v1/assets/import", operation_id = "import_assets", tag = "reference", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = ImportReport), (status = 422, body = gridline_sync::ErrorBody)))]
async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ImportReport>)> {
    user.require_admin()?;
    let zones = reference::zones(&state.db.pool, None).await?;
    let taxonomy = reference::taxonomy(&state.db.pool).await?;
    let (assets, mut errors) = parse_csv(&body, &zones, &taxonomy);
    let mut tx = state.db.begin_write().await?;
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
    Ok((
        StatusCode::CREATED,
        Json(ImportReport {
            imported: assets.len(),
        }),
    ))
}

const HEADER: [&str; 6] = ["code", "zone_code", "category_code", "name", "lat", "lon"];

/// Parses and checks every row; returns the good rows with their line numbers and the errors.
pub fn parse_csv(
    body: &[u8],
    zones: &[crate::model::Zone],
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
