//! The operator console (platform admins only; the server refuses everyone else).

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::admin::admin_list_clients;
use crate::components::{ErrorNotice, PageHeader};

#[component]
pub fn AdminPage() -> impl IntoView {
    let clients = Resource::new(|| (), |_| admin_list_clients());
    view! {
        <Title text="Admin" />
        <PageHeader
            title="Admin"
            lead="For operators of this DeployClaw installation. Operators cannot see credential values: there is no code path for it."
        />
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
                                                <th scope="col">"Created"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {rows
                                                .into_iter()
                                                .map(|c| {
                                                    view! {
                                                        <tr>
                                                            <td>{c.name}</td>
                                                            <td>{c.plan}</td>
                                                            <td>{c.status}</td>
                                                            <td>{c.users}</td>
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
