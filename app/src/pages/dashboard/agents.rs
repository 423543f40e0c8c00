//! Agents: what you have, and configuring a new one. Deploying into a container comes with the runtime.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::agents::{list_agents, list_templates, AgentRow, CreateAgent, DeleteAgent, DeployAgent, StopAgent};
use crate::api::AppError;
use crate::components::{reset_on_success, ConfirmTwoFactor, EmptyState, ErrorNotice, PageHeader};

/// Whether an agent is between two states (its page and the list poll faster while one is).
pub fn in_transition(a: &AgentRow) -> bool {
    matches!(a.status.as_str(), "provisioning" | "starting" | "stopping" | "deleting")
}

/// "Not deployed yet" for an agent with no container; otherwise its lifecycle state.
pub fn status_label(a: &AgentRow) -> &'static str {
    match (a.deployed, a.status.as_str()) {
        (false, "stopped") => "Not deployed yet",
        (_, "running") => "Running · healthy",
        (_, "provisioning") => "Setting up…",
        (_, "starting") => "Starting…",
        (_, "stopping") => "Stopping…",
        (_, "stopped") => "Stopped",
        (_, "error") => "Error",
        (_, "deleting") => "Deleting",
        _ => "Unknown",
    }
}

#[component]
pub fn AgentsPage() -> impl IntoView {
    let create = ServerAction::<CreateAgent>::new();
    let templates = Resource::new(|| (), |_| list_templates());
    let create_form = NodeRef::new();
    reset_on_success(create, create_form);
    let delete = ServerAction::<DeleteAgent>::new();
    let deploy = ServerAction::<DeployAgent>::new();
    let stop = ServerAction::<StopAgent>::new();
    // Polled so states change without a reload: every 2 s while an agent is between two states, else every 10 s.
    let tick = RwSignal::new(0u32);
    let agents = Resource::new(
        move || {
            (create.version().get(), delete.version().get(), deploy.version().get(), stop.version().get(), tick.get())
        },
        |_| list_agents(),
    );
    crate::components::poll_while_open(
        move || agents.get_untracked().and_then(Result::ok).is_some_and(|rows| rows.iter().any(in_transition)),
        move || tick.update(|t| *t += 1),
        10,
    );
    let errors = move || {
        [
            create.value().get().and_then(Result::err),
            delete.value().get().and_then(Result::err),
            deploy.value().get().and_then(|r| r.err()),
            stop.value().get().and_then(|r| r.err()),
        ]
    };
    let needs_2fa = move || errors().iter().flatten().any(|e| *e == AppError::TwoFactorRequired);
    let clear = move |_| {
        create.value().set(None);
        delete.value().set(None);
        deploy.value().set(None);
        stop.value().set(None);
    };
    let other_error = move || {
        errors()
            .into_iter()
            .flatten()
            .find(|e| *e != AppError::TwoFactorRequired)
            .map(|error| view! { <ErrorNotice error /> })
    };
    view! {
        <Title text="Agents" />
        <PageHeader
            title="Agents"
            lead="Each agent is an OpenClaw gateway in its own locked-down container and private network. Configure it here, store its keys under Credentials, then deploy it."
        />
        <Show when=needs_2fa>
            <ConfirmTwoFactor on_done=clear />
        </Show>
        {other_error}
        <section class="card" aria-labelledby="new-agent-title">
            <h2 id="new-agent-title">"New agent"</h2>
            <ActionForm action=create node_ref=create_form attr:class="inline-form">
                <label for="agent-name">"Name"</label>
                <input id="agent-name" name="name" required maxlength="63" pattern="[a-z][a-z0-9\\-]*" placeholder="support-bot" />
                <label for="agent-template">"Template"</label>
                <Suspense fallback=|| {
                    view! {
                        <select id="agent-template" name="template" disabled=true>
                            <option>"Loading templates…"</option>
                        </select>
                    }
                }>
                    {move || {
                        templates
                            .get()
                            .map(|list| {
                                let options = list
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|t| {
                                        let label = format!("{} ({} MiB)", t.name, t.memory_mib);
                                        let selected = t.id == "openclaw";
                                        view! { <option value=t.id title=t.image selected=selected>{label}</option> }
                                    })
                                    .collect_view();
                                view! {
                                    <select id="agent-template" name="template" aria-describedby="agent-template-help">
                                        {options}
                                    </select>
                                }
                            })
                    }}
                </Suspense>
                <button type="submit" data-testid="create-agent" disabled=move || create.pending().get()>"Create agent"</button>
            </ActionForm>
            <p class="muted" id="agent-template-help">
                "Names use a-z, 0-9 and '-' and start with a letter. Templates are the images this installation offers (operators add their own under [[runtime.templates]]). Creating and deleting agents needs a recent authenticator check."
            </p>
        </section>
        <Suspense fallback=|| view! { <p class="muted">"Loading agents…"</p> }>
            {move || {
                agents
                    .get()
                    .map(|result| match result {
                        Ok(rows) if rows.is_empty() => {
                            view! {
                                <EmptyState title="No agents yet">
                                    <p>"When you deploy an agent it starts with a read-only filesystem, no capabilities, and no way out except our egress gateway."</p>
                                </EmptyState>
                            }
                                .into_any()
                        }
                        Ok(rows) => view! { <AgentTable rows delete deploy stop /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn AgentTable(
    rows: Vec<AgentRow>,
    delete: ServerAction<DeleteAgent>,
    deploy: ServerAction<DeployAgent>,
    stop: ServerAction<StopAgent>,
) -> impl IntoView {
    view! {
        <table class="table" data-testid="agents">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Template"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|a| {
                        let id = a.id.clone();
                        let (deploy_id, stop_id) = (a.id.clone(), a.id.clone());
                        let label = status_label(&a);
                        let badge = match a.status.as_str() {
                            "running" => "badge ok",
                            "error" => "badge bad",
                            _ => "badge",
                        };
                        let can_stop = matches!(a.status.as_str(), "running" | "starting" | "provisioning");
                        view! {
                            <tr data-testid="agent-row">
                                <td><a href=format!("/dashboard/agents/{}", a.id)><strong>{a.name.clone()}</strong></a></td>
                                <td>{a.template.clone()}</td>
                                <td>
                                    <span class=badge data-testid="agent-state">{label}</span>
                                    {a.reason.clone().map(|r| view! { <br /><span class="muted small">{r}</span> })}
                                </td>
                                <td>{a.created_at.get(..10).unwrap_or_default().to_string()}</td>
                                <td class="actions">
                                    {if can_stop {
                                        view! {
                                            <button
                                                type="button"
                                                class="button secondary small"
                                                aria-label=format!("Stop agent {}", a.name)
                                                on:click=move |_| {
                                                    stop.dispatch(StopAgent { agent_id: stop_id.clone() });
                                                }
                                            >
                                                "Stop"
                                            </button>
                                        }
                                            .into_any()
                                    } else {
                                        view! {
                                            <button
                                                type="button"
                                                class="button small"
                                                aria-label=format!("{} agent {}", if a.deployed { "Start" } else { "Deploy" }, a.name)
                                                disabled=move || deploy.pending().get()
                                                on:click=move |_| {
                                                    deploy.dispatch(DeployAgent { agent_id: deploy_id.clone() });
                                                }
                                            >
                                                {if a.deployed { "Start" } else { "Deploy" }}
                                            </button>
                                        }
                                            .into_any()
                                    }}
                                    " "
                                    <a class="button secondary small" href=format!("/dashboard/credentials?agent={}", a.id)>"Credentials"</a>
                                    " "
                                    <button
                                        type="button"
                                        class="button secondary small"
                                        aria-label=format!("Delete agent {}", a.name)
                                        on:click=move |_| {
                                            delete.dispatch(DeleteAgent { agent_id: id.clone() });
                                        }
                                    >
                                        "Delete"
                                    </button>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}
