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

mod net;
mod syslog;

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

/// How the forwarder behaves. [`ForwarderSettings::from_config`] gives the production values.
#[derive(Debug, Clone)]
pub struct ForwarderSettings {
    /// Allow loopback, private, link-local and other non-public destination addresses (tests; internal SIEMs
    /// of a self-hosted operator). Off in production.
    pub allow_private_destinations: bool,
    /// How often enabled destinations are checked for new events.
    pub poll_interval: Duration,
    /// Events younger than this are left for the next turn. An id is taken when the INSERT runs but becomes
    /// visible at COMMIT, so on PostgreSQL a later id can be visible before an earlier one; waiting until
    /// an event is this old (and stopping at the first younger one) means the cursor never jumps over an
    /// event still being committed.
    pub settle: Duration,
    /// Events per batch (one syslog write or one HTTPS request).
    pub batch_size: u32,
    /// Batches per destination per turn, so one large backlog does not starve other destinations.
    pub max_batches_per_turn: u32,
    /// Destinations served at once.
    pub concurrency: usize,
    /// First retry delay after a failure; doubled per further failure up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Limits for resolving and connecting, and for each read or write after that.
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    /// How long a forwarder holds a destination (renewed per batch) before another process may take over.
    pub lease: Duration,
    /// The syslog HOSTNAME field: this platform's public host name.
    pub hostname: String,
}

impl ForwarderSettings {
    /// The forwarder for `siem`, naming itself `hostname` (the platform's public host) in syslog.
    pub fn from_config(siem: &super::config::SiemConfig, hostname: &str) -> Self {
        Self {
            allow_private_destinations: siem.allow_private_destinations,
            hostname: hostname.to_string(),
            ..Self::default()
        }
    }
}

impl Default for ForwarderSettings {
    fn default() -> Self {
        Self {
            allow_private_destinations: false,
            poll_interval: Duration::from_secs(2),
            settle: Duration::from_secs(5),
            batch_size: 500,
            max_batches_per_turn: 20,
            concurrency: 8,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(60),
            hostname: "-".into(),
        }
    }
}

/// Why a delivery failed. The text is stored for the customer to see: it never holds a secret, and never
/// the resolved address of a refused destination (that would map our network for them).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the destination's host name could not be resolved")]
    Resolve,
    #[error(
        "the destination resolves only to loopback, private, link-local or other non-public addresses, which are not \
         allowed"
    )]
    NonPublicAddress,
    #[error("could not connect to the destination: {0}")]
    Connect(std::io::ErrorKind),
    #[error("timed out while {0}")]
    Timeout(&'static str),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the destination answered HTTP {0}")]
    Status(u16),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("sending failed: {0}")]
    Io(std::io::ErrorKind),
    #[error("destination settings: {0}")]
    Settings(String),
    #[error("another forwarder took this destination over")]
    LeaseLost,
    #[error("the platform's database failed")]
    Db(#[from] DbError),
}

/// The outcome of one turn at one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered {
    /// Events acknowledged this turn.
    pub events: u64,
    /// False when another forwarder holds the destination's lease.
    pub leased: bool,
}

