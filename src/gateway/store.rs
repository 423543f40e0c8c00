//! The gateway's few queries on the `agents` table: an agent's permissions and gateway token hash, always
//! scoped by its client.

use sqlx::types::Json;

use super::permissions::Permissions;
use crate::db::{on_pool, AgentId, ClientId, Db, DbError};

/// What the proxy needs to know about an agent on each connection.
#[derive(Debug, Clone)]
pub struct Identity {
    pub permissions: Permissions,
    /// SHA-256 of its current gateway token; `None` before its first deploy.
    pub token_hash: Option<Vec<u8>>,
}

impl Identity {
    /// Whether `presented` is the agent's current gateway token: SHA-256 compared in constant time; never true
    /// before its first deploy or without a token.
    pub fn token_matches(&self, presented: Option<&str>) -> bool {
        super::token::matches(self.token_hash.as_deref(), presented)
    }
}

pub async fn identity(db: &Db, client_id: ClientId, id: AgentId) -> Result<Identity, DbError> {
    let sql = "SELECT permissions, gateway_token_hash FROM agents WHERE id = $1 AND client_id = $2";
    let (permissions, token_hash): (Json<serde_json::Value>, Option<Vec<u8>>) =
        on_pool!(db, |p| sqlx::query_as(sql).bind(id).bind(client_id).fetch_one(p).await?);
    Ok(Identity { permissions: Permissions::from_stored(&permissions.0), token_hash })
}

/// Stores an agent's permissions document; `NotFound` for another client's agent.
pub async fn set_permissions(db: &Db, client_id: ClientId, id: AgentId, p: &Permissions) -> Result<(), DbError> {
    let sql = "UPDATE agents SET permissions = $1, updated_at = $2 WHERE id = $3 AND client_id = $4";
    let done = on_pool!(db, |p_| sqlx::query(sql)
        .bind(Json(p.to_stored()))
        .bind(crate::db::now())
        .bind(id)
        .bind(client_id)
        .execute(p_)
        .await?
        .rows_affected());
    if done == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Every agent, of every client, that has a network (`(client, agent, network block)`): the proxy listens for
/// each at server start.
pub async fn with_networks(db: &Db) -> Result<Vec<(ClientId, AgentId, i32)>, DbError> {
    let sql = "SELECT client_id, id, network_block FROM agents WHERE network_block IS NOT NULL ORDER BY network_block";
    Ok(on_pool!(db, |p| sqlx::query_as(sql).fetch_all(p).await?))
}

/// Counts one use of `scope` by the agent, unless that passes `max_per_hour` or `max_per_day`: the use is
/// recorded first and counted with the others, and taken back when over, so concurrent uses (also from other
/// server processes) can only be refused too many, never admitted too many. `Ok(None)` when admitted, else
/// which limit was hit.
pub async fn take_rate(
    db: &Db,
    client_id: ClientId,
    agent_id: AgentId,
    scope: &str,
    max_per_hour: u32,
    max_per_day: u32,
) -> Result<Option<RateWindow>, DbError> {
    let now = crate::db::now();
    let (hour_ago, day_ago) = (now - chrono::Duration::hours(1), now - chrono::Duration::days(1));
    let insert =
        "INSERT INTO gateway_rate_events (agent_id, client_id, scope, at) VALUES ($1, $2, $3, $4) RETURNING id";
    let count = "SELECT COUNT(*) FILTER (WHERE at > $3), COUNT(*) FROM gateway_rate_events \
                 WHERE agent_id = $1 AND scope = $2 AND at > $4";
    let id: i64 = on_pool!(db, |p| sqlx::query_scalar(insert)
        .bind(agent_id)
        .bind(client_id)
        .bind(scope)
        .bind(now)
        .fetch_one(p)
        .await?);
    let (hour, day): (i64, i64) = on_pool!(db, |p| sqlx::query_as(count)
        .bind(agent_id)
        .bind(scope)
        .bind(hour_ago)
        .bind(day_ago)
        .fetch_one(p)
        .await?);
    let over = if day > i64::from(max_per_day) {
        Some(RateWindow::Day)
    } else if hour > i64::from(max_per_hour) {
        Some(RateWindow::Hour)
    } else {
        None
    };
    if over.is_some() {
        let delete = "DELETE FROM gateway_rate_events WHERE id = $1";
        on_pool!(db, |p| sqlx::query(delete).bind(id).execute(p).await?.rows_affected());
    }
    Ok(over)
}

/// Which window a refused use was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateWindow {
    Hour,
    Day,
}

/// Deletes counted uses older than a day (they no longer count toward any window); returns how many.
pub async fn prune_rate_events(db: &Db) -> Result<u64, DbError> {
    let cutoff = crate::db::now() - chrono::Duration::days(1);
    Ok(on_pool!(db, |p| sqlx::query("DELETE FROM gateway_rate_events WHERE at <= $1")
        .bind(cutoff)
        .execute(p)
        .await?
        .rows_affected()))
}
