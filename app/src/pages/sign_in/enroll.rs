use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use crate::api::auth::{begin_totp_enrollment, ConfirmTotpEnrollment, EnrollmentView};
use crate::components::{action_error, AuthFrame, CodeInput, ErrorNotice};

/// First sign-in (or after a reset): set up an authenticator app, confirm it with a code, save the recovery
/// codes. Nothing else is reachable until this is done.
#[component]
pub fn EnrollPage() -> impl IntoView {
    let enrollment = Resource::new(|| (), |_| begin_totp_enrollment());
    let confirm = ServerAction::<ConfirmTotpEnrollment>::new();
    view! {
        <Title text="Set up your authenticator" />
        <AuthFrame
            title="Set up your authenticator app"
            lead="Every DeployClaw account uses an authenticator app (1Password, Google Authenticator, Aegis, ...) as its second factor."
        >
            {move || match confirm.value().get() {
                Some(Ok(codes)) => view! { <RecoveryCodes codes /> }.into_any(),
                _ => {
                    view! {
                        <Suspense fallback=|| view! { <p class="muted">"Preparing your secret…"</p> }>
                            {move || {
                                enrollment
                                    .get()
                                    .map(|result| match result {
                                        Ok(e) => view! { <EnrollSteps enrollment=e confirm /> }.into_any(),
                                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                                    })
                            }}
                        </Suspense>
                    }
                        .into_any()
                }
            }}
        </AuthFrame>
    }
}

#[component]
fn EnrollSteps(enrollment: EnrollmentView, confirm: ServerAction<ConfirmTotpEnrollment>) -> impl IntoView {
    let error = action_error(confirm);
    view! {
        <ol class="steps">
            <li>
                <p>"Scan this QR code with your app:"</p>
                // The SVG is generated on our server from the otpauth URL (qrcode crate); it holds no script.
                <div class="qr" role="img" aria-label="QR code for your authenticator app" inner_html=enrollment.qr_svg></div>
                <details>
                    <summary>"Cannot scan? Type the secret instead"</summary>
                    <p>
                        "Account: " <code>{enrollment.account}</code> <br /> "Secret key: "
                        <code class="secret" data-testid="totp-secret">{enrollment.secret}</code>
                    </p>
                    <p class="muted">"Time-based, 6 digits, every 30 seconds (SHA-1)."</p>
                </details>
            </li>
            <li>
                <ActionForm action=confirm attr:class="stack-form">
                    <CodeInput id="enroll-code" label="Enter the 6-digit code your app shows" />
                    <button type="submit" data-testid="confirm-enrollment" disabled=move || confirm.pending().get()>
                        "Turn on two-factor"
                    </button>
                </ActionForm>
                {error}
            </li>
        </ol>
    }
}

#[component]
fn RecoveryCodes(codes: Vec<String>) -> impl IntoView {
    let saved = RwSignal::new(false);
    let navigate = use_navigate();
    view! {
        <div class="recovery" data-testid="recovery">
            <p class="notice ok" role="status">"Two-factor authentication is on."</p>
            <h2>"Save your recovery codes"</h2>
            <p>
                "If you lose your phone, each of these codes signs you in once. Store them in your password manager or print them. "
                <strong>"They are shown only now."</strong>
            </p>
            <ol class="codes" data-testid="recovery-codes">
                {codes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
            </ol>
            <label class="check">
                <input type="checkbox" data-testid="saved-codes" on:change=move |ev| saved.set(event_target_checked(&ev)) />
                " I have saved my recovery codes"
            </label>
            <button
                type="button"
                data-testid="continue-dashboard"
                disabled=move || !saved.get()
                on:click=move |_| navigate("/dashboard", Default::default())
            >
                "Continue to the dashboard"
            </button>
        </div>
    }
}
