//! Agents as the customer manages them: configure, list, remove - each audited.
//!
//! An agent is configured first (name, template; credentials and permissions can be set while it is not
//! running) and deployed into its container afterwards (the runtime capability). This module owns the rules
//! that do not need a container; it never decides anything about isolation.

use serde_json::json;

use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::db::agents::{self, Agent, AgentName, AgentStatus, NewAgent};
use crate::db::{AgentId, ClientId, Db, DbError};
use crate::identity::sign_in::RequestContext;

/// The templates an agent can be created from.
pub const TEMPLATES: &[&str] = &["openclaw"];

fn action(name: &'static str) -> ActionType {
    ActionType::parse(name).expect("static action names are valid")
}

#[derive(Clone, Debug)]
pub struct Agents {
    db: Db,
}

impl Agents {
    pub fn new(db: Db) -> Self {
        Self { db }
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
        if !TEMPLATES.contains(&template) {
            return Err(DbError::Invalid(
                format!("unknown template {template:?}; choose one of: {}", TEMPLATES.join(", ")).into(),
            ));
        }
        let new = NewAgent { name, template: template.to_string(), config: json!({}), permissions: json!({}) };
        let agent = agents::create_configured(&self.db, client_id, new).await.map_err(|e| match e {
            DbError::Conflict(_) => DbError::Conflict("you already have an agent with this name".into()),
            other => other,
        })?;
        let event = NewEvent::new(Some(client_id), actor, action("agent.created"))
            .agent(agent.id)
            .target(agent.name.as_str())
            .metadata(json!({ "template": template, "user_agent": ctx.user_agent }))
            .ip(ctx.ip);
        audit::append(&self.db, event).await?;
        Ok(agent)
    }

    pub async fn list(&self, client_id: ClientId) -> Result<Vec<Agent>, DbError> {
        agents::list(&self.db, client_id).await
    }

    pub async fn get(&self, client_id: ClientId, id: AgentId) -> Result<Agent, DbError> {
        agents::get(&self.db, client_id, id).await
    }

    /// Removes a stopped agent and its credentials. A running agent must be stopped first.
    pub async fn remove(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: AgentId,
        ctx: &RequestContext,
    ) -> Result<(), DbError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        if matches!(agent.status, AgentStatus::Running | AgentStatus::Provisioning) {
            return Err(DbError::Invalid("stop the agent before deleting it".into()));
        }
        agents::delete(&self.db, client_id, id).await?;
        let event = NewEvent::new(Some(client_id), actor, action("agent.deleted"))
            .agent(id)
            .target(agent.name.as_str())
            .metadata(json!({ "user_agent": ctx.user_agent }))
            .ip(ctx.ip);
        audit::append(&self.db, event).await?;
        Ok(())
    }
}
