//! Deploy benchmark, against the real container runtime (Podman via ./scripts/lib.sh ensure_container_runtime,
//! and `images/build.sh test-agent`): time from "deploy" to a healthy test agent (median of RUNS), memory of an
//! idle test agent, and what that means for this machine. Run:
//! `cargo bench -p deployclaw --bench deploy` (optionally `DEPLOY_BENCH_TEMPLATE=openclaw DEPLOY_BENCH_RUNS=3`).
//!
//! Traffic goes only to the agents' own networks (the health probe of the platform itself).

use std::sync::Arc;
use std::time::{Duration, Instant};

use deployclaw::agents::reconciler::{Policy, Reconciler};
use deployclaw::agents::Agents;
use deployclaw::audit::Actor;
use deployclaw::config::{DatabaseConfig, DatabaseTarget};
use deployclaw::context::RequestContext;
use deployclaw::db::agents::{AgentName, AgentStatus};
use deployclaw::db::{clients, Db};
use deployclaw::email::EmailAddress;
use deployclaw::keys::keyring::{KeyVersion, Keyring, MasterKey};
use deployclaw::runtime::hardening;
use deployclaw::runtime::subnets::Pool;
use deployclaw::runtime::ContainerRuntime;
use deployclaw::vault::Vault;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let template = std::env::var("DEPLOY_BENCH_TEMPLATE").unwrap_or_else(|_| "test-agent".into());
    let runs: usize = std::env::var("DEPLOY_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(10).clamp(1, 50);
    let limit = if template == "openclaw" { Duration::from_secs(120) } else { Duration::from_secs(30) };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&DatabaseConfig {
        target: DatabaseTarget::Sqlite { path: dir.path().join("bench.db") },
        max_connections: 5,
        connect_timeout: Duration::from_secs(10),
    })
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let rt: Arc<dyn ContainerRuntime> =
        Arc::new(deployclaw::runtime::connect(None).await.expect("a container runtime"));
    println!("runtime: {}", rt.info().await.unwrap().version);
    let keyring = Keyring::new([(KeyVersion(1), MasterKey::generate())], "bench").unwrap();
    let pool = Pool::parse("10.217.0.0/20").unwrap();
    let agents = Agents::new(deployclaw::agents::AgentsParts {
        db: db.clone(),
        vault: Vault::new(db.clone(), keyring),
        runtime: Some(rt.clone()),
        pool,
        templates: Default::default(),
        plans: deployclaw::plans::Catalog::self_hosted(),
        gateway: None,
    });
    let reconciler = Reconciler::new(agents.clone(), Policy::default());
    let email = EmailAddress::parse("bench@deployclaw.example").unwrap();
    let client = clients::create(&db, clients::NewClient { name: clients::ClientName::parse("bench").unwrap(), email })
        .await
        .unwrap();
    let ctx = RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: None };

    let mut times = Vec::new();
    let mut deployed = Vec::new();
    for i in 0..runs {
        let name = AgentName::parse(&format!("bench-{i}")).unwrap();
        let agent = agents.configure(Actor::Platform, client.id, name, &template, &ctx).await.unwrap();
        let start = Instant::now();
        agents.deploy(Actor::Platform, client.id, agent.id, &ctx).await.unwrap();
        loop {
            let now = agents.check_health(client.id, agent.id).await.unwrap();
            if now.status == AgentStatus::Running {
                break;
            }
            assert!(start.elapsed() < limit, "agent {i} not healthy within {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        times.push(start.elapsed());
        deployed.push(agent.id);
    }
    // Let them idle, then sample memory through the reconciler (as the agent page does).
    tokio::time::sleep(Duration::from_secs(3)).await;
    reconciler.pass().await.unwrap();
    let memory: Vec<u64> =
        deployed.iter().filter_map(|id| agents.metrics(*id).last().map(|m| m.memory_bytes)).collect();
    for id in &deployed {
        agents.remove(Actor::Platform, client.id, *id, &ctx).await.unwrap();
    }
    times.sort();
    let median = times[times.len() / 2];
    let mean_mem = memory.iter().sum::<u64>() as f64 / memory.len().max(1) as f64;
    let t = hardening::template(&template).unwrap();
    println!(
        "template {template}: {runs} deploys; deploy -> healthy median {median:?}, min {:?}, max {:?}",
        times[0],
        times[times.len() - 1]
    );
    println!(
        "idle memory per agent: {:.1} MiB (limit {} MiB)",
        mean_mem / 1_048_576.0,
        t.default_memory_bytes / 1_048_576
    );
    let ram = 24.0 * 1024.0 * 1024.0 * 1024.0;
    println!(
        "on a 24 GiB machine: ~{:.0} agents by idle memory, {:.0} by their memory limits",
        ram / mean_mem.max(1.0),
        ram / t.default_memory_bytes as f64
    );
}
