//! Agents: what you have, and configuring a new one. Deploying into a container comes with the runtime.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::agents::{list_agents, AgentRow, CreateAgent, DeleteAgent};
use crate::api::AppError;
use crate::components::{ConfirmTwoFactor, EmptyState, ErrorNotice, PageHeader};

/// "Not deployed yet" for an agent with no container; otherwise its lifecycle state.
pub fn status_label(a: &AgentRow) -> &'static str {
    match (a.deployed, a.status.as_str()) {
        (false, "stopped") => "Not deployed yet",
        (_, "running") => "Running",
        (_, "provisioning") => "Starting",
        (_, "stopped") => "Stopped",
        (_, "error") => "Error",
        (_, "deleting") => "Deleting",
        _ => "Unknown",
    }
}

#[component]
pub fn AgentsPage() -> impl IntoView {
    let create = ServerAction::<CreateAgent>::new();
    let delete = ServerAction::<DeleteAgent>::new();
    let agents = Resource::new(move || (create.version().get(), delete.version().get()), |_| list_agents());
    let needs_2fa = move || {
        matches!(create.value().get(), Some(Err(AppError::TwoFactorRequired)))
            || matches!(delete.value().get(), Some(Err(AppError::TwoFactorRequired)))
    };
    let clear = move |_| {
        create.value().set(None);
        delete.value().set(None);
    };
    let other_error = move || {
        let errors = [create.value().get().and_then(Result::err), delete.value().get().and_then(Result::err)];
        errors
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
            <ActionForm action=create attr:class="inline-form">
                <label for="agent-name">"Name"</label>
                <input id="agent-name" name="name" required maxlength="63" pattern="[a-z][a-z0-9\\-]*" placeholder="support-bot" />
                <label for="agent-template">"Template"</label>
                <select id="agent-template" name="template">
                    <option value="openclaw" selected=true>"OpenClaw gateway"</option>
                </select>
                <button type="submit" data-testid="create-agent" disabled=move || create.pending().get()>"Create agent"</button>
            </ActionForm>
            <p class="muted">"Names use a-z, 0-9 and '-' and start with a letter. Creating and deleting agents needs a recent authenticator check."</p>
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
                        Ok(rows) => view! { <AgentTable rows delete /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn AgentTable(rows: Vec<AgentRow>, delete: ServerAction<DeleteAgent>) -> impl IntoView {
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
                        let label = status_label(&a);
                        view! {
                            <tr data-testid="agent-row">
                                <td><strong>{a.name.clone()}</strong></td>
                                <td>{a.template.clone()}</td>
                                <td>{label}</td>
                                <td>{a.created_at.get(..10).unwrap_or_default().to_string()}</td>
                                <td>
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
