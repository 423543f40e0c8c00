//! What an agent may do: scopes, per-scope rate limits, the outbound domain allowlist and the daily token
//! spend cap (architecture section 4.4). Parsed at the boundary into newtypes; stored as the agent's
//! `permissions` JSON document.
//!
//! A new agent gets [`Permissions::deny_all`]: no scopes, no domains, a spend cap of 0. A stored document that
//! no longer parses (hand-edited, or written by a future version) is read as deny-all too, never as "allow".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Largest name we accept (RFC 1035: 253 characters in text form).
pub const MAX_DOMAIN_CHARS: usize = 253;
/// Most allowlist entries an agent can have.
pub const MAX_DOMAINS: usize = 100;
/// Highest rate limits that can be set.
pub const MAX_PER_HOUR: u32 = 100_000;
pub const MAX_PER_DAY: u32 = 1_000_000;
/// Highest daily spend cap: 100,000 USD, in micro-dollars.
pub const MAX_DAILY_SPEND_MICRO_USD: u64 = 100_000 * 1_000_000;

/// What went wrong with a permissions document: the message names the field and is shown to the customer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PermissionsError(pub String);

fn invalid(message: impl Into<String>) -> PermissionsError {
    PermissionsError(message.into())
}

/// A capability an agent can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    EmailRead,
    EmailSend,
    CalendarRead,
    CalendarWrite,
    FilesRead,
    FilesWrite,
    ApiOutbound,
    MessagingSend,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::EmailRead,
        Scope::EmailSend,
        Scope::CalendarRead,
        Scope::CalendarWrite,
        Scope::FilesRead,
        Scope::FilesWrite,
        Scope::ApiOutbound,
        Scope::MessagingSend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EmailRead => "email:read",
            Scope::EmailSend => "email:send",
            Scope::CalendarRead => "calendar:read",
            Scope::CalendarWrite => "calendar:write",
            Scope::FilesRead => "files:read",
            Scope::FilesWrite => "files:write",
            Scope::ApiOutbound => "api:outbound",
            Scope::MessagingSend => "messaging:send",
        }
    }

    pub fn parse(s: &str) -> Result<Self, PermissionsError> {
        let s = s.trim();
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            invalid(format!("unknown scope {s:?}; choose from: {}", known.join(", ")))
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How often a scope may be used: at most `max_per_hour` in any hour and `max_per_day` in any 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub max_per_hour: u32,
    pub max_per_day: u32,
}

impl RateLimit {
    /// What a granted scope without its own limit gets.
    pub const DEFAULT: RateLimit = RateLimit { max_per_hour: 600, max_per_day: 5_000 };

    pub fn new(max_per_hour: u32, max_per_day: u32) -> Result<Self, PermissionsError> {
        if !(1..=MAX_PER_HOUR).contains(&max_per_hour) {
            return Err(invalid(format!("max per hour must be between 1 and {MAX_PER_HOUR}")));
        }
        if !(1..=MAX_PER_DAY).contains(&max_per_day) {
            return Err(invalid(format!("max per day must be between 1 and {MAX_PER_DAY}")));
        }
        if max_per_day < max_per_hour {
            return Err(invalid("max per day must be at least max per hour"));
        }
        Ok(Self { max_per_hour, max_per_day })
    }
}

/// An allowlist entry: an exact host name (`api.example.com`) or every name below one (`*.example.com`, which
/// does not match `example.com` itself). Always lower case punycode without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainPattern {
    Exact(HostName),
    Wildcard(HostName),
}

/// A normalised DNS host name: trimmed, lower case, no trailing dot, IDNA mapped to punycode, letters, digits
/// and hyphens only, at least two labels, the last starting with a letter (so no numeric IPv4 forms such as
/// `127.1`), at most 253 characters. Never an IP address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(String);

