//! The LLM gateway: model calls with the provider key from the vault, usage priced and counted against the
//! daily cap, refusals that never reach the provider, budget alerts by real SMTP - on 127.0.0.1 against the
//! provider stand-ins (both backends), and from inside a real test-agent container (SQLite).
//!
//! Network safety: the stand-ins and the gateway listen on 127.0.0.1; from inside the container the only
//! address contacted is the agent network's own gateway, after its address was route-checked. Every loop is
//! bounded in count and time.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deployclaw::agents::{Agents, AgentsParts};
use deployclaw::audit::{self, Actor};
use deployclaw::db::users::{self, Role};
use deployclaw::db::{AgentId, ClientId, Db};
use deployclaw::email::EmailAddress;
use deployclaw::gateway::llm::spend;
use deployclaw::gateway::pricing::{ModelPrice, PriceTable};
use deployclaw::gateway::{
    EgressProxy, LlmGateway, LlmSettings, Permissions, PermissionsInput, Provider, ProxySettings,
};
use deployclaw::mail::Mailer;
use deployclaw::runtime::subnets::Pool;
use deployclaw::vault::{CredentialName, Vault};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use secrecy::SecretSlice;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::gateway::{agent_json, agent_with_token, ctx};
use crate::mail::SmtpServer;
use crate::providers::{Reply, StandIn};
use crate::support::{agents_parts, db_test, eventually, fresh_proof, new_client, test_keyring, TestDb, Which};

/// gpt-4o at 2.50 / 10.00 USD per million: the stand-in's 1,000 in + 500 out cost 7,500 micro-dollars.
const OPENAI_CALL: u64 = 7_500;
/// claude-sonnet-4 at 3 / 15: (1,000 + 200 cached) in + 500 out = 3,600 + 7,500.
const ANTHROPIC_CALL: u64 = 11_100;
/// Words of the prompt: they must never be stored.
const PROMPT: &str = "zebra-quartz-lantern confidential plan";

fn prices() -> PriceTable {
    PriceTable::new(
        [
            ("gpt-4o".to_string(), ModelPrice::parse("2.50", "10.00").unwrap()),
            ("claude-sonnet-4".to_string(), ModelPrice::parse("3.00", "15.00").unwrap()),
        ]
        .into(),
    )
    .unwrap()
}

fn cap(usd: &str) -> Permissions {
    Permissions::parse(&PermissionsInput { max_daily_token_spend_usd: usd.into(), ..Default::default() }).unwrap()
}

/// An agent with a token, both provider keys in its vault, its cap, and the gateway listening for it.
struct Llm {
    db: Db,
    agents: Agents,
    vault: Vault,
    client: ClientId,
    agent: AgentId,
    token: String,
    key: String,
    addr: SocketAddr,
    standin: StandIn,
}

async fn llm(db: &Db, cap_usd: &str, mailer: Option<Mailer>) -> Llm {
    llm_with(db, cap_usd, mailer, deployclaw::plans::Catalog::self_hosted()).await
}

