//! The customer's audit settings: how long their events are kept, and the SIEM destinations they are
//! forwarded to. Anyone on the team reads them; the owner changes retention, owners and admins manage
//! destinations, each change with a fresh second factor. The core (`deployclaw::audit::settings`) records
//! every change in the client's own trail.
//!
//! A destination's full URL and its CA certificate go browser -> server only: the list shows the endpoint with
//! any path and query hidden (a collector token may be in either) and only whether a CA was given.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::caller::{respond, Access, Caller};
use super::AppError;

/// The client's retention and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionView {
    /// Days events are kept, as the next retention run applies it.
    pub days: u32,
    /// `platform_default` or `client`.
    pub source: String,
    /// The client's own setting, if any.
    pub client_days: Option<u32>,
    pub default_days: u32,
    /// The most this client may choose (the platform maximum, lowered by the plan).
    pub max_days: u32,
}

/// What a retention change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionChanged {
    pub retention: RetentionView,
    /// Days kept before the change.
    pub previous_days: u32,
    /// True when events are now kept for less time (older ones go at the next retention run).
    pub shortened: bool,
}

/// One SIEM destination. No URL path or query, no CA certificate: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationRow {
    pub id: String,
    pub name: String,
    /// `syslog_tcp`, `syslog_tls` or `https_json`.
    pub kind: String,
    /// `host:port`, or `https://host[:port]/…`.
    pub endpoint: String,
    /// Whether an extra CA certificate is trusted for it.
    pub custom_ca: bool,
    pub enabled: bool,
    /// The id of the last audit event the destination acknowledged (0: none yet).
    pub delivered_up_to: i64,
    /// RFC 3339.
    pub last_delivered_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub created_at: String,
}

/// The "Audit trail" card: retention, destinations, and what the caller may change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSettingsView {
    pub retention: RetentionView,
    pub destinations: Vec<DestinationRow>,
    /// Owner only.
    pub can_change_retention: bool,
    /// Owners and admins.
    pub can_manage_destinations: bool,
}

