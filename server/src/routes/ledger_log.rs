//! The ledger as a transparency log (see `ledger::log` and SECURITY.md): the latest signed
//! checkpoint, published to anyone, and inclusion and consistency proofs for supervisors and
//! admins.

use axum::extract::State;
use gridline_sync::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::ledger::log::{Checkpoint, Leaf, Log};
use crate::routes::extract::{Json, Query};
use crate::state::AppState;
use crate::store::{ledger, ledger_log, parse_uuid};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkpoint))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
}

/// The latest signed checkpoint of the ledger: its size, the RFC 6962 Merkle root over its
/// entries, the time and the server's Ed25519 signature. Public (no token): it says how many
/// entries the ledger has and nothing about them, and is meant to be saved by others, so
/// that a later rewrite or truncation of the ledger shows (`gridline ledger verify
/// --checkpoint FILE`, consistency proofs). A checkpoint is issued with every approval and
/// reversal and at every period close.
#[utoipa::path(get, path = "/v1/ledger/checkpoint", operation_id = "get_ledger_checkpoint", tag = "ledger",
    responses((status = 200, body = Checkpoint),
        (status = 404, body = gridline_sync::ErrorBody, description = "no checkpoint has been issued yet")))]
async fn checkpoint(State(state): State<AppState>) -> ApiResult<Json<Checkpoint>> {
    ledger_log::latest_checkpoint(&state.db.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("checkpoint"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The ledger entry.
    pub entry_id: Uuid,
    /// The size of the tree the proof is for: that of the checkpoint to verify against
    /// (default the latest checkpoint's).
    pub tree_size: Option<i64>,
}

/// An entry's audit path (RFC 9162 §2.1.3): with the entry's hash it recomputes the root of
/// the tree of `tree_size` entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    pub entry_id: Uuid,
    pub seq: i64,
    /// `seq - 1`: the leaf's index in the tree.
    pub leaf_index: i64,
    pub tree_size: i64,
    /// The entry's hash (the leaf is its 32 bytes), lower-case hex.
    pub entry_hash: String,
    /// Sibling hashes from the leaf up to the root, lower-case hex.
    pub audit_path: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The size of the earlier tree (at least 1).
    pub first: i64,
    /// The size of the later tree (default the latest checkpoint's).
    pub second: Option<i64>,
}

/// A consistency proof (RFC 9162 §2.1.4): the tree of `second` entries is the tree of `first`
/// entries with entries appended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    pub first: i64,
    pub second: i64,
    /// Lower-case hex hashes, in the order of RFC 9162's `SUBPROOF`.
    pub proof: Vec<String>,
}

/// Proofs read the ledger and name entries across zones: supervisors and admins.
fn require_auditor(user: &AuthUser) -> ApiResult<()> {
    user.require_any(&[Role::Supervisor])
}

/// `size`, or the latest checkpoint's size.
async fn size_or_latest(state: &AppState, size: Option<i64>) -> ApiResult<i64> {
    match size {
        Some(s) => Ok(s),
        None => Ok(ledger_log::latest_checkpoint(&state.db.pool)
            .await?
            .ok_or_else(|| ApiError::not_found("checkpoint"))?
            .tree_size),
    }
}

/// The tree of the first `size` entries; `field` names the parameter when the ledger is
/// shorter.
async fn tree(state: &AppState, size: i64, field: &str) -> ApiResult<Log> {
    let leaves = ledger_log::leaves(&state.db.pool, 0, Some(size)).await?;
    if (leaves.len() as i64) < size {
        return Err(ApiError::invalid(
            field,
            format!("the ledger has {} entries", leaves.len()),
        ));
    }
    Ok(Log::from_leaves(leaves))
}

fn hex_all(hashes: Vec<Leaf>) -> Vec<String> {
    hashes.into_iter().map(hex::encode).collect()
}

/// The inclusion proof of a ledger entry in the tree of `tree_size` entries (supervisors and
/// admins; the entry in the caller's zones).
#[utoipa::path(get, path = "/v1/ledger/proof/inclusion", operation_id = "get_inclusion_proof", tag = "ledger", security(("bearer" = [])),
    params(InclusionQuery),
    responses((status = 200, body = InclusionProof), (status = 404, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn inclusion_proof(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<InclusionQuery>,
) -> ApiResult<Json<InclusionProof>> {
    require_auditor(&user)?;
    let entry = ledger::entry(&state.db.pool, q.entry_id)
        .await?
        .ok_or_else(|| ApiError::not_found("ledger entry"))?;
    user.scope(&state.db).await?.check_visible(
        parse_uuid("ledger_entries.zone_id", &entry.zone_id)?,
        "ledger entry",
    )?;
    let tree_size = size_or_latest(&state, q.tree_size).await?;
    if tree_size < entry.seq {
        return Err(ApiError::invalid(
            "tree_size",
            format!(
                "the entry (seq {}) is not in a tree of this size",
                entry.seq
            ),
        ));
    }
    let log = tree(&state, tree_size, "tree_size").await?;
    let audit_path = u64::try_from(entry.seq - 1)
        .ok()
        .and_then(|index| log.inclusion_proof(index))
        .ok_or_else(|| ApiError::invalid("entry_id", "the entry is not a leaf of the tree"))?;
    Ok(Json(InclusionProof {
        entry_id: q.entry_id,
        seq: entry.seq,
        leaf_index: entry.seq - 1,
        tree_size,
        entry_hash: entry.hash,
        audit_path: hex_all(audit_path),
    }))
}

/// The consistency proof between the trees of `first` and `second` entries (supervisors and
/// admins).
#[utoipa::path(get, path = "/v1/ledger/proof/consistency", operation_id = "get_consistency_proof", tag = "ledger", security(("bearer" = [])),
    params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 404, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn consistency_proof(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProof>> {
    require_auditor(&user)?;
    let second = size_or_latest(&state, q.second).await?;
    if q.first < 1 {
        return Err(ApiError::invalid("first", "must be at least 1"));
    }
    if q.first > second {
        return Err(ApiError::invalid("first", "must be at most second"));
    }
    let log = tree(&state, second, "second").await?;
    let proof = log
        .consistency_proof(q.first as u64)
        .ok_or_else(|| ApiError::invalid("first", "must be between 1 and second"))?;
    Ok(Json(ConsistencyProof {
        first: q.first,
        second,
        proof: hex_all(proof),
    }))
}