async fn llm_with(db: &Db, cap_usd: &str, mailer: Option<Mailer>, plans: deployclaw::plans::Catalog) -> Llm {
    let key = format!("sk-standin-NOTREAL-{}", uuid::Uuid::now_v7().simple());
    let standin = StandIn::start(&key, Reply { cache_read_tokens: 200, ..Reply::default() }).await;
    let vault = Vault::new(db.clone(), test_keyring(&[1]));
    let settings = LlmSettings {
        openai_base_url: standin.base_url(),
        anthropic_base_url: standin.base_url(),
        prices: prices(),
        connect_timeout: Duration::from_secs(30),
        answer_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        plans,
    };
    let gateway = LlmGateway::new(db.clone(), vault.clone(), mailer, settings).unwrap();
    let proxy = EgressProxy::with_llm(db.clone(), ProxySettings::default(), gateway);
    let pool = Pool::parse("10.219.0.0/24").unwrap();
    let agents =
        Agents::new(AgentsParts { gateway: Some(proxy.clone()), ..agents_parts(db, vault.clone(), None, pool) });
    let client = new_client(db, &format!("modelco{}", &uuid::Uuid::now_v7().simple().to_string()[24..])).await.id;
    let (agent, token) = agent_with_token(db, &agents, client, "caller").await;
    agents.update_permissions(Actor::Platform, client, agent, cap(cap_usd), &ctx()).await.unwrap();
    for p in Provider::ALL {
        let name = CredentialName::parse(p.credential_name()).unwrap();
        let value = SecretSlice::from(key.as_bytes().to_vec());
        vault.put(Actor::Platform, client, agent, &name, value, &fresh_proof(client), None).await.unwrap();
    }
    let addr = proxy.listen(client, agent, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
    Llm { db: db.clone(), agents, vault, client, agent, token, key, addr, standin }
}

struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request to the gateway on a new connection (bounded by 15 s).
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let run = async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = sender.send_request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Answer { status, headers, body: String::from_utf8_lossy(&body).to_string() }
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.expect("the gateway answers within 90 s")
}

fn chat(model: &str, stream: bool) -> Vec<u8> {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]})
        .to_string()
        .into_bytes()
}

async fn openai(l: &Llm, stream: bool) -> Answer {
    let auth = format!("Bearer {}", l.token);
    send(
        l.addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth), ("content-type", "application/json")],
        chat("gpt-4o", stream),
    )
    .await
}

async fn anthropic(l: &Llm, stream: bool) -> Answer {
    let body = json!({"model": "claude-sonnet-4", "max_tokens": 64, "stream": stream,
                      "messages": [{"role": "user", "content": PROMPT}]});
    send(l.addr, "POST", "/v1/messages", &[("x-api-key", &l.token)], body.to_string().into_bytes()).await
}

/// Waits until the day's counters show `calls` calls: accounting runs after the answer ends.
async fn spend_after(l: &Llm, calls: u64) -> spend::DaySpend {
    wait_for_spend(&l.db, l.client, l.agent, calls).await
}

async fn wait_for_spend(db: &Db, client: ClientId, agent: AgentId, calls: u64) -> spend::DaySpend {
    let mut day = spend::DaySpend::default();
    eventually(&format!("{calls} calls accounted"), async || {
        day = spend::day(db, client, agent, spend::today()).await.unwrap();
        day.calls >= calls
    })
    .await;
    day
}

/// The agent's `gateway.llm_call` events (once there are `count`), oldest first.
async fn calls(l: &Llm, count: usize) -> Vec<audit::AuditEvent> {
    recorded_calls(&l.db, l.client, count).await
}

/// The client's events of `action`, oldest first, once there are at least `count`.
async fn events_of(db: &Db, client: ClientId, action: &str, count: usize) -> Vec<audit::AuditEvent> {
    let mut events = Vec::new();
    eventually(&format!("{count} {action} events"), async || {
        events = audit::recent(db, client, None, 500).await.unwrap();
        events.retain(|e| e.action_type == action);
        events.len() >= count
    })
    .await;
    events.reverse();
    events
}

/// Waits for `count` recorded calls of the client: a call is recorded after its spend is added and the
/// gateway's own view of the spend moved, so the next call is admitted on it.
async fn recorded_calls(db: &Db, client: ClientId, count: usize) -> Vec<audit::AuditEvent> {
    events_of(db, client, "gateway.llm_call", count).await
}

/// The client's `gateway.budget_alert` events, once there are `count` (a call raises at most one alert, so
/// the caller's count after waiting for each call's own events is exact).
async fn budget_alerts(l: &Llm, count: usize) -> Vec<audit::AuditEvent> {
    events_of(&l.db, l.client, "gateway.budget_alert", count).await
}

