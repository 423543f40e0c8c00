use leptos::prelude::*;
use leptos_router::components::{Outlet, A};

use crate::api::auth::{me, SignOut};
use crate::components::Brand;

struct NavItem {
    href: &'static str,
    label: &'static str,
    hint: &'static str,
}

const NAV: &[NavItem] = &[
    NavItem { href: "/dashboard", label: "Overview", hint: "Platform status and next steps" },
    NavItem { href: "/dashboard/agents", label: "Agents", hint: "Deploy and operate agents" },
    NavItem { href: "/dashboard/credentials", label: "Credentials", hint: "Encrypted provider keys and tokens" },
    NavItem { href: "/dashboard/audit", label: "Audit", hint: "Everything that happened, live" },
    NavItem { href: "/dashboard/billing", label: "Billing", hint: "Plan, usage and invoices" },
    NavItem { href: "/dashboard/settings", label: "Settings", hint: "Team, sessions and two-factor" },
];

const ADMIN_NAV: NavItem = NavItem { href: "/dashboard/admin", label: "Admin", hint: "Platform operators only" };

/// The dashboard frame: skip link, top bar (who is signed in, sign out), navigation (a disclosure menu on small
/// screens), and the page. The server only serves it to signed-in users; the operators' link shows only to
/// operators (and the server refuses everyone else anyway).
#[component]
pub fn DashboardLayout() -> impl IntoView {
    let menu_open = RwSignal::new(false);
    let whoami = Resource::new(|| (), |_| me());
    let sign_out = ServerAction::<SignOut>::new();
    Effect::new(move |_| {
        if sign_out.value().get().is_some() {
            // A full page load: the server answers with the sign-in page, and nothing of this session stays.
            let _ = window().location().set_href("/sign-in");
        }
    });
    let hydrated = crate::components::hydrated();
    // Reached by in-app navigation without a session (or the session just ended): go and sign in. A full page
    // load, so the server decides where the sign-in continues.
    Effect::new(move |_| {
        if let Some(Err(crate::api::AppError::SignInRequired(_))) = whoami.get() {
            let _ = window().location().set_href("/sign-in");
        }
    });
    let is_operator = move || whoami.get().and_then(Result::ok).is_some_and(|m| m.platform_admin);
    let link = move |item: &'static NavItem| {
        view! {
            <li>
                <A href=item.href exact=true on:click=move |_| menu_open.set(false)>
                    <span class="nav-label">{item.label}</span>
                    <span class="nav-hint">{item.hint}</span>
                </A>
            </li>
        }
    };
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <div class="dashboard" data-hydrated=move || hydrated.get().to_string()>
            <header class="dash-topbar">
                <Brand />
                <div class="whoami">
                    <Suspense fallback=|| ()>
                        {move || {
                            whoami
                                .get()
                                .and_then(Result::ok)
                                .map(|m| {
                                    view! {
                                        <span class="who" data-testid="whoami">
                                            <span class="who-email">{m.email}</span>
                                            <span class="muted">{format!(" · {} · {}", m.client_name, m.role)}</span>
                                        </span>
                                    }
                                })
                        }}
                    </Suspense>
                    <button
                        type="button"
                        class="button secondary small"
                        data-testid="sign-out"
                        disabled=move || sign_out.pending().get()
                        on:click=move |_| {
                            sign_out.dispatch(SignOut {});
                        }
                    >
                        "Sign out"
                    </button>
                </div>
                <button
                    class="menu-toggle"
                    type="button"
                    aria-controls="dash-nav"
                    aria-expanded=move || if menu_open.get() { "true" } else { "false" }
                    on:click=move |_| menu_open.update(|open| *open = !*open)
                >
                    "Menu"
                </button>
            </header>
            <nav id="dash-nav" class="dash-nav" class:open=move || menu_open.get() aria-label="Dashboard">
                <ul>{NAV.iter().map(link).collect_view()}</ul>
                <Suspense fallback=|| ()>
                    <Show when=is_operator>
                        <p class="nav-section">"Operators"</p>
                        <ul>{link(&ADMIN_NAV)}</ul>
                    </Show>
                </Suspense>
            </nav>
            <main id="main" class="dash-main" tabindex="-1">
                <Outlet />
            </main>
        </div>
    }
}
