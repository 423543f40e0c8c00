//! Secret scrubbing for anything that leaves the process as text: log lines and audit metadata.
//!
//! This is a last line of defence, not a licence to log secrets: code must never hand a secret to a logger
//! in the first place (secrets are wrapped in types whose `Debug` is redacted). The scrubber catches what
//! slips through anyway - bearer tokens, provider keys, Stripe webhook secrets, cookies, one-time codes -
//! and replaces the secret part with [`REDACTED`], keeping enough context to debug.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What a scrubbed secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Field names whose values are secret wherever they appear (`key=value`, `key: value`, `"key":"value"`).
/// Matched case-insensitively as whole words, so `code` matches but `status_code` does not.
const SECRET_KEYS: &str = r"password|passwd|passphrase|secret|client_secret|token|access_token|refresh_token|id_token|api[_-]?key|x-api-key|access[_-]?key|private[_-]?key|master[_-]?keys?|code|otp|totp|recovery[_-]?codes?|session[_-]?id|sid";

/// Values that are secret by their shape alone, whatever key they come under.
static VALUE_PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // RFC 6750 bearer tokens and basic credentials in any header-like text.
        (r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}", "$1 [redacted]"),
        // Stripe webhook signing secrets and API keys.
        (r"\bwhsec_[A-Za-z0-9+/=_-]{6,}", "whsec_[redacted]"),
        (r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]{6,}", "${1}_${2}_[redacted]"),
        // LLM provider keys (OpenAI `sk-...`, `sk-proj-...`, Anthropic `sk-ant-...`, OpenRouter `sk-or-...`).
        (r"\bsk-[A-Za-z0-9_-]{8,}", "sk-[redacted]"),
        // DeployClaw project API keys and agent gateway tokens.
        (r"\bdc(p|a)_[A-Za-z0-9_-]{8,}", "dc${1}_[redacted]"),
        // JSON Web Tokens.
        (r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", "[redacted-jwt]"),
        // Credentials embedded in URLs: scheme://user:password@host.
        (r"([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@", "$1:[redacted]@"),
    ]
    .into_iter()
    .map(|(pattern, replacement)| (Regex::new(pattern).expect("valid scrub pattern"), replacement))
    .collect()
});

/// `cookie: a=b; c=d`, `authorization: Bearer x` - the whole header value is secret, separators included.
static WHOLE_VALUE_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b((?:set-)?cookie|(?:proxy-)?authorization)("?\s*[:=]\s*"?)[^"\r\n]+"#)
        .expect("valid whole-value pattern")
});

/// `key=value`, `key: value`, `"key": "value"` for the keys in [`SECRET_KEYS`].
static KEY_VALUE_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r#"(?i)(^|[^A-Za-z0-9_-])({SECRET_KEYS})("?\s*[:=]\s*"?)([^"\s,;&}}\]]+)"#))
        .expect("valid key/value pattern")
});

/// Returns `text` with every recognised secret replaced by [`REDACTED`]. Borrows when nothing matched.
pub fn scrub_text(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    let cookie = WHOLE_VALUE_PATTERN.replace_all(&out, "$1$2[redacted]");
    if let Cow::Owned(s) = cookie {
        out = Cow::Owned(s);
    }
    let kv = KEY_VALUE_PATTERN.replace_all(&out, |caps: &regex::Captures<'_>| {
        if caps[4].starts_with('[') {
            // Already redacted by an earlier pattern.
            caps[0].to_string()
        } else {
            format!("{}{}{}{REDACTED}", &caps[1], &caps[2], &caps[3])
        }
    });
    if let Cow::Owned(s) = kv {
        out = Cow::Owned(s);
    }
    for (pattern, replacement) in VALUE_PATTERNS.iter() {
        let replaced = pattern.replace_all(&out, *replacement);
        if let Cow::Owned(s) = replaced {
            out = Cow::Owned(s);
        }
    }
    out
}

/// True when `key` names a field whose value must never be recorded (compared case-insensitively).
pub fn is_secret_key(key: &str) -> bool {
    static EXACT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!("(?i)^(?:{SECRET_KEYS}|cookie|set-cookie|authorization|proxy-authorization)$"))
            .expect("valid")
    });
    EXACT.is_match(key)
}

