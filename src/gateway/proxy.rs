//! The egress proxy: every agent's only way out (DESIGN.md invariant 8).
//!
//! One listener per agent, on its network's gateway address (port 3128 by default), bound with `IP_FREEBIND`
//! so it can exist before the bridge does. A connection belongs to the agent whose listener it arrived on,
//! and must also carry that agent's gateway token in `Proxy-Authorization` (Basic, any user name); both must
//! agree or the answer is 407. Two request forms: `CONNECT host:port` (a TCP tunnel, for TLS) and an
//! absolute-form HTTP request (`GET http://host/path`, one request per connection, sent upstream with
//! `Connection: close`).
//!
//! For each connection, in order: authentication, the `api:outbound` scope, the host (a name, never an IP
//! literal; normalised like the allowlist), the allowlist, the agent's open-connection cap, its rate limit,
//! then resolution: every resolved address must be public (or be exactly one of the configured test
//! upstreams), and the connection goes to exactly the addresses that were checked, so DNS rebinding fails.
//! Permissions and the token hash are read from the database per connection, so changes apply at once.
//! Every connection that made a request is audited once (`gateway.connection`). Denials get `403` with a
//! one-line reason. The proxy never logs or records the token.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::permissions::{HostName, Scope};
use super::store;
use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::db::{AgentId, ClientId, Db};
use crate::net::is_public;

mod head;

use head::{answer, is_model_call, parse_request, read_head, Head, HeadError, Kind};

/// Largest request head (request line and headers) read from an agent.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long an agent has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEADERS: usize = 64;
const COPY_BUFFER: usize = 16 * 1024;

/// How the proxy behaves; from `[gateway]` in the configuration, plus a test-only host map.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// The port on each agent's gateway address ([`hardening::GATEWAY_PORT`](crate::runtime::hardening::GATEWAY_PORT)).
    pub port: u16,
    /// Exact upstream addresses allowed although not public (tests only; empty by default).
    pub test_upstreams: Vec<SocketAddr>,
    /// Names answered without DNS, like `/etc/hosts` entries (tests only; the addresses are still checked).
    pub static_hosts: BTreeMap<String, Vec<IpAddr>>,
    /// How long an agent has to send its request head.
    pub head_timeout: Duration,
    /// Resolving plus connecting upstream.
    pub connect_timeout: Duration,
    /// A tunnel with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections per agent.
    pub max_connections_per_agent: usize,
    /// Called with each accepted agent socket once it is prepared (tests read its options back).
    pub on_accept: Option<AcceptObserver>,
}

/// An observer of accepted sockets (see [`ProxySettings::on_accept`]).
#[derive(Clone)]
pub struct AcceptObserver(pub Arc<dyn Fn(&TcpStream) + Send + Sync>);

impl std::fmt::Debug for AcceptObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcceptObserver")
    }
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            port: crate::runtime::hardening::GATEWAY_PORT,
            test_upstreams: Vec::new(),
            static_hosts: BTreeMap::new(),
            head_timeout: HEAD_TIMEOUT,
            connect_timeout: crate::gateway::config::DEFAULT_GATEWAY_CONNECT_TIMEOUT,
            idle_timeout: crate::gateway::config::DEFAULT_GATEWAY_IDLE_TIMEOUT,
            max_connections_per_agent: crate::gateway::config::DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_AGENT,
            on_accept: None,
        }
    }
}

impl ProxySettings {
    pub fn from_config(c: &crate::gateway::config::GatewayConfig) -> Self {
        Self {
            test_upstreams: c.test_upstreams.clone(),
            connect_timeout: c.connect_timeout,
            idle_timeout: c.idle_timeout,
            max_connections_per_agent: c.max_connections_per_agent,
            ..Self::default()
        }
    }
}

/// The proxy: listeners by agent. Cheap to clone.
#[derive(Clone)]
pub struct EgressProxy {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    settings: ProxySettings,
    /// Serves model calls (origin-form requests to the listener itself), when configured.
    llm: Option<super::llm::LlmGateway>,
    listeners: Mutex<HashMap<AgentId, Listening>>,
}

struct Listening {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy").field("port", &self.inner.settings.port).finish_non_exhaustive()
    }
}

/// Why a request was refused: the status and the one line the agent reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Denial {
    status: u16,
    reason: String,
}

fn deny(status: u16, reason: impl Into<String>) -> Denial {
    Denial { status, reason: reason.into() }
}

/// What one connection did, for its audit event.
#[derive(Debug, Default)]
struct Record {
    method: String,
    host: String,
    port: u16,
    authenticated: bool,
    address: Option<SocketAddr>,
    bytes_up: u64,
    bytes_down: u64,
}

