use leptos::prelude::*;
use leptos_router::components::{Outlet, A};

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

/// The dashboard frame: skip link, top bar, navigation (a disclosure menu on small screens), and the page.
#[component]
pub fn DashboardLayout() -> impl IntoView {
    let menu_open = RwSignal::new(false);
    let link = |item: &'static NavItem| {
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
        <div class="dashboard">
            <header class="dash-topbar">
                <Brand />
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
                <p class="nav-section">"Operators"</p>
                <ul>{link(&ADMIN_NAV)}</ul>
            </nav>
            <main id="main" class="dash-main" tabindex="-1">
                <Outlet />
            </main>
        </div>
    }
}
