//! The egress gateway: permissions stored and audited, and the proxy enforcing them - against the proxy on
//! 127.0.0.1 (both backends) and from inside a real test-agent container (SQLite).
//!
//! Network safety: the only upstream is an echo server on 127.0.0.1, allowed through `test_upstreams`; the
//! names the proxy is asked for resolve through its static host map (to 127.0.0.1) or are refused before
//! any lookup. From inside the container, the only address contacted is the agent network's own gateway (a
//! network the platform created with an explicit subnet and gateway), after the agent's address was
//! route-checked. Every loop is bounded in count and time.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deployclaw::agents::{Agents, AgentsParts};
use deployclaw::audit::{self, Actor};
use deployclaw::context::RequestContext;
use deployclaw::db::agents::{self as agent_rows, AgentName, AgentStatus};
use deployclaw::db::{AgentId, ClientId, Db};
use deployclaw::gateway::{EgressProxy, Permissions, PermissionsInput, ProxySettings, RateLimit};
use deployclaw::runtime::subnets::Pool;
use deployclaw::vault::Vault;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{agents_parts, db_test, eventually, new_client, test_keyring, TestDb, Which};

const ALLOWED: &str = "allowed.example.com";
/// Allowlisted, resolves to 127.0.0.1, but not at a test upstream's port: must be refused.
const INTERNAL: &str = "internal.example.com";

pub(crate) fn ctx() -> RequestContext {
    RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: Some("gateway-test".into()) }
}

/// An echo server on 127.0.0.1: answers every connection with `echo:` and what it read (one read, up to
/// 4 KiB). Ends with the test's runtime; at most 200 connections.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..200 {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = s.write_all(&reply).await;
                }
            });
        }
    });
    addr
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
async fn unused_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap().local_addr().unwrap().port()
}

fn settings(upstream: SocketAddr) -> ProxySettings {
    let loopback = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    ProxySettings {
        test_upstreams: vec![upstream],
        static_hosts: BTreeMap::from([(ALLOWED.to_string(), loopback.clone()), (INTERNAL.to_string(), loopback)]),
        idle_timeout: Duration::from_secs(5),
        ..ProxySettings::default()
    }
}

fn permissions(domains: &[&str], limit: Option<(u32, u32)>) -> Permissions {
    Permissions::parse(&PermissionsInput {
        scopes: vec!["api:outbound".into()],
        rate_limits: limit
            .map(|(h, d)| BTreeMap::from([("api:outbound".into(), RateLimit { max_per_hour: h, max_per_day: d })]))
            .unwrap_or_default(),
        allowed_domains: domains.iter().map(|d| d.to_string()).collect(),
        max_daily_token_spend_usd: "1.00".into(),
    })
    .unwrap()
}

/// An agent with a gateway token, its permissions set, and the proxy listening for it on 127.0.0.1.
struct Fixture {
    agents: Agents,
    proxy: EgressProxy,
    client: ClientId,
    agent: AgentId,
    token: String,
    addr: SocketAddr,
    upstream: SocketAddr,
}

pub(crate) async fn agent_with_token(db: &Db, agents: &Agents, client: ClientId, name: &str) -> (AgentId, String) {
    let agent =
        agents.configure(Actor::Platform, client, AgentName::parse(name).unwrap(), "test-agent", &ctx()).await.unwrap();
    let token = format!("dca_test_{}", uuid::Uuid::now_v7().simple());
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    agent_rows::set_runtime_state(db, client, agent.id, AgentStatus::Running, Some("c"), None, Some(&hash))
        .await
        .unwrap();
    (agent.id, token)
}

async fn fixture(db: &Db, p: Permissions) -> Fixture {
    let upstream = echo_upstream().await;
    let vault = Vault::new(db.clone(), test_keyring(&[1]));
    let agents = Agents::new(crate::support::agents_parts(db, vault, None, Pool::parse("10.219.0.0/24").unwrap()));
    let client = new_client(db, "Gatewayco").await.id;
    let (agent, token) = agent_with_token(db, &agents, client, "egress").await;
    agents.update_permissions(Actor::Platform, client, agent, p, &ctx()).await.unwrap();
    let proxy = EgressProxy::new(db.clone(), settings(upstream));
    let addr = proxy.listen(client, agent, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
    Fixture { agents, proxy, client, agent, token, addr, upstream }
}

/// What the proxy answered to one request: status, body (a denial's reason) or what came back through the
/// tunnel.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    text: String,
}

