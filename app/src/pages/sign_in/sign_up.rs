use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use crate::api::auth::CompleteSignUp;
use crate::components::{action_error, AuthFrame};

/// New address: name the account (a company or a person). The verified address becomes its owner.
#[component]
pub fn SignUpPage() -> impl IntoView {
    let create = ServerAction::<CompleteSignUp>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(next)) = create.value().get() {
            navigate(next.path(), Default::default());
        }
    });
    let error = action_error(create);
    view! {
        <Title text="Create your account" />
        <AuthFrame
            title="Create your account"
            lead="Your email is verified. Name the account your agents, keys and team will live in - your company, or just you."
        >
            <ActionForm action=create attr:class="stack-form">
                <label for="client_name">"Company or your name"</label>
                <input id="client_name" name="client_name" autocomplete="organization" required maxlength="200" />
                <button type="submit" data-testid="create-account" disabled=move || create.pending().get()>
                    "Create account"
                </button>
            </ActionForm>
            {error}
            <p class="muted">"Next you will set up an authenticator app. It is required for every account."</p>
        </AuthFrame>
    }
}
