//! The audit trail: what happened, who did it, to what, from where.
//!
//! This module only appends and reads: there is no update and no delete here, and the database refuses
//! them too (triggers in the migrations). Every capability records its events through [`append`].
//! Metadata passes through the secret scrubber before it is stored, so a careless caller cannot write a
//! secret into the permanent record.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{on_pool, AgentId, AuditEventId, ClientId, Db, DbError, UserId};
use crate::scrub;

pub mod chain;
pub mod export;
pub mod siem;

/// Largest metadata document we store, serialised. Bigger documents are refused, not truncated.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Largest `target` we store; longer targets are cut at a character boundary and marked.
pub const MAX_TARGET_CHARS: usize = 1024;

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Actor {
    /// A customer's dashboard user.
    User(UserId),
    /// An agent, through the gateway.
    Agent(AgentId),
    /// The platform itself (reconciler, billing webhook, retention job).
    Platform,
    /// A platform operator acting on a tenant; shown in that tenant's own audit view.
    Admin(UserId),
}

impl Actor {
    fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Agent(_) => "agent",
            Actor::Platform => "platform",
            Actor::Admin(_) => "admin",
        }
    }

    fn id(&self) -> Option<Uuid> {
        match self {
            Actor::User(id) | Actor::Admin(id) => Some(id.as_uuid()),
            Actor::Agent(id) => Some(id.as_uuid()),
            Actor::Platform => None,
        }
    }
}

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
    pub fn request(mut self, ctx: &crate::identity::sign_in::RequestContext) -> Self {
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
}

/// Appends one event and returns its id. Metadata must be a JSON object; secrets in it are scrubbed.
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
    let sql = "INSERT INTO audit_logs (client_id, agent_id, actor_kind, actor_id, action_type, target, metadata, ip_address, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
    let now = crate::db::now();
    let id: i64 = on_pool!(db, |p| sqlx::query_scalar(sql)
        .bind(client_id)
        .bind(agent_id)
        .bind(actor.kind())
        .bind(actor.id())
        .bind(action.as_str())
        .bind(target.as_deref())
        .bind(Json(&metadata))
        .bind(ip.map(|ip| ip.to_string()))
        .bind(now)
        .fetch_one(p)
        .await?);
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
        "SELECT id, client_id, agent_id, actor_kind, actor_id, action_type, target, metadata, ip_address, created_at \
               FROM audit_logs WHERE client_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
    Ok(on_pool!(db, |p| sqlx::query_as::<_, AuditEvent>(sql)
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
