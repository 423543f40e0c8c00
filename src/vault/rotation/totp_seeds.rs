//! Rotation of users' TOTP seeds: `users.totp_secret`, a packed envelope ([`Envelope::to_bytes`]) sealed
//! for (client, user, `totp`) by `identity::totp`.
//!
//! Design: no migration and no `key_version` column. The packed form starts with a format byte and the key
//! version in big-endian, so envelopes compare byte-wise in the order of their versions, and
//! `substr(totp_secret, 1, 5) < <header of the target version>` selects exactly the seeds below it on both
//! backends (SQLite compares BLOBs, PostgreSQL `bytea`, with memcmp). The version therefore cannot drift
//! from the envelope, and nothing has to change where `identity::totp` writes seeds. The filter only picks
//! candidates: each one is parsed and opened here. Malformed bytes that sort below the target's header (a
//! format byte 0, say) are reported as failures, and [`status`] counts every seed that is not format 1. The
//! swap compares the whole old value, so a seed replaced meanwhile (re-enrolment) is left alone.
//!
//! These queries live here rather than in `db::users` because only rotation reads seeds across tenants.
//! They return sealed bytes, never a seed, and a seed is never logged or audited.

use secrecy::ExposeSecret;

use super::{RotationProgress, Run, SealedRecord};
use crate::db::{on_pool, ClientId, Db, DbError, UserId};
use crate::keys::envelope::{self, Envelope};
use crate::keys::keyring::KeyVersion;
use crate::vault::{Vault, VaultError};

/// The name the seed is sealed under; `identity::totp` seals with the same one.
const SECRET_NAME: &str = "totp";

/// One user's sealed seed.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedSeed {
    pub user_id: UserId,
    pub client_id: ClientId,
    /// The packed envelope exactly as stored: the compare-and-swap expects these bytes.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSeed")
            .field("user_id", &self.user_id)
            .field("key_version", &Envelope::packed_key_version(&self.sealed))
            .finish_non_exhaustive()
    }
}

/// Stored seeds per key version, lowest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedStatus {
    pub by_version: Vec<(KeyVersion, u64)>,
    /// Seeds whose bytes are not a packed envelope of a known format.
    pub unreadable: u64,
}

/// Counts of stored TOTP seeds per key version.
pub async fn status(vault: &Vault) -> Result<SeedStatus, VaultError> {
    let mut status = SeedStatus::default();
    for (header, count) in count_by_header(vault.db()).await? {
        match Envelope::packed_key_version(&header) {
            Some(version) => status.by_version.push((version, count as u64)),
            None => status.unreadable += count as u64,
        }
    }
    Ok(status)
}

/// Seed counts per packed header (format byte and key version), all tenants.
async fn count_by_header(db: &Db) -> Result<Vec<(Vec<u8>, i64)>, DbError> {
    let sql = "SELECT substr(totp_secret, 1, 5) AS header, COUNT(*) FROM users \
               WHERE totp_secret IS NOT NULL GROUP BY header ORDER BY header";
    Ok(on_pool!(db, |p| sqlx::query_as::<_, (Vec<u8>, i64)>(sql).fetch_all(p).await?))
}

/// Rotation only: the next `limit` seeds of all tenants sealed below key version `below`, after `after` in
/// user id order.
pub async fn batch(db: &Db, below: KeyVersion, after: Option<UserId>, limit: u32) -> Result<Vec<SealedSeed>, DbError> {
    let after = after.unwrap_or_else(|| UserId::from(uuid::Uuid::nil()));
    let sql = "SELECT id AS user_id, client_id, totp_secret AS sealed FROM users \
               WHERE totp_secret IS NOT NULL AND substr(totp_secret, 1, 5) < $1 AND id > $2 ORDER BY id LIMIT $3";
    let below = Envelope::packed_header(below);
    Ok(on_pool!(db, |p| sqlx::query_as::<_, SealedSeed>(sql)
        .bind(&below[..])
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await?))
}

/// Rotation only: stores `sealed` as the user's seed if the column still holds exactly `expected`.
/// Returns false when it changed in between. Leaves the enrolment state and replay guard alone: the seed
/// itself is unchanged.
pub async fn replace(
    db: &Db,
    client_id: ClientId,
    user_id: UserId,
    expected: &[u8],
    sealed: &[u8],
) -> Result<bool, DbError> {
    let sql = "UPDATE users SET totp_secret = $1 WHERE id = $2 AND client_id = $3 AND totp_secret = $4";
    let n = on_pool!(db, |p| sqlx::query(sql)
        .bind(sealed)
        .bind(user_id)
        .bind(client_id)
        .bind(expected)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// How many seeds (all tenants) are sealed below key version `below`.
pub async fn count_below(db: &Db, below: KeyVersion) -> Result<i64, DbError> {
    let sql = "SELECT COUNT(*) FROM users WHERE totp_secret IS NOT NULL AND substr(totp_secret, 1, 5) < $1";
    let below = Envelope::packed_header(below);
    Ok(on_pool!(db, |p| sqlx::query_scalar::<_, i64>(sql).bind(&below[..]).fetch_one(p).await?))
}

impl<F: FnMut(&RotationProgress)> Run<'_, F> {
    /// The TOTP seed phase of a run.
    pub(super) async fn totp_seeds(&mut self) -> Result<(), VaultError> {
        let db = self.vault.db();
        let keyring = self.vault.keyring();
        let mut after: Option<UserId> = None;
        loop {
            let batch = batch(db, self.target, after, self.batch_size).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.user_id);
            for row in &batch {
                let opened = Envelope::from_bytes(&row.sealed).and_then(|sealed| {
                    envelope::open_user_secret(keyring, row.client_id, row.user_id, SECRET_NAME, &sealed)
                });
                let seed = match opened {
                    Ok(seed) => seed,
                    Err(e) => {
                        self.progress.totp_seeds.failed += 1;
                        self.failures.push((SealedRecord::TotpSeed(row.user_id), e.to_string()));
                        continue;
                    }
                };
                let resealed =
                    envelope::seal_user_secret(keyring, row.client_id, row.user_id, SECRET_NAME, seed.expose_secret())?
                        .to_bytes();
                drop(seed);
                if replace(db, row.client_id, row.user_id, &row.sealed, &resealed).await? {
                    self.progress.totp_seeds.converted += 1;
                    self.per_client.entry(row.client_id).or_default().totp_seeds += 1;
                } else {
                    self.progress.totp_seeds.skipped += 1;
                }
            }
            self.progress.totp_seeds.remaining = count_below(db, self.target).await? as u64;
            self.batch_done().await;
        }
        Ok(())
    }
}
