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

/// An image an agent can be deployed from. Data: the built-in ones below, plus any the operator lists under
/// `[[runtime.templates]]` (images from their own registry), checked by [`Template::custom`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: String,
    /// What the deploy form shows.
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub port: u16,
    pub health_path: String,
    /// Where the per-agent state volume is mounted (the only persistent writable path).
    pub state_dir: String,
    pub default_memory_bytes: u64,
    /// Below this the agent does not start reliably; settings may not go lower.
    pub min_memory_bytes: u64,
    /// Numeric uid:gid the image's files belong to (never 0).
    pub user: String,
}

const MIB: u64 = 1024 * 1024;

/// The port of the egress proxy on every agent network's gateway address.
pub const GATEWAY_PORT: u16 = 3128;

/// Processes (and threads) an agent container may run at once.
pub const PIDS_LIMIT: u32 = 256;

/// The environment variable holding the agent's gateway token (set by `agents`).
pub const TOKEN_ENV: &str = "DEPLOYCLAW_AGENT_TOKEN";

/// Memory an operator's template may ask for by default (MiB).
pub const TEMPLATE_MEMORY_MIB: std::ops::RangeInclusive<u64> = 16..=8192;

/// The templates this build knows.
pub fn builtin() -> Vec<Template> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    vec![
        Template {
            id: "openclaw".into(),
            name: "OpenClaw gateway".into(),
            image: "localhost/deployclaw/openclaw:latest".into(),
            command: owned(&["openclaw", "gateway", "run"]),
            port: 18789,
            health_path: "/healthz".into(),
            state_dir: "/home/node/.openclaw".into(),
            // ~750 MB resident after start; killed at 512 MiB.
            default_memory_bytes: 1024 * MIB,
            min_memory_bytes: 1024 * MIB,
            user: "1000:1000".into(),
        },
        Template {
            id: "test-agent".into(),
            name: "Test agent (diagnostics)".into(),
            image: "localhost/deployclaw/test-agent:latest".into(),
            command: owned(&["/test-agent"]),
            port: 8080,
            health_path: "/healthz".into(),
            state_dir: "/state".into(),
            default_memory_bytes: 64 * MIB,
            min_memory_bytes: 16 * MIB,
            user: "65534:65534".into(),
        },
    ]
}

/// A built-in template by id.
pub fn template(id: &str) -> Option<Template> {
    builtin().into_iter().find(|t| t.id == id)
}

/// What an operator writes under `[[runtime.templates]]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub port: u16,
    pub health_path: String,
    pub state_dir: String,
    pub memory_mib: u64,
    pub min_memory_mib: u64,
    pub user: String,
}

