//! The billing page: the plan in effect, usage against its limits, the subscription's state (with the grace
//! warning after a failed payment), the plans on sale with an upgrade button each, and the way to Stripe's
//! billing portal. Going to Stripe needs the owner with a fresh second factor; the server decides, the buttons
//! only show what it will allow.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::billing::{billing_overview, BillingView, OpenBillingPortal, PlanView, StartCheckout};
use crate::api::AppError;
use crate::components::{ConfirmTwoFactor, EmptyState, ErrorNotice, PageHeader};

/// A timestamp as "2026-11-23 14:05 UTC".
fn short_time(rfc3339: &str) -> String {
    let (date, rest) = rfc3339.split_once('T').unwrap_or((rfc3339, ""));
    format!("{date} {} UTC", rest.get(..5).unwrap_or(""))
}

fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

fn status_label(status: &str) -> &'static str {
    match status {
        "active" => "Active",
        "trialing" => "Trialing",
        "past_due" => "Payment overdue",
        "canceled" => "Cancelled",
        "unpaid" => "Unpaid",
        "incomplete" | "incomplete_expired" => "Incomplete",
        "paused" => "Paused",
        _ => "No subscription",
    }
}

#[component]
pub fn BillingPage() -> impl IntoView {
    let checkout = ServerAction::<StartCheckout>::new();
    let portal = ServerAction::<OpenBillingPortal>::new();
    let overview = Resource::new(|| (), |_| billing_overview());
    // Stripe's hosted pages: a full navigation away.
    Effect::new(move |_| {
        if let Some(Ok(url)) = checkout.value().get().or_else(|| portal.value().get()) {
            let _ = window().location().set_href(&url);
        }
    });
    let results = move || [checkout.value().get().map(|r| r.map(|_| ())), portal.value().get().map(|r| r.map(|_| ()))];
    let needs_2fa = move || results().into_iter().any(|v| matches!(v, Some(Err(AppError::TwoFactorRequired))));
    let clear = move |_| {
        checkout.value().set(None);
        portal.value().set(None);
    };
    let other_error = move || {
        results().into_iter().find_map(|v| match v {
            Some(Err(AppError::TwoFactorRequired)) | None | Some(Ok(())) => None,
            Some(Err(error)) => Some(view! { <ErrorNotice error /> }),
        })
    };
    let query = use_query_map();
    let returned = move || query.with(|q| q.get("checkout"));
    view! {
        <Title text="Billing" />
        <PageHeader
            title="Billing"
            lead="Your plan, what you use against its limits, and your invoices. Payments are handled by Stripe Checkout; card details never reach us."
        />
        {move || match returned().as_deref() {
            Some("success") => Some(view! {
                <p class="notice" role="status" data-testid="checkout-returned">
                    "Thank you. Your plan changes as soon as Stripe confirms the payment, usually within seconds."
                </p>
            }.into_any()),
            Some(_) => Some(view! { <p class="notice" role="status">"Checkout was cancelled; nothing changed."</p> }.into_any()),
            None => None,
        }}
        <Show when=needs_2fa>
            <ConfirmTwoFactor on_done=clear />
        </Show>
        {other_error}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                overview
                    .get()
                    .map(|result| match result {
                        Ok(view) => view! { <Billing view checkout portal /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Billing(
    view: BillingView,
    checkout: ServerAction<StartCheckout>,
    portal: ServerAction<OpenBillingPortal>,
) -> impl IntoView {
    if !view.enabled {
        return view! {
            <EmptyState title="Billing is not configured">
                <p data-testid="billing-not-configured">
                    "This DeployClaw server has no Stripe account configured, so nothing is sold here: every account gets the operator's self-hosted limits."
                </p>
            </EmptyState>
            <Usage view=view.clone() />
        }
            .into_any();
    }
    let BillingView { current, status, grace_until, suspended_at, subscribed_plan, current_period_end, .. } =
        view.clone();
    let can_manage = view.can_manage_billing;
    let has_customer = view.has_customer;
    let current_id = current.id.clone();
    // A subscriber changes plans in Stripe's portal (a second Checkout would be a second subscription).
    let subscribed = matches!(status.as_str(), "active" | "trialing" | "past_due");
    let busy = move || checkout.pending().get() || portal.pending().get();
    view! {
        <section class="card" aria-labelledby="plan-title" data-testid="current-plan">
            <h2 id="plan-title">{format!("{} plan", current.name)}</h2>
            <p>
                "Subscription: " <strong data-testid="subscription-status">{status_label(&status)}</strong>
                {current_period_end.map(|t| format!(" · renews or ends {}", short_time(&t)))}
            </p>
            {grace_until.map(|t| view! {
                <p class="notice error" role="alert" data-testid="grace-warning">
                    {format!("Your last payment failed. Your agents keep running until {}; if no payment succeeds by then they are stopped (not deleted). Update your payment method under Manage billing.", short_time(&t))}
                </p>
            })}
            {suspended_at.map(|t| view! {
                <p class="notice error" role="alert" data-testid="suspended">
                    {format!("Your agents were stopped on {} because a payment is overdue{}. Trial limits apply until a payment succeeds.", short_time(&t), subscribed_plan.map(|p| format!(" (you subscribed to {p})")).unwrap_or_default())}
                </p>
            })}
            <Show when=move || can_manage && has_customer>
                <button type="button" class="button secondary" data-testid="manage-billing" disabled=busy on:click=move |_| {
                    portal.dispatch(OpenBillingPortal {});
                }>
                    "Manage billing and invoices"
                </button>
            </Show>
        </section>
        <Usage view=view.clone() />
        <section class="card" aria-labelledby="plans-title">
            <h2 id="plans-title">"Plans"</h2>
            {(!can_manage).then(|| view! { <p class="muted">"Only the account owner can change the plan."</p> })}
            {(can_manage && subscribed).then(|| view! { <p class="muted">"To change or cancel your plan, use Manage billing."</p> })}
            <ul class="plan-grid" data-testid="plans">
                {view
                    .plans
                    .into_iter()
                    .map(|plan| {
                        let is_current = plan.id == current_id;
                        let id = plan.id.clone();
                        view! {
                            <li class="plan" data-testid=format!("plan-{}", plan.id)>
                                <PlanSummary plan=plan.clone() />
                                {if is_current {
                                    view! { <p><strong>"Your plan"</strong></p> }.into_any()
                                } else if can_manage && !subscribed {
                                    view! {
                                        <button type="button" class="button" data-testid=format!("upgrade-{id}") disabled=busy on:click=move |_| {
                                            checkout.dispatch(StartCheckout { plan: id.clone() });
                                        }>
                                            {format!("Choose {}", plan.name)}
                                        </button>
                                    }.into_any()
                                } else {
                                    ().into_any()
                                }}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
        .into_any()
}

#[component]
fn PlanSummary(plan: PlanView) -> impl IntoView {
    view! {
        <h3>{plan.name.clone()}</h3>
        <p class="plan-price">{format!("{} / month", dollars(u64::from(plan.monthly_price_cents)))}</p>
        <ul class="plan-limits">
            <li>{format!("{} agent{}", plan.max_agents, if plan.max_agents == 1 { "" } else { "s" })}</li>
            <li>{format!("{} MiB memory, {:.1} CPU per agent", plan.memory_mib_per_agent, f64::from(plan.cpu_millis_per_agent) / 1000.0)}</li>
            <li>{format!("{} a day of model spend", dollars(plan.daily_token_cap_micro_usd / 10_000))}</li>
            <li>{format!("Audit trail kept {} days", plan.audit_retention_days)}</li>
            <li>{if plan.siem_export { "SIEM export" } else { "No SIEM export" }}</li>
        </ul>
    }
}

#[component]
fn Usage(view: BillingView) -> impl IntoView {
    let limits = view.current;
    let memory_limit = u64::from(limits.max_agents) * u64::from(limits.memory_mib_per_agent);
    view! {
        <section class="card" aria-labelledby="usage-title" data-testid="usage">
            <h2 id="usage-title">"Usage"</h2>
            <dl class="usage">
                <dt>"Running agents"</dt>
                <dd data-testid="usage-agents">{format!("{} of {} ({} configured)", view.running_agents, limits.max_agents, view.agents)}</dd>
                <dt>"Memory of running agents"</dt>
                <dd data-testid="usage-memory">{format!("{} MiB of {} MiB ({} MiB per agent)", view.memory_mib_in_use, memory_limit, limits.memory_mib_per_agent)}</dd>
                <dt>"CPU per agent"</dt>
                <dd>{format!("{:.1} cores", f64::from(limits.cpu_millis_per_agent) / 1000.0)}</dd>
                <dt>"Daily model spend cap"</dt>
                <dd>{dollars(limits.daily_token_cap_micro_usd / 10_000)}</dd>
                <dt>"Audit retention"</dt>
                <dd>{format!("up to {} days", limits.audit_retention_days)}</dd>
                <dt>"SIEM export"</dt>
                <dd>{if limits.siem_export { "included" } else { "not included" }}</dd>
            </dl>
        </section>
    }
}
