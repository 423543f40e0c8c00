//! The second factor, end to end: enrolment (with recovery codes), the TOTP check at sign-in, recovery codes,
//! resets, and what completing a sign-in records (known devices, new-device alerts).
//!
//! Failures share the sign-in throttle with email codes (the same per-IP and per-account buckets), so five
//! wrong answers of any kind lock the account for 15 minutes, and the answer never says which factor failed.
//! Every step is audited with IP and user agent - never with a code.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::argon::ArgonPool;
use super::codes::CodeRejected;
use super::devices::{self, DeviceSeen};
use super::recovery::{self, RecoveryCode, RecoveryError};
use super::session::store::DbSessionStore;
use super::throttle::{self, Bucket, Throttle, ThrottleKind, Throttled};
use super::totp::{self, Enrollment, TotpError};
use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::context::RequestContext;
use crate::db::users::{self, User};
use crate::db::Db;
use crate::db::{DbError, UserId};
use crate::keys::keyring::Keyring;
use crate::mail::{new_device_email, recovery_code_used_email, Mailer, NoticeContext};

#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// Wrong, replayed or unknown code: one answer for all.
    #[error("that code is not valid")]
    Rejected,
    #[error("two-factor authentication is already set up for this account")]
    AlreadyEnrolled,
    #[error("two-factor authentication is not set up for this account")]
    NotEnrolled,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
    /// The code cannot be checked right now (every password-hash worker is busy): try again in a moment.
    #[error("the server is busy; try again in a moment")]
    Busy,
    /// A fault on our side (envelope, hashing); the detail is for the log only.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<TotpError> for TwoFactorError {
    fn from(e: TotpError) -> Self {
        match e {
            TotpError::Rejected(_) => Self::Rejected,
            TotpError::AlreadyEnrolled => Self::AlreadyEnrolled,
            TotpError::NotEnrolled => Self::NotEnrolled,
            TotpError::Db(e) => Self::Db(e),
            TotpError::Envelope(e) => Self::Internal(e.to_string()),
            TotpError::Totp(e) => Self::Internal(e),
        }
    }
}

impl From<RecoveryError> for TwoFactorError {
    fn from(e: RecoveryError) -> Self {
        match e {
            RecoveryError::Rejected(_) => Self::Rejected,
            RecoveryError::Db(e) => Self::Db(e),
            RecoveryError::Busy(_) => Self::Busy,
            RecoveryError::Hash(e) => Self::Internal(e),
        }
    }
}

impl From<CodeRejected> for TwoFactorError {
    fn from(_: CodeRejected) -> Self {
        Self::Rejected
    }
}

#[derive(Clone, Debug)]
pub struct TwoFactor {
    db: Db,
    keyring: Keyring,
    throttle: Throttle,
    mailer: Mailer,
    sessions: DbSessionStore,
    argon: ArgonPool,
}

impl TwoFactor {
    pub fn new(db: Db, keyring: Keyring, mailer: Mailer, argon: ArgonPool) -> Self {
        Self {
            throttle: Throttle::new(db.clone()),
            sessions: DbSessionStore::new(db.clone()),
            db,
            keyring,
            mailer,
            argon,
        }
    }

    async fn record(
        &self,
        user: &User,
        actor: Actor,
        name: &'static str,
        ctx: &RequestContext,
        extra: serde_json::Value,
    ) -> Result<(), DbError> {
        let event = NewEvent::new(Some(user.client_id), actor, ActionType::known(name))
            .target(user.email.as_str())
            .metadata(extra)
            .request(ctx);
        audit::append(&self.db, event).await.map(|_| ())
    }

    fn buckets(user: &User, ctx: &RequestContext) -> [Bucket; 2] {
        [Bucket::ip(ctx.ip), Bucket::account(&user.email)]
    }

    /// Runs a code check under the shared failure throttle. The attempt is counted before the check runs (so a
    /// burst of guesses, recovery codes included, costs at most five evaluations and five argon2 hashes) and
    /// refunded unless the code was rejected; a rejection is audited as `failed`.
    async fn throttled<T>(
        &self,
        user: &User,
        ctx: &RequestContext,
        now: DateTime<Utc>,
        failed: &'static str,
        check: impl std::future::Future<Output = Result<T, TwoFactorError>>,
    ) -> Result<T, TwoFactorError> {
        let buckets = Self::buckets(user, ctx);
        let attempt = self.throttle.take(&buckets, ThrottleKind::Failure, throttle::FAILURES, now).await??;
        let outcome = check.await;
        match outcome {
            Err(TwoFactorError::Rejected) => {
                drop(attempt);
                self.record(user, Actor::User(user.id), failed, ctx, json!({})).await?;
                Err(TwoFactorError::Rejected)
            }
            other => {
                self.throttle.refund(attempt).await?;
                other
            }
        }
    }

    /// A fresh authenticator secret to show (QR code and text). Replaces a pending one.
    pub async fn begin_enrollment(&self, user: &User) -> Result<Enrollment, TwoFactorError> {
        Ok(totp::begin(&self.db, &self.keyring, user.client_id, user.id, &user.email).await?)
    }

