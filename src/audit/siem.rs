//! Forwarding each client's audit events to their SIEM: syslog (RFC 5424) over TCP or TLS with RFC 6587
//! octet-counting framing, or HTTPS POSTs of JSON arrays.
//!
//! Owns the per-client destinations (table `siem_destinations`), the forwarder that delivers each
//! destination's events after its cursor in id order, and the network rule for reaching an address a
//! customer chose. Start it with [`run`].
//!
//! Delivery is at-least-once: a destination's cursor moves past an event only after the destination
//! acknowledged the batch holding it (HTTPS: a 2xx answer; syslog, which has no application-level ack: the
//! batch was written and flushed to the socket). A failed batch is sent again, whole, after an exponential
//! backoff, so a receiver may see an event twice but never misses one and never sees them out of order.
//!
//! Must never: connect to a loopback, private, link-local or metadata address unless the operator allowed it
//! (`siem.allow_private_destinations`) - the address is checked after resolution, on the socket actually
//! connected, so DNS cannot smuggle one in; send one client's events to another client's destination (every
//! read takes the destination's own client id); or put a secret in a log line or a stored error.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use super::export::{page, Filter};
use super::AuditEvent;
use crate::db::{on_pool, AuditEventId, ClientId, Db, DbError};
use net::Connection;

mod forwarder;
mod net;
mod syslog;

pub use forwarder::{forward, run, Delivered, DeliveryError, ForwarderSettings};

pub use crate::net::is_public;
pub use syslog::syslog_message;

/// Largest `ca_pem` accepted.
const MAX_CA_PEM: usize = 64 * 1024;

/// A SIEM destination's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct DestinationId(Uuid);

impl DestinationId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for DestinationId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for DestinationId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationId({})", self.0.hyphenated())
    }
}

/// How events reach a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// RFC 5424 messages, RFC 6587 octet-counted, over plain TCP.
    SyslogTcp,
    /// The same over TLS.
    SyslogTls,
    /// HTTPS POSTs of JSON arrays of events.
    HttpsJson,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyslogTcp => "syslog_tcp",
            Self::SyslogTls => "syslog_tls",
            Self::HttpsJson => "https_json",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DbError> {
        match s {
            "syslog_tcp" => Ok(Self::SyslogTcp),
            "syslog_tls" => Ok(Self::SyslogTls),
            "https_json" => Ok(Self::HttpsJson),
            _ => Err(DbError::Invalid("a SIEM destination kind is syslog_tcp, syslog_tls or https_json".into())),
        }
    }
}

/// Where a destination is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A syslog receiver: DNS name or IP address, and port.
    HostPort { host: String, port: u16 },
    /// An HTTPS URL (`https://` only, no user info).
    Url(Url),
}

impl Endpoint {
    /// An `https_json` endpoint typed by a person. The refusal never repeats the text (it may hold a token).
    pub fn parse_url(text: &str) -> Result<Self, DbError> {
        Url::parse(text.trim())
            .map(Self::Url)
            .map_err(|_| invalid("the URL is not a valid address; it looks like https://siem.example.com/ingest"))
    }
}

/// Where a new destination's forwarding starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// With the client's oldest event still stored.
    Beginning,
    /// With the next event recorded.
    Now,
}

/// A destination to add.
#[derive(Debug, Clone)]
pub struct NewDestination {
    pub name: String,
    pub kind: Kind,
    pub endpoint: Endpoint,
    /// An extra CA certificate (PEM) trusted for this destination besides the public roots, e.g. a company
    /// CA. Not a secret.
    pub ca_pem: Option<String>,
    pub start: StartAt,
}

