//! The three Stripe API calls billing needs: create a customer, a Checkout Session and a billing portal session.
//!
//! Written over the `hyper` 1 + `rustls` client the core already uses for SIEM delivery rather than with
//! async-stripe: async-stripe 0.41 brings a second HTTP and TLS stack (hyper 0.14, hyper-rustls 0.24 with
//! rustls 0.21, http-types 2) and a generated API of ~480 files, minutes of compile time on our 2-core builders
//! for three form posts. Requests are form-encoded with bracketed keys (`line_items[0][price]`) and a bearer
//! secret key, exactly as Stripe's API takes them; responses are Stripe's JSON objects. The base URL is
//! configurable (`billing.stripe_api_base`) so tests talk to a local stand-in. The secret key is only ever
//! written into the `Authorization` header, and errors never carry it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::net::TcpStream;
use url::Url;

/// The Stripe API version our requests are written for.
pub const API_VERSION: &str = "2024-06-20";
const TIMEOUT: Duration = Duration::from_secs(20);
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why a Stripe call failed. The text is for logs and is free of secrets; customers see a generic message.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("could not reach Stripe: {0}")]
    Connect(String),
    #[error("Stripe did not answer in time")]
    Timeout,
    #[error("Stripe refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("Stripe's answer was not understood: {0}")]
    Answer(String),
}

/// A created Stripe object we only need the id (and for sessions the URL) of.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    pub id: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// A Stripe API client. Cheap to clone.
#[derive(Clone)]
pub struct StripeClient {
    base: Url,
    key: SecretString,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient").field("base", &self.base.as_str()).field("key", &"[redacted]").finish()
    }
}

impl StripeClient {
    pub fn new(base: Url, key: SecretString) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self { base, key, tls: Arc::new(tls) }
    }

    /// `POST /v1/customers`. The idempotency key makes a retried creation return the same customer.
    pub async fn create_customer(&self, email: &str, name: &str, client_id: &str) -> Result<Created, StripeError> {
        let form = [("email", email), ("name", name), ("metadata[deployclaw_client_id]", client_id)];
        self.post("/v1/customers", &form, Some(&format!("deployclaw-customer-{client_id}"))).await
    }

    /// `POST /v1/checkout/sessions` for a subscription to `price`, for our client `client_id` (its
    /// `client_reference_id`, and metadata on the subscription), reusing `customer`.
    pub async fn create_checkout_session(
        &self,
        customer: &str,
        client_id: &str,
        price: &str,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<Created, StripeError> {
        let form = [
            ("mode", "subscription"),
            ("customer", customer),
            ("client_reference_id", client_id),
            ("line_items[0][price]", price),
            ("line_items[0][quantity]", "1"),
            ("subscription_data[metadata][deployclaw_client_id]", client_id),
            ("success_url", success_url),
            ("cancel_url", cancel_url),
        ];
        self.post("/v1/checkout/sessions", &form, None).await
    }

    /// `POST /v1/billing_portal/sessions`: where the customer manages payment methods, invoices, cancellation.
    pub async fn create_portal_session(&self, customer: &str, return_url: &str) -> Result<Created, StripeError> {
        self.post("/v1/billing_portal/sessions", &[("customer", customer), ("return_url", return_url)], None).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)], idempotency: Option<&str>) -> Result<Created, StripeError> {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let exchange = self.exchange(path, body, idempotency);
        let (status, bytes) = tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| StripeError::Timeout)??;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_else(|| "no error message".into());
            return Err(StripeError::Refused { status, message: crate::scrub::scrub_text(&message).into_owned() });
        }
        let created: Created = serde_json::from_slice(&bytes).map_err(|e| StripeError::Answer(e.to_string()))?;
        if created.url.as_deref().is_some_and(|u| !u.starts_with("https://") && !u.starts_with("http://")) {
            return Err(StripeError::Answer("a session URL that is not http(s)".into()));
        }
        Ok(created)
    }

    async fn exchange(&self, path: &str, body: String, idempotency: Option<&str>) -> Result<(u16, Bytes), StripeError> {
        let host = self.base.host_str().ok_or_else(|| StripeError::Connect("no host in the API base".into()))?;
        let host = host.trim_matches(['[', ']']).to_string();
        let port = self.base.port_or_known_default().unwrap_or(443);
        let tcp =
            TcpStream::connect((host.as_str(), port)).await.map_err(|e| StripeError::Connect(e.kind().to_string()))?;
        let full_path = format!("{}{}", self.base.path().trim_end_matches('/'), path);
        let authority = match self.base.port() {
            Some(p) => format!("{}:{p}", self.base.host_str().unwrap_or_default()),
            None => self.base.host_str().unwrap_or_default().to_string(),
        };
        let request = hyper::Request::post(full_path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.key.expose_secret()))
            .header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(hyper::header::USER_AGENT, concat!("DeployClaw/", env!("CARGO_PKG_VERSION")))
            .header("Stripe-Version", API_VERSION);
        let request = match idempotency {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| StripeError::Connect(e.to_string()))?;
        macro_rules! send {
            ($io:expr) => {{
                let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new($io))
                    .await
                    .map_err(|e| StripeError::Connect(e.to_string()))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let response = sender.send_request(request).await.map_err(|e| StripeError::Connect(e.to_string()))?;
                let status = response.status().as_u16();
                let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| StripeError::Answer(e.to_string()))?
                    .to_bytes();
                Ok((status, bytes))
            }};
        }
        if self.base.scheme() == "https" {
            let name = rustls_pki_types::ServerName::try_from(host)
                .map_err(|_| StripeError::Connect("the host is not a valid TLS server name".into()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| StripeError::Connect(e.to_string()))?;
            send!(tls)
        } else {
            send!(tcp)
        }
    }
}
