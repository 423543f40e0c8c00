//! Agents: deployed OpenClaw instances, each owned by one client.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use super::text_enum::text_enum;
use super::{AgentId, ClientId, Db, DbError};

text_enum!(
    /// Where an agent is in its lifecycle.
    AgentStatus {
        Provisioning = "provisioning",
        Starting = "starting",
        Running = "running",
        Stopping = "stopping",
        Stopped = "stopped",
        Error = "error",
        Deleting = "deleting",
    }
);

/// An agent's name: a DNS label (lower-case letters, digits, hyphens; 1-63; starts with a letter), so it can
/// appear in hostnames and container labels unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentName(String);

impl AgentName {
    pub fn parse(input: &str) -> Result<Self, DbError> {
        let s = input.trim();
        let valid = (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(DbError::Invalid(
                "an agent name uses a-z, 0-9 and '-', starts with a letter, and is at most 63 characters".into(),
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Agent {
    pub id: AgentId,
    pub client_id: ClientId,
    pub name: String,
    pub status: AgentStatus,
    pub template: String,
    pub container_id: Option<String>,
    pub config: Json<Value>,
    pub permissions: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Its /28 in the agent network pool, once deployed.
    pub network_block: Option<i32>,
    /// Why it is in `error` (or what it is doing), shown to the customer.
    pub status_reason: Option<String>,
    /// How often the reconciler restarted it after it exited.
    pub restart_count: i32,
    /// When its recent exits were counted (within the reconciler's crash window), oldest first.
    pub recent_crashes: Json<Vec<DateTime<Utc>>>,
    /// The runtime's FinishedAt of the last exit counted, so one exit is never counted twice.
    pub last_exit_counted: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: AgentName,
    pub template: String,
    pub config: Value,
    pub permissions: Value,
}

const COLUMNS: &str = "id, client_id, name, status, template, container_id, config, permissions, created_at, \
                       updated_at, network_block, status_reason, restart_count, recent_crashes, last_exit_counted";

/// Records a new agent for `client_id` in `provisioning`. `Conflict` if the client already has one by that name.
pub async fn create(db: &Db, client_id: ClientId, new: NewAgent) -> Result<Agent, DbError> {
    insert(db, client_id, new, AgentStatus::Provisioning).await
}

async fn insert(db: &Db, client_id: ClientId, new: NewAgent, status: AgentStatus) -> Result<Agent, DbError> {
    let sql = format!(
        "INSERT INTO agents (id, client_id, name, status, template, config, permissions, created_at, updated_at) \
         VALUES ($1, $2, $3, $8, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    );
    let id = AgentId::new();
    let now = super::now();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql)
        .bind(id)
        .bind(client_id)
        .bind(new.name.as_str())
        .bind(&new.template)
        .bind(Json(&new.config))
        .bind(Json(&new.permissions))
        .bind(now)
        .bind(status)
        .fetch_one(p)
        .await?))
}

/// Records a new agent for `client_id` that is configured but not deployed yet: `stopped`, no container.
/// `Conflict` if the client already has one by that name.
pub async fn create_configured(db: &Db, client_id: ClientId, new: NewAgent) -> Result<Agent, DbError> {
    insert(db, client_id, new, AgentStatus::Stopped).await
}

/// One agent of `client_id`; `NotFound` for another client's agent.
pub async fn get(db: &Db, client_id: ClientId, id: AgentId) -> Result<Agent, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE id = $1 AND client_id = $2");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql).bind(id).bind(client_id).fetch_one(p).await?))
}

/// The agents of `client_id`, oldest first.
pub async fn list(db: &Db, client_id: ClientId) -> Result<Vec<Agent>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE client_id = $1 ORDER BY created_at, id");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql).bind(client_id).fetch_all(p).await?))
}

/// Moves an agent of `client_id` to `status`; `NotFound` for another client's agent.
pub async fn set_status(db: &Db, client_id: ClientId, id: AgentId, status: AgentStatus) -> Result<Agent, DbError> {
    let sql =
        format!("UPDATE agents SET status = $1, updated_at = $2 WHERE id = $3 AND client_id = $4 RETURNING {COLUMNS}");
    let now = super::now();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql)
        .bind(status)
        .bind(now)
        .bind(id)
        .bind(client_id)
        .fetch_one(p)
        .await?))
}

