//! One agent: its state, resource use over the last 10 minutes (small SVG charts), its last log lines, and its
//! actions. Refreshes every 5 seconds.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::agents::{agent_detail, AgentPage, DeployAgent, MetricView, StopAgent};
use crate::api::AppError;
use crate::components::{ConfirmTwoFactor, ErrorNotice};

use super::agents::status_label;

/// Points for an SVG polyline of `values` in a `w` x `h` box, scaled to `max` (at least 1).
pub fn sparkline(values: &[f64], w: f64, h: f64, max: f64) -> String {
    if values.is_empty() {
        return String::new();
    }
    let max = max.max(1.0);
    let step = if values.len() > 1 { w / (values.len() - 1) as f64 } else { 0.0 };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, h - (v.clamp(0.0, max) / max) * h))
        .collect::<Vec<_>>()
        .join(" ")
}

#[component]
fn Chart(title: &'static str, unit: &'static str, values: Vec<f64>, max: f64) -> impl IntoView {
    let last = values.last().copied();
    let points = sparkline(&values, 240.0, 48.0, max);
    let summary = match last {
        Some(v) => format!(
            "{title}: {v:.1} {unit} now, {} samples over the last {} minutes",
            values.len(),
            values.len() * 5 / 60
        ),
        None => format!("{title}: no samples yet"),
    };
    view! {
        <figure class="chart">
            <figcaption>
                {title} " " <strong>{last.map(|v| format!("{v:.1} {unit}")).unwrap_or_else(|| "no samples yet".into())}</strong>
            </figcaption>
            <svg viewBox="0 0 240 48" role="img" aria-label=summary width="240" height="48">
                <polyline points=points fill="none" stroke="currentColor" stroke-width="2" />
            </svg>
        </figure>
    }
}

#[component]
pub fn AgentDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let deploy = ServerAction::<DeployAgent>::new();
    let stop = ServerAction::<StopAgent>::new();
    let tick = RwSignal::new(0u32);
    let detail = Resource::new(
        move || (id(), tick.get(), deploy.version().get(), stop.version().get()),
        |(id, _, _, _)| agent_detail(id),
    );
    // Refresh every 5 s while the page is open (bounded: one hour).
    Effect::new(move |_| {
        let _ = detail.get();
        if tick.get_untracked() < 720 {
            set_timeout(move || tick.update(|t| *t += 1), std::time::Duration::from_secs(5));
        }
    });
    let needs_2fa = move || {
        matches!(deploy.value().get(), Some(Err(AppError::TwoFactorRequired)))
            || matches!(stop.value().get(), Some(Err(AppError::TwoFactorRequired)))
    };
    let clear = move |_| {
        deploy.value().set(None);
        stop.value().set(None);
    };
    view! {
        <Title text="Agent" />
        <p><a href="/dashboard/agents">"← All agents"</a></p>
        <Show when=needs_2fa>
            <ConfirmTwoFactor on_done=clear />
        </Show>
        <Suspense fallback=|| view! { <p class="muted">"Loading the agent…"</p> }>
            {move || {
                detail
                    .get()
                    .map(|result| match result {
                        Ok(d) => view! { <Detail detail=d deploy stop /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Detail(detail: AgentPage, deploy: ServerAction<DeployAgent>, stop: ServerAction<StopAgent>) -> impl IntoView {
    let a = detail.agent;
    let label = status_label(&a);
    let running = matches!(a.status.as_str(), "running" | "provisioning");
    let id = a.id.clone();
    let series = |f: fn(&MetricView) -> f64| detail.metrics.iter().map(f).collect::<Vec<f64>>();
    let (cpu, mem, pids) = (series(|m| m.cpu_percent), series(|m| m.memory_mib), series(|m| m.pids as f64));
    let mem_max = mem.iter().copied().fold(64.0, f64::max);
    let pids_max = pids.iter().copied().fold(16.0, f64::max);
    view! {
        <header class="page-header">
            <h1>{a.name.clone()}</h1>
            <p class="lead">
                <span class="badge" data-testid="detail-state">{label}</span>
                " · template " {a.template.clone()}
                {a.reason.clone().map(|r| view! { " · " <span class="muted">{r}</span> })}
            </p>
        </header>
        <section class="card" aria-labelledby="actions-title">
            <h2 id="actions-title" class="visually-hidden">"Actions"</h2>
            {if running {
                view! {
                    <button type="button" class="button secondary" on:click=move |_| { stop.dispatch(StopAgent { agent_id: id.clone() }); }>
                        "Stop"
                    </button>
                }
                    .into_any()
            } else {
                view! {
                    <button type="button" class="button" on:click=move |_| { deploy.dispatch(DeployAgent { agent_id: id.clone() }); }>
                        {if a.deployed { "Start" } else { "Deploy" }}
                    </button>
                }
                    .into_any()
            }}
            " "
            <a class="button secondary" href=format!("/dashboard/credentials?agent={}", a.id)>"Credentials"</a>
        </section>
        <section class="card" aria-labelledby="metrics-title" data-testid="metrics">
            <h2 id="metrics-title">"Resources (last 10 minutes)"</h2>
            <p class="muted">"Sampled every 5 seconds while the agent runs."</p>
            <div class="charts">
                <Chart title="CPU" unit="%" values=cpu max=100.0 />
                <Chart title="Memory" unit="MiB" values=mem max=mem_max />
                <Chart title="Processes" unit="" values=pids max=pids_max />
            </div>
        </section>
        <section class="card" aria-labelledby="logs-title">
            <h2 id="logs-title">"Recent log lines"</h2>
            <p class="muted">"Secrets are scrubbed before they are shown."</p>
            <pre class="logs" data-testid="logs" tabindex="0">
                {if detail.logs.is_empty() { "No log lines yet.".to_string() } else { detail.logs.join("\n") }}
            </pre>
        </section>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sparklines_scale_into_the_box() {
        assert_eq!(super::sparkline(&[], 10.0, 10.0, 1.0), "");
        assert_eq!(super::sparkline(&[0.0, 50.0, 100.0], 100.0, 10.0, 100.0), "0.0,10.0 50.0,5.0 100.0,0.0");
        assert_eq!(super::sparkline(&[500.0], 100.0, 10.0, 100.0), "0.0,0.0", "values above the maximum are clamped");
    }
}
