//! Online re-encryption of every credential to the current master key.
//!
//! Works in batches in id order. Each record is rewritten only if it still holds exactly the envelope that
//! was read (compare-and-swap on key version and nonce), so a credential replaced by its owner meanwhile is
//! left alone, and the server keeps serving throughout. All progress lives in the database itself, so a run
//! that is killed half way simply resumes: records already at the current version are not selected again.
//! Running it twice is harmless.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;

use super::envelope::{self, Binding};
use super::keyring::KeyVersion;
use super::{as_row, from_row, Vault, VaultError};
use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::db::credentials;
use crate::db::{ClientId, CredentialId};

/// Where a rotation run stands, reported after every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationProgress {
    pub converted: u64,
    /// Changed by someone else between read and write; they are at the current version already.
    pub skipped: u64,
    pub failed: u64,
    /// Records still below the target version when the batch finished.
    pub remaining: u64,
}

/// The outcome of a rotation run.
#[derive(Debug, Clone)]
pub struct RotationReport {
    pub target: KeyVersion,
    pub progress: RotationProgress,
    /// Records that could not be opened (their key version is not in the keyring, or they are corrupt).
    pub failures: Vec<(CredentialId, String)>,
}

/// Counts of stored credentials per key version, lowest version first.
pub async fn status(vault: &Vault) -> Result<Vec<(KeyVersion, u64)>, VaultError> {
    let counts = credentials::count_by_key_version(vault.db()).await?;
    Ok(counts.into_iter().map(|(v, n)| (KeyVersion(v as u32), n as u64)).collect())
}

/// Re-encrypts every credential below the current key version, `batch_size` at a time, pausing `throttle`
/// between batches (to spare a busy database). Calls `on_progress` after each batch.
pub async fn rotate(
    vault: &Vault,
    batch_size: u32,
    throttle: Duration,
    mut on_progress: impl FnMut(&RotationProgress),
) -> Result<RotationReport, VaultError> {
    let db = vault.db();
    let (target, _) = vault.keyring().current();
    let target_i32 = i32::try_from(target.0).expect("key versions fit in i32");
    let batch_size = batch_size.clamp(1, 10_000);
    let mut progress = RotationProgress::default();
    let mut failures = Vec::new();
    let mut per_client: BTreeMap<ClientId, u64> = BTreeMap::new();
    let mut after: Option<CredentialId> = None;

    audit::append(
        db,
        NewEvent::new(None, Actor::Platform, ActionType::parse("vault.rotation_started").expect("valid"))
            .metadata(json!({"target_version": target.0})),
    )
    .await?;

    loop {
        let batch = credentials::rotation_batch(db, target_i32, after, batch_size).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        for row in &batch {
            let binding = Binding { client_id: row.client_id, agent_id: row.agent_id, name: &row.name };
            let opened = from_row(row).and_then(|sealed| Ok(envelope::open(vault.keyring(), binding, &sealed)?));
            let plaintext = match opened {
                Ok(p) => p,
                Err(e) => {
                    progress.failed += 1;
                    failures.push((row.id, e.to_string()));
                    continue;
                }
            };
            let resealed = envelope::seal(vault.keyring(), binding, plaintext.expose_secret())?;
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
                progress.converted += 1;
                *per_client.entry(row.client_id).or_default() += 1;
            } else {
                progress.skipped += 1;
            }
        }
        progress.remaining = credentials::count_below_version(db, target_i32).await? as u64;
        on_progress(&progress);
        if !throttle.is_zero() {
            tokio::time::sleep(throttle).await;
        }
    }

    for (client_id, converted) in &per_client {
        audit::append(
            db,
            NewEvent::new(Some(*client_id), Actor::Platform, ActionType::parse("vault.rotated").expect("valid"))
                .metadata(json!({"target_version": target.0, "credentials": converted})),
        )
        .await?;
    }
    audit::append(
        db,
        NewEvent::new(None, Actor::Platform, ActionType::parse("vault.rotation_finished").expect("valid")).metadata(
            json!({"target_version": target.0, "converted": progress.converted, "skipped": progress.skipped, "failed": progress.failed}),
        ),
    )
    .await?;
    Ok(RotationReport { target, progress, failures })
}
