//! The network side of SIEM delivery: which addresses a customer's destination may reach, connecting (with
//! the address checked after resolution and again on the connected socket), TLS, and sending one batch.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use super::{parse_ca, syslog, DeliveryError, Destination, ForwarderSettings, Kind};
use crate::audit::export::event_object;
use crate::audit::AuditEvent;
use crate::db::DbError;
use crate::net::is_public;

/// Largest HTTPS answer body read (and ignored) before the connection is reused.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Resolves `host` and connects to its first acceptable address; the connected peer is checked again.
async fn connect(host: &str, port: u16, settings: &ForwarderSettings) -> Result<TcpStream, DeliveryError> {
    let allowed = |ip: IpAddr| settings.allow_private_destinations || is_public(ip);
    let addrs: Vec<SocketAddr> = tokio::time::timeout(settings.connect_timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| DeliveryError::Timeout("resolving the host"))?
        .map_err(|_| DeliveryError::Resolve)?
        .take(16)
        .collect();
    if addrs.is_empty() {
        return Err(DeliveryError::Resolve);
    }
    let mut last = DeliveryError::NonPublicAddress;
    for addr in addrs.into_iter().filter(|a| allowed(a.ip())) {
        match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => last = DeliveryError::Timeout("connecting"),
            Ok(Err(e)) => last = DeliveryError::Connect(e.kind()),
            Ok(Ok(stream)) => {
                let peer = stream.peer_addr().map_err(|e| DeliveryError::Connect(e.kind()))?;
                if !allowed(peer.ip()) {
                    return Err(DeliveryError::NonPublicAddress);
                }
                stream.set_nodelay(true).ok();
                return Ok(stream);
            }
        }
    }
    Err(last)
}

/// The TLS settings for one destination: the public web roots plus its own CA, if any.
fn tls_config(d: &Destination, alpn_http1: bool) -> Result<Arc<rustls::ClientConfig>, DeliveryError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &d.ca_pem {
        for cert in parse_ca(pem).map_err(|e| DeliveryError::Settings(e.to_string()))? {
            roots.add(cert).map_err(|e| DeliveryError::Settings(format!("the CA certificate is unusable: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DeliveryError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if alpn_http1 {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

async fn tls_connect(
    tcp: TcpStream,
    host: &str,
    d: &Destination,
    alpn_http1: bool,
    settings: &ForwarderSettings,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DeliveryError> {
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| DeliveryError::Settings("the host is not a valid TLS server name".into()))?;
    let connector = tokio_rustls::TlsConnector::from(tls_config(d, alpn_http1)?);
    tokio::time::timeout(settings.connect_timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| DeliveryError::Timeout("the TLS handshake"))?
        .map_err(|e| DeliveryError::Tls(e.to_string()))
}

/// An open connection to a destination, reused for the batches of one turn.
pub(super) enum Connection {
    Syslog(Box<dyn SyslogStream>),
    Https {
        sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
        authority: String,
        path: String,
    },
}

pub(super) trait SyslogStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> SyslogStream for T {}

impl Connection {
    pub(super) async fn open(d: &Destination, settings: &ForwarderSettings) -> Result<Self, DeliveryError> {
        match d.kind {
            Kind::SyslogTcp | Kind::SyslogTls => {
                let (host, port) = match (&d.host, d.port) {
                    (Some(h), Some(p)) => (h.as_str(), p),
                    _ => return Err(DeliveryError::Settings("a syslog destination needs a host and port".into())),
                };
                let tcp = connect(host, port, settings).await?;
                if d.kind == Kind::SyslogTcp {
                    Ok(Self::Syslog(Box::new(tcp)))
                } else {
                    Ok(Self::Syslog(Box::new(tls_connect(tcp, host, d, false, settings).await?)))
                }
            }
            Kind::HttpsJson => {
                let url =
                    d.url.as_deref().and_then(|u| Url::parse(u).ok()).filter(|u| u.scheme() == "https").ok_or_else(
                        || DeliveryError::Settings("an https_json destination needs an https:// URL".into()),
                    )?;
                let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
                let port = url.port_or_known_default().unwrap_or(443);
                let tcp = connect(&host, port, settings).await?;
                let tls = tls_connect(tcp, &host, d, true, settings).await?;
                let (sender, conn) = tokio::time::timeout(
                    settings.connect_timeout,
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)),
                )
                .await
                .map_err(|_| DeliveryError::Timeout("starting HTTP"))?
                .map_err(|e| DeliveryError::Http(e.to_string()))?;
                tokio::spawn(async move {
                    // Ends when the sender is dropped or the peer closes; errors surface on the sender.
                    let _ = conn.await;
                });
                let authority = match url.port() {
                    Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_string(),
                };
                let path = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_string(),
                };
                Ok(Self::Https { sender, authority, path })
            }
        }
    }

    /// Sends one batch; returns once the destination acknowledged it (see the module docs).
    pub(super) async fn send(
        &mut self,
        batch: &[AuditEvent],
        d: &Destination,
        settings: &ForwarderSettings,
    ) -> Result<(), DeliveryError> {
        match self {
            Self::Syslog(stream) => {
                let mut frames = Vec::with_capacity(batch.len() * 512);
                for event in batch {
                    let message = syslog::syslog_message(event, &settings.hostname)?;
                    frames.extend_from_slice(format!("{} ", message.len()).as_bytes());
                    frames.extend_from_slice(message.as_bytes());
                }
                let write = async {
                    stream.write_all(&frames).await?;
                    stream.flush().await
                };
                tokio::time::timeout(settings.io_timeout, write)
                    .await
                    .map_err(|_| DeliveryError::Timeout("writing to the syslog receiver"))?
                    .map_err(|e| DeliveryError::Io(e.kind()))
            }
            Self::Https { sender, authority, path } => {
                let objects: Result<Vec<Value>, DbError> =
                    batch.iter().map(|e| event_object(e).map(Value::Object)).collect();
                let body = serde_json::to_vec(&objects?).map_err(|e| DeliveryError::Http(e.to_string()))?;
                let request = hyper::Request::post(path.as_str())
                    .header(hyper::header::HOST, authority.as_str())
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .header(hyper::header::USER_AGENT, concat!("DeployClaw-SIEM/", env!("CARGO_PKG_VERSION")))
                    .header("x-deployclaw-destination", d.id.to_string())
                    .body(http_body_util::Full::new(Bytes::from(body)))
                    .map_err(|e| DeliveryError::Http(e.to_string()))?;
                let exchange = async {
                    sender.ready().await.map_err(|e| DeliveryError::Http(e.to_string()))?;
                    let answer = sender.send_request(request).await.map_err(|e| DeliveryError::Http(e.to_string()))?;
                    let status = answer.status();
                    // Read (a bounded part of) the answer so the connection can carry the next batch.
                    let body = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER_BYTES);
                    let _ = http_body_util::BodyExt::collect(body).await;
                    if status.is_success() {
                        Ok(())
                    } else {
                        Err(DeliveryError::Status(status.as_u16()))
                    }
                };
                tokio::time::timeout(settings.io_timeout, exchange)
                    .await
                    .map_err(|_| DeliveryError::Timeout("waiting for the HTTPS answer"))?
            }
        }
    }

    pub(super) async fn close(self, settings: &ForwarderSettings) {
        if let Self::Syslog(mut stream) = self {
            let _ = tokio::time::timeout(settings.io_timeout, stream.shutdown()).await;
        }
    }
}
