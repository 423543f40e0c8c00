//! Settings: the caller's active sessions, and the team (members, roles, two-factor resets).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::caller::{respond, Access, Caller};
use super::AppError;

/// One of the caller's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    pub handle: String,
    pub device: String,
    pub ip: String,
    /// RFC 3339.
    pub signed_in_at: String,
    pub last_seen_at: String,
    pub current: bool,
}

/// A member of the caller's team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub two_factor: bool,
    pub last_sign_in: Option<String>,
    pub is_me: bool,
    /// Whether the caller may reset this member's two-factor: not themselves, and not a role above their own.
    pub can_reset: bool,
}

/// The team and what the caller may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamView {
    pub members: Vec<MemberRow>,
    pub can_manage: bool,
    pub can_change_roles: bool,
}

#[cfg(feature = "ssr")]
fn team_error(e: deployclaw::identity::team::TeamError) -> AppError {
    use deployclaw::identity::team::TeamError;
    match e {
        TeamError::Forbidden(m) => AppError::Forbidden(super::auth::capital(m)),
        TeamError::Db(e) => e.into(),
    }
}

#[cfg(feature = "ssr")]
fn parse_user_id(id: &str) -> Result<deployclaw::db::UserId, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}

#[cfg(feature = "ssr")]
fn parse_role(role: &str) -> Result<deployclaw::db::users::Role, AppError> {
    use deployclaw::db::users::Role;
    match role {
        "owner" => Ok(Role::Owner),
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        _ => Err(AppError::Invalid("Choose a role: owner, admin or member.".into())),
    }
}

/// The caller's active sessions, this one marked.
#[server(prefix = "/api/fn", endpoint = "list_sessions")]
pub async fn list_sessions() -> Result<Vec<SessionRow>, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require(Access::SignedIn).await?;
        let current = caller.session.id();
        let rows = caller.platform.sessions().list_for_user(user.client_id, user.id, current.as_ref()).await?;
        Ok(rows
            .into_iter()
            .map(|s| SessionRow {
                handle: s.handle.0.to_string(),
                device: s.user_agent.unwrap_or_else(|| "Unknown browser".into()),
                ip: s.ip.unwrap_or_else(|| "unknown".into()),
                signed_in_at: s.created_at.to_rfc3339(),
                last_seen_at: s.last_seen_at.to_rfc3339(),
                current: s.current,
            })
            .collect())
    })
    .await
}

/// Ends one of the caller's sessions (another device). Audited.
#[server(prefix = "/api/fn", endpoint = "revoke_session")]
pub async fn revoke_session(handle: String) -> Result<(), AppError> {
    respond(async {
        use deployclaw::identity::session::store::SessionHandle;
        let caller = Caller::current().await?;
        let user = caller.require(Access::SignedIn).await?;
        let handle = SessionHandle(handle.parse().map_err(|_| AppError::NotFound)?);
        caller.platform.sessions().revoke(user.client_id, user.id, handle).await?;
        audit(&caller, &user, "auth.session_revoked", serde_json::json!({ "scope": "one" })).await
    })
    .await
}

/// Ends every session of the caller, this one included. Audited.
#[server(prefix = "/api/fn", endpoint = "sign_out_everywhere")]
pub async fn sign_out_everywhere() -> Result<u64, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require(Access::SignedIn).await?;
        let n = caller.platform.sessions().revoke_all(user.client_id, user.id).await?;
        audit(&caller, &user, "auth.session_revoked", serde_json::json!({ "scope": "all", "count": n })).await?;
        caller.end().await?;
        Ok(n)
    })
    .await
}

#[cfg(feature = "ssr")]
async fn audit(
    caller: &Caller,
    user: &deployclaw::db::users::User,
    action: &'static str,
    metadata: serde_json::Value,
) -> Result<(), AppError> {
    use deployclaw::audit::{ActionType, Actor, NewEvent};
    let event = NewEvent::new(Some(user.client_id), Actor::User(user.id), ActionType::known(action))
        .target(user.email.as_str())
        .metadata(metadata)
        .request(&caller.ctx);
    caller.platform.audit().append(event).await?;
    Ok(())
}

/// The caller's team.
#[server(prefix = "/api/fn", endpoint = "list_team")]
pub async fn list_team() -> Result<TeamView, AppError> {
    respond(async {
        use deployclaw::db::users::Role;
        let caller = Caller::current().await?;
        let me = caller.require(Access::SignedIn).await?;
        let members = caller.platform.team().members(me.client_id).await?;
        Ok(TeamView {
            can_manage: me.role.manages_client(),
            can_change_roles: me.role == Role::Owner,
            members: members
                .into_iter()
                .map(|u| MemberRow {
                    id: u.id.to_string(),
                    is_me: u.id == me.id,
                    can_reset: u.id != me.id && me.role.may_act_on(u.role),
                    email: u.email.to_string(),
                    role: u.role.as_str().to_string(),
                    two_factor: u.totp_enabled,
                    last_sign_in: u.last_login_at.map(|t| t.to_rfc3339()),
                })
                .collect(),
        })
    })
    .await
}

/// Adds a team member (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "invite_member")]
pub async fn invite_member(email: String, role: String) -> Result<(), AppError> {
    respond(async {
        use deployclaw::email::EmailAddress;
        let caller = Caller::current().await?;
        let me = caller.require_fresh(Access::ManagesClient).await?;
        let email = EmailAddress::parse(&email).map_err(|e| AppError::Invalid(super::auth::capital(&e.to_string())))?;
        caller.platform.team().invite(&me, &email, parse_role(&role)?, &caller.ctx).await.map_err(team_error)?;
        Ok(())
    })
    .await
}

/// Changes a member's role (owner; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "change_member_role")]
pub async fn change_member_role(user_id: String, role: String) -> Result<(), AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let me = caller.require_fresh(Access::Owner).await?;
        let (member, role) = (parse_user_id(&user_id)?, parse_role(&role)?);
        caller.platform.team().change_role(&me, member, role, &caller.ctx).await.map_err(team_error)?;
        Ok(())
    })
    .await
}

/// Removes a member's authenticator so they set up a new one (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "reset_member_two_factor")]
pub async fn reset_member_two_factor(user_id: String) -> Result<(), AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let me = caller.require_fresh(Access::ManagesClient).await?;
        let member = parse_user_id(&user_id)?;
        caller.platform.two_factor().reset_for_member(&me, member, &caller.ctx).await?;
        Ok(())
    })
    .await
}
