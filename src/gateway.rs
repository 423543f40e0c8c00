//! The platform's gateway between agents and the outside world: what each agent may do
//! ([`permissions`]) and the egress proxy that enforces it ([`proxy`]). Agents never get a route out of
//! their own network except through here (DESIGN.md invariant 8).
//!
//! Model calls go through the same listener: [`llm`] injects the provider key from the vault and counts each
//! call's cost against the agent's daily spend cap.
//!
//! The host itself is walled off from agent networks except for the gateway port by
//! [`crate::runtime::firewall`]. Rate limits are counted in the database, so they hold across restarts and
//! server processes. See docs/gateway.md.

pub mod config;
pub mod llm;
pub mod permissions;
pub mod pricing;
pub mod proxy;
mod store;
pub mod token;

pub use llm::{LlmGateway, LlmSettings, Provider};
pub use permissions::{
    DomainPattern, HostName, MicroUsd, Permissions, PermissionsError, PermissionsInput, RateLimit, Scope,
};
pub use proxy::{EgressProxy, ProxySettings};

/// Stores an agent's permissions (for `Agents::update_permissions`, which audits it).
pub(crate) async fn store_permissions(
    db: &crate::db::Db,
    client_id: crate::db::ClientId,
    id: crate::db::AgentId,
    permissions: &Permissions,
) -> Result<(), crate::db::DbError> {
    store::set_permissions(db, client_id, id, permissions).await
}

/// Deletes counted gateway uses older than a day (run hourly by the server); returns how many.
pub async fn prune_rate_events(db: &crate::db::Db) -> Result<u64, crate::db::DbError> {
    store::prune_rate_events(db).await
}
