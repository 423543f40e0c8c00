//! An agent's settings: what a customer may change about how it runs (memory, CPU, plain environment
//! variables), validated here and stored as the agent's `config` document.
//!
//! Settings are not secret and are stored in clear: anything that looks like a secret is refused with a
//! pointer to the credential vault, and names the platform sets itself (the gateway token, the proxy, the
//! config paths) cannot be overridden, so a setting can never route an agent around the egress gateway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::DbError;
use crate::runtime::hardening::Template;

const MIB: u64 = 1024 * 1024;
pub use crate::runtime::bounds::{DEFAULT_CPU_MILLIS, MAX_CPU_MILLIS, MAX_MEMORY_MIB, MIN_CPU_MILLIS};
pub const MAX_VARIABLES: usize = 32;
pub const MAX_VALUE_BYTES: usize = 4096;

/// Names the platform sets (or that would let an agent escape the gateway or change its own plumbing).
const RESERVED: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "NODE_USE_ENV_PROXY",
    "NODE_OPTIONS",
    "NODE_EXTRA_CA_CERTS",
    "OPENCLAW_GATEWAY_TOKEN",
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_STATE_DIR",
    "HOME",
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
];
const RESERVED_PREFIX: &str = "DEPLOYCLAW_";
/// Parts of a variable name that say its value is a secret (which belongs in the vault, not in settings).
const SECRET_NAME_PARTS: &[&str] =
    &["PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY", "CREDENTIAL"];

/// What a customer can set. Absent values take the template's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
}

fn invalid(message: String) -> DbError {
    DbError::Invalid(message.into())
}

impl AgentSettings {
    /// The settings stored in an agent's `config` (an empty document means all defaults).
    pub fn from_config(config: &Value) -> Result<Self, DbError> {
        serde_json::from_value(config.clone())
            .map_err(|e| invalid(format!("the agent's stored settings are unreadable: {e}")))
    }

    pub fn to_config(&self) -> Value {
        serde_json::to_value(self).expect("settings serialise")
    }

