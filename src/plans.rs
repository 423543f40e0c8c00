//! Plans: what a client bought, as limits the platform enforces.
//!
//! A plan is configuration, not code: the built-in catalog ([`default_plans`]) has a free `trial` tier and three
//! paid plans, and `[billing.plans.<id>]` in the configuration replaces or adds plans. Limits come from the
//! plan a client is on ([`Catalog::limits_for`]); without billing configured (no Stripe key) a self-hosted
//! platform sells nothing, and every client gets the `self_hosted` plan's limits.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::retention::{PlanRetention, MAX_DAYS};
use crate::db::{on_pool, ClientId, Db, DbError};
use crate::runtime::bounds::{MAX_CPU_MILLIS, MAX_MEMORY_MIB, MIN_CPU_MILLIS};

/// The free tier every new client starts on, and where a cancelled subscription lands.
pub const TRIAL: &str = "trial";
/// The plan of every client when billing is not configured (a self-hosted platform sells nothing).
pub const SELF_HOSTED: &str = "self_hosted";
/// OpenClaw is killed at 512 MiB and needs about 1 GiB (docs/billing.md): no plan may give an agent less.
pub const MIN_PLAN_MEMORY_MIB: u32 = 1024;

/// One plan, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable id stored with each client (`trial`, `starter`, ...).
    #[serde(skip)]
    pub id: String,
    /// Shown to customers.
    pub name: String,
    /// The Stripe Price a Checkout Session sells; `None` for plans that cannot be bought (trial, self-hosted).
    #[serde(default)]
    pub stripe_price_id: Option<String>,
    /// Price shown on the billing page, in whole US cents per month (display only: Stripe charges the Price).
    #[serde(default)]
    pub monthly_price_cents: u32,
    pub max_agents: u32,
    pub memory_mib_per_agent: u32,
    pub cpu_millis_per_agent: u32,
    /// Daily LLM spend through the gateway, in millionths of a US dollar.
    pub daily_token_cap_micro_usd: u64,
    pub audit_retention_days: u32,
    pub siem_export: bool,
}

/// The limits of the plan a client is on: what every enforcement point reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanLimits {
    /// The plan's id (`trial`, `team`, `self_hosted`, ...).
    pub plan: String,
    /// The plan's display name, for messages ("the Starter plan allows ...").
    pub plan_name: String,
    pub max_agents: u32,
    pub memory_mib_per_agent: u32,
    pub cpu_millis_per_agent: u32,
    /// Daily LLM spend cap through the gateway, in micro-USD (1_000_000 = one US dollar).
    pub daily_token_cap_micro_usd: u64,
    pub audit_retention_days: u32,
    pub siem_export: bool,
}

impl Plan {
    pub fn limits(&self) -> PlanLimits {
        PlanLimits {
            plan: self.id.clone(),
            plan_name: self.name.clone(),
            max_agents: self.max_agents,
            memory_mib_per_agent: self.memory_mib_per_agent,
            cpu_millis_per_agent: self.cpu_millis_per_agent,
            daily_token_cap_micro_usd: self.daily_token_cap_micro_usd,
            audit_retention_days: self.audit_retention_days,
            siem_export: self.siem_export,
        }
    }

    /// Whether a customer can buy it (it has a Stripe price).
    pub fn purchasable(&self) -> bool {
        self.stripe_price_id.is_some()
    }

    /// Checks the plan's limits; the error names the plan and the field.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.id;
        let valid_id = (1..=32).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_id {
            return Err(format!("plan id {id:?}: use a-z, 0-9 and '_', starting with a letter (at most 32)"));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 64 {
            return Err(format!("plan {id}: name must be 1 to 64 characters"));
        }
        if let Some(price) = &self.stripe_price_id {
            let ok = price.starts_with("price_")
                && (7..=255).contains(&price.len())
                && price.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(format!("plan {id}: stripe_price_id must look like price_... (letters, digits, '_')"));
            }
        }
        if !(1..=10_000).contains(&self.max_agents) {
            return Err(format!("plan {id}: max_agents must be between 1 and 10000"));
        }
        if !(MIN_PLAN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&self.memory_mib_per_agent) {
            return Err(format!(
                "plan {id}: memory_mib_per_agent must be between {MIN_PLAN_MEMORY_MIB} (OpenClaw needs about 1 GiB) \
                 and {MAX_MEMORY_MIB}"
            ));
        }
        if !(MIN_CPU_MILLIS..=MAX_CPU_MILLIS).contains(&self.cpu_millis_per_agent) {
            return Err(format!(
                "plan {id}: cpu_millis_per_agent must be between {MIN_CPU_MILLIS} and {MAX_CPU_MILLIS}"
            ));
        }
        if !(1..=MAX_DAYS).contains(&self.audit_retention_days) {
            return Err(format!("plan {id}: audit_retention_days must be between 1 and {MAX_DAYS}"));
        }
        Ok(())
    }
}

// One row of the built-in table; named fields would make the table five times longer.
#[allow(clippy::too_many_arguments)]
fn plan(
    id: &str,
    name: &str,
    price: Option<&str>,
    cents: u32,
    agents: u32,
    memory: u32,
    cpu: u32,
    cap_usd: u64,
    retention: u32,
    siem: bool,
) -> Plan {
    Plan {
        id: id.into(),
        name: name.into(),
        stripe_price_id: price.map(Into::into),
        monthly_price_cents: cents,
        max_agents: agents,
        memory_mib_per_agent: memory,
        cpu_millis_per_agent: cpu,
        daily_token_cap_micro_usd: cap_usd * 1_000_000,
        audit_retention_days: retention,
        siem_export: siem,
    }
}

