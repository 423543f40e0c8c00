//! Who is calling a server function, and the checks every server function starts with (server only).
//!
//! Authorization lives here and in the core, never in the UI: a server function first asks for the
//! [`Access`] it needs; hiding a button is not a check.

use deployclaw::context::RequestContext;
use deployclaw::db::users::{Role, User};
use deployclaw::identity::session::{SessionAuth, Stage, SESSION_KEY};
use deployclaw::Platform;
use leptos::prelude::use_context;
use tower_sessions::Session;

use super::AppError;

/// What a server function requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Signed in with both factors, any role.
    SignedIn,
    /// An owner or admin of their client.
    ManagesClient,
    /// The client's owner.
    Owner,
    /// A platform operator.
    PlatformAdmin,
}

/// The caller of a server function: session, sign-in state and where the request came from.
pub struct Caller {
    pub platform: Platform,
    pub session: Session,
    pub auth: Option<SessionAuth>,
    pub ctx: RequestContext,
}

const SIGN_IN_AGAIN: &str = "You are not signed in, or your session ended. Please sign in again.";

/// Sets the HTTP status of a failed server function from its error; returns the error.
pub fn fail(e: AppError) -> AppError {
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR));
    }
    e
}

/// Runs a server function body, mapping its error to the matching HTTP status. A signed-in caller refused
/// something - another client's record (404) or what their role does not allow (403) - is recorded in their own
/// client's audit trail as `access.denied`.
pub async fn respond<T>(body: impl std::future::Future<Output = Result<T, AppError>>) -> Result<T, AppError> {
    match body.await {
        Ok(value) => Ok(value),
        Err(e) => {
            let reason = match &e {
                AppError::NotFound => Some("not_found"),
                AppError::Forbidden(_) => Some("forbidden"),
                _ => None,
            };
            if let Some(reason) = reason {
                record_denial(reason).await;
            }
            Err(fail(e))
        }
    }
}

/// See [`respond`]. A failure to record is logged; the caller still gets the refusal.
async fn record_denial(reason: &'static str) {
    let Ok(caller) = Caller::current().await else { return };
    let Some((client, user)) = caller.auth.as_ref().and_then(|a| a.signed_in()) else { return };
    let path = use_context::<http::request::Parts>().map(|p| p.uri.path().to_string()).unwrap_or_default();
    if let Err(e) = caller.platform.audit().access_denied(client, user, &path, reason, &caller.ctx).await {
        tracing::warn!(error = %e, "could not record a refused request in the audit trail");
    }
}

impl Caller {
    /// The caller of the current server function.
    pub async fn current() -> Result<Self, AppError> {
        let platform =
            use_context::<Platform>().ok_or_else(|| AppError::internal(&"platform handle missing from context"))?;
        let parts = use_context::<http::request::Parts>()
            .ok_or_else(|| AppError::internal(&"request parts missing from context"))?;
        let session =
            parts.extensions.get::<Session>().cloned().ok_or_else(|| AppError::internal(&"session layer missing"))?;
        let ctx = parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| AppError::internal(&"request context missing"))?;
        let auth = crate::server::session::current_auth(&session, &ctx).await;
        Ok(Self { platform, session, auth, ctx })
    }

    /// The signed-in user, if their role allows `access`. Anonymous and half-signed-in callers get
    /// `SignInRequired`; a role that does not fit gets `Forbidden`.
    pub async fn require(&self, access: Access) -> Result<User, AppError> {
        let Some((client_id, user_id)) = self.auth.as_ref().and_then(|a| a.signed_in()) else {
            return Err(AppError::SignInRequired(SIGN_IN_AGAIN.into()));
        };
        let user = match self.platform.team().member(client_id, user_id).await {
            Ok(u) => u,
            Err(deployclaw::db::DbError::NotFound) => return Err(AppError::SignInRequired(SIGN_IN_AGAIN.into())),
            Err(e) => return Err(e.into()),
        };
        let allowed = match access {
            Access::SignedIn => true,
            Access::ManagesClient => user.role.manages_client(),
            Access::Owner => user.role == Role::Owner,
            Access::PlatformAdmin => user.role == Role::PlatformAdmin,
        };
        if allowed {
            Ok(user)
        } else if access == Access::PlatformAdmin {
            // The operator console does not admit it exists to customers.
            Err(AppError::NotFound)
        } else {
            Err(AppError::Forbidden("Your role in this team does not allow this. Ask an owner.".into()))
        }
    }

    /// Like [`require`](Self::require), and the second factor must be fresh (at most 15 minutes old).
    pub async fn require_fresh(&self, access: Access) -> Result<User, AppError> {
        let user = self.require(access).await?;
        let fresh = self.auth.as_ref().is_some_and(|a| a.second_factor_is_fresh(deployclaw::db::now()));
        if fresh {
            Ok(user)
        } else {
            Err(AppError::TwoFactorRequired)
        }
    }

    /// Proof for the vault that this session's second factor is fresh (see [`require_fresh`](Self::require_fresh)).
    pub fn vault_proof(&self) -> Result<deployclaw::identity::fresh::FreshTwoFactor, AppError> {
        self.auth
            .as_ref()
            .and_then(|a| deployclaw::identity::fresh::FreshTwoFactor::from_session(a, deployclaw::db::now()))
            .ok_or(AppError::TwoFactorRequired)
    }

    /// The user a pending sign-in belongs to, when the session is at `expected`'s stage.
    pub async fn pending_user(&self, expected: fn(&Stage) -> bool) -> Result<User, AppError> {
        let stage = self.auth.as_ref().map(|a| &a.stage).filter(|s| expected(s));
        let Some((client_id, user_id)) = stage.and_then(Stage::user) else {
            return Err(AppError::SignInRequired(
                "This sign-in step has expired or was already completed. Please start again.".into(),
            ));
        };
        self.platform.team().member(client_id, user_id).await.map_err(|e| match e {
            deployclaw::db::DbError::NotFound => AppError::SignInRequired(SIGN_IN_AGAIN.into()),
            e => e.into(),
        })
    }

    /// Stores `auth` in the session; `new_id` gives the session a new id first (at each sign-in step, so an
    /// id known before a step is worthless after it).
    pub async fn store(&self, auth: &SessionAuth, new_id: bool) -> Result<(), AppError> {
        if new_id {
            self.session.cycle_id().await.map_err(|e| AppError::internal(&e))?;
        }
        self.session.insert(SESSION_KEY, auth).await.map_err(|e| AppError::internal(&e))
    }

    /// Ends this session (sign out).
    pub async fn end(&self) -> Result<(), AppError> {
        self.session.flush().await.map_err(|e| AppError::internal(&e))
    }
}
