//! The credential vault: provider keys, OAuth tokens and passwords of agents, sealed at rest.
//!
//! Owns the envelope format ([`envelope`]), the master keyring ([`keyring`]), online rotation ([`rotation`])
//! and the credential operations. A plaintext exists only inside [`Vault::put`] (on its way in) and as the
//! [`SecretSlice`] that [`Vault::decrypt`] returns to the one caller that injects it or calls a provider with
//! it; it is zeroized when dropped. Every decryption is recorded in the client's audit trail before the
//! plaintext is handed out. Nothing here returns a value to the dashboard: listing yields names and times.

pub mod rotation;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretSlice};
use serde_json::json;

use crate::audit::{self, ActionType, Actor, NewEvent};
use crate::db::credentials::{self, CredentialSummary};
use crate::db::{AgentId, ClientId, Db, DbError};
use crate::keys::envelope::{self, Binding, Envelope, EnvelopeError};
use crate::keys::keyring::{KeyVersion, Keyring};

/// Largest secret we store (an OAuth token bundle fits comfortably).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;
/// Longest credential name.
pub const MAX_NAME_CHARS: usize = 64;

/// A credential's name: lower-case letters, digits, `_`, `-` and `.`, starting with a letter, at most 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialName(String);

impl CredentialName {
    pub fn parse(input: &str) -> Result<Self, VaultError> {
        let s = input.trim();
        let ok = (1..=MAX_NAME_CHARS).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(VaultError::Invalid(
                "a credential name uses a-z, 0-9, '_', '-' and '.', starts with a letter, and is at most 64 characters"
                    .into(),
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a credential is being decrypted. There are exactly two legitimate reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptPurpose {
    /// Injected into the agent's container at start.
    InjectIntoAgent,
    /// Used by the gateway to call a provider on the agent's behalf.
    ProviderCall { provider: String },
}

impl DecryptPurpose {
    fn describe(&self) -> serde_json::Value {
        match self {
            Self::InjectIntoAgent => json!({"purpose": "inject_into_agent"}),
            Self::ProviderCall { provider } => json!({"purpose": "provider_call", "provider": provider}),
        }
    }
}

use crate::identity::fresh::FreshTwoFactor;

/// The vault's refusal when a proof was made for another client.
fn proof_covers(proof: &FreshTwoFactor, client_id: ClientId) -> Result<(), VaultError> {
    if proof.covers(client_id) {
        Ok(())
    } else {
        Err(VaultError::Invalid("the second-factor check was made for another account".into()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0}")]
    Invalid(Cow<'static, str>),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Db(DbError),
}

impl From<DbError> for VaultError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => Self::NotFound,
            DbError::Invalid(m) => Self::Invalid(m),
            other => Self::Db(other),
        }
    }
}

/// The vault service. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    db: Db,
    keyring: Arc<Keyring>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("keyring", &self.keyring).finish()
    }
}

impl Vault {
    pub fn new(db: Db, keyring: Keyring) -> Self {
        Self { db, keyring: Arc::new(keyring) }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Stores (or replaces) credential `name` of an agent of `client_id`, sealed under the current key.
    #[allow(clippy::too_many_arguments)]
    pub async fn put(
        &self,
        actor: Actor,
        client_id: ClientId,
        agent_id: AgentId,
        name: &CredentialName,
        value: SecretSlice<u8>,
        proof: &FreshTwoFactor,
        ip: Option<IpAddr>,
    ) -> Result<CredentialSummary, VaultError> {
        proof_covers(proof, client_id)?;
        let plaintext = value.expose_secret();
        if plaintext.is_empty() {
            return Err(VaultError::Invalid("the credential value is empty".into()));
        }
        if plaintext.len() > MAX_SECRET_BYTES {
            return Err(VaultError::Invalid("a credential value is at most 16 KiB".into()));
        }
        let binding = Binding { client_id, agent_id, name: name.as_str() };
        let sealed = envelope::seal(&self.keyring, binding, plaintext)?;
        drop(value);
        let stored = match credentials::put(&self.db, client_id, agent_id, name.as_str(), as_row(&sealed)).await {
            Err(DbError::NotFound) => {
                self.record_not_found(actor, client_id, agent_id, name, "set", ip).await?;
                return Err(VaultError::NotFound);
            }
            other => other?,
        };
        let replaced = stored.created_at != stored.updated_at;
        let mut event = NewEvent::new(
            Some(client_id),
            actor,
            ActionType::known(if replaced { "credential.replaced" } else { "credential.added" }),
        )
        .agent(agent_id)
        .target(name.as_str())
        .metadata(json!({"name": name.as_str(), "key_version": sealed.key_version.0}));
        if let Some(ip) = ip {
            event = event.ip(ip);
        }
        audit::append(&self.db, event).await?;
        Ok(CredentialSummary { name: stored.name, created_at: stored.created_at, updated_at: stored.updated_at })
    }

    /// Deletes credential `name` of an agent of `client_id`.
    pub async fn delete(
        &self,
        actor: Actor,
        client_id: ClientId,
        agent_id: AgentId,
        name: &CredentialName,
        proof: &FreshTwoFactor,
        ip: Option<IpAddr>,
    ) -> Result<(), VaultError> {
        proof_covers(proof, client_id)?;
        match credentials::delete(&self.db, client_id, agent_id, name.as_str()).await {
            Err(DbError::NotFound) => {
                self.record_not_found(actor, client_id, agent_id, name, "delete", ip).await?;
                Err(VaultError::NotFound)
            }
            Err(e) => Err(e.into()),
            Ok(()) => {
                let mut event = NewEvent::new(Some(client_id), actor, ActionType::known("credential.deleted"))
                    .agent(agent_id)
                    .target(name.as_str())
                    .metadata(json!({"name": name.as_str()}));
                if let Some(ip) = ip {
                    event = event.ip(ip);
                }
                audit::append(&self.db, event).await?;
                Ok(())
            }
        }
    }

    /// Names and times of an agent's credentials. Never values.
    pub async fn list(&self, client_id: ClientId, agent_id: AgentId) -> Result<Vec<CredentialSummary>, VaultError> {
        Ok(credentials::list(&self.db, client_id, agent_id).await?)
    }

    /// The one way to a plaintext: opens credential `name` of an agent of `client_id` for `purpose`, after
    /// recording the decryption in the client's audit trail. A failed decryption is recorded too.
    pub async fn decrypt(
        &self,
        actor: Actor,
        client_id: ClientId,
        agent_id: AgentId,
        name: &CredentialName,
        purpose: DecryptPurpose,
    ) -> Result<SecretSlice<u8>, VaultError> {
        let row = match credentials::get(&self.db, client_id, agent_id, name.as_str()).await {
            Err(DbError::NotFound) => {
                self.record_not_found(actor, client_id, agent_id, name, "decrypt", None).await?;
                return Err(VaultError::NotFound);
            }
            other => other?,
        };
        let sealed = from_row(&row)?;
        let binding = Binding { client_id, agent_id, name: name.as_str() };
        let mut metadata = purpose.describe();
        metadata["name"] = json!(name.as_str());
        metadata["key_version"] = json!(sealed.key_version.0);
        match envelope::open(&self.keyring, binding, &sealed) {
            Ok(plaintext) => {
                let event = NewEvent::new(Some(client_id), actor, ActionType::known("credential.decrypted"))
                    .agent(agent_id)
                    .target(name.as_str())
                    .metadata(metadata);
                // Audit first: if the record cannot be written, the plaintext is dropped (zeroized) unused.
                audit::append(&self.db, event).await?;
                Ok(plaintext)
            }
            Err(e) => {
                metadata["error"] = json!(e.to_string());
                let event = NewEvent::new(Some(client_id), actor, ActionType::known("credential.decrypt_failed"))
                    .agent(agent_id)
                    .target(name.as_str())
                    .metadata(metadata);
                audit::append(&self.db, event).await?;
                Err(e.into())
            }
        }
    }

    /// A reference to something missing - or to another tenant's record, which looks the same - is recorded
    /// in the caller's own audit trail.
    async fn record_not_found(
        &self,
        actor: Actor,
        client_id: ClientId,
        agent_id: AgentId,
        name: &CredentialName,
        operation: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), VaultError> {
        let mut event = NewEvent::new(Some(client_id), actor, ActionType::known("credential.not_found"))
            .target(name.as_str())
            .metadata(json!({"name": name.as_str(), "agent_id": agent_id.to_string(), "operation": operation}));
        if let Some(ip) = ip {
            event = event.ip(ip);
        }
        audit::append(&self.db, event).await?;
        Ok(())
    }
}

pub(crate) fn as_row(e: &Envelope) -> credentials::Envelope<'_> {
    credentials::Envelope {
        key_version: i32::try_from(e.key_version.0).expect("key versions fit in i32"),
        nonce: &e.nonce,
        ciphertext: &e.ciphertext,
    }
}

pub(crate) fn from_row(row: &credentials::SealedCredential) -> Result<Envelope, VaultError> {
    let nonce = row.nonce.as_slice().try_into().map_err(|_| VaultError::Envelope(EnvelopeError::Unauthentic))?;
    let version = u32::try_from(row.key_version).map_err(|_| VaultError::Envelope(EnvelopeError::Unauthentic))?;
    Ok(Envelope { key_version: KeyVersion(version), nonce, ciphertext: row.ciphertext.clone() })
}
