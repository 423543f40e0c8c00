//! Clients (tenants): a company or a person. A client's own id is its tenant scope.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::text_enum::text_enum;
use super::{ClientId, Db, DbError};
use crate::email::EmailAddress;

text_enum!(
    /// Whether a client may use the platform.
    ClientStatus {
        Active = "active",
        /// Suspended by an operator: agents stopped, sign-in blocked, reason shown to the customer.
        Suspended = "suspended",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub email: EmailAddress,
    pub plan: String,
    pub status: ClientStatus,
    pub suspended_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A client as signed up: display name and contact address.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: ClientName,
    pub email: EmailAddress,
}

/// A client's display name: 1-200 printable characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(String);

impl ClientName {
    pub fn parse(input: &str) -> Result<Self, DbError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(DbError::Invalid("enter a name".into()));
        }
        if s.chars().count() > 200 {
            return Err(DbError::Invalid("a name is at most 200 characters".into()));
        }
        if s.chars().any(char::is_control) {
            return Err(DbError::Invalid("a name cannot contain control characters".into()));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const COLUMNS: &str = "id, name, email, plan, status, suspended_reason, created_at, updated_at";

pub async fn create(db: &Db, new: NewClient) -> Result<Client, DbError> {
    let now = super::now();
    let sql = format!(
        "INSERT INTO clients (id, name, email, plan, status, created_at, updated_at) \
         VALUES ($1, $2, $3, 'trial', 'active', $4, $4) RETURNING {COLUMNS}"
    );
    let id = ClientId::new();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Client>(&sql)
        .bind(id)
        .bind(new.name.as_str())
        .bind(&new.email)
        .bind(now)
        .fetch_one(p)
        .await?))
}

/// The client itself; `NotFound` when it does not exist.
pub async fn get(db: &Db, id: ClientId) -> Result<Client, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM clients WHERE id = $1");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Client>(&sql).bind(id).fetch_one(p).await?))
}

/// Creates a client and its first user (role `owner`) atomically: both or neither.
pub async fn create_with_owner(db: &Db, new: NewClient) -> Result<(Client, super::users::User), DbError> {
    use super::users::{Role, User};
    let now = super::now();
    let client_sql = format!(
        "INSERT INTO clients (id, name, email, plan, status, created_at, updated_at) \
         VALUES ($1, $2, $3, 'trial', 'active', $4, $4) RETURNING {COLUMNS}"
    );
    let user_sql = format!(
        "INSERT INTO users (id, client_id, email, role, totp_enabled, created_at) \
         VALUES ($1, $2, $3, $4, FALSE, $5) RETURNING {}",
        super::users::COLUMNS
    );
    let (client_id, user_id) = (ClientId::new(), super::UserId::new());
    Ok(on_pool!(db, |p| {
        let mut tx = p.begin().await?;
        let client = sqlx::query_as::<_, Client>(&client_sql)
            .bind(client_id)
            .bind(new.name.as_str())
            .bind(&new.email)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let owner = sqlx::query_as::<_, User>(&user_sql)
            .bind(user_id)
            .bind(client_id)
            .bind(&new.email)
            .bind(Role::Owner)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        (client, owner)
    }))
}

/// Every client, newest first, with how many users it has: for platform operators only (the admin console
/// checks the caller's role before calling this).
pub async fn list_all_for_operators(db: &Db, limit: u32) -> Result<Vec<(Client, i64)>, DbError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        client: Client,
        users: i64,
    }
    let sql = format!(
        "SELECT {COLUMNS}, (SELECT COUNT(*) FROM users u WHERE u.client_id = clients.id) AS users \
         FROM clients ORDER BY created_at DESC LIMIT $1"
    );
    let limit = i64::from(limit.clamp(1, 1000));
    let rows: Vec<Row> = on_pool!(db, |p| sqlx::query_as::<_, Row>(&sql).bind(limit).fetch_all(p).await?);
    Ok(rows.into_iter().map(|r| (r.client, r.users)).collect())
}

/// Every client with its user count, agent count, running agent count and today's model spend: for platform
/// operators only (the caller is checked to be an operator before this is called).
pub async fn overview_for_operators(db: &Db, limit: u32) -> Result<Vec<Overview>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS}, \
         (SELECT COUNT(*) FROM users u WHERE u.client_id = clients.id) AS users, \
         (SELECT COUNT(*) FROM agents a WHERE a.client_id = clients.id) AS agents, \
         (SELECT COUNT(*) FROM agents a WHERE a.client_id = clients.id AND a.status IN ('running', 'starting', 'provisioning')) AS running, \
         (SELECT CAST(COALESCE(SUM(s.spent_micro_usd), 0) AS BIGINT) FROM agent_spend s WHERE s.client_id = clients.id AND s.day = $2) AS spent_today \
         FROM clients ORDER BY created_at DESC LIMIT $1"
    );
    let limit = i64::from(limit.clamp(1, 1000));
    let today = chrono::Utc::now().date_naive();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Overview>(&sql).bind(limit).bind(today).fetch_all(p).await?))
}

/// One client in the operators' list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Overview {
    #[sqlx(flatten)]
    pub client: Client,
    pub users: i64,
    pub agents: i64,
    pub running: i64,
    pub spent_today: i64,
}

/// Sets a client's status and the reason the customer is shown (`None` clears it). `NotFound` for an
/// unknown client.
pub async fn set_status(db: &Db, id: ClientId, status: ClientStatus, reason: Option<&str>) -> Result<Client, DbError> {
    let sql = format!(
        "UPDATE clients SET status = $1, suspended_reason = $2, updated_at = $3 WHERE id = $4 RETURNING {COLUMNS}"
    );
    Ok(on_pool!(db, |p| sqlx::query_as::<_, Client>(&sql)
        .bind(status)
        .bind(reason)
        .bind(super::now())
        .bind(id)
        .fetch_one(p)
        .await?))
}
