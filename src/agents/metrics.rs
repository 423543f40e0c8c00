//! What a running agent uses (CPU, memory, processes: the last ten minutes, in memory) and what it printed.

use super::*;

/// Samples kept per agent: 120 x 5 s = the last 10 minutes.
pub const METRIC_HISTORY: usize = 120;

/// One resource sample of a running agent.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MetricPoint {
    pub at: chrono::DateTime<chrono::Utc>,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub pids: u64,
}

impl Agents {
    /// Records a sample (bounded history: the oldest go first).
    pub fn record_metric(&self, id: AgentId, point: MetricPoint) {
        let mut all = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let history = all.entry(id).or_default();
        if history.len() == METRIC_HISTORY {
            history.pop_front();
        }
        history.push_back(point);
    }

    /// The agent's recent samples, oldest first. The caller must have checked the agent is the client's.
    pub fn metrics(&self, id: AgentId) -> Vec<MetricPoint> {
        let all = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        all.get(&id).map(|h| h.iter().copied().collect()).unwrap_or_default()
    }

    /// The last `tail` log lines of an agent of `client_id`, secrets scrubbed. Empty when not deployed.
    pub async fn logs(&self, client_id: ClientId, id: AgentId, tail: u32) -> Result<Vec<String>, AgentError> {
        let agent = agents::get(&self.db, client_id, id).await?;
        if agent.container_id.is_none() {
            return Ok(Vec::new());
        }
        let runtime = self.runtime_or_err()?;
        let name = hardening::names(client_id, id).container;
        match runtime.logs(&name, tail.min(500)).await {
            Ok(lines) => Ok(lines.iter().map(|l| crate::scrub::scrub_text(l).into_owned()).collect()),
            Err(RuntimeError::Missing(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}
