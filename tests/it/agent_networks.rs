//! Agent networks on a host where part of the pool is already taken: a network left by an interrupted run,
//! another program, or another DeployClaw on the same machine. A deploy skips every block such a network
//! overlaps instead of failing with the runtime's "subnet already used". Real Podman; the only networks made
//! are the test's own, with explicit subnets and gateways, and nothing is sent anywhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use deployclaw::agents::Agents;
use deployclaw::audit::Actor;
use deployclaw::context::RequestContext;
use deployclaw::db::agents::AgentName;
use deployclaw::runtime::subnets::Pool;
use deployclaw::runtime::{ContainerRuntime, NetworkSpec};
use deployclaw::vault::Vault;

use crate::support::{new_client, test_keyring, TestDb, Which};

fn ctx() -> RequestContext {
    RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: Some("agent-networks-test".into()) }
}

#[tokio::test]
async fn a_deploy_skips_subnets_other_networks_on_the_host_hold() {
    let runtime: Arc<dyn ContainerRuntime> =
        Arc::new(deployclaw::runtime::connect(None).await.expect("a container runtime (run ./scripts/test)"));
    for (n, which) in [Which::Sqlite, Which::Postgres].into_iter().enumerate() {
        // A pool of this process's own, apart from every other test's and from the platform's default.
        let pool = Pool::parse(&format!("10.211.{}.0/24", (std::process::id() * 2 + n as u32) % 256)).unwrap();
        // Someone else's networks on blocks 0 and 2 of it.
        let foreign: Vec<NetworkSpec> = [0, 2]
            .iter()
            .map(|&b| NetworkSpec {
                name: format!("dc-test-foreign-{}-{n}-{b}", std::process::id()),
                subnet: pool.block(b).unwrap(),
                labels: BTreeMap::from([("deployclaw.test".to_string(), "agent-networks".to_string())]),
            })
            .collect();
        for spec in &foreign {
            runtime.remove_network(&spec.name).await.unwrap();
            runtime.ensure_network(spec).await.unwrap();
        }

        let t = TestDb::fresh(which).await;
        let vault = Vault::new(t.db.clone(), test_keyring(&[1]));
        let agents = Agents::new(crate::support::agents_parts(&t.db, vault, Some(runtime.clone()), pool));
        let client = new_client(&t.db, "Netco").await;
        let mut deployed = Vec::new();
        for name in ["first", "second"] {
            let agent = agents
                .configure(Actor::Platform, client.id, AgentName::parse(name).unwrap(), "test-agent", &ctx())
                .await
                .unwrap();
            let agent = agents
                .deploy(Actor::Platform, client.id, agent.id, &ctx())
                .await
                .unwrap_or_else(|e| panic!("{which:?}: deploying {name} beside foreign networks: {e}"));
            deployed.push(agent);
        }
        let blocks: Vec<Option<i64>> = deployed.iter().map(|a| a.network_block.map(i64::from)).collect();
        assert_eq!(blocks, [Some(1), Some(3)], "{which:?}: the blocks the foreign networks hold are skipped");
        let subnets = runtime.network_subnets().await.unwrap();
        for b in [1, 3] {
            assert!(subnets.contains(&pool.block(b).unwrap().to_string()), "{which:?}: block {b}'s network exists");
        }

        for agent in &deployed {
            agents.remove(Actor::Platform, client.id, agent.id, &ctx()).await.unwrap();
        }
        for spec in &foreign {
            runtime.remove_network(&spec.name).await.unwrap();
        }
    }
}
