//! Built-in TLS: the web listener speaks HTTPS itself when `server.tls_cert_file` and `server.tls_key_file`
//! are set, so a one-box production needs nothing in front of it.
//!
//! The certificate is read at startup (a bad pair stops the server with the reason) and read again on
//! SIGHUP and whenever either file's modification time or size changes (checked every
//! [`WATCH_INTERVAL`]): a renewed certificate (certbot, acme.sh) is served to new connections without a
//! restart. A pair that fails to load on reload is logged and the certificate in use stays.
//! TLS 1.2 and 1.3 only, rustls' safe defaults (ring), ALPN `http/1.1`.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use deployclaw::config::TlsFiles;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How often the certificate files are checked for a change.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// What went wrong loading a certificate pair; names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("the private key in {key} does not fit the certificate in {cert}, or its kind is not supported: {reason}")]
    Mismatch { cert: String, key: String, reason: String },
}

/// The certificate in use, swapped atomically on reload; rustls asks it for every handshake.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' (modified, size) when last read, to notice a change.
    seen: RwLock<Stamp>,
}

type Stamp = Option<[(SystemTime, u64); 2]>;

impl CertStore {
    /// Reads the pair; fails with the reason when it is unusable.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let seen = stamp(&files);
        let key = read_pair(&files)?;
        Ok(Arc::new(Self { files, current: RwLock::new(Arc::new(key)), seen: RwLock::new(seen) }))
    }

    /// Reads the pair again and serves it from the next handshake on. On failure the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let seen = stamp(&self.files);
        let key = read_pair(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        *self.seen.write().unwrap_or_else(|e| e.into_inner()) = seen;
        Ok(())
    }

    /// Reloads when either file changed since it was last read; returns whether it reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.files);
        if now == *self.seen.read().unwrap_or_else(|e| e.into_inner()) {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// The rustls configuration serving this store's certificate.
    pub fn acceptor(self: &Arc<Self>) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// Checks the files every `interval` and reloads on a change, until the task is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(store) = store.upgrade() else { return };
                match store.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!("TLS certificate files changed; new connections get the new certificate")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate files changed but cannot be used; keeping the current certificate")
                    }
                }
            }
        })
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    Some([one(&files.cert)?, one(&files.key)?])
}

fn read_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let (cert_path, key_path) = (files.cert.display().to_string(), files.key.display().to_string());
    let read = |p: &Path, path: &str| {
        std::fs::read(p).map_err(|e| TlsError::Read { path: path.to_string(), reason: e.kind().to_string() })
    };
    let cert_pem = read(&files.cert, &cert_path)?;
    let key_pem = read(&files.key, &key_path)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&cert_pem).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey { path: key_path.clone() })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Mismatch {
        cert: cert_path,
        key: key_path,
        reason: e.to_string(),
    })
}
