//! A customer's own audit settings as the dashboard changes them: how long their events are kept, and the
//! SIEM destinations their events are forwarded to.
//!
//! Every change made here is recorded in the client's own trail by the function that makes it, so no caller
//! can change a setting without the record (`audit.retention_changed`, `siem.destination_created`,
//! `siem.destination_enabled`, `siem.destination_disabled`, `siem.destination_deleted`).
//!
//! Must never: read or change another client's settings (every function takes the caller's client id, and
//! a destination of another client is [`DbError::NotFound`]); put a destination's full URL (a token may be in
//! its path or query) or its CA certificate into an error or an audit record.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::json;
use url::{Host, Url};

use super::retention::RetentionPolicy;
use super::siem::{self, Destination, DestinationId, Endpoint, NewDestination, StartAt};
use super::{append, ActionType, Actor, NewEvent};
use crate::audit::config::SiemConfig;
use crate::context::RequestContext;
use crate::db::{on_pool, ClientId, Db, DbError};

/// Where a client's retention period comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionSource {
    /// No setting of their own: `audit.retention_days`.
    PlatformDefault,
    /// Their own setting (`clients.audit_retention_days`).
    Client,
}

impl RetentionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformDefault => "platform_default",
            Self::Client => "client",
        }
    }
}

/// A client's retention, as retention will apply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionSetting {
    /// Days events are kept: the client's setting or the default, within `1..=max_days`.
    pub days: u32,
    pub source: RetentionSource,
    /// The client's own setting, if any (it may exceed `max_days` if the limit was lowered since).
    pub client_days: Option<u32>,
    /// The platform default.
    pub default_days: u32,
    /// The most this client may keep: the platform maximum, lowered by the plan's limit.
    pub max_days: u32,
}

impl RetentionSetting {
    fn new(policy: &RetentionPolicy, plan: Option<&str>, client_days: Option<u32>) -> Self {
        Self {
            days: policy.days_for(client_days, plan),
            source: if client_days.is_some() { RetentionSource::Client } else { RetentionSource::PlatformDefault },
            client_days,
            default_days: policy.default_days,
            max_days: policy.max_days_for(plan),
        }
    }
}

/// Reads a retention period typed by a person: empty means "back to the platform default"; otherwise a whole
/// number of days. Numbers out of any valid range come back as 0 or `u32::MAX`, which
/// [`change_retention`] refuses with the range.
pub fn parse_retention_days(text: &str) -> Result<Option<u32>, DbError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DbError::Invalid(
            "the retention is a whole number of days, such as 90; leave it empty for the platform default".into(),
        ));
    }
    if negative {
        return Ok(Some(0));
    }
    Ok(Some(digits.parse::<u64>().map_or(u32::MAX, |d| u32::try_from(d).unwrap_or(u32::MAX))))
}

async fn client_retention(db: &Db, client: ClientId) -> Result<(String, Option<u32>), DbError> {
    let sql = "SELECT plan, CAST(audit_retention_days AS BIGINT) FROM clients WHERE id = $1";
    let (plan, days): (String, Option<i64>) = on_pool!(db, |p| sqlx::query_as(sql).bind(client).fetch_one(p).await?);
    Ok((plan, days.and_then(|d| u32::try_from(d).ok())))
}

fn plan_of(plan: &str) -> Option<&str> {
    (!plan.is_empty()).then_some(plan)
}

/// The retention of `client`.
pub async fn retention(db: &Db, policy: &RetentionPolicy, client: ClientId) -> Result<RetentionSetting, DbError> {
    let (plan, client_days) = client_retention(db, client).await?;
    Ok(RetentionSetting::new(policy, plan_of(&plan), client_days))
}

/// A retention change: the setting before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionChange {
    pub before: RetentionSetting,
    pub after: RetentionSetting,
}

impl RetentionChange {
    /// Whether events are now kept for less time: the next retention run removes the ones past the new period.
    pub fn shortened(&self) -> bool {
        self.after.days < self.before.days
    }
}

