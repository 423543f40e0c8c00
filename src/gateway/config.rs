//! The egress gateway's and LLM gateway's settings.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

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
