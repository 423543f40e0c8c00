//! What every agent container looks like - decided here, once, and checked by tests that inspect real
//! containers.
//!
//! Every agent gets: its own internal network (no route out, explicit subnet and gateway) and nothing else;
//! a read-only root filesystem with only its own state volume and a small `/tmp` writable; no capabilities;
//! `no-new-privileges`; a non-root numeric user; memory, CPU, pids, nofile and nproc limits; no published
//! ports; labels naming its client and agent; names `dc-{client8}-{agent8}`.

use std::collections::BTreeMap;

use super::subnets::Subnet;
use super::{ContainerSpec, Limits, NetworkSpec, TmpfsSpec, VolumeMount, LABEL_AGENT, LABEL_CLIENT, LABEL_MANAGED};
use crate::db::{AgentId, ClientId};

/// An image an agent can be deployed from. Data, so operators can add images from their own registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: &'static str,
    pub image: &'static str,
    pub command: &'static [&'static str],
    pub port: u16,
    pub health_path: &'static str,
    /// Where the per-agent state volume is mounted (the only persistent writable path).
    pub state_dir: &'static str,
    pub default_memory_bytes: u64,
    /// Below this the agent does not start reliably; settings may not go lower.
    pub min_memory_bytes: u64,
    /// Numeric uid:gid the image's files belong to.
    pub user: &'static str,
}

const MIB: u64 = 1024 * 1024;

/// The port of the egress proxy on every agent network's gateway address.
pub const GATEWAY_PORT: u16 = 3128;

/// Processes (and threads) an agent container may run at once.
pub const PIDS_LIMIT: u32 = 256;

/// The environment variable holding the agent's gateway token (set by `agents`).
pub const TOKEN_ENV: &str = "DEPLOYCLAW_AGENT_TOKEN";

/// The templates this build knows.
pub const TEMPLATES: &[Template] = &[
    Template {
        id: "openclaw",
        image: "localhost/deployclaw/openclaw:latest",
        command: &["openclaw", "gateway", "run"],
        port: 18789,
        health_path: "/healthz",
        state_dir: "/home/node/.openclaw",
        // ~750 MB resident after start; killed at 512 MiB.
        default_memory_bytes: 1024 * MIB,
        min_memory_bytes: 1024 * MIB,
        user: "1000:1000",
    },
    Template {
        id: "test-agent",
        image: "localhost/deployclaw/test-agent:latest",
        command: &["/test-agent"],
        port: 8080,
        health_path: "/healthz",
        state_dir: "/state",
        default_memory_bytes: 64 * MIB,
        min_memory_bytes: 16 * MIB,
        user: "65534:65534",
    },
];

pub fn template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

/// The names of an agent's runtime objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub container: String,
    pub network: String,
    pub volume: String,
}

pub fn names(client: ClientId, agent: AgentId) -> Names {
    let base = format!("dc-{}-{}", client.short(), agent.short());
    Names { network: format!("{base}-net"), volume: format!("{base}-state"), container: base }
}

pub fn labels(client: ClientId, agent: AgentId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_CLIENT.to_string(), client.to_string()),
        (LABEL_AGENT.to_string(), agent.to_string()),
    ])
}

/// `/tmp` is the one writable scratch space. Podman also mounts writable tmpfs at `/run` and `/var/tmp` (and
/// `/dev/shm`) under a read-only root; read-only tmpfs mounts there hide them (and `/dev/shm` is not mounted:
/// the container gets no IPC namespace to share).
fn scratch_mounts() -> Vec<TmpfsSpec> {
    let sealed =
        |target: &str| TmpfsSpec { target: target.into(), size_bytes: 64 * 1024, mode: 0o755, writable: false };
    vec![
        TmpfsSpec { target: "/tmp".into(), size_bytes: 64 * MIB, mode: 0o1777, writable: true },
        sealed("/run"),
        sealed("/var/tmp"),
    ]
}

/// The agent's private network.
pub fn network_spec(client: ClientId, agent: AgentId, subnet: Subnet) -> NetworkSpec {
    NetworkSpec { name: names(client, agent).network, subnet, labels: labels(client, agent) }
}

