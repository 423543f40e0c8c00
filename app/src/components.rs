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

/// `text` as the inner HTML of a `<textarea>`, escaped. Leptos writes a textarea's children into the server's HTML
/// as they are (to it they are raw text), so saved text could close the element and add markup to every viewer's
/// page. A textarea that shows saved text takes it as `inner_html=textarea_text(..)`, with no children: the
/// browser's parser (server-rendered page) and `innerHTML` (client-side navigation) both read it back as the
/// same text, and the form submits it unchanged.
pub fn textarea_text(text: &str) -> String {
    let mut html = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            c => html.push(c),
        }
    }
    html
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

/// An error from the server, said plainly, announced to screen readers.
#[component]
pub fn ErrorNotice(error: crate::api::AppError) -> impl IntoView {
    let sign_in = matches!(error, crate::api::AppError::SignInRequired(_));
    view! {
        <p class="notice error" role="alert" data-testid="error">
            {error.to_string()}
            {sign_in.then(|| view! { " " <a href="/sign-in">"Sign in"</a> })}
        </p>
    }
}

/// The error of a server action's last run, if it failed, as a notice.
pub fn action_error<S>(action: ServerAction<S>) -> impl Fn() -> Option<AnyView> + Copy + Send + Sync + 'static
where
    S: leptos::server_fn::ServerFn<Error = crate::api::AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    move || action.value().get().and_then(Result::err).map(|error| view! { <ErrorNotice error /> }.into_any())
}

/// Clears `form` once `action` succeeds, so a saved value (a credential, say) does not linger in the page and
/// the form is ready for the next entry.
pub fn reset_on_success<S>(action: ServerAction<S>, form: NodeRef<leptos::html::Form>)
where
    S: leptos::server_fn::ServerFn<Error = crate::api::AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    Effect::new(move |_| {
        if matches!(action.value().get(), Some(Ok(_))) {
            if let Some(f) = form.get_untracked() {
                f.reset();
            }
        }
    });
}

/// True once the page has hydrated (an effect only runs in the browser); forms stay disabled until then so
/// a click never goes unanswered.
pub fn hydrated() -> RwSignal<bool> {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    hydrated
}

/// The frame of the sign-in pages: the brand, a card with a title and a short explanation.
#[component]
pub fn AuthFrame(title: &'static str, #[prop(into)] lead: String, children: Children) -> impl IntoView {
    let hydrated = hydrated();
    view! {
        <main class="auth-page" id="main" data-hydrated=move || hydrated.get().to_string()>
            <div class="auth-brand">
                <Brand />
            </div>
            <section class="card auth-card" aria-labelledby="auth-title">
                <h1 id="auth-title">{title}</h1>
                <p class="lead">{lead}</p>
                {children()}
            </section>
            <p class="auth-foot muted">
                "No passwords: a one-time code by email, then your authenticator app, every time."
            </p>
        </main>
    }
}

/// A one-time-code field (6 digits; a space in the middle is tolerated), for email and authenticator codes.
#[component]
pub fn CodeInput(id: &'static str, label: &'static str) -> impl IntoView {
    view! {
        <label for=id>{label}</label>
        <input id=id name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" maxlength="7" required />
    }
}

/// Shown when a sensitive change needs a fresh second factor: asks for an authenticator code, then the user
/// repeats the change.
#[component]
pub fn ConfirmTwoFactor(#[prop(into)] on_done: Callback<()>) -> impl IntoView {
    let confirm = ServerAction::<crate::api::auth::VerifyTotp>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = confirm.value().get() {
            on_done.run(());
        }
    });
    let error = action_error(confirm);
    view! {
        <div class="confirm-2fa" role="group" aria-labelledby="confirm-2fa-title">
            <p id="confirm-2fa-title">
                <strong>"Confirm it is you."</strong>
                " Changes like this need a code from your authenticator app from the last 15 minutes."
            </p>
            <ActionForm action=confirm attr:class="inline-form">
                <CodeInput id="confirm-2fa-code" label="Authenticator code" />
                <button type="submit" disabled=move || confirm.pending().get()>"Confirm"</button>
            </ActionForm>
            {error}
        </div>
    }
}

/// Calls `refresh` while the page is open: every 2 s while `busy()` holds, else every `idle_secs`; at most for
/// an hour. One timer per page (in the browser only; cleared with the page), however often the page's data
/// changes.
pub fn poll_while_open(busy: impl Fn() -> bool + 'static, refresh: impl Fn() + 'static, idle_secs: u32) {
    #[cfg(feature = "hydrate")]
    {
        use std::cell::Cell;
        use std::rc::Rc;
        let seconds = Rc::new(Cell::new(0u32));
        let slot = Rc::new(Cell::new(None::<leptos::leptos_dom::helpers::IntervalHandle>));
        let own = slot.clone();
        let tick = move || {
            let s = seconds.get() + 1;
            seconds.set(s);
            if s >= 3600 {
                if let Some(h) = own.get() {
                    h.clear();
                }
                return;
            }
            if (busy() && s.is_multiple_of(2)) || s.is_multiple_of(idle_secs.max(1)) {
                refresh();
            }
        };
        if let Ok(handle) =
            leptos::leptos_dom::helpers::set_interval_with_handle(tick, std::time::Duration::from_secs(1))
        {
            slot.set(Some(handle));
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (busy, refresh, idle_secs);
}

#[cfg(test)]
mod tests {
    #[test]
    fn textarea_text_cannot_close_its_textarea() {
        assert_eq!(super::textarea_text("a</textarea><b>&amp;\n"), "a&lt;/textarea&gt;&lt;b&gt;&amp;amp;\n");
    }
}
