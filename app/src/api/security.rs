//! The numbers on the public security page, read from the same constants the core enforces (no copy of
//! any of them is typed into the page or its data file). Public: no sign-in, no tenant data.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::AppError;

/// One parameter of a primitive (`primitive` is an id from `security/references.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub primitive: String,
    pub label: String,
    pub value: String,
}

/// What the security page needs from the server: the parameters and where to report a vulnerability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityFactsView {
    /// `security.contact` from the configuration (a `mailto:`, `https:` or `tel:` URI).
    pub contact: String,
    pub parameters: Vec<Parameter>,
}

#[server(prefix = "/api/fn", endpoint = "security_facts")]
pub async fn security_facts() -> Result<SecurityFactsView, AppError> {
    use super::caller::respond;
    respond(async {
        let platform = use_context::<deployclaw::Platform>()
            .ok_or_else(|| AppError::internal(&"platform handle missing from context"))?;
        Ok(SecurityFactsView { contact: platform.config().security.contact.clone(), parameters: parameters() })
    })
    .await
}

/// `90 seconds`, `15 minutes`, `12 hours`, `1 minute`: whole units only, the largest that divides evenly.
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        s if s >= 3600 && s.is_multiple_of(3600) => (s / 3600, "hour"),
        s if s >= 60 && s.is_multiple_of(60) => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `16 KiB`, `512 bytes`.
pub fn bytes(n: u64) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
            return format!("{} MiB", n / (1024 * 1024));
        }
        return format!("{} KiB", n / 1024);
    }
    format!("{n} bytes")
}

/// A label string from a binary constant such as a salt or an AAD prefix (NUL terminators dropped).
#[cfg(feature = "ssr")]
fn label_bytes(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end_matches('\0').to_string()
}