fn basic(token: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("agent:{token}"))
}

/// One CONNECT through the proxy at `proxy` (bounded by 10 s); on 200 one line goes through the tunnel.
async fn connect(proxy: SocketAddr, target: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Proxy-Authorization: Basic {}\r\n", basic(t))).unwrap_or_default();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n");
    exchange(proxy, request, b"hello\n").await
}

async fn exchange(proxy: SocketAddr, request: String, then: &[u8]) -> Answer {
    let then = then.to_vec();
    let run = async move {
        let mut s = TcpStream::connect(proxy).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
            if s.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status == 200 && head.contains("Connection established") {
            s.write_all(&then).await.unwrap();
        }
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        Answer { status, head, text: String::from_utf8_lossy(&rest).trim().to_string() }
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("the proxy answers within 60 s")
}

/// The agent's `gateway.connection` events, newest first, once `n` are there (bounded wait: events are
/// written when a connection ends).
async fn connection_events(db: &Db, client: ClientId, n: usize) -> Vec<audit::AuditEvent> {
    let mut events = Vec::new();
    eventually(&format!("{n} gateway.connection events"), async || {
        events = audit::recent(db, client, None, 500)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action_type == "gateway.connection")
            .collect();
        events.len() >= n
    })
    .await;
    events
}

db_test!(an_allowed_host_is_tunnelled_and_audited, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED], None)).await;
    let a = connect(f.addr, &format!("{ALLOWED}:{}", f.upstream.port()), Some(&f.token)).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.text, "echo:hello", "the tunnel carries bytes both ways");
    // The name is normalised like the allowlist (case, trailing dot).
    let a = connect(f.addr, &format!("Allowed.Example.COM.:{}", f.upstream.port()), Some(&f.token)).await;
    assert_eq!(a.status, 200, "{a:?}");

    let events = connection_events(&t.db, f.client, 2).await;
    let e = &events[1];
    assert_eq!(e.actor_kind, "agent");
    assert_eq!(e.actor_id, Some(f.agent.as_uuid()));
    assert_eq!(e.agent_id, Some(f.agent));
    assert_eq!(e.target.as_deref(), Some(format!("{ALLOWED}:{}", f.upstream.port()).as_str()));
    let m = &e.metadata.0;
    assert_eq!(m["allowed"], true, "{m}");
    assert_eq!(m["method"], "CONNECT");
    assert_eq!(m["host"], ALLOWED);
    assert_eq!(m["port"], f.upstream.port());
    assert_eq!(m["address"], f.upstream.to_string());
    assert_eq!(m["bytes_up"], 6, "{m}");
    assert_eq!(m["bytes_down"], 11, "{m}");
    assert!(m["duration_ms"].as_u64().is_some(), "{m}");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&f.token), "the token never reaches the audit trail");
});

db_test!(other_hosts_ip_literals_and_private_names_are_refused_with_a_reason, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED, INTERNAL], None)).await;
    let up = f.upstream.port();
    let closed = unused_port().await;
    let cases = [
        (format!("other.example.com:{up}"), "host not on this agent's allowlist"),
        (format!("127.0.0.1:{up}"), "IP addresses are not allowed"),
        (format!("[::1]:{up}"), "IP addresses are not allowed"),
        ("169.254.169.254:80".to_string(), "IP addresses are not allowed"),
        // localhost resolves to 127.0.0.1: refused as a name (no single-label names) before any lookup.
        (format!("localhost:{up}"), "not a valid host name"),
        (format!("127.1:{up}"), "not a valid host name"),
        // Allowlisted, but resolving to loopback at a port that is not a test upstream.
        (format!("{INTERNAL}:{closed}"), "host resolves to a non-public address"),
        (format!("{ALLOWED}:{closed}"), "host resolves to a non-public address"),
    ];
    for (target, reason) in &cases {
        let a = connect(f.addr, target, Some(&f.token)).await;
        assert_eq!(a.status, 403, "{target}: {a:?}");
        assert!(a.text.starts_with(reason), "{target}: {a:?}");
    }
    let events = connection_events(&t.db, f.client, cases.len()).await;
    assert!(events.iter().all(|e| e.metadata.0["allowed"] == false && e.metadata.0["status"] == 403));
    assert!(events.iter().all(|e| e.metadata.0["address"].is_null()), "nothing was connected");
    let reasons: Vec<&str> = events.iter().filter_map(|e| e.metadata.0["reason"].as_str()).collect();
    assert!(reasons.contains(&"host not on this agent's allowlist"), "{reasons:?}");
});

