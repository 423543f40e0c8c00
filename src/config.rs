//! Typed, layered configuration.
//!
//! Layers, later ones winning: built-in defaults, then a TOML file (`--config FILE`, `DEPLOYCLAW_CONFIG`, or
//! `deployclaw.toml` in the working directory when present), then `DEPLOYCLAW_*` environment variables with
//! nested keys joined by `__` (`DEPLOYCLAW_SERVER__ADDR=0.0.0.0:3000`), and finally the conventional
//! `DATABASE_URL`. The result is validated once, at startup; every error names the key at fault and where
//! the bad value came from. Secrets (the database URL may hold a password) are redacted in `Debug`.
//!
//! Each capability owns its settings type (`db::config`, `audit::config`, `gateway::config`, ...); this module
//! only loads, layers, validates and composes them, naming the key at fault. No capability takes [`Config`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

pub use crate::audit::config::{AuditConfig, SiemConfig, DEFAULT_CHECKPOINT_INTERVAL};
pub use crate::config_error::ConfigError;
pub use crate::db::config::{DatabaseConfig, DatabaseTarget};
pub use crate::gateway::config::{
    GatewayConfig, DEFAULT_GATEWAY_CONNECT_TIMEOUT, DEFAULT_GATEWAY_IDLE_TIMEOUT,
    DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_AGENT,
};
pub use crate::identity::config::AuthConfig;
pub use crate::mail::MailConfig;
pub use crate::runtime::config::RuntimeConfig;
pub use server::{
    ServerConfig, TlsFiles, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    DEFAULT_REQUEST_BODY_TIMEOUT,
};

mod server;

/// Environment variable prefix of every configuration key.
pub const ENV_PREFIX: &str = "DEPLOYCLAW_";
/// Environment variable naming the configuration file.
pub const CONFIG_FILE_ENV: &str = "DEPLOYCLAW_CONFIG";
/// File read from the working directory when no other file is named and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "deployclaw.toml";

/// `DEPLOYCLAW_*` variables that are not configuration keys (tooling, tests, later: key material).
const NON_CONFIG_ENV: &[&str] = &["config", "master_keys", "master_key_file"];
const NON_CONFIG_ENV_PREFIXES: &[&str] = &["test_", "e2e_"];

