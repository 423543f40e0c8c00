//! `GET /api/audit/export?format=jsonl|csv&from=RFC3339&to=RFC3339[&agent=UUID]`: a signed-in user downloads
//! their own client's audit events for the range `[from, to)` as a streamed attachment.
//!
//! - Who: a user signed in with both factors, any role (owner, admin, member). The audit trail is the whole
//!   team's record of what happened in their account and every member can already read it in the dashboard,
//!   so a download gives nobody more than they have; it needs no fresh second factor because it changes
//!   nothing. Anonymous or half-signed-in callers get 401 with the same JSON error as a server function.
//! - Whose events: the client of the session, never a client named in the request.
//! - Each export is itself recorded (`audit.exported`, with format, range and agent filter).
//! - The body is streamed from the core in batches; nothing here holds the whole range.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::Extension;
use deployclaw::audit::{export, Actor};
use deployclaw::db::users;
use deployclaw::db::DbError;
use deployclaw::identity::sign_in::RequestContext;
use deployclaw::Platform;
use serde::Deserialize;
use tower_sessions::Session;

use super::session::current_auth;
use crate::api::AppError;

/// The route this handler serves.
pub const PATH: &str = "/api/audit/export";

/// The query string, as text: parsing (with the user-facing errors) happens in the core.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    format: Option<String>,
    from: Option<String>,
    to: Option<String>,
    agent: Option<String>,
}

fn error(e: AppError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, Json(e)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn sign_in_again() -> Response {
    error(AppError::SignInRequired("You are not signed in, or your session ended. Please sign in again.".into()))
}

/// The handler of [`PATH`].
pub async fn export_audit(
    State(platform): State<Platform>,
    session: Option<Extension<Session>>,
    ctx: Option<Extension<RequestContext>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let (Some(Extension(session)), Some(Extension(ctx))) = (session, ctx) else {
        return error(AppError::internal(&"the audit export route is outside the session layers"));
    };
    let Some((client_id, user_id)) = current_auth(&session, &ctx).await.and_then(|a| a.signed_in()) else {
        return sign_in_again();
    };
    let user = match users::get(platform.db(), client_id, user_id).await {
        Ok(user) => user,
        Err(DbError::NotFound) => return sign_in_again(),
        Err(e) => return error(e.into()),
    };
    let Ok(Query(params)) = query else {
        return error(AppError::Invalid("The export request is malformed.".into()));
    };
    let request = match export::ExportRequest::parse(
        params.format.as_deref(),
        params.from.as_deref(),
        params.to.as_deref(),
        params.agent.as_deref(),
    ) {
        Ok(r) => r,
        Err(e) => return error(AppError::Invalid(format!("Cannot export: {e}."))),
    };
    let file_name = request.file_name();
    let content_type = request.format.content_type();
    let stream = match export::start(platform.db(), user.client_id, Actor::User(user.id), &ctx, request).await {
        Ok(s) => s,
        Err(e) => return error(e.into()),
    };
    let disposition = format!("attachment; filename=\"{file_name}\"");
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("file names are ASCII"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
