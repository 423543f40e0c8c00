//! The container runtime driver against real Podman (its Docker-compatible API), with the test-agent image:
//! the hardening of every agent container, proven by inspecting it and by probing from inside it.
//!
//! Network safety: the tests send traffic only to addresses of networks they created with an explicit subnet
//! and gateway, after `ip route get` shows the address is on a local podman bridge, and every request is a
//! single bounded attempt (or a poll bounded in count and time). From inside, agents are only asked to
//! connect to their own network, another agent's network, and a TEST-NET-1 address (192.0.2.0/24, reserved
//! for documentation and never routed), never to anything real.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use deployclaw::db::{AgentId, ClientId};
use deployclaw::runtime::docker::DockerRuntime;
use deployclaw::runtime::hardening::{self, Template};
use deployclaw::runtime::subnets::{Pool, Subnet};
use deployclaw::runtime::{ContainerRuntime, ContainerSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{container_stopped, eventually, not_up_yet};

/// Subnets for tests, apart from the platform's default pool.
const TEST_POOL: Pool = Pool { base: Ipv4Addr::new(10, 214, 0, 0), blocks: 4096 };
static NEXT_BLOCK: AtomicU32 = AtomicU32::new(0);

async fn runtime() -> DockerRuntime {
    match deployclaw::runtime::connect(None).await {
        Ok(r) => r,
        Err(e) => panic!("{e}\n(run ./scripts/test, which starts Podman's API service and builds the test image)"),
    }
}

fn test_agent() -> &'static Template {
    static TEST_AGENT: std::sync::OnceLock<Template> = std::sync::OnceLock::new();
    TEST_AGENT.get_or_init(|| hardening::template("test-agent").unwrap())
}

/// A fresh subnet: spread by process id so leftovers of an earlier run do not collide.
fn subnet() -> Subnet {
    let start = std::process::id() % 2048;
    TEST_POOL.block((start + NEXT_BLOCK.fetch_add(1, Ordering::Relaxed)) % TEST_POOL.blocks).unwrap()
}

/// `ip route get` must name a local podman bridge and no gateway, or say the address is this machine's own
/// (a bridge's gateway address); otherwise sending there could leave the machine.
fn assert_routed_to_a_local_bridge(ip: Ipv4Addr) {
    let out = std::process::Command::new("ip").args(["route", "get", &ip.to_string()]).output().expect("ip route");
    let route = String::from_utf8_lossy(&out.stdout).to_string();
    let dev = route.split_whitespace().skip_while(|w| *w != "dev").nth(1).unwrap_or("");
    let on_bridge = (dev.starts_with("podman") || dev.starts_with("cni-podman")) && !route.contains(" via ");
    let own_address = route.starts_with("local ") && dev == "lo";
    assert!(on_bridge || own_address, "refusing to send to {ip}: routed as {route:?}");
}

/// The address this machine uses for its default route (a route lookup only; nothing is sent).
fn primary_host_address() -> Ipv4Addr {
    let out = std::process::Command::new("ip").args(["route", "get", "192.0.2.1"]).output().expect("ip route");
    let route = String::from_utf8_lossy(&out.stdout).to_string();
    route.split_whitespace().skip_while(|w| *w != "src").nth(1).and_then(|a| a.parse().ok()).expect("a source address")
}

