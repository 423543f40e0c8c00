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
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

/// Default time a client has to send a request head (and to start its next request on a kept-alive connection).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a whole request body has to arrive.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on open web connections, all clients together.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default cap on open web connections from one client address.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 128;
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Socket the HTTP server binds.
    pub addr: SocketAddr,
    /// The origin users reach us at (scheme, host, port). Drives HSTS, secure cookies and origin checks.
    pub public_url: Url,
    /// Folder holding the built site (`pkg/` with the WASM bundle, CSS, public assets).
    pub site_root: PathBuf,
    /// How long in-flight requests get to finish after SIGTERM/Ctrl-C.
    pub shutdown_grace: Duration,
    /// Time a client has to send a request's head, and to start its next request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Time a whole request body has to arrive, counted from its head.
    pub request_body_timeout: Duration,
    /// Open connections to the web listener at most, all clients together.
    pub max_connections: usize,
    /// Open connections at most from one client address (a trusted reverse proxy is exempt).
    pub max_connections_per_address: usize,
}

impl ServerConfig {
    /// True when the public origin is HTTPS: cookies get `Secure` and responses carry HSTS.
    pub fn is_tls(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// Session cookies are `Secure` (and named with the `__Host-` prefix) unless the public URL is plain http
    /// on a loopback address - local development, the only place configuration allows http.
    pub fn secure_cookies(&self) -> bool {
        self.is_tls()
    }

    /// The public origin as a browser sends it in `Origin` (`scheme://host[:port]`, no path).
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }
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
    server: RawServer,
    database: RawDatabase,
    mail: RawMail,
    auth: RawAuth,
    runtime: RawRuntime,
    audit: RawAudit,
    log: RawLog,
    #[serde(default)]
    siem: RawSiem,
    #[serde(default)]
    billing: crate::billing::config::RawBilling,
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    security: RawSecurity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawGateway {
    test_upstreams: Vec<String>,
    connect_timeout_secs: u64,
    idle_timeout_secs: u64,
    max_connections_per_agent: usize,
    openai_base_url: String,
    anthropic_base_url: String,
    llm_answer_timeout_secs: u64,
    /// Model -> `{ input = "2.50", output = "10.00" }` (USD per million tokens).
    prices: Option<std::collections::BTreeMap<String, RawPrice>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input: String,
    output: String,
}

impl Default for RawGateway {
    fn default() -> Self {
        Self {
            test_upstreams: Vec::new(),
            connect_timeout_secs: DEFAULT_GATEWAY_CONNECT_TIMEOUT.as_secs(),
            idle_timeout_secs: DEFAULT_GATEWAY_IDLE_TIMEOUT.as_secs(),
            max_connections_per_agent: DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_AGENT,
            openai_base_url: "https://api.openai.com".into(),
            anthropic_base_url: "https://api.anthropic.com".into(),
            llm_answer_timeout_secs: 120,
            prices: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSiem {
    #[serde(default)]
    allow_private_destinations: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    retention_days: u32,
    max_retention_days: u32,
    checkpoint_interval_secs: u64,
    retention_interval_secs: u64,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    addr: String,
    public_url: Option<String>,
    site_root: PathBuf,
    shutdown_grace_secs: u64,
    header_read_timeout_secs: u64,
    request_body_timeout_secs: u64,
    max_connections: usize,
    max_connections_per_address: usize,
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
            server: RawServer {
                addr: "127.0.0.1:3000".into(),
                public_url: None,
                site_root: PathBuf::from("target/site"),
                shutdown_grace_secs: 20,
                header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
                request_body_timeout_secs: DEFAULT_REQUEST_BODY_TIMEOUT.as_secs(),
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            },
            database: RawDatabase { url: None, max_connections: 10, connect_timeout_secs: 10 },
            mail: RawMail { from: "DeployClaw <no-reply@localhost>".into(), smtp_url: None, outbox_dir: None },
            auth: RawAuth { code_ttl_minutes: crate::identity::codes::DEFAULT_TTL.as_secs() / 60 },
            runtime: RawRuntime { docker_host: None, network_pool: "10.213.0.0/16".into(), templates: Vec::new() },
            audit: RawAudit {
                retention_days: 90,
                max_retention_days: 3650,
                checkpoint_interval_secs: DEFAULT_CHECKPOINT_INTERVAL.as_secs(),
                retention_interval_secs: 86_400,
            },
            log: RawLog { format: LogFormat::Pretty, filter: "info".into() },
            siem: RawSiem::default(),
            billing: Default::default(),
            gateway: RawGateway::default(),
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
    let addr: SocketAddr = raw.server.addr.parse().map_err(|_| {
        ConfigError::invalid("server.addr", format!("{:?} is not an IP:port socket address", raw.server.addr))
    })?;

    let public_url = match &raw.server.public_url {
        Some(text) => {
            let url = Url::parse(text)
                .map_err(|e| ConfigError::invalid("server.public_url", format!("{text:?} is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ConfigError::invalid(
                    "server.public_url",
                    "must be an http:// or https:// URL with a host",
                ));
            }
            if url.path() != "/" || url.query().is_some() {
                return Err(ConfigError::invalid("server.public_url", "must be an origin only (no path or query)"));
            }
            url
        }
        None => {
            let host: IpAddr = if addr.ip().is_unspecified() { Ipv4Addr::LOCALHOST.into() } else { addr.ip() };
            let authority = SocketAddr::new(host, addr.port());
            Url::parse(&format!("http://{authority}")).expect("socket address forms a valid URL")
        }
    };
    if public_url.scheme() == "http" && !is_loopback_host(&public_url) {
        return Err(ConfigError::invalid(
            "server.public_url",
            "http:// is allowed only on a loopback address (local development): session cookies must be Secure \
             everywhere else, so set an https:// public URL",
        ));
    }

    if raw.server.shutdown_grace_secs > 300 {
        return Err(ConfigError::invalid("server.shutdown_grace_secs", "must be at most 300 seconds"));
    }
    if !(1..=300).contains(&raw.server.header_read_timeout_secs) {
        return Err(ConfigError::invalid("server.header_read_timeout_secs", "must be between 1 and 300 seconds"));
    }
    if !(1..=3600).contains(&raw.server.request_body_timeout_secs) {
        return Err(ConfigError::invalid("server.request_body_timeout_secs", "must be between 1 and 3600 seconds"));
    }
    if !(16..=1_000_000).contains(&raw.server.max_connections) {
        return Err(ConfigError::invalid("server.max_connections", "must be between 16 and 1000000"));
    }
    if !(1..=raw.server.max_connections).contains(&raw.server.max_connections_per_address) {
        return Err(ConfigError::invalid(
            "server.max_connections_per_address",
            "must be between 1 and server.max_connections",
        ));
    }
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
        Some(url) => parse_database_url(url)?,
    };

    if raw.mode == Mode::Production {
        if public_url.scheme() != "https" {
            return Err(ConfigError::invalid(
                "server.public_url",
                "production mode needs an https:// public URL (cookies are Secure, HSTS is sent)",
            ));
        }
        if raw.database.url.is_none() {
            return Err(ConfigError::invalid(
                "database.url",
                "production mode needs an explicit database URL (DATABASE_URL=postgres://...)",
            ));
        }
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

    let audit = validate_audit(&raw.audit)?;
    let billing = crate::billing::config::validate(&raw.billing)?;
    let gateway = validate_gateway(&raw.gateway)?;
    let security = validate_security(&raw.security, &public_url)?;

    if raw.log.filter.trim().is_empty() {
        return Err(ConfigError::invalid("log.filter", "must not be empty (e.g. \"info\")"));
    }

    Ok(Config {
        mode: raw.mode,
        data_dir: raw.data_dir,
        server: ServerConfig {
            addr,
            public_url,
            site_root: raw.server.site_root,
            shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_secs),
            header_read_timeout: Duration::from_secs(raw.server.header_read_timeout_secs),
            request_body_timeout: Duration::from_secs(raw.server.request_body_timeout_secs),
            max_connections: raw.server.max_connections,
            max_connections_per_address: raw.server.max_connections_per_address,
        },
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

fn validate_gateway(raw: &RawGateway) -> Result<GatewayConfig, ConfigError> {
    let mut test_upstreams = Vec::new();
    for entry in &raw.test_upstreams {
        let addr: SocketAddr = entry.trim().parse().map_err(|_| {
            ConfigError::invalid("gateway.test_upstreams", format!("{entry:?} is not an exact IP:port address"))
        })?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(ConfigError::invalid("gateway.test_upstreams", format!("{entry:?} is not one exact address")));
        }
        test_upstreams.push(addr);
    }
    if !(1..=60).contains(&raw.connect_timeout_secs) {
        return Err(ConfigError::invalid("gateway.connect_timeout_secs", "must be between 1 and 60 seconds"));
    }
    if !(10..=3600).contains(&raw.idle_timeout_secs) {
        return Err(ConfigError::invalid("gateway.idle_timeout_secs", "must be between 10 and 3600 seconds"));
    }
    if !(1..=1024).contains(&raw.max_connections_per_agent) {
        return Err(ConfigError::invalid("gateway.max_connections_per_agent", "must be between 1 and 1024"));
    }
    if !(5..=600).contains(&raw.llm_answer_timeout_secs) {
        return Err(ConfigError::invalid("gateway.llm_answer_timeout_secs", "must be between 5 and 600 seconds"));
    }
    let prices = match &raw.prices {
        None => crate::gateway::pricing::PriceTable::defaults(),
        Some(rows) => {
            let mut entries = std::collections::BTreeMap::new();
            for (model, p) in rows {
                let price = crate::gateway::pricing::ModelPrice::parse(&p.input, &p.output)
                    .map_err(|e| ConfigError::invalid("gateway.prices", format!("{model}: {e}")))?;
                entries.insert(model.clone(), price);
            }
            crate::gateway::pricing::PriceTable::new(entries).map_err(|e| ConfigError::invalid("gateway.prices", e))?
        }
    };
    Ok(GatewayConfig {
        test_upstreams,
        connect_timeout: Duration::from_secs(raw.connect_timeout_secs),
        idle_timeout: Duration::from_secs(raw.idle_timeout_secs),
        max_connections_per_agent: raw.max_connections_per_agent,
        openai_base_url: provider_url("gateway.openai_base_url", &raw.openai_base_url)?,
        anthropic_base_url: provider_url("gateway.anthropic_base_url", &raw.anthropic_base_url)?,
        llm_answer_timeout: Duration::from_secs(raw.llm_answer_timeout_secs),
        prices,
    })
}

/// A provider base URL: `https://host[:port][/path]`, or `http://` to a loopback address (a local stand-in).
fn provider_url(key: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|_| ConfigError::invalid(key, format!("{raw:?} is not a URL")))?;
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(key, "no credentials, query or fragment in a provider URL"));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => return Err(ConfigError::invalid(key, "a provider URL needs a host")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(ConfigError::invalid(key, "must be https:// (plain http:// only to a loopback address)")),
    }
}

fn validate_audit(raw: &RawAudit) -> Result<AuditConfig, ConfigError> {
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

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_database_url(url: &SecretString) -> Result<DatabaseTarget, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use figment::Jail;

    /// Loads with exactly `pairs` as the environment's configuration variables. `Jail` serialises tests
    /// that touch the process environment and restores it afterwards.
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn load_file(file: ConfigFile, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut result = None;
        Jail::expect_with(|jail| {
            for (k, _) in std::env::vars() {
                if k.starts_with(ENV_PREFIX) || k == "DATABASE_URL" {
                    std::env::remove_var(&k);
                }
            }
            for (k, v) in pairs {
                jail.set_env(k, v);
            }
            result = Some(Config::load(file.clone()));
            Ok(())
        });
        result.expect("jail ran")
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load_file(ConfigFile::None, pairs)
    }

    #[test]
    fn defaults_are_the_embedded_sqlite_platform_on_loopback() {
        let c = load(&[]).unwrap();
        assert_eq!(c.mode, Mode::Embedded);
        assert_eq!(c.server.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.server.public_url.as_str(), "http://127.0.0.1:3000/");
        assert!(
            matches!(&c.database.target, DatabaseTarget::Sqlite { path } if path == Path::new("data/deployclaw.db"))
        );
        assert!(!c.server.is_tls());
    }

    #[test]
    fn file_then_env_layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\naddr = \"127.0.0.1:4000\"\nshutdown_grace_secs = 5\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let c = load_file(
            ConfigFile::Path(file),
            &[("DEPLOYCLAW_SERVER__ADDR", "127.0.0.1:5000"), ("DEPLOYCLAW_TEST_POSTGRES_URL", "ignored")],
        )
        .unwrap();
        assert_eq!(c.server.addr.port(), 5000, "env wins over file");
        assert_eq!(c.server.shutdown_grace, Duration::from_secs(5), "file wins over defaults");
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(c.sources.iter().any(|s| s.contains("DEPLOYCLAW_SERVER__ADDR")));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load(&[("DEPLOYCLAW_SERVER__ADDR", "not-an-address")]).unwrap_err().to_string();
        assert!(err.contains("server.addr"), "{err}");
        let err = load(&[("DEPLOYCLAW_DATABASE__MAX_CONNECTIONS", "lots")]).unwrap_err().to_string();
        assert!(err.contains("database.max_connections"), "{err}");
        let err = load(&[("DEPLOYCLAW_LOG__FORMAT", "xml")]).unwrap_err().to_string();
        assert!(err.contains("log.format"), "{err}");
        let err = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", "ftp://example.com")]).unwrap_err().to_string();
        assert!(err.contains("server.public_url"), "{err}");
    }

