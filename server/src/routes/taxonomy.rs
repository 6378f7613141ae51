//! The problem taxonomy (components and events, coded).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::TaxonomyEntry;
use crate::routes::extract::Json;
use crate::state::AppState;
use crate::store::{audit, reference};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, upsert))
}

pub fn validate_entry(t: &TaxonomyEntry) -> Result<(), String> {
    let digits = t.code.chars().all(|c| c.is_ascii_digit());
    if !digits || !(t.code.len() == 2 || t.code.len() == 4) {
        return Err("code must be 2 or 4 digits".into());
    }
    if t.name_en.trim().is_empty() || t.name_zh.trim().is_empty() {
        return Err("names must not be empty".into());
    }
    if let Some(h) = t.time_limit_hours {
        if !(1..=24 * 365).contains(&h) {
            return Err("time_limit_hours must be between 1 and 8760".into());
        }
    }
    Ok(())
}

/// The whole taxonomy.
#[utoipa::path(get, path = "/v1/taxonomy", operation_id = "list_taxonomy", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Vec<TaxonomyEntry>)))]
async fn list(
    State(state): State<AppState>,
    _user: AuthUser,
) -> ApiResult<Json<Vec<TaxonomyEntry>>> {
    Ok(Json(reference::taxonomy(&state.db.pool).await?))
}

/// Add or refine taxonomy entries (admin); all or none.
#[utoipa::path(put, path = "/v1/taxonomy", operation_id = "upsert_taxonomy", tag = "reference", security(("bearer" = [])),
    request_body = Vec<TaxonomyEntry>,
    responses((status = 200, body = Vec<TaxonomyEntry>), (status = 422, body = gridline_sync::ErrorBody)))]
async fn upsert(
    State(state): State<AppState>,
    user: AuthUser,
    Json(entries): Json<Vec<TaxonomyEntry>>,
) -> ApiResult<Json<Vec<TaxonomyEntry>>> {
    user.require_admin()?;
    if entries.len() > 10_000 {
        return Err(ApiError::invalid("$", "at most 10000 entries at once"));
    }
    for (i, t) in entries.iter().enumerate() {
        validate_entry(t).map_err(|e| ApiError::invalid(&format!("[{i}]"), e))?;
    }
    let mut tx = state.db.begin_write().await?;
    let before = reference::taxonomy(tx.conn()).await?;
    reference::upsert_taxonomy(tx.conn(), &entries).await?;
    for t in &entries {
        let key = TaxonomyEntry::key_of(t.kind, &t.code);
        let old = before.iter().find(|b| b.key == key);
        audit::record(
            tx.conn(),
            Some(user.user_id),
            "taxonomy.upsert",
            "taxonomy",
            &key,
            old,
            Some(t),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(reference::taxonomy(&state.db.pool).await?))
}
