//! Small reusable pieces of UI.

use leptos::prelude::*;

/// The product mark and name, linking home.
#[component]
pub fn Brand() -> impl IntoView {
    view! {
        <a href="/" class="brand" aria-label="DeployClaw home">
            <svg class="brand-mark" viewBox="0 0 32 32" aria-hidden="true" focusable="false">
                <path d="M16 2 4 7v8c0 7.5 5.1 13.4 12 15 6.9-1.6 12-7.5 12-15V7L16 2z" fill="currentColor" opacity="0.18" />
                <path d="M16 2 4 7v8c0 7.5 5.1 13.4 12 15 6.9-1.6 12-7.5 12-15V7L16 2z" fill="none" stroke="currentColor" stroke-width="2" />
                <path d="M11 20c1-4 2-7 2-10M16 21c0-4 0-8 0-11M21 20c-1-4-2-7-2-10" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
            </svg>
            <span>"DeployClaw"</span>
        </a>
    }
}

/// A page heading with a one-paragraph explanation of what the page is for.
#[component]
pub fn PageHeader(title: &'static str, #[prop(into)] lead: String) -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>{title}</h1>
            <p class="lead">{lead}</p>
        </header>
    }
}

/// What a section shows when it has nothing yet: what will be here and what to do next.
#[component]
pub fn EmptyState(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <section class="empty-state" aria-label=title>
            <h2>{title}</h2>
            {children()}
        </section>
    }
}
