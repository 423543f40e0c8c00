//! An agent's way out: the gateway listening on its network, its permissions, and what its model calls cost
//! today.

use super::*;

impl Agents {
    pub fn gateway(&self) -> Option<&EgressProxy> {
        self.gateway.as_ref()
    }

    /// What the agent spent on model calls today (UTC), through the LLM gateway.
    pub async fn model_spend_today(
        &self,
        client_id: ClientId,
        id: AgentId,
    ) -> Result<crate::gateway::llm::spend::DaySpend, AgentError> {
        use crate::gateway::llm::spend;
        Ok(spend::day(&self.db, client_id, id, spend::today()).await?)
    }

    /// Makes the proxy listen for the agent on its network's gateway address. A failure is logged and the
    /// agent is left without a way out (closed, not open).
    pub(super) async fn open_gateway(&self, agent: &Agent, subnet: Subnet) {
        if let Some(proxy) = self.gateway.as_ref() {
            let addr = std::net::SocketAddr::new(subnet.gateway().into(), proxy.port());
            if let Err(e) = proxy.listen(agent.client_id, agent.id, addr).await {
                tracing::error!(agent = %agent.id, %addr, error = %e, "the egress proxy cannot listen for this agent");
            }
        }
    }

    /// The agent's permissions (deny-all until set).
    pub async fn permissions(&self, client_id: ClientId, id: AgentId) -> Result<Permissions, DbError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        Ok(Permissions::from_stored(&agent.permissions.0))
    }

    /// Replaces an agent's permissions. Applies to a running agent at once, without a restart: the egress
    /// proxy reads them on every connection. Audited as `agent.permissions_updated` with what changed, by
    /// name.
    pub async fn update_permissions(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: AgentId,
        permissions: Permissions,
        ctx: &RequestContext,
    ) -> Result<Permissions, DbError> {
        let agent = self.get_unless_deleting(client_id, id).await?;
        let before = Permissions::from_stored(&agent.permissions.0);
        let change = permissions.changes_from(&before);
        crate::gateway::store_permissions(&self.db, client_id, id, &permissions).await?;
        if let Some(proxy) = self.gateway.as_ref() {
            // This process's gateway applies them from the next call; other processes within a second.
            proxy.permissions_changed(id);
        }
        self.record(actor, &agent, "agent.permissions_updated", Some(ctx), json!({ "changed": change })).await?;
        Ok(permissions)
    }
}
