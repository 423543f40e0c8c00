//! LLM gateway benchmark: the latency the gateway adds to a model call, measured side by side with calling
//! the provider stand-in directly, in one run, at a fixed offered load (default 1,000 requests/s to each
//! path, open loop: a request is sent every millisecond whether or not earlier ones finished). Each request is
//! a non-streaming OpenAI chat completion over a kept-alive HTTP/1.1 connection; the gateway path includes
//! the token check, the spend read, the provider key (decrypted once, then cached), and, after each answer,
//! the spend update and the audit event. SQLite, like the embedded default. Run:
//! `cargo bench -p deployclaw --bench gateway` (`GATEWAY_BENCH_RPS`, `GATEWAY_BENCH_SECS` to change the load).
//!
//! Traffic: 127.0.0.1 only (the stand-in and the gateway's test listener). Bounded: RPS x SECS requests per
//! path, each with a 10 s timeout.

#[path = "../tests/it/providers.rs"]
mod providers;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use deployclaw::agents::Agents;
use deployclaw::audit::Actor;
use deployclaw::config::{DatabaseConfig, DatabaseTarget};
use deployclaw::db::agents::{self as agent_rows, AgentName, AgentStatus};
use deployclaw::db::clients::{self, ClientName, NewClient};
use deployclaw::email::EmailAddress;
use deployclaw::gateway::llm::pricing::{ModelPrice, PriceTable};
use deployclaw::gateway::{EgressProxy, LlmGateway, LlmSettings, Permissions, PermissionsInput, ProxySettings};
use deployclaw::identity::session::{SessionAuth, Stage};
use deployclaw::identity::sign_in::RequestContext;
use deployclaw::runtime::subnets::Pool;
use deployclaw::vault::keyring::{KeyVersion, Keyring, MasterKey};
use deployclaw::vault::{CredentialName, FreshTwoFactor, Vault};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use providers::{Reply, StandIn};

const CONNECTIONS: usize = 32;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

/// Kept-alive connections to one address; a request takes any idle one.
struct Conns {
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Conns {
    async fn new(addr: SocketAddr) -> Arc<Self> {
        let mut idle = Vec::new();
        for _ in 0..CONNECTIONS {
            idle.push(connect(addr).await);
        }
        Arc::new(Self { addr, idle: Mutex::new(idle) })
    }

    /// One call; its latency (send to last body byte), or `None` on a non-200 or an error.
    async fn call(&self, headers: &[(&str, String)], body: Bytes) -> Option<Duration> {
        let mut sender = match self.idle.lock().await.pop() {
            Some(s) => s,
            None => connect(self.addr).await,
        };
        let mut req = hyper::Request::post("/v1/chat/completions").header("host", self.addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let start = Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(10), async {
            sender.ready().await.ok()?;
            let res = sender.send_request(req.body(Full::new(body)).unwrap()).await.ok()?;
            let ok = res.status() == 200;
            res.into_body().collect().await.ok()?;
            ok.then_some(())
        })
        .await;
        let took = start.elapsed();
        if matches!(res, Ok(Some(()))) {
            self.idle.lock().await.push(sender);
            Some(took)
        } else {
            None
        }
    }
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn bench() {
    let rps: u64 = std::env::var("GATEWAY_BENCH_RPS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000).clamp(1, 5000);
    let secs: u64 = std::env::var("GATEWAY_BENCH_SECS").ok().and_then(|n| n.parse().ok()).unwrap_or(10).clamp(1, 60);

    let dir = tempfile::tempdir().unwrap();
    let config = DatabaseConfig {
        target: DatabaseTarget::Sqlite { path: dir.path().join("bench.db") },
        max_connections: 16,
        connect_timeout: Duration::from_secs(10),
    };
    let db = deployclaw::db::Db::connect(&config).await.unwrap();
    db.migrate().await.unwrap();
    let keyring = Keyring::new([(KeyVersion(1), MasterKey::generate())], "bench").unwrap();
    let vault = Vault::new(db.clone(), keyring);
    let agents = Agents::new(db.clone(), vault.clone(), None, Pool::parse("10.219.0.0/24").unwrap());
    let ctx = RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: None };
    let email = EmailAddress::parse("owner@gateway-bench.example").unwrap();
    let client = clients::create(&db, NewClient { name: ClientName::parse("bench").unwrap(), email }).await.unwrap().id;
    let agent = agents
        .configure(Actor::Platform, client, AgentName::parse("bench").unwrap(), "test-agent", &ctx)
        .await
        .unwrap();
    let token = format!("dca_bench_{}", uuid::Uuid::now_v7().simple());
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    agent_rows::set_runtime_state(&db, client, agent.id, AgentStatus::Running, Some("c"), None, Some(&hash))
        .await
        .unwrap();
    let cap = PermissionsInput { max_daily_token_spend_usd: "100000".into(), ..Default::default() };
    agents
        .update_permissions(Actor::Platform, client, agent.id, Permissions::parse(&cap).unwrap(), &ctx)
        .await
        .unwrap();

    let key = format!("sk-standin-NOTREAL-{}", uuid::Uuid::now_v7().simple());
    let now = deployclaw::db::now();
    let user = deployclaw::db::UserId::new();
    let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: client, user_id: user }, &ctx, now);
    auth.second_factor_passed(client, user, now);
    let proof = FreshTwoFactor::from_session(&auth, now).unwrap();
    let name = CredentialName::parse("openai_api_key").unwrap();
    vault.put(Actor::Platform, client, agent.id, &name, key.as_bytes().to_vec().into(), &proof, None).await.unwrap();