impl EgressProxy {
    /// The proxy alone: requests to the listener itself (model calls) are refused.
    pub fn new(db: Db, settings: ProxySettings) -> Self {
        Self::build(db, settings, None)
    }

    /// The proxy with the LLM gateway answering model calls on the same listeners.
    pub fn with_llm(db: Db, settings: ProxySettings, llm: super::llm::LlmGateway) -> Self {
        Self::build(db, settings, Some(llm))
    }

    fn build(db: Db, settings: ProxySettings, llm: Option<super::llm::LlmGateway>) -> Self {
        Self { inner: Arc::new(Inner { db, settings, llm, listeners: Mutex::default() }) }
    }

    pub fn port(&self) -> u16 {
        self.inner.settings.port
    }

    /// Listens for `agent` on `addr` (port 0 picks one, for tests); returns the bound address. Replaces an
    /// earlier listener of the agent on another address; a second call with the same address is a no-op.
    pub async fn listen(&self, client: ClientId, agent: AgentId, addr: SocketAddr) -> io::Result<SocketAddr> {
        if let Some(existing) = self.listening(agent) {
            if existing == addr || (addr.port() == 0 && existing.ip() == addr.ip()) {
                return Ok(existing);
            }
            self.stop(agent);
        }
        let listener = bind_freebind(addr)?;
        let bound = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        self.lock_listeners().insert(agent, Listening { addr: bound, stop });
        let proxy = self.clone();
        tokio::spawn(async move { proxy.accept_loop(client, agent, listener, stopped).await });
        tracing::info!(%agent, addr = %bound, "egress proxy listening");
        Ok(bound)
    }

    /// How many agents the proxy listens for.
    pub fn listener_count(&self) -> usize {
        self.lock_listeners().len()
    }

    /// Where the agent's listener is, if any.
    pub fn listening(&self, agent: AgentId) -> Option<SocketAddr> {
        self.lock_listeners().get(&agent).map(|l| l.addr)
    }

    /// Stops the agent's listener and closes its open connections; forgets what the LLM gateway cached.
    pub fn stop(&self, agent: AgentId) {
        if let Some(l) = self.lock_listeners().remove(&agent) {
            let _ = l.stop.send(true);
            tracing::info!(%agent, addr = %l.addr, "egress proxy stopped listening");
        }
        if let Some(llm) = &self.inner.llm {
            llm.forget(agent);
        }
    }

    /// The agent's permissions were just changed: nothing cached about them may outlive the change here.
    pub fn permissions_changed(&self, agent: AgentId) {
        if let Some(llm) = &self.inner.llm {
            llm.forget_admission(agent);
        }
    }

