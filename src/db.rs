//! The database layer: one [`Db`] handle over SQLite (embedded default) or PostgreSQL (production).
//!
//! Every query is written once, in SQL both backends accept (`$1` placeholders, `RETURNING`, `ON CONFLICT`),
//! and [`on_pool!`] compiles it for each backend. Schemas differ only where the dialects must, in
//! `migrations/sqlite` and `migrations/postgres`. Tenant data is only reachable through functions that take
//! the tenant's [`ClientId`] as a typed argument: there is no "get by id" that skips the tenant.

/// Runs `$body` with `$pool` bound to the backend's concrete pool; the same tokens compile once per backend.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db.pool() {
            $crate::db::pool::Pool::Sqlite($pool) => $body,
            $crate::db::pool::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

pub mod config;
pub mod error;
mod ids;
pub mod notify;
pub mod pool;
pub(crate) mod text_enum;

pub mod agents;
pub mod clients;
pub mod credentials;
pub mod users;

pub use error::DbError;
pub use ids::{AgentId, AuditEventId, ClientId, CredentialId, UserId};
pub use pool::{Backend, Db, MigrationStatus};

/// The current time, truncated to microseconds so that what we store is exactly what we read back on
/// both backends (PostgreSQL keeps microseconds).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{SubsecRound, Utc};
    Utc::now().trunc_subsecs(6)
}
