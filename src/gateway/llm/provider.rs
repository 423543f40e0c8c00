//! The providers the gateway speaks to, their routes and wire formats: which requests are model calls, what
//! a call's body must hold, which answer headers pass back, and refusals in each provider's own error format.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderName;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::{refuse, Body, Refusal};

/// A model provider the gateway speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::OpenAi, Provider::Anthropic];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// The vault credential holding this provider's key. Such credentials are never injected into the agent.
    pub fn credential_name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai_api_key",
            Self::Anthropic => "anthropic_api_key",
        }
    }

    /// Whether a credential name is a provider key the gateway keeps for itself.
    pub fn holds(name: &str) -> bool {
        Self::ALL.iter().any(|p| p.credential_name() == name)
    }

    pub(super) fn path(self) -> &'static str {
        match self {
            Self::OpenAi => "/v1/chat/completions",
            Self::Anthropic => "/v1/messages",
        }
    }

    pub(super) fn route(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.path() == path)
    }
}

/// Checks the body is a JSON object naming a model; for an OpenAI stream, makes sure the final chunk
/// carries usage (`stream_options.include_usage`). Returns the model, whether it streams, and the body to send.
pub(super) fn inspect_body(provider: Provider, body: Bytes) -> Result<(String, bool, Bytes), Refusal> {
    let bad = |m: &str| refuse(StatusCode::BAD_REQUEST, "invalid_request_error", m.to_string());
    let mut v: Value = serde_json::from_slice(&body).map_err(|_| bad("the request body is not JSON"))?;
    let object = v.as_object_mut().ok_or_else(|| bad("the request body must be a JSON object"))?;
    let model = match object.get("model") {
        Some(Value::String(m)) if !m.is_empty() && m.chars().count() <= crate::gateway::pricing::MAX_MODEL_CHARS => {
            m.clone()
        }
        _ => return Err(bad("the request needs a \"model\" (a string of at most 128 characters)")),
    };
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("\"stream\" must be true or false")),
    };
    if provider == Provider::OpenAi && stream {
        let options = object.entry("stream_options").or_insert_with(|| json!({}));
        let Some(options) = options.as_object_mut() else {
            return Err(bad("\"stream_options\" must be an object"));
        };
        if options.get("include_usage") != Some(&Value::Bool(true)) {
            options.insert("include_usage".into(), Value::Bool(true));
            let rewritten = serde_json::to_vec(&v).map_err(|_| bad("the request body could not be re-encoded"))?;
            return Ok((model, stream, Bytes::from(rewritten)));
        }
    }
    Ok((model, stream, body))
}

/// Provider answer headers the agent gets: the content type and length (the body passes unchanged),
/// rate-limit and request-id headers.
pub(super) fn passes_back(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "content-type"
            | "content-length"
            | "retry-after"
            | "x-request-id"
            | "request-id"
            | "openai-processing-ms"
            | "cache-control"
    ) || n.starts_with("x-ratelimit-")
        || n.starts_with("anthropic-ratelimit-")
}

pub(super) fn error_response(provider: Provider, r: &Refusal) -> Response<Body> {
    let body = match provider {
        Provider::OpenAi => json!({"error": {"message": r.message, "type": r.kind, "param": null, "code": r.kind}}),
        Provider::Anthropic => json!({"type": "error", "error": {"type": r.kind, "message": r.message}}),
    };
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    Response::builder()
        .status(r.status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes).map_err(|never| match never {}).boxed_unsync())
        .expect("the refusal parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::permissions::format_usd as usd;

    #[test]
    pub(super) fn routes_are_exact() {
        assert_eq!(Provider::route("/v1/chat/completions"), Some(Provider::OpenAi));
        assert_eq!(Provider::route("/v1/messages"), Some(Provider::Anthropic));
        assert_eq!(Provider::route("/v1/messages/"), None);
        assert_eq!(Provider::route("/v1/completions"), None);
        assert!(Provider::holds("openai_api_key") && Provider::holds("anthropic_api_key"));
        assert!(!Provider::holds("slack_token"));
    }

    #[test]
    pub(super) fn openai_streams_always_ask_for_usage() {
        let body = Bytes::from_static(br#"{"model":"gpt-4o","stream":true,"messages":[]}"#);
        let (model, stream, sent) = inspect_body(Provider::OpenAi, body).unwrap();
        assert_eq!((model.as_str(), stream), ("gpt-4o", true));
        let v: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], json!(true));
        // An agent that turns it off gets it turned back on.
        let off = Bytes::from_static(br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#);
        let (_, _, sent) = inspect_body(Provider::OpenAi, off).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&sent).unwrap()["stream_options"]["include_usage"], json!(true));
        // Not streaming, or Anthropic: the body goes as it came.
        let plain = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
        assert_eq!(inspect_body(Provider::OpenAi, plain.clone()).unwrap().2, plain);
        let anthropic = Bytes::from_static(br#"{"model":"m","stream":true}"#);
        assert_eq!(inspect_body(Provider::Anthropic, anthropic.clone()).unwrap().2, anthropic);
    }

    #[test]
    pub(super) fn bodies_without_a_model_or_with_a_bad_stream_flag_are_refused() {
        for bad in
            [&b"[]"[..], b"not json", b"{}", br#"{"model":""}"#, br#"{"model":5}"#, br#"{"model":"m","stream":"yes"}"#]
        {
            let e = inspect_body(Provider::OpenAi, Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(bad));
        }
        let e =
            inspect_body(Provider::OpenAi, Bytes::from_static(br#"{"model":"m","stream":true,"stream_options":1}"#));
        assert!(e.is_err());
    }

    #[test]
    pub(super) fn only_harmless_answer_headers_pass_back() {
        for ok in [
            "content-type",
            "retry-after",
            "x-ratelimit-remaining-tokens",
            "anthropic-ratelimit-requests-limit",
            "request-id",
        ] {
            assert!(passes_back(&HeaderName::from_static(ok)), "{ok}");
        }
        for no in ["set-cookie", "www-authenticate", "openai-organization", "connection", "transfer-encoding"] {
            assert!(!passes_back(&HeaderName::from_static(no)), "{no}");
        }
    }

    #[test]
    pub(super) fn usd_amounts_read_naturally() {
        assert_eq!(usd(0), "0.00");
        assert_eq!(usd(1_500_000), "1.50");
        assert_eq!(usd(7_500), "0.0075");
        assert_eq!(usd(25_000_000), "25.00");
    }
}