#[cfg(feature = "ssr")]
impl From<deployclaw::audit::settings::RetentionSetting> for RetentionView {
    fn from(r: deployclaw::audit::settings::RetentionSetting) -> Self {
        RetentionView {
            days: r.days,
            source: r.source.as_str().to_string(),
            client_days: r.client_days,
            default_days: r.default_days,
            max_days: r.max_days,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<deployclaw::audit::siem::Destination> for DestinationRow {
    fn from(d: deployclaw::audit::siem::Destination) -> Self {
        DestinationRow {
            id: d.id.to_string(),
            endpoint: deployclaw::audit::settings::endpoint_display(&d),
            name: d.name,
            kind: d.kind.as_str().to_string(),
            custom_ca: d.ca_pem.is_some(),
            enabled: d.enabled,
            delivered_up_to: d.cursor.0,
            last_delivered_at: d.last_delivered_at.map(|t| t.to_rfc3339()),
            last_error: d.last_error,
            last_error_at: d.last_error_at.map(|t| t.to_rfc3339()),
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

/// A core refusal as the user reads it: capitalised, ending in a full stop.
#[cfg(feature = "ssr")]
fn refused(e: deployclaw::db::DbError) -> AppError {
    match AppError::from(e) {
        AppError::Invalid(m) => AppError::Invalid(super::auth::capital(&m)),
        other => other,
    }
}

#[cfg(feature = "ssr")]
fn parse_destination_id(id: &str) -> Result<deployclaw::audit::siem::DestinationId, AppError> {
    id.trim().parse().map_err(|_| AppError::NotFound)
}

/// The destination as typed into the form, checked into the core's types. Never echoes the URL or the CA.
#[cfg(feature = "ssr")]
fn parse_new_destination(
    name: String,
    kind: &str,
    host: &str,
    port: &str,
    url: &str,
    ca_pem: String,
    start: &str,
) -> Result<deployclaw::audit::siem::NewDestination, AppError> {
    use deployclaw::audit::siem::{Endpoint, Kind, NewDestination, StartAt};
    let kind = Kind::parse(kind.trim())
        .map_err(|_| AppError::Invalid("Choose a kind: syslog over TCP, syslog over TLS or HTTPS JSON.".into()))?;
    let endpoint = match kind {
        Kind::SyslogTcp | Kind::SyslogTls => {
            let port = port.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                AppError::Invalid("The port must be a whole number between 1 and 65535, such as 6514.".into())
            })?;
            let host = host.trim();
            if host.is_empty() {
                return Err(AppError::Invalid("Enter the syslog receiver's host name or IP address.".into()));
            }
            Endpoint::HostPort { host: host.to_string(), port }
        }
        Kind::HttpsJson => Endpoint::parse_url(url).map_err(refused)?,
    };
    let start = match start.trim() {
        "beginning" => StartAt::Beginning,
        "now" => StartAt::Now,
        _ => return Err(AppError::Invalid("Choose where to start: from the oldest stored event, or from now.".into())),
    };
    let ca_pem = Some(ca_pem).filter(|c| !c.trim().is_empty());
    Ok(NewDestination { name, kind, endpoint, ca_pem, start })
}

/// The client's retention and SIEM destinations (any role).
#[server(prefix = "/api/fn", endpoint = "audit_settings")]
pub async fn audit_settings() -> Result<AuditSettingsView, AppError> {
    respond(async {
        use deployclaw::db::users::Role;
        let caller = Caller::current().await?;
        let user = caller.require(Access::SignedIn).await?;
        let retention = caller.platform.audit().retention(user.client_id).await?;
        let destinations = caller.platform.audit().destinations(user.client_id).await?;
        Ok(AuditSettingsView {
            retention: retention.into(),
            destinations: destinations.into_iter().map(DestinationRow::from).collect(),
            can_change_retention: user.role == Role::Owner,
            can_manage_destinations: user.role.manages_client(),
        })
    })
    .await
}

/// Sets how many days the client's events are kept; empty goes back to the platform default (owner; fresh
/// second factor).
#[server(prefix = "/api/fn", endpoint = "set_audit_retention")]
pub async fn set_audit_retention(days: String) -> Result<RetentionChanged, AppError> {
    respond(async move {
        use deployclaw::audit::{settings, Actor};
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::Owner).await?;
        let days = settings::parse_retention_days(&days).map_err(refused)?;
        let change = caller
            .platform
            .audit()
            .change_retention(Actor::User(user.id), user.client_id, days, &caller.ctx)
            .await
            .map_err(refused)?;
        Ok(RetentionChanged {
            shortened: change.shortened(),
            previous_days: change.before.days,
            retention: change.after.into(),
        })
    })
    .await
}

/// Adds a SIEM destination (owner or admin; fresh second factor). `host` and `port` for syslog kinds, `url` for
/// `https_json`; `ca_pem` optional (TLS kinds); `start` is `beginning` or `now`.
#[server(prefix = "/api/fn", endpoint = "add_siem_destination")]
pub async fn add_siem_destination(
    name: String,
    kind: String,
    #[server(default)] host: String,
    #[server(default)] port: String,
    #[server(default)] url: String,
    #[server(default)] ca_pem: String,
    start: String,
) -> Result<DestinationRow, AppError> {
    respond(async move {
        use deployclaw::audit::Actor;
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let new = parse_new_destination(name, &kind, &host, &port, &url, ca_pem, &start)?;
        let rules = &caller.platform.config().siem;
        // Through billing: SIEM export is a plan feature.
        let d = caller
            .platform
            .billing()
            .add_siem_destination(rules, Actor::User(user.id), user.client_id, new, &caller.ctx)
            .await
            .map_err(refused)?;
        Ok(d.into())
    })
    .await
}

/// Pauses (`enabled = false`) or resumes forwarding to a destination (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "set_siem_destination_enabled")]
pub async fn set_siem_destination_enabled(destination_id: String, enabled: bool) -> Result<DestinationRow, AppError> {
    respond(async move {
        use deployclaw::audit::Actor;
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let id = parse_destination_id(&destination_id)?;
        let d = caller
            .platform
            .billing()
            .set_siem_destination_enabled(Actor::User(user.id), user.client_id, id, enabled, &caller.ctx)
            .await
            .map_err(refused)?;
        Ok(d.into())
    })
    .await
}

/// Removes a destination (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "delete_siem_destination")]
pub async fn delete_siem_destination(destination_id: String) -> Result<(), AppError> {
    respond(async move {
        use deployclaw::audit::Actor;
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let id = parse_destination_id(&destination_id)?;
        caller
            .platform
            .audit()
            .delete_destination(Actor::User(user.id), user.client_id, id, &caller.ctx)
            .await
            .map_err(refused)?;
        Ok(())
    })
    .await
}
