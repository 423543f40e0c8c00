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
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use deployclaw::audit::{export, Actor};
use deployclaw::Platform;
use serde::Deserialize;

use super::session::SignedIn;
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

/// The handler of [`PATH`].
pub async fn export_audit(
    State(platform): State<Platform>,
    caller: Result<SignedIn, AppError>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    // Refuse anonymous callers before looking at their parameters.
    let SignedIn { user, ctx } = match caller {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(Query(params)) = query else {
        return AppError::Invalid("The export request is malformed.".into()).into_response();
    };
    let request = match export::ExportRequest::parse(
        params.format.as_deref(),
        params.from.as_deref(),
        params.to.as_deref(),
        params.agent.as_deref(),
    ) {
        Ok(r) => r,
        Err(e) => return AppError::Invalid(format!("Cannot export: {e}.")).into_response(),
    };
    let file_name = request.file_name();
    let content_type = request.format.content_type();
    let stream = match platform.audit().export(user.client_id, Actor::User(user.id), &ctx, request).await {
        Ok(s) => s,
        Err(e) => return AppError::from(e).into_response(),
    };
    let disposition = format!("attachment; filename=\"{file_name}\"");
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("file names are ASCII"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
