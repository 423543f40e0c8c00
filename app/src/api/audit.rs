//! The audit trail as the dashboard shows it: one event per row, streamed live (server-sent events, see
//! `server/audit_stream.rs`) and read back by the page's filters.

use serde::{Deserialize, Serialize};

/// One audit event. Metadata has been through the secret scrubber before it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// `user`, `agent`, `platform` or `admin` (a DeployClaw operator acting on this account).
    pub actor: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub agent_id: Option<String>,
    pub ip: Option<String>,
    /// The metadata document as compact JSON.
    pub metadata: String,
    /// Its position in the account's hash chain and its hash (hex); absent for events older than the chain.
    pub seq: Option<i64>,
    pub hash: Option<String>,
}

#[cfg(feature = "ssr")]
impl From<deployclaw::audit::AuditEvent> for AuditRow {
    fn from(e: deployclaw::audit::AuditEvent) -> Self {
        AuditRow {
            id: e.id.0,
            at: e.created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            actor: e.actor_kind,
            actor_id: e.actor_id.map(|id| id.to_string()),
            action: e.action_type,
            target: e.target,
            agent_id: e.agent_id.map(|id| id.to_string()),
            ip: e.ip_address,
            metadata: e.metadata.0.to_string(),
            seq: e.seq,
            hash: e.hash.map(|h| h.to_hex()),
        }
    }
}

/// What the page asks the stream for; every field is optional text, checked on the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamQuery {
    pub agent: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    /// RFC 3339.
    pub from: Option<String>,
    pub to: Option<String>,
    pub q: Option<String>,
    /// Resume after this event id (the browser also sends `Last-Event-ID` when it reconnects by itself).
    pub after: Option<i64>,
}

impl StreamQuery {
    /// The stream's URL with this query (empty fields left out).
    pub fn url(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                parts.push(format!("{k}={}", encode(v)));
            }
        };
        add("agent", &self.agent);
        add("action", &self.action);
        add("actor", &self.actor);
        add("from", &self.from);
        add("to", &self.to);
        add("q", &self.q);
        if let Some(after) = self.after {
            parts.push(format!("after={after}"));
        }
        if parts.is_empty() {
            STREAM_PATH.to_string()
        } else {
            format!("{STREAM_PATH}?{}", parts.join("&"))
        }
    }
}

/// Where the live stream is served.
pub const STREAM_PATH: &str = "/api/audit/stream";

/// Percent-encodes all but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_carry_only_what_is_set_encoded() {
        assert_eq!(StreamQuery::default().url(), "/api/audit/stream");
        let q = StreamQuery {
            action: Some("agent.".into()),
            q: Some("a&b c".into()),
            from: Some("  ".into()),
            after: Some(42),
            ..StreamQuery::default()
        };
        assert_eq!(q.url(), "/api/audit/stream?action=agent.&q=a%26b%20c&after=42");
    }
}
