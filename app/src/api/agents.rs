//! Agents: list, configure (not yet deployed), deploy, settings, permissions, delete.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::caller::{respond, Access, Caller};
use super::AppError;

/// One agent, as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub template: String,
    /// `provisioning`, `starting`, `running`, `stopping`, `stopped`, `error`, `deleting`.
    pub status: String,
    pub deployed: bool,
    /// Why it is in `error`, or what it is doing.
    pub reason: Option<String>,
    pub created_at: String,
    /// How often the platform restarted it after it exited.
    pub restarts: i32,
}

#[cfg(feature = "ssr")]
impl From<deployclaw::db::agents::Agent> for AgentRow {
    fn from(a: deployclaw::db::agents::Agent) -> Self {
        AgentRow {
            id: a.id.to_string(),
            deployed: a.container_id.is_some(),
            name: a.name,
            template: a.template,
            status: a.status.as_str().to_string(),
            reason: a.status_reason,
            created_at: a.created_at.to_rfc3339(),
            restarts: a.restart_count,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<deployclaw::agents::AgentError> for AppError {
    fn from(e: deployclaw::agents::AgentError) -> Self {
        use deployclaw::agents::AgentError;
        match e {
            AgentError::Db(e) => e.into(),
            AgentError::Vault(e) => e.into(),
            AgentError::NoRuntime => AppError::Invalid(
                "No container runtime is available on this server, so agents cannot run yet. An operator must start one.".into(),
            ),
            AgentError::Runtime(deployclaw::runtime::RuntimeError::Unreachable { .. }) => AppError::internal(&e),
            AgentError::Runtime(e) => {
                let _ = AppError::internal(&e);
                AppError::Invalid(format!("The container runtime refused: {e}"))
            }
        }
    }
}

#[cfg(feature = "ssr")]
pub(crate) fn parse_agent_id(id: &str) -> Result<deployclaw::db::AgentId, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}

/// The caller's agents.
#[server(prefix = "/api/fn", endpoint = "list_agents")]
pub async fn list_agents() -> Result<Vec<AgentRow>, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require(Access::SignedIn).await?;
        let agents = caller.platform.agents().list(user.client_id).await?;
        let mut rows = Vec::with_capacity(agents.len());
        for a in agents {
            // A deploying agent is asked once (bounded) whether it answers yet.
            use deployclaw::db::agents::AgentStatus;
            let a = if matches!(a.status, AgentStatus::Provisioning | AgentStatus::Starting) {
                caller.platform.agents().check_health(user.client_id, a.id).await?
            } else {
                a
            };
            rows.push(AgentRow::from(a));
        }
        Ok(rows)
    })
    .await
}

/// A template an agent can be deployed from, as the deploy form offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateOption {
    pub id: String,
    pub name: String,
    pub image: String,
    pub memory_mib: u64,
}

/// The templates of this installation: the built-in ones and the operator's.
#[server(prefix = "/api/fn", endpoint = "list_templates")]
pub async fn list_templates() -> Result<Vec<TemplateOption>, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        caller.require(Access::SignedIn).await?;
        Ok(caller
            .platform
            .agents()
            .templates()
            .iter()
            .map(|t| TemplateOption {
                id: t.id.clone(),
                name: t.name.clone(),
                image: t.image.clone(),
                memory_mib: t.default_memory_bytes / 1_048_576,
            })
            .collect())
    })
    .await
}

/// Configures a new agent (owner or admin; fresh second factor). It is deployed separately.
#[server(prefix = "/api/fn", endpoint = "create_agent")]
pub async fn create_agent(name: String, template: String) -> Result<AgentRow, AppError> {
    respond(async {
        use deployclaw::db::agents::AgentName;
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let name = AgentName::parse(&name)?;
        let actor = deployclaw::audit::Actor::User(user.id);
        let a = caller.platform.agents().configure(actor, user.client_id, name, &template, &caller.ctx).await?;
        Ok(AgentRow::from(a))
    })
    .await
}