    let standin = StandIn::start(&key, Reply::default()).await;
    let prices = PriceTable::new([("gpt-4o".to_string(), ModelPrice::parse("2.50", "10.00").unwrap())].into()).unwrap();
    let settings = LlmSettings {
        openai_base_url: standin.base_url(),
        anthropic_base_url: standin.base_url(),
        prices,
        connect_timeout: Duration::from_secs(5),
        answer_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        plans: None,
    };
    let llm = LlmGateway::new(db.clone(), vault, None, settings).unwrap();
    let proxy = EgressProxy::with_llm(db.clone(), ProxySettings::default(), llm);
    let gateway_addr = proxy.listen(client, agent.id, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();

    let body = Bytes::from(
        serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello in five words."}]})
            .to_string(),
    );
    let direct_headers = vec![("authorization", format!("Bearer {key}")), ("content-type", "application/json".into())];
    let gateway_headers =
        vec![("authorization", format!("Bearer {token}")), ("content-type", "application/json".into())];
    let direct = Conns::new(standin.addr).await;
    let via = Conns::new(gateway_addr).await;

    // Warm-up: the key decryption, the pools, the page cache.
    for _ in 0..200 {
        direct.call(&direct_headers, body.clone()).await.expect("direct warm-up");
        via.call(&gateway_headers, body.clone()).await.expect("gateway warm-up");
    }

    let total = rps * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rps);
    let direct_headers = Arc::new(direct_headers);
    let gateway_headers = Arc::new(gateway_headers);
    let mut tasks = Vec::with_capacity(total as usize);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        // Alternate which path goes first, so neither is favoured by the order.
        let (d, g) = (direct.clone(), via.clone());
        let (dh, gh, b) = (direct_headers.clone(), gateway_headers.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let dl = d.call(&dh, b.clone()).await;
                (dl, g.call(&gh, b).await)
            } else {
                let gl = g.call(&gh, b.clone()).await;
                (d.call(&dh, b).await, gl)
            }
        }));
    }
    let offered = started.elapsed();
    let (mut d_lat, mut g_lat, mut failures) = (Vec::new(), Vec::new(), 0usize);
    for t in tasks {
        let (d, g) = t.await.unwrap();
        match d {
            Some(l) => d_lat.push(l),
            None => failures += 1,
        }
        match g {
            Some(l) => g_lat.push(l),
            None => failures += 1,
        }
    }
    let wall = started.elapsed();
    d_lat.sort_unstable();
    g_lat.sort_unstable();
    println!(
        "offered {rps} requests/s to each path for {secs} s ({total} each; sent in {:.2} s, all answered in {:.2} s), {failures} failed",
        offered.as_secs_f64(),
        wall.as_secs_f64()
    );
    for (name, lat) in [("direct to the stand-in", &d_lat), ("through the gateway", &g_lat)] {
        println!(
            "{name:>24}: p50 {}  p90 {}  p99 {}  max {}  ({} ok, {:.0} answers/s)",
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.9)),
            ms(percentile(lat, 0.99)),
            ms(*lat.last().unwrap()),
            lat.len(),
            lat.len() as f64 / wall.as_secs_f64()
        );
    }
    let added = |p: f64| percentile(&g_lat, p).saturating_sub(percentile(&d_lat, p));
    println!("{:>24}: p50 {}  p99 {}", "added by the gateway", ms(added(0.5)), ms(added(0.99)));
    // Everything the gateway answered was accounted: calls in the spend table match (after a moment).
    let start = Instant::now();
    let expected = (g_lat.len() + 200) as u64;
    loop {
        let s = deployclaw::gateway::llm::spend::day(&db, client, agent.id, deployclaw::gateway::llm::spend::today())
            .await
            .unwrap();
        if s.calls >= expected || start.elapsed() > Duration::from_secs(30) {
            println!(
                "{:>24}: {} of {expected} calls in the spend table, {} micro-USD",
                "accounted", s.calls, s.spent_micro_usd
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