/// Sets `client`'s retention to `days` (`None`: back to the platform default), within `1..=max_days` of the
/// client's plan, and records `audit.retention_changed` with the periods before and after. Setting what is
/// already stored changes and records nothing. Shortening takes effect at the next retention run.
pub async fn change_retention(
    db: &Db,
    policy: &RetentionPolicy,
    actor: Actor,
    client: ClientId,
    days: Option<u32>,
    ctx: &RequestContext,
) -> Result<RetentionChange, DbError> {
    // Compare-and-set on the stored value, so the recorded "from" is what this change replaced even when two
    // owners change it at once.
    for _ in 0..3 {
        let (plan, before) = client_retention(db, client).await?;
        let plan = plan_of(&plan);
        let max = policy.max_days_for(plan);
        if let Some(d) = days {
            if !(1..=max).contains(&d) {
                return Err(DbError::Invalid(format!("the retention must be between 1 and {max} days").into()));
            }
        }
        let old = RetentionSetting::new(policy, plan, before);
        if before == days {
            return Ok(RetentionChange { before: old, after: old });
        }
        let sql = "UPDATE clients SET audit_retention_days = $1, updated_at = $2 \
                   WHERE id = $3 AND COALESCE(audit_retention_days, 0) = $4";
        let updated = on_pool!(db, |p| sqlx::query(sql)
            .bind(days.map(i64::from))
            .bind(crate::db::now())
            .bind(client)
            .bind(before.map_or(0, i64::from))
            .execute(p)
            .await?
            .rows_affected());
        if updated == 0 {
            continue;
        }
        let new = RetentionSetting::new(policy, plan, days);
        let event = NewEvent::new(Some(client), actor, ActionType::known("audit.retention_changed"))
            .target("audit retention")
            .metadata(json!({
                "from_days": old.days,
                "to_days": new.days,
                "from_source": old.source.as_str(),
                "to_source": new.source.as_str(),
            }))
            .request(ctx);
        append(db, event).await?;
        return Ok(RetentionChange { before: old, after: new });
    }
    Err(DbError::Conflict("the retention was being changed at the same time; try again".into()))
}

/// Whether `host` is visibly an address the forwarder refuses (without resolving DNS): a loopback, private,
/// link-local or other non-public IP literal - in any spelling a resolver accepts, such as `127.1` or
/// `2130706433` - or a `localhost` name.
fn host_refused(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => !siem::is_public(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => !siem::is_public(IpAddr::V6(*ip)),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// See [`host_refused`].
pub fn literally_non_public(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Url(url) => url.host().is_some_and(|h| host_refused(&h)),
        Endpoint::HostPort { host, .. } => {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return !siem::is_public(ip);
            }
            // The URL host parser reads IPv4 numbers the way resolvers do (`127.1`, `0x7f000001`).
            Url::parse(&format!("https://{host}/"))
                .ok()
                .and_then(|u| u.host().map(|h| host_refused(&h)))
                .unwrap_or(false)
        }
    }
}

/// Where a destination sends, for people to read and for the audit record: `host:port`, or the URL's scheme,
/// host and port with any path and query shown as `…` (services such as Sumo Logic put the collector's token
/// in the path, Datadog in the query, so the full URL is write-only, like a credential).
pub fn endpoint_display(d: &Destination) -> String {
    match (&d.url, &d.host, d.port) {
        (Some(url), _, _) => match Url::parse(url) {
            Ok(u) => {
                let host = u.host_str().unwrap_or_default();
                let origin = match u.port() {
                    Some(p) => format!("{}://{host}:{p}", u.scheme()),
                    None => format!("{}://{host}", u.scheme()),
                };
                let more = u.path() != "/" || u.query().is_some();
                format!("{origin}/{}", if more { "…" } else { "" })
            }
            Err(_) => "https://…".into(),
        },
        (None, Some(host), Some(port)) if host.contains(':') => format!("[{host}]:{port}"),
        (None, Some(host), Some(port)) => format!("{host}:{port}"),
        _ => "-".into(),
    }
}

/// Destinations one client may have: each is a stream of outgoing connections from the platform.
pub const MAX_DESTINATIONS: usize = 10;

fn destination_event(client: ClientId, actor: Actor, action: &'static str, d: &Destination) -> NewEvent {
    NewEvent::new(Some(client), actor, ActionType::known(action)).target(d.name.clone())
}