/// One HTTP/1.1 request to the agent at `ip:port`, bounded by 30 s. Returns (status, body).
async fn http(ip: Ipv4Addr, port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    assert_routed_to_a_local_bridge(ip);
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await?;
        s.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

async fn json(ip: Ipv4Addr, path: &str) -> serde_json::Value {
    let (status, body) = http(ip, 8080, "GET", path).await.expect("agent answers");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// A deployed test agent; removed (container, network, volume) by `remove`.
struct Deployed {
    spec: ContainerSpec,
    subnet: Subnet,
    client: ClientId,
    agent: AgentId,
}

/// Creates and starts `template`'s container on a network and volume of its own (locked down as every agent).
async fn start(rt: &DockerRuntime, t: &Template, cpus_milli: u32) -> Deployed {
    let (client, agent) = (ClientId::new(), AgentId::new());
    let mut attempt = 0;
    let subnet = loop {
        let subnet = subnet();
        match rt.ensure_network(&hardening::network_spec(client, agent, subnet)).await {
            Ok(()) => break subnet,
            // A network left behind by an interrupted earlier run may hold the subnet: only that is retried.
            Err(e) if attempt < 5 && e.to_string().contains("already") => {
                attempt += 1;
                eprintln!("subnet {subnet} unavailable ({e}); trying another");
            }
            Err(e) => panic!("network: {e}"),
        }
    };
    let names = hardening::names(client, agent);
    rt.ensure_volume(&names.volume, &hardening::labels(client, agent)).await.unwrap();
    let spec = hardening::container_spec(t, client, agent, subnet, hardening::limits(t, None, cpus_milli), vec![]);
    rt.create_container(&spec).await.unwrap();
    rt.start_container(&spec.name).await.unwrap();
    Deployed { spec, subnet, client, agent }
}

/// A healthy test agent.
async fn deploy(rt: &DockerRuntime) -> Deployed {
    let d = start(rt, test_agent(), 500).await;
    wait_healthy(&d).await;
    d
}

async fn wait_healthy(d: &Deployed) {
    eventually("the agent answers /healthz", async || match http(d.subnet.host(), 8080, "GET", "/healthz").await {
        Ok((200, _)) => true,
        Ok((status, body)) => panic!("/healthz answered {status}: {body}"),
        Err(e) if not_up_yet(&e) => false,
        Err(e) => panic!("/healthz: {e}"),
    })
    .await;
}

async fn remove(rt: &DockerRuntime, d: &Deployed) {
    let names = hardening::names(d.client, d.agent);
    rt.remove_container(&names.container).await.unwrap();
    rt.remove_network(&names.network).await.unwrap();
    rt.remove_volume(&names.volume).await.unwrap();
}

#[tokio::test]
async fn the_runtime_is_found_and_identifies_itself() {
    let rt = runtime().await;
    let info = rt.info().await.unwrap();
    assert!(info.endpoint.starts_with("unix://"), "{info:?}");
    assert!(!info.version.trim().is_empty(), "{info:?}");
}

#[tokio::test]
async fn an_agent_container_is_created_locked_down() {
    let rt = runtime().await;
    let d = deploy(&rt).await;
    // What the runtime recorded, straight from its API.
    let docker = bollard::Docker::connect_with_unix(
        rt.endpoint().trim_start_matches("unix://"),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    let c = docker
        .inspect_container(&d.spec.name, None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .unwrap();
    let host = c.host_config.clone().unwrap();
    let config = c.config.clone().unwrap();
    let result = std::panic::AssertUnwindSafe(async {
        assert_eq!(host.readonly_rootfs, Some(true), "read-only root filesystem");
        // Podman reports "drop ALL" as the list of what it dropped; the probe below proves none are left.
        let dropped = host.cap_drop.clone().unwrap_or_default().join(",").to_ascii_uppercase();
        for cap in ["ALL", "CHOWN", "NET_RAW", "SETUID", "SYS_CHROOT", "DAC_OVERRIDE", "NET_BIND_SERVICE"] {
            if cap == "ALL" && dropped.contains("ALL") {
                break;
            }
            assert!(cap == "ALL" || dropped.contains(cap), "{cap} not dropped: {dropped}");
        }
        assert!(host.cap_add.clone().unwrap_or_default().is_empty());
        let security = host.security_opt.clone().unwrap_or_default();
        assert!(security.iter().any(|s| s.starts_with("no-new-privileges")), "{security:?}");
        assert_ne!(host.privileged, Some(true));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.pids_limit, Some(256));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        // Docker says `nofile`, Podman `RLIMIT_NOFILE`.
        let ulimits = host.ulimits.clone().unwrap_or_default();
        for name in ["nofile", "nproc"] {
            let u = ulimits.iter().find(|u| u.name.as_deref().is_some_and(|n| n.to_ascii_lowercase().ends_with(name)));
            assert_eq!(u.and_then(|u| u.hard), Some(1024), "{name}: {ulimits:?}");
        }
        assert!(
            host.port_bindings.clone().unwrap_or_default().values().all(|b| b.as_ref().is_none_or(|b| b.is_empty())),
            "no published ports"
        );
        assert_eq!(config.user.as_deref(), Some("65534:65534"));
        let labels = config.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("deployclaw.agent"), Some(&d.agent.to_string()));
        assert_eq!(labels.get("deployclaw.client"), Some(&d.client.to_string()));
        assert_eq!(c.name.as_deref().map(|n| n.trim_start_matches('/')), Some(d.spec.name.as_str()));
        let networks = c.network_settings.clone().and_then(|n| n.networks).unwrap_or_default();
        assert_eq!(
            networks.keys().collect::<Vec<_>>(),
            vec![&hardening::names(d.client, d.agent).network],
            "one network only"
        );
        let net = docker
            .inspect_network(
                &hardening::names(d.client, d.agent).network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .unwrap();
        assert_eq!(net.internal, Some(true), "the agent network has no route out");

        // From inside: who it runs as, what it can write, what it can see.
        let me = json(d.subnet.host(), "/probe/whoami").await;
        assert_eq!(me["uid"], 65534, "{me}");
        assert_eq!(me["gid"], 65534, "{me}");
        assert_eq!(me["no_new_privs"], true, "{me}");
        assert!(me["cap_eff"].as_str().unwrap().trim_start_matches('0').is_empty(), "no effective capabilities: {me}");
        for path in ["/x", "/etc/x", "/var/tmp/x", "/run/x", "/dev/shm/x"] {
            let w = json(d.subnet.host(), &format!("/probe/write?path={path}")).await;
            assert_eq!(w["written"], false, "{path} must not be writable: {w}");
        }
        for path in ["/tmp/x", "/state/x"] {
            let w = json(d.subnet.host(), &format!("/probe/write?path={path}")).await;
            assert_eq!(w["written"], true, "{path} must be writable: {w}");
        }
        let procs = json(d.subnet.host(), "/probe/processes").await;
        let pids = procs["pids"].as_array().cloned().unwrap_or_default();
        // Its init (PID 1) and itself: nothing of the host.
        assert!(!pids.is_empty() && pids.len() <= 3, "only its own processes are visible: {procs}");
    })
    .catch_unwind_async()
    .await;
    remove(&rt, &d).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn agents_cannot_reach_each_other_or_anything_but_their_gateway() {
    let rt = runtime().await;
    let a = deploy(&rt).await;
    let b = deploy(&rt).await;
    let result = std::panic::AssertUnwindSafe(async {
        // Something listening on A's gateway address (where the egress proxy will be): A reaches it.
        assert_routed_to_a_local_bridge(a.subnet.gateway());
        let listener = tokio::net::TcpListener::bind((a.subnet.gateway(), 0)).await.expect("bind on the gateway");
        let port = listener.local_addr().unwrap().port();
        let accept =
            tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(60), listener.accept()).await });
        let to_gateway =
            json(a.subnet.host(), &format!("/connect?host={}&port={port}&timeout_ms=5000", a.subnet.gateway())).await;
        assert_eq!(to_gateway["connected"], true, "the gateway is reachable: {to_gateway}");
        assert!(accept.await.unwrap().is_ok());

        // B, on its own network, is not reachable from A (nor A from B).
        let a_to_b =
            json(a.subnet.host(), &format!("/connect?host={}&port=8080&timeout_ms=2000", b.subnet.host())).await;
        assert_eq!(a_to_b["connected"], false, "agent A reached agent B: {a_to_b}");
        let b_to_a =
            json(b.subnet.host(), &format!("/connect?host={}&port=8080&timeout_ms=2000", a.subnet.host())).await;
        assert_eq!(b_to_a["connected"], false, "agent B reached agent A: {b_to_a}");
        // The host's own services are not reachable through the host's other addresses: a listener on all
        // interfaces, asked for at the host's primary address (a local route: the traffic stays here).
        let host_ip = primary_host_address();
        assert_routed_to_a_local_bridge(host_ip);
        let open = tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).await.unwrap();
        let open_port = open.local_addr().unwrap().port();
        let to_host = json(a.subnet.host(), &format!("/connect?host={host_ip}&port={open_port}&timeout_ms=2000")).await;
        assert_eq!(to_host["connected"], false, "agent A reached a host service at {host_ip}: {to_host}");
        drop(open);
        // Nothing beyond: a TEST-NET-1 address (never routed anywhere) gets no connection.
        let out = json(a.subnet.host(), "/connect?host=192.0.2.10&port=443&timeout_ms=2000").await;
        assert_eq!(out["connected"], false, "{out}");
    })
    .catch_unwind_async()
    .await;
    remove(&rt, &a).await;
    remove(&rt, &b).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn lifecycle_calls_are_idempotent_and_report_state() {
    let rt = runtime().await;
    let d = deploy(&rt).await;
    let result = std::panic::AssertUnwindSafe(async {
        let status = rt.inspect_container(&d.spec.name).await.unwrap().expect("exists");
        assert!(status.running, "{status:?}");
        assert_eq!(status.labels.get("deployclaw.agent"), Some(&d.agent.to_string()));
        let listed = rt.list_containers("deployclaw.agent", &d.agent.to_string()).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, d.spec.name);
        let sample = rt.stats(&d.spec.name).await.unwrap();
        assert!(sample.memory_bytes > 0 && sample.pids >= 1, "{sample:?}");

        // A crash is seen as an exit with the agent's status.
        let (code, _) = http(d.subnet.host(), 8080, "POST", "/crash").await.unwrap();
        assert_eq!(code, 200);
        eventually("the container exits", async || container_stopped(&rt, &d.spec.name).await).await;
        let exited = rt.inspect_container(&d.spec.name).await.unwrap().unwrap();
        assert_eq!(exited.exit_code, Some(3), "{exited:?}");
        let logs = rt.logs(&d.spec.name, 50).await.unwrap();
        assert!(logs.iter().any(|l| l.contains("crashing on request")), "{logs:?}");
    })
    .catch_unwind_async()
    .await;
    if let Err(panic) = result {
        remove(&rt, &d).await;
        std::panic::resume_unwind(panic);
    }

    // Stopping a stopped container, and removing things twice, are fine; a missing container is None.
    rt.stop_container(&d.spec.name, 1).await.unwrap();
    remove(&rt, &d).await;
    remove(&rt, &d).await;
    assert!(rt.inspect_container(&d.spec.name).await.unwrap().is_none());
}

