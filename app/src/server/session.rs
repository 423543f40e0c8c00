//! Sessions and request origin checks at the HTTP boundary.
//!
//! - [`session_layer`]: tower-sessions on the platform's database store; cookie HttpOnly, SameSite=Strict,
//!   Secure (with the `__Host-` prefix) unless the public URL is plain http on loopback.
//! - [`session_guard`]: ends sessions past their idle/absolute/pending limits, records activity, hands the
//!   request's [`RequestContext`] to server functions, and keeps each page behind the sign-in stage it needs
//!   (the dashboard needs both factors; the admin console needs a platform operator).
//! - [`same_origin_only`]: refuses every state-changing request (server functions included) whose
//!   `Sec-Fetch-Site` is not `same-origin` or, without that header, whose `Origin` is not ours.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use deployclaw::context::RequestContext;
use deployclaw::db::users::Role;
use deployclaw::identity::session::{SessionAuth, Stage, IDLE_TIMEOUT, SESSION_KEY};
use deployclaw::net::forwarded::TrustedProxies;
use deployclaw::Platform;
use http::{header, Method, StatusCode};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

/// The session cookie's name over https: `__Host-` makes browsers insist on Secure, path `/`, no domain.
pub const SECURE_COOKIE: &str = "__Host-deployclaw_session";
/// The session cookie's name for local development over plain http on loopback.
pub const DEV_COOKIE: &str = "deployclaw_session";

pub fn session_layer(platform: &Platform) -> SessionManagerLayer<deployclaw::identity::session::store::DbSessionStore> {
    let secure = platform.config().server.secure_cookies();
    if !secure {
        tracing::warn!("session cookies are not Secure: the public URL is plain http on loopback (local development)");
    }
    let idle = tower_sessions::cookie::time::Duration::seconds(IDLE_TIMEOUT.as_secs() as i64);
    SessionManagerLayer::new(platform.sessions().clone())
        .with_name(if secure { SECURE_COOKIE } else { DEV_COOKIE })
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle))
}

/// Where a request came from: the client's address (the peer, or from a trusted proxy the right-most untrusted
/// entry of its forwarding header: see `deployclaw::net::forwarded`) and the user agent.
pub fn request_context(req: &Request, trusted: &TrustedProxies) -> RequestContext {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let header = trusted.header().name();
    // Bytes a client put in the header must not hide what the proxy appended after them: read it lossily.
    let values: Vec<String> =
        req.headers().get_all(header).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
    let ip = trusted.client_address(peer, values.iter().map(String::as_str));
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
    RequestContext { ip, user_agent }
}

/// Paths that never touch the session (static files, probes, and Stripe's webhook, which is authenticated by its
/// signature instead).
fn is_sessionless(path: &str) -> bool {
    path.starts_with("/pkg/")
        || matches!(path, "/healthz" | "/readyz" | "/favicon.svg" | "/favicon.ico")
        || path == super::billing_webhook::PATH
}

/// The page a session in `stage` belongs on while signing in.
pub fn page_for(stage: Option<&Stage>) -> &'static str {
    match stage {
        None => "/sign-in",
        Some(Stage::SignUp { .. }) => "/sign-up",
        Some(Stage::Enroll { .. }) => "/sign-in/enroll",
        Some(Stage::TwoFactor { .. }) => "/sign-in/verify",
        Some(Stage::SignedIn { .. }) => "/dashboard",
    }
}

/// The session's sign-in state, after ending it if it is past a limit and recording activity.
pub async fn current_auth(session: &Session, ctx: &RequestContext) -> Option<SessionAuth> {
    let auth = match session.get::<SessionAuth>(SESSION_KEY).await {
        Ok(auth) => auth?,
        Err(e) => {
            tracing::warn!(error = %e, "could not load the session; treating the request as signed out");
            return None;
        }
    };
    let now = deployclaw::db::now();
    if let Some(why) = auth.ended(now) {
        tracing::info!(reason = %why, "session ended");
        if let Err(e) = session.flush().await {
            tracing::warn!(error = %e, "could not delete an ended session");
        }
        return None;
    }
    let mut auth = auth;
    if auth.touch(ctx, now) {
        if let Err(e) = session.insert(SESSION_KEY, &auth).await {
            tracing::warn!(error = %e, "could not record session activity");
        }
    }
    Some(auth)
}

