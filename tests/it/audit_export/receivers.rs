//! Local SIEM receivers for the forwarder tests, all on 127.0.0.1 port 0: syslog over TCP and over TLS
//! (RFC 6587 octet-counted frames), and HTTPS JSON; TLS certificates from a throwaway CA made with rcgen.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A CA and a server certificate for 127.0.0.1 signed by it.
pub struct TestCa {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new(alpn_http1: bool) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "DeployClaw test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let mut server =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![leaf.der().clone()], key)
                .unwrap();
        if alpn_http1 {
            server.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Self { ca_pem: ca_cert.pem(), server: Arc::new(server) }
    }
}

/// A syslog receiver: every frame's message, in arrival order.
pub struct SyslogReceiver {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl SyslogReceiver {
    /// Plain TCP, or TLS with `tls`. Binds `addr` (127.0.0.1:0 for any free port).
    pub async fn start(addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        assert!(addr.ip().is_loopback(), "tests listen on loopback only");
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (messages, connections) = (messages.clone(), connections.clone());
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { return };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let messages = messages.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => read_frames(tcp, messages).await,
                            Some(config) => {
                                if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                                    read_frames(stream, messages).await;
                                }
                            }
                        }
                    });
                }
            }
        });
        Self { addr, messages, connections, task }
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for SyslogReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads RFC 6587 octet-counted frames (`LEN SP MSG`) until the peer closes; a malformed frame fails the
/// test (recorded as a message starting with `MALFORMED`).
async fn read_frames(mut stream: impl AsyncRead + Unpin, messages: Arc<Mutex<Vec<String>>>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Take every complete frame in the buffer.
        while let Some(space) = buf.iter().position(|b| *b == b' ') {
            let len = std::str::from_utf8(&buf[..space]).ok().filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
            let Some(len) = len.and_then(|d| d.parse::<usize>().ok()).filter(|l| *l > 0) else {
                messages.lock().unwrap().push(format!("MALFORMED frame header {:?}", String::from_utf8_lossy(&buf)));
                return;
            };
            if buf.len() < space + 1 + len {
                break;
            }
            let message = String::from_utf8(buf[space + 1..space + 1 + len].to_vec()).expect("UTF-8 message");
            messages.lock().unwrap().push(message);
            buf.drain(..space + 1 + len);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    messages.lock().unwrap().push(format!("MALFORMED trailing {} bytes", buf.len()));
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What the HTTPS receiver does with the next connection or request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehave {
    /// Close the TCP connection as soon as it is accepted (before TLS).
    DropConnection,
    /// Read the batch, keep it, and answer 500 (a receiver that stored it but failed to acknowledge).
    StoreAndFail,
    /// Read the batch, discard it, and answer 500.
    Fail,
}

/// An HTTPS JSON receiver: the batches it answered 2xx, and everything it received.
pub struct HttpsReceiver {
    pub addr: SocketAddr,
    /// Events of batches answered 200, in order.
    pub acknowledged: Arc<Mutex<Vec<Value>>>,
    /// Events of every batch received, acknowledged or not, in order.
    pub received: Arc<Mutex<Vec<Value>>>,
    pub requests: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HttpsReceiver {
    /// Misbehaves as `script` says, one entry per connection (`DropConnection`) or per request (the others),
    /// then behaves.
    pub async fn start(tls: Arc<rustls::ServerConfig>, script: Vec<Misbehave>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let task = tokio::spawn({
            let (acknowledged, received, requests, dropped) =
                (acknowledged.clone(), received.clone(), requests.clone(), dropped.clone());
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { return };
                    {
                        let mut script = script.lock().unwrap();
                        if script.front() == Some(&Misbehave::DropConnection) {
                            script.pop_front();
                            dropped.fetch_add(1, Ordering::SeqCst);
                            drop(tcp);
                            continue;
                        }
                    }
                    let tls = tls.clone();
                    let (acknowledged, received, requests, script) =
                        (acknowledged.clone(), received.clone(), requests.clone(), script.clone());
                    tokio::spawn(async move {
                        let Ok(stream) = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await else { return };
                        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let (acknowledged, received, requests, script) =
                                (acknowledged.clone(), received.clone(), requests.clone(), script.clone());
                            async move {
                                requests.fetch_add(1, Ordering::SeqCst);
                                let ok_request = req.method() == hyper::Method::POST
                                    && req.uri().path() == "/ingest"
                                    && req.headers()["content-type"] == "application/json";
                                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                let events: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
                                let step = script.lock().unwrap().pop_front();
                                let status = match step {
                                    _ if !ok_request || events.is_empty() => 400,
                                    Some(Misbehave::Fail) => 500,
                                    Some(Misbehave::StoreAndFail) => {
                                        received.lock().unwrap().extend(events);
                                        500
                                    }
                                    _ => {
                                        received.lock().unwrap().extend(events.clone());
                                        acknowledged.lock().unwrap().extend(events);
                                        200
                                    }
                                };
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::from_static(b"{}")))
                                        .unwrap(),
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self { addr, acknowledged, received, requests, dropped, task }
    }

    pub fn url(&self) -> url::Url {
        format!("https://127.0.0.1:{}/ingest?source=deployclaw", self.addr.port()).parse().unwrap()
    }
}

impl Drop for HttpsReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
