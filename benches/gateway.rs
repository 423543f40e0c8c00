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
use deployclaw::context::RequestContext;
use deployclaw::db::agents::{self as agent_rows, AgentName, AgentStatus};
use deployclaw::db::clients::{self, ClientName, NewClient};
use deployclaw::email::EmailAddress;
use deployclaw::gateway::pricing::{ModelPrice, PriceTable};
use deployclaw::gateway::{EgressProxy, LlmGateway, LlmSettings, Permissions, PermissionsInput, ProxySettings};
use deployclaw::identity::fresh::FreshTwoFactor;
use deployclaw::identity::session::{SessionAuth, Stage};
use deployclaw::keys::keyring::{KeyVersion, Keyring, MasterKey};
use deployclaw::runtime::subnets::Pool;
use deployclaw::vault::{CredentialName, Vault};
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
    runtime.block_on(streamed_chunks());
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
    let agents = Agents::new(agents_parts(&db, &vault));
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
        plans: unmetered_plans(),
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

/// Chunks of a streamed answer sent by the paced provider: two at a time (as a model emits tokens in bursts),
/// each pair `CHUNK_GAP` after the last.
const CHUNKS: usize = 40;
const CHUNK_GAP: Duration = Duration::from_millis(10);

/// A provider that streams an OpenAI answer in `CHUNKS` server-sent events, one every `CHUNK_GAP`, each
/// carrying its number; records when it wrote each one. One connection at a time, at most four.
async fn paced_provider(sent: Arc<std::sync::Mutex<Vec<Instant>>>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut s, _)) = listener.accept().await else { return };
            s.set_nodelay(true).unwrap();
            // Read the request (head and a small JSON body) before answering.
            let mut buf = vec![0u8; 16 * 1024];
            let mut got = 0;
            loop {
                let n = s.read(&mut buf[got..]).await.unwrap();
                got += n;
                let text = String::from_utf8_lossy(&buf[..got]);
                if n == 0 || text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                    break;
                }
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let chunk = |data: String| format!("{:x}\r\n{data}\r\n", data.len());
            for n in 0..CHUNKS {
                if n % 2 == 0 {
                    tokio::time::sleep(CHUNK_GAP).await;
                }
                let event = format!(
                    "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"<{n}>\"}}}}]}}\n\n"
                );
                s.write_all(chunk(event).as_bytes()).await.unwrap();
                sent.lock().unwrap().push(Instant::now());
            }
            let usage = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":40,\"total_tokens\":50}}\n\ndata: [DONE]\n\n";
            s.write_all(chunk(usage.to_string()).as_bytes()).await.unwrap();
            s.write_all(b"0\r\n\r\n").await.unwrap();
        }
    });
    addr
}

