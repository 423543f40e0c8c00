//! Agents: list, configure (not yet deployed), delete.

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
    /// `stopped`, `provisioning`, `running`, `error`, `deleting`.
    pub status: String,
    pub deployed: bool,
    pub created_at: String,
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
        Ok(agents
            .into_iter()
            .map(|a| AgentRow {
                id: a.id.to_string(),
                deployed: a.container_id.is_some(),
                name: a.name,
                template: a.template,
                status: a.status.as_str().to_string(),
                created_at: a.created_at.to_rfc3339(),
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
        Ok(AgentRow {
            id: a.id.to_string(),
            deployed: a.container_id.is_some(),
            name: a.name,
            template: a.template,
            status: a.status.as_str().to_string(),
            created_at: a.created_at.to_rfc3339(),
        })
    })
    .await
}

/// Deletes a stopped agent and its credentials (owner or admin; fresh second factor).
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
