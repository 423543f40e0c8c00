//! The audit trail's settings: checkpoints, retention, SIEM forwarding.

use std::time::Duration;

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
