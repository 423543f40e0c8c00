//! Billing: plans that become enforced limits, Stripe Checkout, and Stripe's verified webhooks.
//!
//! We never touch card data: Checkout and the billing portal are hosted by Stripe, and Stripe's webhook tells
//! us what the customer bought. This module sells the plans of [`crate::plans`]; it owns the subscription mirror
//! ([`store`], Stripe is the source of truth), webhook verification ([`signature`]) and reading ([`webhook`]),
//! the three Stripe calls ([`stripe`]), and enforcement: a client over its plan's limits has agents stopped
//! (never deleted), and a failed payment starts a grace period after which all its agents are stopped. Every
//! billing action is recorded with [`audit::append`]. It must never log or return a Stripe secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use url::Url;

use crate::agents::{AgentSettings, Agents};
use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::context::RequestContext;
use crate::db::agents::AgentStatus;
use crate::db::users::{self, Role};
use crate::db::{ClientId, Db, DbError, UserId};
use crate::identity::fresh::FreshTwoFactor;
use crate::mail::{Mailer, OutgoingEmail};

pub mod config;
pub mod signature;
pub mod store;
pub mod stripe;
pub mod webhook;

pub use crate::plans::{Catalog, Plan, PlanLimits};
pub use config::BillingConfig;
pub use signature::TOLERANCE_SECS as WEBHOOK_TOLERANCE_SECS;
pub use store::SubscriptionStatus;
pub use webhook::MAX_BODY_BYTES as WEBHOOK_MAX_BODY_BYTES;

/// What went wrong in a customer's billing request. Messages are shown to the customer; Stripe's own error text
/// is logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("billing is not configured on this DeployClaw server")]
    NotConfigured,
    #[error("only the account owner can change billing")]
    OwnerOnly,
    #[error("confirm with your authenticator first")]
    TwoFactorRequired,
    #[error("{0}")]
    Invalid(String),
    #[error("Stripe could not be reached or refused the request; try again in a minute")]
    Stripe(#[source] stripe::StripeError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a webhook delivery was refused (see [`Billing::handle_webhook`]); safe to return to the sender.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("billing is not configured")]
    NotConfigured,
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    #[error(transparent)]
    Event(#[from] webhook::EventError),
    #[error("internal error")]
    Db(#[from] DbError),
}

/// What a webhook delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Applied (or recorded without effect, such as an unknown type or a stale event).
    Processed { applied: store::Applied },
    /// The event id was processed before.
    Duplicate,
}

/// A client's billing as the billing page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BillingOverview {
    pub enabled: bool,
    pub limits: PlanLimits,
    pub status: SubscriptionStatus,
    /// The plan subscribed to, when it differs from the effective one (suspended, cancelled).
    pub subscribed_plan: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub has_customer: bool,
    pub agents: u32,
    pub running_agents: u32,
    /// Memory the running agents are given, in MiB.
    pub memory_mib_in_use: u64,
    pub plans: Vec<Plan>,
}

/// The platform's billing service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Billing {
    db: Db,
    config: BillingConfig,
    agents: Agents,
    mailer: Mailer,
    public_url: Url,
    stripe: Option<stripe::StripeClient>,
}

/// Agents that are running, or on their way to it.
fn active(status: AgentStatus) -> bool {
    matches!(status, AgentStatus::Provisioning | AgentStatus::Starting | AgentStatus::Running)
}

impl Billing {
    pub fn new(db: Db, config: BillingConfig, agents: Agents, mailer: Mailer, public_url: Url) -> Self {
        let stripe =
            config.stripe_secret_key.clone().map(|key| stripe::StripeClient::new(config.stripe_api_base.clone(), key));
        Self { db, config, agents, mailer, public_url, stripe }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.config.catalog
    }

    /// See [`crate::plans::limits_of`].
    pub async fn plan_limits(&self, client_id: ClientId) -> Result<PlanLimits, DbError> {
        crate::plans::limits_of(&self.db, &self.config.catalog, client_id).await
    }

