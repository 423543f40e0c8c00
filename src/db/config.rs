//! Which database, and how to connect to it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config_error::ConfigError;

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub target: DatabaseTarget,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

/// Which database the platform uses.
#[derive(Clone)]
pub enum DatabaseTarget {
    /// The embedded default: one SQLite file.
    Sqlite { path: PathBuf },
    /// Production: a PostgreSQL server. The URL may carry a password, so it stays secret.
    Postgres { url: SecretString },
}

impl DatabaseTarget {
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// A description safe to log: the SQLite path, or the PostgreSQL host and database without credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite:{}", path.display()),
            Self::Postgres { url } => match Url::parse(url.expose_secret()) {
                Ok(u) => format!(
                    "postgres://{}{}{}",
                    u.host_str().unwrap_or("(socket)"),
                    u.port().map(|p| format!(":{p}")).unwrap_or_default(),
                    u.path()
                ),
                Err(_) => "postgres://(unparseable)".to_string(),
            },
        }
    }
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres { .. } => f.debug_struct("Postgres").field("url", &"[redacted]").finish(),
        }
    }
}

/// The database a `database.url` names (`sqlite://FILE` or `postgres://...`); the error never echoes the
/// URL, which may hold a password.
pub(crate) fn parse_database_url(url: &SecretString) -> Result<DatabaseTarget, ConfigError> {
    let text = url.expose_secret();
    if let Some(rest) = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:")) {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(ConfigError::invalid(
                "database.url",
                "a SQLite URL must name a file (sqlite://path/to/file.db); in-memory databases lose data",
            ));
        }
        return Ok(DatabaseTarget::Sqlite { path: PathBuf::from(path) });
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        // Parse to validate, but never echo the URL: it may hold a password.
        Url::parse(text)
            .map_err(|e| ConfigError::invalid("database.url", format!("not a valid PostgreSQL URL ({e})")))?;
        return Ok(DatabaseTarget::Postgres { url: url.clone() });
    }
    let scheme = text.split(':').next().unwrap_or_default();
    let scheme = if scheme.len() <= 16 && scheme.chars().all(|c| c.is_ascii_alphanumeric()) { scheme } else { "?" };
    Err(ConfigError::invalid(
        "database.url",
        format!("unsupported scheme {scheme:?}: use sqlite://FILE or postgres://..."),
    ))
}