/// Every parameter the page shows, grouped by primitive, from the core's constants.
#[cfg(feature = "ssr")]
pub fn parameters() -> Vec<Parameter> {
    use deployclaw::agents::settings::{MAX_CPU_MILLIS, MAX_MEMORY_MIB, MIN_CPU_MILLIS};
    use deployclaw::audit::chain::HASH_BYTES;
    use deployclaw::config::{
        DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_GATEWAY_CONNECT_TIMEOUT, DEFAULT_GATEWAY_IDLE_TIMEOUT,
        DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_AGENT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
        DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_REQUEST_BODY_TIMEOUT,
    };
    use deployclaw::gateway::llm::{spend::ALERT_PERCENTS, ADMISSION_TTL, KEY_CACHE_TTL, MAX_REQUEST_BYTES};
    use deployclaw::gateway::permissions::{
        RateLimit, MAX_DAILY_SPEND_MICRO_USD, MAX_DOMAINS, MAX_PER_DAY, MAX_PER_HOUR,
    };
    use deployclaw::gateway::proxy::{HEAD_TIMEOUT, MAX_HEAD_BYTES};
    use deployclaw::identity::{codes, recovery, session, throttle, totp};
    use deployclaw::keys::envelope::{AAD_PREFIX, CIPHER, CLIENT_KEY_SALT, NONCE_BYTES, TAG_BYTES};
    use deployclaw::keys::keyring::KEY_BYTES;
    use deployclaw::runtime::hardening::{GATEWAY_PORT, PIDS_LIMIT};

    let rows: Vec<(&str, &str, String)> = vec![
        ("credentials", "Cipher", CIPHER.to_string()),
        ("credentials", "Key size", format!("{} bits", KEY_BYTES * 8)),
        ("credentials", "Nonce", format!("{NONCE_BYTES} bytes, random for every seal")),
        ("credentials", "Authentication tag", format!("{TAG_BYTES} bytes")),
        ("credentials", "HKDF salt", label_bytes(CLIENT_KEY_SALT)),
        ("credentials", "AAD prefix", label_bytes(AAD_PREFIX)),
        ("credentials", "Largest secret", bytes(deployclaw::vault::MAX_SECRET_BYTES as u64)),
        ("isolation", "Processes per agent", PIDS_LIMIT.to_string()),
        ("isolation", "Memory cap per agent", format!("{MAX_MEMORY_MIB} MiB")),
        ("isolation", "CPU per agent", format!("{MIN_CPU_MILLIS}-{MAX_CPU_MILLIS} millicores")),
        ("egress", "Proxy port on the agent's gateway", GATEWAY_PORT.to_string()),
        ("egress", "Largest request head", bytes(MAX_HEAD_BYTES as u64)),
        ("egress", "Request head timeout", duration(HEAD_TIMEOUT)),
        ("egress", "Upstream connect timeout (default)", duration(DEFAULT_GATEWAY_CONNECT_TIMEOUT)),
        ("egress", "Idle tunnel timeout (default)", duration(DEFAULT_GATEWAY_IDLE_TIMEOUT)),
        ("egress", "Open connections per agent (default)", DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_AGENT.to_string()),
        (
            "egress",
            "Rate limit of a granted scope (default)",
            format!("{} per hour, {} per day", RateLimit::DEFAULT.max_per_hour, RateLimit::DEFAULT.max_per_day),
        ),
        ("egress", "Rate limit ceiling", format!("{MAX_PER_HOUR} per hour, {MAX_PER_DAY} per day")),
        ("egress", "Allowlist entries per agent", MAX_DOMAINS.to_string()),
        ("egress", "Highest daily spend cap", format!("{} USD", MAX_DAILY_SPEND_MICRO_USD / 1_000_000)),
        (
            "egress",
            "Budget alerts",
            ALERT_PERCENTS.iter().map(|p| format!("{p} %")).collect::<Vec<_>>().join(", ") + " of the daily cap",
        ),
        ("egress", "Largest model call", bytes(MAX_REQUEST_BYTES as u64)),
        ("egress", "Cap and permission changes reach every server within", duration(ADMISSION_TTL)),
        (
            "credentials",
            "Provider key kept in memory for further calls",
            format!("at most {}", duration(KEY_CACHE_TTL)),
        ),
        ("isolation", "Host ports agents can reach", format!("{GATEWAY_PORT} (the gateway) only")),
        (
            "payment",
            "Webhook timestamp tolerance",
            duration(std::time::Duration::from_secs(deployclaw::billing::signature::TOLERANCE_SECS.unsigned_abs())),
        ),
        ("payment", "Largest webhook body", bytes(deployclaw::billing::WEBHOOK_MAX_BODY_BYTES as u64)),
        ("auth", "Sign-in code", format!("{} digits, single use", codes::CODE_DIGITS)),
        ("auth", "Code lifetime (default)", duration(codes::DEFAULT_TTL)),
        (
            "auth",
            "Code lifetime (configurable)",
            format!("{} to {}", duration(codes::MIN_TTL), duration(codes::MAX_TTL)),
        ),
        ("auth", "Tries per code", codes::MAX_ATTEMPTS.to_string()),
        (
            "auth",
            "Failed attempts",
            format!(
                "{} per {} per IP network and per account",
                throttle::FAILURES.max,
                duration(throttle::FAILURES.window)
            ),
        ),
        (
            "auth",
            "Codes sent",
            format!(
                "{} per {} per address and per IP",
                throttle::CODE_SENDS.max,
                duration(throttle::CODE_SENDS.window)
            ),
        ),
        (
            "auth",
            "TOTP",
            format!(
                "{}-second steps, {} step of clock skew, each step accepted once",
                totp::STEP_SECONDS,
                totp::SKEW_STEPS
            ),
        ),
        (
            "auth",
            "Recovery codes",
            format!(
                "{}, argon2id (m = {} KiB, t = {}, p = {})",
                recovery::RECOVERY_CODES,
                recovery::HASH_MEMORY_KIB,
                recovery::HASH_ITERATIONS,
                recovery::HASH_LANES
            ),
        ),
        ("front-door", "Request head timeout, also idle keep-alive (default)", duration(DEFAULT_HEADER_READ_TIMEOUT)),
        ("front-door", "Whole request body (default)", duration(DEFAULT_REQUEST_BODY_TIMEOUT)),
        (
            "front-door",
            "Open connections per client address (default)",
            DEFAULT_MAX_CONNECTIONS_PER_ADDRESS.to_string(),
        ),
        ("front-door", "Open connections in total (default)", DEFAULT_MAX_CONNECTIONS.to_string()),
        ("sessions", "Idle timeout", duration(session::IDLE_TIMEOUT)),
        ("sessions", "Absolute lifetime", duration(session::ABSOLUTE_LIFETIME)),
        ("sessions", "Fresh second factor for sensitive changes", duration(session::FRESH_SECOND_FACTOR)),
        ("sessions", "Unfinished sign-in expires after", duration(session::PENDING_LIFETIME)),
        ("sessions", "Cookie over HTTPS", crate::server::session::SECURE_COOKIE.to_string()),
        ("sessions", "HSTS over HTTPS", crate::server::headers::HSTS_VALUE.to_string()),
        ("audit", "Chain hash", format!("SHA-256 ({HASH_BYTES} bytes)")),
        ("audit", "Checkpoint signature", "Ed25519".to_string()),
        ("audit", "Checkpoint interval (default)", duration(DEFAULT_CHECKPOINT_INTERVAL)),
        ("audit", "Longest retention", format!("{} days", deployclaw::audit::retention::MAX_DAYS)),
        ("audit", "Largest event metadata", bytes(deployclaw::audit::MAX_METADATA_BYTES as u64)),
    ];
    rows.into_iter()
        .map(|(primitive, label, value)| Parameter { primitive: primitive.into(), label: label.into(), value })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_naturally() {
        use std::time::Duration;
        assert_eq!(duration(Duration::from_secs(10)), "10 seconds");
        assert_eq!(duration(Duration::from_secs(60)), "1 minute");
        assert_eq!(duration(Duration::from_secs(900)), "15 minutes");
        assert_eq!(duration(Duration::from_secs(12 * 3600)), "12 hours");
        assert_eq!(duration(Duration::from_secs(90)), "90 seconds");
        assert_eq!(bytes(16 * 1024), "16 KiB");
        assert_eq!(bytes(8 * 1024 * 1024), "8 MiB");
        assert_eq!(bytes(100), "100 bytes");
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn every_parameter_belongs_to_a_primitive_on_the_page() {
        for p in parameters() {
            assert!(crate::security::PRIMITIVES.iter().any(|x| x.id == p.primitive), "{p:?}");
        }
    }
}
