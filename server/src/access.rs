//! Who is acting and what they may reach: the authenticated caller ([`AuthUser`]: user, roles,
//! bound device) and the zones the roster gives them ([`Scope`]). The HTTP layer builds an
//! `AuthUser` from a verified token (`auth`); services take it as it is.

use gridline_sync::{ErrorCode, Role};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::store::{self, now_ms, Db};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub roles: Vec<Role>,
    pub device_id: Option<Uuid>,
}

impl AuthUser {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }
    /// Admin or supervisor: the people who decide.
    pub fn is_supervisor_level(&self) -> bool {
        self.roles.iter().any(|r| r.is_supervisor_level())
    }
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs the admin role"))
        }
    }
    pub fn require_any(&self, roles: &[Role]) -> ApiResult<()> {
        if self.is_admin() || roles.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this needs one of the roles: {}",
                names.join(", ")
            )))
        }
    }
    /// Whom unannounced inspections are hidden from (see `store::cases::hidden_case_sql`):
    /// `None` for admins and supervisors, who see them all; anyone else sees only their own.
    pub fn confidential_reader(&self) -> Option<Uuid> {
        (!self.is_supervisor_level()).then_some(self.user_id)
    }
    /// Sync endpoints need a token bound to an enrolled device.
    pub fn require_device(&self) -> ApiResult<Uuid> {
        self.device_id.ok_or_else(|| {
            ApiError::new(
                ErrorCode::Forbidden,
                "this needs a token bound to an enrolled device",
            )
        })
    }

    /// The zones the roster gives this user now.
    pub async fn scope(&self, db: &Db) -> ApiResult<Scope> {
        if self.is_admin() {
            return Ok(Scope::All);
        }
        match store::reference::current_zones(&db.pool, self.user_id, now_ms()).await? {
            None => Ok(Scope::All),
            Some(zones) => Ok(Scope::Zones(zones)),
        }
    }
}

/// What a user may see and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Zones(Vec<Uuid>),
}

impl Scope {
    pub fn contains(&self, zone: Uuid) -> bool {
        match self {
            Scope::All => true,
            Scope::Zones(zones) => zones.contains(&zone),
        }
    }
    pub fn zones(&self) -> Option<&[Uuid]> {
        match self {
            Scope::All => None,
            Scope::Zones(z) => Some(z),
        }
    }
    /// A case `user` may read: in the scope, and not an unannounced inspection of someone
    /// else's (404 otherwise, like anything outside the scope).
    pub async fn check_case_visible(
        &self,
        conn: &mut sqlx::AnyConnection,
        user: &AuthUser,
        case: Uuid,
        zone: Uuid,
    ) -> ApiResult<()> {
        self.check_visible(zone, "case")?;
        if store::cases::is_hidden(conn, case, user.confidential_reader()).await? {
            return Err(ApiError::not_found("case"));
        }
        Ok(())
    }
    /// 404 rather than 403 for things outside the scope: their existence must not leak.
    pub fn check_visible(&self, zone: Uuid, what: &str) -> ApiResult<()> {
        if self.contains(zone) {
            Ok(())
        } else {
            Err(ApiError::not_found(what))
        }
    }
    pub fn check_writable(&self, zone: Uuid) -> ApiResult<()> {
        if self.contains(zone) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::OutOfScope,
                "that zone is outside your roster",
            ))
        }
    }
}
