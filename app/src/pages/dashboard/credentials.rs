//! Credentials of one agent: names and when they were set - never values. Set, replace, delete.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::agents::list_agents;
use crate::api::credentials::{list_credentials, CredentialRow, DeleteCredential, SetCredential};
use crate::api::AppError;
use crate::components::{reset_on_success, ConfirmTwoFactor, EmptyState, ErrorNotice, PageHeader};

/// "set just now", "set 5 minutes ago", "set 3 hours ago", "set 2 days ago".
pub fn set_ago(secs: i64) -> String {
    match secs {
        s if s < 60 => "set just now".into(),
        s if s < 3600 => format!("set {} minute{} ago", s / 60, if s / 60 == 1 { "" } else { "s" }),
        s if s < 86_400 => format!("set {} hour{} ago", s / 3600, if s / 3600 == 1 { "" } else { "s" }),
        s => format!("set {} day{} ago", s / 86_400, if s / 86_400 == 1 { "" } else { "s" }),
    }
}

#[component]
pub fn CredentialsPage() -> impl IntoView {
    let query = use_query_map();
    let chosen = RwSignal::new(query.get_untracked().get("agent").unwrap_or_default());
    let agents = Resource::new(|| (), |_| list_agents());
    view! {
        <Title text="Credentials" />
        <PageHeader
            title="Credentials"
            lead="Provider API keys, OAuth tokens and passwords for your agents, encrypted with AES-256-GCM under a key derived for your account alone. You see names and when they were set, never values."
        />
        <Suspense fallback=|| view! { <p class="muted">"Loading agents…"</p> }>
            {move || {
                agents
                    .get()
                    .map(|result| match result {
                        Ok(rows) if rows.is_empty() => {
                            view! {
                                <EmptyState title="No agents yet">
                                    <p>"Credentials belong to an agent. " <a href="/dashboard/agents">"Create an agent"</a> " first."</p>
                                </EmptyState>
                            }
                                .into_any()
                        }
                        Ok(rows) => {
                            if chosen.get_untracked().is_empty() || !rows.iter().any(|a| a.id == chosen.get_untracked()) {
                                chosen.set(rows[0].id.clone());
                            }
                            view! {
                                <label for="credentials-agent">"Agent"</label>
                                " "
                                <select
                                    id="credentials-agent"
                                    on:change=move |ev| chosen.set(event_target_value(&ev))
                                    prop:value=move || chosen.get()
                                >
                                    {rows
                                        .into_iter()
                                        .map(|a| {
                                            let selected = a.id == chosen.get_untracked();
                                            view! { <option value=a.id selected=selected>{a.name}</option> }
                                        })
                                        .collect_view()}
                                </select>
                                {move || view! { <AgentCredentials agent_id=chosen.get() /> }}
                            }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    })
            }}
        </Suspense>
        <p class="muted">
            "Values are decrypted only to inject into your agent or to call a provider on its behalf; every decryption is in your audit trail."
        </p>
    }
}

#[component]
fn AgentCredentials(agent_id: String) -> impl IntoView {
    let set = ServerAction::<SetCredential>::new();
    let set_form = NodeRef::new();
    // The value must not linger in the page once it is saved.
    reset_on_success(set, set_form);
    let delete = ServerAction::<DeleteCredential>::new();
    let agent = agent_id.clone();
    let credentials = Resource::new(
        move || (set.version().get(), delete.version().get(), agent.clone()),
        |(_, _, agent)| list_credentials(agent),
    );
    let needs_2fa = move || {
        matches!(set.value().get(), Some(Err(AppError::TwoFactorRequired)))
            || matches!(delete.value().get(), Some(Err(AppError::TwoFactorRequired)))
    };
    let clear = move |_| {
        set.value().set(None);
        delete.value().set(None);
    };
    let other_error = move || {
        [set.value().get().and_then(Result::err), delete.value().get().and_then(Result::err)]
            .into_iter()
            .flatten()
            .find(|e| *e != AppError::TwoFactorRequired)
            .map(|error| view! { <ErrorNotice error /> })
    };
    let form_agent = agent_id.clone();
    view! {
        <section class="card" aria-labelledby="credentials-title" data-testid="credentials">
            <h2 id="credentials-title">"Stored credentials"</h2>
            <Show when=needs_2fa>
                <ConfirmTwoFactor on_done=clear />
            </Show>
            {other_error}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    credentials
                        .get()
                        .map(|result| match result {
                            Ok(rows) if rows.is_empty() => {
                                view! { <p class="muted" data-testid="no-credentials">"No credentials stored for this agent."</p> }
                                    .into_any()
                            }
                            Ok(rows) => view! { <CredentialTable rows agent_id=agent_id.clone() delete /> }.into_any(),
                            Err(error) => view! { <ErrorNotice error /> }.into_any(),
                        })
                }}
            </Suspense>
            <h3>"Add or replace"</h3>
            <ActionForm action=set node_ref=set_form attr:class="stack-form" attr:autocomplete="off">
                <input type="hidden" name="agent_id" value=form_agent />
                <label for="credential-name">"Name"</label>
                <input
                    id="credential-name"
                    name="name"
                    required
                    maxlength="64"
                    pattern="[a-z][a-z0-9_.\\-]*"
                    placeholder="openai_api_key"
                    autocomplete="off"
                />
                <label for="credential-value">"Value"</label>
                <input id="credential-value" name="value" type="password" required autocomplete="new-password" spellcheck="false" />
                <button type="submit" data-testid="save-credential" disabled=move || set.pending().get()>"Save encrypted"</button>
            </ActionForm>
            <p class="muted">"Saving a name that exists replaces its value. At most 16 KiB."</p>
        </section>
    }
}

#[component]
fn CredentialTable(
    rows: Vec<CredentialRow>,
    agent_id: String,
    delete: ServerAction<DeleteCredential>,
) -> impl IntoView {
    view! {
        <table class="table">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Value"</th>
                    <th scope="col">"Last set"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|c| {
                        let (agent, name) = (agent_id.clone(), c.name.clone());
                        view! {
                            <tr data-testid="credential-row">
                                <td><code>{c.name.clone()}</code></td>
                                <td class="muted">"•••••••• (encrypted)"</td>
                                <td title=c.updated_at.clone()>{set_ago(c.set_secs_ago)}</td>
                                <td>
                                    <button
                                        type="button"
                                        class="button secondary small"
                                        aria-label=format!("Delete credential {}", c.name)
                                        on:click=move |_| {
                                            delete.dispatch(DeleteCredential { agent_id: agent.clone(), name: name.clone() });
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

#[cfg(test)]
mod tests {
    use super::set_ago;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(set_ago(5), "set just now");
        assert_eq!(set_ago(60), "set 1 minute ago");
        assert_eq!(set_ago(7 * 60 + 5), "set 7 minutes ago");
        assert_eq!(set_ago(3 * 3600), "set 3 hours ago");
        assert_eq!(set_ago(86_400), "set 1 day ago");
    }
}
