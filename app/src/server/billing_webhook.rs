//! `POST /api/billing/webhook`: Stripe's deliveries. The only state-changing route without a session or
//! same-origin evidence (Stripe is neither a browser nor signed in): its authentication is the signature over
//! the raw body, checked by the core (`Billing::handle_webhook`). The body is read up to
//! [`deployclaw::billing::WEBHOOK_MAX_BODY_BYTES`]; anything bigger is refused with 413 before it is read whole.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use deployclaw::billing::{WebhookError, WEBHOOK_MAX_BODY_BYTES};
use deployclaw::Platform;

/// Where Stripe delivers events (configure this URL in Stripe's dashboard).
pub const PATH: &str = "/api/billing/webhook";

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

pub async fn receive(State(platform): State<Platform>, req: Request<Body>) -> Response {
    let billing = platform.billing();
    if !billing.enabled() {
        return refuse(StatusCode::NOT_FOUND, "billing is not configured");
    }
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > WEBHOOK_MAX_BODY_BYTES as u64);
    if too_big {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
    }
    let signature =
        req.headers().get(deployclaw::billing::signature::HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match axum::body::to_bytes(req.into_body(), WEBHOOK_MAX_BODY_BYTES).await {
        Ok(b) => b,
        // Over the limit (chunked, no length given) or a broken upload: either way not an event we can read.
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large or incomplete"),
    };
    match billing.handle_webhook(signature.as_deref(), &body, deployclaw::db::now()).await {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({ "received": true }))).into_response(),
        Err(WebhookError::NotConfigured) => refuse(StatusCode::NOT_FOUND, "billing is not configured"),
        Err(e @ (WebhookError::Signature(_) | WebhookError::Event(_))) => {
            tracing::warn!(error = %e, "refused a billing webhook delivery");
            refuse(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(WebhookError::Db(e)) => {
            // Stripe retries; the event id was not recorded, so the retry applies it.
            tracing::error!(error = %e, "a billing webhook could not be applied");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
