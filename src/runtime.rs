//! Container runtimes: where agents run.
//!
//! [`ContainerRuntime`] is the small set of operations the platform needs - private networks, per-agent
//! volumes, hardened containers, their state, stats and logs - phrased so that a Kubernetes driver can
//! implement it later (network -> NetworkPolicy'd namespace, volume -> PVC, container -> Pod). Today's driver,
//! [`docker::DockerRuntime`], speaks the Docker Engine API through bollard, to Docker or to Podman's
//! Docker-compatible socket. What makes a container safe to run an agent in is decided once, in [`hardening`],
//! never by the driver.

pub mod bounds;
pub mod config;
pub mod docker;
pub mod firewall;
pub mod hardening;
pub mod subnets;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use async_trait::async_trait;

/// Label on everything the platform creates, so orphans can be found (`deployclaw.managed=true`).
pub const LABEL_MANAGED: &str = "deployclaw.managed";
pub const LABEL_CLIENT: &str = "deployclaw.client";
pub const LABEL_AGENT: &str = "deployclaw.agent";

/// An IPv4 network the runtime creates: isolated (`internal`: no route out), without DNS, with an explicit
/// subnet and gateway (never let the runtime pick: an unrouted gateway would leak traffic off the machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: subnets::Subnet,
    pub labels: BTreeMap<String, String>,
}

/// A tmpfs mount (writable scratch space that never touches disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsSpec {
    pub target: String,
    pub size_bytes: u64,
    /// File mode of the mount point, e.g. 0o1777 for /tmp.
    pub mode: u32,
    /// A read-only tmpfs hides whatever the runtime would otherwise mount there writable.
    pub writable: bool,
}

/// A named volume mounted read-write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
}

/// Resource limits of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    /// CPU in billionths of a CPU (1.0 CPU = 1_000_000_000).
    pub nano_cpus: u64,
    pub pids: u32,
    /// `nofile` and `nproc` ulimits (soft = hard). The runtime refuses to start containers without them here.
    pub nofile: u32,
    pub nproc: u32,
}

/// Everything a container is created from. Built by [`hardening`] for agents; the driver maps it 1:1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Numeric `uid:gid`; never root.
    pub user: String,
    pub network: String,
    /// The container's address on `network`.
    pub ip: Ipv4Addr,
    pub read_only_rootfs: bool,
    pub tmpfs: Vec<TmpfsSpec>,
    pub volumes: Vec<VolumeMount>,
    pub limits: Limits,
    pub labels: BTreeMap<String, String>,
}

/// What the runtime says a container is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// `created`, `running`, `exited`, ... as the runtime names it.
    pub state: String,
    pub exit_code: Option<i64>,
    /// When it last exited, as the runtime writes it (RFC 3339); `None` if it never has or is not inspected.
    pub finished_at: Option<String>,
    pub restart_count: i64,
    pub labels: BTreeMap<String, String>,
}

/// One resource sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsSample {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub pids: u64,
}

/// Where the runtime is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub endpoint: String,
    /// e.g. `Podman Engine 4.3.1` or `Docker Engine 28.2.2`.
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "no container runtime found: set DOCKER_HOST=unix:///path/to/docker.sock, or start Docker, or Podman's \
         API service (`podman system service`; ./scripts/run does this for you). Tried: {tried}"
    )]
    NotFound { tried: String },
    #[error("container runtime at {endpoint} is not answering: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("{0} not found in the container runtime")]
    Missing(String),
    #[error("container runtime refused: {0}")]
    Refused(String),
    #[error("invalid runtime setting: {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

