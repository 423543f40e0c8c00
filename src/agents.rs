//! Agents as the customer manages them: configure, deploy, stop, remove - each audited.
//!
//! An agent is configured first (name, template; credentials can be set while it is not running) and deployed
//! into its container afterwards. Deploying decrypts its credentials (each decryption audited) into the
//! container's environment together with a fresh per-agent gateway token whose SHA-256 alone is stored. What
//! the container looks like is decided by `runtime::hardening`, never here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;

use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::context::RequestContext;
use crate::db::agents::{self, Agent, AgentName, AgentStatus, NewAgent};
use crate::db::{AgentId, ClientId, Db, DbError};
use crate::gateway::{EgressProxy, Permissions};
use crate::plans::{Catalog, PlanLimits};
use crate::runtime::hardening::{self, Template};
use crate::runtime::subnets::{Pool, Subnet};
use crate::runtime::{ContainerRuntime, RuntimeError};
use crate::vault::{CredentialName, DecryptPurpose, Vault, VaultError};

mod egress;
mod limits;
mod metrics;
mod network;
pub mod reconciler;
pub mod settings;

pub use metrics::{MetricPoint, METRIC_HISTORY};

pub use settings::AgentSettings;

/// How long a stopping agent gets between SIGTERM and SIGKILL.
pub const STOP_GRACE_SECS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no container runtime is available on this DeployClaw server; an operator must start one")]
    NoRuntime,
    #[error("the container runtime failed: {0}")]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The environment variable a credential is given to the agent as: `openai_api_key` -> `OPENAI_API_KEY`.
pub fn env_name(credential: &str) -> String {
    credential.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

#[derive(Clone)]
pub struct Agents {
    db: Db,
    vault: Vault,
    runtime: Option<Arc<dyn ContainerRuntime>>,
    pool: Pool,
    metrics: Arc<std::sync::Mutex<HashMap<AgentId, VecDeque<MetricPoint>>>>,
    /// The egress proxy (tests of other parts run without one).
    gateway: Option<EgressProxy>,
    /// What agents can be deployed from: the built-in templates and the operator's.
    templates: Arc<hardening::Templates>,
    /// The last reconciler pass (operator console).
    reconciled: Arc<std::sync::Mutex<Option<ReconcilerStatus>>>,
    /// The billing plans whose limits deploys and settings must stay within.
    catalog: Catalog,
}

/// The outcome of the last reconciler pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcilerStatus {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `None` when the pass succeeded.
    pub error: Option<String>,
    /// Containers with our labels and no agent (never deleted automatically).
    pub orphans: Vec<String>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents").field("runtime", &self.runtime).finish_non_exhaustive()
    }
}

/// Everything an [`Agents`] service is built from. Every field is required, so no limit or part can be
/// forgotten: `plans` is what deploys and settings must stay within, `gateway` the agents' only way out
/// (`None` only where nothing is deployed through it: tests of other parts, the command line).
pub struct AgentsParts {
    pub db: Db,
    pub vault: Vault,
    pub runtime: Option<Arc<dyn ContainerRuntime>>,
    pub pool: Pool,
    pub templates: hardening::Templates,
    pub plans: Catalog,
    pub gateway: Option<EgressProxy>,
}

impl Agents {
    pub fn new(parts: AgentsParts) -> Self {
        let AgentsParts { db, vault, runtime, pool, templates, plans, gateway } = parts;
        Self {
            db,
            vault,
            runtime,
            pool,
            metrics: Arc::default(),
            gateway,
            templates: Arc::new(templates),
            reconciled: Arc::default(),
            catalog: plans,
        }
    }

    /// The templates agents can be deployed from.
    pub fn templates(&self) -> &[Template] {
        self.templates.all()
    }

    /// The template an agent was configured with; `Invalid` if this installation no longer offers it.
    pub fn template_of(&self, agent: &Agent) -> Result<&Template, DbError> {
        self.templates
            .get(&agent.template)
            .ok_or_else(|| DbError::Invalid(format!("unknown template {:?}", agent.template).into()))
    }

