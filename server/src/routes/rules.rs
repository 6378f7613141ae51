//! Rulebooks: versioned sets of deduction rules. A new version is a new rulebook; old versions
//! stay as they were, because ledger entries cite them.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{Milli, Rulebook, RulebookInput};
use crate::routes::extract::Json;
use crate::state::AppState;
use crate::store::{audit, now_ms, reference};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(active))
}

/// Every rulebook version, oldest first.
#[utoipa::path(get, path = "/v1/rulebooks", operation_id = "list_rulebooks", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Vec<Rulebook>)))]
async fn list(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Vec<Rulebook>>> {
    Ok(Json(reference::rulebooks(&state.db.pool).await?))
}

/// The rulebook in force now.
#[utoipa::path(get, path = "/v1/rulebooks/active", operation_id = "get_active_rulebook", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Rulebook), (status = 404, body = gridline_sync::ErrorBody)))]
async fn active(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Rulebook>> {
    reference::active_rulebook(&state.db.pool, now_ms())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("active rulebook"))
}

pub async fn validate(state: &AppState, input: &RulebookInput) -> ApiResult<()> {
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    input
        .translations
        .check(200)
        .map_err(|e| ApiError::invalid("translations", e))?;
    if input.rules.is_empty() || input.rules.len() > 1000 {
        return Err(ApiError::invalid("rules", "must have 1 to 1000 rules"));
    }
    let taxonomy = reference::taxonomy(&state.db.pool).await?;
    let mut codes = std::collections::HashSet::new();
    for (i, rule) in input.rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if rule.code.trim().is_empty() || rule.code.len() > 64 || !codes.insert(rule.code.clone()) {
            return Err(ApiError::invalid(
                &at("code"),
                "must be 1 to 64 bytes and unique in the rulebook",
            ));
        }
        if rule.description.trim().is_empty() || rule.description.chars().count() > 1000 {
            return Err(ApiError::invalid(
                &at("description"),
                "must be 1 to 1000 characters",
            ));
        }
        rule.translations
            .check(1000)
            .map_err(|e| ApiError::invalid(&at("translations"), e))?;
        if Milli::from_f64(rule.points, 100.0).is_none() {
            return Err(ApiError::invalid(
                &at("points"),
                "must be between 0 and 100 with at most 3 decimals",
            ));
        }
        if rule.sources.is_empty() {
            return Err(ApiError::invalid(
                &at("sources"),
                "needs at least one source",
            ));
        }
        for code in &rule.taxonomy_codes {
            if !taxonomy.iter().any(|t| &t.key == code) {
                return Err(ApiError::invalid(
                    &at("taxonomy_codes"),
                    format!("unknown taxonomy key {code}"),
                ));
            }
        }
    }
    Ok(())
}

/// Publish a new rulebook version (admin).
#[utoipa::path(post, path = "/v1/rulebooks", operation_id = "create_rulebook", tag = "reference", security(("bearer" = [])), request_body = RulebookInput,
    responses((status = 201, body = Rulebook), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<RulebookInput>,
) -> ApiResult<(StatusCode, Json<Rulebook>)> {
    user.require_admin()?;
    validate(&state, &input).await?;
    let mut tx = state.db.begin_write().await?;
    let rulebook = reference::insert_rulebook(tx.conn(), &input, Some(user.user_id)).await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "rulebook.create",
        "rulebook",
        &rulebook.id.to_string(),
        None::<&()>,
        Some(&rulebook),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(rulebook)))
}
