//! `GET /api/audit/stream`: the live audit trail of the signed-in user's own client, as server-sent events.
//!
//! - Who: a user signed in with both factors, any role; the client is the session's, never the request's.
//! - What: event `audit` (id = the event id, data = an [`AuditRow`]) for the last events matching the filters,
//!   then each new one. `Last-Event-ID` (sent by the browser when it reconnects) or `after` resumes after an id.
//!   A range that ended in the past is sent whole, then event `end`. A failure sends event `problem` with a
//!   message and ends the stream.
//! - Bounded: a stream lasts at most [`MAX_STREAM`]; the browser reconnects and resumes, which re-checks the
//!   session (a revoked or expired session ends the live view within that time).

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use deployclaw::audit::live::Filter;
use deployclaw::db::users::User;
use deployclaw::db::AuditEventId;
use deployclaw::Platform;
use futures_util::StreamExt;

use super::session::SignedIn;
use crate::api::audit::{AuditRow, StreamQuery};
use crate::api::AppError;

/// How long one stream lasts before the browser must reconnect (and so show its session again).
pub const MAX_STREAM: Duration = Duration::from_secs(300);

/// The filters from the query string, checked; messages say which part is wrong.
async fn filter(platform: &Platform, user: &User, q: &StreamQuery) -> Result<Filter, AppError> {
    let time = |name: &str, v: &Option<String>| -> Result<_, AppError> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse::<chrono::DateTime<chrono::Utc>>().map(Some).map_err(|_| {
                AppError::Invalid(format!("\"{name}\" must be a date and time like 2026-11-23T09:00:00Z."))
            }),
        }
    };
    let agent_id = match q.agent.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => {
            let id = crate::api::agents::parse_agent_id(a)?;
            // Another client's agent is as unknown as no agent at all.
            platform.agents().get(user.client_id, id).await?;
            Some(id)
        }
    };
    let filter = Filter {
        agent_id,
        action: q.action.clone().filter(|a| !a.trim().is_empty()).map(|a| a.trim().to_string()),
        actor_kind: q.actor.clone().filter(|a| !a.is_empty()),
        from: time("from", &q.from)?,
        to: time("to", &q.to)?,
        text: q.q.clone().filter(|t| !t.trim().is_empty()),
    };
    filter.validate()?;
    Ok(filter)
}

/// The handler of [`crate::api::audit::STREAM_PATH`].
pub async fn stream_audit(
    State(platform): State<Platform>,
    caller: Result<SignedIn, AppError>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let SignedIn { user, .. } = caller?;
    let Query(q) = query.map_err(|_| AppError::Invalid("The stream request is malformed.".into()))?;
    let filter = filter(&platform, &user, &q).await?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let after = resume.or(q.after).filter(|a| *a > 0).map(AuditEventId);
    let history = filter.to.is_some_and(|to| to <= deployclaw::db::now());
    let events = platform.audit().follow(user.client_id, filter, after, MAX_STREAM).map(|item| {
        Ok::<_, std::convert::Infallible>(match item {
            Ok(e) => {
                let id = e.id.0.to_string();
                let row = AuditRow::from(e);
                Event::default().event("audit").id(id).data(serde_json::to_string(&row).unwrap_or_default())
            }
            Err(e) => {
                let _ = AppError::internal(&e);
                Event::default().event("problem").data("The live view failed. Reload the page to try again.")
            }
        })
    });
    let end = futures_util::stream::iter(
        history.then(|| Ok::<_, std::convert::Infallible>(Event::default().event("end").data("the range is complete"))),
    );
    let mut res =
        Sse::new(events.chain(end)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tell buffering reverse proxies to pass events on at once.
    res.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}