impl HostName {
    pub fn parse(input: &str) -> Result<Self, PermissionsError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(invalid("a host name is empty"));
        }
        let unbracketed = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s);
        if unbracketed.parse::<IpAddr>().is_ok() {
            return Err(invalid(format!("{s:?} is an IP address; only host names can be allowed")));
        }
        if s.contains(['/', ':', '@', '?', '#', ' ', '\\']) {
            return Err(invalid(format!("{s:?} must be a bare host name: no scheme, port, path or spaces")));
        }
        if s.chars().count() > MAX_DOMAIN_CHARS + 1 {
            return Err(invalid(format!("a host name is at most {MAX_DOMAIN_CHARS} characters")));
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        let ascii = idna::domain_to_ascii(s).map_err(|_| invalid(format!("{s:?} is not a valid host name")))?;
        let ascii = ascii.strip_suffix('.').unwrap_or(&ascii).to_string();
        if ascii.is_empty() || ascii.len() > MAX_DOMAIN_CHARS {
            return Err(invalid(format!("a host name is 1 to {MAX_DOMAIN_CHARS} characters")));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(invalid(format!("{ascii:?} needs at least two labels (like example.com)")));
        }
        for label in &labels {
            let ok = (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(invalid(format!(
                    "{ascii:?} is not a valid host name: labels are 1-63 letters, digits or hyphens"
                )));
            }
        }
        if !labels.last().is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_lowercase())) {
            return Err(invalid(format!("{ascii:?} does not end in a top-level domain")));
        }
        Ok(Self(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DomainPattern {
    pub fn parse(input: &str) -> Result<Self, PermissionsError> {
        let s = input.trim();
        if s == "*" || s == "*." {
            return Err(invalid("\"*\" alone would allow everything; list the domains the agent needs"));
        }
        match s.strip_prefix("*.") {
            Some(rest) => {
                let base = HostName::parse(rest).map_err(|e| invalid(format!("in {s:?}: {e}")))?;
                if base.as_str().split('.').count() < 2 {
                    return Err(invalid(format!("{s:?} is too broad: a wildcard needs a domain below a TLD")));
                }
                Ok(Self::Wildcard(base))
            }
            None if s.contains('*') => {
                Err(invalid(format!("{s:?}: a wildcard is only allowed as the whole first label (*.example.com)")))
            }
            None => HostName::parse(s).map(Self::Exact),
        }
    }

    /// Whether a (normalised) host is allowed by this entry.
    pub fn matches(&self, host: &HostName) -> bool {
        match self {
            Self::Exact(name) => name == host,
            Self::Wildcard(base) => {
                let h = host.as_str();
                h.len() > base.0.len() + 1 && h.ends_with(base.as_str()) && h[..h.len() - base.0.len()].ends_with('.')
            }
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => write!(f, "{name}"),
            Self::Wildcard(base) => write!(f, "*.{base}"),
        }
    }
}

impl Serialize for DomainPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DomainPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DomainPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A USD amount in micro-dollars (1 USD = 1,000,000), parsed from a decimal such as `12.50`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MicroUsd(u64);

impl MicroUsd {
    pub const ZERO: MicroUsd = MicroUsd(0);

    pub fn new(micro: u64) -> Result<Self, PermissionsError> {
        if micro > MAX_DAILY_SPEND_MICRO_USD {
            return Err(invalid("the daily token spend cap is at most 100000 USD"));
        }
        Ok(Self(micro))
    }

    /// `"12.5"`, `"0"`, `"0.000001"`; up to 6 decimals, no sign, no exponent.
    pub fn parse_usd(input: &str) -> Result<Self, PermissionsError> {
        Self::new(usd_to_micro(input)?)
    }

    pub fn micro(self) -> u64 {
        self.0
    }
}

/// A decimal USD amount (`"12.5"`, `"0.000001"`, up to 6 decimals, no sign, no exponent) in micro-dollars.
pub fn usd_to_micro(input: &str) -> Result<u64, PermissionsError> {
    {
        let s = input.trim().trim_start_matches('$');
        let bad = || invalid(format!("{input:?} is not a USD amount like 12.50"));
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || whole.len() > 12
        {
            return Err(bad());
        }
        if frac.len() > 6 {
            return Err(invalid("a USD amount has at most 6 decimals"));
        }
        let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
        let frac_micro: u64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
        whole.checked_mul(1_000_000).and_then(|w| w.checked_add(frac_micro)).ok_or_else(bad)
    }
}

impl fmt::Display for MicroUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_usd(self.0))
    }
}

