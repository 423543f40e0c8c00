use leptos::prelude::*;
use leptos_meta::Title;

/// Any unknown path: a real 404 status, and a way back.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Page not found" />
        <main id="main" class="not-found">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. It may have moved, or the link may be mistyped."</p>
            <p>
                <a href="/" class="button">"Go to the home page"</a>
                " "
                <a href="/dashboard" rel="external" class="button secondary">"Open the dashboard"</a>
            </p>
        </main>
    }
}
