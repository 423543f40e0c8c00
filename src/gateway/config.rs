//! The egress gateway's and LLM gateway's settings.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config_error::ConfigError;

/// The agents' egress gateway (docs/gateway.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Exact upstream socket addresses the proxy may connect to although they are not public (tests only:
    /// a local stand-in on 127.0.0.1). Empty by default; never a range.
    pub test_upstreams: Vec<SocketAddr>,
    /// Resolving and connecting upstream (1-60 s, default 10).
    pub connect_timeout: Duration,
    /// A tunnel with no traffic either way is closed after this (10-3600 s, default 300).
    pub idle_timeout: Duration,
    /// Open proxy connections per agent (1-1024, default 64).
    pub max_connections_per_agent: usize,
    /// Where the LLM gateway sends OpenAI-format calls (default `https://api.openai.com`; `http://` only to
    /// loopback, for a local stand-in).
    pub openai_base_url: Url,
    /// Where it sends Anthropic-format calls (default `https://api.anthropic.com`).
    pub anthropic_base_url: Url,
    /// From sending a model call to the provider's answer head (5-600 s, default 120).
    pub llm_answer_timeout: Duration,
    /// Model prices (`[gateway.prices]`, USD per million tokens); the built-in table when absent.
    pub prices: crate::gateway::pricing::PriceTable,
}

/// Default upstream connect timeout of the egress gateway (`gateway.connect_timeout_secs`).
pub const DEFAULT_GATEWAY_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default idle timeout of an egress tunnel (`gateway.idle_timeout_secs`).
pub const DEFAULT_GATEWAY_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cap on open egress connections per agent (`gateway.max_connections_per_agent`).
pub const DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_AGENT: usize = 64;

/// `[gateway]` as written in the file and environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawGateway {
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
pub(crate) struct RawPrice {
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

/// Checks `[gateway]`, naming the key at fault.
pub(crate) fn validate(raw: &RawGateway) -> Result<GatewayConfig, ConfigError> {
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
        None => super::pricing::PriceTable::defaults(),
        Some(rows) => {
            let mut entries = std::collections::BTreeMap::new();
            for (model, p) in rows {
                let price = super::pricing::ModelPrice::parse(&p.input, &p.output)
                    .map_err(|e| ConfigError::invalid("gateway.prices", format!("{model}: {e}")))?;
                entries.insert(model.clone(), price);
            }
            super::pricing::PriceTable::new(entries).map_err(|e| ConfigError::invalid("gateway.prices", e))?
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