/// A stored destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Destination {
    pub id: DestinationId,
    pub client_id: ClientId,
    pub name: String,
    pub kind: Kind,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub url: Option<String>,
    pub ca_pem: Option<String>,
    pub enabled: bool,
    /// The last event the destination acknowledged; forwarding continues after it.
    pub cursor: AuditEventId,
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// The last failure (kept after a later success; compare with `last_delivered_at`).
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: DestinationId,
    client_id: ClientId,
    name: String,
    kind: String,
    host: Option<String>,
    port: Option<i32>,
    url: Option<String>,
    ca_pem: Option<String>,
    enabled: bool,
    cursor_event_id: i64,
    last_delivered_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl TryFrom<Row> for Destination {
    type Error = DbError;
    fn try_from(r: Row) -> Result<Self, DbError> {
        Ok(Self {
            id: r.id,
            client_id: r.client_id,
            name: r.name,
            kind: Kind::parse(&r.kind)?,
            host: r.host,
            port: r.port.and_then(|p| u16::try_from(p).ok()),
            url: r.url,
            ca_pem: r.ca_pem,
            enabled: r.enabled,
            cursor: AuditEventId(r.cursor_event_id),
            last_delivered_at: r.last_delivered_at,
            last_error: r.last_error,
            last_error_at: r.last_error_at,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str = "id, client_id, name, kind, host, port, url, ca_pem, enabled, cursor_event_id, \
                       last_delivered_at, last_error, last_error_at, created_at";

fn invalid(message: &'static str) -> DbError {
    DbError::Invalid(message.into())
}

/// A host name or IP address as a syslog destination accepts it.
fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    (1..=253).contains(&host.len())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Parses an extra CA certificate bundle (PEM, at least one certificate).
fn parse_ca(pem: &str) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, DbError> {
    use rustls_pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(invalid("the CA certificate must be one or more PEM certificates (-----BEGIN CERTIFICATE-----)")),
    }
}

/// Adds a destination for `client`.
pub async fn create(db: &Db, client: ClientId, new: NewDestination) -> Result<Destination, DbError> {
    let name = new.name.trim().to_string();
    if !(1..=100).contains(&name.chars().count()) {
        return Err(invalid("a destination name has 1 to 100 characters"));
    }
    let (host, port, url) = match (new.kind, &new.endpoint) {
        (Kind::SyslogTcp | Kind::SyslogTls, Endpoint::HostPort { host, port }) => {
            if !valid_host(host) {
                return Err(invalid("the host must be a DNS name or an IP address"));
            }
            if *port == 0 {
                return Err(invalid("the port must be between 1 and 65535"));
            }
            (Some(host.to_ascii_lowercase()), Some(i32::from(*port)), None)
        }
        (Kind::HttpsJson, Endpoint::Url(url)) => {
            if url.scheme() != "https" || url.host_str().is_none() {
                return Err(invalid("the URL must start with https:// and name a host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(invalid("the URL must not hold a user name or password"));
            }
            if url.fragment().is_some() || url.as_str().len() > 2048 {
                return Err(invalid("the URL must have no #fragment and at most 2048 characters"));
            }
            (None, None, Some(url.to_string()))
        }
        _ => return Err(invalid("syslog destinations take a host and port; https_json takes a URL")),
    };
    if let Some(pem) = &new.ca_pem {
        if pem.len() > MAX_CA_PEM {
            return Err(invalid("the CA certificate is larger than 64 KiB"));
        }
        parse_ca(pem)?;
    }
    let cursor = match new.start {
        StartAt::Beginning => 0,
        StartAt::Now => {
            let sql = "SELECT MAX(id) FROM audit_logs WHERE client_id = $1";
            let max: Option<i64> = on_pool!(db, |p| sqlx::query_scalar(sql).bind(client).fetch_one(p).await?);
            max.unwrap_or(0)
        }
    };
    let now = crate::db::now();
    let sql = format!(
        "INSERT INTO siem_destinations (id, client_id, name, kind, host, port, url, ca_pem, enabled, \
         cursor_event_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
         RETURNING {COLUMNS}"
    );
    let row: Row = on_pool!(db, |p| sqlx::query_as(&sql)
        .bind(DestinationId::new())
        .bind(client)
        .bind(&name)
        .bind(new.kind.as_str())
        .bind(host)
        .bind(port)
        .bind(url)
        .bind(new.ca_pem)
        .bind(true)
        .bind(cursor)
        .bind(now)
        .fetch_one(p)
        .await?);
    row.try_into()
}

/// The destinations of `client`.
pub async fn list(db: &Db, client: ClientId) -> Result<Vec<Destination>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM siem_destinations WHERE client_id = $1 ORDER BY created_at, id");
    let rows: Vec<Row> = on_pool!(db, |p| sqlx::query_as(&sql).bind(client).fetch_all(p).await?);
    rows.into_iter().map(Destination::try_from).collect()
}

/// One destination of `client`; another client's is [`DbError::NotFound`].
pub async fn get(db: &Db, client: ClientId, id: DestinationId) -> Result<Destination, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM siem_destinations WHERE client_id = $1 AND id = $2");
    let row: Row = on_pool!(db, |p| sqlx::query_as(&sql).bind(client).bind(id).fetch_one(p).await?);
    row.try_into()
}

/// Pauses or resumes forwarding to a destination (its cursor stays where it is).
pub async fn set_enabled(db: &Db, client: ClientId, id: DestinationId, enabled: bool) -> Result<(), DbError> {
    let sql = "UPDATE siem_destinations SET enabled = $1, updated_at = $2 WHERE client_id = $3 AND id = $4";
    let done = on_pool!(db, |p| sqlx::query(sql)
        .bind(enabled)
        .bind(crate::db::now())
        .bind(client)
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
    if done == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Removes a destination.
pub async fn delete(db: &Db, client: ClientId, id: DestinationId) -> Result<(), DbError> {
    let sql = "DELETE FROM siem_destinations WHERE client_id = $1 AND id = $2";
    let done = on_pool!(db, |p| sqlx::query(sql).bind(client).bind(id).execute(p).await?.rows_affected());
    if done == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