/// axum middleware, inside the session layer: see the module docs.
pub async fn session_guard(State(platform): State<Platform>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if is_sessionless(&path) {
        return next.run(req).await;
    }
    let ctx = request_context(&req, &platform.config().server.trusted_proxies);
    req.extensions_mut().insert(ctx.clone());
    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return next.run(req).await;
    };
    let auth = current_auth(&session, &ctx).await;
    if req.method() == Method::GET {
        let stage = auth.as_ref().map(|a| &a.stage);
        let at_sign_in_step = matches!(path.as_str(), "/sign-up" | "/sign-in/enroll" | "/sign-in/verify");
        if path == "/dashboard" || path.starts_with("/dashboard/") {
            match stage {
                Some(Stage::SignedIn { client_id, user_id }) => {
                    if path == "/dashboard/admin" || path.starts_with("/dashboard/admin/") {
                        let role = platform.team().member(*client_id, *user_id).await.map(|u| u.role);
                        if !matches!(role, Ok(Role::PlatformAdmin)) {
                            return (StatusCode::NOT_FOUND, "Not found").into_response();
                        }
                    }
                }
                other => return Redirect::to(page_for(other)).into_response(),
            }
        } else if at_sign_in_step && page_for(stage) != path {
            return Redirect::to(page_for(stage)).into_response();
        } else if path == "/sign-in" && matches!(stage, Some(Stage::SignedIn { .. })) {
            return Redirect::to("/dashboard").into_response();
        }
    }
    next.run(req).await
}

/// The origin a same-origin request carries.
#[derive(Clone)]
pub struct OwnOrigin(pub Arc<str>);

/// Whether a request with these headers may change state.
pub fn is_same_origin(own: &str, sec_fetch_site: Option<&str>, origin: Option<&str>) -> bool {
    match sec_fetch_site {
        Some(site) => site == "same-origin",
        None => origin == Some(own),
    }
}

/// axum middleware: the CSRF defence for every state-changing request.
pub async fn same_origin_only(State(OwnOrigin(own)): State<OwnOrigin>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    // The one exemption: Stripe's webhook POST, which proves itself with a signature over its body.
    if *req.method() == Method::POST && req.uri().path() == super::billing_webhook::PATH {
        return next.run(req).await;
    }
    let (site, origin) = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        (header("sec-fetch-site"), header("origin"))
    };
    if is_same_origin(&own, site.as_deref(), origin.as_deref()) {
        return next.run(req).await;
    }
    tracing::warn!(
        method = %req.method(),
        path = %req.uri().path(),
        sec_fetch_site = site.as_deref().unwrap_or("-"),
        origin = origin.as_deref().unwrap_or("-"),
        "refused a cross-origin state-changing request"
    );
    (StatusCode::FORBIDDEN, "Cross-origin request refused: changes must come from DeployClaw's own pages.")
        .into_response()
}

/// The caller of a plain API route (not a server function): a user signed in with both factors, any role,
/// and where the request came from. Anyone else is refused with `401` and the server functions' JSON error.
pub struct SignedIn {
    pub user: deployclaw::db::users::User,
    pub ctx: RequestContext,
}

impl<S> axum::extract::FromRequestParts<S> for SignedIn
where
    Platform: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = crate::api::AppError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        use crate::api::AppError;
        let platform = <Platform as axum::extract::FromRef<S>>::from_ref(state);
        let outside = || AppError::internal(&"an API route is outside the session layers");
        let session = parts.extensions.get::<Session>().cloned().ok_or_else(outside)?;
        let ctx = parts.extensions.get::<RequestContext>().cloned().ok_or_else(outside)?;
        let again =
            || AppError::SignInRequired("You are not signed in, or your session ended. Please sign in again.".into());
        let (client_id, user_id) = current_auth(&session, &ctx).await.and_then(|a| a.signed_in()).ok_or_else(again)?;
        match platform.team().member(client_id, user_id).await {
            Ok(user) => Ok(Self { user, ctx }),
            Err(deployclaw::db::DbError::NotFound) => Err(again()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_requests_change_state() {
        let own = "https://deployclaw.example";
        assert!(is_same_origin(own, Some("same-origin"), None));
        assert!(is_same_origin(own, None, Some(own)));
        for site in ["cross-site", "same-site", "none"] {
            assert!(!is_same_origin(own, Some(site), Some(own)), "{site}");
        }
        assert!(!is_same_origin(own, None, Some("https://evil.example")));
        assert!(!is_same_origin(own, None, Some("null")));
        assert!(!is_same_origin(own, None, None), "no evidence of origin is a refusal");
    }

    #[test]
    fn each_sign_in_stage_has_its_page() {
        assert_eq!(page_for(None), "/sign-in");
        let ids = (deployclaw::db::ClientId::new(), deployclaw::db::UserId::new());
        assert_eq!(page_for(Some(&Stage::Enroll { client_id: ids.0, user_id: ids.1 })), "/sign-in/enroll");
        assert_eq!(page_for(Some(&Stage::TwoFactor { client_id: ids.0, user_id: ids.1 })), "/sign-in/verify");
        assert_eq!(page_for(Some(&Stage::SignedIn { client_id: ids.0, user_id: ids.1 })), "/dashboard");
    }
}
