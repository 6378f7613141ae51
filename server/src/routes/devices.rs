//! Device enrolment and revocation.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::{DeviceInfo, EnrolDeviceRequest, EnrolDeviceResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::{self, Revoker};
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::routes::extract::{Json, PathParam};
use crate::state::AppState;
use crate::store::devices;

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
    let (created, enrolled) =
        accounts::enrol_device(&state.token_service(), user.user_id, &req).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(enrolled)))
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
