//! Sign-in settings.

use std::time::Duration;

/// Sign-in settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// How long an emailed sign-in code stays valid (1 to 15 minutes; OWASP ASVS caps it at 10 by default).
    pub code_ttl: Duration,
}