/// Adds a SIEM destination for `client` ([`siem::create`]), at most [`MAX_DESTINATIONS`], and records
/// `siem.destination_created`. A destination whose address is visibly non-public is refused here (unless
/// `siem.allow_private_destinations`); one whose name resolves to such an address is refused by the forwarder,
/// which says so in `last_error`.
pub async fn add_destination(
    db: &Db,
    rules: &SiemConfig,
    actor: Actor,
    client: ClientId,
    new: NewDestination,
    ctx: &RequestContext,
) -> Result<Destination, DbError> {
    if !rules.allow_private_destinations && literally_non_public(&new.endpoint) {
        return Err(DbError::Invalid(
            "the destination is a loopback, private, link-local or other non-public address; DeployClaw only \
             forwards to public addresses"
                .into(),
        ));
    }
    if new.kind == siem::Kind::SyslogTcp && new.ca_pem.is_some() {
        return Err(DbError::Invalid(
            "plain TCP does not use certificates; choose syslog over TLS (syslog_tls) to give a CA certificate".into(),
        ));
    }
    if siem::list(db, client).await?.len() >= MAX_DESTINATIONS {
        return Err(DbError::Invalid(
            format!("an account has at most {MAX_DESTINATIONS} SIEM destinations; delete one first").into(),
        ));
    }
    let start = match new.start {
        StartAt::Beginning => "beginning",
        StartAt::Now => "now",
    };
    let d = siem::create(db, client, new).await?;
    let event = destination_event(client, actor, "siem.destination_created", &d)
        .metadata(json!({
            "destination_id": d.id.to_string(),
            "kind": d.kind.as_str(),
            "endpoint": endpoint_display(&d),
            "custom_ca": d.ca_pem.is_some(),
            "start": start,
        }))
        .request(ctx);
    append(db, event).await?;
    Ok(d)
}

/// Pauses or resumes forwarding to one of `client`'s destinations and records `siem.destination_enabled` or
/// `siem.destination_disabled`. Returns the destination as it is now.
pub async fn set_destination_enabled(
    db: &Db,
    actor: Actor,
    client: ClientId,
    id: DestinationId,
    enabled: bool,
    ctx: &RequestContext,
) -> Result<Destination, DbError> {
    siem::set_enabled(db, client, id, enabled).await?;
    let d = siem::get(db, client, id).await?;
    let action = if enabled { "siem.destination_enabled" } else { "siem.destination_disabled" };
    let event = destination_event(client, actor, action, &d)
        .metadata(json!({ "destination_id": d.id.to_string(), "delivered_up_to": d.cursor.0 }))
        .request(ctx);
    append(db, event).await?;
    Ok(d)
}

/// Removes one of `client`'s destinations and records `siem.destination_deleted`.
pub async fn delete_destination(
    db: &Db,
    actor: Actor,
    client: ClientId,
    id: DestinationId,
    ctx: &RequestContext,
) -> Result<(), DbError> {
    let d = siem::get(db, client, id).await?;
    siem::delete(db, client, id).await?;
    let event = destination_event(client, actor, "siem.destination_deleted", &d)
        .metadata(json!({
            "destination_id": d.id.to_string(),
            "kind": d.kind.as_str(),
            "endpoint": endpoint_display(&d),
            "delivered_up_to": d.cursor.0,
        }))
        .request(ctx);
    append(db, event).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_retention_is_a_whole_number_or_empty() {
        assert_eq!(parse_retention_days("").unwrap(), None);
        assert_eq!(parse_retention_days("  ").unwrap(), None);
        assert_eq!(parse_retention_days(" 90 ").unwrap(), Some(90));
        assert_eq!(parse_retention_days("+30").unwrap(), Some(30));
        assert_eq!(parse_retention_days("-5").unwrap(), Some(0));
        assert_eq!(parse_retention_days("0").unwrap(), Some(0));
        assert_eq!(parse_retention_days("99999999999999999999999").unwrap(), Some(u32::MAX));
        for bad in ["abc", "1.5", "90 days", "-", "+", "1e3", "٣"] {
            let err = parse_retention_days(bad).unwrap_err().to_string();
            assert!(err.contains("whole number of days"), "{bad:?}: {err}");
        }
    }

    fn host(h: &str) -> Endpoint {
        Endpoint::HostPort { host: h.into(), port: 514 }
    }

    #[test]
    fn visibly_non_public_destinations_are_recognised() {
        for refused in ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "10.0.0.1", "169.254.169.254", "::1", "localhost"]
        {
            assert!(literally_non_public(&host(refused)), "{refused}");
        }
        assert!(literally_non_public(&host("db.localhost")));
        for url in ["https://127.0.0.1/x", "https://[::1]:8443/", "https://[::ffff:10.0.0.1]/", "https://localhost./"] {
            assert!(literally_non_public(&Endpoint::Url(url.parse().unwrap())), "{url}");
        }
        for fine in ["siem.example.com", "8.8.8.8", "2606:4700::1111", "logs-1.example"] {
            assert!(!literally_non_public(&host(fine)), "{fine}");
        }
        assert!(!literally_non_public(&Endpoint::Url("https://siem.example.com/in".parse().unwrap())));
    }
}
