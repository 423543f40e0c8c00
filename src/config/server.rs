//! `[server]`: the web listener's address, public origin, limits, TLS and the proxies it trusts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config_error::ConfigError;
use crate::net::forwarded::{Cidr, ClientAddressHeader, TrustedProxies};

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
    /// Reverse proxies whose forwarding header names the client (`server.trusted_proxies`,
    /// `server.client_address_header`); empty by default: the peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// Built-in TLS (`server.tls_cert_file`, `server.tls_key_file`): the listener speaks HTTPS itself.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key, read at startup and again on SIGHUP or when either changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
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

/// A list setting given either as a TOML array or, from the environment, as one comma-separated string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum RawList {
    One(String),
    Many(Vec<String>),
}

impl Default for RawList {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl RawList {
    fn items(&self) -> Vec<String> {
        let all = match self {
            Self::One(text) => text.split(',').map(str::to_string).collect(),
            Self::Many(items) => items.clone(),
        };
        all.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    addr: String,
    public_url: Option<String>,
    site_root: PathBuf,
    shutdown_grace_secs: u64,
    header_read_timeout_secs: u64,
    request_body_timeout_secs: u64,
    max_connections: usize,
    max_connections_per_address: usize,
    #[serde(default)]
    trusted_proxies: RawList,
    #[serde(default = "default_client_address_header")]
    client_address_header: String,
    #[serde(default)]
    tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    tls_key_file: Option<PathBuf>,
}

fn default_client_address_header() -> String {
    ClientAddressHeader::default().name().to_string()
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:3000".into(),
            public_url: None,
            site_root: PathBuf::from("target/site"),
            shutdown_grace_secs: 20,
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
            request_body_timeout_secs: DEFAULT_REQUEST_BODY_TIMEOUT.as_secs(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            trusted_proxies: RawList::default(),
            client_address_header: default_client_address_header(),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// Checks `[server]`. `production` adds what a public host needs: an https public URL, and either built-in TLS
/// or a trusted reverse proxy in front (else every client would share the proxy's address, and every
/// per-address limit would be global).
pub(super) fn validate(raw: &RawServer, production: bool) -> Result<ServerConfig, ConfigError> {
    let addr: SocketAddr = raw
        .addr
        .parse()
        .map_err(|_| ConfigError::invalid("server.addr", format!("{:?} is not an IP:port socket address", raw.addr)))?;
    let tls = match (&raw.tls_cert_file, &raw.tls_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
        (Some(_), None) => {
            return Err(ConfigError::invalid("server.tls_key_file", "is needed with server.tls_cert_file"))
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid("server.tls_cert_file", "is needed with server.tls_key_file"))
        }
    };

    let public_url = match &raw.public_url {
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
            let scheme = if tls.is_some() { "https" } else { "http" };
            Url::parse(&format!("{scheme}://{authority}")).expect("socket address forms a valid URL")
        }
    };
    if public_url.scheme() == "http" && !is_loopback_host(&public_url) {
        return Err(ConfigError::invalid(
            "server.public_url",
            "http:// is allowed only on a loopback address (local development): session cookies must be Secure \
             everywhere else, so set an https:// public URL",
        ));
    }
    if tls.is_some() && public_url.scheme() != "https" {
        return Err(ConfigError::invalid(
            "server.public_url",
            "must be https:// when the server speaks TLS itself (server.tls_cert_file)",
        ));
    }

    if raw.shutdown_grace_secs > 300 {
        return Err(ConfigError::invalid("server.shutdown_grace_secs", "must be at most 300 seconds"));
    }
    if !(1..=300).contains(&raw.header_read_timeout_secs) {
        return Err(ConfigError::invalid("server.header_read_timeout_secs", "must be between 1 and 300 seconds"));
    }
    if !(1..=3600).contains(&raw.request_body_timeout_secs) {
        return Err(ConfigError::invalid("server.request_body_timeout_secs", "must be between 1 and 3600 seconds"));
    }
    if !(16..=1_000_000).contains(&raw.max_connections) {
        return Err(ConfigError::invalid("server.max_connections", "must be between 16 and 1000000"));
    }
    if !(1..=raw.max_connections).contains(&raw.max_connections_per_address) {
        return Err(ConfigError::invalid(
            "server.max_connections_per_address",
            "must be between 1 and server.max_connections",
        ));
    }

    let blocks = raw
        .trusted_proxies
        .items()
        .iter()
        .map(|item| item.parse::<Cidr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| ConfigError::invalid("server.trusted_proxies", m))?;
    let header = ClientAddressHeader::parse(&raw.client_address_header)
        .map_err(|m| ConfigError::invalid("server.client_address_header", m))?;
    let trusted_proxies = TrustedProxies::new(blocks, header);

    if production {
        if public_url.scheme() != "https" {
            return Err(ConfigError::invalid(
                "server.public_url",
                "production mode needs an https:// public URL (cookies are Secure, HSTS is sent)",
            ));
        }
        if tls.is_none() && trusted_proxies.is_empty() {
            return Err(ConfigError::invalid(
                "server.trusted_proxies",
                "production mode with an https:// public URL needs either built-in TLS (server.tls_cert_file and \
                 server.tls_key_file) or the address of the reverse proxy that terminates TLS in front of this \
                 server (server.trusted_proxies); without either, every client would have the proxy's address and \
                 every per-address limit would lock everyone out at once",
            ));
        }
    }

    Ok(ServerConfig {
        addr,
        public_url,
        site_root: raw.site_root.clone(),
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
        header_read_timeout: Duration::from_secs(raw.header_read_timeout_secs),
        request_body_timeout: Duration::from_secs(raw.request_body_timeout_secs),
        max_connections: raw.max_connections,
        max_connections_per_address: raw.max_connections_per_address,
        trusted_proxies,
        tls,
    })
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
