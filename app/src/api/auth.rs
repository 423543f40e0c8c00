//! Signing in and out: email code, sign-up, TOTP enrolment and check, recovery codes.
//!
//! Every step answers the same way whatever the account's state, keeps the session id fresh (a new id at
//! each step), and leaves the rules to the core.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::caller::{respond, Caller};
use super::AppError;

/// Where the browser goes after a sign-in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextStep {
    SignUp,
    Enroll,
    TwoFactor,
    Dashboard,
}

impl NextStep {
    pub fn path(self) -> &'static str {
        match self {
            NextStep::SignUp => "/sign-up",
            NextStep::Enroll => "/sign-in/enroll",
            NextStep::TwoFactor => "/sign-in/verify",
            NextStep::Dashboard => "/dashboard",
        }
    }
}

/// What the enrolment page shows (once; never logged or cached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentView {
    pub qr_svg: String,
    pub secret: String,
    pub otpauth_url: String,
    pub account: String,
}

/// The signed-in user, as the dashboard frame shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub email: String,
    pub role: String,
    pub client_name: String,
    pub platform_admin: bool,
}

#[cfg(feature = "ssr")]
mod convert {
    use deployclaw::identity::sign_in::SignInError;
    use deployclaw::identity::two_factor::TwoFactorError;

    use super::AppError;

    impl From<SignInError> for AppError {
        fn from(e: SignInError) -> Self {
            match e {
                SignInError::Throttled(t) => AppError::Throttled(capital(&t.to_string())),
                SignInError::Rejected => {
                    AppError::Invalid("That code is not valid. Check it, or request a new one.".into())
                }
                SignInError::Mail(e) => {
                    let _ = AppError::internal(&e);
                    AppError::Invalid(
                        "We could not send the email right now. Please try again in a few minutes.".into(),
                    )
                }
                SignInError::Db(e) => e.into(),
                SignInError::Suspended(reason) => AppError::Forbidden(format!(
                    "This account has been suspended by the operators of this DeployClaw installation: {reason} \
                     Your agents are stopped, not deleted. Contact your operator's support to lift the suspension."
                )),
            }
        }
    }

    impl From<TwoFactorError> for AppError {
        fn from(e: TwoFactorError) -> Self {
            match e {
                TwoFactorError::Throttled(t) => AppError::Throttled(capital(&t.to_string())),
                TwoFactorError::Rejected => {
                    AppError::Invalid("That code is not valid. Check your app and try again.".into())
                }
                TwoFactorError::AlreadyEnrolled => AppError::Invalid(e.to_string()),
                TwoFactorError::NotEnrolled => AppError::Invalid(e.to_string()),
                TwoFactorError::Forbidden(m) => AppError::Forbidden(capital(m)),
                TwoFactorError::Db(e) => e.into(),
                TwoFactorError::Busy => {
                    AppError::Unavailable("The server is busy checking codes; try again in a moment.".into())
                }
                TwoFactorError::Internal(detail) => AppError::internal(&detail),
            }
        }
    }

    pub fn capital(s: &str) -> String {
        let mut c = s.chars();
        match c.next() {
            Some(f) => f.to_uppercase().collect::<String>() + c.as_str() + if s.ends_with('.') { "" } else { "." },
            None => String::new(),
        }
    }
}
#[cfg(feature = "ssr")]
pub(crate) use convert::capital;

/// Step 1: email me a code. The same answer whether or not the address has an account.
#[server(prefix = "/api/fn", endpoint = "request_sign_in_code")]
pub async fn request_sign_in_code(email: String) -> Result<(), AppError> {
    respond(async {
        use deployclaw::email::EmailAddress;
        let caller = Caller::current().await?;
        let email = EmailAddress::parse(&email).map_err(|e| AppError::Invalid(capital(&e.to_string())))?;
        caller.platform.sign_in().request_code(&email, &caller.ctx, deployclaw::db::now()).await?;
        Ok(())
    })
    .await
}

/// Step 2: the emailed code. Starts the session (with a new id) at the step that comes next.
#[server(prefix = "/api/fn", endpoint = "verify_sign_in_code")]
pub async fn verify_sign_in_code(email: String, code: String) -> Result<NextStep, AppError> {
    respond(async {
        use deployclaw::email::EmailAddress;
        use deployclaw::identity::session::{SessionAuth, Stage};
        use deployclaw::identity::sign_in::CodeOutcome;
        let caller = Caller::current().await?;
        let email = EmailAddress::parse(&email).map_err(|e| AppError::Invalid(capital(&e.to_string())))?;
        let now = deployclaw::db::now();
        let outcome = caller.platform.sign_in().verify_code(&email, &code, &caller.ctx, now).await?;
        let (stage, next) = match outcome {
            CodeOutcome::NewAccount(email) => (Stage::SignUp { email }, NextStep::SignUp),
            CodeOutcome::ExistingUser(u) if u.totp_enabled => {
                (Stage::TwoFactor { client_id: u.client_id, user_id: u.id }, NextStep::TwoFactor)
            }
            CodeOutcome::ExistingUser(u) => (Stage::Enroll { client_id: u.client_id, user_id: u.id }, NextStep::Enroll),
        };
        caller.store(&SessionAuth::begin(stage, &caller.ctx, now), true).await?;
        Ok(next)
    })
    .await
}