/// A streamed model answer through the gateway, read by the agent side: how long after the provider wrote each
/// chunk it arrived. Same run, same gateway code, once with TCP_NODELAY on the agent's socket (as served) and
/// once with Nagle's algorithm turned back on (the baseline).
async fn streamed_chunks() {
    println!();
    println!(
        "streamed answer: {CHUNKS} chunks, two every {} ms from the provider, through the gateway",
        CHUNK_GAP.as_millis()
    );
    for nagle in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig {
            target: DatabaseTarget::Sqlite { path: dir.path().join("stream.db") },
            max_connections: 4,
            connect_timeout: Duration::from_secs(10),
        };
        let db = deployclaw::db::Db::connect(&config).await.unwrap();
        db.migrate().await.unwrap();
        let keyring = Keyring::new([(KeyVersion(1), MasterKey::generate())], "bench").unwrap();
        let vault = Vault::new(db.clone(), keyring);
        let agents = Agents::new(agents_parts(&db, &vault));
        let ctx = RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: None };
        let email = EmailAddress::parse("owner@stream-bench.example").unwrap();
        let client =
            clients::create(&db, NewClient { name: ClientName::parse("stream").unwrap(), email }).await.unwrap().id;
        let agent = agents
            .configure(Actor::Platform, client, AgentName::parse("stream").unwrap(), "test-agent", &ctx)
            .await
            .unwrap();
        let token = format!("dca_bench_{}", uuid::Uuid::now_v7().simple());
        let hash = Sha256::digest(token.as_bytes()).to_vec();
        agent_rows::set_runtime_state(&db, client, agent.id, AgentStatus::Running, Some("c"), None, Some(&hash))
            .await
            .unwrap();
        let cap = PermissionsInput { max_daily_token_spend_usd: "100".into(), ..Default::default() };
        agents
            .update_permissions(Actor::Platform, client, agent.id, Permissions::parse(&cap).unwrap(), &ctx)
            .await
            .unwrap();
        let now = deployclaw::db::now();
        let user = deployclaw::db::UserId::new();
        let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: client, user_id: user }, &ctx, now);
        auth.second_factor_passed(client, user, now);
        let proof = FreshTwoFactor::from_session(&auth, now).unwrap();
        let name = CredentialName::parse("openai_api_key").unwrap();
        vault
            .put(Actor::Platform, client, agent.id, &name, b"sk-paced-NOTREAL".to_vec().into(), &proof, None)
            .await
            .unwrap();

        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let provider = paced_provider(sent.clone()).await;
        let base: url::Url = format!("http://{provider}/v1").parse().unwrap();
        let prices =
            PriceTable::new([("gpt-4o".to_string(), ModelPrice::parse("2.50", "10.00").unwrap())].into()).unwrap();
        let settings = LlmSettings {
            openai_base_url: base.clone(),
            anthropic_base_url: base,
            prices,
            connect_timeout: Duration::from_secs(5),
            answer_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            plans: unmetered_plans(),
        };
        let llm = LlmGateway::new(db.clone(), vault, None, settings).unwrap();
        let on_accept = nagle.then(|| {
            deployclaw::gateway::proxy::AcceptObserver(Arc::new(|s: &tokio::net::TcpStream| {
                s.set_nodelay(false).unwrap()
            }))
        });
        let proxy = EgressProxy::with_llm(db.clone(), ProxySettings { on_accept, ..ProxySettings::default() }, llm);
        let addr = proxy.listen(client, agent.id, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();

        let body = serde_json::json!({"model": "gpt-4o", "stream": true, "max_tokens": 64,
            "messages": [{"role": "user", "content": "Count."}]})
        .to_string();
        let mut conn = connect(addr).await;
        let req = hyper::Request::post("/v1/chat/completions")
            .header("host", "gateway")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(30), conn.send_request(req)).await.unwrap().unwrap();
        assert_eq!(res.status(), 200, "the streamed call is answered");
        let mut body = res.into_body();
        let mut text = String::new();
        let mut arrived = vec![None; CHUNKS];
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame()).await.unwrap() {
            let Ok(data) = frame.unwrap().into_data() else { continue };
            let at = Instant::now();
            text.push_str(&String::from_utf8_lossy(&data));
            for (n, slot) in arrived.iter_mut().enumerate() {
                if slot.is_none() && text.contains(&format!("<{n}>")) {
                    *slot = Some(at);
                }
            }
        }
        let sent = sent.lock().unwrap().clone();
        let mut delays: Vec<Duration> = arrived
            .iter()
            .zip(&sent)
            .map(|(a, s)| a.expect("every chunk arrived").saturating_duration_since(*s))
            .collect();
        delays.sort_unstable();
        println!(
            "{:>24}: chunk delay provider -> agent p50 {}  p90 {}  max {}",
            if nagle { "baseline, Nagle on" } else { "TCP_NODELAY (served)" },
            ms(percentile(&delays, 0.5)),
            ms(percentile(&delays, 0.9)),
            ms(*delays.last().unwrap())
        );
    }
}

/// Billing off, with the self-hosted plan's daily cap lifted: the bench measures the gateway, not the cap.
fn unmetered_plans() -> deployclaw::plans::Catalog {
    let mut plans = deployclaw::plans::default_plans();
    for plan in &mut plans {
        plan.daily_token_cap_micro_usd = u64::MAX / 4;
    }
    deployclaw::plans::Catalog::new(plans, false)
}

fn agents_parts(db: &deployclaw::db::Db, vault: &Vault) -> deployclaw::agents::AgentsParts {
    deployclaw::agents::AgentsParts {
        db: db.clone(),
        vault: vault.clone(),
        runtime: None,
        pool: Pool::parse("10.219.0.0/24").unwrap(),
        templates: Default::default(),
        plans: unmetered_plans(),
        gateway: None,
    }
}