/// Runs the forwarder until `shutdown` completes: every `poll_interval`, each enabled destination of every
/// client gets its events after its cursor, in batches; a failing destination waits out an exponential
/// backoff. Cancelling mid-batch is safe (the batch is sent again later).
///
/// Wiring: `tokio::spawn(siem::run(db, ForwarderSettings::from_config(&config.siem, public_host), shutdown))`.
pub async fn run(db: Db, settings: ForwarderSettings, shutdown: impl std::future::Future<Output = ()>) {
    let owner = Uuid::now_v7();
    let mut backoff: HashMap<DestinationId, Backoff> = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        let turn = async {
            let due = match enabled_destinations(&db).await {
                Ok(all) => all,
                Err(e) => {
                    tracing::warn!(error = %e, "SIEM forwarder could not list destinations");
                    Vec::new()
                }
            };
            let now = tokio::time::Instant::now();
            // Forget the backoff of destinations that were deleted or paused.
            backoff.retain(|id, _| due.iter().any(|d| d.id == *id));
            let due: Vec<Destination> = due
                .into_iter()
                .filter(|d| backoff.get(&d.id).and_then(|b| b.next).is_none_or(|next| next <= now))
                .collect();
            let results: Vec<(DestinationId, Result<Delivered, DeliveryError>)> = stream::iter(due)
                .map(|d| {
                    let (db, settings) = (&db, &settings);
                    async move { (d.id, forward(db, &d, settings, owner).await) }
                })
                .buffer_unordered(settings.concurrency.max(1))
                .collect()
                .await;
            for (id, result) in results {
                match result {
                    Ok(_) => {
                        backoff.remove(&id);
                    }
                    Err(_) => backoff.entry(id).or_default().failed(&settings),
                }
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = turn => {}
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next: Option<tokio::time::Instant>,
}

impl Backoff {
    fn failed(&mut self, settings: &ForwarderSettings) {
        self.failed_at(settings, tokio::time::Instant::now());
    }

    /// Records a failure at `now` (the forwarder's clock; tests pass their own).
    fn failed_at(&mut self, settings: &ForwarderSettings, now: tokio::time::Instant) {
        self.failures = self.failures.saturating_add(1);
        let exp = settings.backoff_initial.saturating_mul(1 << self.failures.saturating_sub(1).min(20));
        let delay = exp.min(settings.backoff_max);
        // Up to a quarter more, so destinations that failed together do not retry in lockstep.
        let jitter = delay.mul_f64(rand::random::<f64>() * 0.25);
        self.next = Some(now + delay + jitter);
    }
}

/// Every enabled destination, of every client: the forwarder is a platform task. Each delivery then reads
/// only its own destination's client's events.
async fn enabled_destinations(db: &Db) -> Result<Vec<Destination>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM siem_destinations WHERE enabled = $1 ORDER BY id");
    let rows: Vec<Row> = on_pool!(db, |p| sqlx::query_as(&sql).bind(true).fetch_all(p).await?);
    rows.into_iter().map(Destination::try_from).collect()
}

/// One turn at one destination: takes its lease, sends up to `max_batches_per_turn` batches after its cursor
/// (advancing the cursor after each acknowledged batch), records a failure, and gives the lease back.
pub async fn forward(
    db: &Db,
    destination: &Destination,
    settings: &ForwarderSettings,
    owner: Uuid,
) -> Result<Delivered, DeliveryError> {
    let (id, client) = (destination.id, destination.client_id);
    if !take_lease(db, destination, settings, owner).await? {
        return Ok(Delivered { events: 0, leased: false });
    }
    let result = deliver(db, destination, settings, owner).await;
    let release = match &result {
        Ok(_) => release_lease(db, id, client, owner, None).await,
        Err(e) => {
            tracing::warn!(destination = %id, client = %client, error = %e, "SIEM delivery failed; will retry");
            release_lease(db, id, client, owner, Some(e)).await
        }
    };
    if let Err(e) = release {
        tracing::warn!(destination = %id, error = %e, "could not release a SIEM destination's lease");
    }
    result.map(|events| Delivered { events, leased: true })
}

async fn take_lease(db: &Db, d: &Destination, settings: &ForwarderSettings, owner: Uuid) -> Result<bool, DbError> {
    let now = crate::db::now();
    let until = now + chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::seconds(60));
    let sql = "UPDATE siem_destinations SET lease_owner = $1, lease_until = $2 \
               WHERE id = $3 AND client_id = $4 AND enabled = $5 \
               AND (lease_until IS NULL OR lease_until < $6 OR lease_owner = $1)";
    let taken = on_pool!(db, |p| sqlx::query(sql)
        .bind(owner)
        .bind(until)
        .bind(d.id)
        .bind(d.client_id)
        .bind(true)
        .bind(now)
        .execute(p)
        .await?
        .rows_affected());
    Ok(taken == 1)
}

