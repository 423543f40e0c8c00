//! Online re-encryption of everything the vault has sealed to the current master key: agent credentials
//! (`agent_credentials`), then users' TOTP seeds (`users.totp_secret`, see [`totp_seeds`]).
//!
//! Works in batches in id order. Each record is rewritten only if it still holds exactly the envelope that
//! was read (compare-and-swap), so a credential replaced by its owner, or a seed re-enrolled, meanwhile is
//! left alone, and the server keeps serving throughout. All progress lives in the database itself, so a run
//! that is killed half way simply resumes: records already at the current version are not selected again.
//! Running it twice is harmless. Plaintexts exist only between opening and resealing one record; nothing
//! here logs, audits or returns them.

pub mod totp_seeds;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{as_row, from_row, Vault, VaultError};
use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::db::credentials;
use crate::db::{ClientId, CredentialId, UserId};
use crate::keys::envelope::{self, Binding};
use crate::keys::keyring::KeyVersion;

/// How far a rotation run has come with one kind of record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationCounts {
    pub converted: u64,
    /// Changed by someone else between read and write; they are at the current version already.
    pub skipped: u64,
    pub failed: u64,
    /// Records still below the target version when the last batch finished.
    pub remaining: u64,
}

impl RotationCounts {
    fn audit(&self) -> Value {
        json!({"converted": self.converted, "skipped": self.skipped, "failed": self.failed})
    }
}

/// Where a rotation run stands, reported after every batch. The top-level counts are agent credentials,
/// which are rotated first (see [`RotationProgress::credentials`]); `totp_seeds` follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationProgress {
    pub converted: u64,
    /// Changed by someone else between read and write; they are at the current version already.
    pub skipped: u64,
    pub failed: u64,
    /// Credentials still below the target version when the last batch finished.
    pub remaining: u64,
    /// Users' TOTP seeds.
    pub totp_seeds: RotationCounts,
}

impl RotationProgress {
    /// The agent credential counts, in the same shape as `totp_seeds`.
    pub fn credentials(&self) -> RotationCounts {
        RotationCounts {
            converted: self.converted,
            skipped: self.skipped,
            failed: self.failed,
            remaining: self.remaining,
        }
    }
}

/// A record rotation could not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedRecord {
    Credential(CredentialId),
    TotpSeed(UserId),
}

impl fmt::Display for SealedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Credential(id) => write!(f, "credential {id}"),
            Self::TotpSeed(user) => write!(f, "TOTP seed of user {user}"),
        }
    }
}

/// The outcome of a rotation run.
#[derive(Debug, Clone)]
pub struct RotationReport {
    pub target: KeyVersion,
    pub progress: RotationProgress,
    /// Records that could not be opened (their key version is not in the keyring, or they are corrupt).
    pub failures: Vec<(SealedRecord, String)>,
}

/// Counts of stored credentials per key version, lowest version first.
pub async fn status(vault: &Vault) -> Result<Vec<(KeyVersion, u64)>, VaultError> {
    let counts = credentials::count_by_key_version(vault.db()).await?;
    Ok(counts.into_iter().map(|(v, n)| (KeyVersion(v as u32), n as u64)).collect())
}

/// Re-encrypts every credential and TOTP seed below the current key version, `batch_size` at a time,
/// pausing `throttle` between batches (to spare a busy database). Calls `on_progress` after each batch.
pub async fn rotate(
    vault: &Vault,
    batch_size: u32,
    throttle: Duration,
    on_progress: impl FnMut(&RotationProgress),
) -> Result<RotationReport, VaultError> {
    let db = vault.db();
    let (target, _) = vault.keyring().current();
    let mut run = Run {
        vault,
        target,
        batch_size: batch_size.clamp(1, 10_000),
        throttle,
        on_progress,
        progress: RotationProgress::default(),
        failures: Vec::new(),
        per_client: BTreeMap::new(),
    };
    run.progress.remaining = credentials::count_below_version(db, run.target_i32()).await? as u64;
    run.progress.totp_seeds.remaining = totp_seeds::count_below(db, target).await? as u64;

    audit::append(
        db,
        NewEvent::new(None, Actor::Platform, ActionType::known("vault.rotation_started"))
            .metadata(json!({"target_version": target.0})),
    )
    .await?;
    run.credentials().await?;
    run.totp_seeds().await?;

    for (client_id, converted) in &run.per_client {
        audit::append(
            db,
            NewEvent::new(Some(*client_id), Actor::Platform, ActionType::known("vault.rotated")).metadata(json!({
                "target_version": target.0,
                "credentials": converted.credentials,
                "totp_seeds": converted.totp_seeds,
            })),
        )
        .await?;
    }
    let progress = run.progress;
    audit::append(
        db,
        NewEvent::new(None, Actor::Platform, ActionType::known("vault.rotation_finished")).metadata(json!({
            "target_version": target.0,
            "credentials": progress.credentials().audit(),
            "totp_seeds": progress.totp_seeds.audit(),
        })),
    )
    .await?;
    Ok(RotationReport { target, progress, failures: run.failures })
}

/// Records converted for one client, for its `vault.rotated` event.
#[derive(Debug, Default)]
struct Converted {
    credentials: u64,
    totp_seeds: u64,
}

/// The state of one rotation run, shared by its phases.
struct Run<'a, F> {
    vault: &'a Vault,
    target: KeyVersion,
    batch_size: u32,
    throttle: Duration,
    on_progress: F,
    progress: RotationProgress,
    failures: Vec<(SealedRecord, String)>,
    per_client: BTreeMap<ClientId, Converted>,
}

impl<F: FnMut(&RotationProgress)> Run<'_, F> {
    fn target_i32(&self) -> i32 {
        i32::try_from(self.target.0).expect("key versions fit in i32")
    }

    /// Reports a finished batch, then pauses.
    async fn batch_done(&mut self) {
        (self.on_progress)(&self.progress);
        if !self.throttle.is_zero() {
            tokio::time::sleep(self.throttle).await;
        }
    }

    async fn credentials(&mut self) -> Result<(), VaultError> {
        let db = self.vault.db();
        let keyring = self.vault.keyring();
        let target = self.target_i32();
        let mut after: Option<CredentialId> = None;
        loop {
            let batch = credentials::rotation_batch(db, target, after, self.batch_size).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            for row in &batch {
                let binding = Binding { client_id: row.client_id, agent_id: row.agent_id, name: &row.name };
                let opened = from_row(row).and_then(|sealed| Ok(envelope::open(keyring, binding, &sealed)?));
                let plaintext = match opened {
                    Ok(p) => p,
                    Err(e) => {
                        self.progress.failed += 1;
                        self.failures.push((SealedRecord::Credential(row.id), e.to_string()));
                        continue;
                    }
                };
                let resealed = envelope::seal(keyring, binding, plaintext.expose_secret())?;
                drop(plaintext);
                let swapped = credentials::replace_envelope(
                    db,
                    row.client_id,
                    row.id,
                    (row.key_version, &row.nonce),
                    as_row(&resealed),
                )
                .await?;
                if swapped {
                    self.progress.converted += 1;
                    self.per_client.entry(row.client_id).or_default().credentials += 1;
                } else {
                    self.progress.skipped += 1;
                }
            }
            self.progress.remaining = credentials::count_below_version(db, target).await? as u64;
            self.batch_done().await;
        }
        Ok(())
    }
}
