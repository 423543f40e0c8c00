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
/// Where exports are served (`server/audit_export.rs`).
pub const EXPORT_PATH: &str = "/api/audit/export";

/// An export of what `query` filters by agent and time (default: the last 30 days), as `format` (`jsonl` or
/// `csv`); `now_ms` is the current time in milliseconds since the epoch.
pub fn export_url(format: &str, query: &StreamQuery, now_ms: i64) -> String {
    let iso = |ms: i64| {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let (h, m, s) = (secs.rem_euclid(86_400) / 3600, secs.rem_euclid(3600) / 60, secs.rem_euclid(60));
        let (y, mo, d) = civil_from_days(days);
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
    };
    let set = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let from = set(&query.from).unwrap_or_else(|| iso(now_ms - 30 * 86_400_000));
    let to = set(&query.to).unwrap_or_else(|| iso(now_ms + 60_000));
    let mut url = format!("{EXPORT_PATH}?format={format}&from={}&to={}", encode(&from), encode(&to));
    if let Some(agent) = set(&query.agent) {
        url.push_str(&format!("&agent={}", encode(&agent)));
    }
    url
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Percent-encodes all but unreserved characters.
pub(crate) fn encode(s: &str) -> String {
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
    fn export_urls_default_to_the_last_30_days() {
        // 2026-11-23T16:00:00Z
        let now = 1_795_449_600_000;
        assert_eq!(
            export_url("csv", &StreamQuery::default(), now),
            "/api/audit/export?format=csv&from=2026-10-24T16%3A00%3A00Z&to=2026-11-23T16%3A01%3A00Z"
        );
        let q = StreamQuery {
            from: Some("2026-01-01T00:00:00.000Z".into()),
            agent: Some("0195".into()),
            ..StreamQuery::default()
        };
        assert_eq!(
            export_url("jsonl", &q, now),
            "/api/audit/export?format=jsonl&from=2026-01-01T00%3A00%3A00.000Z&to=2026-11-23T16%3A01%3A00Z&agent=0195"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

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
