//! Storage of agent credentials as sealed envelopes. This module never sees a plaintext: the vault seals
//! before [`put`] and opens after [`get`]. Listing returns names and times only.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AgentId, ClientId, CredentialId, Db, DbError};

/// What the vault stores for one credential: an AES-256-GCM envelope.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedCredential {
    pub id: CredentialId,
    pub client_id: ClientId,
    pub agent_id: AgentId,
    pub name: String,
    pub key_version: i32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for SealedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCredential")
            .field("id", &self.id)
            .field("agent_id", &self.agent_id)
            .field("name", &self.name)
            .field("key_version", &self.key_version)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// A credential as the dashboard may see it: no value, sealed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CredentialSummary {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An envelope to store: key version, 12-byte nonce, ciphertext with its 16-byte tag.
#[derive(Clone)]
pub struct Envelope<'a> {
    pub key_version: i32,
    pub nonce: &'a [u8],
    pub ciphertext: &'a [u8],
}

const COLUMNS: &str = "id, client_id, agent_id, name, key_version, nonce, ciphertext, created_at, updated_at";

/// Stores (or replaces) credential `name` of agent `agent_id` of `client_id`. `NotFound` when the agent
/// is not one of the client's: the insert selects the agent under the tenant, so no row can ever point
/// at another tenant's agent.
pub async fn put(
    db: &Db,
    client_id: ClientId,
    agent_id: AgentId,
    name: &str,
    envelope: Envelope<'_>,
) -> Result<SealedCredential, DbError> {
    let sql = format!(
        "INSERT INTO agent_credentials (id, client_id, agent_id, name, key_version, nonce, ciphertext, created_at, updated_at) \
         SELECT $1, a.client_id, a.id, $2, $3, $4, $5, $6, $6 FROM agents a WHERE a.id = $7 AND a.client_id = $8 \
         ON CONFLICT (agent_id, name) DO UPDATE SET key_version = excluded.key_version, nonce = excluded.nonce, \
         ciphertext = excluded.ciphertext, updated_at = excluded.updated_at \
         RETURNING {COLUMNS}"
    );
    let now = super::now();
    let id = CredentialId::new();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, SealedCredential>(&sql)
        .bind(id)
        .bind(name)
        .bind(envelope.key_version)
        .bind(envelope.nonce)
        .bind(envelope.ciphertext)
        .bind(now)
        .bind(agent_id)
        .bind(client_id)
        .fetch_one(p)
        .await?))
}

/// The sealed credential `name` of an agent of `client_id`.
pub async fn get(db: &Db, client_id: ClientId, agent_id: AgentId, name: &str) -> Result<SealedCredential, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM agent_credentials WHERE client_id = $1 AND agent_id = $2 AND name = $3");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, SealedCredential>(&sql)
        .bind(client_id)
        .bind(agent_id)
        .bind(name)
        .fetch_one(p)
        .await?))
}

/// Names and times of the credentials of an agent of `client_id`; `NotFound` for another client's agent.
pub async fn list(db: &Db, client_id: ClientId, agent_id: AgentId) -> Result<Vec<CredentialSummary>, DbError> {
    super::agents::get(db, client_id, agent_id).await?;
    let sql = "SELECT name, created_at, updated_at FROM agent_credentials \
               WHERE client_id = $1 AND agent_id = $2 ORDER BY name";
    Ok(on_pool!(db, |p| sqlx::query_as::<_, CredentialSummary>(sql)
        .bind(client_id)
        .bind(agent_id)
        .fetch_all(p)
        .await?))
}

/// Removes credential `name` of an agent of `client_id`; `NotFound` when there is none.
pub async fn delete(db: &Db, client_id: ClientId, agent_id: AgentId, name: &str) -> Result<(), DbError> {
    let done = on_pool!(db, |p| sqlx::query(
        "DELETE FROM agent_credentials WHERE client_id = $1 AND agent_id = $2 AND name = $3"
    )
    .bind(client_id)
    .bind(agent_id)
    .bind(name)
    .execute(p)
    .await?
    .rows_affected());
    match done {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

/// Rotation only: the next `limit` sealed credentials of all tenants below key version `below`, after
/// `after` in id order. The one query here that is not tenant-scoped, because re-encryption is a platform
/// operation; it returns envelopes, never plaintexts.
pub async fn rotation_batch(
    db: &Db,
    below: i32,
    after: Option<CredentialId>,
    limit: u32,
) -> Result<Vec<SealedCredential>, DbError> {
    let after = after.unwrap_or_else(|| CredentialId::from(uuid::Uuid::nil()));
    let sql =
        format!("SELECT {COLUMNS} FROM agent_credentials WHERE key_version < $1 AND id > $2 ORDER BY id LIMIT $3");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, SealedCredential>(&sql)
        .bind(below)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await?))
}

/// Rotation only: swaps the envelope of one credential if it still holds `expected` (key version, nonce).
/// Returns false when it changed in between. Leaves `updated_at` alone: the owner did not set anything.
pub async fn replace_envelope(
    db: &Db,
    client_id: ClientId,
    id: CredentialId,
    expected: (i32, &[u8]),
    envelope: Envelope<'_>,
) -> Result<bool, DbError> {
    let sql = "UPDATE agent_credentials SET key_version = $1, nonce = $2, ciphertext = $3 \
               WHERE id = $4 AND client_id = $5 AND key_version = $6 AND nonce = $7";
    let n = on_pool!(db, |p| sqlx::query(sql)
        .bind(envelope.key_version)
        .bind(envelope.nonce)
        .bind(envelope.ciphertext)
        .bind(id)
        .bind(client_id)
        .bind(expected.0)
        .bind(expected.1)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// How many credentials (all tenants) are sealed below key version `below`.
pub async fn count_below_version(db: &Db, below: i32) -> Result<i64, DbError> {
    let sql = "SELECT COUNT(*) FROM agent_credentials WHERE key_version < $1";
    Ok(on_pool!(db, |p| sqlx::query_scalar::<_, i64>(sql).bind(below).fetch_one(p).await?))
}

/// Credential counts per key version (all tenants), lowest first.
pub async fn count_by_key_version(db: &Db) -> Result<Vec<(i32, i64)>, DbError> {
    let sql = "SELECT key_version, COUNT(*) FROM agent_credentials GROUP BY key_version ORDER BY key_version";
    Ok(on_pool!(db, |p| sqlx::query_as::<_, (i32, i64)>(sql).fetch_all(p).await?))
}