db_test!(a_missing_or_wrong_token_gets_407, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED], None)).await;
    let target = format!("{ALLOWED}:{}", f.upstream.port());
    let (other, other_token) = agent_with_token(&t.db, &f.agents, f.client, "other").await;
    f.agents.update_permissions(Actor::Platform, f.client, other, permissions(&[ALLOWED], None), &ctx()).await.unwrap();
    let other_addr = f.proxy.listen(f.client, other, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
    for (addr, token) in [
        (f.addr, None),
        (f.addr, Some("dca_wrong")),
        (f.addr, Some(f.token.get(..f.token.len() - 1).unwrap())),
        // Each agent's token only on its own listener (its own network).
        (f.addr, Some(other_token.as_str())),
        (other_addr, Some(f.token.as_str())),
    ] {
        let a = connect(addr, &target, token).await;
        assert_eq!(a.status, 407, "{addr} {:?}: {a:?}", token.map(|_| "token"));
        assert_eq!(a.text, "proxy authentication required");
    }
    assert_eq!(connect(other_addr, &target, Some(&other_token)).await.status, 200);
    let events = connection_events(&t.db, f.client, 6).await;
    assert_eq!(events.iter().filter(|e| e.metadata.0["authenticated"] == false).count(), 5);
});

db_test!(the_rate_limit_is_hit_after_n_connections, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED], Some((3, 10)))).await;
    let target = format!("{ALLOWED}:{}", f.upstream.port());
    for i in 0..3 {
        assert_eq!(connect(f.addr, &target, Some(&f.token)).await.status, 200, "connection {i}");
    }
    let a = connect(f.addr, &target, Some(&f.token)).await;
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.text, "rate limit for api:outbound reached (3 per hour)");
    // Refusals before the limit check (another host) are not counted, and do not pass either.
    assert_eq!(connect(f.addr, &format!("x.example.com:{}", f.upstream.port()), Some(&f.token)).await.status, 403);
    // The count is in the database: a new proxy (a restarted server, or another replica) holds the agent to it.
    f.proxy.stop(f.agent);
    let restarted = EgressProxy::new(t.db.clone(), settings(f.upstream));
    let addr = restarted.listen(f.client, f.agent, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
    let a = connect(addr, &target, Some(&f.token)).await;
    assert_eq!((a.status, a.text.as_str()), (403, "rate limit for api:outbound reached (3 per hour)"));
    // Refused uses are not counted: exactly the three admitted ones are, and pruning keeps them (under a day).
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM gateway_rate_events").await, 3);
    assert_eq!(deployclaw::gateway::prune_rate_events(&t.db).await.unwrap(), 0);
    restarted.stop(f.agent);
});

db_test!(the_daily_rate_limit_counts_the_last_24_hours, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED], Some((100, 100)))).await;
    let target = format!("{ALLOWED}:{}", f.upstream.port());
    // 99 uses spread over the last day (older than an hour), and one from more than a day ago.
    let agent = t.literal_uuid(f.agent.as_uuid());
    let client = t.literal_uuid(f.client.as_uuid());
    for minutes in (0..99).map(|i| 70 + i * 13).chain([24 * 60 + 5]) {
        // The text form sqlx stores on SQLite (RFC 3339, `+00:00`); PostgreSQL parses it as a timestamptz.
        let at = (chrono::Utc::now() - chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let at = format!("'{at}'");
        let sql = format!(
            "INSERT INTO gateway_rate_events (agent_id, client_id, scope, at) VALUES ({agent}, {client}, 'api:outbound', {at})"
        );
        t.raw_execute(&sql).await.unwrap();
    }
    assert_eq!(connect(f.addr, &target, Some(&f.token)).await.status, 200, "the 100th use in the last day");
    let a = connect(f.addr, &target, Some(&f.token)).await;
    assert_eq!((a.status, a.text.as_str()), (403, "rate limit for api:outbound reached (100 per day)"));
    assert_eq!(deployclaw::gateway::prune_rate_events(&t.db).await.unwrap(), 1, "only the day-old use is pruned");
});

