//! The platform's background work, started in one place: the gateway's listeners and the host firewall, the
//! reconciler, audit checkpoints and retention, the SIEM forwarder, billing enforcement and the pruning of
//! expired rows. Each job logs its own failures and goes on at its next tick; none takes the server down.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::Platform;

/// The running background jobs; [`Jobs::stop`] (or dropping the handle) ends them all.
#[derive(Debug)]
pub struct Jobs {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Jobs {
    /// The names of the running jobs, in the order they started (startup log, tests).
    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every job and waits until each has ended.
    pub async fn stop(mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
        for (_, task) in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

impl Platform {
    /// Starts all background work. The gateway listens on every deployed agent's address before the reconciler
    /// can recreate anything, so a restarted agent never finds its only way out closed.
    pub async fn start_jobs(&self) -> Jobs {
        let mut tasks: Vec<(&'static str, JoinHandle<()>)> = Vec::new();
        let pool = self.config().runtime.network_pool;
        let listening = self.gateway().listen_all(pool).await;
        tracing::info!(agents = listening, "egress proxy started");
        // Agents may reach this host only at the gateway port (runtime/firewall.rs).
        match crate::runtime::firewall::protect_host(pool).await {
            Ok(()) => tracing::info!(pool = %pool.cidr(), "host firewall: agent networks reach only the gateway port"),
            Err(e) => tracing::warn!(
                pool = %pool.cidr(),
                error = %e,
                "host firewall not installed: agents can reach host services listening on all addresses"
            ),
        }
        // Keeps running agents running: restarts crashed ones with backoff, recreates missing containers,
        // reports orphans. First pass at once (after a restart of the server), then every 5 seconds.
        let reconciler = crate::agents::reconciler::Reconciler::new(self.agents().clone(), Default::default());
        tasks.push(("reconciler", tokio::spawn(reconciler.run(Duration::from_secs(5)))));
        tasks.push(("audit checkpoints", tokio::spawn(audit_checkpoints(self.clone()))));
        tasks.push(("audit retention", tokio::spawn(audit_retention(self.clone()))));
        // Customers' SIEM destinations (leased per destination, so every replica may run it).
        let forwarder = crate::audit::siem::ForwarderSettings::from_config(
            &self.config().siem,
            self.config().server.public_url.host_str().unwrap_or("-"),
        );
        tasks.push((
            "siem forwarder",
            tokio::spawn(crate::audit::siem::run(self.db().clone(), forwarder, std::future::pending())),
        ));
        // Billing: clients whose grace period after a failed payment ended get their agents stopped.
        if self.billing().enabled() {
            tasks.push(("billing enforcement", tokio::spawn(self.billing().clone().run())));
        }
        tasks.push(("pruning", tokio::spawn(prune(self.clone()))));
        Jobs { tasks }
    }
}

/// Every 10 minutes: expired sessions (already refused when loaded; this keeps the table small), and gateway
/// rate counts past every window.
async fn prune(platform: Platform) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        every.tick().await;
        match platform.sessions().prune().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned expired sessions"),
            Err(e) => tracing::warn!(error = %e, "could not prune expired sessions"),
        }
        match crate::gateway::prune_rate_events(platform.db()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "pruned gateway rate counts"),
            Err(e) => tracing::warn!(error = %e, "could not prune gateway rate counts"),
        }
    }
}

/// Signs every audit chain head that moved since its last checkpoint, every `audit.checkpoint_interval`.
async fn audit_checkpoints(platform: Platform) {
    let mut every = tokio::time::interval(platform.config().audit.checkpoint_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match platform.audit().checkpoint_all().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(chains = n, "signed audit checkpoints"),
            Err(e) => tracing::warn!(error = %e, "could not sign audit checkpoints"),
        }
    }
}

/// Deletes audit events past their retention period (through the privileged path only), every
/// `audit.retention_interval`; the first run is at startup.
async fn audit_retention(platform: Platform) {
    let mut every = tokio::time::interval(platform.config().audit.retention_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match platform.audit().apply_retention(crate::db::now()).await {
            Ok(r) => {
                if r.deleted > 0 {
                    tracing::info!(deleted = r.deleted, checkpoints = r.checkpoints, "audit retention ran");
                }
                for (chain, problem) in &r.refused {
                    tracing::error!(%chain, %problem, "audit retention kept events that do not verify");
                }
            }
            Err(e) => tracing::warn!(error = %e, "audit retention failed"),
        }
    }
}