/// `catch_unwind` for futures, so a failed assertion still cleans up the containers it made.
trait CatchUnwindAsync: std::future::Future + Sized {
    async fn catch_unwind_async(self) -> std::thread::Result<Self::Output>;
}

impl<F: std::future::Future + std::panic::UnwindSafe> CatchUnwindAsync for F {
    async fn catch_unwind_async(self) -> std::thread::Result<Self::Output> {
        futures_util::FutureExt::catch_unwind(self).await
    }
}

/// Runs `node -e SCRIPT` inside a container (as its own user) and returns what it printed.
async fn node_inside(docker: &bollard::Docker, container: &str, script: &str) -> String {
    use futures_util::StreamExt;
    let exec = docker
        .create_exec(
            container,
            bollard::exec::CreateExecOptions {
                cmd: Some(vec!["node", "-e", script]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut out = String::new();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    {
        let read = async {
            while let Some(Ok(chunk)) = output.next().await {
                out.push_str(&chunk.to_string());
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("node answers within 30 s");
    }
    out
}

/// The real OpenClaw image gets the same lock-down as the test agent, checked from inside it with its own node:
/// non-root, no capabilities, no new privileges, a read-only root with only /tmp and its state writable, and
/// only its own processes visible. (It is not started to health: the isolation holds from the first second.)
#[tokio::test]
async fn an_openclaw_container_is_locked_down_the_same_way() {
    let rt = runtime().await;
    let d = start(&rt, &hardening::template("openclaw").unwrap(), 1000).await;
    let docker = bollard::Docker::connect_with_unix(
        rt.endpoint().trim_start_matches("unix://"),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    let result = std::panic::AssertUnwindSafe(async {
        let c = docker
            .inspect_container(&d.spec.name, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .unwrap();
        let host = c.host_config.clone().unwrap();
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.memory, Some(1024 * 1024 * 1024), "OpenClaw gets its 1 GiB");
        assert_eq!(c.config.clone().unwrap().user.as_deref(), Some("1000:1000"));
        let script = r#"
            const fs = require('fs');
            const status = fs.readFileSync('/proc/self/status', 'utf8');
            const field = (k) => (status.match(new RegExp('^' + k + ':\\s*(\\S+)', 'm')) || [])[1];
            const writable = (p) => { try { fs.writeFileSync(p, 'x'); fs.unlinkSync(p); return true; } catch { return false; } };
            const paths = ['/x', '/etc/x', '/usr/x', '/home/node/x', '/var/tmp/x', '/run/x', '/tmp/x', '/home/node/.openclaw/x'];
            console.log(JSON.stringify({
                uid: process.getuid(), gid: process.getgid(),
                capEff: field('CapEff'), noNewPrivs: field('NoNewPrivs'),
                writable: Object.fromEntries(paths.map((p) => [p, writable(p)])),
                pids: fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length,
            }));
        "#;
        let out = node_inside(&docker, &d.spec.name, script).await;
        let line = out.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no report: {out}"));
        let me: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!((me["uid"].as_i64(), me["gid"].as_i64()), (Some(1000), Some(1000)), "{me}");
        assert_eq!(me["noNewPrivs"], "1", "{me}");
        assert!(me["capEff"].as_str().unwrap().trim_start_matches('0').is_empty(), "no effective capabilities: {me}");
        for path in ["/x", "/etc/x", "/usr/x", "/home/node/x", "/var/tmp/x", "/run/x"] {
            assert_eq!(me["writable"][path], false, "{path} must not be writable: {me}");
        }
        for path in ["/tmp/x", "/home/node/.openclaw/x"] {
            assert_eq!(me["writable"][path], true, "{path} must be writable: {me}");
        }
        // Its init, the gateway and this node: a handful of its own, nothing of the host's hundreds.
        assert!(me["pids"].as_i64().unwrap() <= 8, "only its own processes are visible: {me}");
    })
    .catch_unwind_async()
    .await;
    remove(&rt, &d).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