/// Micro-dollars as a USD amount with at least two decimals and no trailing zeros past them: `12.50`,
/// `0.0075`.
pub fn format_usd(micro: u64) -> String {
    let (whole, frac) = (micro / 1_000_000, micro % 1_000_000);
    if frac == 0 {
        format!("{whole}.00")
    } else {
        let frac = format!("{frac:06}");
        let trimmed = frac.trim_end_matches('0');
        format!("{whole}.{trimmed:0<2}")
    }
}

/// What the customer submits (the boundary shape): plain strings and numbers, validated by
/// [`Permissions::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionsInput {
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scope name -> (max per hour, max per day).
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimit>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// A decimal USD amount, e.g. `"25.00"`.
    #[serde(default)]
    pub max_daily_token_spend_usd: String,
}

impl PermissionsInput {
    /// The dashboard form: scopes separated by commas, spaces or new lines; one rate limit per line as
    /// `SCOPE PER_HOUR PER_DAY`; domains separated by commas, spaces or new lines; a USD amount.
    pub fn from_form(
        scopes: &str,
        rate_limits: &str,
        allowed_domains: &str,
        max_daily_token_spend_usd: &str,
    ) -> Result<Self, PermissionsError> {
        let words = |s: &str| -> Vec<String> {
            s.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).map(str::to_string).collect()
        };
        let mut limits = BTreeMap::new();
        for (n, line) in rate_limits.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parts = words(line);
            let number = |s: &String| s.parse::<u32>().ok();
            match parts.as_slice() {
                [scope, hour, day] => match (number(hour), number(day)) {
                    (Some(max_per_hour), Some(max_per_day)) => {
                        limits.insert(scope.clone(), RateLimit { max_per_hour, max_per_day });
                    }
                    _ => return Err(invalid(format!("rate limits, line {}: the limits must be whole numbers", n + 1))),
                },
                _ => {
                    return Err(invalid(format!(
                        "rate limits, line {}: write SCOPE PER_HOUR PER_DAY, e.g. api:outbound 100 1000",
                        n + 1
                    )))
                }
            }
        }
        Ok(Self {
            scopes: words(scopes),
            rate_limits: limits,
            allowed_domains: words(allowed_domains),
            max_daily_token_spend_usd: max_daily_token_spend_usd.trim().to_string(),
        })
    }
}

/// An agent's validated permissions. Stored as JSON:
/// `{"scopes":[..],"rate_limits":{"api:outbound":{"max_per_hour":..,"max_per_day":..}},
///   "allowed_domains":[..],"max_daily_token_spend_micro_usd":N}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[serde(default)]
    pub scopes: BTreeSet<Scope>,
    /// Only for granted scopes; a granted scope without an entry gets [`RateLimit::DEFAULT`].
    #[serde(default)]
    pub rate_limits: BTreeMap<Scope, RateLimit>,
    #[serde(default)]
    pub allowed_domains: BTreeSet<DomainPattern>,
    #[serde(default)]
    pub max_daily_token_spend_micro_usd: MicroUsd,
}

/// What changed between two permission sets: names only, for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PermissionsChange {
    pub scopes_added: Vec<String>,
    pub scopes_removed: Vec<String>,
    pub domains_added: Vec<String>,
    pub domains_removed: Vec<String>,
    pub rate_limits_changed: Vec<String>,
    pub spend_cap_changed: bool,
}

