//! Security headers on every response, and the per-request CSP nonce.
//!
//! The Content-Security-Policy allows scripts only from our own origin plus the inline hydration script
//! that carries this request's nonce; `'wasm-unsafe-eval'` lets the WASM bundle compile and is not
//! `'unsafe-eval'` (no `eval`, no `new Function`). Framing is refused outright.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use http::header::{self, HeaderName, HeaderValue};
use rand::RngCore as _;

/// This request's CSP nonce, placed in the request extensions for the renderer.
#[derive(Clone, Debug)]
pub struct CspNonce(pub Arc<str>);

/// Which optional headers to send.
#[derive(Clone, Copy, Debug)]
pub struct HeaderPolicy {
    /// Send `Strict-Transport-Security`: only when users reach us over TLS.
    pub hsts: bool,
}

/// HSTS: two years, subdomains included.
pub const HSTS_VALUE: &str = "max-age=63072000; includeSubDomains";

/// The policy for a response, given its nonce.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

fn new_nonce() -> Arc<str> {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).into()
}

/// axum middleware: gives the request a nonce, then sets the security headers on whatever comes back.
pub async fn security_headers(State(policy): State<HeaderPolicy>, mut req: Request, next: Next) -> Response {
    let nonce = new_nonce();
    req.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let csp = HeaderValue::from_str(&content_security_policy(&nonce)).expect("nonce is base64url");
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    h.insert(HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin"));
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    if policy.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS_VALUE));
    }
    let dynamic = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html") || ct.starts_with("application/json"));
    if dynamic && !h.contains_key(header::CACHE_CONTROL) {
        // Pages and API answers may carry account data: never store them in shared or browser caches.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Leptos context: hands this request's nonce to the renderer so the hydration scripts carry it.
pub fn provide_request_nonce() {
    use leptos::prelude::{provide_context, use_context};
    if let Some(parts) = use_context::<http::request::Parts>() {
        if let Some(CspNonce(nonce)) = parts.extensions.get::<CspNonce>() {
            provide_context(leptos::nonce::Nonce::from_value(nonce.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_strict() {
        let csp = content_security_policy("abc");
        assert!(csp.contains("'nonce-abc'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("object-src 'none'"));
        assert!(!csp.contains("'unsafe-eval'") && !csp.contains("'unsafe-inline'"));
    }

    #[test]
    fn nonces_are_fresh_and_long_enough() {
        let a = new_nonce();
        let b = new_nonce();
        assert_ne!(a, b);
        assert!(a.len() >= 24, "at least 128 bits of entropy");
    }
}
