//! The billing page: the plan a client is on and its usage against the limits, the plans on sale, and the two
//! ways to Stripe's hosted pages (Checkout to upgrade, the portal to manage). Anyone on the team reads; only the
//! owner, with a fresh second factor, goes to Stripe. Each server function calls one core function.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::caller::{respond, Access, Caller};
use super::AppError;

/// A plan's limits as the page shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    /// US cents per month (0 for plans that are not sold).
    pub monthly_price_cents: u32,
    pub max_agents: u32,
    pub memory_mib_per_agent: u32,
    pub cpu_millis_per_agent: u32,
    pub daily_token_cap_micro_usd: u64,
    pub audit_retention_days: u32,
    pub siem_export: bool,
}

/// Everything the billing page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingView {
    /// False when this server has no Stripe key: the page says billing is not configured.
    pub enabled: bool,
    pub current: PlanView,
    /// Stripe's subscription status (`none`, `active`, `past_due`, `canceled`, ...).
    pub status: String,
    /// The plan paid for when it is not the one in effect (suspended for non-payment).
    pub subscribed_plan: Option<String>,
    /// RFC 3339.
    pub current_period_end: Option<String>,
    /// RFC 3339: when the agents are stopped unless a payment succeeds.
    pub grace_until: Option<String>,
    /// RFC 3339: when the agents were stopped for non-payment.
    pub suspended_at: Option<String>,
    pub can_manage_billing: bool,
    pub has_customer: bool,
    pub agents: u32,
    pub running_agents: u32,
    pub memory_mib_in_use: u64,
    /// The plans on sale.
    pub plans: Vec<PlanView>,
}

#[cfg(feature = "ssr")]
impl From<deployclaw::billing::PlanLimits> for PlanView {
    fn from(l: deployclaw::billing::PlanLimits) -> Self {
        PlanView {
            id: l.plan,
            name: l.plan_name,
            monthly_price_cents: 0,
            max_agents: l.max_agents,
            memory_mib_per_agent: l.memory_mib_per_agent,
            cpu_millis_per_agent: l.cpu_millis_per_agent,
            daily_token_cap_micro_usd: l.daily_token_cap_micro_usd,
            audit_retention_days: l.audit_retention_days,
            siem_export: l.siem_export,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<deployclaw::billing::BillingError> for AppError {
    fn from(e: deployclaw::billing::BillingError) -> Self {
        use deployclaw::billing::BillingError;
        match e {
            BillingError::NotConfigured | BillingError::Invalid(_) => {
                AppError::Invalid(super::auth::capital(&e.to_string()))
            }
            BillingError::OwnerOnly => AppError::Forbidden("Only the account owner can change billing.".into()),
            BillingError::TwoFactorRequired => AppError::TwoFactorRequired,
            BillingError::Stripe(_) => AppError::Invalid(super::auth::capital(&e.to_string())),
            BillingError::Db(e) => e.into(),
        }
    }
}

/// The caller's billing.
#[server(prefix = "/api/fn", endpoint = "billing_overview")]
pub async fn billing_overview() -> Result<BillingView, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require(Access::SignedIn).await?;
        let o = caller.platform.billing().overview(user.client_id).await?;
        let current_price = o.plans.iter().find(|p| p.id == o.limits.plan).map_or(0, |p| p.monthly_price_cents);
        Ok(BillingView {
            enabled: o.enabled,
            current: PlanView { monthly_price_cents: current_price, ..o.limits.into() },
            status: o.status.as_str().to_string(),
            subscribed_plan: o.subscribed_plan,
            current_period_end: o.current_period_end.map(|t| t.to_rfc3339()),
            grace_until: o.grace_until.map(|t| t.to_rfc3339()),
            suspended_at: o.suspended_at.map(|t| t.to_rfc3339()),
            can_manage_billing: user.role == deployclaw::db::users::Role::Owner,
            has_customer: o.has_customer,
            agents: o.agents,
            running_agents: o.running_agents,
            memory_mib_in_use: o.memory_mib_in_use,
            plans: o
                .plans
                .into_iter()
                .map(|p| PlanView { monthly_price_cents: p.monthly_price_cents, ..p.limits().into() })
                .collect(),
        })
    })
    .await
}

/// Starts an upgrade to `plan` (owner; fresh second factor): returns the Stripe Checkout URL to go to.
#[server(prefix = "/api/fn", endpoint = "start_checkout")]
pub async fn start_checkout(plan: String) -> Result<String, AppError> {
    respond(async move {
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::Owner).await?;
        let proof = caller.vault_proof()?;
        Ok(caller.platform.billing().start_checkout(user.client_id, user.id, &proof, plan.trim(), &caller.ctx).await?)
    })
    .await
}

/// Opens Stripe's billing portal (owner; fresh second factor): returns its URL.
#[server(prefix = "/api/fn", endpoint = "open_billing_portal")]
pub async fn open_billing_portal() -> Result<String, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::Owner).await?;
        let proof = caller.vault_proof()?;
        Ok(caller.platform.billing().portal(user.client_id, user.id, &proof, &caller.ctx).await?)
    })
    .await
}
