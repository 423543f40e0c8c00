//! One agent: its state, resource use over the last 10 minutes (small SVG charts), its last log lines, its
//! settings, its permissions (what the egress gateway lets it do), and its actions. Refreshes every 2 seconds while it changes state, else every 5.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::agents::{
    agent_detail, AgentPage, DeployAgent, MetricView, PermissionsView, RestartAgent, SettingsView, SpendView,
    StopAgent, UpdateAgentPermissions, UpdateAgentSettings,
};
use crate::api::AppError;
use crate::components::{textarea_text, ConfirmTwoFactor, ErrorNotice};

use super::agents::{in_transition, status_label};

/// The page's actions, passed down together.
#[derive(Clone, Copy)]
struct Actions {
    deploy: ServerAction<DeployAgent>,
    stop: ServerAction<StopAgent>,
    restart: ServerAction<RestartAgent>,
    settings: ServerAction<UpdateAgentSettings>,
    permissions: ServerAction<UpdateAgentPermissions>,
}

impl Actions {
    fn errors(&self) -> [Option<AppError>; 5] {
        [
            self.deploy.value().get().and_then(Result::err),
            self.stop.value().get().and_then(Result::err),
            self.restart.value().get().and_then(Result::err),
            self.settings.value().get().and_then(Result::err),
            self.permissions.value().get().and_then(Result::err),
        ]
    }

