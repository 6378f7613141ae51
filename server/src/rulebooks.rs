//! Rulebooks: versioned sets of deduction rules. A new version is a new rulebook, in force from
//! its `effective_from`; old versions stay as they were, because ledger entries cite them.
//! Published through the API (`POST /v1/rulebooks`) and the console's administration alike.

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{Milli, Rulebook, RulebookInput};
use crate::store::{audit, reference, Db};

/// Checks a rulebook before it is published: a name, 1 to 1000 rules with unique codes, texts,
/// points of at most three decimals, at least one source each, and taxonomy keys that exist.
pub async fn validate(db: &Db, input: &RulebookInput) -> ApiResult<()> {
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
    let taxonomy = reference::taxonomy(&db.pool).await?;
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

/// Publishes a new rulebook version (admins only, audited).
pub async fn publish(db: &Db, user: &AuthUser, input: &RulebookInput) -> ApiResult<Rulebook> {
    user.require_admin()?;
    validate(db, input).await?;
    let mut tx = db.begin_write().await?;
    let rulebook = reference::insert_rulebook(tx.conn(), input, Some(user.user_id)).await?;
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
    Ok(rulebook)
}
