//! Who is acting and where the request came from: the few facts every capability records or checks, kept in
//! one leaf so that audit, vault, identity and agents share them without importing each other.

use std::net::IpAddr;

use serde::Serialize;
use uuid::Uuid;

use crate::db::{AgentId, ClientId, UserId};

/// Where a request came from, for throttling and the audit trail.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

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
    /// The kind as stored in the audit trail.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Agent(_) => "agent",
            Actor::Platform => "platform",
            Actor::Admin(_) => "admin",
        }
    }

    /// The acting user's or agent's id, if any.
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Actor::User(id) | Actor::Admin(id) => Some(id.as_uuid()),
            Actor::Agent(id) => Some(id.as_uuid()),
            Actor::Platform => None,
        }
    }
}

/// An actor acting within one client: the pair every tenant-scoped change takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    pub client_id: ClientId,
}