/// How the platform runs. `Embedded` is the zero-setup default (SQLite under the data dir, plain HTTP on
/// loopback); `Production` refuses the conveniences that are unsafe on a public host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Embedded,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The validated configuration. Built only by [`Config::load`] / [`Config::from_figment`].
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub mail: MailConfig,
    pub auth: AuthConfig,
    pub runtime: RuntimeConfig,
    pub audit: AuditConfig,
    pub log: LogConfig,
    pub siem: SiemConfig,
    /// Stripe billing and the plans (docs/billing.md); off unless a Stripe key is set.
    pub billing: crate::billing::config::BillingConfig,
    pub gateway: GatewayConfig,
    pub security: SecurityConfig,
    /// Where each layer came from, for `check-config` and the startup log.
    pub sources: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info,deployclaw=debug`.
    pub filter: String,
}

/// The raw, unvalidated shape of the configuration, as layers are merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: Mode,
    data_dir: PathBuf,
    server: server::RawServer,
    database: RawDatabase,
    mail: RawMail,
    auth: RawAuth,
    runtime: RawRuntime,
    audit: crate::audit::config::RawAudit,
    log: RawLog,
    #[serde(default)]
    siem: crate::audit::config::RawSiem,
    #[serde(default)]
    billing: crate::billing::config::RawBilling,
    #[serde(default)]
    gateway: crate::gateway::config::RawGateway,
    #[serde(default)]
    security: RawSecurity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    docker_host: Option<String>,
    network_pool: String,
    #[serde(default)]
    templates: Vec<crate::runtime::hardening::TemplateInput>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    code_ttl_minutes: u64,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    from: String,
    #[serde(skip_serializing)]
    smtp_url: Option<SecretString>,
    outbox_dir: Option<PathBuf>,
}

impl fmt::Debug for RawMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMail")
            .field("from", &self.from)
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "[redacted]"))
            .field("outbox_dir", &self.outbox_dir)
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    #[serde(skip_serializing)]
    url: Option<SecretString>,
    max_connections: u32,
    connect_timeout_secs: u64,
}

impl fmt::Debug for RawDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDatabase")
            .field("url", &self.url.as_ref().map(|_| "[redacted]"))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: LogFormat,
    filter: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Embedded,
            data_dir: PathBuf::from("data"),
            server: server::RawServer::default(),
            database: RawDatabase { url: None, max_connections: 10, connect_timeout_secs: 10 },
            mail: RawMail { from: "DeployClaw <no-reply@localhost>".into(), smtp_url: None, outbox_dir: None },
            auth: RawAuth { code_ttl_minutes: crate::identity::codes::DEFAULT_TTL.as_secs() / 60 },
            runtime: RawRuntime { docker_host: None, network_pool: "10.213.0.0/16".into(), templates: Vec::new() },
            audit: crate::audit::config::RawAudit {
                retention_days: 90,
                max_retention_days: 3650,
                checkpoint_interval_secs: DEFAULT_CHECKPOINT_INTERVAL.as_secs(),
                retention_interval_secs: 86_400,
            },
            log: RawLog { format: LogFormat::Pretty, filter: "info".into() },
            siem: crate::audit::config::RawSiem::default(),
            billing: Default::default(),
            gateway: crate::gateway::config::RawGateway::default(),
            security: RawSecurity::default(),
        }
    }
}

/// Where the configuration file comes from.
#[derive(Debug, Clone, Default)]
pub enum ConfigFile {
    /// `DEPLOYCLAW_CONFIG`, else `deployclaw.toml` when it exists, else none.
    #[default]
    Discover,
    /// A file that must exist.
    Path(PathBuf),
    /// No file at all (tests).
    None,
}

impl Config {
    /// Loads the configuration from all layers and the process environment, and validates it.
    pub fn load(file: ConfigFile) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut sources = vec!["defaults".to_string()];
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));

        let path = match file {
            ConfigFile::Path(p) => Some(p),
            ConfigFile::None => None,
            ConfigFile::Discover => lookup(CONFIG_FILE_ENV)
                .map(PathBuf::from)
                .or_else(|| Path::new(DEFAULT_CONFIG_FILE).exists().then(|| DEFAULT_CONFIG_FILE.into())),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::File { path: path.clone(), message: e.to_string() })?;
            figment = figment.merge(Toml::string(&text));
            sources.push(format!("file {}", path.display()));
        }

        let config_env: Vec<(String, String)> = env
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
                let ignored = NON_CONFIG_ENV.contains(&key.as_str())
                    || NON_CONFIG_ENV_PREFIXES.iter().any(|p| key.starts_with(p));
                (!ignored).then(|| (k.clone(), v.clone()))
            })
            .collect();
        if !config_env.is_empty() {
            let names: Vec<&str> = config_env.iter().map(|(k, _)| k.as_str()).collect();
            sources.push(format!("environment {}", names.join(", ")));
        }
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .ignore(NON_CONFIG_ENV)
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    !NON_CONFIG_ENV_PREFIXES.iter().any(|p| key.starts_with(p))
                })
                .split("__"),
        );

        if let Some(url) = lookup("DATABASE_URL").filter(|u| !u.is_empty()) {
            figment = figment.merge(Serialized::default("database.url", url));
            sources.push("environment DATABASE_URL".into());
        }

        let raw: RawConfig = figment.extract().map_err(|e| {
            ConfigError::Parse(e.into_iter().map(|e| describe_figment_error(&e)).collect::<Vec<_>>().join("; "))
        })?;
        validate(raw, sources)
    }

    /// A human-readable, secret-free summary for `check-config` and the startup log.
    pub fn summary(&self) -> String {
        format!(
            "mode: {:?}\ndata_dir: {}\nserver.addr: {}\nserver.public_url: {}\nserver.site_root: {}\n\
             database: {}\nmail: {}\nlog.format: {:?}\nlog.filter: {}\nsources: {}",
            self.mode,
            self.data_dir.display(),
            self.server.addr,
            self.server.public_url,
            self.server.site_root.display(),
            self.database.target.describe(),
            match &self.mail.transport {
                crate::mail::MailTransport::Smtp { .. } => "SMTP (URL hidden)".to_string(),
                crate::mail::MailTransport::Outbox { dir } => format!("outbox {}", dir.display()),
            },
            self.log.format,
            self.log.filter,
            self.sources.join(" < "),
        )
    }
}

fn describe_figment_error(e: &figment::Error) -> String {
    let key = if e.path.is_empty() { String::new() } else { format!("configuration key `{}`: ", e.path.join(".")) };
    let source = e
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(src) => format!(" (from {} {src})", m.name),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    format!("{key}{}{source}", e.kind)
}

fn validate(raw: RawConfig, sources: Vec<String>) -> Result<Config, ConfigError> {
    let server = server::validate(&raw.server, raw.mode == Mode::Production)?;
    let public_url = server.public_url.clone();
    if raw.data_dir.as_os_str().is_empty() {
        return Err(ConfigError::invalid("data_dir", "must not be empty"));
    }
    if !(1..=200).contains(&raw.database.max_connections) {
        return Err(ConfigError::invalid("database.max_connections", "must be between 1 and 200"));
    }
    if !(1..=120).contains(&raw.database.connect_timeout_secs) {
        return Err(ConfigError::invalid("database.connect_timeout_secs", "must be between 1 and 120 seconds"));
    }

    let target = match &raw.database.url {
        None => DatabaseTarget::Sqlite { path: raw.data_dir.join("deployclaw.db") },
        Some(url) => crate::db::config::parse_database_url(url)?,
    };

    if raw.mode == Mode::Production && raw.database.url.is_none() {
        return Err(ConfigError::invalid(
            "database.url",
            "production mode needs an explicit database URL (DATABASE_URL=postgres://...)",
        ));
    }

    if raw.mail.from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError::invalid("mail.from", "must be an address like `DeployClaw <no-reply@example.com>`"));
    }
    let transport = match &raw.mail.smtp_url {
        Some(url) => {
            let text = url.expose_secret();
            if !(text.starts_with("smtp://") || text.starts_with("smtps://")) {
                return Err(ConfigError::invalid("mail.smtp_url", "must start with smtp:// or smtps://"));
            }
            crate::mail::MailTransport::Smtp { url: url.clone() }
        }
        None if raw.mode == Mode::Production => {
            return Err(ConfigError::invalid(
                "mail.smtp_url",
                "production mode needs an SMTP server (sign-in codes must reach people)",
            ))
        }
        None => crate::mail::MailTransport::Outbox {
            dir: raw.mail.outbox_dir.clone().unwrap_or_else(|| raw.data_dir.join("outbox")),
        },
    };

    let ttl_minutes = |d: Duration| d.as_secs() / 60;
    let (min_ttl, max_ttl) = (crate::identity::codes::MIN_TTL, crate::identity::codes::MAX_TTL);
    if !(ttl_minutes(min_ttl)..=ttl_minutes(max_ttl)).contains(&raw.auth.code_ttl_minutes) {
        return Err(ConfigError::invalid(
            "auth.code_ttl_minutes",
            "must be between 1 and 15 minutes (10 is recommended)",
        ));
    }

    let network_pool = crate::runtime::subnets::Pool::parse(&raw.runtime.network_pool)
        .map_err(|m| ConfigError::invalid("runtime.network_pool", m))?;
    let mut custom = Vec::new();
    for t in &raw.runtime.templates {
        custom.push(
            crate::runtime::hardening::Template::custom(t.clone())
                .map_err(|m| ConfigError::invalid("runtime.templates", m))?,
        );
    }
    let templates =
        crate::runtime::hardening::Templates::with(custom).map_err(|m| ConfigError::invalid("runtime.templates", m))?;
    if let Some(host) = &raw.runtime.docker_host {
        if !host.starts_with("unix:///") {
            return Err(ConfigError::invalid(
                "runtime.docker_host",
                "must be a unix socket (unix:///path): a TCP Docker API is unauthenticated root on its host",
            ));
        }
    }

    let audit = crate::audit::config::validate(&raw.audit)?;
    let billing = crate::billing::config::validate(&raw.billing)?;
    let gateway = crate::gateway::config::validate(&raw.gateway)?;
    let security = validate_security(&raw.security, &public_url)?;
    if raw.mode == Mode::Production {
        // Switches that open a way from the platform into its own network exist for tests and a single-machine
        // trial; a public installation refuses to start with them.
        if !gateway.test_upstreams.is_empty() {
            return Err(ConfigError::invalid(
                "gateway.test_upstreams",
                "is for tests only: production mode never lets agents reach non-public addresses",
            ));
        }
        if raw.siem.allow_private_destinations {
            return Err(ConfigError::invalid(
                "siem.allow_private_destinations",
                "is not allowed in production mode: a customer's SIEM destination could reach this platform's own \
                 network",
            ));
        }
    }

    if raw.log.filter.trim().is_empty() {
        return Err(ConfigError::invalid("log.filter", "must not be empty (e.g. \"info\")"));
    }

    Ok(Config {
        mode: raw.mode,
        data_dir: raw.data_dir,
        server,
        database: DatabaseConfig {
            target,
            max_connections: raw.database.max_connections,
            connect_timeout: Duration::from_secs(raw.database.connect_timeout_secs),
        },
        mail: MailConfig { from: raw.mail.from, transport },
        auth: AuthConfig { code_ttl: Duration::from_secs(raw.auth.code_ttl_minutes * 60) },
        runtime: RuntimeConfig { docker_host: raw.runtime.docker_host, network_pool, templates },
        audit,
        log: LogConfig { format: raw.log.format, filter: raw.log.filter },
        siem: SiemConfig { allow_private_destinations: raw.siem.allow_private_destinations },
        billing,
        gateway,
        security,
        sources,
    })
}

/// What the public security page and `/.well-known/security.txt` publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Where vulnerability reports go (RFC 9116 `Contact:`): a `mailto:`, `https:` or `tel:` URI.
    /// Default: `mailto:security@<public host>`.
    pub contact: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    #[serde(default)]
    contact: Option<String>,
}

fn validate_security(raw: &RawSecurity, public_url: &Url) -> Result<SecurityConfig, ConfigError> {
    let contact = match &raw.contact {
        None => format!("mailto:security@{}", public_url.host_str().unwrap_or("localhost")),
        Some(text) => {
            let text = text.trim();
            let url = Url::parse(text).map_err(|_| {
                ConfigError::invalid("security.contact", "must be a URI such as mailto:security@example.com")
            })?;
            if !matches!(url.scheme(), "mailto" | "https" | "tel") || text.chars().any(char::is_control) {
                return Err(ConfigError::invalid("security.contact", "must be a mailto:, https: or tel: URI"));
            }
            text.to_string()
        }
    };
    Ok(SecurityConfig { contact })
}

#[cfg(test)]
mod tests;