    /// Listens for every agent that has a network (server start). Returns how many listeners run; failures
    /// are logged and leave that agent without a way out (closed, not open).
    pub async fn listen_all(&self, pool: crate::runtime::subnets::Pool) -> usize {
        let agents = match store::with_networks(&self.inner.db).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "egress proxy: cannot list agents");
                return 0;
            }
        };
        let mut n = 0;
        for (client, agent, block) in agents {
            let Some(subnet) = pool.block(u32::try_from(block).unwrap_or(u32::MAX)) else { continue };
            let addr = SocketAddr::new(IpAddr::V4(subnet.gateway()), self.port());
            match self.listen(client, agent, addr).await {
                Ok(_) => n += 1,
                Err(e) => tracing::error!(%agent, %addr, error = %e, "egress proxy cannot listen"),
            }
        }
        n
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, Listening>> {
        self.inner.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn accept_loop(
        self,
        client: ClientId,
        agent: AgentId,
        listener: TcpListener,
        stopped: watch::Receiver<bool>,
    ) {
        let slots = Arc::new(Semaphore::new(self.inner.settings.max_connections_per_agent));
        let mut stop = stopped.clone();
        loop {
            let accepted = tokio::select! {
                _ = stop.changed() => return,
                a = listener.accept() => a,
            };
            let (stream, _) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(%agent, error = %e, "egress proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Streamed model answers and tunnelled bytes go out as they come, not after the agent's delayed ACK.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%agent, error = %e, "egress proxy: TCP_NODELAY not set");
            }
            if let Some(AcceptObserver(observe)) = &self.inner.settings.on_accept {
                observe(&stream);
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Answered at once without reading: a flood of connections cannot pile up tasks.
                tracing::warn!(%agent, "egress proxy: too many open connections for this agent");
                let mut stream = stream;
                tokio::spawn(async move {
                    let denial = deny(403, "too many open connections for this agent");
                    let _ = tokio::time::timeout(Duration::from_secs(2), answer(&mut stream, &denial)).await;
                });
                continue;
            };
            let proxy = self.clone();
            let mut stop = stopped.clone();
            tokio::spawn(async move {
                let _slot = slot;
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = proxy.serve(client, agent, stream) => {}
                }
            });
        }
    }

    /// One agent connection, start to end, audited once it made a request.
    async fn serve(&self, client: ClientId, agent: AgentId, mut stream: TcpStream) {
        let started = Instant::now();
        let mut record = Record::default();
        let head = match tokio::time::timeout(self.inner.settings.head_timeout, read_head(&mut stream)).await {
            Ok(Ok(head)) => head,
            Ok(Err(HeadError::TooLarge)) => {
                let _ = answer(&mut stream, &deny(431, "request header too large")).await;
                return;
            }
            // Closed, timed out or unreadable before a request: nothing to record.
            Ok(Err(_)) | Err(_) => return,
        };
        if let Some(llm) = &self.inner.llm {
            let local = stream.local_addr().ok();
            if is_model_call(&head.bytes[..head.len], local) {
                // The LLM gateway audits each call itself.
                llm.serve(client, agent, stream, head.bytes).await;
                return;
            }
        }
        let result = self.handle(client, agent, &mut stream, head, &mut record).await;
        if let Err(denial) = &result {
            let _ = answer(&mut stream, denial).await;
        }
        // The audit event is written whole even when the listener is stopping (which cancels this task).
        let proxy = self.clone();
        let elapsed = started.elapsed();
        let _ = tokio::spawn(async move { proxy.audit(client, agent, &record, &result, elapsed).await }).await;
    }

    async fn handle(
        &self,
        client: ClientId,
        agent: AgentId,
        stream: &mut TcpStream,
        head: Head,
        record: &mut Record,
    ) -> Result<(), Denial> {
        let request = parse_request(&head.bytes)?;
        record.method = request.method.clone();
        record.host = request.host.chars().take(255).collect();
        record.port = request.port;

        // Identity: the listener says which agent; the token must be that agent's.
        let identity = store::identity(&self.inner.db, client, agent).await.map_err(|e| {
            tracing::warn!(%agent, error = %e, "egress proxy: agent lookup failed");
            deny(407, "proxy authentication required")
        })?;
        if !identity.token_matches(request.token.as_deref()) {
            return Err(deny(407, "proxy authentication required"));
        }
        record.authenticated = true;

        let permissions = identity.permissions;
        if !permissions.has(Scope::ApiOutbound) {
            return Err(deny(403, "this agent does not have the api:outbound scope"));
        }
        let bare = request.host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok() {
            return Err(deny(403, "IP addresses are not allowed; use a host name on the allowlist"));
        }
        let host = HostName::parse(&request.host).map_err(|_| deny(403, "not a valid host name"))?;
        record.host = host.to_string();
        if !permissions.allows_host(&host) {
            return Err(deny(403, "host not on this agent's allowlist"));
        }
        self.take_rate(client, agent, permissions.rate_limit(Scope::ApiOutbound)).await?;

        let upstream = self.connect(&host, request.port, record).await?;
        match request.kind {
            Kind::Connect => {
                stream
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .map_err(|_| deny(502, "the agent closed the connection"))?;
                let leftover = &head.bytes[head.len..];
                self.relay(stream, upstream, leftover, record).await;
            }
            Kind::Forward { ref origin_head } => {
                let mut first = origin_head.clone().into_bytes();
                first.extend_from_slice(&head.bytes[head.len..]);
                self.relay(stream, upstream, &first, record).await;
            }
        }
        Ok(())
    }

    /// Counts one `api:outbound` connection, unless that would pass the hourly or daily limit. The count is
    /// in the database (`gateway_rate_events`), so it survives restarts and is shared by server processes.
    async fn take_rate(
        &self,
        client: ClientId,
        agent: AgentId,
        limit: super::permissions::RateLimit,
    ) -> Result<(), Denial> {
        let scope = Scope::ApiOutbound;
        // On a task of its own: record, count and (when over) take back are separate statements, and stopping
        // the agent's listener cancels its connections; cut between them, a refused use would stay counted.
        let db = self.inner.db.clone();
        let counted = tokio::spawn(async move {
            store::take_rate(&db, client, agent, scope.as_str(), limit.max_per_hour, limit.max_per_day).await
        });
        let over =
            counted.await.map_err(|e| crate::db::DbError::Invalid(e.to_string().into())).and_then(|r| r).map_err(
                |e| {
                    tracing::warn!(%agent, error = %e, "egress proxy: rate count failed");
                    deny(503, "the gateway cannot count this connection right now")
                },
            )?;
        match over {
            None => Ok(()),
            Some(store::RateWindow::Day) => {
                Err(deny(403, format!("rate limit for {} reached ({} per day)", scope.as_str(), limit.max_per_day)))
            }
            Some(store::RateWindow::Hour) => {
                Err(deny(403, format!("rate limit for {} reached ({} per hour)", scope.as_str(), limit.max_per_hour)))
            }
        }
    }

    /// Resolves `host`, refuses if any address is not public (unless it is exactly a test upstream), and
    /// connects to one of exactly those addresses.
    async fn connect(&self, host: &HostName, port: u16, record: &mut Record) -> Result<TcpStream, Denial> {
        let settings = &self.inner.settings;
        let deadline = tokio::time::Instant::now() + settings.connect_timeout;
        let addrs: Vec<SocketAddr> = match settings.static_hosts.get(host.as_str()) {
            Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            None => tokio::time::timeout_at(deadline, tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| deny(504, "resolving the host timed out"))?
                .map_err(|_| deny(502, "the host name does not resolve"))?
                .take(16)
                .collect(),
        };
        if addrs.is_empty() {
            return Err(deny(502, "the host name does not resolve"));
        }
        let allowed = |a: &SocketAddr| is_public(a.ip()) || settings.test_upstreams.contains(a);
        if !addrs.iter().all(allowed) {
            return Err(deny(403, "host resolves to a non-public address"));
        }
        let mut last = deny(502, "could not connect to the host");
        for addr in addrs {
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Err(_) => return Err(deny(504, "connecting to the host timed out")),
                Ok(Err(_)) => last = deny(502, "could not connect to the host"),
                Ok(Ok(s)) => {
                    s.set_nodelay(true).ok();
                    record.address = Some(addr);
                    return Ok(s);
                }
            }
        }
        Err(last)
    }

    /// Copies both ways until both sides are done, or nothing moved for the idle timeout.
    async fn relay(&self, agent_side: &mut TcpStream, upstream: TcpStream, first_up: &[u8], record: &mut Record) {
        let idle = self.inner.settings.idle_timeout;
        let (mut ur, mut uw) = upstream.into_split();
        if !first_up.is_empty() {
            if uw.write_all(first_up).await.is_err() {
                return;
            }
            record.bytes_up += first_up.len() as u64;
        }
        let (mut ar, mut aw) = agent_side.split();
        let origin = Instant::now();
        let last = AtomicU64::new(0);
        let (up, down) = tokio::join!(
            copy_idle(&mut ar, &mut uw, idle, origin, &last),
            copy_idle(&mut ur, &mut aw, idle, origin, &last)
        );
        record.bytes_up += up;
        record.bytes_down += down;
    }

    async fn audit(
        &self,
        client: ClientId,
        agent: AgentId,
        r: &Record,
        result: &Result<(), Denial>,
        elapsed: Duration,
    ) {
        let (allowed, status, reason) = match result {
            Ok(()) => (true, 200, None),
            Err(d) => (false, d.status, Some(d.reason.as_str())),
        };
        let target = if r.host.is_empty() { "-".to_string() } else { format!("{}:{}", r.host, r.port) };
        let meta = json!({
            "method": r.method,
            "host": r.host,
            "port": r.port,
            "allowed": allowed,
            "status": status,
            "reason": reason,
            "authenticated": r.authenticated,
            "address": r.address.map(|a| a.to_string()),
            "bytes_up": r.bytes_up,
            "bytes_down": r.bytes_down,
            "duration_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        });
        let event = NewEvent::new(Some(client), Actor::Agent(agent), ActionType::known("gateway.connection"))
            .agent(agent)
            .target(target)
            .metadata(meta);
        if let Err(e) = audit::append(&self.inner.db, event).await {
            tracing::error!(%agent, error = %e, "egress proxy: could not record a connection");
        }
    }
}

/// A listening socket on `addr`, allowed to bind before the address exists (IP_FREEBIND).
fn bind_freebind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(256)?;
    TcpListener::from_std(socket.into())
}

/// Copies `r` to `w` until EOF, an error, or no traffic either way (`last`, ms since `origin`) for `idle`.
async fn copy_idle<R, W>(r: &mut R, w: &mut W, idle: Duration, origin: Instant, last: &AtomicU64) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match tokio::time::timeout(idle, r.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => {
                let quiet = origin.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if quiet >= idle {
                    break;
                }
                continue;
            }
        };
        if tokio::time::timeout(idle, w.write_all(&buf[..n])).await.map_or(true, |r| r.is_err()) {
            break;
        }
        total += n as u64;
        last.store(u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
    total
}
