//! One-time sign-in codes: 6 digits from the OS CSPRNG, valid 10 minutes (configurable, never above 15),
//! stored only as a keyed hash, compared in constant time, at most 5 tries, single use; a new code for an
//! address replaces the previous one (the database holds at most one live code per address).
//!
//! Every failure is the same [`CodeRejected`]: callers cannot tell (and so cannot reveal) whether the code
//! was wrong, expired, used up, superseded, or never sent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::db::{on_pool, Db, DbError};
use crate::email::EmailAddress;
use crate::keys::keyring::Keyring;

/// Default validity (OWASP ASVS 5.0 6.5.5 caps out-of-band codes at 10 minutes).
pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);
/// The shortest validity configuration may choose.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// The longest validity configuration may choose.
pub const MAX_TTL: Duration = Duration::from_secs(15 * 60);
/// Tries per code; the fifth wrong one uses it up.
pub const MAX_ATTEMPTS: i32 = 5;
/// Digits in a code.
pub const CODE_DIGITS: usize = 6;
/// HKDF salt for the code-hashing key, derived from the current vault master key.
const MAC_KEY_SALT: &[u8] = b"deployclaw/identity/code-mac/v1";

/// A freshly issued code, to be sent and then forgotten. Never logged, never stored in clear.
pub struct OneTimeCode(SecretString);

impl OneTimeCode {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeCode([redacted])")
    }
}

/// The only failure a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("that code is not valid; request a new one")]
pub struct CodeRejected;

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error(transparent)]
    Rejected(#[from] CodeRejected),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CodeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Issues and checks sign-in codes.
#[derive(Clone)]
pub struct SignInCodes {
    db: Db,
    mac_key: std::sync::Arc<Zeroizing<[u8; 32]>>,
    ttl: Duration,
}

impl std::fmt::Debug for SignInCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInCodes").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl SignInCodes {
    /// `ttl` is clamped to [`MAX_TTL`]. The hashing key is derived from the keyring's current master key, so
    /// codes outstanding when the master key changes stop working (they live minutes).
    pub fn new(db: Db, keyring: &Keyring, ttl: Duration) -> Self {
        let (_, master) = keyring.current();
        let hk = hkdf::Hkdf::<Sha256>::new(Some(MAC_KEY_SALT), master.expose());
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(b"", key.as_mut()).expect("32 bytes is a valid HKDF-SHA256 output length");
        Self { db, mac_key: std::sync::Arc::new(key), ttl: ttl.min(MAX_TTL) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self, email: &EmailAddress, code: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key[..]).expect("any key length");
        mac.update(email.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        mac
    }

    /// Creates a code for `email`, superseding any earlier one. The caller sends it and drops it.
    pub async fn issue(&self, email: &EmailAddress, now: DateTime<Utc>) -> Result<OneTimeCode, DbError> {
        let code = Zeroizing::new(format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32)));
        let hash = self.mac(email, &code).finalize().into_bytes().to_vec();
        let expires = now + chrono::Duration::from_std(self.ttl).expect("ttl fits");
        let id = uuid::Uuid::now_v7();
        // One statement: the address's live code, if any, is replaced (a unique index allows one live code per
        // address), so parallel requests leave exactly one code that works - the last one written.
        on_pool!(self.db, |p| sqlx::query(
            "INSERT INTO sign_in_codes (id, email, code_hash, attempts, created_at, expires_at) \
             VALUES ($1, $2, $3, 0, $4, $5) \
             ON CONFLICT (email) WHERE consumed_at IS NULL DO UPDATE SET id = excluded.id, \
             code_hash = excluded.code_hash, attempts = 0, created_at = excluded.created_at, \
             expires_at = excluded.expires_at"
        )
        .bind(id)
        .bind(email)
        .bind(&hash)
        .bind(now)
        .bind(expires)
        .execute(p)
        .await?
        .rows_affected());
        Ok(OneTimeCode(SecretString::from(code.as_str())))
    }

    /// Accepts `code` for `email` once, if it is the address's current code, unexpired, within its tries.
    pub async fn verify(&self, email: &EmailAddress, code: &str, now: DateTime<Utc>) -> Result<(), CodeError> {
        let latest: Option<(uuid::Uuid, Vec<u8>, DateTime<Utc>)> = on_pool!(self.db, |p| sqlx::query_as(
            "SELECT id, code_hash, expires_at FROM sign_in_codes WHERE email = $1 AND consumed_at IS NULL \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        )
        .bind(email)
        .fetch_optional(p)
        .await?);
        let Some((id, stored, expires_at)) = latest else { return Err(CodeRejected.into()) };
        if now >= expires_at {
            return Err(CodeRejected.into());
        }
        // Count the try first, atomically: parallel guesses cannot exceed the limit.
        let attempts: Option<i32> = on_pool!(self.db, |p| sqlx::query_scalar(
            "UPDATE sign_in_codes SET attempts = attempts + 1 \
             WHERE id = $1 AND attempts < $2 AND consumed_at IS NULL RETURNING attempts"
        )
        .bind(id)
        .bind(MAX_ATTEMPTS)
        .fetch_optional(p)
        .await?);
        let Some(attempts) = attempts else { return Err(CodeRejected.into()) };

        let well_formed = code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit());
        // verify_slice compares in constant time.
        let matches = well_formed && self.mac(email, code).verify_slice(&stored).is_ok();
        if !matches {
            if attempts >= MAX_ATTEMPTS {
                self.consume(id, now).await?;
            }
            return Err(CodeRejected.into());
        }
        // Single use, even against a concurrent verify of the same code.
        if self.consume(id, now).await? {
            Ok(())
        } else {
            Err(CodeRejected.into())
        }
    }

    async fn consume(&self, id: uuid::Uuid, now: DateTime<Utc>) -> Result<bool, CodeError> {
        let n = on_pool!(self.db, |p| sqlx::query(
            "UPDATE sign_in_codes SET consumed_at = $1 WHERE id = $2 AND consumed_at IS NULL"
        )
        .bind(now)
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }
}