/// Sign-up: names the new client; the verified address becomes its owner. Enrolment comes next.
#[server(prefix = "/api/fn", endpoint = "complete_sign_up")]
pub async fn complete_sign_up(client_name: String) -> Result<NextStep, AppError> {
    respond(async {
        use deployclaw::db::clients::ClientName;
        use deployclaw::identity::session::Stage;
        let caller = Caller::current().await?;
        let mut auth = match &caller.auth {
            Some(a) if matches!(a.stage, Stage::SignUp { .. }) => a.clone(),
            _ => {
                return Err(AppError::SignInRequired("This sign-up has expired. Please enter your email again.".into()))
            }
        };
        let Stage::SignUp { email } = auth.stage.clone() else { unreachable!("checked above") };
        let name = ClientName::parse(&client_name).map_err(|e| AppError::Invalid(capital(&e.to_string())))?;
        let owner = caller.platform.sign_in().sign_up(email, name, &caller.ctx).await?;
        auth.advance(Stage::Enroll { client_id: owner.client_id, user_id: owner.id }, deployclaw::db::now());
        caller.store(&auth, true).await?;
        Ok(NextStep::Enroll)
    })
    .await
}

/// Enrolment, part 1: a new authenticator secret as a QR code and as text.
#[server(prefix = "/api/fn", endpoint = "begin_totp_enrollment")]
pub async fn begin_totp_enrollment() -> Result<EnrollmentView, AppError> {
    respond(async {
        use deployclaw::identity::session::Stage;
        let caller = Caller::current().await?;
        let user = caller.pending_user(|s| matches!(s, Stage::Enroll { .. })).await?;
        let e = caller.platform.two_factor().begin_enrollment(&user).await?;
        Ok(EnrollmentView {
            qr_svg: e.qr_svg.to_string(),
            secret: e.secret_base32.to_string(),
            otpauth_url: e.otpauth_url.to_string(),
            account: user.email.to_string(),
        })
    })
    .await
}

/// Enrolment, part 2: the first code from the app. Signs the user in and returns their recovery codes
/// (shown once).
#[server(prefix = "/api/fn", endpoint = "confirm_totp_enrollment")]
pub async fn confirm_totp_enrollment(code: String) -> Result<Vec<String>, AppError> {
    respond(async {
        use deployclaw::identity::session::Stage;
        let caller = Caller::current().await?;
        let user = caller.pending_user(|s| matches!(s, Stage::Enroll { .. })).await?;
        let now = deployclaw::db::now();
        let codes = caller.platform.two_factor().confirm_enrollment(&user, &code, &caller.ctx, now).await?;
        let mut auth = caller.auth.clone().expect("pending_user checked the session");
        auth.second_factor_passed(user.client_id, user.id, now);
        caller.store(&auth, true).await?;
        caller.platform.two_factor().complete_sign_in(&user, &caller.ctx, now).await?;
        Ok(codes.iter().map(|c| c.expose().to_string()).collect())
    })
    .await
}

/// The TOTP check: finishes a sign-in, or (when signed in) refreshes the second factor before a sensitive
/// change.
#[server(prefix = "/api/fn", endpoint = "verify_totp")]
pub async fn verify_totp(code: String) -> Result<NextStep, AppError> {
    respond(async {
        use deployclaw::identity::session::Stage;
        let caller = Caller::current().await?;
        let user = caller.pending_user(|s| matches!(s, Stage::TwoFactor { .. } | Stage::SignedIn { .. })).await?;
        let now = deployclaw::db::now();
        caller.platform.two_factor().verify(&user, &code, &caller.ctx, now).await?;
        let mut auth = caller.auth.clone().expect("pending_user checked the session");
        let finishing_sign_in = auth.signed_in().is_none();
        auth.second_factor_passed(user.client_id, user.id, now);
        caller.store(&auth, true).await?;
        if finishing_sign_in {
            caller.platform.two_factor().complete_sign_in(&user, &caller.ctx, now).await?;
        }
        Ok(NextStep::Dashboard)
    })
    .await
}

/// Lost authenticator: a recovery code replaces the TOTP step once, resets the authenticator, and leads to
/// setting up a new one. Audited, and the user is warned by email.
#[server(prefix = "/api/fn", endpoint = "use_recovery_code")]
pub async fn use_recovery_code(code: String) -> Result<NextStep, AppError> {
    respond(async {
        use deployclaw::identity::session::Stage;
        let caller = Caller::current().await?;
        let user = caller.pending_user(|s| matches!(s, Stage::TwoFactor { .. })).await?;
        let now = deployclaw::db::now();
        caller.platform.two_factor().redeem_recovery_code(&user, &code, &caller.ctx, now).await?;
        let mut auth = caller.auth.clone().expect("pending_user checked the session");
        auth.advance(Stage::Enroll { client_id: user.client_id, user_id: user.id }, now);
        caller.store(&auth, true).await?;
        Ok(NextStep::Enroll)
    })
    .await
}

/// Signs this browser out.
#[server(prefix = "/api/fn", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    respond(async {
        let caller = Caller::current().await?;
        if let Some((client_id, user_id)) = caller.auth.as_ref().and_then(|a| a.stage.user()) {
            let event = deployclaw::audit::NewEvent::new(
                Some(client_id),
                deployclaw::audit::Actor::User(user_id),
                deployclaw::audit::ActionType::known("auth.signed_out"),
            )
            .ip(caller.ctx.ip);
            caller.platform.audit().append(event).await?;
        }
        caller.end().await
    })
    .await
}

/// The signed-in user (for the dashboard frame).
#[server(prefix = "/api/fn", endpoint = "me")]
pub async fn me() -> Result<CurrentUser, AppError> {
    respond(async {
        use deployclaw::db::users::Role;
        let caller = Caller::current().await?;
        let user = caller.require(super::caller::Access::SignedIn).await?;
        let client = caller.platform.team().client(user.client_id).await?;
        Ok(CurrentUser {
            email: user.email.to_string(),
            role: user.role.as_str().to_string(),
            client_name: client.name,
            platform_admin: user.role == Role::PlatformAdmin,
        })
    })
    .await
}
