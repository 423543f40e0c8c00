//! The reconciler: keeps what runs equal to what customers asked for.
//!
//! Every few seconds (and once at startup) it compares each agent that should be running with its container:
//! a container that exited is started again after an exponential backoff, and an agent that keeps crashing is
//! put in `error` ("crash loop") instead of being restarted forever; a container deleted behind our back is
//! recreated; a starting agent whose health check answers becomes `running`. Containers that carry our labels
//! but belong to no agent are reported as orphans (never deleted automatically: an operator decides).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

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
    /// Stops and deletes finished after a platform restart.
    pub finished: Vec<AgentId>,
    /// Names of labelled containers with no agent record.
    pub orphans: Vec<String>,
}

/// Where the reconciler reads the time: the platform clock, or a clock a test moves by hand.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Clone)]
pub struct Reconciler {
    agents: Agents,
    policy: Policy,
    clock: Clock,
    /// Set after the first pass, which also finishes stops and deletes a platform restart interrupted.
    started: Arc<AtomicBool>,
    /// True once the runtime's events are followed (see [`Reconciler::following_events`]).
    following: Arc<tokio::sync::watch::Sender<bool>>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Reconciler {
    pub fn new(agents: Agents, policy: Policy) -> Self {
        Self {
            agents,
            policy,
            clock: Arc::new(crate::db::now),
            started: Arc::default(),
            following: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Reads the time from `clock` instead of the platform clock (crash windows and backoff are measured on it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Resolves once [`Reconciler::run`] follows the runtime's events: a container that stops after this is
    /// seen without waiting for the next periodic pass.
    pub async fn following_events(&self) {
        let mut rx = self.following.subscribe();
        let _ = rx.wait_for(|following| *following).await;
    }

    /// Runs passes every `every`, and at once when the runtime reports that one of our containers stopped or
    /// vanished, until the task is dropped. Errors are logged, never fatal.
    pub async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (tx, mut attention) = tokio::sync::mpsc::channel(64);
        let watcher = self
            .agents
            .runtime()
            .cloned()
            .map(|runtime| tokio::spawn(watch_events(runtime, tx, self.following.clone())));
        let _stop_watcher = watcher.map(AbortOnDrop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = attention.recv() => {
                    // Let a burst of events (die, then stop, then cleanup) settle into one pass.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while attention.try_recv().is_ok() {}
                }
            }
            match self.pass().await {
                Ok(report) if report != Report::default() => tracing::info!(?report, "reconciler acted"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler pass failed");
                    let orphans = self.agents.reconciler_status().map(|s| s.orphans).unwrap_or_default();
                    let at = (self.clock)();
                    self.agents.note_reconciled(super::ReconcilerStatus { at, error: Some(e.to_string()), orphans });
                }
            }
        }
    }

    /// One comparison of desired and actual state, acting on every difference.
    pub async fn pass(&self) -> Result<Report, super::AgentError> {
        let Some(runtime) = self.agents.runtime().cloned() else { return Ok(Report::default()) };
        let mut report = Report::default();
        if !self.started.swap(true, Ordering::SeqCst) {
            for agent in agents::in_transition(self.agents.db()).await? {
                tracing::info!(agent = %agent.id, status = %agent.status.as_str(), "finishing an interrupted transition");
                self.agents.finish_transition(&agent).await?;
                report.finished.push(agent.id);
            }
        }
        for agent in agents::desired_running(self.agents.db()).await? {
            let name = hardening::names(agent.client_id, agent.id).container;
            match runtime.inspect_container(&name).await? {
                // A deploy in flight creates its container itself; do not race it.
                None if agent.status == AgentStatus::Provisioning
                    && (self.clock)() - agent.updated_at < chrono::Duration::seconds(60) => {}
                None => {
                    tracing::warn!(agent = %agent.id, container = %name, "agent container missing; recreating it");
                    self.agents.recreate(&agent).await?;
                    self.agents.audit(&agent, "agent.recreated", json!({ "container": name })).await?;
                    report.recreated.push(agent.id);
                }
                Some(status) if !status.running => self.crashed(&agent, &status, &mut report).await?,
                Some(_) if matches!(agent.status, AgentStatus::Provisioning | AgentStatus::Starting) => {
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
                                at: (self.clock)(),
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
        let status = super::ReconcilerStatus { at: (self.clock)(), error: None, orphans: report.orphans.clone() };
        self.agents.note_reconciled(status);
        Ok(report)
    }

    async fn crashed(
        &self,
        agent: &Agent,
        status: &ContainerStatus,
        report: &mut Report,
    ) -> Result<(), super::AgentError> {
        let runtime = self.agents.runtime().cloned().ok_or(super::AgentError::NoRuntime)?;
        let db = self.agents.db();
        let now = (self.clock)();
        let window = chrono::Duration::from_std(self.policy.window).unwrap_or(chrono::Duration::MAX);
        // The runtime's FinishedAt names this exit, so a pass after a platform restart does not count it again.
        let exit = status.finished_at.clone().unwrap_or_else(|| "unknown".into());
        let mut agent = agent.clone();
        if agent.last_exit_counted.as_deref() != Some(exit.as_str()) {
            let mut crashes: Vec<_> = agent.recent_crashes.0.iter().copied().filter(|t| now - *t <= window).collect();
            crashes.push(now);
            let n = u32::try_from(crashes.len()).unwrap_or(u32::MAX);
            let exit_code = status.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into());
            if n >= self.policy.max_crashes {
                let reason = format!(
                    "crash loop: exited {n} times within {} minutes (last exit status {exit_code}); fix its \
                     configuration, then deploy it again",
                    self.policy.window.as_secs() / 60,
                );
                agents::record_crash(db, &agent, &crashes, &exit, AgentStatus::Error, &reason).await?;
                self.agents
                    .audit(&agent, "agent.crash_loop", json!({ "crashes": n, "exit_code": status.exit_code }))
                    .await?;
                report.crash_looping.push(agent.id);
                return Ok(());
            }
            let reason = format!(
                "exited with status {exit_code}; restarting in {} s (crash {n}; {} within {} minutes make a crash loop)",
                self.backoff(n).as_secs(),
                self.policy.max_crashes,
                self.policy.window.as_secs() / 60,
            );
            agent = agents::record_crash(db, &agent, &crashes, &exit, AgentStatus::Starting, &reason).await?;
        }
        let n = u32::try_from(agent.recent_crashes.0.len().max(1)).unwrap_or(u32::MAX);
        let last = agent.recent_crashes.0.last().copied().unwrap_or(now);
        let due = last + chrono::Duration::from_std(self.backoff(n)).unwrap_or(chrono::Duration::MAX);
        if now < due {
            return Ok(()); // waiting out the backoff
        }
        runtime.start_container(&status.name).await?;
        agents::record_restart(db, &agent, "restarted after it exited; waiting for its health check").await?;
        self.agents
            .audit(&agent, "agent.restarted", json!({ "exit_code": status.exit_code, "recent_crashes": n }))
            .await?;
        report.restarted.push(agent.id);
        Ok(())
    }

    /// The wait before restarting after the `n`th recent crash: `backoff`, doubled per crash, capped.
    fn backoff(&self, n: u32) -> Duration {
        self.policy.backoff.saturating_mul(1 << n.saturating_sub(1).min(16)).min(self.policy.max_backoff)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the runtime's events for our containers and signals `attention` when one stopped or vanished;
/// reconnects after a pause (1 s, doubling to 60 s) when the stream ends or fails, asking for everything since
/// the previous stream ended. `following` is true from the first subscription on.
async fn watch_events(
    runtime: Arc<dyn crate::runtime::ContainerRuntime>,
    attention: tokio::sync::mpsc::Sender<()>,
    following: Arc<tokio::sync::watch::Sender<bool>>,
) {
    let mut pause = Duration::from_secs(1);
    let mut since = std::time::SystemTime::now();
    loop {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let (subscribed, accepted) = tokio::sync::oneshot::channel();
        let stream = runtime.watch(LABEL_MANAGED, "true", since, tx, subscribed);
        let forward = async {
            let mut accepted = Some(accepted);
            loop {
                let event = match accepted.as_mut() {
                    Some(subscription) => tokio::select! {
                        answer = subscription => {
                            accepted = None;
                            if answer.is_ok() {
                                following.send_replace(true);
                            }
                            continue;
                        }
                        event = rx.recv() => event,
                    },
                    None => rx.recv().await,
                };
                let Some(event) = event else { return };
                if event.needs_attention() {
                    tracing::debug!(container = %event.name, action = %event.action, "runtime event");
                    if attention.try_send(()).is_err() && attention.is_closed() {
                        return;
                    }
                }
            }
        };
        let (result, ()) = tokio::join!(stream, forward);
        since = std::time::SystemTime::now();
        if attention.is_closed() {
            return;
        }
        match result {
            Ok(()) => pause = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, "runtime event stream failed; the periodic pass still runs");
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
        tokio::time::sleep(pause).await;
    }
}
