//! The Docker Engine API driver (bollard), for Docker and for Podman's Docker-compatible socket.
//!
//! It maps [`ContainerSpec`]s one to one and adds nothing: every isolation decision is in `hardening`. Only
//! unix sockets are supported - a TCP Docker API is unauthenticated root on the host.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount, MountTmpfsOptions,
    MountType, NetworkCreateRequest, NetworkingConfig, ResourcesUlimits, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectNetworkOptions, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, StartContainerOptions, StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::{
    ContainerEvent, ContainerRuntime, ContainerSpec, ContainerStatus, NetworkSpec, Result, RuntimeError, RuntimeInfo,
    StatsSample,
};

/// Seconds any single runtime call may take.
const TIMEOUT_SECS: u64 = 60;

#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    endpoint: String,
    socket: std::path::PathBuf,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime").field("endpoint", &self.endpoint).finish()
    }
}

impl DockerRuntime {
    /// A client for the API socket at `path` (no connection is made yet).
    pub fn connect_unix(path: &str) -> Result<Self> {
        let docker = Docker::connect_with_unix(path, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(|e| RuntimeError::Unreachable { endpoint: path.to_string(), detail: e.to_string() })?;
        Ok(Self { docker, endpoint: format!("unix://{path}"), socket: path.into() })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn error(&self, what: &str, e: BollardError) -> RuntimeError {
        match e {
            BollardError::DockerResponseServerError { status_code: 404, .. } => RuntimeError::Missing(what.to_string()),
            BollardError::DockerResponseServerError { status_code, message } if status_code < 500 => {
                RuntimeError::Refused(format!("{what}: {message} ({status_code})"))
            }
            BollardError::DockerResponseServerError { status_code, message } => {
                RuntimeError::Refused(format!("{what}: runtime error {status_code}: {message}"))
            }
            other => RuntimeError::Unreachable { endpoint: self.endpoint.clone(), detail: other.to_string() },
        }
    }

    /// A GET answered with JSON, read without bollard's typed models: Podman reports states the Docker API
    /// does not have (a container that just exited is `stopped`), which the typed models cannot parse.
    /// HTTP/1.0, so the answer is never chunked and ends when the connection closes. `None` for 404.
    async fn get_json(&self, path: &str) -> Result<Option<serde_json::Value>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let unreachable = |detail: String| RuntimeError::Unreachable { endpoint: self.endpoint.clone(), detail };
        let exchange = async {
            let mut s = tokio::net::UnixStream::connect(&self.socket).await?;
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes()).await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = tokio::time::timeout(std::time::Duration::from_secs(TIMEOUT_SECS), exchange)
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let split =
            buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| unreachable("malformed answer".into()))?;
        let head = String::from_utf8_lossy(&buf[..split]);
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = &buf[split + 4..];
        match status {
            200 => {
                serde_json::from_slice(body).map(Some).map_err(|e| unreachable(format!("bad JSON from {path}: {e}")))
            }
            404 => Ok(None),
            other => Err(RuntimeError::Refused(format!("{path}: {other}: {}", String::from_utf8_lossy(body).trim()))),
        }
    }

    /// Missing is fine (idempotent removals).
    fn ignore_missing(&self, what: &str, r: std::result::Result<(), BollardError>) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(e) => match self.error(what, e) {
                RuntimeError::Missing(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}

/// Percent-encodes everything but unreserved characters, for names and filters in request paths.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn string_map(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn hash(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn info(&self) -> Result<RuntimeInfo> {
        let v = self.docker.version().await.map_err(|e| self.error("version", e))?;
        let product =
            v.platform.map(|p| p.name).filter(|n| !n.is_empty()).unwrap_or_else(|| "Docker Engine API".into());
        Ok(RuntimeInfo {
            endpoint: self.endpoint.clone(),
            version: format!("{product} {}", v.version.unwrap_or_default()),
        })
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<()> {
        match self.docker.inspect_network(&spec.name, None::<InspectNetworkOptions>).await {
            Ok(existing) => {
                let subnets: Vec<String> = existing
                    .ipam
                    .and_then(|i| i.config)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.subnet)
                    .collect();
                return if subnets.contains(&spec.subnet.to_string()) {
                    Ok(())
                } else {
                    Err(RuntimeError::Refused(format!(
                        "network {} exists with subnets {subnets:?}, expected {}",
                        spec.name, spec.subnet
                    )))
                };
            }
            Err(e) => match self.error("network", e) {
                RuntimeError::Missing(_) => {}
                other => return Err(other),
            },
        }
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some("bridge".into()),
            internal: Some(true),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(spec.subnet.to_string()),
                    gateway: Some(spec.subnet.gateway().to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            // Podman: no DNS server on the network (the agent resolves nothing; the gateway resolves for it).
            options: Some(HashMap::from([("dns_enabled".to_string(), "false".to_string())])),
            labels: Some(hash(&spec.labels)),
            ..Default::default()
        };
        self.docker.create_network(request).await.map_err(|e| self.error(&format!("network {}", spec.name), e))?;
        Ok(())
    }