db_test!(permission_changes_apply_to_a_running_agent_without_restart, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED], None)).await;
    let target = format!("{ALLOWED}:{}", f.upstream.port());
    assert_eq!(connect(f.addr, &target, Some(&f.token)).await.status, 200);

    f.agents
        .update_permissions(Actor::Platform, f.client, f.agent, permissions(&["*.example.org"], None), &ctx())
        .await
        .unwrap();
    let a = connect(f.addr, &target, Some(&f.token)).await;
    assert_eq!((a.status, a.text.as_str()), (403, "host not on this agent's allowlist"));

    let mut no_scope = permissions(&[ALLOWED], None);
    no_scope.scopes.clear();
    f.agents.update_permissions(Actor::Platform, f.client, f.agent, no_scope, &ctx()).await.unwrap();
    let a = connect(f.addr, &target, Some(&f.token)).await;
    assert_eq!((a.status, a.text.as_str()), (403, "this agent does not have the api:outbound scope"));

    f.agents
        .update_permissions(Actor::Platform, f.client, f.agent, permissions(&["*.Example.com"], None), &ctx())
        .await
        .unwrap();
    assert_eq!(connect(f.addr, &target, Some(&f.token)).await.status, 200, "a wildcard covers the name");

    // Audited with what changed, by name.
    let updates: Vec<_> = audit::recent(&t.db, f.client, None, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action_type == "agent.permissions_updated")
        .collect();
    assert_eq!(updates.len(), 4, "the fixture's and three changes");
    let second = &updates[2].metadata.0["changed"];
    assert_eq!(second["domains_added"], serde_json::json!(["*.example.org"]), "{second}");
    assert_eq!(second["domains_removed"], serde_json::json!([ALLOWED]), "{second}");
    assert_eq!(updates[1].metadata.0["changed"]["scopes_removed"], serde_json::json!(["api:outbound"]));
    assert_eq!(f.agents.permissions(f.client, f.agent).await.unwrap().allowed_domains.len(), 1);
});

db_test!(a_new_agent_may_do_nothing_and_another_client_cannot_change_it, |t| {
    let vault = Vault::new(t.db.clone(), test_keyring(&[1]));
    let agents = Agents::new(crate::support::agents_parts(&t.db, vault, None, Pool::parse("10.219.0.0/24").unwrap()));
    let client = new_client(&t.db, "Fresh").await.id;
    let (agent, token) = agent_with_token(&t.db, &agents, client, "fresh").await;
    assert_eq!(agents.permissions(client, agent).await.unwrap(), Permissions::deny_all());
    let upstream = echo_upstream().await;
    let proxy = EgressProxy::new(t.db.clone(), settings(upstream));
    let addr = proxy.listen(client, agent, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
    let a = connect(addr, &format!("{ALLOWED}:{}", upstream.port()), Some(&token)).await;
    assert_eq!((a.status, a.text.as_str()), (403, "this agent does not have the api:outbound scope"));

    let intruder = new_client(&t.db, "Intruder").await.id;
    let err = agents
        .update_permissions(Actor::Platform, intruder, agent, permissions(&[ALLOWED], None), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, deployclaw::db::DbError::NotFound), "{err:?}");
    assert_eq!(agents.permissions(client, agent).await.unwrap(), Permissions::deny_all());

    // Stopping the listener closes the door.
    proxy.stop(agent);
    assert!(proxy.listening(agent).is_none());
    let refused = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr)).await.unwrap();
    assert!(refused.is_err(), "nothing listens after stop");
});

db_test!(plain_http_is_forwarded_without_proxy_headers, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED], None)).await;
    let request = format!(
        "GET http://{ALLOWED}:{}/v1/x?y=1 HTTP/1.1\r\nHost: {ALLOWED}\r\nProxy-Authorization: Basic {}\r\n\
         Proxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        f.upstream.port(),
        basic(&f.token)
    );
    let a = exchange(f.addr, request, b"").await;
    // The echo upstream answers with what it received: the request in origin form, no proxy headers.
    let expected = format!(
        "echo:GET /v1/x?y=1 HTTP/1.1\r\nHost: {ALLOWED}:{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        f.upstream.port()
    );
    assert_eq!(a.head, expected, "{a:?}");
    let events = connection_events(&t.db, f.client, 1).await;
    let m = &events[0].metadata.0;
    assert_eq!((m["allowed"].clone(), m["method"].clone()), (serde_json::json!(true), serde_json::json!("GET")));
    assert!(m["bytes_down"].as_u64().unwrap() > 0, "{m}");
});