db_test!(openai_calls_carry_the_provider_key_and_are_counted, |t| {
    let l = llm(&t.db, "1.00", None).await;
    let a = openai(&l, false).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["choices"][0]["message"]["content"], "Hello from the stand-in.");
    assert_eq!(a.headers["x-request-id"], "req_standin", "request ids pass back");
    assert!(a.headers.get("set-cookie").is_none(), "provider cookies do not");
    let seen = l.standin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {}", l.key).as_str()), "the real key went");
    assert!(
        seen[0].headers.iter().all(|(_, v)| !v.contains(&l.token)),
        "the agent token did not: {:?}",
        seen[0].headers
    );
    assert_eq!(seen[0].body["messages"][0]["content"], PROMPT, "the body passed unchanged");
    let s = spend_after(&l, 1).await;
    assert_eq!((s.spent_micro_usd, s.input_tokens, s.output_tokens), (OPENAI_CALL, 1000, 500));

    // Streaming: the events pass through, and the gateway asked for the usage chunk it counts.
    let a = openai(&l, true).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(a.body.contains("from the stand-in.") && a.body.ends_with("data: [DONE]\n\n"), "{}", a.body);
    assert_eq!(l.standin.seen()[1].body["stream_options"]["include_usage"], json!(true));
    let s = spend_after(&l, 2).await;
    assert_eq!(s.spent_micro_usd, 2 * OPENAI_CALL);

    let events = calls(&l, 2).await;
    assert_eq!(events.len(), 2);
    // Each call is recorded when its answer ends, so the two may be written in either order.
    let streamed = events.iter().find(|e| e.metadata.0["stream"] == json!(true)).expect("the streamed call");
    let m = &streamed.metadata.0;
    assert_eq!(
        (m["model"].as_str(), m["stream"].as_bool(), m["status"].as_u64()),
        (Some("gpt-4o"), Some(true), Some(200))
    );
    assert_eq!(m["cost_micro_usd"], json!(OPENAI_CALL));
    assert_eq!((m["input_tokens"].as_u64(), m["output_tokens"].as_u64()), (Some(1000), Some(500)));
    assert_eq!(m["usage_estimated"], json!(false));
    assert_eq!(m["spent_today_micro_usd"], json!(2 * OPENAI_CALL));
    assert!(events.iter().all(|e| e.actor_kind == "agent" && e.agent_id == Some(l.agent)));
    // No prompt or answer text, and no key, anywhere in the audit trail.
    let all = audit::recent(&l.db, l.client, None, 500).await.unwrap();
    let dump = serde_json::to_string(&all.iter().map(|e| (&e.target, &e.metadata.0)).collect::<Vec<_>>()).unwrap();
    for secret in ["zebra-quartz", "stand-in.", &l.key, &l.token] {
        assert!(!dump.contains(secret), "{secret:?} in the audit trail");
    }
    // The key was decrypted once (audited, for a provider call) and then reused from memory.
    let decrypted: Vec<_> = all.iter().filter(|e| e.action_type == "credential.decrypted").collect();
    assert_eq!(decrypted.len(), 1, "{decrypted:?}");
    assert_eq!(decrypted[0].metadata.0["purpose"], "provider_call");
    assert_eq!(decrypted[0].metadata.0["provider"], "openai");
});

db_test!(anthropic_calls_get_the_key_and_a_version_and_count_cached_input, |t| {
    let l = llm(&t.db, "1.00", None).await;
    let a = anthropic(&l, false).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["content"][0]["text"], "Hello from the stand-in.");
    let a = anthropic(&l, true).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("event: message_stop"), "{}", a.body);
    let seen = l.standin.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.header("x-api-key"), Some(l.key.as_str()));
        assert_eq!(s.header("anthropic-version"), Some("2023-06-01"), "a default version is sent");
        assert!(s.header("authorization").is_none());
    }
    let s = spend_after(&l, 2).await;
    assert_eq!((s.spent_micro_usd, s.input_tokens, s.output_tokens), (2 * ANTHROPIC_CALL, 2400, 1000));
});