#[async_trait]
pub trait ContainerRuntime: Send + Sync + std::fmt::Debug {
    /// Checks the runtime answers; says what it is.
    async fn info(&self) -> Result<RuntimeInfo>;
    /// Creates the network unless one by that name exists (then it must have the same subnet).
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<()>;
    /// The subnets of every network the runtime has, whoever made it (ours, another program's, or another
    /// DeployClaw's on the same host), as CIDR text.
    async fn network_subnets(&self) -> Result<Vec<String>>;
    /// Removes a network; a missing one is fine.
    async fn remove_network(&self, name: &str) -> Result<()>;
    /// Creates a named volume unless it exists.
    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()>;
    /// Removes a volume; a missing one is fine.
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Creates (does not start) a container; returns its id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;
    async fn start_container(&self, name: &str) -> Result<()>;
    /// Stops with SIGTERM, then SIGKILL after `grace_secs`. A stopped or missing container is fine.
    async fn stop_container(&self, name: &str, grace_secs: u32) -> Result<()>;
    /// Removes a container (forcibly); a missing one is fine.
    async fn remove_container(&self, name: &str) -> Result<()>;
    /// The container's status, or `None` if it does not exist.
    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerStatus>>;
    /// Every container carrying `label=value`.
    async fn list_containers(&self, label: &str, value: &str) -> Result<Vec<ContainerStatus>>;
    /// One stats sample of a running container.
    async fn stats(&self, name: &str) -> Result<StatsSample>;
    /// The last `tail` log lines (stdout and stderr), oldest first.
    async fn logs(&self, name: &str, tail: u32) -> Result<Vec<String>>;
    /// Streams lifecycle events of containers carrying `label=value` that happened at or after `since` (whole
    /// seconds: the runtime replays what it logged since then) into `events`, until the runtime closes the
    /// stream, the receiver is dropped, or an error occurs; the caller reconnects, passing the time its last
    /// stream ended, so nothing in between is lost. `following` is signalled once the subscription is sent.
    async fn watch(
        &self,
        label: &str,
        value: &str,
        since: std::time::SystemTime,
        events: tokio::sync::mpsc::Sender<ContainerEvent>,
        following: tokio::sync::oneshot::Sender<()>,
    ) -> Result<()>;
}

/// Something that happened to a container (`start`, `die`, `oom`, `destroy`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub action: String,
    pub name: String,
}

impl ContainerEvent {
    /// Whether the container stopped or vanished: something the reconciler must look at now.
    pub fn needs_attention(&self) -> bool {
        matches!(self.action.as_str(), "die" | "died" | "oom" | "kill" | "stop" | "destroy" | "remove" | "cleanup")
    }
}

/// Where to look for a Docker-API socket, in order: the explicit setting, `DOCKER_HOST`, Docker's default
/// socket, the project's own Podman service (scripts/lib.sh `ensure_container_runtime`), Podman's root and
/// rootless sockets.
pub fn socket_candidates(explicit: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = explicit {
        out.push(e.to_string());
    }
    if let Some(h) = env("DOCKER_HOST").filter(|h| !h.is_empty()) {
        out.push(h);
    }
    out.push("unix:///var/run/docker.sock".into());
    if let Some(home) = env("HOME") {
        let project = PathBuf::from(home).join(".cache/deployclaw/podman/podman.sock");
        out.push(format!("unix://{}", project.display()));
    }
    out.push("unix:///run/podman/podman.sock".into());
    if let Some(xdg) = env("XDG_RUNTIME_DIR") {
        out.push(format!("unix://{xdg}/podman/podman.sock"));
    }
    out
}

/// Finds and connects to a runtime: the first candidate that is a unix socket that answers.
pub async fn connect(explicit: Option<&str>) -> Result<docker::DockerRuntime> {
    let candidates = socket_candidates(explicit, &|k| std::env::var(k).ok());
    let mut tried = Vec::new();
    for candidate in candidates {
        let Some(path) = candidate.strip_prefix("unix://") else {
            if explicit == Some(candidate.as_str()) {
                return Err(RuntimeError::Invalid(format!(
                    "{candidate}: only unix:// sockets are supported (a TCP Docker API is unauthenticated)"
                )));
            }
            tried.push(format!("{candidate} (not a unix socket; ignored)"));
            continue;
        };
        if !std::path::Path::new(path).exists() {
            tried.push(format!("{candidate} (absent)"));
            continue;
        }
        let runtime = docker::DockerRuntime::connect_unix(path)?;
        match runtime.info().await {
            Ok(_) => return Ok(runtime),
            Err(e) => tried.push(format!("{candidate} ({e})")),
        }
    }
    Err(RuntimeError::NotFound { tried: tried.join("; ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_explicit_socket_and_docker_host_come_first() {
        let env = |k: &str| match k {
            "DOCKER_HOST" => Some("unix:///tmp/d.sock".to_string()),
            "HOME" => Some("/home/ada".to_string()),
            _ => None,
        };
        let c = socket_candidates(Some("unix:///x.sock"), &env);
        assert_eq!(c[0], "unix:///x.sock");
        assert_eq!(c[1], "unix:///tmp/d.sock");
        assert!(c.contains(&"unix:///home/ada/.cache/deployclaw/podman/podman.sock".to_string()));
        assert!(c.contains(&"unix:///run/podman/podman.sock".to_string()));
    }
}