    /// The billing page's data for `client_id`.
    pub async fn overview(&self, client_id: ClientId) -> Result<BillingOverview, DbError> {
        let limits = self.plan_limits(client_id).await?;
        let sub = store::get(&self.db, client_id).await?;
        let agents = self.agents.list(client_id).await?;
        let running: Vec<_> = agents.iter().filter(|a| active(a.status)).collect();
        let memory_mib_in_use = running
            .iter()
            .map(|a| {
                let template = self.agents.template_of(a).ok();
                let settings = AgentSettings::from_config(&a.config).unwrap_or_default();
                template.map_or(0, |t| settings.memory_bytes(t) / (1024 * 1024))
            })
            .sum();
        let subscribed_plan = sub.as_ref().map(|s| s.plan.clone()).filter(|p| *p != limits.plan);
        Ok(BillingOverview {
            enabled: self.enabled(),
            status: sub.as_ref().map_or(SubscriptionStatus::None, |s| s.status),
            subscribed_plan: subscribed_plan.filter(|_| self.enabled()),
            current_period_end: sub.as_ref().and_then(|s| s.current_period_end),
            grace_until: sub.as_ref().and_then(|s| s.grace_until),
            suspended_at: sub.as_ref().and_then(|s| s.suspended_at),
            has_customer: sub.as_ref().is_some_and(|s| s.stripe_customer_id.is_some()),
            agents: u32::try_from(agents.len()).unwrap_or(u32::MAX),
            running_agents: u32::try_from(running.len()).unwrap_or(u32::MAX),
            memory_mib_in_use,
            limits,
            plans: self.config.catalog.purchasable().cloned().collect(),
        })
    }

    fn stripe(&self) -> Result<&stripe::StripeClient, BillingError> {
        self.stripe.as_ref().ok_or(BillingError::NotConfigured)
    }

    /// The caller must be the client's owner, with a fresh second factor.
    async fn owner(&self, client_id: ClientId, user_id: UserId, proof: &FreshTwoFactor) -> Result<(), BillingError> {
        let user = users::get(&self.db, client_id, user_id).await?;
        if user.role != Role::Owner {
            return Err(BillingError::OwnerOnly);
        }
        if !proof.covers(client_id) {
            return Err(BillingError::TwoFactorRequired);
        }
        Ok(())
    }

    async fn record(
        &self,
        client_id: ClientId,
        actor: Actor,
        action: &'static str,
        meta: serde_json::Value,
        ctx: Option<&RequestContext>,
    ) -> Result<(), DbError> {
        let mut event =
            NewEvent::new(Some(client_id), actor, ActionType::known(action)).target("billing").metadata(meta);
        if let Some(ctx) = ctx {
            event = event.request(ctx);
        }
        audit::append(&self.db, event).await.map(|_| ())
    }

    /// The client's Stripe customer, created on first use (one per client; Checkout reuses it).
    async fn customer(&self, client_id: ClientId) -> Result<String, BillingError> {
        if let Some(c) = store::get(&self.db, client_id).await?.and_then(|s| s.stripe_customer_id) {
            return Ok(c);
        }
        let client = crate::db::clients::get(&self.db, client_id).await?;
        let created =
            self.stripe()?.create_customer(client.email.as_str(), &client.name, &client_id.to_string()).await.map_err(
                |e| {
                    tracing::error!(error = %e, client = %client_id, "creating the Stripe customer failed");
                    BillingError::Stripe(e)
                },
            )?;
        Ok(store::set_customer(&self.db, client_id, &created.id).await?)
    }

    /// Where Stripe sends the browser back: a page without a session that moves on to `/dashboard/billing` (the
    /// session cookie is `SameSite=Strict`, so it is not sent on the navigation from Stripe's site).
    fn page(&self, query: &str) -> String {
        let mut url = self.public_url.join("/billing/return").expect("a fixed path joins");
        url.set_query(Some(query));
        url.to_string()
    }