db_test!(refused_calls_never_reach_the_provider_and_are_audited, |t| {
    let l = llm(&t.db, "1.00", None).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let good = bearer(&l.token);
    let wrong = bearer("dca_not_this_agents_token");
    // (method, path, headers, body, status, what the message says)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("POST", "/v1/chat/completions", vec![], chat("gpt-4o", false), 401, "invalid gateway token"),
        (
            "POST",
            "/v1/chat/completions",
            vec![("authorization", &wrong)],
            chat("gpt-4o", false),
            401,
            "invalid gateway token",
        ),
        (
            "POST",
            "/v1/chat/completions",
            vec![("authorization", &good)],
            chat("gpt-5-unpriced", false),
            400,
            "no price",
        ),
        (
            "POST",
            "/v1/chat/completions",
            vec![("authorization", &good)],
            b"{\"messages\":[]}".to_vec(),
            400,
            "\\\"model\\\"",
        ),
        ("POST", "/v1/chat/completions", vec![("authorization", &good)], b"not json".to_vec(), 400, "not JSON"),
        ("GET", "/v1/chat/completions", vec![("authorization", &good)], vec![], 405, "use POST"),
        ("POST", "/v1/embeddings", vec![("authorization", &good)], chat("gpt-4o", false), 404, "serves POST"),
        ("POST", "/v1/chat/completions", vec![("authorization", &good)], vec![b' '; 4 * 1024 * 1024 + 1], 413, "over"),
    ];
    for (method, path, headers, body, status, says) in &cases {
        let a = send(l.addr, method, path, headers, body.clone()).await;
        assert_eq!(a.status, *status, "{method} {path}: {}", a.body);
        assert!(a.body.contains(says), "{method} {path}: {}", a.body);
        assert!(a.json()["error"]["message"].is_string(), "OpenAI's error shape: {}", a.body);
    }
    // Anthropic's error shape on its route.
    let a = send(l.addr, "POST", "/v1/messages", &[("x-api-key", "dca_wrong")], b"{}".to_vec()).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.json()["error"]["type"], "authentication_error");

    // An agent without the provider's key: refused before the provider, with a pointer to the vault.
    let name = CredentialName::parse("openai_api_key").unwrap();
    l.vault.delete(Actor::Platform, l.client, l.agent, &name, &fresh_proof(l.client), None).await.unwrap();
    let a = openai(&l, false).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("no openai_api_key credential"), "{}", a.body);

    assert_eq!(l.standin.count(), 0, "nothing reached the provider");
    let events = calls(&l, cases.len() + 2).await;
    assert_eq!(events.len(), cases.len() + 2);
    assert!(events.iter().all(|e| e.metadata.0["allowed"] == json!(false)), "{events:?}");
    assert_eq!(spend::day(&l.db, l.client, l.agent, spend::today()).await.unwrap(), spend::DaySpend::default());
});

