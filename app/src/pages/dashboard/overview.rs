use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::system::{platform_status, PlatformStatusView};
use crate::components::{ErrorNotice, PageHeader};

/// Dashboard home: the platform's health (a live server round trip) and what to set up next.
#[component]
pub fn OverviewPage() -> impl IntoView {
    view! {
        <Title text="Overview" />
        <PageHeader
            title="Overview"
            lead="Your agents, keys and audit trail at a glance. Start with the checklist below."
        />
        <PlatformStatusCard />
        <section class="card checklist" aria-labelledby="checklist-title">
            <h2 id="checklist-title">"Getting started"</h2>
            <ol>
                <li>"Invite your team and review where you are signed in (Settings)."</li>
                <li>"Store the provider keys your agent needs (Credentials). You will only ever see their names."</li>
                <li>"Deploy an agent and decide which domains it may reach and what it may spend per day (Agents)."</li>
                <li>"Watch what it does as it happens (Audit)."</li>
            </ol>
        </section>
    }
}

/// Asks the server for the platform's status on demand. The button is enabled only once the page has
/// hydrated, so a working button proves the WASM bundle loaded and the server-function path works.
#[component]
fn PlatformStatusCard() -> impl IntoView {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let check = Action::new(|_: &()| platform_status());
    let pending = check.pending();

    view! {
        <section class="card status-card" aria-labelledby="status-title" data-hydrated=move || hydrated.get().to_string()>
            <div class="card-title-row">
                <h2 id="status-title">"Platform status"</h2>
                <button
                    type="button"
                    class="button small"
                    data-testid="check-status"
                    disabled=move || !hydrated.get() || pending.get()
                    on:click=move |_| {
                        check.dispatch(());
                    }
                >
                    {move || if pending.get() { "Checking…" } else { "Check now" }}
                </button>
            </div>
            <div aria-live="polite" data-testid="status-result">
                {move || match check.value().get() {
                    None if !hydrated.get() => view! { <p class="muted">"Loading the dashboard…"</p> }.into_any(),
                    None => view! { <p class="muted">"Press “Check now” to ask the server how it is doing."</p> }.into_any(),
                    Some(Ok(status)) => view! { <StatusDetails status /> }.into_any(),
                    Some(Err(e)) => view! { <ErrorNotice error=e /> }.into_any(),
                }}
            </div>
        </section>
    }
}

#[component]
fn StatusDetails(status: PlatformStatusView) -> impl IntoView {
    let (label, class) = if status.ready { ("Ready", "badge ok") } else { ("Not ready", "badge bad") };
    let schema = status.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
    view! {
        <dl class="facts">
            <div>
                <dt>"State"</dt>
                <dd>
                    <span class=class data-testid="status-state">{label}</span>
                </dd>
            </div>
            <div>
                <dt>"Database"</dt>
                <dd data-testid="status-backend">{status.backend}</dd>
            </div>
            <div>
                <dt>"Schema version"</dt>
                <dd>{schema}</dd>
            </div>
            <div>
                <dt>"Up for"</dt>
                <dd>{format_uptime(status.uptime_secs)}</dd>
            </div>
            <div>
                <dt>"Version"</dt>
                <dd>{status.version}</dd>
            </div>
        </dl>
    }
}

fn format_uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::format_uptime;

    #[test]
    fn uptime_reads_naturally() {
        assert_eq!(format_uptime(5), "5 s");
        assert_eq!(format_uptime(125), "2 min");
        assert_eq!(format_uptime(3 * 3600 + 120), "3 h 2 min");
        assert_eq!(format_uptime(2 * 86_400 + 3600), "2 d 1 h");
    }
}
