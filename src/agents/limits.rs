//! What a client's plan allows its agents: memory and CPU per agent, how many may run; and changing an
//! agent's settings within those limits.

use super::*;

impl Agents {
    pub(super) async fn limits(&self, client_id: ClientId) -> Result<PlanLimits, DbError> {
        crate::plans::limits_of(&self.db, &self.catalog, client_id).await
    }

    /// Refuses settings above the plan's memory or CPU per agent, naming the limit.
    pub(super) async fn check_settings_within_plan(
        &self,
        client_id: ClientId,
        settings: &AgentSettings,
        template: &Template,
    ) -> Result<(), DbError> {
        let limits = self.limits(client_id).await?;
        let memory_mib = settings.memory_bytes(template) / (1024 * 1024);
        if memory_mib > u64::from(limits.memory_mib_per_agent) {
            return Err(DbError::Invalid(
                format!(
                    "{memory_mib} MiB of memory is more than the {} plan allows per agent ({} MiB); lower it or \
                     upgrade on the Billing page",
                    limits.plan_name, limits.memory_mib_per_agent
                )
                .into(),
            ));
        }
        if settings.cpu_millis() > limits.cpu_millis_per_agent {
            return Err(DbError::Invalid(
                format!(
                    "{} thousandths of a core is more than the {} plan allows per agent ({}); lower it or upgrade \
                     on the Billing page",
                    settings.cpu_millis(),
                    limits.plan_name,
                    limits.cpu_millis_per_agent
                )
                .into(),
            ));
        }
        Ok(())
    }

    /// Refuses to start `agent` when the client already runs as many agents as its plan allows.
    pub(super) async fn check_running_within_plan(&self, agent: &Agent) -> Result<(), DbError> {
        let limits = self.limits(agent.client_id).await?;
        let others = agents::list(&self.db, agent.client_id)
            .await?
            .iter()
            .filter(|a| a.id != agent.id)
            .filter(|a| matches!(a.status, AgentStatus::Provisioning | AgentStatus::Starting | AgentStatus::Running))
            .count();
        if others >= usize::try_from(limits.max_agents).unwrap_or(usize::MAX) {
            return Err(DbError::Invalid(
                format!(
                    "the {} plan allows {} running agent(s) and you already run {others}; stop one or upgrade on \
                     the Billing page",
                    limits.plan_name, limits.max_agents
                )
                .into(),
            ));
        }
        Ok(())
    }

    /// Changes an agent's settings. A deployed agent that should be running gets a new container with them
    /// (same state volume, fresh credentials and token); a stopped one uses them at its next start. Audited
    /// with the names of the changed fields, never their values.
    pub async fn update_settings(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: AgentId,
        settings: AgentSettings,
        ctx: &RequestContext,
    ) -> Result<Agent, AgentError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        let template = self.template_of(&agent)?;
        settings.validate(template)?;
        self.check_settings_within_plan(client_id, &settings, template).await?;
        let before = AgentSettings::from_config(&agent.config).unwrap_or_default();
        let changed = settings.changed_fields(&before);
        refuse_if_deleting(&agent)?;
        let updated = agents::set_config(&self.db, client_id, id, &settings.to_config()).await?;
        let live = agent.container_id.is_some()
            && matches!(agent.status, AgentStatus::Provisioning | AgentStatus::Starting | AgentStatus::Running);
        let apply_now = live && !changed.is_empty();
        self.record(
            actor,
            &agent,
            "agent.settings_updated",
            Some(ctx),
            json!({ "changed": changed, "applied_now": apply_now }),
        )
        .await?;
        if apply_now {
            return self.deploy(actor, client_id, id, ctx).await;
        }
        Ok(updated)
    }
}
