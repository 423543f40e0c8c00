//! Recovery codes: ten single-use codes, shown once, for a user who lost their authenticator.
//!
//! Each code is 10 characters from a 31-symbol alphabet without look-alikes (49 bits), displayed as
//! `XXXXX-XXXXX`. Only argon2id hashes are stored; hashing and checking run in the bounded [`ArgonPool`], never
//! on the async executor (a burst that finds the pool full is told to retry). A new set replaces the old one.

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::argon::{ArgonError, ArgonPool};
use super::codes::CodeRejected;
use crate::db::{on_pool, ClientId, Db, DbError, UserId};

/// Codes in a set.
pub const RECOVERY_CODES: usize = 10;
/// Letters used: no 0/O, 1/I/L, so a code read aloud or copied by hand survives.
/// The argon2id cost of the stored hashes: the `argon2` crate's defaults, which `Argon2::default()` applies.
pub const HASH_MEMORY_KIB: u32 = argon2::Params::DEFAULT_M_COST;
/// argon2id passes over memory.
pub const HASH_ITERATIONS: u32 = argon2::Params::DEFAULT_T_COST;
/// argon2id lanes.
pub const HASH_LANES: u32 = argon2::Params::DEFAULT_P_COST;
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const CODE_CHARS: usize = 10;

/// A recovery code to show the user once.
pub struct RecoveryCode(SecretString);

impl RecoveryCode {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Rejected(#[from] CodeRejected),
    #[error(transparent)]
    Db(#[from] DbError),
    /// The hashing pool is full: try again in a moment.
    #[error(transparent)]
    Busy(ArgonError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl From<ArgonError> for RecoveryError {
    fn from(e: ArgonError) -> Self {
        match e {
            ArgonError::Busy => Self::Busy(e),
            ArgonError::Failed(detail) => Self::Hash(detail),
        }
    }
}

impl From<sqlx::Error> for RecoveryError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

fn new_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let raw: String = (0..CODE_CHARS).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("{}-{}", &raw[..5], &raw[5..])
}

/// Upper-case, without spaces and hyphens: what the user typed, compared the way it was hashed.
fn normalise(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect()
}

/// Replaces the user's recovery codes with a fresh set and returns it (to show once).
pub async fn generate(
    db: &Db,
    argon: &ArgonPool,
    client_id: ClientId,
    user_id: UserId,
) -> Result<Vec<RecoveryCode>, RecoveryError> {
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_code()).collect();
    let normalised = codes.iter().map(|c| Zeroizing::new(normalise(c).into_bytes())).collect();
    let hashes = argon.hash_all(normalised).await?;
    let now = crate::db::now();
    on_pool!(db, |p| {
        let mut tx = p.begin().await?;
        // Scoped by client and user: only the user's own set is replaced.
        let owner: Option<i64> =
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM users WHERE id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
        if owner.is_none() {
            return Err(DbError::NotFound.into());
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        for hash in &hashes {
            sqlx::query("INSERT INTO recovery_codes (id, client_id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(uuid::Uuid::now_v7())
                .bind(client_id)
                .bind(user_id)
                .bind(hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    });
    Ok(codes.into_iter().map(|c| RecoveryCode(SecretString::from(c))).collect())
}

/// Uses one of the user's unused codes. Returns how many remain.
pub async fn redeem(
    db: &Db,
    argon: &ArgonPool,
    client_id: ClientId,
    user_id: UserId,
    input: &str,
) -> Result<usize, RecoveryError> {
    let candidate = normalise(input);
    if candidate.len() != CODE_CHARS || !candidate.bytes().all(|b| ALPHABET.contains(&b)) {
        return Err(CodeRejected.into());
    }
    let unused: Vec<(uuid::Uuid, String)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT id, code_hash FROM recovery_codes WHERE user_id = $1 AND client_id = $2 AND used_at IS NULL"
    )
    .bind(user_id)
    .bind(client_id)
    .fetch_all(p)
    .await?);
    let total = unused.len();
    let (ids, hashes): (Vec<uuid::Uuid>, Vec<String>) = unused.into_iter().unzip();
    let matched = argon.first_match(Zeroizing::new(candidate.into_bytes()), hashes).await?.map(|i| ids[i]);
    let Some(id) = matched else { return Err(CodeRejected.into()) };
    let now = crate::db::now();
    let used =
        on_pool!(db, |p| sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected());
    if used == 1 {
        Ok(total - 1)
    } else {
        Err(CodeRejected.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_formatted_and_normalise_back() {
        let c = new_code();
        assert_eq!(c.len(), 11);
        assert_eq!(&c[5..6], "-");
        assert!(normalise(&c).bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(normalise(" ab2cd-ef3gh "), "AB2CDEF3GH");
        assert_eq!(ALPHABET.len(), 31);
        assert!(!ALPHABET.iter().any(|b| b"01ILO".contains(b)), "no look-alikes");
    }
}
