//! The passwordless first factor, end to end: "send me a code", then "here is the code".
//!
//! Both steps answer the same way whether or not the address has an account: a code is sent either way (for
//! an unknown address it leads to sign-up), and every failure is the same rejection. Sending and guessing are
//! throttled per IP and per account. Every step is audited - never with the code.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codes::{CodeError, SignInCodes};
use super::throttle::{self, Bucket, Throttle, ThrottleKind, Throttled};
use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::context::RequestContext;
use crate::db::clients::{self, ClientName, NewClient};
use crate::db::users::{self, User};
use crate::db::{ClientId, Db, DbError};
use crate::email::EmailAddress;
use crate::mail::{sign_in_code_email, MailError, Mailer};

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// Wrong, expired, used-up or unknown code: one answer for all.
    #[error("that code is not valid; request a new one")]
    Rejected,
    #[error("we could not send the email right now; please try again in a few minutes")]
    Mail(#[from] MailError),
    /// The code was right, but the account is suspended by the operators; the reason is theirs to give.
    #[error("this account has been suspended by the operators of this DeployClaw installation: {0}")]
    Suspended(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<CodeError> for SignInError {
    fn from(e: CodeError) -> Self {
        match e {
            CodeError::Rejected(_) => Self::Rejected,
            CodeError::Db(e) => Self::Db(e),
        }
    }
}

/// A verified address: proof, for [`SignIn::sign_up`], that the code step passed. Only this module makes one;
/// it is deserialised only from server-side session state (the session store), never from a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VerifiedEmail(EmailAddress);

impl VerifiedEmail {
    pub fn email(&self) -> &EmailAddress {
        &self.0
    }
}

/// What a correct code leads to.
#[derive(Debug)]
pub enum CodeOutcome {
    /// The address belongs to this user: continue with their second factor.
    ExistingUser(User),
    /// Nobody has this address yet: continue with sign-up.
    NewAccount(VerifiedEmail),
}

#[derive(Clone, Debug)]
pub struct SignIn {
    db: Db,
    codes: SignInCodes,
    throttle: Throttle,
    mailer: Mailer,
}

impl SignIn {
    pub fn new(db: Db, codes: SignInCodes, mailer: Mailer) -> Self {
        Self { throttle: Throttle::new(db.clone()), db, codes, mailer }
    }

    fn buckets(email: &EmailAddress, ctx: &RequestContext) -> [Bucket; 2] {
        [Bucket::ip(ctx.ip), Bucket::account(email)]
    }

    async fn record(
        &self,
        client: Option<ClientId>,
        actor: Actor,
        name: &'static str,
        email: &EmailAddress,
        ctx: &RequestContext,
    ) -> Result<(), DbError> {
        let event = NewEvent::new(client, actor, ActionType::known(name)).target(email.as_str()).request(ctx);
        audit::append(&self.db, event).await.map(|_| ())
    }

    /// Step 1: sends a sign-in code to `email`, whether or not it has an account.
    pub async fn request_code(
        &self,
        email: &EmailAddress,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<(), SignInError> {
        let buckets = Self::buckets(email, ctx);
        // Counted whether or not the mail goes out: the limit is on asking.
        let _sent = self.throttle.take(&buckets, ThrottleKind::CodeSent, throttle::CODE_SENDS, now).await??;
        let user = users::find_for_sign_in(&self.db, email).await?;
        let code = self.codes.issue(email, now).await?;
        let minutes = self.codes.ttl().as_secs() / 60;
        self.mailer.send(sign_in_code_email(email, code.expose(), minutes)).await?;
        drop(code);
        match &user {
            Some(u) => self.record(Some(u.client_id), Actor::User(u.id), "auth.code_sent", email, ctx).await?,
            None => self.record(None, Actor::Platform, "auth.code_sent", email, ctx).await?,
        }
        Ok(())
    }

    /// Step 2: checks `code` for `email`.
    pub async fn verify_code(
        &self,
        email: &EmailAddress,
        code: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<CodeOutcome, SignInError> {
        let buckets = Self::buckets(email, ctx);
        // Counted before the code is looked at, refunded if it is right: parallel guesses cannot outrun the limit.
        let attempt = self.throttle.take(&buckets, ThrottleKind::Failure, throttle::FAILURES, now).await??;
        let user = users::find_for_sign_in(&self.db, email).await?;
        let (client, actor) = match &user {
            Some(u) => (Some(u.client_id), Actor::User(u.id)),
            None => (None, Actor::Platform),
        };
        match self.codes.verify(email, code, now).await {
            Ok(()) => {
                self.throttle.refund(attempt).await?;
                self.record(client, actor, "auth.code_verified", email, ctx).await?;
                // Only someone who proved they hold the address learns that its account is suspended.
                if let Some(u) = &user {
                    let c = crate::db::clients::get(&self.db, u.client_id).await?;
                    if c.status == crate::db::clients::ClientStatus::Suspended {
                        self.record(client, actor, "auth.sign_in_refused_suspended", email, ctx).await?;
                        return Err(SignInError::Suspended(
                            c.suspended_reason.unwrap_or_else(|| "no reason given".into()),
                        ));
                    }
                }
                Ok(match user {
                    Some(u) => CodeOutcome::ExistingUser(u),
                    None => CodeOutcome::NewAccount(VerifiedEmail(email.clone())),
                })
            }
            Err(CodeError::Rejected(_)) => {
                self.record(client, actor, "auth.code_failed", email, ctx).await?;
                Err(SignInError::Rejected)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a client named `client_name` with `verified` as its owner, atomically. `Conflict` if the
    /// address was taken in the meantime (then nothing is created).
    pub async fn sign_up(
        &self,
        verified: VerifiedEmail,
        client_name: ClientName,
        ctx: &RequestContext,
    ) -> Result<User, SignInError> {
        let email = verified.0;
        if users::find_for_sign_in(&self.db, &email).await?.is_some() {
            return Err(DbError::Conflict("this address already has an account".into()).into());
        }
        let (client, owner) =
            clients::create_with_owner(&self.db, NewClient { name: client_name, email: email.clone() }).await?;
        self.record(Some(client.id), Actor::User(owner.id), "auth.signed_up", &email, ctx).await?;
        Ok(owner)
    }
}