    /// Activates the pending authenticator with its first code and returns a new set of recovery codes
    /// (shown once).
    pub async fn confirm_enrollment(
        &self,
        user: &User,
        code: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<Vec<RecoveryCode>, TwoFactorError> {
        let check = async { Ok(totp::confirm(&self.db, &self.keyring, user.client_id, user.id, code, now).await?) };
        self.throttled(user, ctx, now, "auth.totp_failed", check).await?;
        self.record(user, Actor::User(user.id), "auth.totp_enrolled", ctx, json!({})).await?;
        let codes = recovery::generate(&self.db, &self.argon, user.client_id, user.id).await?;
        self.record(user, Actor::User(user.id), "auth.recovery_codes_issued", ctx, json!({ "count": codes.len() }))
            .await?;
        Ok(codes)
    }

    /// The TOTP step of a sign-in (or of re-confirming a sensitive change).
    pub async fn verify(
        &self,
        user: &User,
        code: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<(), TwoFactorError> {
        let check = async { Ok(totp::verify(&self.db, &self.keyring, user.client_id, user.id, code, now).await?) };
        self.throttled(user, ctx, now, "auth.totp_failed", check).await?;
        self.record(user, Actor::User(user.id), "auth.totp_verified", ctx, json!({})).await?;
        Ok(())
    }

    /// Signs in with a recovery code instead of the authenticator (which is then reset: the user sets up a
    /// new one next). Audited, and the user is warned by email. Returns how many codes remain.
    pub async fn redeem_recovery_code(
        &self,
        user: &User,
        code: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<usize, TwoFactorError> {
        let check = async { Ok(recovery::redeem(&self.db, &self.argon, user.client_id, user.id, code).await?) };
        let remaining = self.throttled(user, ctx, now, "auth.recovery_code_failed", check).await?;
        totp::reset(&self.db, user.client_id, user.id).await?;
        let notice = NoticeContext { at: now, ip: ctx.ip, user_agent: ctx.user_agent.clone() };
        let warned = match self.mailer.send(recovery_code_used_email(&user.email, &notice, remaining)).await {
            Ok(()) => true,
            Err(e) => {
                // The user is mid-recovery; failing here would lock them out. The audit event says it failed.
                tracing::error!(error = %e, "could not send the recovery-code warning email");
                false
            }
        };
        let meta = json!({ "remaining": remaining, "warning_email_sent": warned });
        self.record(user, Actor::User(user.id), "auth.recovery_code_used", ctx, meta).await?;
        self.record(user, Actor::User(user.id), "auth.totp_reset", ctx, json!({ "method": "recovery_code" })).await?;
        Ok(remaining)
    }

    /// What a completed sign-in records: the last sign-in time, the device, an alert when the device is new.
    pub async fn complete_sign_in(
        &self,
        user: &User,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<DeviceSeen, TwoFactorError> {
        users::record_sign_in(&self.db, user.client_id, user.id, now).await?;
        let seen = devices::remember(&self.db, user.id, ctx, now).await?;
        self.record(
            user,
            Actor::User(user.id),
            "auth.signed_in",
            ctx,
            json!({ "new_device": seen == DeviceSeen::New }),
        )
        .await?;
        if seen == DeviceSeen::New {
            let notice = NoticeContext { at: now, ip: ctx.ip, user_agent: ctx.user_agent.clone() };
            let sent = match self.mailer.send(new_device_email(&user.email, &notice)).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "could not send the new-device alert email");
                    false
                }
            };
            self.record(user, Actor::User(user.id), "auth.new_device", ctx, json!({ "alert_email_sent": sent }))
                .await?;
        }
        Ok(seen)
    }

    /// An owner or admin removes a team member's authenticator (for a member who lost theirs and their
    /// recovery codes). The member's sessions end; they set up a new authenticator at their next sign-in.
    pub async fn reset_for_member(
        &self,
        manager: &User,
        member: UserId,
        ctx: &RequestContext,
    ) -> Result<(), TwoFactorError> {
        if !manager.role.manages_client() {
            return Err(TwoFactorError::Forbidden("only an owner or admin can reset a team member's two-factor"));
        }
        let target = users::get(&self.db, manager.client_id, member).await?;
        if target.id == manager.id {
            return Err(TwoFactorError::Forbidden(
                "you cannot reset your own two-factor here; sign in with a recovery code instead",
            ));
        }
        if !manager.role.may_act_on(target.role) {
            // An admin who could reset an owner's authenticator (and end their sessions) would, with the owner's
            // mailbox, take the account over.
            return Err(TwoFactorError::Forbidden(
                "you cannot reset the two-factor of someone whose role is above yours",
            ));
        }
        totp::reset(&self.db, target.client_id, target.id).await?;
        self.sessions.revoke_all(target.client_id, target.id).await?;
        let meta = json!({ "method": "manager", "by": manager.email.as_str() });
        self.record(&target, Actor::User(manager.id), "auth.totp_reset", ctx, meta).await?;
        Ok(())
    }
}