impl Template {
    /// An operator's template, checked: a slug id, an image reference, a command, a port other than the
    /// gateway's, absolute paths (the state directory not a system one), memory within bounds and at least
    /// its minimum, and a numeric non-root `uid:gid`.
    pub fn custom(t: TemplateInput) -> Result<Self, String> {
        let slug = |s: &str| {
            (1..=40).contains(&s.len())
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if !slug(&t.id) {
            return Err(format!("id {:?}: use a-z, 0-9 and '-', start with a letter, at most 40", t.id));
        }
        let id = &t.id;
        if t.name.trim().is_empty() || t.name.chars().count() > 80 {
            return Err(format!("{id}: name must be 1 to 80 characters"));
        }
        let image_ok = (1..=255).contains(&t.image.len())
            && t.image.chars().all(|c| c.is_ascii_alphanumeric() || "./:-_@".contains(c))
            && t.image.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !image_ok {
            return Err(format!(
                "{id}: image {:?} is not an image reference like registry.example.com/team/agent:1.2",
                t.image
            ));
        }
        if t.command.is_empty() || t.command.len() > 32 || t.command.iter().any(|a| a.is_empty() || a.len() > 1024) {
            return Err(format!("{id}: command must be 1 to 32 non-empty arguments"));
        }
        if t.port == 0 || t.port == GATEWAY_PORT {
            return Err(format!("{id}: port must be 1-65535 and not {GATEWAY_PORT} (the gateway's)"));
        }
        let path_ok =
            |p: &str| p.starts_with('/') && !p.contains("..") && !p.contains(char::is_whitespace) && p.len() <= 255;
        if !path_ok(&t.health_path) {
            return Err(format!("{id}: health_path must be an absolute path like /healthz"));
        }
        let system =
            ["/", "/tmp", "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/run", "/var/tmp"];
        let state = t.state_dir.trim_end_matches('/');
        if !path_ok(&t.state_dir)
            || system.iter().any(|s| state == *s || (*s != "/" && state.starts_with(&format!("{s}/"))))
            || state.is_empty()
        {
            return Err(format!("{id}: state_dir must be an absolute path outside system directories, like /data"));
        }
        if !TEMPLATE_MEMORY_MIB.contains(&t.memory_mib)
            || !TEMPLATE_MEMORY_MIB.contains(&t.min_memory_mib)
            || t.min_memory_mib > t.memory_mib
        {
            return Err(format!(
                "{id}: memory_mib and min_memory_mib must be {}-{} MiB, the minimum not above the default",
                TEMPLATE_MEMORY_MIB.start(),
                TEMPLATE_MEMORY_MIB.end()
            ));
        }
        let numeric_user = t
            .user
            .split_once(':')
            .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)))
            .filter(|(u, g)| *u != 0 && *g != 0);
        if numeric_user.is_none() {
            return Err(format!("{id}: user must be a numeric uid:gid other than root, like 1000:1000"));
        }
        Ok(Self {
            id: t.id,
            name: t.name.trim().to_string(),
            image: t.image,
            command: t.command,
            port: t.port,
            health_path: t.health_path,
            state_dir: state.to_string(),
            default_memory_bytes: t.memory_mib * MIB,
            min_memory_bytes: t.min_memory_mib * MIB,
            user: t.user,
        })
    }
}

/// The templates agents can be deployed from: the built-in ones, then the operator's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates(Vec<Template>);

impl Default for Templates {
    fn default() -> Self {
        Self(builtin())
    }
}

impl Templates {
    /// The built-in templates plus `extra`; an id used twice is refused.
    pub fn with(extra: Vec<Template>) -> Result<Self, String> {
        let mut all = builtin();
        for t in extra {
            if all.iter().any(|known| known.id == t.id) {
                return Err(format!("template id {:?} is used twice (built-in ids: openclaw, test-agent)", t.id));
            }
            all.push(t);
        }
        Ok(Self(all))
    }

    pub fn get(&self, id: &str) -> Option<&Template> {
        self.0.iter().find(|t| t.id == id)
    }

