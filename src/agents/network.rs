//! An agent's private network: its /28 of the pool, chosen on first deploy and kept, and the runtime network
//! on it. The pool is ours by configuration, not by fact: another program, or another DeployClaw on the same
//! host, may already hold part of it, so a block is only handed out if no runtime network overlaps it.

use super::*;

/// How many blocks one deploy tries before giving up when the runtime keeps refusing them as taken.
const ATTEMPTS: usize = 4;

impl Agents {
    /// The agent's subnet, with its runtime network created if missing. On first use the agent gets the lowest
    /// block that no other agent holds and no network of the runtime overlaps; if the runtime still refuses it
    /// as taken (say, by a host interface it does not list as a network), the block is given back and the next
    /// one tried.
    pub(super) async fn ensure_agent_network(
        &self,
        runtime: &dyn ContainerRuntime,
        agent: &Agent,
    ) -> Result<Subnet, AgentError> {
        let mut refused = Vec::new();
        for _ in 0..ATTEMPTS {
            let (block, fresh) = self.network_block(runtime, agent.client_id, agent.id, &refused).await?;
            let subnet = self.pool.block(block).ok_or_else(|| {
                DbError::Invalid("the agent's network block is outside the pool; ask an operator".into())
            })?;
            match runtime.ensure_network(&hardening::network_spec(agent.client_id, agent.id, subnet)).await {
                Ok(()) => return Ok(subnet),
                Err(RuntimeError::Refused(why)) if fresh && subnet_taken(&why) => {
                    tracing::warn!(agent = %agent.id, %subnet, "the container runtime says this subnet is taken; trying the next");
                    agents::release_network_block(&self.db, agent.client_id, agent.id, block).await?;
                    refused.push(block);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(DbError::Conflict(
            "no free agent network: the container runtime refused every subnet tried as already in use on this host"
                .into(),
        )
        .into())
    }

    /// The agent's network block and whether this call assigned it: its own, or on first use the lowest block
    /// free in our database, on the runtime and not in `refused`, claimed atomically (two deploys racing for
    /// the same block: the loser picks again).
    async fn network_block(
        &self,
        runtime: &dyn ContainerRuntime,
        client_id: ClientId,
        id: AgentId,
        refused: &[u32],
    ) -> Result<(u32, bool), DbError> {
        // What the runtime's networks overlap, asked once and only when a block must be chosen.
        let mut taken_on_host: Option<Vec<u32>> = None;
        for _ in 0..8 {
            if let Some(block) = self.get(client_id, id).await?.network_block {
                let block = u32::try_from(block)
                    .map_err(|_| DbError::Invalid("the agent's network block is invalid".into()))?;
                return Ok((block, false));
            }
            if taken_on_host.is_none() {
                taken_on_host = Some(match runtime.network_subnets().await {
                    Ok(subnets) => subnets.iter().flat_map(|s| self.pool.overlapping(s)).collect(),
                    // The runtime's own check when the network is created still stands behind this one.
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list the container runtime's networks");
                        Vec::new()
                    }
                });
            }
            let mut used = agents::used_network_blocks(&self.db).await?;
            used.extend_from_slice(refused);
            used.extend(taken_on_host.iter().flatten());
            let Some(free) = self.pool.first_free(&used) else {
                return Err(DbError::Invalid(
                    "every agent network is in use; ask the operator to enlarge the pool".into(),
                ));
            };
            if agents::claim_network_block(&self.db, client_id, id, free).await? {
                return Ok((free, true));
            }
        }
        Err(DbError::Conflict("could not assign an agent network; try again".into()))
    }
}

/// Whether the runtime refused a network because its subnet is in use (Podman: "subnet ... is already used on
/// the host or by another config"; Docker: "Pool overlaps with other one on this address space").
fn subnet_taken(why: &str) -> bool {
    let why = why.to_ascii_lowercase();
    why.contains("already used") || why.contains("overlaps")
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_runtimes_refusals_of_a_taken_subnet_are_recognised() {
        assert!(super::subnet_taken(
            "network dc-1-2-net: runtime error 500: subnet 10.213.0.0/28 is already used on the host or by another config"
        ));
        assert!(super::subnet_taken("network x: Pool overlaps with other one on this address space (403)"));
        assert!(!super::subnet_taken("network x: runtime error 500: permission denied"));
    }
}
