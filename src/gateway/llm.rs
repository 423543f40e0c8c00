//! The LLM gateway: model calls on an agent's behalf, with the provider key it never holds, counted against
//! its daily spend cap (DESIGN.md invariants 3 and 8).
//!
//! It answers on the agent's own egress listener (the same address and port as the proxy, see
//! [`super::proxy`]): an origin-form request (`POST /v1/chat/completions`) is a model call, everything else
//! is proxy traffic. Two routes:
//!
//! - `POST /v1/chat/completions` - OpenAI's wire format, streaming included;
//! - `POST /v1/messages` - Anthropic's.
//!
//! The agent authenticates with its gateway token (as `Authorization: Bearer`, `x-api-key`, or the proxy's
//! Basic credentials), which agents get as `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` next to base URLs pointing
//! here; stock SDKs work unchanged. For each call, in order: the token, a JSON body with a priced `model`,
//! the day's spend against the cap (`402` when reached, before the provider is called), the provider key
//! from the vault (decryption audited; kept in memory for at most [`KEY_CACHE_TTL`]), then the call. The
//! answer streams back as it arrives while its usage is read from it ([`usage`]); when it ends, the cost is
//! added to the day's spend, the call is audited (`gateway.llm_call`: model, tokens, cost - never text) and
//! budget alerts go out at 50, 80 and 100 % of the cap, by email to the client's owners and admins and in the
//! audit trail.
//!
//! The cap is the lower of the agent's own daily cap and its client's plan's (`billing::plan_limits`).
//!
//! Calls already under way when the cap is reached still finish: the cap can be passed by at most the cost
//! of the calls in flight at that moment (at most `max_connections_per_agent`).

mod accounting;
mod prefixed;
mod provider;
pub mod spend;
pub mod upstream;
pub mod usage;

use accounting::Meter;
pub use provider::Provider;
use provider::{error_response, inspect_body, passes_back};

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use secrecy::{ExposeSecret, SecretSlice};
use tokio::net::TcpStream;
use url::Url;

use self::upstream::Upstream;
use self::usage::UsageScanner;
use super::permissions::format_usd as usd;
use super::pricing::{ModelPrice, PriceTable};
use super::store;
use crate::audit::Actor;
use crate::db::{AgentId, ClientId, Db};
use crate::mail::Mailer;
use crate::vault::{CredentialName, DecryptPurpose, Vault, VaultError};

/// Largest request body an agent may send.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// How long a decrypted provider key stays in memory for further calls (then it is zeroized).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long what a call is admitted on (the agent's token hash, cap and the day's spend) is reused before it
/// is read again: permission and cap changes reach the gateway within this time, without a restart.
pub const ADMISSION_TTL: Duration = Duration::from_secs(1);
/// How long an agent has to send a request head on a kept-alive connection.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The Anthropic API version sent when the agent names none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The LLM gateway's settings, from `[gateway]` in the configuration.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub openai_base_url: Url,
    pub anthropic_base_url: Url,
    pub prices: PriceTable,
    pub connect_timeout: Duration,
    /// From sending the request to the provider's answer head.
    pub answer_timeout: Duration,
    /// Silence in a streaming answer after which it is cut.
    pub idle_timeout: Duration,
    /// The billing plans: a client's plan caps each agent's daily spend too (the lower cap wins). Required:
    /// a gateway cannot be built that forgets them (with billing off the self-hosted plan's cap applies).
    pub plans: crate::plans::Catalog,
}

impl LlmSettings {
    /// The gateway's settings with the plans whose caps apply.
    pub fn from_config(c: &super::config::GatewayConfig, plans: crate::plans::Catalog) -> Self {
        Self {
            openai_base_url: c.openai_base_url.clone(),
            anthropic_base_url: c.anthropic_base_url.clone(),
            prices: c.prices.clone(),
            connect_timeout: c.connect_timeout,
            answer_timeout: c.llm_answer_timeout,
            idle_timeout: c.idle_timeout,
            plans,
        }
    }
}

type Body = UnsyncBoxBody<Bytes, BoxError>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct LlmGateway {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    vault: Vault,
    mailer: Option<Mailer>,
    settings: LlmSettings,
    openai: Upstream,
    anthropic: Upstream,
    keys: Mutex<HashMap<(AgentId, Provider), CachedKey>>,
    admissions: Mutex<HashMap<AgentId, Admission>>,
}

/// What a call is admitted on, read from the database at most every [`ADMISSION_TTL`]; the spend is also
/// moved forward by this process's own accounting as it happens.
#[derive(Debug, Clone)]
struct Admission {
    token_hash: Option<Vec<u8>>,
    cap_micro_usd: u64,
    day: chrono::NaiveDate,
    spent_micro_usd: u64,
    read_at: Instant,
}