db_test!(the_daily_cap_refuses_before_the_provider_and_alerts_owners_once_per_threshold, |t| {
    let smtp = SmtpServer::start().await;
    let mailer = Mailer::new("DeployClaw <alerts@deployclaw.test>", &smtp.url()).unwrap();
    // A cap of 25,000 micro-dollars: calls of 7,500 reach 30 %, 60 %, 90 %, 120 %.
    let l = llm(&t.db, "0.025", Some(mailer)).await;
    for (email, role) in [
        ("owner@modelco.test", Role::Owner),
        ("admin@modelco.test", Role::Admin),
        ("member@modelco.test", Role::Member),
    ] {
        users::create(&t.db, l.client, &EmailAddress::parse(email).unwrap(), role).await.unwrap();
    }
    // 50 % at the second call, 80 % at the third, 100 % at the fourth: each once, audited.
    for (n, alerts_so_far) in [(1u64, 0usize), (2, 1), (3, 2), (4, 3)] {
        let a = openai(&l, false).await;
        assert_eq!(a.status, 200, "call {n}: {}", a.body);
        spend_after(&l, n).await;
        calls(&l, n as usize).await;
        assert_eq!(budget_alerts(&l, alerts_so_far).await.len(), alerts_so_far, "after call {n}");
    }
    let a = openai(&l, false).await;
    assert_eq!(a.status, 402, "{}", a.body);
    assert_eq!(a.json()["error"]["type"], "budget_exceeded");
    assert!(a.body.contains("0.03 of 0.025 USD today") && a.body.contains("00:00 UTC"), "{}", a.body);
    assert_eq!(l.standin.count(), 4, "the refused call never reached the provider");

    let alerts = budget_alerts(&l, 3).await;
    let mut percents: Vec<u64> = alerts.iter().map(|e| e.metadata.0["percent"].as_u64().unwrap()).collect();
    percents.sort_unstable();
    assert_eq!(percents, vec![50, 80, 100]);
    let messages = smtp.messages(6).await;
    assert_eq!(messages.len(), 6, "three alerts to two people");
    for (who, expected) in [("owner@modelco.test", 3), ("admin@modelco.test", 3), ("member@modelco.test", 0)] {
        assert_eq!(messages.iter().filter(|m| m.contains(&format!("To: {who}"))).count(), expected, "{who}");
    }
    for percent in ["50%", "80%", "100%"] {
        assert!(
            messages.iter().any(|m| m.contains(&format!("has used {percent} of its daily model budget"))),
            "{percent}"
        );
    }
    assert!(messages.iter().all(|m| !m.contains(&l.key) && !m.contains("zebra")));

    // Raising the cap applies to the very next call, without a restart.
    l.agents.update_permissions(Actor::Platform, l.client, l.agent, cap("1.00"), &ctx()).await.unwrap();
    assert_eq!(openai(&l, false).await.status, 200);
    // And an agent with no budget at all is told how to get one.
    l.agents.update_permissions(Actor::Platform, l.client, l.agent, cap("0"), &ctx()).await.unwrap();
    let a = openai(&l, false).await;
    assert_eq!(a.status, 402);
    assert!(a.body.contains("no daily model budget"), "{}", a.body);
    assert_eq!(l.standin.count(), 5);
    smtp.stop().await;
});