async fn release_lease(
    db: &Db,
    id: DestinationId,
    client: ClientId,
    owner: Uuid,
    error: Option<&DeliveryError>,
) -> Result<(), DbError> {
    let now = crate::db::now();
    match error {
        None => {
            let sql = "UPDATE siem_destinations SET lease_owner = NULL, lease_until = NULL \
                       WHERE id = $1 AND client_id = $2 AND lease_owner = $3";
            on_pool!(db, |p| sqlx::query(sql).bind(id).bind(client).bind(owner).execute(p).await?.rows_affected());
        }
        Some(e) => {
            let text = crate::scrub::scrub_text(&e.to_string()).chars().take(1000).collect::<String>();
            let sql = "UPDATE siem_destinations SET lease_owner = NULL, lease_until = NULL, last_error = $1, \
                       last_error_at = $2 WHERE id = $3 AND client_id = $4 AND lease_owner = $5";
            on_pool!(db, |p| sqlx::query(sql)
                .bind(text)
                .bind(now)
                .bind(id)
                .bind(client)
                .bind(owner)
                .execute(p)
                .await?
                .rows_affected());
        }
    }
    Ok(())
}

/// Sends batches after the stored cursor; returns how many events were acknowledged.
async fn deliver(db: &Db, d: &Destination, settings: &ForwarderSettings, owner: Uuid) -> Result<u64, DeliveryError> {
    // The cursor as stored now, not as listed at the start of the turn.
    let mut cursor = get(db, d.client_id, d.id).await?.cursor;
    let mut sent = 0u64;
    let mut connection: Option<Connection> = None;
    for _ in 0..settings.max_batches_per_turn.max(1) {
        let batch = settled_batch(db, d.client_id, cursor, settings).await?;
        let Some(last) = batch.last().map(|e| e.id) else { break };
        if connection.is_none() {
            connection = Some(Connection::open(d, settings).await?);
        }
        let conn = connection.as_mut().expect("opened above");
        conn.send(&batch, d, settings).await?;
        advance(db, d, cursor, last, settings, owner).await?;
        sent += batch.len() as u64;
        cursor = last;
        if batch.len() < settings.batch_size as usize {
            break;
        }
    }
    if let Some(conn) = connection {
        conn.close(settings).await;
    }
    Ok(sent)
}

/// The next events after `cursor`, up to the first one younger than the settle time (see
/// [`ForwarderSettings::settle`]): never past an event that may still be committing.
async fn settled_batch(
    db: &Db,
    client: ClientId,
    cursor: AuditEventId,
    settings: &ForwarderSettings,
) -> Result<Vec<AuditEvent>, DbError> {
    let mut batch = page(db, client, cursor, &Filter::default(), settings.batch_size.clamp(1, 10_000)).await?;
    let cutoff = Utc::now() - chrono::Duration::from_std(settings.settle).unwrap_or_default();
    if let Some(young) = batch.iter().position(|e| e.created_at > cutoff) {
        batch.truncate(young);
    }
    Ok(batch)
}

/// Moves the cursor from `from` to `to` and renews the lease; never moves it backwards.
async fn advance(
    db: &Db,
    d: &Destination,
    from: AuditEventId,
    to: AuditEventId,
    settings: &ForwarderSettings,
    owner: Uuid,
) -> Result<(), DeliveryError> {
    let now = crate::db::now();
    let until = now + chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::seconds(60));
    let sql = "UPDATE siem_destinations SET cursor_event_id = $1, last_delivered_at = $2, lease_until = $3 \
               WHERE id = $4 AND client_id = $5 AND cursor_event_id = $6 AND lease_owner = $7";
    let moved = on_pool!(db, |p| sqlx::query(sql)
        .bind(to.0)
        .bind(now)
        .bind(until)
        .bind(d.id)
        .bind(d.client_id)
        .bind(from.0)
        .bind(owner)
        .execute(p)
        .await
        .map_err(DbError::from)?
        .rows_affected());
    if moved == 0 {
        // Another forwarder took over (our lease ran out): stop; it continues from the stored cursor.
        return Err(DeliveryError::LeaseLost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let settings = ForwarderSettings {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            ..ForwarderSettings::default()
        };
        let mut b = Backoff::default();
        let mut delays = Vec::new();
        // One fixed instant for every failure: the delays are exactly what the backoff chose.
        let at = tokio::time::Instant::now();
        for _ in 0..6 {
            b.failed_at(&settings, at);
            delays.push((b.next.unwrap() - at).as_secs_f64());
        }
        for (delay, base) in delays.iter().zip([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]) {
            assert!(*delay >= base && *delay <= base * 1.25, "{delays:?}");
        }
        assert_eq!(b.failures, 6);
    }
}