/// Deploys (or redeploys, with fresh credentials) an agent into its container (owner or admin; fresh second
/// factor).
#[server(prefix = "/api/fn", endpoint = "deploy_agent")]
pub async fn deploy_agent(agent_id: String) -> Result<AgentRow, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let id = parse_agent_id(&agent_id)?;
        let actor = deployclaw::audit::Actor::User(user.id);
        Ok(AgentRow::from(caller.platform.agents().deploy(actor, user.client_id, id, &caller.ctx).await?))
    })
    .await
}

/// Stops a running agent (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "stop_agent")]
pub async fn stop_agent(agent_id: String) -> Result<AgentRow, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let id = parse_agent_id(&agent_id)?;
        let actor = deployclaw::audit::Actor::User(user.id);
        Ok(AgentRow::from(caller.platform.agents().stop(actor, user.client_id, id, &caller.ctx).await?))
    })
    .await
}

/// Restarts a deployed agent's container in place (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "restart_agent")]
pub async fn restart_agent(agent_id: String) -> Result<AgentRow, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let id = parse_agent_id(&agent_id)?;
        let actor = deployclaw::audit::Actor::User(user.id);
        Ok(AgentRow::from(caller.platform.agents().restart(actor, user.client_id, id, &caller.ctx).await?))
    })
    .await
}

/// Changes an agent's settings (owner or admin; fresh second factor): memory in MiB and CPU in thousandths of
/// a core (empty = the template's default), and plain `NAME=value` environment lines. A running agent gets a
/// new container with them at once.
#[server(prefix = "/api/fn", endpoint = "update_agent_settings")]
pub async fn update_agent_settings(
    agent_id: String,
    memory_mib: String,
    cpu_millis: String,
    environment: String,
) -> Result<AgentRow, AppError> {
    respond(async {
        use deployclaw::agents::AgentSettings;
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let id = parse_agent_id(&agent_id)?;
        let agents = caller.platform.agents();
        let agent = agents.get(user.client_id, id).await?;
        let template = agents.template_of(&agent)?;
        let settings = AgentSettings::parse_form(template, &memory_mib, &cpu_millis, &environment)?;
        let actor = deployclaw::audit::Actor::User(user.id);
        Ok(AgentRow::from(agents.update_settings(actor, user.client_id, id, settings, &caller.ctx).await?))
    })
    .await
}

/// Deletes an agent: its container, network, state volume and credentials (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "delete_agent")]
pub async fn delete_agent(agent_id: String) -> Result<(), AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let id = parse_agent_id(&agent_id)?;
        let actor = deployclaw::audit::Actor::User(user.id);
        caller.platform.agents().remove(actor, user.client_id, id, &caller.ctx).await?;
        Ok(())
    })
    .await
}

/// An agent's settings as the form shows them: empty means the template's default (given alongside).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsView {
    pub memory_mib: String,
    pub cpu_millis: String,
    /// `NAME=value` lines.
    pub environment: String,
    pub default_memory_mib: u64,
    pub min_memory_mib: u64,
    pub max_memory_mib: u32,
}

/// An agent's permissions as the form shows them (the strings it submits back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionsView {
    /// Granted scopes, one per line.
    pub scopes: String,
    /// `SCOPE PER_HOUR PER_DAY` lines.
    pub rate_limits: String,
    /// Allowed outbound domains, one per line (normalised: lower case, punycode).
    pub allowed_domains: String,
    /// USD, e.g. `25.00`.
    pub max_daily_token_spend_usd: String,
    /// Every scope there is, for the help text.
    pub all_scopes: Vec<String>,
}

