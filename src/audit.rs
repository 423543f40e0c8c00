//! The audit trail: what happened, who did it, to what, from where.
//!
//! This module only appends and reads: there is no update and no delete here, and the database refuses
//! them too (triggers, and on PostgreSQL revoked privileges, in the migrations); [`retention`] is the one
//! deleting path. Every capability records its events through [`append`], which links each event into its
//! client's hash chain ([`chain`]). Metadata passes through the secret scrubber before it is stored, so a
//! careless caller cannot write a secret into the permanent record.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{on_pool, AgentId, AuditEventId, ClientId, Db, DbError};
use crate::scrub;

pub mod chain;
pub mod config;
pub mod export;
pub mod live;
pub mod retention;
pub mod service;
pub mod settings;
pub mod siem;

use chain::{CanonicalEvent, Chain, ChainHash};

/// Largest metadata document we store, serialised. Bigger documents are refused, not truncated.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Largest `target` we store; longer targets are cut at a character boundary and marked.
pub const MAX_TARGET_CHARS: usize = 1024;

pub use crate::context::Actor;
pub use service::Audit;

/// An action name: `area.verb` in lower case (`agent.deployed`, `auth.code_sent`), at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionType(String);

impl ActionType {
    pub fn parse(s: &str) -> Result<Self, DbError> {
        let ok = (3..=64).contains(&s.len())
            && s.contains('.')
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(DbError::Invalid("an action type looks like `area.verb` in lower case".into()))
        }
    }

    /// An action name written in our own code; a malformed one is a programming error, caught by any test
    /// that records it.
    pub fn known(name: &'static str) -> Self {
        Self::parse(name).expect("action names in the code are valid")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event to record. `client_id` is `None` only for platform-level events that belong to no tenant.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub client_id: Option<ClientId>,
    pub agent_id: Option<AgentId>,
    pub actor: Actor,
    pub action: ActionType,
    pub target: Option<String>,
    pub metadata: Value,
    pub ip: Option<IpAddr>,
}

impl NewEvent {
    /// An event of `client_id` with no agent, target, metadata or address; fill in the rest with the builders.
    pub fn new(client_id: Option<ClientId>, actor: Actor, action: ActionType) -> Self {
        Self {
            client_id,
            agent_id: None,
            actor,
            action,
            target: None,
            metadata: Value::Object(Default::default()),
            ip: None,
        }
    }