    fn clear(&self) {
        self.deploy.value().set(None);
        self.stop.value().set(None);
        self.restart.value().set(None);
        self.settings.value().set(None);
        self.permissions.value().set(None);
    }
}

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
    let actions = Actions {
        deploy: ServerAction::<DeployAgent>::new(),
        stop: ServerAction::<StopAgent>::new(),
        restart: ServerAction::<RestartAgent>::new(),
        settings: ServerAction::<UpdateAgentSettings>::new(),
        permissions: ServerAction::<UpdateAgentPermissions>::new(),
    };
    let tick = RwSignal::new(0u32);
    let detail = Resource::new(
        move || {
            let a = actions;
            (
                id(),
                tick.get(),
                a.deploy.version().get(),
                a.stop.version().get(),
                a.restart.version().get(),
                a.settings.version().get(),
                a.permissions.version().get(),
            )
        },
        |(id, ..)| agent_detail(id),
    );
    // Its audit events (every state change is one) refresh the page at once while it is open.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let agent = id();
        if !agent.is_empty() {
            super::audit::browser::watch_agent(agent, move || tick.update(|t| *t += 1));
        }
    });
    // And it polls as well (metrics and logs have no events).
    crate::components::poll_while_open(
        move || detail.get_untracked().and_then(Result::ok).is_some_and(|d| in_transition(&d.agent)),
        move || tick.update(|t| *t += 1),
        5,
    );
    let needs_2fa = move || actions.errors().iter().flatten().any(|e| *e == AppError::TwoFactorRequired);
    let other_error = move || {
        actions
            .errors()
            .into_iter()
            .flatten()
            .find(|e| *e != AppError::TwoFactorRequired)
            .map(|error| view! { <ErrorNotice error /> })
    };
    let clear = move |_| actions.clear();
    view! {
        <Title text="Agent" />
        <p><a href="/dashboard/agents">"← All agents"</a></p>
        <Show when=needs_2fa>
            <ConfirmTwoFactor on_done=clear />
        </Show>
        {other_error}
        <Suspense fallback=|| view! { <p class="muted">"Loading the agent…"</p> }>
            {move || {
                detail
                    .get()
                    .map(|result| match result {
                        Ok(d) => view! { <Detail detail=d actions /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Detail(detail: AgentPage, actions: Actions) -> impl IntoView {
    let Actions { deploy, stop, restart, settings, permissions } = actions;
    let a = detail.agent;
    let label = status_label(&a);
    let running = matches!(a.status.as_str(), "running" | "starting" | "provisioning");
    let busy = in_transition(&a) || deploy.pending().get_untracked();
    let id = a.id.clone();
    let restart_id = a.id.clone();
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
                {a.reason.clone().map(|r| view! { " · " <span class="muted" data-testid="detail-reason">{r}</span> })}
                {(a.restarts > 0).then(|| view! { " · " <span data-testid="restarts">{format!("restarted {} time(s) after exiting", a.restarts)}</span> })}
            </p>
        </header>
        <section class="card" aria-labelledby="actions-title">
            <h2 id="actions-title" class="visually-hidden">"Actions"</h2>
            {if running {
                view! {
                    <button type="button" class="button secondary" disabled=busy on:click=move |_| { stop.dispatch(StopAgent { agent_id: id.clone() }); }>
                        "Stop"
                    </button>
                    " "
                    <button
                        type="button"
                        class="button secondary"
                        disabled=move || busy || restart.pending().get()
                        on:click=move |_| {
                            restart.dispatch(RestartAgent { agent_id: restart_id.clone() });
                        }
                    >
                        "Restart"
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
        <SettingsForm agent_id=a.id.clone() current=detail.settings action=settings deployed=a.deployed />
        <PermissionsForm agent_id=a.id.clone() current=detail.permissions action=permissions />
        <ModelSpend spend=detail.spend agent_id=a.id.clone() />
        <section class="card" aria-labelledby="logs-title">
            <h2 id="logs-title">"Recent log lines"</h2>
            <p class="muted">"Secrets are scrubbed before they are shown."</p>
            <pre class="logs" data-testid="logs" tabindex="0">
                {if detail.logs.is_empty() { "No log lines yet.".to_string() } else { detail.logs.join("\n") }}
            </pre>
        </section>
    }
}

/// Memory, CPU and plain environment variables. Saving applies them at once to a running agent (a new
/// container with the same state volume).
#[component]
fn SettingsForm(
    agent_id: String,
    current: SettingsView,
    action: ServerAction<UpdateAgentSettings>,
    deployed: bool,
) -> impl IntoView {
    let saved = move || matches!(action.value().get(), Some(Ok(_)));
    view! {
        <section class="card" aria-labelledby="settings-title">
            <h2 id="settings-title">"Settings"</h2>
            <ActionForm action=action attr:class="stack-form" attr:data-testid="settings-form">
                <input type="hidden" name="agent_id" value=agent_id />
                <label for="settings-memory">"Memory (MiB)"</label>
                <input
                    id="settings-memory"
                    name="memory_mib"
                    inputmode="numeric"
                    value=current.memory_mib
                    placeholder=format!("{} (default)", current.default_memory_mib)
                    aria-describedby="settings-memory-help"
                />
                <p id="settings-memory-help" class="muted small">
                    {format!("Between {} and {} MiB. The agent is stopped if it uses more.", current.min_memory_mib, current.max_memory_mib)}
                </p>
                <label for="settings-cpu">"CPU (thousandths of a core)"</label>
                <input id="settings-cpu" name="cpu_millis" inputmode="numeric" value=current.cpu_millis placeholder="1000 (one core)" />
                <label for="settings-env">"Environment variables"</label>
                <textarea
                    id="settings-env"
                    name="environment"
                    rows="4"
                    spellcheck="false"
                    aria-describedby="settings-env-help"
                    placeholder="LOG_LEVEL=info"
                    inner_html=textarea_text(&current.environment)
                ></textarea>
                <p id="settings-env-help" class="muted small">
                    "One NAME=value per line. These are stored unencrypted: put keys and passwords under Credentials instead (values that look like secrets are refused)."
                </p>
                <button type="submit" class="button" data-testid="save-settings" disabled=move || action.pending().get()>
                    {if deployed { "Save and apply" } else { "Save" }}
                </button>
                <Show when=saved>
                    <p class="muted" role="status" data-testid="settings-saved">
                        {if deployed { "Saved. A running agent restarts with the new settings." } else { "Saved. Used at the next deploy." }}
                    </p>
                </Show>
            </ActionForm>
        </section>
    }
}

/// What the egress gateway lets the agent do. Applies to a running agent from its next connection on.
#[component]
fn PermissionsForm(
    agent_id: String,
    current: PermissionsView,
    action: ServerAction<UpdateAgentPermissions>,
) -> impl IntoView {
    let saved = move || matches!(action.value().get(), Some(Ok(_)));
    let all_scopes = current.all_scopes.join(", ");
    view! {
        <section class="card" aria-labelledby="permissions-title">
            <h2 id="permissions-title">"Permissions"</h2>
            <p class="muted">
                "The platform enforces these outside the agent: its only way out is our egress gateway. A new agent may do nothing until you grant it something."
            </p>
            <ActionForm action=action attr:class="stack-form" attr:data-testid="permissions-form">
                <input type="hidden" name="agent_id" value=agent_id />
                <label for="permissions-scopes">"Scopes"</label>
                <textarea
                    id="permissions-scopes"
                    name="scopes"
                    rows="3"
                    spellcheck="false"
                    aria-describedby="permissions-scopes-help"
                    placeholder="api:outbound"
                    inner_html=textarea_text(&current.scopes)
                ></textarea>
                <p id="permissions-scopes-help" class="muted small">{format!("One per line. Available: {all_scopes}. Outbound connections need api:outbound.")}</p>
                <label for="permissions-domains">"Allowed outbound domains"</label>
                <textarea
                    id="permissions-domains"
                    name="allowed_domains"
                    rows="4"
                    spellcheck="false"
                    aria-describedby="permissions-domains-help"
                    placeholder="api.openai.com"
                    inner_html=textarea_text(&current.allowed_domains)
                ></textarea>
                <p id="permissions-domains-help" class="muted small">
                    "One host name per line; *.example.com allows every name below example.com (not example.com itself). No IP addresses, ports or paths."
                </p>
                <label for="permissions-limits">"Rate limits"</label>
                <textarea
                    id="permissions-limits"
                    name="rate_limits"
                    rows="2"
                    spellcheck="false"
                    aria-describedby="permissions-limits-help"
                    placeholder="api:outbound 600 5000"
                    inner_html=textarea_text(&current.rate_limits)
                ></textarea>
                <p id="permissions-limits-help" class="muted small">
                    "One line per scope: SCOPE PER_HOUR PER_DAY. A granted scope without a line gets 600 per hour and 5000 per day."
                </p>
                <label for="permissions-spend">"Maximum daily token spend (USD)"</label>
                <input
                    id="permissions-spend"
                    name="max_daily_token_spend_usd"
                    inputmode="decimal"
                    value=current.max_daily_token_spend_usd
                    placeholder="0.00"
                    aria-describedby="permissions-spend-help"
                />
                <p id="permissions-spend-help" class="muted small">
                    "Model calls through the gateway stop (HTTP 402) once today's spend (UTC) reaches this; owners and admins are emailed at 50, 80 and 100 %. 0 allows no model calls."
                </p>
                <button type="submit" class="button" data-testid="save-permissions" disabled=move || action.pending().get()>
                    "Save permissions"
                </button>
                <Show when=saved>
                    <p class="muted" role="status" data-testid="permissions-saved">
                        "Saved. The agent is held to them from its next connection on."
                    </p>
                </Show>
            </ActionForm>
        </section>
    }
}

/// Today's model spend against the cap, and how model calls reach the providers.
#[component]
fn ModelSpend(spend: SpendView, agent_id: String) -> impl IntoView {
    let summary = format!("{} of {} USD", spend.spent_usd, spend.cap_usd);
    let detail =
        format!("{} call(s), {} input and {} output tokens", spend.calls, spend.input_tokens, spend.output_tokens);
    view! {
        <section class="card" aria-labelledby="spend-title" data-testid="model-spend">
            <h2 id="spend-title">"Model calls today (UTC)"</h2>
            <p>
                <meter min="0" max="100" low="50" high="80" optimum="0" value=spend.percent.to_string() aria-label="Share of the daily cap used">
                    {format!("{} %", spend.percent)}
                </meter>
                " "
                <strong data-testid="spend-summary">{summary}</strong>
            </p>
            <p class="muted small">{detail}</p>
            <p class="muted small">
                "The agent calls models through the platform's LLM gateway with its own token; the gateway adds the provider key from "
                <a href=format!("/dashboard/credentials?agent={agent_id}")>"Credentials"</a>
                " (openai_api_key or anthropic_api_key), so the agent never holds it, and counts every call against the cap above."
            </p>
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
