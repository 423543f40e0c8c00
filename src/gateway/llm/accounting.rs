//! After a call: metering the answer as it streams by, then its cost, the day's spend, the audit event and
//! the budget alerts - exactly once per call, whether the answer ended or was cut.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;

use super::upstream::Lease;
use super::usage::UsageScanner;
use super::{spend, usd, Call, LlmGateway};
use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::gateway::pricing::Usage;

impl LlmGateway {
    /// After the answer: cost, spend, audit, alerts. `usage` is `None` when the answer reported none.
    pub(super) async fn account(&self, call: Call, status: StatusCode, reported: Option<Usage>, answer_bytes: u64) {
        let success = status.is_success();
        let (usage, estimated) = match (success, reported) {
            (false, _) => (Usage::default(), false),
            (true, Some(u)) => (u, false),
            (true, None) => (super::usage::estimate(call.request_bytes, answer_bytes), true),
        };
        let cost = if success { call.price.map_or(0, |p| p.cost(usage)) } else { 0 };
        let day = spend::today();
        let mut spent_today = None;
        if success {
            match spend::add(&self.inner.db, call.client, call.agent, day, cost, usage).await {
                Ok(total) => {
                    self.note_spend(call.agent, day, total);
                    spent_today = Some(total);
                }
                Err(e) => tracing::error!(agent = %call.agent, error = %e, "LLM gateway: could not record spend"),
            }
        }
        let outcome = Outcome { usage, estimated, cost, spent_today };
        self.record(&call, status, Some(&outcome), None, answer_bytes).await;
        if let Some(total) = spent_today {
            self.alert_if_needed(&call, day, total).await;
        }
    }

    pub(super) async fn alert_if_needed(&self, call: &Call, day: chrono::NaiveDate, total: u64) {
        let reached = spend::reached_percent(total, call.cap_micro_usd);
        if reached == 0 {
            return;
        }
        match spend::claim_alert(&self.inner.db, call.client, call.agent, day, reached).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(agent = %call.agent, error = %e, "LLM gateway: could not record a budget alert");
                return;
            }
        }
        let event = NewEvent::new(Some(call.client), Actor::Platform, ActionType::known("gateway.budget_alert"))
            .agent(call.agent)
            .target(format!("{reached}%"))
            .metadata(json!({
                "percent": reached,
                "spent_micro_usd": total,
                "cap_micro_usd": call.cap_micro_usd,
                "day": day.to_string(),
            }));
        if let Err(e) = audit::append(&self.inner.db, event).await {
            tracing::error!(agent = %call.agent, error = %e, "LLM gateway: could not audit a budget alert");
        }
        let Some(mailer) = &self.inner.mailer else { return };
        let agent_name = match crate::db::agents::get(&self.inner.db, call.client, call.agent).await {
            Ok(a) => a.name,
            Err(_) => call.agent.to_string(),
        };
        let users = crate::db::users::list(&self.inner.db, call.client).await.unwrap_or_default();
        for user in users.iter().filter(|u| u.role.manages_client()) {
            let email = crate::mail::budget_alert_email(
                &user.email,
                &agent_name,
                reached,
                &usd(total),
                &usd(call.cap_micro_usd),
            );
            if let Err(e) = mailer.send(email).await {
                tracing::warn!(agent = %call.agent, error = %e, "LLM gateway: budget alert email not sent");
            }
        }
    }

    /// One `gateway.llm_call` event: who, which model, what it cost. Never the prompt or the answer.
    pub(super) async fn record(
        &self,
        call: &Call,
        status: StatusCode,
        outcome: Option<&Outcome>,
        denied: Option<&str>,
        bytes_down: u64,
    ) {
        let mut meta = json!({
            "provider": call.provider.as_str(),
            "model": call.model.chars().take(crate::gateway::pricing::MAX_MODEL_CHARS).collect::<String>(),
            "stream": call.stream,
            "status": status.as_u16(),
            "allowed": denied.is_none(),
            "reason": denied,
            "cap_micro_usd": call.cap_micro_usd,
            "bytes_up": call.request_bytes,
            "bytes_down": bytes_down,
            "duration_ms": u64::try_from(call.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(o) = outcome {
            meta["input_tokens"] = json!(o.usage.input_tokens);
            meta["output_tokens"] = json!(o.usage.output_tokens);
            meta["usage_estimated"] = json!(o.estimated);
            meta["cost_micro_usd"] = json!(o.cost);
            meta["spent_today_micro_usd"] = json!(o.spent_today);
        }
        let target = if call.model.is_empty() {
            call.provider.as_str().to_string()
        } else {
            format!("{}:{}", call.provider.as_str(), call.model)
        };
        let event = NewEvent::new(Some(call.client), Actor::Agent(call.agent), ActionType::known("gateway.llm_call"))
            .agent(call.agent)
            .target(target.chars().take(200).collect::<String>())
            .metadata(meta);
        if let Err(e) = audit::append(&self.inner.db, event).await {
            tracing::error!(agent = %call.agent, error = %e, "LLM gateway: could not record a call");
        }
    }
}

pub(super) struct Outcome {
    usage: Usage,
    estimated: bool,
    cost: u64,
    spent_today: Option<u64>,
}

/// Watches an answer go by. Accounts exactly once: when the answer ended, or when it was cut (the agent hung
/// up, the provider failed or went quiet) - then with what was seen.
pub(super) struct Meter {
    pub(super) gateway: LlmGateway,
    pub(super) call: Call,
    pub(super) status: StatusCode,
    pub(super) scanner: Option<UsageScanner>,
    pub(super) lease: Option<Lease>,
    pub(super) ended: bool,
}

impl Meter {
    pub(super) fn feed(&mut self, data: &Bytes) {
        if let Some(s) = &mut self.scanner {
            s.feed(data);
        }
    }

    /// The answer arrived whole: the connection can be reused.
    pub(super) fn end(&mut self) {
        self.ended = true;
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
        self.settle();
    }

    /// The answer was cut: the connection is closed, the call accounted with what was seen.
    pub(super) fn cut(mut self) -> Self {
        self.ended = true;
        self.lease = None;
        self.settle();
        self
    }

    pub(super) fn settle(&mut self) {
        let Some(scanner) = self.scanner.take() else { return };
        let bytes = scanner.bytes();
        let usage = scanner.finish();
        let (gateway, call, status) = (self.gateway.clone(), self.call.clone(), self.status);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { gateway.account(call, status, usage, bytes).await });
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // The agent went away before the end: close the provider connection, account what was seen.
        self.lease = None;
        self.settle();
    }
}