    pub fn all(&self) -> &[Template] {
        &self.0
    }
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
    // Model calls go to the LLM gateway on the same address, with the agent token in place of a provider
    // key (stock SDKs read these variables); the gateway itself is not reached through the proxy.
    if let Some(token) = env.iter().find(|(k, _)| k == TOKEN_ENV).map(|(_, t)| t.clone()) {
        let base = format!("http://{}:{GATEWAY_PORT}", subnet.gateway());
        env.push(("OPENAI_BASE_URL".into(), format!("{base}/v1")));
        env.push(("OPENAI_API_KEY".into(), token.clone()));
        env.push(("ANTHROPIC_BASE_URL".into(), base));
        env.push(("ANTHROPIC_API_KEY".into(), token));
    }
    for key in ["NO_PROXY", "no_proxy"] {
        env.push((key.to_string(), subnet.gateway().to_string()));
    }
    env.push(("XDG_CACHE_HOME".into(), "/tmp/.cache".into()));
    env.push(("PORT".into(), template.port.to_string()));
    ContainerSpec {
        name: names.container,
        image: template.image.clone(),
        command: template.command.clone(),
        env,
        user: template.user.clone(),
        network: names.network,
        ip: subnet.host(),
        read_only_rootfs: true,
        tmpfs: scratch_mounts(),
        volumes: vec![VolumeMount { volume: names.volume, target: template.state_dir.clone() }],
        limits,
        labels: labels(client, agent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::subnets::DEFAULT_POOL;

    fn input() -> TemplateInput {
        TemplateInput {
            id: "my-agent".into(),
            name: "My agent".into(),
            image: "registry.example.com/team/agent:1.2".into(),
            command: vec!["/app/agent".into(), "--serve".into()],
            port: 8080,
            health_path: "/healthz".into(),
            state_dir: "/data/".into(),
            memory_mib: 512,
            min_memory_mib: 256,
            user: "1000:1000".into(),
        }
    }

    #[test]
    fn operator_templates_are_checked_and_added_after_the_built_in_ones() {
        let t = Template::custom(input()).unwrap();
        assert_eq!((t.state_dir.as_str(), t.default_memory_bytes, t.min_memory_bytes), ("/data", 512 * MIB, 256 * MIB));
        let all = Templates::with(vec![t]).unwrap();
        assert_eq!(all.all().iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["openclaw", "test-agent", "my-agent"]);
        assert!(all.get("my-agent").is_some() && all.get("nope").is_none());
        let twice = Template::custom(TemplateInput { id: "openclaw".into(), ..input() }).unwrap();
        assert!(Templates::with(vec![twice]).unwrap_err().contains("used twice"));
        let bad: Vec<(TemplateInput, &str)> = vec![
            (TemplateInput { id: "My_Agent".into(), ..input() }, "id"),
            (TemplateInput { image: "bad image".into(), ..input() }, "image"),
            (TemplateInput { image: "-rm".into(), ..input() }, "image"),
            (TemplateInput { command: vec![], ..input() }, "command"),
            (TemplateInput { port: 3128, ..input() }, "port"),
            (TemplateInput { health_path: "healthz".into(), ..input() }, "health_path"),
            (TemplateInput { state_dir: "/etc/agent".into(), ..input() }, "state_dir"),
            (TemplateInput { state_dir: "/".into(), ..input() }, "state_dir"),
            (TemplateInput { state_dir: "/data/../etc".into(), ..input() }, "state_dir"),
            (TemplateInput { memory_mib: 9000, ..input() }, "memory"),
            (TemplateInput { min_memory_mib: 1024, ..input() }, "memory"),
            (TemplateInput { user: "0:0".into(), ..input() }, "user"),
            (TemplateInput { user: "node".into(), ..input() }, "user"),
        ];
        for (t, field) in bad {
            let err = Template::custom(t.clone()).unwrap_err();
            assert!(err.contains(field), "{t:?}: {err}");
        }
    }

    #[test]
    fn agent_containers_are_locked_down_and_named_after_their_owner() {
        let (client, agent) = (ClientId::new(), AgentId::new());
        let t = &template("openclaw").unwrap();
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
        let t = &template("test-agent").unwrap();
        let subnet = DEFAULT_POOL.block(5).unwrap();
        let env = vec![(TOKEN_ENV.to_string(), "dca_abc-_1".to_string())];
        let spec = container_spec(t, client, agent, subnet, limits(t, None, 1000), env);
        for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            let proxy = spec.env.iter().find(|(k, _)| k == key).unwrap();
            assert_eq!(proxy.1, format!("http://agent:dca_abc-_1@{}:3128", subnet.gateway()), "{key}");
        }
        let get = |key: &str| spec.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("OPENAI_BASE_URL"), Some(format!("http://{}:3128/v1", subnet.gateway()).as_str()));
        assert_eq!(get("ANTHROPIC_BASE_URL"), Some(format!("http://{}:3128", subnet.gateway()).as_str()));
        assert_eq!(get("OPENAI_API_KEY"), Some("dca_abc-_1"), "the agent token stands in for the provider key");
        assert_eq!(get("ANTHROPIC_API_KEY"), Some("dca_abc-_1"));
        assert_eq!(get("NO_PROXY"), Some(subnet.gateway().to_string().as_str()));
    }
}