/// Scrubs a JSON document in place: values under secret keys are replaced whole, and every string is
/// passed through [`scrub_text`].
pub fn scrub_json(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Cow::Owned(clean) = scrub_text(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_json),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if is_secret_key(key) && !item.is_null() {
                    *item = Value::String(REDACTED.to_string());
                } else {
                    scrub_json(item);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_scrubbed(input: &str, secret: &str) {
        let out = scrub_text(input);
        assert!(!out.contains(secret), "secret {secret:?} survived in {out:?}");
        assert!(out.contains(REDACTED) || out.contains("[redacted-jwt]"), "no redaction marker in {out:?}");
    }

    #[test]
    fn bearer_tokens_are_redacted() {
        assert_scrubbed("authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz");
        assert_scrubbed("header Bearer zzzzzzzzzzzz end", "zzzzzzzzzzzz");
    }

    #[test]
    fn provider_and_stripe_keys_are_redacted() {
        let openai = format!("sk-proj-{}", "A1b2C3d4E5f6G7h8");
        assert_scrubbed(&format!("calling with {openai}"), &openai);
        let anthropic = format!("sk-ant-{}", "api03-XyZ0123456789");
        assert_scrubbed(&format!("key={anthropic}"), "api03-XyZ0123456789");
        let whsec = format!("whsec_{}", "T3stOnlyNotARealSecret");
        assert_scrubbed(&format!("webhook secret {whsec}"), "T3stOnlyNotARealSecret");
        let stripe = format!("sk_{}_{}", "test", "51FakeKeyForTests");
        assert_scrubbed(&format!("stripe {stripe}"), "51FakeKeyForTests");
    }

    #[test]
    fn cookies_are_redacted_whole() {
        assert_scrubbed("cookie: id=s3ss10n; theme=dark", "s3ss10n");
        assert_scrubbed(r#"{"set-cookie": "id=abcdef; HttpOnly; Secure"}"#, "abcdef");
    }

    #[test]
    fn one_time_codes_are_redacted() {
        assert_scrubbed("GET /login/verify?email=a@b.c&code=493817", "493817");
        assert_scrubbed(r#"{"code":"493817"}"#, "493817");
        assert_scrubbed("totp=123456 accepted", "123456");
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_scrubbed("connecting to postgres://app:hunter2pw@db.internal/deployclaw", "hunter2pw");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let line = "GET /dashboard/agents status_code=200 latency_ms=12 request_id=0192";
        assert_eq!(scrub_text(line), line);
        assert!(matches!(scrub_text(line), Cow::Borrowed(_)));
    }

    #[test]
    fn json_values_under_secret_keys_are_replaced() {
        let mut doc = serde_json::json!({
            "name": "openai_key",
            "api_key": "plain-looking-value",
            "nested": {"Password": 12345, "note": "Bearer qwertyuiop"},
            "list": ["sk-abcdefghijklmnop"],
        });
        scrub_json(&mut doc);
        let text = doc.to_string();
        for secret in ["plain-looking-value", "12345", "qwertyuiop", "abcdefghijklmnop"] {
            assert!(!text.contains(secret), "{secret} survived: {text}");
        }
        assert_eq!(doc["name"], "openai_key");
    }

    proptest! {
        #[test]
        fn any_bearer_token_is_redacted(token in "[A-Za-z0-9._~+/-]{8,64}") {
            let line = format!("authorization: Bearer {token}");
            let out = scrub_text(&line);
            prop_assert!(!out.contains(&token));
        }

        #[test]
        fn any_code_parameter_is_redacted(code in "[0-9]{6}") {
            let line = format!("/verify?code={code}&next=/dashboard");
            let out = scrub_text(&line);
            prop_assert!(!out.contains(&code));
            prop_assert!(out.contains("next=/dashboard"));
        }

        #[test]
        fn scrubbing_never_panics(text in ".{0,200}") {
            let _ = scrub_text(&text);
        }
    }
}
