//! Dashboard areas still waiting for their capability (billing). Each explains what it is for and what the user
//! will do there.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{EmptyState, PageHeader};

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
