//! RFC 5424 messages for the syslog destinations (framed by the caller per RFC 6587).

use chrono::SecondsFormat;
use serde_json::Value;

use crate::audit::export::event_object;
use crate::audit::AuditEvent;
use crate::db::DbError;

/// Syslog PRI of every message: facility 13 (log audit) * 8 + severity 6 (informational).
const SYSLOG_PRI: u8 = 110;
/// RFC 5424 structured-data id: `deployclaw` under the private enterprise number RFC 5612 reserves for
/// documentation (32473), until we have our own.
const SD_ID: &str = "deployclaw@32473";

/// One RFC 5424 message (without the RFC 6587 length prefix):
/// `<110>1 TIMESTAMP HOSTNAME deployclaw - audit [deployclaw@32473 id=".." client=".." action=".."
/// actor=".."] {event as JSON}`. The JSON is pure ASCII (other characters as `\u` escapes), so MSG needs no
/// BOM and any receiver reads it.
pub fn syslog_message(event: &AuditEvent, hostname: &str) -> Result<String, DbError> {
    let json = Value::Object(event_object(event)?).to_string();
    let hostname: String = hostname.chars().filter(|c| c.is_ascii_graphic()).take(255).collect();
    let hostname = if hostname.is_empty() { "-".to_string() } else { hostname };
    let client = event.client_id.map(|c| c.to_string()).unwrap_or_default();
    Ok(format!(
        "<{SYSLOG_PRI}>1 {} {hostname} deployclaw - audit [{SD_ID} id=\"{}\" client=\"{}\" action=\"{}\" actor=\"{}\"] {}",
        event.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        event.id,
        sd_escape(&client),
        sd_escape(&event.action_type),
        sd_escape(&event.actor_kind),
        ascii_json(&json),
    ))
}

/// RFC 5424 PARAM-VALUE escaping: `"`, `\` and `]` get a backslash.
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// JSON text with every non-ASCII character as a `\uXXXX` escape (still the same JSON value: outside strings
/// JSON is ASCII anyway).
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_text_is_escaped_and_ascii() {
        assert_eq!(sd_escape(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        let json = ascii_json(r#"{"t":"café 🦀"}"#);
        assert!(json.is_ascii());
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap()["t"], "café 🦀");
    }
}