    /// Parses what the settings form sends: memory and CPU as text (empty = default) and the environment as
    /// `NAME=value` lines (blank lines and lines starting with `#` ignored). Validated for `template`.
    pub fn parse_form(
        template: &Template,
        memory_mib: &str,
        cpu_millis: &str,
        environment: &str,
    ) -> Result<Self, DbError> {
        let number = |field: &str, text: &str| -> Result<Option<u32>, DbError> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<u32>().map(Some).map_err(|_| invalid(format!("{field} must be a whole number")))
        };
        let mut variables = BTreeMap::new();
        for (i, line) in environment.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(invalid(format!("environment line {}: write it as NAME=value", i + 1)));
            };
            let name = name.trim().to_string();
            if variables.insert(name.clone(), value.to_string()).is_some() {
                return Err(invalid(format!("environment line {}: {name} is set twice", i + 1)));
            }
        }
        let settings = Self {
            memory_mib: number("memory (MiB)", memory_mib)?,
            cpu_millis: number("CPU (thousandths of a core)", cpu_millis)?,
            environment: variables,
        };
        settings.validate(template)?;
        Ok(settings)
    }

    /// Checks every rule; the first problem is the error, in words the customer can act on.
    pub fn validate(&self, template: &Template) -> Result<(), DbError> {
        if let Some(m) = self.memory_mib {
            let min = u32::try_from(template.min_memory_bytes / MIB).unwrap_or(u32::MAX);
            if m < min || m > MAX_MEMORY_MIB {
                return Err(invalid(format!(
                    "memory must be between {min} and {MAX_MEMORY_MIB} MiB for a {} agent",
                    template.id
                )));
            }
        }
        if let Some(c) = self.cpu_millis {
            if !(MIN_CPU_MILLIS..=MAX_CPU_MILLIS).contains(&c) {
                return Err(invalid(format!(
                    "CPU must be between {MIN_CPU_MILLIS} and {MAX_CPU_MILLIS} thousandths of a core (1000 = one core)"
                )));
            }
        }
        if self.environment.len() > MAX_VARIABLES {
            return Err(invalid(format!("at most {MAX_VARIABLES} environment variables")));
        }
        for (name, value) in &self.environment {
            let well_formed = (1..=64).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !well_formed {
                return Err(invalid(format!(
                    "{name:?} is not a valid variable name: use A-Z, 0-9 and '_', starting with a letter (at most 64)"
                )));
            }
            if RESERVED.contains(&name.as_str()) || name.starts_with(RESERVED_PREFIX) {
                return Err(invalid(format!("{name} is set by DeployClaw and cannot be changed")));
            }
            if value.len() > MAX_VALUE_BYTES || value.contains('\0') {
                return Err(invalid(format!("the value of {name} is longer than {MAX_VALUE_BYTES} bytes or not text")));
            }
            let probe = format!("{name}={value}");
            let secret_name = SECRET_NAME_PARTS.iter().any(|part| name.contains(part));
            if secret_name || crate::scrub::scrub_text(&probe) != probe.as_str() {
                return Err(invalid(format!(
                    "the value of {name} looks like a secret; store it as a credential instead (credentials are \
                     encrypted, settings are not)"
                )));
            }
        }
        Ok(())
    }

    pub fn memory_bytes(&self, template: &Template) -> u64 {
        self.memory_mib.map(|m| u64::from(m) * MIB).unwrap_or(template.default_memory_bytes)
    }

    pub fn cpu_millis(&self) -> u32 {
        self.cpu_millis.unwrap_or(DEFAULT_CPU_MILLIS)
    }

    /// The names (never the values) that differ from `before`, for the audit record.
    pub fn changed_fields(&self, before: &Self) -> Vec<String> {
        let mut out = Vec::new();
        if self.memory_mib != before.memory_mib {
            out.push("memory_mib".to_string());
        }
        if self.cpu_millis != before.cpu_millis {
            out.push("cpu_millis".to_string());
        }
        let names: std::collections::BTreeSet<&String> =
            self.environment.keys().chain(before.environment.keys()).collect();
        for name in names {
            if self.environment.get(name) != before.environment.get(name) {
                out.push(format!("env:{name}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::hardening::template;

    fn openclaw() -> Template {
        template("openclaw").unwrap()
    }

    #[test]
    fn a_form_parses_into_settings() {
        let s = AgentSettings::parse_form(&openclaw(), " 2048 ", "", "# comment\nLOG_LEVEL=debug\n\nGREETING=a=b\r\n")
            .unwrap();
        assert_eq!(s.memory_mib, Some(2048));
        assert_eq!(s.cpu_millis, None);
        assert_eq!(s.environment["LOG_LEVEL"], "debug");
        assert_eq!(s.environment["GREETING"], "a=b", "only the first '=' separates");
        assert_eq!(AgentSettings::from_config(&s.to_config()).unwrap(), s, "round trip");
        assert_eq!(AgentSettings::from_config(&serde_json::json!({})).unwrap(), AgentSettings::default());
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        // Provider-key shaped, made up here: obviously not a real key.
        let fake_key = format!("SLACK_API_KEY=xoxb-NOTREAL{}", uuid::Uuid::now_v7().simple());
        let cases = [
            ("512", "", "", "between 1024 and 8192"),
            ("9000", "", "", "between 1024 and 8192"),
            ("lots", "", "", "whole number"),
            ("", "50", "", "CPU must be between"),
            ("", "", "JUSTANAME", "NAME=value"),
            ("", "", "lower=x", "not a valid variable name"),
            ("", "", "A=1\nA=2", "set twice"),
            ("", "", "HTTPS_PROXY=http://evil:1", "set by DeployClaw"),
            ("", "", "DEPLOYCLAW_AGENT_TOKEN=x", "set by DeployClaw"),
            ("", "", "NODE_OPTIONS=--require /tmp/x.js", "set by DeployClaw"),
            ("", "", fake_key.as_str(), "looks like a secret"),
            ("", "", "DB_PASSWORD=hunter2", "looks like a secret"),
        ];
        for (memory, cpu, env, expected) in cases {
            let err = AgentSettings::parse_form(&openclaw(), memory, cpu, env).unwrap_err().to_string();
            assert!(err.contains(expected), "{memory:?} {cpu:?} {env:?}: {err}");
        }
        let many: String = (0..33).map(|i| format!("V{i}=x\n")).collect();
        assert!(AgentSettings::parse_form(&openclaw(), "", "", &many).is_err());
        let small = template("test-agent").unwrap();
        assert!(AgentSettings::parse_form(&small, "32", "", "").is_ok(), "the test agent's minimum is lower");
    }

    #[test]
    fn changes_name_fields_never_values() {
        let before = AgentSettings::parse_form(&openclaw(), "", "", "A=1\nB=2").unwrap();
        let after = AgentSettings::parse_form(&openclaw(), "2048", "", "A=1\nB=3\nC=secretless").unwrap();
        assert_eq!(after.changed_fields(&before), ["memory_mib", "env:B", "env:C"]);
    }
}