db_test!(every_accepted_agent_socket_has_tcp_nodelay, |t| {
    // Read back from the very socket the proxy accepted, after it prepared it: streamed model answers and
    // tunnelled bytes are never held for the agent's delayed ACK.
    let f = fixture(&t.db, permissions(&[ALLOWED], None)).await;
    let seen: Arc<std::sync::Mutex<Vec<bool>>> = Arc::default();
    let record = seen.clone();
    let proxy = EgressProxy::new(
        t.db.clone(),
        ProxySettings {
            on_accept: Some(deployclaw::gateway::proxy::AcceptObserver(Arc::new(move |s: &TcpStream| {
                record.lock().unwrap().push(s.nodelay().unwrap())
            }))),
            ..settings(f.upstream)
        },
    );
    let addr = proxy.listen(f.client, f.agent, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
    for _ in 0..2 {
        let a = connect(addr, &format!("{ALLOWED}:{}", f.upstream.port()), Some(&f.token)).await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    assert_eq!(*seen.lock().unwrap(), vec![true, true]);
});

db_test!(oversized_headers_are_refused, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED], None)).await;
    let big = "x".repeat(20 * 1024);
    let request = format!("CONNECT {ALLOWED}:1 HTTP/1.1\r\nX-Big: {big}\r\n\r\n");
    let a = exchange(f.addr, request, b"").await;
    assert_eq!(a.status, 431, "{a:?}");
});

db_test!(open_connections_are_capped_and_idle_tunnels_closed, |t| {
    let f = fixture(&t.db, permissions(&[ALLOWED], None)).await;
    // An upstream that accepts and then holds every connection open, saying nothing: the only thing that can
    // end a tunnel to it is the proxy's idle timeout.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..20 {
            let Ok((s, _)) = silent.accept().await else { return };
            held.push(s);
        }
    });
    let proxy = EgressProxy::new(
        t.db.clone(),
        ProxySettings {
            max_connections_per_agent: 2,
            idle_timeout: Duration::from_millis(300),
            test_upstreams: vec![silent_addr],
            ..settings(f.upstream)
        },
    );
    let addr = proxy.listen(f.client, f.agent, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
    let request = format!(
        "CONNECT {ALLOWED}:{} HTTP/1.1\r\nProxy-Authorization: Basic {}\r\n\r\n",
        silent_addr.port(),
        basic(&f.token)
    );
    let open = || async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        (s, String::from_utf8_lossy(&head).to_string())
    };
    let run = async {
        let (mut a, head_a) = open().await;
        let (_b, head_b) = open().await;
        assert!(head_a.ends_with("200") && head_b.ends_with("200"), "{head_a} {head_b}");
        let (mut c, head_c) = open().await;
        assert_eq!(head_c, "HTTP/1.1 403");
        let mut rest = String::new();
        c.read_to_string(&mut rest).await.unwrap();
        assert!(rest.ends_with("too many open connections for this agent\n"), "{rest}");
        // Nothing sent either way and the upstream holds on: only the idle timeout can close the tunnel. What
        // arrives before the close is the rest of the proxy's own answer head, nothing from upstream.
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&rest), " Connection established\r\n\r\n");
        // A slot is free again once the closed tunnel's task has ended (it audits first). Until then the one
        // answer expected is the cap's refusal.
        let mut freed = None;
        eventually("a slot is freed after the idle close", async || {
            let (d, head_d) = open().await;
            match head_d.as_str() {
                "HTTP/1.1 200" => {
                    freed = Some(d);
                    true
                }
                "HTTP/1.1 403" => false,
                other => panic!("unexpected answer {other:?}"),
            }
        })
        .await;
        assert!(freed.is_some());
    };
    tokio::time::timeout(crate::support::PATIENCE, run).await.expect("bounded");
});

/// `ip route get` must name a local podman bridge and no gateway (see runtime.rs).
pub(crate) fn assert_routed_to_a_local_bridge(ip: Ipv4Addr) {
    let out = std::process::Command::new("ip").args(["route", "get", &ip.to_string()]).output().expect("ip route");
    let route = String::from_utf8_lossy(&out.stdout).to_string();
    let dev = route.split_whitespace().skip_while(|w| *w != "dev").nth(1).unwrap_or("");
    let on_bridge = (dev.starts_with("podman") || dev.starts_with("cni-podman")) && !route.contains(" via ");
    assert!(on_bridge, "refusing to send to {ip}: routed as {route:?}");
}

