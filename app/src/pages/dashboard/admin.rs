//! The operator console (platform admins only; the server answers everyone else 404): platform health,
//! orphaned containers, every client, and one client at a time with its users, agents and recent audit
//! events, where an operator suspends, unsuspends, or rebuilds an agent. Opening a client and every action
//! ask for a fresh authenticator code and show up in that client's own audit trail.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::admin::{
    admin_client, admin_health, admin_list_clients, AdminRebuildAgent, AdminSuspendClient, AdminUnsuspendClient,
    ClientDetailView, HealthView,
};
use crate::api::AppError;
use crate::components::{ConfirmTwoFactor, ErrorNotice, PageHeader};

#[component]
pub fn AdminPage() -> impl IntoView {
    let clients = Resource::new(|| (), |_| admin_list_clients());
    let health = Resource::new(|| (), |_| admin_health());
    view! {
        <Title text="Admin" />
        <PageHeader
            title="Admin"
            lead="For operators of this DeployClaw installation. Opening a client and every action need a fresh authenticator code and appear in that client's own audit trail. Operators cannot see credential values: there is no code path for it."
        />
        <Suspense fallback=|| view! { <p class="muted">"Checking the platform…"</p> }>
            {move || {
                health
                    .get()
                    .map(|result| match result {
                        Ok(h) => view! { <HealthCard health=h /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    })
            }}
        </Suspense>
        <section class="card" aria-labelledby="clients-title">
            <h2 id="clients-title">"Clients"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading clients…"</p> }>
                {move || {
                    clients
                        .get()
                        .map(|result| match result {
                            Ok(rows) => {
                                view! {
                                    <table class="table" data-testid="clients">
                                        <thead>
                                            <tr>
                                                <th scope="col">"Name"</th>
                                                <th scope="col">"Plan"</th>
                                                <th scope="col">"Status"</th>
                                                <th scope="col">"Users"</th>
                                                <th scope="col">"Agents (running)"</th>
                                                <th scope="col">"Model spend today"</th>
                                                <th scope="col">"Created"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {rows
                                                .into_iter()
                                                .map(|c| {
                                                    let href = format!("/dashboard/admin/clients/{}", c.id);
                                                    view! {
                                                        <tr>
                                                            <td>
                                                                <a href=href>{c.name}</a>
                                                            </td>
                                                            <td>{c.plan}</td>
                                                            <td>
                                                                <span class=format!("badge {}", c.status)>{c.status.clone()}</span>
                                                            </td>
                                                            <td>{c.users}</td>
                                                            <td>{format!("{} ({})", c.agents, c.running)}</td>
                                                            <td>{format!("{} USD", c.spent_today_usd)}</td>
                                                            <td>{c.created_at.get(..10).unwrap_or_default().to_string()}</td>
                                                        </tr>
                                                    }
                                                })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                }
                                    .into_any()
                            }
                            Err(error) => view! { <ErrorNotice error /> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn HealthCard(health: HealthView) -> impl IntoView {
    let orphans = health.orphans.clone();
    view! {
        <section class="card" aria-labelledby="health-title" data-testid="platform-health">
            <h2 id="health-title">"Platform health"</h2>
            <ul class="checks">
                {health
                    .checks
                    .into_iter()
                    .map(|c| {
                        let label = if c.ok { "OK" } else { "Problem" };
                        view! {
                            <li>
                                <span class=if c.ok { "badge running" } else { "badge error" }>{label}</span>
                                " "
                                <strong>{c.name}</strong>
                                " - "
                                {c.detail}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <h3>"Orphaned containers"</h3>
            {if orphans.is_empty() {
                view! { <p class="muted">"None: every container with our labels belongs to an agent."</p> }.into_any()
            } else {
                view! {
                    <p class="muted">"Containers with DeployClaw labels that no agent owns. They are never deleted automatically."</p>
                    <ul data-testid="orphans">{orphans.into_iter().map(|o| view! { <li><code>{o}</code></li> }).collect_view()}</ul>
                }
                    .into_any()
            }}
        </section>
    }
}

/// The page's actions, together.
#[derive(Clone, Copy)]
struct Actions {
    suspend: ServerAction<AdminSuspendClient>,
    unsuspend: ServerAction<AdminUnsuspendClient>,
    rebuild: ServerAction<AdminRebuildAgent>,
}

impl Actions {
    fn errors(&self) -> [Option<AppError>; 3] {
        [
            self.suspend.value().get().and_then(Result::err),
            self.unsuspend.value().get().and_then(Result::err),
            self.rebuild.value().get().and_then(Result::err),
        ]
    }

    fn clear(&self) {
        self.suspend.value().set(None);
        self.unsuspend.value().set(None);
        self.rebuild.value().set(None);
    }
}

#[component]
pub fn AdminClientPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let actions = Actions {
        suspend: ServerAction::<AdminSuspendClient>::new(),
        unsuspend: ServerAction::<AdminUnsuspendClient>::new(),
        rebuild: ServerAction::<AdminRebuildAgent>::new(),
    };
    let retry = RwSignal::new(0u32);
    let detail = Resource::new(
        move || {
            (
                id(),
                retry.get(),
                actions.suspend.version().get(),
                actions.unsuspend.version().get(),
                actions.rebuild.version().get(),
            )
        },
        |(id, ..)| admin_client(id),
    );
    let action_error = move || actions.errors().into_iter().flatten().next();
    view! {
        <Title text="Client - Admin" />
        <p>
            <a href="/dashboard/admin">"← All clients"</a>
        </p>
        {move || {
            action_error()
                .map(|error| {
                    if error == AppError::TwoFactorRequired {
                        view! { <ConfirmTwoFactor on_done=move |_| actions.clear() /> }.into_any()
                    } else {
                        view! { <ErrorNotice error /> }.into_any()
                    }
                })
        }}
        <Suspense fallback=|| view! { <p class="muted">"Loading the client…"</p> }>
            {move || {
                detail
                    .get()
                    .map(|result| match result {
                        Ok(d) => view! { <ClientDetail detail=d actions /> }.into_any(),
                        Err(AppError::TwoFactorRequired) => {
                            view! {
                                <PageHeader
                                    title="Open a client"
                                    lead="Opening a client shows its users, agents and audit events, and is recorded in that client's own audit trail. Confirm with your authenticator first."
                                />
                                <ConfirmTwoFactor on_done=move |_| retry.update(|r| *r += 1) />
                            }
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn ClientDetail(detail: ClientDetailView, actions: Actions) -> impl IntoView {
    let suspended = detail.status == "suspended";
    let client_id = detail.id.clone();
    let lead = format!("Plan {} · {}", detail.plan, detail.status);
    view! {
        <header class="page-header">
            <h1>{detail.name.clone()}</h1>
            <p class="lead">{lead}</p>
        </header>
        <section class="card" aria-labelledby="status-title" data-testid="client-status">
            <h2 id="status-title">"Status"</h2>
            {if suspended {
                let id = client_id.clone();
                view! {
                    <p role="status">
                        <span class="badge error">"suspended"</span>
                        " "
                        {detail.suspended_reason.clone().unwrap_or_default()}
                    </p>
                    <p class="muted">"Its users cannot sign in and its agents are stopped. Lifting the suspension lets them sign in; agents stay stopped until they start them."</p>
                    <button
                        type="button"
                        class="button"
                        data-testid="unsuspend"
                        on:click=move |_| {
                            actions.unsuspend.dispatch(AdminUnsuspendClient { client_id: id.clone() });
                        }
                    >
                        "Lift the suspension"
                    </button>
                }
                    .into_any()
            } else {
                let id = client_id.clone();
                view! {
                    <ActionForm action=actions.suspend attr:class="stack-form" attr:data-testid="suspend-form">
                        <input type="hidden" name="client_id" value=id />
                        <label for="suspend-reason">"Reason (shown to the customer)"</label>
                        <textarea id="suspend-reason" name="reason" rows="2" maxlength="500" required placeholder="Unpaid invoices since October; contact billing@..."></textarea>
                        <p class="muted small">"Suspending ends every session of its users, blocks sign-in with this reason, and stops (never deletes) its agents. Its owners are emailed."</p>
                        <button type="submit" class="button danger" data-testid="suspend" disabled=move || actions.suspend.pending().get()>
                            "Suspend this client"
                        </button>
                    </ActionForm>
                }
                    .into_any()
            }}
        </section>
        <section class="card" aria-labelledby="members-title">
            <h2 id="members-title">"Users"</h2>
            <table class="table">
                <thead>
                    <tr>
                        <th scope="col">"Email"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Authenticator"</th>
                        <th scope="col">"Last sign-in"</th>
                    </tr>
                </thead>
                <tbody>
                    {detail
                        .members
                        .into_iter()
                        .map(|m| {
                            view! {
                                <tr>
                                    <td>{m.email}</td>
                                    <td>{m.role}</td>
                                    <td>{if m.totp_enabled { "set up" } else { "not yet" }}</td>
                                    <td>{m.last_login_at.map(|t| t.get(..16).unwrap_or_default().replace('T', " ")).unwrap_or_else(|| "never".into())}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
        <section class="card" aria-labelledby="agents-title" data-testid="client-agents">
            <h2 id="agents-title">"Agents"</h2>
            <p class="muted">"Rebuilding replaces a running agent's container with a fresh one from its image (same network and state volume, fresh credentials and token)."</p>
            <table class="table">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Template"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">
                            <span class="visually-hidden">"Actions"</span>
                        </th>
                    </tr>
                </thead>
                <tbody>
                    {detail
                        .agents
                        .into_iter()
                        .map(|a| {
                            let rebuildable = !suspended && matches!(a.status.as_str(), "running" | "starting" | "provisioning" | "error");
                            let (cid, aid) = (client_id.clone(), a.id.clone());
                            let label = format!("Rebuild {} from a clean image", a.name);
                            view! {
                                <tr>
                                    <td>{a.name}</td>
                                    <td>{a.template}</td>
                                    <td title=a.status_reason.unwrap_or_default()>{a.status}</td>
                                    <td>
                                        <Show when=move || rebuildable>
                                            {
                                                let (cid, aid) = (cid.clone(), aid.clone());
                                                view! {
                                                    <button
                                                        type="button"
                                                        class="button secondary"
                                                        aria-label=label.clone()
                                                        on:click=move |_| {
                                                            actions.rebuild.dispatch(AdminRebuildAgent { client_id: cid.clone(), agent_id: aid.clone() });
                                                        }
                                                    >
                                                        "Rebuild"
                                                    </button>
                                                }
                                            }
                                        </Show>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
        <section class="card" aria-labelledby="recent-title" data-testid="client-audit">
            <h2 id="recent-title">"Recent audit events"</h2>
            <ul class="events">
                {detail
                    .recent
                    .into_iter()
                    .map(|e| {
                        let who = if e.actor == "admin" { "operator".to_string() } else { e.actor.clone() };
                        view! {
                            <li>
                                <time datetime=e.at.clone()>{e.at.get(..19).unwrap_or_default().replace('T', " ")}</time>
                                " · " {who} " · " <code>{e.action}</code> " " {e.target.unwrap_or_default()}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}
