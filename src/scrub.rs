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

/// Field names whose values are secret wherever they appear (`key=value`, `key: value`, `"key":"value"`),
/// matched case-insensitively. These also count with any prefix of words joined by `_` or `-`
/// (`GITHUB_TOKEN=`, `DB_PASSWORD=`, `AWS_SECRET_ACCESS_KEY=`), but never with a suffix (`token_count=` is not one).
const SECRET_KEYS: &str = r"password|passwd|passphrase|secret|client_secret|token|access_token|refresh_token|id_token|api[_-]?key|x-api-key|access[_-]?key|private[_-]?key|master[_-]?keys?|recovery[_-]?codes?|session[_-]?id";

/// Short names that are secret only as whole words: a one-time `code` (but not `status_code`), `otp`, a
/// `session` or `sid` in a query string, and a search query `q` (it may hold anything a user typed).
const SECRET_WORDS: &str = r"code|otp|totp|sid|session|q";

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
        // GitHub tokens (classic `ghp_`, OAuth `gho_`, user/server/refresh `ghu_`/`ghs_`/`ghr_`, fine-grained).
        (r"\b(gh[pousr])_[A-Za-z0-9]{20,}", "${1}_[redacted]"),
        (r"\bgithub_pat_[A-Za-z0-9_]{20,}", "github_pat_[redacted]"),
        // GitLab personal access tokens.
        (r"\bglpat-[A-Za-z0-9_-]{20,}", "glpat-[redacted]"),
        // AWS access key ids (long-term `AKIA`, temporary `ASIA`).
        (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "${1}[redacted]"),
        // Slack bot, user, app and refresh tokens.
        (r"\b(xox[abpsre])-[A-Za-z0-9-]{10,}", "${1}-[redacted]"),
        // Google API keys.
        (r"\bAIza[0-9A-Za-z_-]{30,}", "AIza[redacted]"),
        // PEM private keys, whole (or from their first line on, when the end was cut off).
        (
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(?s:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)",
            "-----BEGIN ${1}PRIVATE KEY-----[redacted]",
        ),
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
    Regex::new(&format!(
        r#"(?i)(^|[^A-Za-z0-9_-])((?:[A-Za-z0-9]+[_-])*(?:{SECRET_KEYS})|{SECRET_WORDS})("?\s*[:=]\s*"?)([^"\s,;&}}\]]+)"#
    ))
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
        Regex::new(&format!(
            "(?i)^(?:(?:[A-Za-z0-9]+[_-])*(?:{SECRET_KEYS})|{SECRET_WORDS}|cookie|set-cookie|authorization|proxy-authorization)$"
        ))
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
    fn prefixed_secret_names_are_redacted_and_suffixed_ones_are_not() {
        assert_scrubbed("GITHUB_TOKEN=abcdef123456", "abcdef123456");
        assert_scrubbed("DB_PASSWORD=hunter2hunter2", "hunter2hunter2");
        assert_scrubbed("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCY", "wJalrXUtnFEMIK7MDENGbPxRfiCY");
        assert_scrubbed(r#"{"stripe-api-key": "abcdefgh"}"#, "abcdefgh");
        let line = "token_count=12 status_code=200 max_tokens=300 secret_name=github_token";
        assert_eq!(scrub_text(line), line);
        assert!(is_secret_key("GITHUB_TOKEN") && is_secret_key("db-password") && !is_secret_key("status_code"));
    }

    #[test]
    fn session_ids_and_search_queries_in_urls_are_redacted() {
        assert_scrubbed("GET /dashboard?session=0192abcd-77&tab=agents", "0192abcd-77");
        assert_scrubbed("GET /audit?q=ada%40example.com&page=2", "ada%40example.com");
        assert!(scrub_text("GET /audit?q=x&page=2").contains("page=2"));
    }

    #[test]
    fn well_known_token_formats_are_redacted() {
        // Each made-up value below has the shape of a real token (built at run time, so no scanner flags it).
        let cases = [
            format!("ghp_{}", "A".repeat(36)),
            format!("gho_{}", "b1".repeat(18)),
            format!("github_pat_{}", "11ABCDEFG0_xyz".repeat(4)),
            format!("glpat-{}", "x1Y2z3".repeat(4)),
            format!("AKIA{}", "IOSFODNN7EXAMPLE"),
            format!("xoxb-{}", "1234567890-abcdefghij"),
            format!("xoxp-{}", "1234567890-abcdefghij"),
            format!("AIza{}", "SyA-1234567890abcdefghijklmnopqrstu"),
        ];
        for token in &cases {
            let secret = &token[token.len() - 12..];
            assert_scrubbed(&format!("agent said: using {token} now"), secret);
        }
        let pem =
            format!("-----BEGIN {0}PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END {0}PRIVATE KEY-----", "RSA ");
        assert_scrubbed(&format!("key file: {pem} done"), "MIIEvQIBADANBgkqhkiG9w0B");
        assert!(scrub_text(&format!("key file: {pem} done")).ends_with(" done"));
        let cut = format!("-----BEGIN {}PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B", "");
        assert_scrubbed(&cut, "MIIEvQIBADANBgkqhkiG9w0B");
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