    #[test]
    fn mail_defaults_to_an_outbox_under_the_data_dir_and_checks_its_keys() {
        let c = load(&[("DEPLOYCLAW_DATA_DIR", "/srv/dc")]).unwrap();
        assert!(
            matches!(&c.mail.transport, crate::mail::MailTransport::Outbox { dir } if dir == Path::new("/srv/dc/outbox"))
        );
        let err = load(&[("DEPLOYCLAW_MAIL__FROM", "nobody")]).unwrap_err().to_string();
        assert!(err.contains("mail.from"), "{err}");
        let err = load(&[("DEPLOYCLAW_MAIL__SMTP_URL", "http://mail")]).unwrap_err().to_string();
        assert!(err.contains("mail.smtp_url"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected_so_typos_do_not_pass_silently() {
        let err = load(&[("DEPLOYCLAW_SERVER__ADRR", "127.0.0.1:1")]).unwrap_err().to_string();
        assert!(err.contains("adrr"), "{err}");
    }

    #[test]
    fn bad_file_names_the_file() {
        let err = load_file(ConfigFile::Path("/nonexistent/deployclaw.toml".into()), &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/deployclaw.toml"));
    }

    #[test]
    fn database_url_selects_postgres_and_is_never_printed() {
        let c = load(&[("DATABASE_URL", "postgres://app:s3cr3tpw@db.example:5432/deployclaw")]).unwrap();
        assert_eq!(c.database.target.backend_name(), "postgres");
        let shown = format!("{c:?}\n{}", c.summary());
        assert!(!shown.contains("s3cr3tpw"), "password leaked: {shown}");
        assert!(shown.contains("db.example:5432/deployclaw"));
    }

    #[test]
    fn unsupported_database_schemes_are_refused_without_echoing_the_url() {
        let err = load(&[("DATABASE_URL", "mysql://root:pw123456@x/y")]).unwrap_err().to_string();
        assert!(err.contains("database.url") && err.contains("mysql"), "{err}");
        assert!(!err.contains("pw123456"));
        let err = load(&[("DATABASE_URL", "sqlite::memory:")]).unwrap_err().to_string();
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn production_mode_refuses_plain_http_and_implicit_sqlite() {
        let err = load(&[("DEPLOYCLAW_MODE", "production")]).unwrap_err().to_string();
        assert!(err.contains("server.public_url"), "{err}");
        let err =
            load(&[("DEPLOYCLAW_MODE", "production"), ("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example")])
                .unwrap_err()
                .to_string();
        assert!(err.contains("database.url"), "{err}");
        let err = load(&[
            ("DEPLOYCLAW_MODE", "production"),
            ("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example"),
            ("DATABASE_URL", "postgres://u@db/x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("mail.smtp_url"), "{err}");
        let ok = load(&[
            ("DEPLOYCLAW_MODE", "production"),
            ("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example"),
            ("DATABASE_URL", "postgres://u@db/x"),
            ("DEPLOYCLAW_MAIL__SMTP_URL", "smtps://mailer:M41lPass@smtp.example:465"),
        ])
        .unwrap();
        assert!(!format!("{ok:?}\n{}", ok.summary()).contains("M41lPass"), "SMTP password never shown");
        assert!(ok.server.is_tls());
        assert_eq!(ok.server.public_origin(), "https://deployclaw.example");
    }

    #[test]
    fn the_documented_example_file_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deployclaw.example.toml");
        let c = load_file(ConfigFile::Path(example), &[]).expect("deployclaw.example.toml loads");
        assert_eq!(c.server.addr.port(), 3000);
        assert!(c.sources.iter().any(|s| s.contains("deployclaw.example.toml")));
    }

    #[test]
    fn plain_http_is_only_for_loopback_and_the_code_ttl_is_capped() {
        for url in ["http://localhost:3000", "http://127.0.0.1:3000", "http://[::1]:3000"] {
            let c = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", url)]).unwrap();
            assert!(!c.server.secure_cookies(), "{url}");
        }
        let err = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", "http://deployclaw.example")]).unwrap_err().to_string();
        assert!(err.contains("server.public_url") && err.contains("loopback"), "{err}");
        let err = load(&[("DEPLOYCLAW_SERVER__ADDR", "192.0.2.10:3000")]).unwrap_err().to_string();
        assert!(err.contains("server.public_url"), "{err}");
        let c = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example")]).unwrap();
        assert!(c.server.secure_cookies());

        assert_eq!(load(&[]).unwrap().auth.code_ttl, Duration::from_secs(600));
        assert_eq!(load(&[("DEPLOYCLAW_AUTH__CODE_TTL_MINUTES", "15")]).unwrap().auth.code_ttl.as_secs(), 900);
        for bad in ["0", "16"] {
            let err = load(&[("DEPLOYCLAW_AUTH__CODE_TTL_MINUTES", bad)]).unwrap_err().to_string();
            assert!(err.contains("auth.code_ttl_minutes"), "{err}");
        }
    }

    #[test]
    fn the_agent_network_pool_is_a_private_block() {
        let c = load(&[]).unwrap();
        assert_eq!(c.runtime.network_pool.blocks, 4096);
        let c = load(&[("DEPLOYCLAW_RUNTIME__NETWORK_POOL", "172.20.0.0/20")]).unwrap();
        assert_eq!(c.runtime.network_pool.blocks, 256);
        for bad in ["8.8.0.0/16", "10.0.0.0/30", "10.1.2.3/16", "nonsense"] {
            let err = load(&[("DEPLOYCLAW_RUNTIME__NETWORK_POOL", bad)]).unwrap_err().to_string();
            assert!(err.contains("runtime.network_pool"), "{bad}: {err}");
        }
        let err = load(&[("DEPLOYCLAW_RUNTIME__DOCKER_HOST", "tcp://10.0.0.1:2375")]).unwrap_err().to_string();
        assert!(err.contains("runtime.docker_host"), "{err}");
    }

    #[test]
    fn siem_destinations_are_public_only_unless_switched_on() {
        assert!(!load(&[]).unwrap().siem.allow_private_destinations);
        let c = load(&[("DEPLOYCLAW_SIEM__ALLOW_PRIVATE_DESTINATIONS", "true")]).unwrap();
        assert!(c.siem.allow_private_destinations);
        let err = load(&[("DEPLOYCLAW_SIEM__ALLOW_PRIVATE_DESTINATIONS", "maybe")]).unwrap_err().to_string();
        assert!(err.contains("siem.allow_private_destinations"), "{err}");
    }

    #[test]
    fn gateway_test_upstreams_are_exact_addresses_and_empty_by_default() {
        let c = load(&[]).unwrap();
        assert!(c.gateway.test_upstreams.is_empty());
        let c = load(&[("DEPLOYCLAW_GATEWAY__TEST_UPSTREAMS", "[\"127.0.0.1:4000\"]")]).unwrap();
        assert_eq!(c.gateway.test_upstreams, vec!["127.0.0.1:4000".parse().unwrap()]);
        for bad in
            ["[\"127.0.0.0/8\"]", "[\"127.0.0.1\"]", "[\"127.0.0.1:0\"]", "[\"0.0.0.0:80\"]", "[\"localhost:80\"]"]
        {
            let err = load(&[("DEPLOYCLAW_GATEWAY__TEST_UPSTREAMS", bad)]).unwrap_err().to_string();
            assert!(err.contains("gateway.test_upstreams"), "{bad}: {err}");
        }
        let err = load(&[("DEPLOYCLAW_GATEWAY__IDLE_TIMEOUT_SECS", "1")]).unwrap_err().to_string();
        assert!(err.contains("gateway.idle_timeout_secs"), "{err}");
    }

    #[test]
    fn operators_add_templates_from_the_file_and_bad_ones_name_the_key() {
        let c = load(&[]).unwrap();
        assert_eq!(c.runtime.templates.all().len(), 2, "the built-in templates");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let template = "[[runtime.templates]]\nid = \"my-agent\"\nname = \"My agent\"\n\
                        image = \"registry.example.com/team/agent:1.2\"\ncommand = [\"/app/agent\"]\nport = 8080\n\
                        health_path = \"/healthz\"\nstate_dir = \"/data\"\nmemory_mib = 512\nmin_memory_mib = 256\n\
                        user = \"1000:1000\"\n";
        std::fs::write(&file, template).unwrap();
        let c = load_file(ConfigFile::Path(file.clone()), &[]).unwrap();
        let t = c.runtime.templates.get("my-agent").expect("the operator's template");
        assert_eq!((t.image.as_str(), t.port), ("registry.example.com/team/agent:1.2", 8080));
        std::fs::write(&file, template.replace("1000:1000", "0:0")).unwrap();
        let err = load_file(ConfigFile::Path(file), &[]).unwrap_err().to_string();
        assert!(err.contains("runtime.templates") && err.contains("uid:gid"), "{err}");
    }

    #[test]
    fn provider_urls_are_https_or_loopback_and_prices_come_from_the_file() {
        let c = load(&[]).unwrap();
        assert_eq!(c.gateway.openai_base_url.as_str(), "https://api.openai.com/");
        assert_eq!(c.gateway.anthropic_base_url.as_str(), "https://api.anthropic.com/");
        assert!(c.gateway.prices.price("gpt-4o").is_some(), "a built-in price table");
        let c = load(&[("DEPLOYCLAW_GATEWAY__OPENAI_BASE_URL", "http://127.0.0.1:4010")]).unwrap();
        assert_eq!(c.gateway.openai_base_url.port(), Some(4010));
        for bad in [
            "http://api.openai.com",
            "ftp://127.0.0.1",
            "https://user:pw@api.example.com",
            "https://x.example/?k=1",
            "nope",
        ] {
            let err = load(&[("DEPLOYCLAW_GATEWAY__OPENAI_BASE_URL", bad)]).unwrap_err().to_string();
            assert!(err.contains("gateway.openai_base_url"), "{bad}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[gateway.prices]\n\"my-model\" = { input = \"1.25\", output = \"5\" }\n").unwrap();
        let c = load_file(ConfigFile::Path(file.clone()), &[]).unwrap();
        assert_eq!(c.gateway.prices.len(), 1, "the file's table replaces the built-in one");
        assert_eq!(c.gateway.prices.price("my-model").unwrap().input_micro_usd_per_mtok, 1_250_000);
        std::fs::write(&file, "[gateway.prices]\n\"my-model\" = { input = \"-1\", output = \"5\" }\n").unwrap();
        let err = load_file(ConfigFile::Path(file), &[]).unwrap_err().to_string();
        assert!(err.contains("gateway.prices") && err.contains("my-model"), "{err}");
    }

    #[test]
    fn audit_retention_and_checkpoint_intervals_are_bounded() {
        let c = load(&[]).unwrap();
        assert_eq!(c.audit.retention_days, 90);
        assert_eq!(c.audit.checkpoint_interval, Duration::from_secs(300));
        assert_eq!(c.audit.retention_interval, Duration::from_secs(86_400));
        let c = load(&[("DEPLOYCLAW_AUDIT__RETENTION_DAYS", "30"), ("DEPLOYCLAW_AUDIT__MAX_RETENTION_DAYS", "365")])
            .unwrap();
        assert_eq!((c.audit.retention_days, c.audit.max_retention_days), (30, 365));
        for (key, bad) in [
            ("DEPLOYCLAW_AUDIT__RETENTION_DAYS", "0"),
            ("DEPLOYCLAW_AUDIT__RETENTION_DAYS", "3651"),
            ("DEPLOYCLAW_AUDIT__MAX_RETENTION_DAYS", "0"),
            ("DEPLOYCLAW_AUDIT__CHECKPOINT_INTERVAL_SECS", "1"),
            ("DEPLOYCLAW_AUDIT__RETENTION_INTERVAL_SECS", "5"),
        ] {
            let err = load(&[(key, bad)]).unwrap_err().to_string();
            let name = key.trim_start_matches("DEPLOYCLAW_").replace("__", ".").to_ascii_lowercase();
            assert!(err.contains(&name), "{key}={bad}: {err}");
        }
        let err = load(&[("DEPLOYCLAW_AUDIT__MAX_RETENTION_DAYS", "30")]).unwrap_err().to_string();
        assert!(err.contains("audit.retention_days"), "a default above the maximum is refused: {err}");
    }

    #[test]
    fn wildcard_bind_gets_a_loopback_public_url_by_default() {
        let c = load(&[("DEPLOYCLAW_SERVER__ADDR", "0.0.0.0:8080")]).unwrap();
        assert_eq!(c.server.public_url.as_str(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn the_security_contact_defaults_to_the_public_host_and_must_be_a_uri() {
        assert_eq!(load(&[]).unwrap().security.contact, "mailto:security@127.0.0.1");
        let c = load(&[("DEPLOYCLAW_SERVER__PUBLIC_URL", "https://deployclaw.example.com")]).unwrap();
        assert_eq!(c.security.contact, "mailto:security@deployclaw.example.com");
        let c = load(&[("DEPLOYCLAW_SECURITY__CONTACT", "https://example.com/report")]).unwrap();
        assert_eq!(c.security.contact, "https://example.com/report");
        for bad in ["security@example.com", "ftp://example.com/x", "javascript:alert(1)"] {
            let err = load(&[("DEPLOYCLAW_SECURITY__CONTACT", bad)]).unwrap_err().to_string();
            assert!(err.contains("security.contact"), "{bad}: {err}");
        }
    }

    // Billing's settings, through the whole loader (environment layers included).
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn one_field_of_a_built_in_plan_can_be_overridden() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DEPLOYCLAW_BILLING__PLANS__TEAM__MAX_AGENTS", "20");
            jail.set_env("DEPLOYCLAW_BILLING__PLANS__TEAM__STRIPE_PRICE_ID", "price_mine");
            let c = Config::load(ConfigFile::None).expect("loads");
            let team = c.billing.catalog.get("team").unwrap();
            assert_eq!((team.max_agents, team.memory_mib_per_agent), (20, 4096));
            assert_eq!(team.stripe_price_id.as_deref(), Some("price_mine"));
            jail.set_env("DEPLOYCLAW_BILLING__PLANS__TEAM__MEMORY_MIB_PER_AGENT", "512");
            let err = Config::load(ConfigFile::None).unwrap_err().to_string();
            assert!(err.contains("billing.plans") && err.contains("memory_mib_per_agent"), "{err}");
            Ok(())
        });
    }
}
