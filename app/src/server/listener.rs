//! The web listener: our own accept loop over hyper, so that what one client does cannot take the server
//! away from the others.
//!
//! - Every accepted socket gets `TCP_NODELAY`: a response written in several pieces (streamed SSR, file
//!   bodies) is never held back waiting for the client's delayed ACK (a 40 ms stall per response).
//! - A client has [`ListenerSettings::header_read_timeout`] to send a request's head, and the same time while a
//!   kept-alive connection waits for its next request (hyper starts that timer whenever the connection goes
//!   idle); then the connection is closed.
//! - A request body must arrive whole within [`ListenerSettings::request_body_timeout`] of the request's
//!   head (a slow body gets `408` and the connection is closed), whatever its pace.
//! - Connections are capped per client address and in total. Over a cap, the connection gets a short `503`
//!   and is closed at once, so the accept queue keeps moving. Peers the configuration trusts (reverse proxies,
//!   which carry many clients on few connections) are exempt from the per-address cap, never from the total.
//! - On shutdown: stop accepting, let connections finish their requests for the grace period, then stop.
//!
//! - With built-in TLS ([`Hooks::tls`], `server.tls_cert_file`), each connection's handshake must finish
//!   within the head timeout.
//!
//! HTTP/1.1 only (with upgrades, for WebSockets), also over built-in TLS (ALPN `http/1.1`).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deployclaw::net::forwarded::{canonical, TrustedProxies};
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Limits of the web listener (from `[server]` in the configuration).
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Time to send a request's head, and to start the next request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Time for a whole request body to arrive, counted from its head.
    pub request_body_timeout: Duration,
    /// Open connections at most, all clients together.
    pub max_connections: usize,
    /// Open connections at most from one client address (trusted peers exempt).
    pub max_connections_per_address: usize,
    /// How long in-flight requests get after shutdown was requested.
    pub grace: Duration,
    /// Reverse proxies: exempt from the per-address cap (they carry many clients on few connections).
    pub trusted: TrustedProxies,
}

impl ListenerSettings {
    pub fn from_config(server: &deployclaw::config::ServerConfig) -> Self {
        Self {
            header_read_timeout: server.header_read_timeout,
            request_body_timeout: server.request_body_timeout,
            max_connections: server.max_connections,
            max_connections_per_address: server.max_connections_per_address,
            grace: server.shutdown_grace,
            trusted: server.trusted_proxies.clone(),
        }
    }
}

/// Called with every accepted socket once the listener has prepared it (tests read its options back).
pub type OnAccept = Arc<dyn Fn(&TcpStream) + Send + Sync>;

/// The listener's wiring besides the router and settings.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Built-in TLS: every connection is a TLS handshake first (bounded by the head timeout).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub on_accept: Option<OnAccept>,
}

/// Refusals being written at once, at most: beyond this a refused connection is simply closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 256;
/// How long a refused client gets to read its `503`.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Open connections, in total and per address; a [`Slot`] gives its place back when dropped.
#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_address.remove(&self.ip);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    Address,
}

fn take_slot(
    counts: &Arc<Mutex<Counts>>,
    ip: IpAddr,
    settings: &ListenerSettings,
    exempt: bool,
) -> Result<Slot, Refusal> {
    let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
    if c.total >= settings.max_connections {
        return Err(Refusal::Total);
    }
    let mine = c.per_address.get(&ip).copied().unwrap_or(0);
    if !exempt && mine >= settings.max_connections_per_address {
        return Err(Refusal::Address);
    }
    c.total += 1;
    *c.per_address.entry(ip).or_insert(0) += 1;
    Ok(Slot { counts: counts.clone(), ip })
}

/// Serves `app` on `listener` until `signal` resolves, then stops accepting and gives open connections up to
/// `settings.grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    settings: ListenerSettings,
    hooks: Hooks,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(settings.request_body_timeout, body_deadline));
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout).keep_alive(true);
    let builder = Arc::new(builder);
    let counts = Arc::new(Mutex::new(Counts::default()));
    let refusals = Arc::new(AtomicUsize::new(0));
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning; open connections go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        if let Some(on_accept) = &hooks.on_accept {
            on_accept(&stream);
        }
        let ip = canonical(peer.ip());
        let exempt = settings.trusted.trusts(ip);
        let slot = match take_slot(&counts, ip, &settings, exempt) {
            Ok(slot) => slot,
            Err(refusal) => {
                refuse(stream, refusal, &refusals);
                continue;
            }
        };
        let peer = SocketAddr::new(ip, peer.port());
        let service = TowerToHyperService::new(app.clone().map_request(move |mut req: Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        }));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = hooks.tls.clone();
        let handshake_timeout = settings.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let result = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                        .await
                }
                Some(tls) => {
                    // A handshake is part of sending the head: a client that stalls in it is closed as one that
                    // stalls in its headers.
                    let stream = match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutdown requested; finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(settings.grace) => {
            tracing::warn!(grace_secs = settings.grace.as_secs(), "in-flight requests did not finish in time; stopping anyway");
        }
    }
    Ok(())
}

