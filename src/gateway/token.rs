//! Agents' gateway tokens: how one is made, stored (SHA-256 only), presented (`Authorization: Bearer`,
//! `x-api-key`, or the password of `Proxy-Authorization: Basic`) and checked (in constant time). One home for
//! the proxy and the LLM gateway alike.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new token: `dca_` and 32 random bytes (base64url). Shown to the agent only; never stored.
pub fn new() -> String {
    use rand::RngCore as _;
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!("dca_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// What is stored for a token: its SHA-256.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// `presented`'s SHA-256 against `stored` (32 bytes), in constant time; never true without both.
pub fn matches(stored: Option<&[u8]>, presented: Option<&str>) -> bool {
    match (stored, presented) {
        (Some(stored), Some(given)) => stored.len() == 32 && bool::from(stored.ct_eq(&hash(given)[..])),
        _ => false,
    }
}

/// The token from a `Proxy-Authorization: Basic base64(user:token)` value (any user name).
pub fn from_basic(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(_, token)| token.to_string())
}

/// The token a model call presents: `Authorization: Bearer`, `x-api-key` (what SDKs send as their "API key"),
/// or Basic proxy credentials.
pub fn from_headers(headers: &hyper::HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = text("authorization") {
        if let Some((scheme, t)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(t.trim().to_string());
            }
        }
    }
    if let Some(v) = text("x-api-key") {
        return Some(v.to_string());
    }
    text("proxy-authorization").and_then(|v| from_basic(v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderMap, HeaderValue};

    use super::*;

    fn basic(token: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("agent:{token}"))
    }

    #[test]
    fn basic_credentials_carry_the_token_as_password() {
        assert_eq!(from_basic(format!("Basic {}", basic("x")).as_bytes()).as_deref(), Some("x"));
        assert_eq!(from_basic(b"Bearer abc"), None);
        assert_eq!(from_basic(b"Basic !!!"), None);
    }

    #[test]
    fn tokens_come_from_bearer_api_key_or_proxy_basic() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer dca_one"));
        assert_eq!(from_headers(&h).as_deref(), Some("dca_one"));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("dca_two"));
        assert_eq!(from_headers(&h).as_deref(), Some("dca_two"));
        let mut h = HeaderMap::new();
        h.insert("proxy-authorization", HeaderValue::from_static("Basic YWdlbnQ6ZGNhX3RocmVl"));
        assert_eq!(from_headers(&h).as_deref(), Some("dca_three"));
        assert_eq!(from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn only_the_stored_hash_of_the_same_token_matches() {
        let stored = hash("dca_secret");
        assert!(matches(Some(&stored), Some("dca_secret")));
        assert!(!matches(Some(&stored), Some("dca_secreT")));
        assert!(!matches(None, Some("dca_secret")), "no token before the first deploy");
        assert!(!matches(Some(&stored), None));
        assert!(!matches(Some(&stored[..31]), Some("dca_secret")), "a truncated hash never matches");
    }
}