/// The built-in catalog. Price ids are placeholders an operator replaces with their own Stripe Prices.
pub fn default_plans() -> Vec<Plan> {
    vec![
        plan(TRIAL, "Trial", None, 0, 1, 1024, 1000, 1, 30, false),
        plan("starter", "Starter", Some("price_deployclaw_starter"), 2900, 3, 2048, 1000, 10, 90, false),
        plan("team", "Team", Some("price_deployclaw_team"), 9900, 10, 4096, 2000, 50, 365, true),
        plan("business", "Business", Some("price_deployclaw_business"), 49900, 50, 8192, 4000, 250, 3650, true),
        plan(SELF_HOSTED, "Self-hosted", None, 0, 1000, MAX_MEMORY_MIB, MAX_CPU_MILLIS, 100, MAX_DAYS, true),
    ]
}

/// The plans on sale and whether they are enforced. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    plans: Arc<Vec<Plan>>,
    billing_enabled: bool,
}

impl Catalog {
    /// `plans` must contain `trial` and `self_hosted` (configuration validation makes sure).
    pub fn new(plans: Vec<Plan>, billing_enabled: bool) -> Self {
        Self { plans: Arc::new(plans), billing_enabled }
    }

    /// The built-in plans with billing off: every client gets the self-hosted plan's limits.
    pub fn self_hosted() -> Self {
        Self::new(default_plans(), false)
    }

    /// Whether clients are billed (a Stripe key is configured): then their own plan's limits apply.
    pub fn billing_enabled(&self) -> bool {
        self.billing_enabled
    }

    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// The plan a Stripe Price sells.
    pub fn by_price(&self, price_id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.stripe_price_id.as_deref() == Some(price_id))
    }

    /// Plans a customer can buy, in catalog order.
    pub fn purchasable(&self) -> impl Iterator<Item = &Plan> {
        self.plans.iter().filter(|p| p.purchasable())
    }

    fn required(&self, id: &str) -> &Plan {
        self.get(id).expect("the catalog always holds the trial and self_hosted plans")
    }

    /// Each plan's audit retention limit, for the audit trail (which knows no plans).
    pub fn retention_limits(&self) -> PlanRetention {
        if !self.billing_enabled {
            let all = self.required(SELF_HOSTED).audit_retention_days;
            return PlanRetention { by_plan: Default::default(), other: all };
        }
        PlanRetention {
            by_plan: self.plans.iter().map(|p| (p.id.clone(), p.audit_retention_days)).collect(),
            other: self.required(TRIAL).audit_retention_days,
        }
    }

    /// The limits for a client whose stored plan is `plan`: that plan's when billing is enabled (an unknown
    /// plan - one removed from the configuration - falls back to the trial), the self-hosted plan's otherwise.
    pub fn limits_for(&self, plan: &str) -> PlanLimits {
        if !self.billing_enabled {
            return self.required(SELF_HOSTED).limits();
        }
        self.get(plan).unwrap_or_else(|| self.required(TRIAL)).limits()
    }
}

/// The limits of the plan `client_id` is on now, as every enforcement point reads them: agent count, memory and
/// CPU per agent, the gateway's daily token spend cap (`daily_token_cap_micro_usd`), audit retention and SIEM
/// export. Without billing configured every client gets the `self_hosted` plan's limits. `NotFound` for a client
/// that does not exist.
pub async fn limits_of(db: &Db, catalog: &Catalog, client_id: ClientId) -> Result<PlanLimits, DbError> {
    let plan: String = on_pool!(db, |p| sqlx::query_scalar("SELECT plan FROM clients WHERE id = $1")
        .bind(client_id)
        .fetch_one(p)
        .await?);
    Ok(catalog.limits_for(&plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_plans_are_valid_and_run_openclaw() {
        let plans = default_plans();
        for p in &plans {
            p.validate().unwrap();
            assert!(p.memory_mib_per_agent >= 1024, "{} cannot run OpenClaw", p.id);
        }
        assert!(plans.iter().filter(|p| p.purchasable()).count() >= 3);
        let catalog = Catalog::new(plans, true);
        assert_eq!(catalog.limits_for("team").max_agents, 10);
        assert_eq!(catalog.limits_for("removed-plan").plan, TRIAL);
        assert_eq!(catalog.by_price("price_deployclaw_starter").unwrap().id, "starter");
        let unbilled = Catalog::new(default_plans(), false);
        assert_eq!(unbilled.limits_for(TRIAL).plan, SELF_HOSTED);
    }

    #[test]
    fn bad_plans_name_the_plan_and_field() {
        let mut p = default_plans().remove(1);
        p.memory_mib_per_agent = 512;
        let err = p.validate().unwrap_err();
        assert!(err.contains("starter") && err.contains("memory_mib_per_agent"), "{err}");
        p.memory_mib_per_agent = 1024;
        p.stripe_price_id = Some("sk_live_oops".into());
        assert!(p.validate().unwrap_err().contains("stripe_price_id"));
    }
}