/// One GET to the agent (bounded by 15 s); the JSON body.
pub(crate) async fn agent_json(ip: Ipv4Addr, path: &str) -> serde_json::Value {
    assert_routed_to_a_local_bridge(ip);
    let run = async {
        let mut s = TcpStream::connect((ip, 8080)).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("the agent answers within 60 s")
}

#[tokio::test]
async fn from_inside_a_container_only_allowed_hosts_get_through_the_proxy() {
    let t = TestDb::fresh(Which::Sqlite).await;
    let runtime: Arc<dyn deployclaw::runtime::ContainerRuntime> =
        Arc::new(deployclaw::runtime::connect(None).await.expect("a container runtime (run ./scripts/test)"));
    let pool = Pool::parse(&format!("10.218.{}.0/24", std::process::id() % 256)).unwrap();
    let vault = Vault::new(t.db.clone(), test_keyring(&[1]));
    let upstream = echo_upstream().await;
    let proxy = EgressProxy::new(t.db.clone(), settings(upstream));
    let parts = agents_parts(&t.db, vault, Some(runtime), pool);
    let agents = Agents::new(AgentsParts { gateway: Some(proxy.clone()), ..parts });
    let client = new_client(&t.db, "Boxed").await.id;
    let agent = agents
        .configure(Actor::Platform, client, AgentName::parse("boxed").unwrap(), "test-agent", &ctx())
        .await
        .unwrap();
    agents.update_permissions(Actor::Platform, client, agent.id, permissions(&[ALLOWED], None), &ctx()).await.unwrap();
    let deployed = agents.deploy(Actor::Platform, client, agent.id, &ctx()).await.unwrap();
    let subnet = pool.block(deployed.network_block.unwrap() as u32).unwrap();

    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        assert_eq!(
            proxy.listening(agent.id),
            Some(SocketAddr::new(subnet.gateway().into(), 3128)),
            "deploying made the proxy listen on the agent's gateway"
        );
        crate::support::until_healthy(&agents, client, agent.id).await;
        let ip = subnet.host();
        let ok = agent_json(ip, &format!("/via-proxy?target={ALLOWED}:{}", upstream.port())).await;
        assert_eq!(ok["status"], 200, "{ok}");
        assert_eq!(ok["reply"], "echo:ping through the gateway\n", "{ok}");
        let other = agent_json(ip, "/via-proxy?target=telemetry.openclaw.ai:443").await;
        assert_eq!(other["status"], 403, "{other}");
        assert_eq!(other["body"], "host not on this agent's allowlist", "{other}");
        let literal = agent_json(ip, "/via-proxy?target=192.0.2.10:443").await;
        assert_eq!(literal["status"], 403, "{literal}");
        let internal = agent_json(ip, &format!("/via-proxy?target={ALLOWED}:{}", upstream.port() ^ 1)).await;
        assert_eq!(internal["status"], 403, "{internal}");
        let events = connection_events(&t.db, client, 4).await;
        assert!(events.iter().all(|e| e.actor_kind == "agent" && e.agent_id == Some(agent.id)));
    }))
    .await;
    agents.remove(Actor::Platform, client, agent.id, &ctx()).await.unwrap();
    assert!(proxy.listening(agent.id).is_none(), "removing the agent stopped its listener");
    t.cleanup().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Numbers for the record (debug build, loopback, SQLite): CONNECT latency (request sent to `200` read,
/// including the database read of the agent's permissions) over 200 sequential tunnels, and the throughput of
/// 64 MiB through one tunnel into a counting sink. Asserts only that everything arrived.
#[tokio::test]
async fn connect_latency_and_tunnel_throughput_on_loopback() {
    let t = TestDb::fresh(Which::Sqlite).await;
    // A sink on 127.0.0.1: counts what it reads, then answers with the count.
    let sink = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..300 {
            let Ok((mut s, _)) = sink.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0u64;
                while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                let _ = s.write_all(total.to_string().as_bytes()).await;
            });
        }
    });
    let f = fixture(&t.db, permissions(&[ALLOWED], Some((1000, 1000)))).await;
    let proxy = EgressProxy::new(t.db.clone(), settings(sink_addr));
    let addr = proxy.listen(f.client, f.agent, (Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
    let request = format!(
        "CONNECT {ALLOWED}:{} HTTP/1.1\r\nProxy-Authorization: Basic {}\r\n\r\n",
        sink_addr.port(),
        basic(&f.token)
    );
    let open = || async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 39];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[..], b"HTTP/1.1 200 Connection established\r\n\r\n");
        s
    };
    let mut latencies = Vec::with_capacity(200);
    let bench = async {
        for _ in 0..200 {
            let start = Instant::now();
            let s = open().await;
            latencies.push(start.elapsed());
            drop(s);
        }
        let mut s = open().await;
        let chunk = vec![0x5au8; 1024 * 1024];
        let start = Instant::now();
        for _ in 0..64 {
            s.write_all(&chunk).await.unwrap();
        }
        s.shutdown().await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        (start.elapsed(), answer)
    };
    let (elapsed, answer) = tokio::time::timeout(Duration::from_secs(300), bench).await.expect("within 5 minutes");
    assert_eq!(answer, (64u64 * 1024 * 1024).to_string(), "every byte arrived");
    latencies.sort();
    eprintln!(
        "CONNECT latency over 200 tunnels: p50 {:?}, p99 {:?}; 64 MiB through one tunnel in {:?} ({:.0} MiB/s)",
        latencies[100],
        latencies[197],
        elapsed,
        64.0 / elapsed.as_secs_f64()
    );
    t.cleanup().await;
}

