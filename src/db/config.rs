//! Which database, and how to connect to it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

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
