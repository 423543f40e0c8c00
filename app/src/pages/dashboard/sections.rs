//! The dashboard areas. Each explains what it is for and what the user will do there; the capabilities
//! behind them (vault, agents, audit viewer, billing) fill them in. Settings and the admin console have their
//! own modules.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{EmptyState, PageHeader};

#[component]
pub fn AuditPage() -> impl IntoView {
    view! {
        <Title text="Audit" />
        <PageHeader
            title="Audit"
            lead="Everything your agents and your team did, in order: sign-ins, deployments, credential use, outbound calls and any operator access to your account."
        />
        <EmptyState title="Nothing recorded yet">
            <p>"Events appear here as they happen. The log is append-only and hash-chained, so an edited, deleted or reordered entry is detectable."</p>
        </EmptyState>
    }
}

#[component]
pub fn BillingPage() -> impl IntoView {
    view! {
        <Title text="Billing" />
        <PageHeader
            title="Billing"
            lead="Your plan, what you use against its limits, and your invoices. Payments are handled by Stripe Checkout; card details never reach us."
        />
        <EmptyState title="Trial plan">
            <p>"Plans set how many agents you can run, how much memory and CPU each gets, your daily token spend cap and how long your audit trail is kept."</p>
        </EmptyState>
    }
}