#[cfg(feature = "ssr")]
impl From<&deployclaw::gateway::Permissions> for PermissionsView {
    fn from(p: &deployclaw::gateway::Permissions) -> Self {
        PermissionsView {
            scopes: p.scopes.iter().map(|s| format!("{s}\n")).collect(),
            rate_limits: p
                .rate_limits
                .iter()
                .map(|(s, l)| format!("{s} {} {}\n", l.max_per_hour, l.max_per_day))
                .collect(),
            allowed_domains: p.allowed_domains.iter().map(|d| format!("{d}\n")).collect(),
            max_daily_token_spend_usd: p.max_daily_token_spend_micro_usd.to_string(),
            all_scopes: deployclaw::gateway::Scope::ALL.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Replaces an agent's permissions (owner or admin; fresh second factor): scopes, rate limits
/// (`SCOPE PER_HOUR PER_DAY` lines), allowed outbound domains and the daily token spend cap in USD. A running
/// agent is held to them from its next connection on, without a restart.
#[server(prefix = "/api/fn", endpoint = "update_agent_permissions")]
pub async fn update_agent_permissions(
    agent_id: String,
    scopes: String,
    rate_limits: String,
    allowed_domains: String,
    max_daily_token_spend_usd: String,
) -> Result<PermissionsView, AppError> {
    respond(async {
        use deployclaw::gateway::{Permissions, PermissionsInput};
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let id = parse_agent_id(&agent_id)?;
        let permissions =
            PermissionsInput::from_form(&scopes, &rate_limits, &allowed_domains, &max_daily_token_spend_usd)
                .and_then(|input| Permissions::parse(&input))
                .map_err(|e| AppError::Invalid(e.to_string()))?;
        let actor = deployclaw::audit::Actor::User(user.id);
        let stored =
            caller.platform.agents().update_permissions(actor, user.client_id, id, permissions, &caller.ctx).await?;
        Ok(PermissionsView::from(&stored))
    })
    .await
}

/// One resource sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricView {
    /// RFC 3339.
    pub at: String,
    pub cpu_percent: f64,
    pub memory_mib: f64,
    pub pids: u64,
}

/// What the agent spent on model calls today (UTC) against its cap, as text ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendView {
    pub spent_usd: String,
    pub cap_usd: String,
    /// Of the cap, 0-100 (100 when there is no cap).
    pub percent: u32,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// An agent's page: its state, recent resource use (last 10 minutes) and last log lines (secrets scrubbed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentPage {
    pub agent: AgentRow,
    pub settings: SettingsView,
    pub permissions: PermissionsView,
    pub spend: SpendView,
    pub metrics: Vec<MetricView>,
    pub logs: Vec<String>,
}

/// One of the caller's agents in detail.
#[server(prefix = "/api/fn", endpoint = "agent_detail")]
pub async fn agent_detail(agent_id: String) -> Result<AgentPage, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require(Access::SignedIn).await?;
        let id = parse_agent_id(&agent_id)?;
        let agents = caller.platform.agents();
        let agent = agents.get(user.client_id, id).await?;
        let logs = agents.logs(user.client_id, id, 100).await?;
        let metrics = agents
            .metrics(agent.id)
            .into_iter()
            .map(|m| MetricView {
                at: m.at.to_rfc3339(),
                cpu_percent: m.cpu_percent,
                memory_mib: m.memory_bytes as f64 / 1_048_576.0,
                pids: m.pids,
            })
            .collect();
        let template = agents.template_of(&agent)?;
        let stored = deployclaw::agents::AgentSettings::from_config(&agent.config)?;
        let settings = SettingsView {
            memory_mib: stored.memory_mib.map(|m| m.to_string()).unwrap_or_default(),
            cpu_millis: stored.cpu_millis.map(|c| c.to_string()).unwrap_or_default(),
            environment: stored.environment.iter().map(|(k, v)| format!("{k}={v}\n")).collect(),
            default_memory_mib: template.default_memory_bytes / 1_048_576,
            min_memory_mib: template.min_memory_bytes / 1_048_576,
            max_memory_mib: deployclaw::agents::settings::MAX_MEMORY_MIB,
        };
        let stored_permissions = deployclaw::gateway::Permissions::from_stored(&agent.permissions.0);
        let day = agents.model_spend_today(user.client_id, id).await?;
        let cap = stored_permissions.max_daily_token_spend_micro_usd.micro();
        let percent =
            if cap == 0 { 100 } else { (u128::from(day.spent_micro_usd) * 100 / u128::from(cap)).min(100) as u32 };
        let spend = SpendView {
            spent_usd: deployclaw::gateway::permissions::format_usd(day.spent_micro_usd),
            cap_usd: deployclaw::gateway::permissions::format_usd(cap),
            percent,
            calls: day.calls,
            input_tokens: day.input_tokens,
            output_tokens: day.output_tokens,
        };
        let permissions = PermissionsView::from(&stored_permissions);
        Ok(AgentPage { agent: AgentRow::from(agent), settings, permissions, spend, metrics, logs })
    })
    .await
}