impl PermissionsChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Permissions {
    /// What a new agent gets: nothing.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Validates what the customer submitted. Every error names the field at fault.
    pub fn parse(input: &PermissionsInput) -> Result<Self, PermissionsError> {
        let mut scopes = BTreeSet::new();
        for s in &input.scopes {
            scopes.insert(Scope::parse(s).map_err(|e| invalid(format!("scopes: {e}")))?);
        }
        let mut rate_limits = BTreeMap::new();
        for (name, limit) in &input.rate_limits {
            let scope = Scope::parse(name).map_err(|e| invalid(format!("rate limits: {e}")))?;
            if !scopes.contains(&scope) {
                return Err(invalid(format!("rate limits: {scope} is not a granted scope")));
            }
            let limit = RateLimit::new(limit.max_per_hour, limit.max_per_day)
                .map_err(|e| invalid(format!("rate limits for {scope}: {e}")))?;
            rate_limits.insert(scope, limit);
        }
        if input.allowed_domains.len() > MAX_DOMAINS {
            return Err(invalid(format!("allowed domains: at most {MAX_DOMAINS} entries")));
        }
        let mut allowed_domains = BTreeSet::new();
        for d in input.allowed_domains.iter().filter(|d| !d.trim().is_empty()) {
            allowed_domains.insert(DomainPattern::parse(d).map_err(|e| invalid(format!("allowed domains: {e}")))?);
        }
        let spend = if input.max_daily_token_spend_usd.trim().is_empty() {
            MicroUsd::ZERO
        } else {
            MicroUsd::parse_usd(&input.max_daily_token_spend_usd)
                .map_err(|e| invalid(format!("max daily token spend: {e}")))?
        };
        Ok(Self { scopes, rate_limits, allowed_domains, max_daily_token_spend_micro_usd: spend })
    }

    /// The stored document; anything unreadable is deny-all (logged by the caller if it cares).
    pub fn from_stored(value: &serde_json::Value) -> Self {
        serde_json::from_value::<Permissions>(value.clone())
            .ok()
            .filter(|p| p.rate_limits.values().all(|l| RateLimit::new(l.max_per_hour, l.max_per_day).is_ok()))
            .filter(|p| MicroUsd::new(p.max_daily_token_spend_micro_usd.micro()).is_ok())
            .unwrap_or_default()
    }

    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}))
    }

    /// The boundary shape again, for an editor.
    pub fn to_input(&self) -> PermissionsInput {
        PermissionsInput {
            scopes: self.scopes.iter().map(|s| s.to_string()).collect(),
            rate_limits: self.rate_limits.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
            allowed_domains: self.allowed_domains.iter().map(|d| d.to_string()).collect(),
            max_daily_token_spend_usd: self.max_daily_token_spend_micro_usd.to_string(),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The limit for a scope (its own, else [`RateLimit::DEFAULT`]).
    pub fn rate_limit(&self, scope: Scope) -> RateLimit {
        self.rate_limits.get(&scope).copied().unwrap_or(RateLimit::DEFAULT)
    }

    /// Whether outbound connections to `host` are allowed by the domain list.
    pub fn allows_host(&self, host: &HostName) -> bool {
        self.allowed_domains.iter().any(|p| p.matches(host))
    }

    /// What changed from `before` to `self`, by name.
    pub fn changes_from(&self, before: &Permissions) -> PermissionsChange {
        let names = |a: &BTreeSet<DomainPattern>, b: &BTreeSet<DomainPattern>| -> Vec<String> {
            a.difference(b).map(|d| d.to_string()).collect()
        };
        let scopes = |a: &BTreeSet<Scope>, b: &BTreeSet<Scope>| -> Vec<String> {
            a.difference(b).map(|s| s.to_string()).collect()
        };
        let all: BTreeSet<Scope> = self.rate_limits.keys().chain(before.rate_limits.keys()).copied().collect();
        PermissionsChange {
            scopes_added: scopes(&self.scopes, &before.scopes),
            scopes_removed: scopes(&before.scopes, &self.scopes),
            domains_added: names(&self.allowed_domains, &before.allowed_domains),
            domains_removed: names(&before.allowed_domains, &self.allowed_domains),
            rate_limits_changed: all
                .into_iter()
                .filter(|s| self.rate_limits.get(s) != before.rate_limits.get(s))
                .map(|s| s.to_string())
                .collect(),
            spend_cap_changed: self.max_daily_token_spend_micro_usd != before.max_daily_token_spend_micro_usd,
        }
    }
}

#[cfg(test)]
mod tests;
