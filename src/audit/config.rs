//! The audit trail's settings: checkpoints, retention, SIEM forwarding.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config_error::ConfigError;

/// The audit trail: checkpoints and retention (docs/audit.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// How long events are kept when a client has no override (days, 1 to 3650; default 90).
    pub retention_days: u32,
    /// The most a client's override may keep (days, at least `retention_days`, at most 3650).
    pub max_retention_days: u32,
    /// How often every chain head that moved is signed (default 5 minutes).
    pub checkpoint_interval: Duration,
    /// How often retention runs (default daily).
    pub retention_interval: Duration,
}

/// Forwarding audit events to customers' SIEMs.
#[derive(Debug, Clone, Default)]
pub struct SiemConfig {
    /// Whether customer-configured destinations may be on loopback, private, link-local or other
    /// non-public addresses. Off by default: a destination is then a way into our own network (SSRF).
    /// Tests turn it on to use 127.0.0.1; a self-hosted operator may turn it on for an internal SIEM.
    pub allow_private_destinations: bool,
}

/// Default interval between signed audit checkpoints (`audit.checkpoint_interval_secs`).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);

/// `[audit]` as written in the file and environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub(crate) retention_days: u32,
    pub(crate) max_retention_days: u32,
    pub(crate) checkpoint_interval_secs: u64,
    pub(crate) retention_interval_secs: u64,
}

/// `[siem]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSiem {
    #[serde(default)]
    pub(crate) allow_private_destinations: bool,
}

/// Checks `[audit]`, naming the key at fault.
pub(crate) fn validate(raw: &RawAudit) -> Result<AuditConfig, ConfigError> {
    if !(1..=3650).contains(&raw.max_retention_days) {
        return Err(ConfigError::invalid("audit.max_retention_days", "must be between 1 and 3650 days"));
    }
    if !(1..=raw.max_retention_days).contains(&raw.retention_days) {
        return Err(ConfigError::invalid(
            "audit.retention_days",
            format!("must be between 1 and audit.max_retention_days ({}) days", raw.max_retention_days),
        ));
    }
    if !(10..=86_400).contains(&raw.checkpoint_interval_secs) {
        return Err(ConfigError::invalid("audit.checkpoint_interval_secs", "must be between 10 and 86400 seconds"));
    }
    if !(60..=7 * 86_400).contains(&raw.retention_interval_secs) {
        return Err(ConfigError::invalid("audit.retention_interval_secs", "must be between 60 and 604800 seconds"));
    }
    Ok(AuditConfig {
        retention_days: raw.retention_days,
        max_retention_days: raw.max_retention_days,
        checkpoint_interval: Duration::from_secs(raw.checkpoint_interval_secs),
        retention_interval: Duration::from_secs(raw.retention_interval_secs),
    })
}
