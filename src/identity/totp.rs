//! Mandatory TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of clock skew either way).
//!
//! The seed is 20 bytes from the OS CSPRNG, sealed with the vault (bound to the client, the user and the name
//! `totp`) before it is stored. Enrolment is pending until the user proves a working authenticator with a
//! valid code. Each accepted code records its time step; a code from a step already used (or older) is
//! refused, so an observed code cannot be replayed.

use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::ExposeSecret;
use totp_rs::{Builder, Secret, Totp};
use zeroize::Zeroizing;

use super::codes::CodeRejected;
use crate::db::{on_pool, ClientId, Db, DbError, UserId};
use crate::email::EmailAddress;
use crate::keys::envelope::{self, Envelope, EnvelopeError};
use crate::keys::keyring::Keyring;

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "DeployClaw";
/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Steps of clock skew accepted either way.
pub const SKEW_STEPS: u16 = 1;
const SECRET_NAME: &str = "totp";
const SEED_BYTES: usize = 20;

/// What the enrolment page shows: scan the QR code or type the secret. Shown once, never logged.
pub struct Enrollment {
    pub otpauth_url: Zeroizing<String>,
    pub secret_base32: Zeroizing<String>,
    /// The otpauth URL as an SVG QR code.
    pub qr_svg: Zeroizing<String>,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrollment([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error(transparent)]
    Rejected(#[from] CodeRejected),
    #[error("two-factor authentication is already active for this account; reset it first")]
    AlreadyEnrolled,
    #[error("two-factor authentication is not set up for this account")]
    NotEnrolled,
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("TOTP: {0}")]
    Totp(String),
}

impl From<sqlx::Error> for TotpError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

fn totp(seed: &[u8], account: &str) -> Result<Totp, TotpError> {
    Builder::new()
        .with_secret(Secret::new(seed.to_vec().into_boxed_slice()))
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|e| TotpError::Totp(e.to_string()))
}

fn unix_seconds(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

/// Starts (or restarts) enrolment: a fresh sealed seed, pending until [`confirm`]. Refused when TOTP is
/// already active: resetting is a separate, audited operation.
pub async fn begin(
    db: &Db,
    keyring: &Keyring,
    client_id: ClientId,
    user_id: UserId,
    email: &EmailAddress,
) -> Result<Enrollment, TotpError> {
    let mut seed = Zeroizing::new([0u8; SEED_BYTES]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    let sealed = envelope::seal_user_secret(keyring, client_id, user_id, SECRET_NAME, seed.as_ref())?.to_bytes();
    let updated = on_pool!(db, |p| {
        sqlx::query(
        "UPDATE users SET totp_secret = $1, totp_last_step = NULL WHERE id = $2 AND client_id = $3 AND totp_enabled = FALSE"
    )
    .bind(&sealed)
    .bind(user_id)
    .bind(client_id)
    .execute(p)
    .await?
    .rows_affected()
    });
    if updated == 0 {
        let exists: Option<bool> =
            on_pool!(db, |p| sqlx::query_scalar("SELECT totp_enabled FROM users WHERE id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(p)
                .await?);
        return Err(match exists {
            Some(true) => TotpError::AlreadyEnrolled,
            _ => TotpError::Db(DbError::NotFound),
        });
    }
    let t = totp(seed.as_ref(), email.as_str())?;
    let url = Zeroizing::new(t.to_url().map_err(|e| TotpError::Totp(e.to_string()))?);
    let qr_svg = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| TotpError::Totp(e.to_string()))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrollment {
        secret_base32: Zeroizing::new(t.secret().to_base32()),
        otpauth_url: url,
        qr_svg: Zeroizing::new(qr_svg),
    })
}

/// Completes enrolment with a first valid code; TOTP is active from then on.
pub async fn confirm(
    db: &Db,
    keyring: &Keyring,
    client_id: ClientId,
    user_id: UserId,
    code: &str,
    now: DateTime<Utc>,
) -> Result<(), TotpError> {
    let step = check(db, keyring, client_id, user_id, code, now, false).await?;
    accept_step(
        db,
        "UPDATE users SET totp_enabled = TRUE, totp_last_step = $1 \
         WHERE id = $2 AND client_id = $3 AND totp_enabled = FALSE AND totp_secret IS NOT NULL",
        step,
        client_id,
        user_id,
    )
    .await
}

/// Checks a code of an enrolled user; each time step is accepted once.
pub async fn verify(
    db: &Db,
    keyring: &Keyring,
    client_id: ClientId,
    user_id: UserId,
    code: &str,
    now: DateTime<Utc>,
) -> Result<(), TotpError> {
    let step = check(db, keyring, client_id, user_id, code, now, true).await?;
    // Replay guard, atomic: only a step newer than the last accepted one moves it forward.
    accept_step(
        db,
        "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND client_id = $3 AND totp_enabled = TRUE \
         AND (totp_last_step IS NULL OR totp_last_step < $1)",
        step,
        client_id,
        user_id,
    )
    .await
}

/// Runs a conditional update binding ($1 step, $2 user, $3 client): accepted only if it changed the row.
async fn accept_step(db: &Db, sql: &str, step: i64, client_id: ClientId, user_id: UserId) -> Result<(), TotpError> {
    let n =
        on_pool!(db, |p| sqlx::query(sql).bind(step).bind(user_id).bind(client_id).execute(p).await?.rows_affected());
    if n == 1 {
        Ok(())
    } else {
        Err(CodeRejected.into())
    }
}

/// The time step `code` matches for the user's seed, or a rejection.
async fn check(
    db: &Db,
    keyring: &Keyring,
    client_id: ClientId,
    user_id: UserId,
    code: &str,
    now: DateTime<Utc>,
    enrolled: bool,
) -> Result<i64, TotpError> {
    let row: Option<(Option<Vec<u8>>, bool, EmailAddress)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT totp_secret, totp_enabled, email FROM users WHERE id = $1 AND client_id = $2"
    )
    .bind(user_id)
    .bind(client_id)
    .fetch_optional(p)
    .await?);
    let Some((Some(sealed), enabled, email)) = row else { return Err(TotpError::NotEnrolled) };
    if enabled != enrolled {
        return Err(if enrolled { TotpError::NotEnrolled } else { TotpError::AlreadyEnrolled });
    }
    let seed = envelope::open_user_secret(keyring, client_id, user_id, SECRET_NAME, &Envelope::from_bytes(&sealed)?)?;
    let t = totp(seed.expose_secret(), email.as_str())?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let step = t.check(&code, unix_seconds(now)).ok_or(CodeRejected)?;
    i64::try_from(step).map_err(|_| TotpError::Rejected(CodeRejected))
}

/// Removes the user's authenticator and recovery codes: they must enrol again at their next sign-in.
/// Returns whether an authenticator (active or pending) was removed.
pub async fn reset(db: &Db, client_id: ClientId, user_id: UserId) -> Result<bool, TotpError> {
    let removed = on_pool!(db, |p| {
        let mut tx = p.begin().await?;
        let n = sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_enabled = FALSE, totp_last_step = NULL \
             WHERE id = $1 AND client_id = $2 AND totp_secret IS NOT NULL",
        )
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        n
    });
    Ok(removed == 1)
}
