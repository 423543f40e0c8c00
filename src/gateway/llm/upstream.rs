//! Connections from the LLM gateway to one provider (its configured base URL): HTTP/1.1 over TCP, or over
//! TLS with the public web roots, kept alive and reused. A connection goes back to the pool only after its
//! answer was read to the end; one whose answer was cut short is closed.
//!
//! The base URL is the operator's configuration, never the agent's input, so no address rule applies here
//! (unlike the egress proxy and SIEM delivery); configuration allows plain `http://` only to loopback.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

/// Idle connections kept per provider.
pub const MAX_IDLE: usize = 64;

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connecting to the provider timed out")]
    Timeout,
    #[error("could not connect to the provider")]
    Connect,
    #[error("the provider's TLS handshake failed")]
    Tls,
    #[error("the provider closed the connection")]
    Closed,
}

type Sender = SendRequest<Full<Bytes>>;

/// One provider's pool. Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    base: Url,
    host: String,
    port: u16,
    tls: Option<(Arc<rustls::ClientConfig>, rustls_pki_types::ServerName<'static>)>,
    connect_timeout: Duration,
    idle: Mutex<Vec<Sender>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("base", &self.inner.base.as_str()).finish_non_exhaustive()
    }
}

/// A connection lent for one request; [`Lease::release`] returns it once the answer was read to the end.
pub struct Lease {
    sender: Option<Sender>,
    pool: Weak<Inner>,
}

impl Lease {
    /// Sends `request` on the leased connection.
    pub fn send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>> {
        self.sender.as_mut().expect("a lease holds its connection until released").send_request(request)
    }

    pub fn release(mut self) {
        if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
            if !sender.is_closed() {
                let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < MAX_IDLE {
                    idle.push(sender);
                }
            }
        }
    }
}

impl Upstream {
    /// A pool for `base` (`https://api.openai.com`, or `http://127.0.0.1:PORT` for a local stand-in).
    pub fn new(base: Url, connect_timeout: Duration) -> Result<Self, String> {
        let host = base.host_str().ok_or("the provider URL has no host")?.trim_matches(['[', ']']).to_string();
        let port = base.port_or_known_default().ok_or("the provider URL has no port")?;
        let tls = match base.scheme() {
            "https" => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let mut config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
                Some((Arc::new(config), name))
            }
            "http" => None,
            other => return Err(format!("unsupported scheme {other:?}")),
        };
        Ok(Self { inner: Arc::new(Inner { base, host, port, tls, connect_timeout, idle: Mutex::default() }) })
    }

    pub fn base(&self) -> &Url {
        &self.inner.base
    }

    /// The value of the `Host` header for this provider.
    pub fn authority(&self) -> String {
        match self.inner.base.port() {
            Some(p) => format!("{}:{p}", self.inner.base.host_str().unwrap_or_default()),
            None => self.inner.base.host_str().unwrap_or_default().to_string(),
        }
    }

    /// `path` (absolute, e.g. `/v1/messages`) under the base URL's own path.
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base.path().trim_end_matches('/'))
    }

    /// An idle connection that is still usable, or a new one.
    pub async fn lease(&self) -> Result<Lease, UpstreamError> {
        loop {
            let candidate = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match candidate {
                Some(mut s) if !s.is_closed() => {
                    if s.ready().await.is_ok() {
                        return Ok(self.lent(s));
                    }
                }
                Some(_) => continue,
                None => break,
            }
        }
        let sender = self.connect().await?;
        Ok(self.lent(sender))
    }

    fn lent(&self, sender: Sender) -> Lease {
        Lease { sender: Some(sender), pool: Arc::downgrade(&self.inner) }
    }

    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + inner.connect_timeout;
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect((inner.host.as_str(), inner.port)))
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|_| UpstreamError::Connect)?;
        tcp.set_nodelay(true).ok();
        let io: Box<dyn Io> = match &inner.tls {
            None => Box::new(tcp),
            Some((config, name)) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = tokio::time::timeout_at(deadline, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| UpstreamError::Timeout)?
                    .map_err(|_| UpstreamError::Tls)?;
                Box::new(tls)
            }
        };
        let (sender, connection) =
            tokio::time::timeout_at(deadline, hyper::client::conn::http1::handshake(TokioIo::new(io)))
                .await
                .map_err(|_| UpstreamError::Timeout)?
                .map_err(|_| UpstreamError::Closed)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}