/// The host is on every agent bridge (the gateway address). Without the firewall, a host service listening
/// on all addresses is reachable from inside an agent; with it, only the gateway port is.
#[tokio::test]
async fn from_inside_a_container_only_the_gateway_port_of_the_host_is_reachable() {
    use deployclaw::runtime::firewall;
    let t = TestDb::fresh(Which::Sqlite).await;
    let runtime: Arc<dyn deployclaw::runtime::ContainerRuntime> =
        Arc::new(deployclaw::runtime::connect(None).await.expect("a container runtime (run ./scripts/test)"));
    // A pool no other test uses (the rules apply to the whole pool).
    let pool = Pool::parse(&format!("10.214.{}.0/24", std::process::id() % 256)).unwrap();
    firewall::remove(pool).await.expect("nft is available (scripts/test runs as root)");
    // A host service on all addresses, as a careless one would be (accepts at most 10 connections).
    let service = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).await.unwrap();
    let service_port = service.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..10 {
            let Ok((mut s, _)) = service.accept().await else { return };
            let _ = s.write_all(b"host service\n").await;
        }
    });
    let vault = Vault::new(t.db.clone(), test_keyring(&[1]));
    let upstream = echo_upstream().await;
    let proxy = EgressProxy::new(t.db.clone(), settings(upstream));
    let parts = agents_parts(&t.db, vault, Some(runtime), pool);
    let agents = Agents::new(AgentsParts { gateway: Some(proxy.clone()), ..parts });
    let client = new_client(&t.db, "Walled").await.id;
    let agent = agents
        .configure(Actor::Platform, client, AgentName::parse("walled").unwrap(), "test-agent", &ctx())
        .await
        .unwrap();
    agents.update_permissions(Actor::Platform, client, agent.id, permissions(&[ALLOWED], None), &ctx()).await.unwrap();
    let deployed = agents.deploy(Actor::Platform, client, agent.id, &ctx()).await.unwrap();
    let subnet = pool.block(deployed.network_block.unwrap() as u32).unwrap();

    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        crate::support::until_healthy(&agents, client, agent.id).await;
        let (ip, gateway) = (subnet.host(), subnet.gateway());
        let probe = format!("/connect?host={gateway}&port={service_port}&timeout_ms=5000");
        let open = agent_json(ip, &probe).await;
        assert_eq!(open["connected"], true, "without the firewall the host service is reachable: {open}");

        firewall::protect_host(pool).await.unwrap();
        firewall::protect_host(pool).await.expect("installing twice is harmless");
        let walled = agent_json(ip, &probe).await;
        assert_eq!(walled["connected"], false, "{walled}");
        // The gateway port still answers, and the host still reaches the agent (health checks).
        let ok = agent_json(ip, &format!("/via-proxy?target={ALLOWED}:{}", upstream.port())).await;
        assert_eq!(ok["status"], 200, "{ok}");
        assert_eq!(agents.check_health(client, agent.id).await.unwrap().status, AgentStatus::Running);
    }))
    .await;
    let _ = firewall::remove(pool).await;
    agents.remove(Actor::Platform, client, agent.id, &ctx()).await.unwrap();
    t.cleanup().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