/// Limits for an agent: memory from the plan (or the template's default), CPU, and fixed pids/files limits.
pub fn limits(template: &Template, memory_bytes: Option<u64>, cpus_milli: u32) -> Limits {
    Limits {
        memory_bytes: memory_bytes.unwrap_or(template.default_memory_bytes),
        nano_cpus: u64::from(cpus_milli) * 1_000_000,
        pids: PIDS_LIMIT,
        nofile: 1024,
        nproc: 1024,
    }
}

/// The container of an agent. `env` holds what the agent needs (its gateway token, injected credentials);
/// proxy settings pointing at the gateway are added here, with the token (`DEPLOYCLAW_AGENT_TOKEN`, when
/// given) as the proxy password: `http://agent:TOKEN@GATEWAY:3128`, which is how Node and curl send
/// `Proxy-Authorization: Basic`. The token is URL-safe base64, so it needs no escaping.
pub fn container_spec(
    template: &Template,
    client: ClientId,
    agent: AgentId,
    subnet: Subnet,
    limits: Limits,
    mut env: Vec<(String, String)>,
) -> ContainerSpec {
    let names = names(client, agent);
    let credentials =
        env.iter().find(|(k, _)| k == TOKEN_ENV).map(|(_, token)| format!("agent:{token}@")).unwrap_or_default();
    let proxy = format!("http://{credentials}{}:{GATEWAY_PORT}", subnet.gateway());
    for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.push((key.to_string(), proxy.clone()));
    }
    env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    env.push(("XDG_CACHE_HOME".into(), "/tmp/.cache".into()));
    env.push(("PORT".into(), template.port.to_string()));
    ContainerSpec {
        name: names.container,
        image: template.image.to_string(),
        command: template.command.iter().map(|s| s.to_string()).collect(),
        env,
        user: template.user.to_string(),
        network: names.network,
        ip: subnet.host(),
        read_only_rootfs: true,
        tmpfs: scratch_mounts(),
        volumes: vec![VolumeMount { volume: names.volume, target: template.state_dir.to_string() }],
        limits,
        labels: labels(client, agent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::subnets::DEFAULT_POOL;

    #[test]
    fn agent_containers_are_locked_down_and_named_after_their_owner() {
        let (client, agent) = (ClientId::new(), AgentId::new());
        let t = template("openclaw").unwrap();
        let subnet = DEFAULT_POOL.block(3).unwrap();
        let spec = container_spec(t, client, agent, subnet, limits(t, None, 1000), vec![]);
        assert_eq!(spec.name, format!("dc-{}-{}", client.short(), agent.short()));
        assert!(spec.read_only_rootfs);
        assert!(!spec.user.starts_with("0:") && spec.user != "root");
        assert_eq!(spec.ip, subnet.host());
        assert_eq!(spec.limits.memory_bytes, 1024 * MIB, "OpenClaw needs about 1 GiB");
        assert_eq!(spec.volumes.len(), 1);
        assert_eq!(spec.tmpfs[0].target, "/tmp");
        assert_eq!(spec.labels[LABEL_AGENT], agent.to_string());
        assert_eq!(spec.labels[LABEL_CLIENT], client.to_string());
        let proxy = spec.env.iter().find(|(k, _)| k == "HTTPS_PROXY").unwrap();
        assert_eq!(proxy.1, format!("http://{}:3128", subnet.gateway()));
    }

    #[test]
    fn the_proxy_url_carries_the_agent_token() {
        let (client, agent) = (ClientId::new(), AgentId::new());
        let t = template("test-agent").unwrap();
        let subnet = DEFAULT_POOL.block(5).unwrap();
        let env = vec![(TOKEN_ENV.to_string(), "dca_abc-_1".to_string())];
        let spec = container_spec(t, client, agent, subnet, limits(t, None, 1000), env);
        for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            let proxy = spec.env.iter().find(|(k, _)| k == key).unwrap();
            assert_eq!(proxy.1, format!("http://agent:dca_abc-_1@{}:3128", subnet.gateway()), "{key}");
        }
    }
}
