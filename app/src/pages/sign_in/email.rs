use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use crate::api::auth::{RequestSignInCode, VerifySignInCode};
use crate::components::{action_error, AuthFrame, CodeInput};

/// Step one: the email address, then the code we mailed to it. New addresses continue to sign-up.
#[component]
pub fn SignInPage() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let send = ServerAction::<RequestSignInCode>::new();
    let verify = ServerAction::<VerifySignInCode>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(next)) = verify.value().get() {
            navigate(next.path(), Default::default());
        }
    });
    let code_sent = move || matches!(send.value().get(), Some(Ok(())));
    let send_error = action_error(send);
    let verify_error = action_error(verify);

    view! {
        <Title text="Sign in" />
        <AuthFrame
            title="Sign in or create an account"
            lead="Enter your work email. We will send you a 6-digit code; if the address is new, you will create your account next."
        >
            <Show
                when=code_sent
                fallback=move || {
                    view! {
                        <ActionForm action=send attr:class="stack-form">
                            <label for="email">"Email address"</label>
                            <input
                                id="email"
                                name="email"
                                type="email"
                                autocomplete="email"
                                required
                                maxlength="254"
                                bind:value=email
                            />
                            <button type="submit" data-testid="send-code" disabled=move || send.pending().get()>
                                {move || if send.pending().get() { "Sending…" } else { "Email me a code" }}
                            </button>
                        </ActionForm>
                        {send_error}
                    }
                }
            >
                <p class="notice ok" role="status" data-testid="code-sent">
                    "If "
                    <strong>{move || email.get()}</strong>
                    " can receive email, a code is on its way. It works once and expires in 10 minutes."
                </p>
                <ActionForm action=verify attr:class="stack-form">
                    <input type="hidden" name="email" prop:value=move || email.get() />
                    <CodeInput id="code" label="6-digit code from the email" />
                    <button type="submit" data-testid="verify-code" disabled=move || verify.pending().get()>
                        "Continue"
                    </button>
                </ActionForm>
                {verify_error}
                <button
                    type="button"
                    class="button secondary small"
                    on:click=move |_| {
                        send.value().set(None);
                        verify.value().set(None);
                    }
                >
                    "Use another address or send a new code"
                </button>
            </Show>
        </AuthFrame>
    }
}
