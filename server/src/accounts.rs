//! Users and devices: signing in, creating accounts, setting passwords, enrolling and revoking
//! phones. Called by the HTTP routes, the console, the `gridline admin` commands and the demo
//! loader alike.

use gridline_sync::signing::{decode_public_key, GENESIS_HASH};
use gridline_sync::{DeviceInfo, EnrolDeviceRequest, EnrolDeviceResponse, Role, TokenResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::password;
use crate::auth::tokens::{random_token, token_hash, TokenService};
use crate::config::AuthConfig;
use crate::error::{ApiError, ApiResult};
use crate::model::{User, UserInput};
use crate::store::{self, audit, devices, now_ms, time_from_ms, tokens, users, Db, WriteTx};

/// Whether a person with `roles` works in the office and so may sign in to the console (phones
/// are for inspectors and squads).
pub fn works_in_office(roles: &[Role]) -> bool {
    const OFFICE: [Role; 6] = [
        Role::Admin,
        Role::Supervisor,
        Role::ZoneChief,
        Role::RoadChief,
        Role::SectionChief,
        Role::HotlineOperator,
    ];
    roles.iter().any(|r| OFFICE.contains(r))
}

/// Checks a user name and password, with the lockout of failed attempts: `throttle` are the
/// attempt's keys with their limits (per name at an address, per address, per name). The API
/// login and the console sign-in both come here, so they share lockouts and limits.
pub async fn authenticate(
    db: &Db,
    config: &AuthConfig,
    username: &str,
    password_text: &str,
    throttle: &[(String, u32)],
) -> ApiResult<users::UserRow> {
    if username.is_empty() || username.len() > 200 {
        return Err(ApiError::invalid("username", "must be 1 to 200 bytes"));
    }
    if password_text.len() > 1024 {
        return Err(ApiError::invalid("password", "must be at most 1024 bytes"));
    }
    let keys: Vec<String> = throttle.iter().map(|(key, _)| key.clone()).collect();
    if let Some(secs) = users::lockout_remaining(&db.pool, &keys).await? {
        return Err(ApiError::new(
            gridline_sync::ErrorCode::RateLimited,
            "too many failed logins; try again later",
        )
        .retry_after(secs));
    }
    let user = users::by_username(&db.pool, username).await?;
    let ok = password::verify(
        password_text.to_owned(),
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await;
    match user {
        Some(u) if ok && u.disabled_at.is_none() => {
            // The name from this address starts afresh; the address's and the name's overall
            // counts stand, so one account's login cannot wipe out a spray or a distributed
            // guess.
            if let Some((key, _)) = throttle.first() {
                let mut tx = db.begin_write().await?;
                users::clear_login_failures(tx.conn(), key).await?;
                tx.commit().await?;
            }
            Ok(u)
        }
        _ => {
            let mut tx = db.begin_write().await?;
            for (key, max_failures) in throttle {
                users::record_login_failure(
                    tx.conn(),
                    key,
                    *max_failures,
                    config.login_lockout_secs as i64 * 1000,
                )
                .await?;
            }
            tx.commit().await?;
            tracing::info!(%username, "failed login");
            Err(ApiError::new(
                gridline_sync::ErrorCode::InvalidCredentials,
                "wrong user name or password",
            ))
        }
    }
}

/// Logs in through the API: [`authenticate`], then tokens in a new family, bound to
/// `device_id` if given (which must be the user's and not revoked).
pub async fn log_in(
    tokens: &TokenService,
    username: &str,
    password_text: &str,
    throttle: &[(String, u32)],
    device_id: Option<Uuid>,
) -> ApiResult<TokenResponse> {
    let db = &tokens.db;
    let user = authenticate(db, &tokens.config.auth, username, password_text, throttle).await?;
    if let Some(device) = device_id {
        if !devices::is_active(&db.pool, device, user.id).await? {
            return Err(ApiError::new(
                gridline_sync::ErrorCode::DeviceRevoked,
                "that device is revoked or not enrolled for this user",
            ));
        }
    }
    let mut tx = db.begin_write().await?;
    let issued = tokens
        .issue(&mut tx, &user, device_id, store::new_id())
        .await?;
    tx.commit().await?;
    Ok(issued)
}

pub fn user_model(u: &users::UserRow) -> User {
    User {
        id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        roles: u.roles.clone(),
        disabled: u.disabled_at.is_some(),
        email: u.email.clone(),
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
        email: None,
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

/// The system account (`users::SYSTEM_USER_ID`) stays as the migration made it: disabled, with
/// no password. Were it given one, it could approve the deductions it proposes.
fn refuse_system_account(id: Uuid) -> ApiResult<()> {
    if id == users::SYSTEM_USER_ID {
        return Err(ApiError::conflict(
            "the system account cannot be changed: nobody signs in as it",
        ));
    }
    Ok(())
}

/// Sets a new password and revokes every refresh token of the user.
pub async fn set_password(
    db: &Db,
    actor: Option<Uuid>,
    id: Uuid,
    password: String,
) -> ApiResult<()> {
    refuse_system_account(id)?;
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

/// A change to a user's account; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    /// The whole new set of roles (at least one).
    pub roles: Option<Vec<Role>>,
    /// `true` stops the account signing in; `false` lets it sign in again.
    pub disabled: Option<bool>,
    /// Where their notices are mailed (when the site has an SMTP server); `""` removes it.
    pub email: Option<String>,
}

/// Changes a user's name, roles or disabled state (admins only, audited). A change of roles or a
/// disabling revokes the user's refresh tokens, so phones sign in again under the new roles;
/// console sessions read the user on each request and follow at once. An admin cannot disable
/// their own account or take away their own admin role, so a site always keeps one.
pub async fn update_user(
    db: &Db,
    admin: &crate::access::AuthUser,
    id: Uuid,
    change: UserUpdate,
) -> ApiResult<User> {
    admin.require_admin()?;
    refuse_system_account(id)?;
    let mut tx = db.begin_write().await?;
    let before = users::by_id(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let mut after = before.clone();
    if let Some(name) = change.display_name {
        if name.trim().is_empty() || name.chars().count() > 200 {
            return Err(ApiError::invalid(
                "display_name",
                "must be 1 to 200 characters",
            ));
        }
        after.display_name = name.trim().to_owned();
    }
    if let Some(mut roles) = change.roles {
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(ApiError::invalid("roles", "needs at least one role"));
        }
        if id == admin.user_id && !roles.contains(&Role::Admin) {
            return Err(ApiError::invalid(
                "roles",
                "you cannot take away your own admin role",
            ));
        }
        after.roles = roles;
    }
    if let Some(email) = change.email {
        let email = email.trim();
        after.email = if email.is_empty() {
            None
        } else if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
            return Err(ApiError::invalid(
                "email",
                "must be an email address such as name@example.org",
            ));
        } else {
            Some(email.to_owned())
        };
    }
    match change.disabled {
        Some(true) if id == admin.user_id => {
            return Err(ApiError::invalid(
                "disabled",
                "you cannot disable your own account",
            ));
        }
        Some(true) if before.disabled_at.is_none() => after.disabled_at = Some(now_ms()),
        Some(false) => after.disabled_at = None,
        _ => {}
    }
    users::update(tx.conn(), &after).await?;
    if after.roles != before.roles || (after.disabled_at.is_some() && before.disabled_at.is_none())
    {
        tokens::revoke_user(tx.conn(), id, now_ms()).await?;
    }
    let (old, new) = (user_model(&before), user_model(&after));
    audit::record(
        tx.conn(),
        Some(admin.user_id),
        "user.update",
        "user",
        &id.to_string(),
        Some(&old),
        Some(&new),
    )
    .await?;
    tx.commit().await?;
    Ok(new)
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

/// Enrols `user_id`'s phone: binds its Ed25519 public key to the user and issues tokens bound
/// to the device. Repeating the same enrolment returns the device as it is (`false`: nothing
/// new); the same device id with another key or user is a conflict, a revoked one is refused.
pub async fn enrol_device(
    tokens: &TokenService,
    user_id: Uuid,
    req: &EnrolDeviceRequest,
) -> ApiResult<(bool, EnrolDeviceResponse)> {
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
    let mut tx = tokens.db.begin_write().await?;
    let account = users::by_id(tx.conn(), user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("unknown user"))?;
    let (created, device) = match devices::get(tx.conn(), req.device_id).await? {
        Some(existing) => {
            if existing.user_id != user_id || existing.public_key != req.public_key {
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
            (false, existing)
        }
        None => (true, insert_device(&mut tx, user_id, name, req).await?),
    };
    let issued = tokens
        .issue(&mut tx, &account, Some(device.id), store::new_id())
        .await?;
    tx.commit().await?;
    let response = EnrolDeviceResponse {
        device: device_info(&device),
        tokens: issued,
        receipt_key: tokens.receipt_key(),
    };
    Ok((created, response))
}

/// Records a newly enrolled device (audited).
async fn insert_device(
    tx: &mut WriteTx,
    user_id: Uuid,
    name: &str,
    req: &EnrolDeviceRequest,
) -> ApiResult<devices::DeviceRow> {
    let row = devices::DeviceRow {
        id: req.device_id,
        user_id,
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
        Some(user_id),
        "device.enrol",
        "device",
        &row.id.to_string(),
        None::<&()>,
        Some(&device_info(&row)),
    )
    .await?;
    Ok(row)
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

/// A signed-in console session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub user: crate::access::AuthUser,
    pub username: String,
    pub display_name: String,
    /// The token each state-changing request of the session must carry.
    pub csrf: String,
}

/// Opens a console session for `user` (audited); returns the cookie's token.
pub async fn open_session(
    db: &Db,
    config: &crate::config::ConsoleConfig,
    user: &users::UserRow,
) -> ApiResult<String> {
    let token = random_token();
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    store::sessions::insert(
        tx.conn(),
        &token_hash(&token),
        user.id,
        &random_token(),
        now,
        now + config.session_idle_secs as i64 * 1000,
    )
    .await?;
    audit::record(
        tx.conn(),
        Some(user.id),
        "session.open",
        "user",
        &user.id.to_string(),
        None::<&()>,
        None::<&()>,
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// The session of a cookie's token, if it is open: not ended, used within the idle time, not
/// older than the longest a session lasts, its user not disabled. Each use moves the idle
/// expiry (written at most once a minute).
pub async fn session(
    db: &Db,
    config: &crate::config::ConsoleConfig,
    token: &str,
) -> ApiResult<Option<ConsoleSession>> {
    if token.len() > 100 {
        return Ok(None);
    }
    let hash = token_hash(token);
    let Some(row) = store::sessions::get(&db.pool, &hash).await? else {
        return Ok(None);
    };
    let now = now_ms();
    let created_limit = row.created_at + config.session_max_secs as i64 * 1000;
    if row.ended_at.is_some() || row.expires_at <= now || created_limit <= now {
        return Ok(None);
    }
    let Some(user) = users::by_id(&db.pool, row.user_id).await? else {
        return Ok(None);
    };
    if user.disabled_at.is_some() {
        return Ok(None);
    }
    if now - row.seen_at > 60_000 {
        let expires = (now + config.session_idle_secs as i64 * 1000).min(created_limit);
        store::sessions::touch(&db.pool, &hash, now, expires).await?;
    }
    Ok(Some(ConsoleSession {
        user: crate::access::AuthUser {
            user_id: user.id,
            roles: user.roles.clone(),
            device_id: None,
        },
        username: user.username,
        display_name: user.display_name,
        csrf: row.csrf,
    }))
}

/// Ends the session of a cookie's token (audited when it was open).
pub async fn end_session(db: &Db, token: &str) -> ApiResult<()> {
    let hash = token_hash(token);
    let Some(row) = store::sessions::get(&db.pool, &hash).await? else {
        return Ok(());
    };
    let mut tx = db.begin_write().await?;
    if store::sessions::end(tx.conn(), &hash, now_ms()).await? {
        audit::record(
            tx.conn(),
            Some(row.user_id),
            "session.end",
            "user",
            &row.user_id.to_string(),
            None::<&()>,
            None::<&()>,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