    pub fn agent(mut self, agent_id: AgentId) -> Self {
        self.agent_id = Some(agent_id);
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Where the request came from: its address, and its user agent added to the metadata (so set the rest of
    /// the metadata first).
    pub fn request(mut self, ctx: &crate::context::RequestContext) -> Self {
        if let Some(m) = self.metadata.as_object_mut() {
            m.insert("user_agent".into(), serde_json::json!(ctx.user_agent));
        }
        self.ip = Some(ctx.ip);
        self
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub client_id: Option<ClientId>,
    pub agent_id: Option<AgentId>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action_type: String,
    pub target: Option<String>,
    pub metadata: Json<Value>,
    pub ip_address: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Position in its chain (the client's, or the platform's), from 1. `None` for rows written before the
    /// chain existed - and when a query leaves the chain columns out (select [`EVENT_COLUMNS`] to get them).
    #[sqlx(default)]
    pub seq: Option<i64>,
    /// Hash of the event before it in its chain (all zeros for the first).
    #[sqlx(default)]
    pub prev_hash: Option<ChainHash>,
    /// `SHA-256(canonical_event || prev_hash)`: see [`chain::CanonicalEvent`].
    #[sqlx(default)]
    pub hash: Option<ChainHash>,
}

/// The columns of [`AuditEvent`], in order, for `SELECT`s that read events.
pub const EVENT_COLUMNS: &str = "id, client_id, agent_id, actor_kind, actor_id, action_type, target, metadata, \
                                 ip_address, created_at, seq, prev_hash, hash";

impl AuditEvent {
    /// The chain this event belongs to.
    pub fn chain(&self) -> Chain {
        Chain::of(self.client_id)
    }

    /// What the event's hash covers; `None` for a row from before the chain.
    pub fn canonical(&self) -> Option<CanonicalEvent<'_>> {
        Some(CanonicalEvent {
            chain: self.chain(),
            seq: self.seq?,
            created_at: self.created_at,
            actor_kind: &self.actor_kind,
            actor_id: self.actor_id,
            agent_id: self.agent_id.map(|a| a.as_uuid()),
            action_type: &self.action_type,
            target: self.target.as_deref(),
            ip_address: self.ip_address.as_deref(),
            metadata: &self.metadata.0,
        })
    }
}

/// Appends one event to its chain and returns its id. Metadata must be a JSON object; secrets in it are scrubbed.
///
/// One transaction whose first statement moves the chain head (an upsert of `audit_chain_heads`): on
/// PostgreSQL that locks the head row, on SQLite it takes the write lock, so appends to one chain run one after
/// the other and each links to the one before; appends to different chains proceed in parallel on PostgreSQL.
pub async fn append(db: &Db, event: NewEvent) -> Result<AuditEventId, DbError> {
    let NewEvent { client_id, agent_id, actor, action, target, mut metadata, ip } = event;
    if !metadata.is_object() {
        return Err(DbError::Invalid("audit metadata must be a JSON object".into()));
    }
    scrub::scrub_json(&mut metadata);
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(DbError::Invalid("audit metadata is larger than 8 KiB".into()));
    }
    let target = target.map(|t| {
        let clean = scrub::scrub_text(&t).into_owned();
        match clean.char_indices().nth(MAX_TARGET_CHARS) {
            Some((cut, _)) => format!("{}…", &clean[..cut]),
            None => clean,
        }
    });
    let ip = ip.map(|ip| ip.to_string());
    let chain = Chain::of(client_id);
    let advance = "INSERT INTO audit_chain_heads (chain_id, seq, head) VALUES ($1, 1, $2) \
                   ON CONFLICT (chain_id) DO UPDATE SET seq = audit_chain_heads.seq + 1 RETURNING seq, head";
    let insert = "INSERT INTO audit_logs (client_id, agent_id, actor_kind, actor_id, action_type, target, metadata, \
                  ip_address, created_at, seq, prev_hash, hash) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";
    let set_head = "UPDATE audit_chain_heads SET head = $1 WHERE chain_id = $2";
    let id: i64 = on_pool!(db, |p| {
        let mut tx = p.begin().await?;
        let (seq, prev_hash): (i64, ChainHash) =
            sqlx::query_as(advance).bind(chain.key()).bind(ChainHash::GENESIS).fetch_one(&mut *tx).await?;
        // Taken under the head lock, so times follow chain order as far as the clock does.
        let now = crate::db::now();
        let hash = CanonicalEvent {
            chain,
            seq,
            created_at: now,
            actor_kind: actor.kind(),
            actor_id: actor.id(),
            agent_id: agent_id.map(|a| a.as_uuid()),
            action_type: action.as_str(),
            target: target.as_deref(),
            ip_address: ip.as_deref(),
            metadata: &metadata,
        }
        .hash(&prev_hash);
        let id = sqlx::query_scalar(insert)
            .bind(client_id)
            .bind(agent_id)
            .bind(actor.kind())
            .bind(actor.id())
            .bind(action.as_str())
            .bind(target.as_deref())
            .bind(Json(&metadata))
            .bind(ip.as_deref())
            .bind(now)
            .bind(seq)
            .bind(prev_hash)
            .bind(hash)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(set_head).bind(hash).bind(chain.key()).execute(&mut *tx).await?;
        tx.commit().await?;
        id
    });
    crate::db::notify::announce(db, client_id, AuditEventId(id));
    Ok(AuditEventId(id))
}

/// The most recent events of `client_id`, newest first, at most `limit` (capped at 500), older than
/// `before` when given (for paging).
pub async fn recent(
    db: &Db,
    client_id: ClientId,
    before: Option<AuditEventId>,
    limit: u32,
) -> Result<Vec<AuditEvent>, DbError> {
    let limit = i64::from(limit.clamp(1, 500));
    let before = before.map(|b| b.0).unwrap_or(i64::MAX);
    let sql =
        format!("SELECT {EVENT_COLUMNS} FROM audit_logs WHERE client_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, AuditEvent>(&sql)
        .bind(client_id)
        .bind(before)
        .bind(limit)
        .fetch_all(p)
        .await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_types_are_area_dot_verb() {
        assert!(ActionType::parse("agent.deployed").is_ok());
        assert!(ActionType::parse("auth.code_sent").is_ok());
        for bad in ["", "deployed", "Agent.Deployed", "agent deployed", ".x", &"a.".repeat(40)] {
            assert!(ActionType::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
