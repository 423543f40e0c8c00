//! The reconciler against real Podman with the test agent: crashed agents come back (with backoff), an agent
//! that keeps crashing is put in a crash loop, a container deleted behind our back is recreated, and orphans
//! are reported. Traffic only to the agents' own networks, after a route check (see runtime.rs).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deployclaw::agents::reconciler::{Policy, Reconciler};
use deployclaw::agents::{AgentSettings, Agents};
use deployclaw::audit::{self, Actor};
use deployclaw::context::RequestContext;
use deployclaw::db::agents::{self, AgentName, AgentStatus};
use deployclaw::db::AgentId;
use deployclaw::runtime::hardening;
use deployclaw::runtime::subnets::Pool;
use deployclaw::runtime::ContainerRuntime;
use deployclaw::vault::Vault;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{container_stopped, eventually, new_client, test_keyring, TestDb, Which};

fn ctx() -> RequestContext {
    RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: Some("reconciler-test".into()) }
}

/// A pool of its own per test process, apart from the platform default and runtime.rs's test pool.
fn pool(offset: u32) -> Pool {
    Pool::parse(&format!("10.216.{}.0/24", (std::process::id() + offset) % 256)).unwrap()
}

async fn crash(ip: Ipv4Addr) {
    let out = std::process::Command::new("ip").args(["route", "get", &ip.to_string()]).output().unwrap();
    let route = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(route.contains(" dev podman") && !route.contains(" via "), "refusing to send to {ip}: {route}");
    let send = async {
        let mut s = tokio::net::TcpStream::connect((ip, 8080)).await?;
        s.write_all(b"POST /crash HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(30), send).await.expect("bounded").expect("the agent answers");
}

/// Waits until the agent's container has exited.
async fn exited(s: &Setup, agent: &deployclaw::db::agents::Agent) {
    let name = hardening::names(agent.client_id, agent.id).container;
    eventually("exited", async || container_stopped(s.runtime.as_ref(), &name).await).await;
}

/// Runs reconciler passes until the agent is `running`.
async fn until_running(s: &Setup, reconciler: &Reconciler, agent: &deployclaw::db::agents::Agent, what: &str) {
    eventually(what, async || {
        reconciler.pass().await.unwrap();
        status(s, agent).await == AgentStatus::Running
    })
    .await;
}

struct Setup {
    t: TestDb,
    agents: Agents,
    runtime: Arc<dyn ContainerRuntime>,
}

async fn setup(offset: u32) -> Setup {
    let t = TestDb::fresh(Which::Sqlite).await;
    let runtime: Arc<dyn ContainerRuntime> =
        Arc::new(deployclaw::runtime::connect(None).await.expect("a container runtime (run ./scripts/test)"));
    let vault = Vault::new(t.db.clone(), test_keyring(&[1]));
    let agents = Agents::new(crate::support::agents_parts(&t.db, vault, Some(runtime.clone()), pool(offset)));
    Setup { t, agents, runtime }
}

async fn deployed(s: &Setup, name: &str) -> deployclaw::db::agents::Agent {
    let client = new_client(&s.t.db, name).await;
    let agent = s
        .agents
        .configure(Actor::Platform, client.id, AgentName::parse(name).unwrap(), "test-agent", &ctx())
        .await
        .unwrap();
    s.agents.deploy(Actor::Platform, client.id, agent.id, &ctx()).await.unwrap()
}

fn address(s: &Setup, agent: &deployclaw::db::agents::Agent, offset: u32) -> Ipv4Addr {
    let _ = s;
    pool(offset).block(agent.network_block.unwrap() as u32).unwrap().host()
}

async fn status(s: &Setup, agent: &deployclaw::db::agents::Agent) -> AgentStatus {
    agents::get(&s.t.db, agent.client_id, agent.id).await.unwrap().status
}

#[tokio::test]
async fn crashed_agents_restart_then_a_crash_loop_stops_the_retries() {
    let s = setup(0).await;
    let agent = deployed(&s, "crashy").await;
    let ip = address(&s, &agent, 0);
    let policy = Policy {
        backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        max_crashes: 3,
        window: Duration::from_secs(600),
    };
    let reconciler = Reconciler::new(s.agents.clone(), policy);
    until_running(&s, &reconciler, &agent, "healthy").await;

    // Crash twice: each time it comes back.
    for round in 1..=2 {
        crash(ip).await;
        exited(&s, &agent).await;
        let report = reconciler.pass().await.unwrap();
        assert_eq!(report.restarted, vec![agent.id], "round {round}");
        until_running(&s, &reconciler, &agent, "healthy again").await;
    }

    // The third crash within the window is a crash loop: no restart, an error the customer can read.
    crash(ip).await;
    exited(&s, &agent).await;
    let report = reconciler.pass().await.unwrap();
    assert_eq!(report.crash_looping, vec![agent.id]);
    let now = agents::get(&s.t.db, agent.client_id, agent.id).await.unwrap();
    assert_eq!(now.status, AgentStatus::Error);
    assert!(now.status_reason.unwrap().contains("crash loop: exited 3 times"));
    assert!(reconciler.pass().await.unwrap().restarted.is_empty(), "an agent in error is left alone");
    let events = audit::recent(&s.t.db, agent.client_id, None, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action_type == "agent.restarted").count(), 2);
    assert_eq!(events.iter().filter(|e| e.action_type == "agent.crash_loop").count(), 1);
    s.agents.remove(Actor::Platform, agent.client_id, agent.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}

#[tokio::test]
async fn backoff_delays_a_restart() {
    let s = setup(1).await;
    let agent = deployed(&s, "slow").await;
    let ip = address(&s, &agent, 1);
    let policy = Policy {
        backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(60),
        max_crashes: 5,
        window: Duration::from_secs(600),
    };
    // The reconciler's clock moves only when the test moves it: the backoff is measured on it, not on how
    // long the machine takes.
    let clock = Arc::new(Mutex::new(deployclaw::db::now()));
    let read = clock.clone();
    let reconciler = Reconciler::new(s.agents.clone(), policy).with_clock(Arc::new(move || *read.lock().unwrap()));
    let advance = |by: chrono::Duration| *clock.lock().unwrap() += by;
    until_running(&s, &reconciler, &agent, "healthy").await;
    crash(ip).await;
    exited(&s, &agent).await;
    assert!(reconciler.pass().await.unwrap().restarted.is_empty(), "not before the backoff");
    let waiting = agents::get(&s.t.db, agent.client_id, agent.id).await.unwrap();
    assert!(waiting.status_reason.as_deref().unwrap().contains("restarting in 2 s"), "{waiting:?}");
    advance(chrono::Duration::milliseconds(1999));
    assert!(reconciler.pass().await.unwrap().restarted.is_empty(), "1.999 s after the crash: still waiting");
    advance(chrono::Duration::milliseconds(1));
    assert_eq!(reconciler.pass().await.unwrap().restarted, vec![agent.id], "restarted once the backoff is over");
    s.agents.remove(Actor::Platform, agent.client_id, agent.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}

#[tokio::test]
async fn a_container_deleted_behind_our_back_is_recreated_and_orphans_are_reported() {
    let s = setup(2).await;
    let agent = deployed(&s, "gone").await;
    let reconciler = Reconciler::new(s.agents.clone(), Policy::default());
    let name = hardening::names(agent.client_id, agent.id).container;
    s.runtime.remove_container(&name).await.unwrap();
    let report = reconciler.pass().await.unwrap();
    assert_eq!(report.recreated, vec![agent.id]);
    until_running(&s, &reconciler, &agent, "healthy after recreation").await;
    assert!(s.runtime.inspect_container(&name).await.unwrap().unwrap().running);

    // A labelled container whose agent record is gone is an orphan: reported, not touched.
    let ghost = AgentId::new();
    let ghost_client = new_client(&s.t.db, "ghosts").await.id;
    let spec = hardening::container_spec(
        &hardening::template("test-agent").unwrap(),
        ghost_client,
        ghost,
        pool(2).block(15).unwrap(),
        hardening::limits(&hardening::template("test-agent").unwrap(), None, 100),
        vec![],
    );
    s.runtime.ensure_network(&hardening::network_spec(ghost_client, ghost, pool(2).block(15).unwrap())).await.unwrap();
    s.runtime
        .ensure_volume(&hardening::names(ghost_client, ghost).volume, &hardening::labels(ghost_client, ghost))
        .await
        .unwrap();
    s.runtime.create_container(&spec).await.unwrap();
    let report = reconciler.pass().await.unwrap();
    let orphan_name = spec.name.clone();
    let names = hardening::names(ghost_client, ghost);
    s.runtime.remove_container(&names.container).await.unwrap();
    s.runtime.remove_network(&names.network).await.unwrap();
    s.runtime.remove_volume(&names.volume).await.unwrap();
    assert!(report.orphans.contains(&orphan_name), "{report:?}");
    let events = audit::recent(&s.t.db, agent.client_id, None, 100).await.unwrap();
    assert!(events.iter().any(|e| e.action_type == "agent.recreated"));
    s.agents.remove(Actor::Platform, agent.client_id, agent.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}

#[tokio::test]
async fn a_platform_restarted_mid_deploy_finishes_the_job() {
    let s = setup(3).await;
    let agent = deployed(&s, "midway").await;
    assert_eq!(status(&s, &agent).await, AgentStatus::Starting, "deploy returns before the health check");
    // The server stops here; a new one starts on the same database and runtime, with a fresh reconciler.
    let vault = Vault::new(s.t.db.clone(), test_keyring(&[1]));
    let restarted = Agents::new(crate::support::agents_parts(&s.t.db, vault, Some(s.runtime.clone()), pool(3)));
    let reconciler = Reconciler::new(restarted.clone(), Policy::default());
    until_running(&s, &reconciler, &agent, "running after the restart").await;
    // And if the container went away while the platform was down, the next start recreates it.
    let name = hardening::names(agent.client_id, agent.id).container;
    s.runtime.remove_container(&name).await.unwrap();
    let again = Reconciler::new(restarted.clone(), Policy::default());
    assert_eq!(again.pass().await.unwrap().recreated, vec![agent.id]);
    restarted.remove(Actor::Platform, agent.client_id, agent.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}

#[tokio::test]
async fn a_runtime_event_brings_a_crashed_agent_back_without_waiting_for_the_next_pass() {
    let s = setup(4).await;
    let agent = deployed(&s, "evented").await;
    let ip = address(&s, &agent, 4);
    let policy = Policy { backoff: Duration::ZERO, max_backoff: Duration::ZERO, ..Policy::default() };
    let reconciler = Reconciler::new(s.agents.clone(), policy);
    until_running(&s, &reconciler, &agent, "healthy").await;
    // Periodic passes once an hour: only the runtime's `die` event can explain a prompt restart. The first
    // pass runs at once; the crash comes once the runtime has accepted the reconciler's subscription.
    let task = tokio::spawn(reconciler.clone().run(Duration::from_secs(3600)));
    tokio::time::timeout(crate::support::PATIENCE, reconciler.following_events())
        .await
        .expect("the reconciler follows the runtime's events");
    crash(ip).await;
    eventually("restarted by the event", async || {
        agents::get(&s.t.db, agent.client_id, agent.id).await.unwrap().restart_count == 1
    })
    .await;
    task.abort();
    s.agents.remove(Actor::Platform, agent.client_id, agent.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}

#[tokio::test]
async fn the_crash_record_survives_a_platform_restart_and_one_exit_counts_once() {
    let s = setup(5).await;
    let agent = deployed(&s, "remembered").await;
    let ip = address(&s, &agent, 5);
    let slow = Policy {
        backoff: Duration::from_secs(600),
        max_backoff: Duration::from_secs(600),
        max_crashes: 2,
        window: Duration::from_secs(600),
    };
    let first = Reconciler::new(s.agents.clone(), slow);
    until_running(&s, &first, &agent, "healthy").await;
    crash(ip).await;
    exited(&s, &agent).await;
    assert!(first.pass().await.unwrap().restarted.is_empty(), "waiting out a 10-minute backoff");
    let counted = agents::get(&s.t.db, agent.client_id, agent.id).await.unwrap();
    assert_eq!(counted.recent_crashes.0.len(), 1);
    assert_eq!(counted.status, AgentStatus::Starting);
    assert!(counted.status_reason.as_deref().unwrap().contains("restarting in 600 s"), "{counted:?}");

    // A new platform process: same exit, not counted again, still waiting (not restarted at once either).
    let vault = Vault::new(s.t.db.clone(), test_keyring(&[1]));
    let restarted = Agents::new(crate::support::agents_parts(&s.t.db, vault, Some(s.runtime.clone()), pool(5)));
    let second = Reconciler::new(restarted.clone(), slow);
    for _ in 0..3 {
        // (Orphans are runtime-wide: other tests' containers may show up there.)
        let report = second.pass().await.unwrap();
        assert!(
            report.restarted.is_empty() && report.crash_looping.is_empty() && report.recreated.is_empty(),
            "{report:?}"
        );
    }
    assert_eq!(agents::get(&s.t.db, agent.client_id, agent.id).await.unwrap().recent_crashes.0.len(), 1);

    // With no backoff the next instance restarts it; the next exit is the second within the window: a loop.
    let quick = Policy { backoff: Duration::ZERO, max_backoff: Duration::ZERO, ..slow };
    let third = Reconciler::new(restarted.clone(), quick);
    assert_eq!(third.pass().await.unwrap().restarted, vec![agent.id]);
    until_running(&s, &third, &agent, "healthy after the restart").await;
    crash(ip).await;
    exited(&s, &agent).await;
    assert_eq!(third.pass().await.unwrap().crash_looping, vec![agent.id]);
    let now = agents::get(&s.t.db, agent.client_id, agent.id).await.unwrap();
    assert_eq!((now.status, now.restart_count), (AgentStatus::Error, 1));
    restarted.remove(Actor::Platform, agent.client_id, agent.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}

#[tokio::test]
async fn stops_and_deletes_cut_short_by_a_platform_restart_are_finished_at_startup() {
    let s = setup(6).await;
    let stopping = deployed(&s, "half-stopped").await;
    let deleting = deployed(&s, "half-deleted").await;
    for (agent, state) in [(&stopping, AgentStatus::Stopping), (&deleting, AgentStatus::Deleting)] {
        // What the database holds when the platform died right after recording the transition.
        agents::set_runtime_state(&s.t.db, agent.client_id, agent.id, state, agent.container_id.as_deref(), None, None)
            .await
            .unwrap();
    }
    let reconciler = Reconciler::new(s.agents.clone(), Policy::default());
    let mut finished = reconciler.pass().await.unwrap().finished;
    finished.sort();
    let mut expected = vec![stopping.id, deleting.id];
    expected.sort();
    assert_eq!(finished, expected);
    let stopped = agents::get(&s.t.db, stopping.client_id, stopping.id).await.unwrap();
    assert_eq!(stopped.status, AgentStatus::Stopped);
    let name = hardening::names(stopping.client_id, stopping.id).container;
    assert!(!s.runtime.inspect_container(&name).await.unwrap().unwrap().running, "its container is stopped");
    assert!(agents::get(&s.t.db, deleting.client_id, deleting.id).await.is_err(), "the record is gone");
    let gone = hardening::names(deleting.client_id, deleting.id).container;
    assert!(s.runtime.inspect_container(&gone).await.unwrap().is_none(), "and so is its container");
    assert!(reconciler.pass().await.unwrap().finished.is_empty(), "only the first pass finishes transitions");
    s.agents.remove(Actor::Platform, stopping.client_id, stopping.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}

#[tokio::test]
async fn new_settings_recreate_a_running_agent_and_a_restart_keeps_its_container() {
    let s = setup(7).await;
    let agent = deployed(&s, "tuned").await;
    let reconciler = Reconciler::new(s.agents.clone(), Policy::default());
    until_running(&s, &reconciler, &agent, "healthy").await;
    let name = hardening::names(agent.client_id, agent.id).container;
    let before = s.runtime.inspect_container(&name).await.unwrap().unwrap().id;

    let template = hardening::template("test-agent").unwrap();
    let settings = AgentSettings::parse_form(&template, "96", "500", "GREETING=hello").unwrap();
    let updated = s.agents.update_settings(Actor::Platform, agent.client_id, agent.id, settings, &ctx()).await.unwrap();
    assert_eq!(updated.status, AgentStatus::Starting, "applied at once");
    let after = s.runtime.inspect_container(&name).await.unwrap().unwrap().id;
    assert_ne!(before, after, "a new container");
    // What the runtime recorded, straight from its API.
    let endpoint = deployclaw::runtime::connect(None).await.unwrap().endpoint().to_string();
    let docker =
        bollard::Docker::connect_with_unix(endpoint.trim_start_matches("unix://"), 30, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let c = docker.inspect_container(&name, None::<bollard::query_parameters::InspectContainerOptions>).await.unwrap();
    let host = c.host_config.unwrap();
    assert_eq!(host.memory, Some(96 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    let env = c.config.unwrap().env.unwrap_or_default();
    assert!(env.contains(&"GREETING=hello".to_string()), "{env:?}");
    until_running(&s, &reconciler, &agent, "healthy with its new settings").await;

    // A restart stops and starts the same container; the customer sees it starting, then running.
    let restarted = s.agents.restart(Actor::Platform, agent.client_id, agent.id, &ctx()).await.unwrap();
    assert_eq!(restarted.status, AgentStatus::Starting);
    assert_eq!(s.runtime.inspect_container(&name).await.unwrap().unwrap().id, after, "same container");
    until_running(&s, &reconciler, &agent, "healthy after the restart").await;
    let events = audit::recent(&s.t.db, agent.client_id, None, 100).await.unwrap();
    let settings_event = events.iter().find(|e| e.action_type == "agent.settings_updated").expect("audited");
    assert_eq!(settings_event.metadata.0["changed"], serde_json::json!(["memory_mib", "cpu_millis", "env:GREETING"]));
    assert!(!settings_event.metadata.0.to_string().contains("hello"), "names, never values");
    assert!(events.iter().any(|e| e.action_type == "agent.restarted"));
    s.agents.remove(Actor::Platform, agent.client_id, agent.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}

/// An operator's template (from `[[runtime.templates]]`): offered next to the built-in ones, and an agent
/// configured from it deploys and gets healthy with the template's port, health path and memory.
#[tokio::test]
async fn an_operator_template_deploys_like_a_built_in_one() {
    use deployclaw::runtime::hardening::{Template, TemplateInput, Templates};
    let s = setup(8).await;
    let custom = Template::custom(TemplateInput {
        id: "diagnostics".into(),
        name: "Diagnostics (operator image)".into(),
        image: "localhost/deployclaw/test-agent:latest".into(),
        command: vec!["/test-agent".into()],
        port: 8080,
        health_path: "/healthz".into(),
        state_dir: "/var/lib/agent".into(),
        memory_mib: 48,
        min_memory_mib: 32,
        user: "65534:65534".into(),
    })
    .unwrap();
    let vault = Vault::new(s.t.db.clone(), test_keyring(&[1]));
    let templates = Templates::with(vec![custom]).unwrap();
    let parts = crate::support::agents_parts(&s.t.db, vault, Some(s.runtime.clone()), pool(8));
    let agents = Agents::new(deployclaw::agents::AgentsParts { templates, ..parts });
    assert!(agents.templates().iter().any(|t| t.id == "diagnostics"));
    let client = new_client(&s.t.db, "Operatorimage").await;
    let unknown =
        agents.configure(Actor::Platform, client.id, AgentName::parse("nope").unwrap(), "missing", &ctx()).await;
    assert!(unknown.unwrap_err().to_string().contains("diagnostics"), "the error lists what exists");
    let agent = agents
        .configure(Actor::Platform, client.id, AgentName::parse("diag").unwrap(), "diagnostics", &ctx())
        .await
        .unwrap();
    let agent = agents.deploy(Actor::Platform, client.id, agent.id, &ctx()).await.unwrap();
    let reconciler = Reconciler::new(agents.clone(), Policy::default());
    eventually("healthy", async || {
        reconciler.pass().await.unwrap();
        agents::get(&s.t.db, client.id, agent.id).await.unwrap().status == AgentStatus::Running
    })
    .await;
    let name = hardening::names(client.id, agent.id).container;
    let endpoint = deployclaw::runtime::connect(None).await.unwrap().endpoint().to_string();
    let docker =
        bollard::Docker::connect_with_unix(endpoint.trim_start_matches("unix://"), 30, bollard::API_DEFAULT_VERSION)
            .unwrap();
    let inspected = docker.inspect_container(&name, None).await.unwrap();
    let host = inspected.host_config.unwrap();
    assert_eq!(host.memory, Some(48 * 1024 * 1024), "the template's memory");
    assert_eq!(host.readonly_rootfs, Some(true), "locked down the same way");
    let mounts = inspected.mounts.unwrap_or_default();
    assert!(mounts.iter().any(|m| m.destination.as_deref() == Some("/var/lib/agent")), "{mounts:?}");
    agents.remove(Actor::Platform, client.id, agent.id, &ctx()).await.unwrap();
    s.t.cleanup().await;
}
