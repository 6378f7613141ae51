//! Users and devices: creating accounts, setting passwords, revoking phones. Called by the HTTP
//! routes, the `gridline admin` commands and the demo loader alike.

use gridline_sync::{DeviceInfo, Role};
use uuid::Uuid;

use crate::auth::password;
use crate::error::{ApiError, ApiResult};
use crate::model::{User, UserInput};
use crate::store::{self, audit, devices, now_ms, time_from_ms, tokens, users, Db};

pub fn user_model(u: &users::UserRow) -> User {
    User {
        id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        roles: u.roles.clone(),
        disabled: u.disabled_at.is_some(),
    }
}

/// Checks the input, hashes the password and stores the user (audited as `actor`, `None` for
/// the command line).
pub async fn create_user(db: &Db, actor: Option<Uuid>, input: UserInput) -> ApiResult<User> {
    validate_username(&input.username)?;
    if input.display_name.trim().is_empty() || input.display_name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "display_name",
            "must be 1 to 200 characters",
        ));
    }
    password::check_strength(&input.password).map_err(|e| ApiError::invalid("password", e))?;
    if input.roles.is_empty() {
        return Err(ApiError::invalid("roles", "needs at least one role"));
    }
    let hash = password::hash(input.password).await?;
    insert_user(
        db,
        actor,
        &input.username,
        &input.display_name,
        &hash,
        &input.roles,
    )
    .await
}

/// Stores a user whose password is already hashed (the demo hashes one password for all).
pub async fn insert_user(
    db: &Db,
    actor: Option<Uuid>,
    username: &str,
    display_name: &str,
    password_hash: &str,
    roles: &[Role],
) -> ApiResult<User> {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    let row = users::UserRow {
        id: store::new_id(),
        username: username.to_owned(),
        display_name: display_name.trim().to_owned(),
        password_hash: password_hash.to_owned(),
        roles,
        disabled_at: None,
        created_at: now_ms(),
    };
    let mut tx = db.begin_write().await?;
    if users::by_username(tx.conn(), username).await?.is_some() {
        return Err(ApiError::conflict(format!("user name {username} is taken")));
    }
    users::insert(tx.conn(), &row).await?;
    let model = user_model(&row);
    audit::record(
        tx.conn(),
        actor,
        "user.create",
        "user",
        &row.id.to_string(),
        None::<&()>,
        Some(&model),
    )
    .await?;
    tx.commit().await?;
    Ok(model)
}

fn validate_username(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username",
            "must be 1 to 64 of a-z, A-Z, 0-9, '.', '_', '-'",
        ))
    }
}

/// Sets a new password and revokes every refresh token of the user.
pub async fn set_password(
    db: &Db,
    actor: Option<Uuid>,
    id: Uuid,
    password: String,
) -> ApiResult<()> {
    password::check_strength(&password).map_err(|e| ApiError::invalid("password", e))?;
    let hash = password::hash(password).await?;
    let mut tx = db.begin_write().await?;
    if !users::set_password(tx.conn(), id, &hash).await? {
        return Err(ApiError::not_found("user"));
    }
    tokens::revoke_user(tx.conn(), id, now_ms()).await?;
    audit::record(
        tx.conn(),
        actor,
        "user.reset_password",
        "user",
        &id.to_string(),
        None::<&()>,
        None::<&()>,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub fn device_info(d: &devices::DeviceRow) -> DeviceInfo {
    DeviceInfo {
        device_id: d.id,
        user_id: d.user_id,
        name: d.name.clone(),
        enrolled_at: time_from_ms(d.enrolled_at),
        revoked_at: d.revoked_at.map(time_from_ms),
    }
}

/// Who revokes a device: the command line, or a user (an admin may revoke any device, anyone else
/// only their own; another's device is not found).
#[derive(Debug, Clone, Copy)]
pub enum Revoker {
    Operator,
    User { id: Uuid, admin: bool },
}

/// Revokes a device and its refresh tokens; revoking a revoked device changes nothing.
pub async fn revoke_device(db: &Db, by: Revoker, id: Uuid) -> ApiResult<DeviceInfo> {
    let mut tx = db.begin_write().await?;
    let device = devices::get(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    let actor = match by {
        Revoker::Operator => None,
        Revoker::User { id, admin } => {
            if !admin && device.user_id != id {
                return Err(ApiError::not_found("device"));
            }
            Some(id)
        }
    };
    let now = now_ms();
    if devices::revoke(tx.conn(), id, actor.unwrap_or_default(), now).await? {
        tokens::revoke_device(tx.conn(), id, now).await?;
        audit::record(
            tx.conn(),
            actor,
            "device.revoke",
            "device",
            &id.to_string(),
            Some(&device_info(&device)),
            None::<&()>,
        )
        .await?;
    }
    let after = devices::get(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    tx.commit().await?;
    Ok(device_info(&after))
}
