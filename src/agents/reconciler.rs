//! The reconciler: keeps what runs equal to what customers asked for.
//!
//! Every few seconds (and once at startup) it compares each agent that should be running with its container:
//! a container that exited is started again after an exponential backoff, and an agent that keeps crashing is
//! put in `error` ("crash loop") instead of being restarted forever; a container deleted behind our back is
//! recreated; a starting agent whose health check answers becomes `running`. Containers that carry our labels
//! but belong to no agent are reported as orphans (never deleted automatically: an operator decides).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use super::Agents;
use crate::db::agents::{self, Agent, AgentStatus};
use crate::db::AgentId;
use crate::runtime::hardening;
use crate::runtime::{ContainerStatus, LABEL_AGENT, LABEL_MANAGED};

/// How restarts are paced.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Wait before the first restart; doubled after each further crash.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Crashes within `window` that make a crash loop.
    pub max_crashes: u32,
    pub window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(120),
            max_crashes: 5,
            window: Duration::from_secs(600),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub restarted: Vec<AgentId>,
    pub recreated: Vec<AgentId>,
    pub crash_looping: Vec<AgentId>,
    pub became_healthy: Vec<AgentId>,
    /// Names of labelled containers with no agent record.
    pub orphans: Vec<String>,
}

#[derive(Debug, Default)]
struct Crashes {
    /// When each recent crash was seen.
    seen: Vec<Instant>,
    /// Do not restart before this.
    not_before: Option<Instant>,
}

#[derive(Clone, Debug)]
pub struct Reconciler {
    agents: Agents,
    policy: Policy,
    crashes: Arc<Mutex<HashMap<AgentId, Crashes>>>,
}

impl Reconciler {
    pub fn new(agents: Agents, policy: Policy) -> Self {
        Self { agents, policy, crashes: Arc::default() }
    }

    /// Runs passes every `every` until the task is dropped. Errors are logged, never fatal.
    pub async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.pass().await {
                Ok(report) if report != Report::default() => tracing::info!(?report, "reconciler acted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reconciler pass failed"),
            }
        }
    }

    /// One comparison of desired and actual state, acting on every difference.
    pub async fn pass(&self) -> Result<Report, super::AgentError> {
        let Some(runtime) = self.agents.runtime().cloned() else { return Ok(Report::default()) };
        let mut report = Report::default();
        for agent in agents::desired_running(self.agents.db()).await? {
            let name = hardening::names(agent.client_id, agent.id).container;
            match runtime.inspect_container(&name).await? {
                None => {
                    tracing::warn!(agent = %agent.id, container = %name, "agent container missing; recreating it");
                    self.agents.recreate(&agent).await?;
                    self.agents.audit(&agent, "agent.recreated", json!({ "container": name })).await?;
                    report.recreated.push(agent.id);
                }
                Some(status) if !status.running => self.crashed(&agent, &status, &mut report).await?,
                Some(_) if agent.status == AgentStatus::Provisioning => {
                    let now = self.agents.check_health(agent.client_id, agent.id).await?;
                    if now.status == AgentStatus::Running {
                        report.became_healthy.push(agent.id);
                    }
                }
                Some(status) => {
                    // Running: take a resource sample for the agent page (bounded in time).
                    match tokio::time::timeout(Duration::from_secs(3), runtime.stats(&status.name)).await {
                        Ok(Ok(s)) => self.agents.record_metric(
                            agent.id,
                            super::MetricPoint {
                                at: crate::db::now(),
                                cpu_percent: s.cpu_percent,
                                memory_bytes: s.memory_bytes,
                                pids: s.pids,
                            },
                        ),
                        Ok(Err(e)) => tracing::debug!(agent = %agent.id, error = %e, "no stats sample"),
                        Err(_) => tracing::debug!(agent = %agent.id, "stats sample timed out"),
                    }
                }
            }
        }
        for c in runtime.list_containers(LABEL_MANAGED, "true").await? {
            let Some(id) = c.labels.get(LABEL_AGENT).and_then(|id| id.parse::<AgentId>().ok()) else { continue };
            if !agents::exists_any_client(self.agents.db(), id).await? {
                tracing::warn!(container = %c.name, "orphaned agent container: it carries our labels but no agent owns it");
                report.orphans.push(c.name);
            }
        }
        Ok(report)
    }

    async fn crashed(
        &self,
        agent: &Agent,
        status: &ContainerStatus,
        report: &mut Report,
    ) -> Result<(), super::AgentError> {
        let runtime = self.agents.runtime().cloned().ok_or(super::AgentError::NoRuntime)?;
        let now = Instant::now();
        let mut crashes = self.crashes.lock().await;
        let entry = crashes.entry(agent.id).or_default();
        if entry.not_before.is_some_and(|t| now < t) {
            return Ok(()); // waiting out the backoff for a crash already counted
        }
        if entry.not_before.is_none() {
            // A new crash: count it and decide.
            entry.seen.retain(|t| now.duration_since(*t) <= self.policy.window);
            entry.seen.push(now);
            let n = u32::try_from(entry.seen.len()).unwrap_or(u32::MAX);
            if n >= self.policy.max_crashes {
                crashes.remove(&agent.id);
                drop(crashes);
                let reason = format!(
                    "crash loop: exited {n} times within {} minutes (last exit status {}); fix its configuration, then deploy it again",
                    self.policy.window.as_secs() / 60,
                    status.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into())
                );
                agents::set_runtime_state(
                    self.agents.db(),
                    agent.client_id,
                    agent.id,
                    AgentStatus::Error,
                    agent.container_id.as_deref(),
                    Some(&reason),
                    None,
                )
                .await?;
                self.agents
                    .audit(agent, "agent.crash_loop", json!({ "crashes": n, "exit_code": status.exit_code }))
                    .await?;
                report.crash_looping.push(agent.id);
                return Ok(());
            }
            let wait = self.policy.backoff.saturating_mul(1 << (n - 1).min(16)).min(self.policy.max_backoff);
            entry.not_before = Some(now + wait);
            if !wait.is_zero() {
                return Ok(());
            }
        }
        // The backoff is over: start it again.
        entry.not_before = None;
        let crash_count = entry.seen.len();
        drop(crashes);
        runtime.start_container(&status.name).await?;
        agents::set_runtime_state(
            self.agents.db(),
            agent.client_id,
            agent.id,
            AgentStatus::Provisioning,
            agent.container_id.as_deref(),
            Some("restarted after it exited; waiting for its health check"),
            None,
        )
        .await?;
        self.agents
            .audit(agent, "agent.restarted", json!({ "exit_code": status.exit_code, "recent_crashes": crash_count }))
            .await?;
        report.restarted.push(agent.id);
        Ok(())
    }
}
