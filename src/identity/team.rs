//! A client's team: inviting members, changing roles, and the platform's own operators.
//!
//! Only an owner or admin manages the team; roles form a hierarchy (owner, admin, member) and nobody acts on a
//! role above their own; only an owner makes or unmakes owners and admins, and a client always keeps at least
//! one owner (checked atomically: two owners demoting each other at once leave one). `platform_admin` is never granted here: operators are created with
//! `deployclaw admin create EMAIL`. Every change is audited.

use serde_json::json;

use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::context::RequestContext;
use crate::db::clients::{self, ClientName, NewClient};
use crate::db::users::{self, Role, User};
use crate::db::{ClientId, Db, DbError, UserId};
use crate::email::EmailAddress;
use crate::mail::{Mailer, OutgoingEmail};

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The roles a customer can hold (not `platform_admin`).
pub fn assignable(role: Role) -> bool {
    matches!(role, Role::Owner | Role::Admin | Role::Member)
}

#[derive(Clone, Debug)]
pub struct Team {
    db: Db,
    mailer: Mailer,
    sign_in_url: String,
}

impl Team {
    pub fn new(db: Db, mailer: Mailer, public_url: &url::Url) -> Self {
        let sign_in_url = public_url.join("/sign-in").map(|u| u.to_string()).unwrap_or_else(|_| public_url.to_string());
        Self { db, mailer, sign_in_url }
    }

    /// The user `user_id` of `client_id` (a signed-in session's user, re-read on every request so that a
    /// changed role, a removed member or a suspended client counts at once). A suspended client's users are
    /// [`DbError::NotFound`]: a session created in a race with the suspension signs nobody in.
    pub async fn member(&self, client_id: ClientId, user_id: UserId) -> Result<User, DbError> {
        users::get_unless_suspended(&self.db, client_id, user_id).await
    }

    /// Everyone in `client_id`.
    pub async fn members(&self, client_id: ClientId) -> Result<Vec<User>, DbError> {
        users::list(&self.db, client_id).await
    }

    /// The client (account) `client_id`.
    pub async fn client(&self, client_id: ClientId) -> Result<clients::Client, DbError> {
        clients::get(&self.db, client_id).await
    }

    /// See [`create_platform_admin`].
    pub async fn create_platform_admin(&self, email: &EmailAddress) -> Result<User, DbError> {
        create_platform_admin(&self.db, email).await
    }

    async fn record(
        &self,
        manager: &User,
        name: &'static str,
        target: &User,
        ctx: &RequestContext,
        meta: serde_json::Value,
    ) -> Result<(), DbError> {
        let event = NewEvent::new(Some(manager.client_id), Actor::User(manager.id), ActionType::known(name))
            .target(target.email.as_str())
            .metadata(meta)
            .request(ctx);
        audit::append(&self.db, event).await.map(|_| ())
    }

    /// Adds `email` to the manager's client with `role`, and tells them by email how to sign in.
    pub async fn invite(
        &self,
        manager: &User,
        email: &EmailAddress,
        role: Role,
        ctx: &RequestContext,
    ) -> Result<User, TeamError> {
        if !manager.role.manages_client() {
            return Err(TeamError::Forbidden("only an owner or admin can add team members"));
        }
        if !assignable(role) || (role != Role::Member && manager.role != Role::Owner) {
            return Err(TeamError::Forbidden("only an owner can add owners and admins"));
        }
        let user = users::create(&self.db, manager.client_id, email, role).await.map_err(|e| match e {
            DbError::Conflict(_) => DbError::Conflict("this address already has a DeployClaw account".into()),
            other => other,
        })?;
        self.record(manager, "team.member_added", &user, ctx, json!({ "role": role.as_str() })).await?;
        let email = OutgoingEmail {
            to: user.email.clone(),
            subject: "You were added to a DeployClaw team".into(),
            body: format!(
                "{} added you to their DeployClaw team as {}.\n\nSign in with this address at {}\n\
                 You will get a one-time code by email, then set up an authenticator app.\n",
                manager.email,
                role.as_str(),
                self.sign_in_url
            ),
        };
        if let Err(e) = self.mailer.send(email).await {
            tracing::warn!(error = %e, "could not send the team invitation email");
        }
        Ok(user)
    }

    /// Changes a team member's role.
    pub async fn change_role(
        &self,
        manager: &User,
        member: UserId,
        role: Role,
        ctx: &RequestContext,
    ) -> Result<User, TeamError> {
        if manager.role != Role::Owner {
            return Err(TeamError::Forbidden("only an owner can change roles"));
        }
        if !assignable(role) {
            return Err(TeamError::Forbidden("that role cannot be granted here"));
        }
        let before = users::get(&self.db, manager.client_id, member).await?;
        if before.role == role {
            return Ok(before);
        }
        if !assignable(before.role) {
            return Err(TeamError::Forbidden("that account's role cannot be changed here"));
        }
        // The last-owner rule is checked by the update itself, atomically.
        let Some(after) = users::set_role(&self.db, manager.client_id, member, role).await? else {
            return Err(TeamError::Forbidden("a team needs at least one owner; make someone else owner first"));
        };
        self.record(
            manager,
            "team.role_changed",
            &after,
            ctx,
            json!({ "from": before.role.as_str(), "to": role.as_str() }),
        )
        .await?;
        Ok(after)
    }
}

/// Creates a platform operator (`deployclaw admin create EMAIL`): a `platform_admin` user in the operators'
/// client (created with the first operator). They sign in like everyone else: email code, then TOTP.
pub async fn create_platform_admin(db: &Db, email: &EmailAddress) -> Result<User, DbError> {
    if users::find_for_sign_in(db, email).await?.is_some() {
        return Err(DbError::Conflict(format!("{email} already has an account").into()));
    }
    let client_id = match users::operator_client(db).await? {
        Some(id) => id,
        None => {
            let name = ClientName::parse("DeployClaw operators")?;
            clients::create(db, NewClient { name, email: email.clone() }).await?.id
        }
    };
    let user = users::create(db, client_id, email, Role::PlatformAdmin).await?;
    let event = NewEvent::new(Some(client_id), Actor::Platform, ActionType::known("admin.created"))
        .target(email.as_str())
        .metadata(json!({ "via": "cli" }));
    audit::append(db, event).await?;
    Ok(user)
}