/// Removes an agent of `client_id` and its credentials; `NotFound` for another client's agent.
pub async fn delete(db: &Db, client_id: ClientId, id: AgentId) -> Result<(), DbError> {
    let done = on_pool!(db, |p| sqlx::query("DELETE FROM agents WHERE id = $1 AND client_id = $2")
        .bind(id)
        .bind(client_id)
        .execute(p)
        .await?
        .rows_affected());
    match done {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

/// Every network block held by an agent (of any client): what a new block must not be.
pub async fn used_network_blocks(db: &Db) -> Result<Vec<u32>, DbError> {
    let used: Vec<i32> = on_pool!(db, |p| sqlx::query_scalar(
        "SELECT network_block FROM agents WHERE network_block IS NOT NULL ORDER BY network_block"
    )
    .fetch_all(p)
    .await?);
    Ok(used.into_iter().filter_map(|b| u32::try_from(b).ok()).collect())
}

/// Gives the agent's block back (the runtime refused its subnet as taken), if it still holds `block`.
pub async fn release_network_block(db: &Db, client_id: ClientId, id: AgentId, block: u32) -> Result<(), DbError> {
    let block = i32::try_from(block).map_err(|_| DbError::Invalid("network block out of range".into()))?;
    on_pool!(db, |p| sqlx::query(
        "UPDATE agents SET network_block = NULL WHERE id = $1 AND client_id = $2 AND network_block = $3"
    )
    .bind(id)
    .bind(client_id)
    .bind(block)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// Claims `block` for the agent if it has none yet, atomically: `false` when another agent's claim of the same
/// block won (the unique index refuses the second) or the agent already holds a block. The caller re-reads the
/// agent and decides again; which block to ask for is its choice, not the repository's.
pub async fn claim_network_block(db: &Db, client_id: ClientId, id: AgentId, block: u32) -> Result<bool, DbError> {
    let block = i32::try_from(block).map_err(|_| DbError::Invalid("network block out of range".into()))?;
    let claimed = on_pool!(db, |p| sqlx::query(
        "UPDATE agents SET network_block = $1 WHERE id = $2 AND client_id = $3 AND network_block IS NULL"
    )
    .bind(block)
    .bind(id)
    .bind(client_id)
    .execute(p)
    .await
    .map(|r| r.rows_affected()));
    match claimed {
        Ok(n) => Ok(n == 1),
        Err(e) => match DbError::from(e) {
            DbError::Conflict(_) => Ok(false),
            other => Err(other),
        },
    }
}

/// Records what the runtime did: status, container, reason, and (when deploying) the gateway token's hash.
pub async fn set_runtime_state(
    db: &Db,
    client_id: ClientId,
    id: AgentId,
    status: AgentStatus,
    container_id: Option<&str>,
    reason: Option<&str>,
    gateway_token_hash: Option<&[u8]>,
) -> Result<Agent, DbError> {
    let sql = format!(
        "UPDATE agents SET status = $1, container_id = $2, status_reason = $3, \
         gateway_token_hash = COALESCE($4, gateway_token_hash), updated_at = $5 \
         WHERE id = $6 AND client_id = $7 RETURNING {COLUMNS}"
    );
    let now = super::now();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql)
        .bind(status)
        .bind(container_id)
        .bind(reason)
        .bind(gateway_token_hash)
        .bind(now)
        .bind(id)
        .bind(client_id)
        .fetch_one(p)
        .await?))
}

/// Every agent, of every client, that should be running (`provisioning`, `starting` or `running`): for the reconciler
/// only, which acts for the platform and keeps each agent within its own client's records.
pub async fn desired_running(db: &Db) -> Result<Vec<Agent>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM agents WHERE status IN ('provisioning', 'starting', 'running') ORDER BY created_at, id"
    );
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql).fetch_all(p).await?))
}

/// Every agent, of every client, caught between two states by a platform restart (`stopping`, `deleting`): for
/// the reconciler only, which finishes the job.
pub async fn in_transition(db: &Db) -> Result<Vec<Agent>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE status IN ('stopping', 'deleting') ORDER BY created_at, id");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql).fetch_all(p).await?))
}

/// Records an exit the reconciler counted: the crash times now in its window, the runtime's FinishedAt of this
/// exit, and the state and reason the customer sees.
pub async fn record_crash(
    db: &Db,
    agent: &Agent,
    crashes: &[DateTime<Utc>],
    exit: &str,
    status: AgentStatus,
    reason: &str,
) -> Result<Agent, DbError> {
    let sql = format!(
        "UPDATE agents SET recent_crashes = $1, last_exit_counted = $2, status = $3, status_reason = $4, \
         updated_at = $5 WHERE id = $6 AND client_id = $7 RETURNING {COLUMNS}"
    );
    let now = super::now();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql)
        .bind(Json(crashes))
        .bind(exit)
        .bind(status)
        .bind(reason)
        .bind(now)
        .bind(agent.id)
        .bind(agent.client_id)
        .fetch_one(p)
        .await?))
}

/// Records that the reconciler started the agent again: one more restart, now `starting`.
pub async fn record_restart(db: &Db, agent: &Agent, reason: &str) -> Result<Agent, DbError> {
    let sql = format!(
        "UPDATE agents SET restart_count = restart_count + 1, status = 'starting', status_reason = $1, \
         updated_at = $2 WHERE id = $3 AND client_id = $4 RETURNING {COLUMNS}"
    );
    let now = super::now();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql)
        .bind(reason)
        .bind(now)
        .bind(agent.id)
        .bind(agent.client_id)
        .fetch_one(p)
        .await?))
}

/// Forgets the agent's recent crashes (a customer deployed it again: a fresh start deserves a fresh window).
pub async fn clear_crashes(db: &Db, client_id: ClientId, id: AgentId) -> Result<(), DbError> {
    on_pool!(db, |p| sqlx::query("UPDATE agents SET recent_crashes = $1 WHERE id = $2 AND client_id = $3")
        .bind(Json(Vec::<DateTime<Utc>>::new()))
        .bind(id)
        .bind(client_id)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Stores an agent's settings document (validated by the caller); `NotFound` for another client's agent.
pub async fn set_config(db: &Db, client_id: ClientId, id: AgentId, config: &Value) -> Result<Agent, DbError> {
    let sql =
        format!("UPDATE agents SET config = $1, updated_at = $2 WHERE id = $3 AND client_id = $4 RETURNING {COLUMNS}");
    let now = super::now();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Agent>(&sql)
        .bind(Json(config))
        .bind(now)
        .bind(id)
        .bind(client_id)
        .fetch_one(p)
        .await?))
}

/// Whether an agent with this id exists (any client): for the reconciler's orphan report only.
pub async fn exists_any_client(db: &Db, id: AgentId) -> Result<bool, DbError> {
    let n: i64 =
        on_pool!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE id = $1").bind(id).fetch_one(p).await?);
    Ok(n > 0)
}
