//! Device enrolment and revocation.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::signing::{decode_public_key, GENESIS_HASH};
use gridline_sync::{DeviceInfo, EnrolDeviceRequest, EnrolDeviceResponse, ServerKey};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::{self, Revoker};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::routes::extract::{Json, PathParam};
use crate::state::AppState;
use crate::store::{self, audit, devices, now_ms, users};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enrol, list))
        .routes(routes!(revoke))
}

/// Enrol this phone: bind its Ed25519 public key to the caller. Returns tokens bound to the
/// device and the server key that signs push receipts. Repeating the same enrolment is
/// idempotent (200); the same device id with another key or user is a conflict.
#[utoipa::path(post, path = "/v1/devices", operation_id = "enrol_device", tag = "devices", request_body = EnrolDeviceRequest,
    security(("bearer" = [])), responses(
    (status = 201, body = EnrolDeviceResponse),
    (status = 200, body = EnrolDeviceResponse, description = "Already enrolled with this key"),
    (status = 409, body = gridline_sync::ErrorBody),
    (status = 422, body = gridline_sync::ErrorBody)))]
async fn enrol(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<EnrolDeviceRequest>,
) -> ApiResult<(StatusCode, Json<EnrolDeviceResponse>)> {
    decode_public_key(&req.public_key).map_err(|_| {
        ApiError::invalid(
            "public_key",
            "must be base64 of a 32-byte Ed25519 public key",
        )
    })?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    // Every id a phone makes is a UUIDv7: a device that makes others would enrol and then have
    // every operation refused.
    if !gridline_sync::validation::is_uuid_v7(req.device_id) {
        return Err(ApiError::invalid("device_id", "must be a UUIDv7"));
    }
    let mut tx = state.db.begin_write().await?;
    let account = users::by_id(tx.conn(), user.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("unknown user"))?;
    let (status, device) = match devices::get(tx.conn(), req.device_id).await? {
        Some(existing) => {
            if existing.user_id != user.user_id || existing.public_key != req.public_key {
                return Err(ApiError::conflict(
                    "this device id is enrolled with another key or user",
                ));
            }
            if existing.revoked_at.is_some() {
                return Err(ApiError::new(
                    gridline_sync::ErrorCode::DeviceRevoked,
                    "this device has been revoked",
                ));
            }
            (StatusCode::OK, existing)
        }
        None => {
            let row = devices::DeviceRow {
                id: req.device_id,
                user_id: user.user_id,
                name: name.to_owned(),
                public_key: req.public_key.clone(),
                enrolled_at: now_ms(),
                revoked_at: None,
                next_seq: 1,
                last_hash: GENESIS_HASH.to_owned(),
                clock_skew_ms: None,
                last_sync_at: None,
                flagged: None,
            };
            devices::insert(tx.conn(), &row).await?;
            audit::record(
                tx.conn(),
                Some(user.user_id),
                "device.enrol",
                "device",
                &row.id.to_string(),
                None::<&()>,
                Some(&accounts::device_info(&row)),
            )
            .await?;
            (StatusCode::CREATED, row)
        }
    };
    let tokens =
        super::auth::issue_tokens(&state, &mut tx, &account, Some(device.id), store::new_id())
            .await?;
    tx.commit().await?;
    Ok((
        status,
        Json(EnrolDeviceResponse {
            device: accounts::device_info(&device),
            tokens,
            receipt_key: ServerKey {
                key_id: state.keys.current.kid.clone(),
                public_key: state.keys.current_public_b64(),
            },
        }),
    ))
}

/// Devices: the caller's own, or every device for an admin.
#[utoipa::path(get, path = "/v1/devices", operation_id = "list_devices", tag = "devices", security(("bearer" = [])), responses(
    (status = 200, body = Vec<DeviceInfo>)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<DeviceInfo>>> {
    let owner = if user.is_admin() {
        None
    } else {
        Some(user.user_id)
    };
    let rows = devices::list(&state.db.pool, owner).await?;
    Ok(Json(rows.iter().map(accounts::device_info).collect()))
}

/// Revoke a device (an admin, or the device's owner): its tokens stop working at its next
/// request and its refresh tokens are revoked.
#[utoipa::path(post, path = "/v1/devices/{id}/revoke", operation_id = "revoke_device", tag = "devices", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Device id")), responses(
    (status = 200, body = DeviceInfo), (status = 404, body = gridline_sync::ErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<DeviceInfo>> {
    let by = Revoker::User {
        id: user.user_id,
        admin: user.is_admin(),
    };
    let info = accounts::revoke_device(&state.db, by, id).await?;
    Ok(Json(info))
}
