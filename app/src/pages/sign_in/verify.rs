use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use crate::api::auth::{UseRecoveryCode, VerifyTotp};
use crate::components::{action_error, AuthFrame, CodeInput};

/// The second factor at sign-in: a code from the authenticator app, or a recovery code if it is lost.
#[component]
pub fn VerifyPage() -> impl IntoView {
    let verify = ServerAction::<VerifyTotp>::new();
    let recover = ServerAction::<UseRecoveryCode>::new();
    let use_recovery = RwSignal::new(false);
    let navigate = use_navigate();
    Effect::new(move |_| {
        let next = match (verify.value().get(), recover.value().get()) {
            (Some(Ok(next)), _) | (_, Some(Ok(next))) => next,
            _ => return,
        };
        navigate(next.path(), Default::default());
    });
    let verify_error = action_error(verify);
    let recover_error = action_error(recover);
    view! {
        <Title text="Two-factor check" />
        <AuthFrame title="Enter your authenticator code" lead="Open your authenticator app and enter the 6-digit code shown for DeployClaw.">
            <Show
                when=move || use_recovery.get()
                fallback=move || {
                    view! {
                        <ActionForm action=verify attr:class="stack-form">
                            <CodeInput id="totp" label="Authenticator code" />
                            <button type="submit" data-testid="verify-totp" disabled=move || verify.pending().get()>
                                "Sign in"
                            </button>
                        </ActionForm>
                        {verify_error}
                        <button type="button" class="button secondary small" on:click=move |_| use_recovery.set(true)>
                            "I lost my authenticator - use a recovery code"
                        </button>
                    }
                }
            >
                <p class="muted">
                    "A recovery code signs you in once and removes your old authenticator; you will set up a new one next. We will email you that it was used."
                </p>
                <ActionForm action=recover attr:class="stack-form">
                    <label for="recovery">"Recovery code (XXXXX-XXXXX)"</label>
                    <input id="recovery" name="code" autocomplete="off" maxlength="20" required />
                    <button type="submit" data-testid="use-recovery" disabled=move || recover.pending().get()>
                        "Use recovery code"
                    </button>
                </ActionForm>
                {recover_error}
                <button type="button" class="button secondary small" on:click=move |_| use_recovery.set(false)>
                    "Back to the authenticator code"
                </button>
            </Show>
        </AuthFrame>
    }
}
