//! The door of the server functions (`/api/fn/...`). server_fn answers a request it cannot decode with 500 before
//! our function body runs, so `respond`'s status mapping never sees it; a client's mistake must not read as our
//! fault, nor a decoder's message reach the client. So, before a server function:
//!
//! - the body is read whole, at most [`MAX_BODY_BYTES`]: past that, `413` (a chunked body has no length to refuse
//!   up front);
//! - it must be UTF-8, and so must every percent-encoded part of the form: serde_qs would otherwise decode such
//!   bytes lossily and store replacement characters (`400`);
//!
//! and after it, an error answer carries its error's status (a field server_fn could not decode into the
//! arguments is an [`AppError::Invalid`], so `400`). Reasons are short and ours.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;

use super::router::MAX_BODY_BYTES;
use crate::api::AppError;

/// Where the server functions are mounted (every `#[server(prefix = ...)]`).
pub const PREFIX: &str = "/api/fn/";

/// The largest error answer read back to set its status; ours are a few hundred bytes.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// axum middleware: checks a server function's request body before it runs, and its error answer's status after.
pub async fn check(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(PREFIX) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) if is_over_limit(&e) => {
            let limit = MAX_BODY_BYTES / (1024 * 1024);
            return AppError::TooLarge(format!("The request body is too large: at most {limit} MiB is accepted."))
                .into_response();
        }
        // Cut off or timed out (the listener answers that 408 itself).
        Err(_) => return AppError::Invalid("The request body could not be read.".into()).into_response(),
    };
    if let Err(problem) = form_text(&bytes) {
        return AppError::Invalid(problem.into()).into_response();
    }
    let res = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    with_its_errors_status(res).await
}

/// Whether reading a body failed because it passed a length limit (ours, or the router's outer one).
fn is_over_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Checks that `body` is a form whose text, percent-decoded, is UTF-8; the reason when it is not.
fn form_text(body: &[u8]) -> Result<(), &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "The request body is not UTF-8 text.")?;
    let decodes = text
        .split('&')
        .flat_map(|pair| pair.split('='))
        .all(|part| percent_encoding::percent_decode_str(part).decode_utf8().is_ok());
    if decodes {
        Ok(())
    } else {
        Err("The request holds percent-encoded bytes that are not UTF-8 text.")
    }
}

/// An error answer of server_fn (status 500 whatever the error) with its error's own status when that is a client
/// error; our own faults stay 500.
async fn with_its_errors_status(res: Response) -> Response {
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR || !res.headers().contains_key(SERVER_FN_ERROR_HEADER) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BYTES).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response();
    };
    let status = serde_json::from_slice::<AppError>(&bytes).ok().and_then(|e| StatusCode::from_u16(e.status()).ok());
    if let Some(status) = status.filter(StatusCode::is_client_error) {
        parts.status = status;
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::form_text;

    #[test]
    fn forms_must_be_utf8_before_and_after_percent_decoding() {
        assert!(form_text(b"").is_ok());
        assert!(form_text(b"name=caf%C3%A9&x=a+b&%%=%zz").is_ok(), "a bad escape stays literal text");
        assert!(form_text(b"name=caf\xc3").unwrap_err().contains("not UTF-8"));
        assert!(form_text(b"value=%FF%FE").unwrap_err().contains("percent-encoded"));
        assert!(form_text(b"%C3=1").unwrap_err().contains("percent-encoded"), "names too");
    }
}
