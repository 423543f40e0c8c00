//! The dashboard areas. Each explains what it is for and what the user will do there; the capabilities
//! behind them (vault, agents, audit viewer, billing) fill them in. Settings and the admin console have their
//! own modules.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{EmptyState, PageHeader};

#[component]
pub fn AgentsPage() -> impl IntoView {
    view! {
        <Title text="Agents" />
        <PageHeader
            title="Agents"
            lead="Each agent is an OpenClaw gateway in its own locked-down container and private network. Deploy, restart, update and delete them here."
        />
        <EmptyState title="No agents yet">
            <p>"When you deploy an agent you choose its template and limits; it starts with a read-only filesystem, no capabilities, and no way out except our egress gateway."</p>
            <p class="muted">"Deploying requires a recent second-factor check."</p>
        </EmptyState>
    }
}

#[component]
pub fn CredentialsPage() -> impl IntoView {
    view! {
        <Title text="Credentials" />
        <PageHeader
            title="Credentials"
            lead="Provider API keys, OAuth tokens and passwords for your agents, encrypted with AES-256-GCM under a key derived for your account alone."
        />
        <EmptyState title="No credentials stored">
            <p>"You will see each credential's name and when it was last set, never its value. Values are decrypted only to inject into your agent or to call a provider on its behalf, and every decryption is recorded in your audit trail."</p>
        </EmptyState>
    }
}

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