    /// Starts an upgrade: a Checkout Session for `plan_id` (client reference = our client id, the client's Stripe
    /// customer reused). Owner only, with a fresh second factor; audited as `billing.checkout_started`. Returns
    /// the URL of Stripe's hosted page to send the browser to.
    pub async fn start_checkout(
        &self,
        client_id: ClientId,
        user_id: UserId,
        proof: &FreshTwoFactor,
        plan_id: &str,
        ctx: &RequestContext,
    ) -> Result<String, BillingError> {
        self.stripe()?;
        self.owner(client_id, user_id, proof).await?;
        let plan = self
            .config
            .catalog
            .get(plan_id)
            .filter(|p| p.purchasable())
            .ok_or_else(|| BillingError::Invalid(format!("there is no plan {plan_id:?} to buy")))?;
        // A second Checkout would start a second subscription: plan changes of a subscriber go through the portal.
        if store::get(&self.db, client_id).await?.is_some_and(|s| s.status.grants_plan()) {
            return Err(BillingError::Invalid(
                "you already have a subscription; change or cancel it under Manage billing".into(),
            ));
        }
        let price = plan.stripe_price_id.clone().expect("purchasable plans have a price");
        let customer = self.customer(client_id).await?;
        let session = self
            .stripe()?
            .create_checkout_session(
                &customer,
                &client_id.to_string(),
                &price,
                &self.page("checkout=success"),
                &self.page("checkout=cancelled"),
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, client = %client_id, "creating the Checkout Session failed");
                BillingError::Stripe(e)
            })?;
        let url = session.url.ok_or_else(|| {
            BillingError::Stripe(stripe::StripeError::Answer("a Checkout Session without a URL".into()))
        })?;
        self.record(
            client_id,
            Actor::User(user_id),
            "billing.checkout_started",
            json!({ "plan": plan.id, "checkout_session": session.id }),
            Some(ctx),
        )
        .await?;
        Ok(url)
    }

    /// A billing portal session (payment methods, invoices, cancellation). Owner only, fresh second factor;
    /// audited as `billing.portal_opened`.
    pub async fn portal(
        &self,
        client_id: ClientId,
        user_id: UserId,
        proof: &FreshTwoFactor,
        ctx: &RequestContext,
    ) -> Result<String, BillingError> {
        self.stripe()?;
        self.owner(client_id, user_id, proof).await?;
        let customer = store::get(&self.db, client_id)
            .await?
            .and_then(|s| s.stripe_customer_id)
            .ok_or_else(|| BillingError::Invalid("there is nothing to manage yet: choose a plan first".into()))?;
        let session =
            self.stripe()?.create_portal_session(&customer, &self.page("portal=returned")).await.map_err(|e| {
                tracing::error!(error = %e, client = %client_id, "creating the portal session failed");
                BillingError::Stripe(e)
            })?;
        let url = session.url.ok_or_else(|| {
            BillingError::Stripe(stripe::StripeError::Answer("a portal session without a URL".into()))
        })?;
        self.record(client_id, Actor::User(user_id), "billing.portal_opened", json!({}), Some(ctx)).await?;
        Ok(url)
    }

    /// Verifies and applies one webhook delivery: the signature over the raw `body` (any configured secret, any
    /// `v1`, within [`WEBHOOK_TOLERANCE_SECS`] of `now`), then the event exactly once. Unknown event types are
    /// recorded and acknowledged. After a change: audit events, emails to owners, and limits enforced.
    pub async fn handle_webhook(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookOutcome, WebhookError> {
        if !self.enabled() {
            return Err(WebhookError::NotConfigured);
        }
        signature::verify(signature_header, body, &self.config.webhook_secrets, now.timestamp())?;
        let event = webhook::parse(body)?;
        let grace = chrono::Duration::from_std(self.config.grace_period).unwrap_or(chrono::Duration::days(7));
        let change = webhook::change(&event, &self.config.catalog, grace, now)?;
        let applied = store::apply(&self.db, &event.id, &event.kind, change, now).await?;
        match &applied {
            store::Applied::Duplicate => return Ok(WebhookOutcome::Duplicate),
            store::Applied::NoEffect { client, reason } => {
                tracing::info!(event = %event.id, kind = %event.kind, ?client, reason, "billing event recorded without effect");
            }
            store::Applied::Changed { client, plan_before, plan_after, status, grace_started, grace_ended } => {
                let client = *client;
                let meta = json!({ "event": event.id, "type": event.kind, "status": status.as_str(),
                                   "plan_before": plan_before, "plan_after": plan_after });
                self.record(client, Actor::Platform, "billing.subscription_synced", meta, None).await?;
                if plan_before != plan_after {
                    let action = if *status == SubscriptionStatus::Canceled {
                        "billing.downgraded"
                    } else {
                        "billing.plan_changed"
                    };
                    self.record(
                        client,
                        Actor::Platform,
                        action,
                        json!({ "from": plan_before, "to": plan_after }),
                        None,
                    )
                    .await?;
                }
                if let Some(until) = grace_started {
                    self.record(
                        client,
                        Actor::Platform,
                        "billing.payment_failed",
                        json!({ "grace_until": until.to_rfc3339() }),
                        None,
                    )
                    .await?;
                    self.email_owners(
                        client,
                        "Your DeployClaw payment failed",
                        &format!(
                            "We could not collect your DeployClaw payment.\n\nYour agents keep running until {} \
                         (UTC). If no payment succeeds by then, they are stopped (not deleted) until one does.\n\n\
                         Update your payment method under Billing > Manage billing.\n",
                            until.format("%Y-%m-%d %H:%M")
                        ),
                    )
                    .await;
                }
                if *grace_ended {
                    self.record(client, Actor::Platform, "billing.payment_recovered", json!({}), None).await?;
                }
                self.enforce_limits(client).await?;
            }
        }
        Ok(WebhookOutcome::Processed { applied })
    }

    async fn email_owners(&self, client_id: ClientId, subject: &str, body: &str) {
        let owners = match users::list(&self.db, client_id).await {
            Ok(all) => all.into_iter().filter(|u| u.role == Role::Owner),
            Err(e) => {
                tracing::error!(error = %e, client = %client_id, "billing email: cannot list owners");
                return;
            }
        };
        for owner in owners {
            let email = OutgoingEmail { to: owner.email.clone(), subject: subject.into(), body: body.into() };
            if let Err(e) = self.mailer.send(email).await {
                tracing::error!(error = %e, client = %client_id, "billing email could not be sent");
            }
        }
    }

    /// Brings `client_id` within its plan: running agents beyond the plan's count are stopped (the newest first;
    /// never deleted) and SIEM forwarding is paused on a plan without SIEM export. Each step audited.
    pub async fn enforce_limits(&self, client_id: ClientId) -> Result<(), DbError> {
        let limits = self.plan_limits(client_id).await?;
        let running: Vec<_> = self.agents.list(client_id).await?.into_iter().filter(|a| active(a.status)).collect();
        let keep = usize::try_from(limits.max_agents).unwrap_or(usize::MAX);
        for agent in running.iter().skip(keep) {
            let reason =
                format!("stopped: the {} plan allows {} running agent(s)", limits.plan_name, limits.max_agents);
            self.stop_agent(client_id, agent.id, &reason).await;
        }
        if !limits.siem_export {
            for d in crate::audit::siem::list(&self.db, client_id).await?.into_iter().filter(|d| d.enabled) {
                crate::audit::siem::set_enabled(&self.db, client_id, d.id, false).await?;
                let meta = json!({ "destination_id": d.id.to_string(), "reason": format!("the {} plan has no SIEM export", limits.plan_name) });
                let event =
                    NewEvent::new(Some(client_id), Actor::Platform, ActionType::known("siem.destination_disabled"))
                        .target(d.name.clone())
                        .metadata(meta);
                audit::append(&self.db, event).await?;
            }
        }
        Ok(())
    }

    async fn stop_agent(&self, client_id: ClientId, id: crate::db::AgentId, reason: &str) {
        if let Err(e) = self.agents.stop_for_platform(client_id, id, reason).await {
            // The next enforcement pass tries again.
            tracing::error!(error = %e, agent = %id, "billing could not stop an agent");
        }
    }

    /// Suspends every client whose grace period ended by `now`: all its agents are stopped (not deleted), the
    /// trial limits apply, owners are emailed and `billing.suspended` is recorded. Returns how many were
    /// suspended. The server runs this every `billing.enforcement_interval`.
    pub async fn expire_grace_periods(&self, now: DateTime<Utc>) -> Result<usize, DbError> {
        let mut suspended = 0;
        for client in store::grace_expired(&self.db, now).await? {
            if !store::suspend(&self.db, client, now).await? {
                continue;
            }
            suspended += 1;
            self.record(client, Actor::Platform, "billing.suspended", json!({ "reason": "payment overdue" }), None)
                .await?;
            for agent in self.agents.list(client).await?.into_iter().filter(|a| active(a.status)) {
                self.stop_agent(
                    client,
                    agent.id,
                    "stopped: payment overdue; it can be started again once a payment succeeds",
                )
                .await;
            }
            self.enforce_limits(client).await?;
            self.email_owners(
                client,
                "Your DeployClaw agents were stopped",
                "The grace period after your failed DeployClaw payment has ended, so your agents were stopped.\n\
                 Nothing was deleted: once a payment succeeds (Billing > Manage billing), start them again.\n",
            )
            .await;
        }
        Ok(suspended)
    }

    /// Enforces the trial's limits again for every client that fell back to it (cancelled or suspended): a stop
    /// that failed earlier (the container runtime was down) is retried here.
    pub async fn enforce_downgraded(&self) -> Result<(), DbError> {
        for client in store::clients_on_plan(&self.db, crate::plans::TRIAL).await? {
            self.enforce_limits(client).await?;
        }
        Ok(())
    }

    /// The background task: grace periods checked every `billing.enforcement_interval`, forever.
    pub async fn run(self) {
        let mut every = tokio::time::interval(self.config.enforcement_interval.max(Duration::from_secs(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.expire_grace_periods(crate::db::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(clients = n, "billing: grace periods ended, agents stopped"),
                Err(e) => tracing::error!(error = %e, "billing enforcement pass failed"),
            }
            if let Err(e) = self.enforce_downgraded().await {
                tracing::error!(error = %e, "billing: enforcing the trial's limits failed");
            }
        }
    }

    /// Adds a SIEM destination if the client's plan includes SIEM export (see
    /// [`crate::audit::settings::add_destination`]).
    pub async fn add_siem_destination(
        &self,
        rules: &crate::audit::config::SiemConfig,
        actor: Actor,
        client_id: ClientId,
        new: crate::audit::siem::NewDestination,
        ctx: &RequestContext,
    ) -> Result<crate::audit::siem::Destination, DbError> {
        self.require_siem(client_id).await?;
        crate::audit::settings::add_destination(&self.db, rules, actor, client_id, new, ctx).await
    }

    /// Pauses or resumes a SIEM destination; resuming needs a plan with SIEM export.
    pub async fn set_siem_destination_enabled(
        &self,
        actor: Actor,
        client_id: ClientId,
        id: crate::audit::siem::DestinationId,
        enabled: bool,
        ctx: &RequestContext,
    ) -> Result<crate::audit::siem::Destination, DbError> {
        if enabled {
            self.require_siem(client_id).await?;
        }
        crate::audit::settings::set_destination_enabled(&self.db, actor, client_id, id, enabled, ctx).await
    }

    async fn require_siem(&self, client_id: ClientId) -> Result<(), DbError> {
        let limits = self.plan_limits(client_id).await?;
        if limits.siem_export {
            return Ok(());
        }
        Err(DbError::Invalid(
            format!(
                "the {} plan does not include SIEM export; upgrade on the Billing page to forward your audit trail",
                limits.plan_name
            )
            .into(),
        ))
    }
}