    /// Stops a running agent for the platform (billing: over the plan's limits, or payment overdue) with
    /// `reason` shown to the customer. The agent, its volume and its credentials stay. Audited as
    /// `agent.stopped` by the platform. An agent that is not running is left as it is.
    pub async fn stop_for_platform(&self, client_id: ClientId, id: AgentId, reason: &str) -> Result<Agent, AgentError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        if !matches!(agent.status, AgentStatus::Provisioning | AgentStatus::Starting | AgentStatus::Running) {
            return Ok(agent);
        }
        if agent.container_id.is_some() {
            let runtime = self.runtime_or_err()?.clone();
            self.transition(&agent, AgentStatus::Stopping, Some(reason)).await?;
            runtime.stop_container(&hardening::names(client_id, id).container, STOP_GRACE_SECS).await?;
        }
        let stopped = self.transition(&agent, AgentStatus::Stopped, Some(reason)).await?;
        self.audit(&agent, "agent.stopped", json!({ "reason": reason })).await?;
        Ok(stopped)
    }

    pub fn runtime(&self) -> Option<&Arc<dyn ContainerRuntime>> {
        self.runtime.as_ref()
    }

    async fn record(
        &self,
        actor: Actor,
        agent: &Agent,
        name: &'static str,
        ctx: Option<&RequestContext>,
        meta: serde_json::Value,
    ) -> Result<(), DbError> {
        let mut event = NewEvent::new(Some(agent.client_id), actor, ActionType::known(name))
            .agent(agent.id)
            .target(agent.name.as_str())
            .metadata(meta);
        if let Some(ctx) = ctx {
            event = event.request(ctx);
        }
        audit::append(&self.db, event).await.map(|_| ())
    }

    /// Configures a new agent of `client_id` (not deployed). `Invalid` for an unknown template, `Conflict`
    /// for a name the client already uses.
    pub async fn configure(
        &self,
        actor: Actor,
        client_id: ClientId,
        name: AgentName,
        template: &str,
        ctx: &RequestContext,
    ) -> Result<Agent, DbError> {
        if self.templates.get(template).is_none() {
            let known: Vec<&str> = self.templates().iter().map(|t| t.id.as_str()).collect();
            return Err(DbError::Invalid(
                format!("unknown template {template:?}; choose one of: {}", known.join(", ")).into(),
            ));
        }
        let limits = self.limits(client_id).await?;
        let count = agents::list(&self.db, client_id).await?.len();
        if count >= usize::try_from(limits.max_agents).unwrap_or(usize::MAX) {
            return Err(DbError::Invalid(
                format!(
                    "the {} plan allows {} agent(s) and you have {count}; remove one or upgrade on the Billing page",
                    limits.plan_name, limits.max_agents
                )
                .into(),
            ));
        }
        // A new agent may do nothing until its owner grants it something (docs/gateway.md).
        let new = NewAgent {
            name,
            template: template.to_string(),
            config: json!({}),
            permissions: Permissions::deny_all().to_stored(),
        };
        let agent = agents::create_configured(&self.db, client_id, new).await.map_err(|e| match e {
            DbError::Conflict(_) => DbError::Conflict("you already have an agent with this name".into()),
            other => other,
        })?;
        self.record(actor, &agent, "agent.created", Some(ctx), json!({ "template": template })).await?;
        Ok(agent)
    }

    pub async fn list(&self, client_id: ClientId) -> Result<Vec<Agent>, DbError> {
        agents::list(&self.db, client_id).await
    }

    pub async fn get(&self, client_id: ClientId, id: AgentId) -> Result<Agent, DbError> {
        agents::get(&self.db, client_id, id).await
    }

    fn runtime_or_err(&self) -> Result<&Arc<dyn ContainerRuntime>, AgentError> {
        self.runtime.as_ref().ok_or(AgentError::NoRuntime)
    }

    /// Deploys (or redeploys) an agent: its network, volume and a new container with fresh credentials and a
    /// fresh gateway token, started. The agent is `provisioning` until [`Agents::check_health`] sees it answer.
    pub async fn deploy(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: AgentId,
        ctx: &RequestContext,
    ) -> Result<Agent, AgentError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        let client = crate::db::clients::get(&self.db, client_id).await?;
        if client.status == crate::db::clients::ClientStatus::Suspended {
            return Err(DbError::Invalid(
                "this account is suspended by the operators: agents cannot be started until it is lifted".into(),
            )
            .into());
        }
        let template = self.template_of(&agent)?;
        self.check_running_within_plan(&agent).await?;
        let settings = AgentSettings::from_config(&agent.config)?;
        self.check_settings_within_plan(client_id, &settings, template).await?;
        let runtime = self.runtime_or_err()?.clone();
        self.transition(&agent, AgentStatus::Provisioning, Some("deploying")).await?;
        self.record(actor, &agent, "agent.deploy_requested", Some(ctx), json!({ "template": template.id })).await?;
        match self.start_container(&*runtime, &agent, template).await {
            Ok((container_id, token_hash, subnet)) => {
                agents::clear_crashes(&self.db, client_id, id).await?;
                let deployed = agents::set_runtime_state(
                    &self.db,
                    client_id,
                    id,
                    AgentStatus::Starting,
                    Some(&container_id),
                    Some("waiting for its health check"),
                    Some(&token_hash),
                )
                .await?;
                self.record(actor, &agent, "agent.deployed", Some(ctx), json!({ "subnet": subnet.to_string() }))
                    .await?;
                Ok(deployed)
            }
            Err(e) => {
                // The customer sees the reason: say what failed, not where our runtime socket lives.
                let reason = match &e {
                    AgentError::Runtime(RuntimeError::Unreachable { .. }) => {
                        tracing::error!(error = %e, agent = %agent.id, "deploy failed: runtime unreachable");
                        "deploy failed: the container runtime did not answer; try again in a minute".to_string()
                    }
                    other => format!("deploy failed: {other}"),
                };
                agents::set_runtime_state(&self.db, client_id, id, AgentStatus::Error, None, Some(&reason), None)
                    .await?;
                self.record(actor, &agent, "agent.deploy_failed", Some(ctx), json!({ "reason": reason })).await?;
                Err(e)
            }
        }
    }

    async fn start_container(
        &self,
        runtime: &dyn ContainerRuntime,
        agent: &Agent,
        template: &Template,
    ) -> Result<(String, Vec<u8>, Subnet), AgentError> {
        let names = hardening::names(agent.client_id, agent.id);
        let labels = hardening::labels(agent.client_id, agent.id);
        let subnet = self.ensure_agent_network(runtime, agent).await?;
        runtime.ensure_volume(&names.volume, &labels).await?;
        self.open_gateway(agent, subnet).await;
        let settings = AgentSettings::from_config(&agent.config)?;
        // The customer's plain settings first; credentials, the token and the proxy (added by `hardening`)
        // come after, under names settings may not use.
        let mut env: Vec<(String, String)> = settings.environment.clone().into_iter().collect();
        // Credentials go into the environment, decrypted one by one through the audited path.
        for summary in self.vault.list(agent.client_id, agent.id).await? {
            // Provider keys stay with the LLM gateway: the agent gets its own token in their place.
            if crate::gateway::Provider::holds(&summary.name) {
                continue;
            }
            let name = CredentialName::parse(&summary.name)?;
            let value = self
                .vault
                .decrypt(Actor::Platform, agent.client_id, agent.id, &name, DecryptPurpose::InjectIntoAgent)
                .await?;
            let text = String::from_utf8_lossy(value.expose_secret()).into_owned();
            env.push((env_name(name.as_str()), text));
        }
        let token = crate::gateway::token::new();
        let token_hash = crate::gateway::token::hash(&token);
        env.push((hardening::TOKEN_ENV.into(), token.clone()));
        env.push(("OPENCLAW_GATEWAY_TOKEN".into(), token));
        let limits = hardening::limits(template, Some(settings.memory_bytes(template)), settings.cpu_millis());
        let spec = hardening::container_spec(template, agent.client_id, agent.id, subnet, limits, env);
        // A container left from an earlier deploy is replaced; the volume (the agent's state) stays.
        runtime.remove_container(&spec.name).await?;
        let container_id = runtime.create_container(&spec).await?;
        runtime.start_container(&spec.name).await?;
        Ok((container_id, token_hash, subnet))
    }

    /// Recreates a deployed agent's container (same network, volume, fresh credentials and token) for the
    /// reconciler, when the container disappeared behind our back.
    pub(crate) async fn recreate(&self, agent: &Agent) -> Result<(), AgentError> {
        let runtime = self.runtime_or_err()?.clone();
        let template = self.template_of(agent)?;
        let (container_id, token_hash, _) = self.start_container(&*runtime, agent, template).await?;
        agents::set_runtime_state(
            &self.db,
            agent.client_id,
            agent.id,
            AgentStatus::Starting,
            Some(&container_id),
            Some("recreated after its container disappeared; waiting for its health check"),
            Some(&token_hash),
        )
        .await?;
        Ok(())
    }

    /// The client's agent, unless it is being deleted (then nothing may change it).
    async fn get_unless_deleting(&self, client_id: ClientId, id: AgentId) -> Result<Agent, DbError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        refuse_if_deleting(&agent)?;
        Ok(agent)
    }

    /// Replaces a deployed agent's container with a new one from its template's image (a clean root
    /// filesystem; the same network and state volume, fresh credentials and token), whatever state it was
    /// in: the operator's remedy for a container that is suspect. Audited `agent.rebuilt`.
    pub async fn rebuild(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: AgentId,
        ctx: &RequestContext,
    ) -> Result<Agent, AgentError> {
        let agent = self.get_unless_deleting(client_id, id).await?;
        if agent.network_block.is_none() {
            return Err(
                DbError::Invalid("this agent was never deployed: there is no container to rebuild".into()).into()
            );
        }
        if matches!(agent.status, AgentStatus::Stopped | AgentStatus::Stopping) {
            // Rebuilding must not start what its owner (or a suspension) stopped.
            return Err(DbError::Invalid(
                "this agent is stopped: its next start creates a fresh container from the image anyway".into(),
            )
            .into());
        }
        self.recreate(&agent).await?;
        let fresh = agents::get(&self.db, client_id, id).await?;
        let reason = "rebuilt from a clean image by an operator; waiting for its health check";
        let rebuilt = self.transition(&fresh, AgentStatus::Starting, Some(reason)).await?;
        self.record(actor, &agent, "agent.rebuilt", Some(ctx), json!({ "image": self.template_of(&agent)?.image }))
            .await?;
        Ok(rebuilt)
    }

    /// What the last reconciler pass saw, for the operator console.
    pub fn reconciler_status(&self) -> Option<ReconcilerStatus> {
        self.reconciled.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn note_reconciled(&self, status: ReconcilerStatus) {
        *self.reconciled.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }

    /// Moves a known agent to `status` with `reason`, keeping its container and token.
    async fn transition(&self, agent: &Agent, status: AgentStatus, reason: Option<&str>) -> Result<Agent, DbError> {
        let container = agent.container_id.as_deref();
        agents::set_runtime_state(&self.db, agent.client_id, agent.id, status, container, reason, None).await
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) async fn audit(
        &self,
        agent: &Agent,
        name: &'static str,
        meta: serde_json::Value,
    ) -> Result<(), DbError> {
        self.record(Actor::Platform, agent, name, None, meta).await
    }

    /// Asks a deploying agent's health endpoint once (bounded); on success it is `running`. Returns the state.
    pub async fn check_health(&self, client_id: ClientId, id: AgentId) -> Result<Agent, AgentError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        let (Some(template), Some(block)) = (self.templates.get(&agent.template), agent.network_block) else {
            return Ok(agent);
        };
        let Some(subnet) = self.pool.block(u32::try_from(block).unwrap_or(u32::MAX)) else { return Ok(agent) };
        let healthy = probe_health(subnet.host(), template.port, &template.health_path).await;
        if healthy && matches!(agent.status, AgentStatus::Provisioning | AgentStatus::Starting) {
            let running = self.transition(&agent, AgentStatus::Running, None).await?;
            self.record(Actor::Platform, &agent, "agent.healthy", None, json!({})).await?;
            return Ok(running);
        }
        Ok(agent)
    }

    /// Stops a deployed agent (its container stays, with its state volume, until it is started or removed).
    pub async fn stop(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: AgentId,
        ctx: &RequestContext,
    ) -> Result<Agent, AgentError> {
        let runtime = self.runtime_or_err()?.clone();
        let agent = self.get_unless_deleting(client_id, id).await?;
        // `stopping` is recorded first: a platform that dies now finishes the stop when it comes back.
        self.transition(&agent, AgentStatus::Stopping, Some("stopping: the agent has 10 seconds to shut down cleanly"))
            .await?;
        let names = hardening::names(client_id, id);
        runtime.stop_container(&names.container, STOP_GRACE_SECS).await?;
        let stopped = self.transition(&agent, AgentStatus::Stopped, None).await?;
        self.record(actor, &agent, "agent.stopped", Some(ctx), json!({})).await?;
        Ok(stopped)
    }

    /// Restarts a deployed agent's container in place (same environment, same token): SIGTERM, up to
    /// [`STOP_GRACE_SECS`], then started again and `starting` until its health check answers.
    pub async fn restart(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: AgentId,
        ctx: &RequestContext,
    ) -> Result<Agent, AgentError> {
        let runtime = self.runtime_or_err()?.clone();
        let agent = agents::get(&self.db, client_id, id).await?;
        if agent.container_id.is_none() || matches!(agent.status, AgentStatus::Deleting | AgentStatus::Stopping) {
            return Err(DbError::Invalid("only a deployed agent can be restarted; deploy it first".into()).into());
        }
        if !matches!(agent.status, AgentStatus::Provisioning | AgentStatus::Starting | AgentStatus::Running) {
            self.check_running_within_plan(&agent).await?;
        }
        let name = hardening::names(client_id, id).container;
        if runtime.inspect_container(&name).await?.is_none() {
            // Nothing to restart in place: deploy a new container (same volume) instead.
            return self.deploy(actor, client_id, id, ctx).await;
        }
        self.transition(&agent, AgentStatus::Stopping, Some("restarting")).await?;
        runtime.stop_container(&name, STOP_GRACE_SECS).await?;
        runtime.start_container(&name).await?;
        let starting =
            self.transition(&agent, AgentStatus::Starting, Some("restarted; waiting for its health check")).await?;
        self.record(actor, &agent, "agent.restarted", Some(ctx), json!({ "requested": true })).await?;
        Ok(starting)
    }

    /// Finishes a stop or a delete that a platform restart interrupted (the reconciler calls this).
    pub(crate) async fn finish_transition(&self, agent: &Agent) -> Result<(), AgentError> {
        let runtime = self.runtime_or_err()?.clone();
        let names = hardening::names(agent.client_id, agent.id);
        match agent.status {
            AgentStatus::Stopping => {
                runtime.stop_container(&names.container, STOP_GRACE_SECS).await?;
                self.transition(agent, AgentStatus::Stopped, None).await?;
                self.audit(agent, "agent.stopped", json!({ "finished_after_restart": true })).await?;
            }
            AgentStatus::Deleting => {
                self.tear_down(&*runtime, agent).await?;
                agents::delete(&self.db, agent.client_id, agent.id).await?;
                self.audit(agent, "agent.deleted", json!({ "finished_after_restart": true })).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Removes an agent's container, network and state volume (each step idempotent).
    async fn tear_down(&self, runtime: &dyn ContainerRuntime, agent: &Agent) -> Result<(), AgentError> {
        if let Some(proxy) = self.gateway.as_ref() {
            proxy.stop(agent.id);
        }
        let names = hardening::names(agent.client_id, agent.id);
        runtime.stop_container(&names.container, STOP_GRACE_SECS).await?;
        runtime.remove_container(&names.container).await?;
        runtime.remove_network(&names.network).await?;
        runtime.remove_volume(&names.volume).await?;
        Ok(())
    }

    /// Removes an agent for good: container, network, state volume, credentials and the record. Audited.
    pub async fn remove(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: AgentId,
        ctx: &RequestContext,
    ) -> Result<(), AgentError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        let deployed = agent.container_id.is_some() || agent.network_block.is_some();
        if deployed {
            let runtime = self.runtime_or_err()?.clone();
            self.transition(&agent, AgentStatus::Deleting, None).await?;
            self.tear_down(&*runtime, &agent).await?;
        }
        agents::delete(&self.db, client_id, id).await?;
        self.record(actor, &agent, "agent.deleted", Some(ctx), json!({ "was_deployed": deployed })).await?;
        Ok(())
    }
}

/// One bounded GET of an agent's health path at its address on its own network.
async fn probe_health(ip: std::net::Ipv4Addr, port: u16, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut head = [0u8; 16];
        let n = s.read(&mut head).await?;
        Ok::<bool, std::io::Error>(head[..n].starts_with(b"HTTP/1.1 200") || head[..n].starts_with(b"HTTP/1.0 200"))
    };
    matches!(tokio::time::timeout(Duration::from_secs(3), exchange).await, Ok(Ok(true)))
}

/// An agent being deleted may not be changed any more.
fn refuse_if_deleting(agent: &Agent) -> Result<(), DbError> {
    if agent.status == AgentStatus::Deleting {
        return Err(DbError::Invalid("this agent is being deleted".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn credential_names_become_environment_variables() {
        assert_eq!(super::env_name("openai_api_key"), "OPENAI_API_KEY");
        assert_eq!(super::env_name("anthropic.key-2"), "ANTHROPIC_KEY_2");
    }
}