/// Answers a connection over a cap with a short `503` (bounded in time and in how many at once) and closes it.
fn refuse(mut stream: TcpStream, refusal: Refusal, in_flight: &Arc<AtomicUsize>) {
    match refusal {
        Refusal::Total => tracing::warn!("connection refused: the server is at its connection limit"),
        Refusal::Address => tracing::debug!("connection refused: too many open connections from one address"),
    }
    if in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_REFUSALS_IN_FLIGHT {
        in_flight.fetch_sub(1, Ordering::SeqCst);
        return; // dropped: closed without an answer
    }
    let in_flight = in_flight.clone();
    tokio::spawn(async move {
        let reason = match refusal {
            Refusal::Total => "The server is at its connection limit; try again in a moment.\n",
            Refusal::Address => "Too many open connections from your address; close some and try again.\n",
        };
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 5\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{reason}",
            reason.len()
        );
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await
        })
        .await;
        in_flight.fetch_sub(1, Ordering::SeqCst);
    });
}

/// axum middleware: the request body must arrive whole within the deadline, counted from now (the head has
/// arrived). A body still arriving then ends with an error for the handler, and the answer is `408` with the
/// connection closed, whatever the handler made of the error.
async fn body_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(limit)),
        expired: expired.clone(),
        done: false,
    });
    let res = next.run(Request::from_parts(parts, body)).await;
    if expired.load(Ordering::SeqCst) {
        let mut res = (StatusCode::REQUEST_TIMEOUT, "The request body did not arrive in time.\n").into_response();
        res.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        return res;
    }
    res
}

/// A request body with a deadline for its last byte.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
    done: bool,
}

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() {
                self.done = true;
            }
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::SeqCst);
            self.done = true;
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "the request body did not arrive in time");
            return Poll::Ready(Some(Err(axum::Error::new(e))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Raises this process's soft limit on open files to its hard limit (every connection is a descriptor) and
/// returns the limit now in force.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::increase_nofile_limit(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(total: usize, per_address: usize) -> ListenerSettings {
        ListenerSettings {
            header_read_timeout: Duration::from_secs(1),
            request_body_timeout: Duration::from_secs(1),
            max_connections: total,
            max_connections_per_address: per_address,
            grace: Duration::from_secs(1),
            trusted: TrustedProxies::default(),
        }
    }

    #[test]
    fn mapped_ipv6_peers_are_their_ipv4_address() {
        assert_eq!(canonical("::ffff:203.0.113.9".parse().unwrap()), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(canonical("2001:db8::1".parse().unwrap()), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(canonical("198.51.100.4".parse().unwrap()), "198.51.100.4".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn slots_are_capped_per_address_and_in_total_and_given_back() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let s = settings(3, 2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap());
        let a1 = take_slot(&counts, a, &s, false).unwrap();
        let _a2 = take_slot(&counts, a, &s, false).unwrap();
        assert_eq!(take_slot(&counts, a, &s, false).err(), Some(Refusal::Address), "a third from one address");
        let _b1 = take_slot(&counts, b, &s, false).unwrap();
        assert_eq!(take_slot(&counts, c, &s, false).err(), Some(Refusal::Total), "the total is reached");
        drop(a1);
        let _c1 = take_slot(&counts, c, &s, false).unwrap();
        assert_eq!(counts.lock().unwrap().total, 3);
        // An exempt peer (a trusted proxy) is held to the total only.
        let counts = Arc::new(Mutex::new(Counts::default()));
        let held: Vec<_> = (0..3).map(|_| take_slot(&counts, a, &s, true).unwrap()).collect();
        assert_eq!(take_slot(&counts, a, &s, true).err(), Some(Refusal::Total));
        drop(held);
        assert_eq!(counts.lock().unwrap().total, 0);
        assert!(counts.lock().unwrap().per_address.is_empty(), "nothing left behind");
    }
}