struct CachedKey {
    key: SecretSlice<u8>,
    until: Instant,
}

impl std::fmt::Debug for LlmGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmGateway").field("models", &self.inner.settings.prices.len()).finish_non_exhaustive()
    }
}

/// A refusal: the status and the message the agent reads (in its provider's error format).
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

fn refuse(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status, kind, message: message.into() }
}

/// What one call was, for its accounting and audit event.
#[derive(Debug, Clone)]
struct Call {
    client: ClientId,
    agent: AgentId,
    provider: Provider,
    model: String,
    stream: bool,
    price: Option<ModelPrice>,
    cap_micro_usd: u64,
    request_bytes: u64,
    started: Instant,
}

impl LlmGateway {
    pub fn new(db: Db, vault: Vault, mailer: Option<Mailer>, settings: LlmSettings) -> Result<Self, String> {
        let openai = Upstream::new(settings.openai_base_url.clone(), settings.connect_timeout)?;
        let anthropic = Upstream::new(settings.anthropic_base_url.clone(), settings.connect_timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                vault,
                mailer,
                settings,
                openai,
                anthropic,
                keys: Mutex::default(),
                admissions: Mutex::default(),
            }),
        })
    }

    /// Serves model calls on an agent connection whose first request head (`head`, with whatever followed
    /// it) was already read by the proxy. Keep-alive: further requests on the connection are calls too.
    pub(crate) async fn serve(&self, client: ClientId, agent: AgentId, stream: TcpStream, head: Vec<u8>) {
        let io = TokioIo::new(prefixed::Prefixed::new(head, stream));
        let gateway = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let gateway = gateway.clone();
            async move { Ok::<_, Infallible>(gateway.call(client, agent, req).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .serve_connection(io, service);
        if let Err(e) = connection.await {
            tracing::debug!(%agent, error = %e, "LLM gateway connection ended");
        }
    }

    /// Forgets what is cached for the agent: its provider keys and admission (on stop or delete).
    pub fn forget(&self, agent: AgentId) {
        self.inner.keys.lock().unwrap_or_else(|e| e.into_inner()).retain(|(a, _), _| *a != agent);
        self.inner.admissions.lock().unwrap_or_else(|e| e.into_inner()).remove(&agent);
    }

    /// Drops the cached admission, so the next call reads the agent's permissions and spend again.
    pub fn forget_admission(&self, agent: AgentId) {
        self.inner.admissions.lock().unwrap_or_else(|e| e.into_inner()).remove(&agent);
    }

    /// The agent's admission: cached when fresh and of today, else read (token, cap, today's spend).
    async fn admission(&self, client: ClientId, agent: AgentId) -> Result<Admission, crate::db::DbError> {
        let today = spend::today();
        let cached = self.inner.admissions.lock().unwrap_or_else(|e| e.into_inner()).get(&agent).cloned();
        if let Some(a) = cached.filter(|a| a.day == today && a.read_at.elapsed() < ADMISSION_TTL) {
            return Ok(a);
        }
        let identity = store::identity(&self.inner.db, client, agent).await?;
        let spent = spend::day(&self.inner.db, client, agent, today).await?.spent_micro_usd;
        let plan = crate::plans::limits_of(&self.inner.db, &self.inner.settings.plans, client).await?;
        let cap = identity.permissions.max_daily_token_spend_micro_usd.micro().min(plan.daily_token_cap_micro_usd);
        let admission = Admission {
            token_hash: identity.token_hash,
            cap_micro_usd: cap,
            day: today,
            spent_micro_usd: spent,
            read_at: Instant::now(),
        };
        self.inner.admissions.lock().unwrap_or_else(|e| e.into_inner()).insert(agent, admission.clone());
        Ok(admission)
    }

    /// This process just recorded a day's new total for the agent: the next admission sees it at once.
    fn note_spend(&self, agent: AgentId, day: chrono::NaiveDate, total: u64) {
        if let Some(a) = self.inner.admissions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&agent) {
            if a.day == day {
                a.spent_micro_usd = a.spent_micro_usd.max(total);
            }
        }
    }

    async fn call(&self, client: ClientId, agent: AgentId, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let provider = Provider::route(req.uri().path());
        let error_format = provider.unwrap_or(Provider::OpenAi);
        match self.prepare(client, agent, provider, req, started).await {
            Ok((call, upstream_request)) => match self.forward(call.clone(), upstream_request).await {
                Ok(response) => response,
                Err(refusal) => {
                    self.record(&call, refusal.status, None, Some(&refusal.message), 0).await;
                    error_response(call.provider, &refusal)
                }
            },
            Err((refusal, call)) => {
                let call = call.unwrap_or(Call {
                    client,
                    agent,
                    provider: error_format,
                    model: String::new(),
                    stream: false,
                    price: None,
                    cap_micro_usd: 0,
                    request_bytes: 0,
                    started,
                });
                self.record(&call, refusal.status, None, Some(&refusal.message), 0).await;
                error_response(error_format, &refusal)
            }
        }
    }

    /// Everything before the provider is called: route, token, body, price, cap, key.
    async fn prepare(
        &self,
        client: ClientId,
        agent: AgentId,
        provider: Option<Provider>,
        req: Request<Incoming>,
        started: Instant,
    ) -> Result<(Call, Request<Full<Bytes>>), (Refusal, Option<Call>)> {
        let provider = provider.ok_or_else(|| {
            (
                refuse(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "the gateway serves POST /v1/chat/completions and POST /v1/messages",
                ),
                None,
            )
        })?;
        if req.method() != hyper::Method::POST {
            return Err((refuse(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "use POST"), None));
        }
        let admission = self.admission(client, agent).await.map_err(|e| match e {
            crate::db::DbError::NotFound => {
                (refuse(StatusCode::UNAUTHORIZED, "authentication_error", "invalid gateway token"), None)
            }
            _ => (
                refuse(StatusCode::SERVICE_UNAVAILABLE, "api_error", "the gateway cannot read the agent's settings"),
                None,
            ),
        })?;
        if !super::token::matches(admission.token_hash.as_deref(), super::token::from_headers(req.headers()).as_deref())
        {
            return Err((refuse(StatusCode::UNAUTHORIZED, "authentication_error", "invalid gateway token"), None));
        }
        let (parts, body) = req.into_parts();
        let body = Limited::new(body, MAX_REQUEST_BYTES).collect().await.map_err(|e| {
            let refusal = if e.is::<http_body_util::LengthLimitError>() {
                refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request_error",
                    format!("the request body is over {MAX_REQUEST_BYTES} bytes"),
                )
            } else {
                refuse(StatusCode::BAD_REQUEST, "invalid_request_error", "the request body could not be read")
            };
            (refusal, None)
        })?;
        let body = body.to_bytes();
        let mut call = Call {
            client,
            agent,
            provider,
            model: String::new(),
            stream: false,
            price: None,
            cap_micro_usd: admission.cap_micro_usd,
            request_bytes: body.len() as u64,
            started,
        };
        let (model, stream, body) = match inspect_body(provider, body) {
            Ok(parsed) => parsed,
            Err(refusal) => return Err((refusal, Some(call))),
        };
        call.model = model;
        call.stream = stream;
        call.request_bytes = body.len() as u64;
        let Some(price) = self.inner.settings.prices.price(&call.model) else {
            let message = format!(
                "model {:?} has no price in this platform's price table, so its cost could not be counted against the agent's cap",
                call.model
            );
            return Err((refuse(StatusCode::BAD_REQUEST, "invalid_request_error", message), Some(call)));
        };
        call.price = Some(price);
        if call.cap_micro_usd == 0 {
            let message = "this agent has no daily model budget: set a daily spend cap on its Permissions card";
            return Err((refuse(StatusCode::PAYMENT_REQUIRED, "budget_exceeded", message), Some(call)));
        }
        let spent = admission.spent_micro_usd;
        if spent >= call.cap_micro_usd {
            let message = format!(
                "the agent's daily model budget is used up ({} of {} USD today, UTC); it resets at 00:00 UTC",
                usd(spent),
                usd(call.cap_micro_usd)
            );
            return Err((refuse(StatusCode::PAYMENT_REQUIRED, "budget_exceeded", message), Some(call)));
        }
        let key = match self.key(client, agent, provider).await {
            Ok(key) => key,
            Err(refusal) => return Err((refusal, Some(call))),
        };
        let request = self.upstream_request(provider, &parts.headers, body, &key);
        drop(key);
        Ok((call, request))
    }

    /// The provider key, from the cache or the vault (audited).
    async fn key(&self, client: ClientId, agent: AgentId, provider: Provider) -> Result<SecretSlice<u8>, Refusal> {
        let now = Instant::now();
        {
            let mut keys = self.inner.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.retain(|_, k| k.until > now);
            if let Some(k) = keys.get(&(agent, provider)) {
                return Ok(k.key.expose_secret().to_vec().into());
            }
        }
        let name = CredentialName::parse(provider.credential_name()).expect("provider credential names are valid");
        let purpose = DecryptPurpose::ProviderCall { provider: provider.as_str().into() };
        match self.inner.vault.decrypt(Actor::Agent(agent), client, agent, &name, purpose).await {
            Ok(key) => {
                let copy: SecretSlice<u8> = key.expose_secret().to_vec().into();
                self.inner
                    .keys
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((agent, provider), CachedKey { key, until: now + KEY_CACHE_TTL });
                Ok(copy)
            }
            Err(VaultError::NotFound) => Err(refuse(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!(
                    "this agent has no {} credential: add the provider key in its vault",
                    provider.credential_name()
                ),
            )),
            Err(e) => {
                tracing::error!(%agent, error = %e, "LLM gateway: provider key unavailable");
                Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "api_error", "the provider key could not be opened"))
            }
        }
    }

    fn upstream(&self, provider: Provider) -> &Upstream {
        match provider {
            Provider::OpenAi => &self.inner.openai,
            Provider::Anthropic => &self.inner.anthropic,
        }
    }

    /// The provider's request: the body, a short list of the agent's headers, and the real key.
    fn upstream_request(
        &self,
        provider: Provider,
        agent_headers: &HeaderMap,
        body: Bytes,
        key: &SecretSlice<u8>,
    ) -> Request<Full<Bytes>> {
        let upstream = self.upstream(provider);
        let mut builder = Request::post(upstream.path(provider.path()))
            .header(hyper::header::HOST, upstream.authority())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT_ENCODING, "identity")
            .header(hyper::header::USER_AGENT, concat!("deployclaw-gateway/", env!("CARGO_PKG_VERSION")));
        for name in ["accept", "anthropic-beta", "openai-beta", "idempotency-key"] {
            if let Some(v) = agent_headers.get(name) {
                builder = builder.header(name, v.clone());
            }
        }
        let mut secret = match provider {
            Provider::OpenAi => {
                let mut v = b"Bearer ".to_vec();
                v.extend_from_slice(key.expose_secret());
                HeaderValue::from_bytes(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
            }
            Provider::Anthropic => {
                let version = agent_headers
                    .get("anthropic-version")
                    .cloned()
                    .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION));
                builder = builder.header("anthropic-version", version);
                HeaderValue::from_bytes(key.expose_secret()).unwrap_or_else(|_| HeaderValue::from_static(""))
            }
        };
        secret.set_sensitive(true);
        let auth_header = match provider {
            Provider::OpenAi => hyper::header::AUTHORIZATION,
            Provider::Anthropic => HeaderName::from_static("x-api-key"),
        };
        let mut request = builder.body(Full::new(body)).expect("the request parts are valid");
        request.headers_mut().insert(auth_header, secret);
        request
    }

    /// Calls the provider and streams its answer back, metered.
    async fn forward(&self, call: Call, request: Request<Full<Bytes>>) -> Result<Response<Body>, Refusal> {
        let upstream = self.upstream(call.provider).clone();
        let mut lease = upstream.lease().await.map_err(|e| {
            tracing::warn!(provider = call.provider.as_str(), error = %e, "LLM gateway: provider unreachable");
            refuse(StatusCode::BAD_GATEWAY, "api_error", e.to_string())
        })?;
        let answer = tokio::time::timeout(self.inner.settings.answer_timeout, lease.send(request))
            .await
            .map_err(|_| refuse(StatusCode::GATEWAY_TIMEOUT, "api_error", "the provider did not answer in time"))?
            .map_err(|_| refuse(StatusCode::BAD_GATEWAY, "api_error", "the provider closed the connection"))?;
        let (parts, incoming) = answer.into_parts();
        let event_stream = parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut response = Response::builder().status(parts.status);
        for (name, value) in parts.headers.iter() {
            if passes_back(name) {
                response = response.header(name, value);
            }
        }
        let scanner = UsageScanner::new(call.provider, event_stream);
        let meter = Meter {
            gateway: self.clone(),
            call,
            status: parts.status,
            scanner: Some(scanner),
            lease: Some(lease),
            ended: false,
        };
        let idle = self.inner.settings.idle_timeout;
        let frames = futures_util::stream::unfold((incoming, meter), move |(mut incoming, mut meter)| async move {
            if meter.ended {
                return None;
            }
            match tokio::time::timeout(idle, incoming.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        meter.feed(data);
                    }
                    Some((Ok::<_, BoxError>(frame), (incoming, meter)))
                }
                Ok(None) => {
                    meter.end();
                    None
                }
                Ok(Some(Err(e))) => Some((Err(Box::new(e) as BoxError), (incoming, meter.cut()))),
                Err(_) => Some((Err("the provider stopped sending".into()), (incoming, meter.cut()))),
            }
        });
        let body = StreamBody::new(frames).boxed_unsync();
        Ok(response.body(body).expect("the answer parts are valid"))
    }
}
