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