    async fn network_subnets(&self) -> Result<Vec<String>> {
        let networks = self
            .docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(|e| self.error("networks", e))?;
        Ok(networks
            .into_iter()
            .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
            .filter_map(|c| c.subnet)
            .collect())
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let r = self.docker.remove_network(name).await;
        self.ignore_missing(&format!("network {name}"), r)
    }

    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        let request =
            VolumeCreateRequest { name: Some(name.to_string()), labels: Some(hash(labels)), ..Default::default() };
        self.docker.create_volume(request).await.map_err(|e| self.error(&format!("volume {name}"), e))?;
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        let r = self.docker.remove_volume(name, Some(options)).await;
        self.ignore_missing(&format!("volume {name}"), r)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut mounts: Vec<Mount> = spec
            .volumes
            .iter()
            .map(|v| Mount {
                typ: Some(MountType::VOLUME),
                source: Some(v.volume.clone()),
                target: Some(v.target.clone()),
                read_only: Some(false),
                ..Default::default()
            })
            .collect();
        mounts.extend(spec.tmpfs.iter().map(|t| Mount {
            typ: Some(MountType::TMPFS),
            target: Some(t.target.clone()),
            read_only: Some(!t.writable),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: Some(as_i64(t.size_bytes)),
                mode: Some(i64::from(t.mode)),
                ..Default::default()
            }),
            ..Default::default()
        }));
        let ulimit = |name: &str, v: u32| ResourcesUlimits {
            name: Some(name.to_string()),
            soft: Some(i64::from(v)),
            hard: Some(i64::from(v)),
        };
        let host = HostConfig {
            readonly_rootfs: Some(spec.read_only_rootfs),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            publish_all_ports: Some(false),
            memory: Some(as_i64(spec.limits.memory_bytes)),
            // No swap beyond the memory limit.
            memory_swap: Some(as_i64(spec.limits.memory_bytes)),
            nano_cpus: Some(as_i64(spec.limits.nano_cpus)),
            pids_limit: Some(i64::from(spec.limits.pids)),
            ulimits: Some(vec![ulimit("nofile", spec.limits.nofile), ulimit("nproc", spec.limits.nproc)]),
            network_mode: Some(spec.network.clone()),
            mounts: Some(mounts),
            // No IPC namespace to share and no /dev/shm to write to.
            ipc_mode: Some("none".into()),
            // A minimal init as PID 1 forwards SIGTERM (an agent as PID 1 would ignore it and only die at the
            // SIGKILL after the grace period) and reaps zombies.
            init: Some(true),
            ..Default::default()
        };
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig { ipv4_address: Some(spec.ip.to_string()), ..Default::default() }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.command.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: Some(spec.user.clone()),
            labels: Some(hash(&spec.labels)),
            host_config: Some(host),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.error(&format!("container {}", spec.name), e))?;
        Ok(created.id)
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        self.docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(|e| self.error(&format!("container {name}"), e))
    }

    async fn stop_container(&self, name: &str, grace_secs: u32) -> Result<()> {
        let options = StopContainerOptionsBuilder::default().t(i32::try_from(grace_secs).unwrap_or(30)).build();
        match self.docker.stop_container(name, Some(options)).await {
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            r => self.ignore_missing(&format!("container {name}"), r),
        }
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let r = self.docker.remove_container(name, Some(options)).await;
        self.ignore_missing(&format!("container {name}"), r)
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerStatus>> {
        let Some(c) = self.get_json(&format!("/containers/{}/json", urlencode(name))).await? else { return Ok(None) };
        let state = &c["State"];
        Ok(Some(ContainerStatus {
            id: c["Id"].as_str().unwrap_or_default().to_string(),
            name: c["Name"].as_str().unwrap_or_default().trim_start_matches('/').to_string(),
            running: state["Running"].as_bool().unwrap_or(false),
            state: state["Status"].as_str().unwrap_or_default().to_string(),
            exit_code: state["ExitCode"].as_i64(),
            // Docker and Podman write the zero time (year 1) for a container that never exited.
            finished_at: state["FinishedAt"].as_str().filter(|t| !t.starts_with("0001-")).map(str::to_string),
            restart_count: c["RestartCount"].as_i64().unwrap_or(0),
            labels: string_map(&c["Config"]["Labels"]),
        }))
    }

    async fn list_containers(&self, label: &str, value: &str) -> Result<Vec<ContainerStatus>> {
        let filters = serde_json::json!({ "label": [format!("{label}={value}")] }).to_string();
        let path = format!("/containers/json?all=true&filters={}", urlencode(&filters));
        let list = self.get_json(&path).await?.unwrap_or_default();
        Ok(list
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|c| {
                        let state = c["State"].as_str().unwrap_or_default().to_string();
                        ContainerStatus {
                            id: c["Id"].as_str().unwrap_or_default().to_string(),
                            name: c["Names"][0].as_str().unwrap_or_default().trim_start_matches('/').to_string(),
                            running: state == "running",
                            state,
                            exit_code: None,
                            finished_at: None,
                            restart_count: 0,
                            labels: string_map(&c["Labels"]),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn stats(&self, name: &str) -> Result<StatsSample> {
        let options = StatsOptionsBuilder::default().stream(false).build();
        let mut stream = self.docker.stats(name, Some(options));
        let sample = match stream.next().await {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(self.error(&format!("container {name}"), e)),
            None => return Err(RuntimeError::Missing(format!("stats of {name}"))),
        };
        let cpu = sample.cpu_stats.unwrap_or_default();
        let pre = sample.precpu_stats.unwrap_or_default();
        let total =
            |s: &bollard::models::ContainerCpuStats| s.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0);
        let cpu_delta = total(&cpu).saturating_sub(total(&pre)) as f64;
        let system_delta = cpu.system_cpu_usage.unwrap_or(0).saturating_sub(pre.system_cpu_usage.unwrap_or(0)) as f64;
        let cpus = f64::from(cpu.online_cpus.unwrap_or(1).max(1));
        let cpu_percent = if system_delta > 0.0 { cpu_delta / system_delta * cpus * 100.0 } else { 0.0 };
        Ok(StatsSample {
            cpu_percent,
            memory_bytes: sample.memory_stats.and_then(|m| m.usage).unwrap_or(0),
            pids: sample.pids_stats.and_then(|p| p.current).unwrap_or(0),
        })
    }

    async fn watch(
        &self,
        label: &str,
        value: &str,
        since: std::time::SystemTime,
        events: tokio::sync::mpsc::Sender<ContainerEvent>,
        following: tokio::sync::oneshot::Sender<()>,
    ) -> Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        /// An event is a small JSON object; a longer line means the stream is not what we think it is.
        const MAX_LINE: usize = 256 * 1024;
        let unreachable = |detail: String| RuntimeError::Unreachable { endpoint: self.endpoint.clone(), detail };
        let filters = serde_json::json!({ "label": [format!("{label}={value}")], "type": ["container"] }).to_string();
        let mut s = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| unreachable(e.to_string()))?;
        // HTTP/1.0: the body is the raw stream of JSON lines, never chunked.
        // `since` makes the runtime replay what it logged from then on (Podman sends no answer head before its
        // first event, so the subscription itself is the only point we can count from).
        let since = since.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let request =
            format!("GET /events?since={since}&filters={} HTTP/1.0\r\nHost: docker\r\n\r\n", urlencode(&filters));
        s.write_all(request.as_bytes()).await.map_err(|e| unreachable(e.to_string()))?;
        let _ = following.send(());
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let mut in_body = false;
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| unreachable(e.to_string()))?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if !in_body {
                let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if buf.len() > MAX_LINE {
                        return Err(unreachable("malformed events answer".into()));
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..split]).into_owned();
                if head.split_whitespace().nth(1) != Some("200") {
                    return Err(RuntimeError::Refused(format!("events: {}", head.lines().next().unwrap_or(""))));
                }
                buf.drain(..split + 4);
                in_body = true;
            }
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<serde_json::Value>(&line) else { continue };
                let action = event["Action"].as_str().or(event["status"].as_str()).unwrap_or_default();
                let name = event["Actor"]["Attributes"]["name"].as_str().unwrap_or_default();
                let event = ContainerEvent { action: action.to_string(), name: name.to_string() };
                if events.send(event).await.is_err() {
                    return Ok(()); // nobody listens any more
                }
            }
            if buf.len() > MAX_LINE {
                return Err(unreachable("an events line is too long".into()));
            }
        }
    }

    async fn logs(&self, name: &str, tail: u32) -> Result<Vec<String>> {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&tail.to_string()).build();
        let mut stream = self.docker.logs(name, Some(options));
        // Frames can end mid-line: join them before splitting.
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error(&format!("container {name}"), e))?;
            text.push_str(&chunk.to_string());
        }
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let skip = lines.len().saturating_sub(tail as usize);
        Ok(lines.split_off(skip))
    }
}