#[tokio::test]
async fn from_inside_a_container_model_calls_use_a_key_the_agent_never_sees() {
    let t = TestDb::fresh(Which::Sqlite).await;
    let runtime: Arc<dyn deployclaw::runtime::ContainerRuntime> =
        Arc::new(deployclaw::runtime::connect(None).await.expect("a container runtime (run ./scripts/test)"));
    let pool = Pool::parse(&format!("10.217.{}.0/24", std::process::id() % 256)).unwrap();
    let key = format!("sk-standin-NOTREAL-{}", uuid::Uuid::now_v7().simple());
    let standin = StandIn::start(&key, Reply::default()).await;
    let vault = Vault::new(t.db.clone(), test_keyring(&[1]));
    let settings = LlmSettings {
        openai_base_url: standin.base_url(),
        anthropic_base_url: standin.base_url(),
        prices: prices(),
        connect_timeout: Duration::from_secs(30),
        answer_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        plans: deployclaw::plans::Catalog::self_hosted(),
    };
    let gateway = LlmGateway::new(t.db.clone(), vault.clone(), None, settings).unwrap();
    let proxy = EgressProxy::with_llm(t.db.clone(), ProxySettings::default(), gateway);
    let parts = agents_parts(&t.db, vault.clone(), Some(runtime), pool);
    let agents = Agents::new(AgentsParts { gateway: Some(proxy.clone()), ..parts });
    let client = new_client(&t.db, "Boxedmodels").await.id;
    let agent = agents
        .configure(
            Actor::Platform,
            client,
            deployclaw::db::agents::AgentName::parse("caller").unwrap(),
            "test-agent",
            &ctx(),
        )
        .await
        .unwrap();
    // A budget for two calls.
    agents.update_permissions(Actor::Platform, client, agent.id, cap("0.015"), &ctx()).await.unwrap();
    let put = |name: &str, value: &str| {
        let (vault, name, value) = (vault.clone(), CredentialName::parse(name).unwrap(), value.to_string());
        async move {
            let secret = SecretSlice::from(value.into_bytes());
            vault.put(Actor::Platform, client, agent.id, &name, secret, &fresh_proof(client), None).await.unwrap();
        }
    };
    put("openai_api_key", &key).await;
    let slack = format!("xoxb-NOTREAL-{}", uuid::Uuid::now_v7().simple());
    put("slack_token", &slack).await;
    let deployed = agents.deploy(Actor::Platform, client, agent.id, &ctx()).await.unwrap();
    let subnet = pool.block(deployed.network_block.unwrap() as u32).unwrap();

    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        crate::support::until_healthy(&agents, client, agent.id).await;
        let ip = subnet.host();
        // What the agent holds: its own token where SDKs look for a key, the other credentials as before.
        let given = agent_json(ip, "/probe/env?name=OPENAI_API_KEY").await;
        let given = given["value"].as_str().expect("OPENAI_API_KEY is set").to_string();
        assert!(given.starts_with("dca_") && given != key, "the agent holds its gateway token, not the key");
        assert_eq!(agent_json(ip, "/probe/env?name=SLACK_TOKEN").await["value"], slack.as_str());
        let base = agent_json(ip, "/probe/env?name=OPENAI_BASE_URL").await;
        assert_eq!(base["value"], format!("http://{}:3128/v1", subnet.gateway()));

        for n in 1..=2 {
            let call = agent_json(ip, "/llm?provider=openai").await;
            assert_eq!(call["status"], 200, "call {n}: {call}");
            assert!(call["body"].as_str().unwrap().contains("Hello from the stand-in."), "{call}");
            let s = wait_for_spend(&t.db, client, agent.id, n).await;
            recorded_calls(&t.db, client, n as usize).await;
            assert_eq!(s.spent_micro_usd, n * OPENAI_CALL);
        }
        assert!(standin.seen().iter().all(|s| s.header("authorization") == Some(format!("Bearer {key}").as_str())));
        let over = agent_json(ip, "/llm?provider=openai").await;
        assert_eq!(over["status"], 402, "{over}");
        assert!(over["body"].as_str().unwrap().contains("budget_exceeded"), "{over}");
        assert_eq!(standin.count(), 2, "the provider saw no request over the cap");
    }))
    .await;
    agents.remove(Actor::Platform, client, agent.id, &ctx()).await.unwrap();
    t.cleanup().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

db_test!(the_clients_plan_caps_spend_below_the_agents_own_cap, |t| {
    use deployclaw::plans::{default_plans, Catalog};
    // Billing on: a new client is on the trial plan (1 USD a day), whatever the agent's own cap (1,000 USD).
    let l = llm_with(&t.db, "1000", None, Catalog::new(default_plans(), true)).await;
    let usage = deployclaw::gateway::pricing::Usage::default();
    spend::add(&t.db, l.client, l.agent, spend::today(), 1_000_000, usage).await.unwrap();
    let a = openai(&l, false).await;
    assert_eq!(a.status, 402, "{}", a.body);
    assert!(a.body.contains("1.00 of 1.00 USD"), "the plan's cap: {}", a.body);
    assert_eq!(l.standin.count(), 0);
    // Billing off: the self-hosted plan's cap (100 USD) is above what was spent.
    let open = llm_with(&t.db, "1000", None, Catalog::self_hosted()).await;
    spend::add(&t.db, open.client, open.agent, spend::today(), 1_000_000, usage).await.unwrap();
    assert_eq!(openai(&open, false).await.status, 200);
});
