//! The forwarder: every enabled destination gets its client's events in order, at least once, from its cursor;
//! one replica at a time per destination (a lease), with backoff when a destination fails.

use super::*;

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
    pub fn from_config(siem: &crate::audit::config::SiemConfig, hostname: &str) -> Self {
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
