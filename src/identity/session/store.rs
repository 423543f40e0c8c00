//! The tower-sessions store, on our database (SQLite or PostgreSQL), plus the per-user queries behind the
//! "active sessions" page.
//!
//! Only SHA-256 of a session id is stored: whoever reads the table cannot turn it into cookies. A save never
//! recreates a deleted row, so a session revoked while one of its requests was in flight stays revoked.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};
use uuid::Uuid;

use super::{SessionAuth, SESSION_KEY};
use crate::db::{on_pool, ClientId, Db, DbError, UserId};

/// Names one session on the sessions page (not the secret id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionHandle(pub Uuid);

/// One active session of a user, as the sessions page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveSession {
    pub handle: SessionHandle,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The session this list was asked from.
    pub current: bool,
}

/// How many fresh ids `create` tries before giving up (a collision of 128-bit random ids is not expected).
const CREATE_ATTEMPTS: usize = 3;

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
}

fn id_hash(id: &Id) -> Vec<u8> {
    Sha256::digest(id.0.to_le_bytes()).to_vec()
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn to_time(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The columns copied out of the session data.
struct Columns {
    data: String,
    client_id: Option<ClientId>,
    user_id: Option<UserId>,
    ip: Option<String>,
    user_agent: Option<String>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

fn columns(record: &Record) -> session_store::Result<Columns> {
    let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    let auth: Option<SessionAuth> = match record.data.get(SESSION_KEY) {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| session_store::Error::Encode(e.to_string()))?),
        None => None,
    };
    let user = auth.as_ref().and_then(|a| a.stage.user());
    Ok(Columns {
        data,
        client_id: user.map(|u| u.0),
        user_id: user.map(|u| u.1),
        ip: auth.as_ref().map(|a| a.ip.to_string()),
        user_agent: auth.as_ref().and_then(|a| a.user_agent.clone()),
        last_seen_at: auth.as_ref().map(|a| a.last_seen_at).unwrap_or_else(crate::db::now),
        expires_at: to_chrono(record.expiry_date),
    })
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Deletes expired sessions; returns how many.
    pub async fn prune(&self) -> Result<u64, DbError> {
        let now = crate::db::now();
        Ok(on_pool!(self.db, |p| sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// The handle of the session with this id, if it exists.
    pub async fn handle_of(&self, id: &Id) -> Result<Option<SessionHandle>, DbError> {
        let hash = id_hash(id);
        let handle: Option<Uuid> =
            on_pool!(self.db, |p| sqlx::query_scalar("SELECT handle FROM sessions WHERE id_hash = $1")
                .bind(&hash)
                .fetch_optional(p)
                .await?);
        Ok(handle.map(SessionHandle))
    }

    /// The user's unexpired sessions, most recently used first; `current` marks the asking session.
    pub async fn list_for_user(
        &self,
        client_id: ClientId,
        user_id: UserId,
        current: Option<&Id>,
    ) -> Result<Vec<ActiveSession>, DbError> {
        let now = crate::db::now();
        let current = current.map(id_hash);
        type Row = (Vec<u8>, Uuid, Option<String>, Option<String>, DateTime<Utc>, DateTime<Utc>);
        let rows: Vec<Row> = on_pool!(self.db, |p| sqlx::query_as(
            "SELECT id_hash, handle, ip, user_agent, created_at, last_seen_at FROM sessions \
             WHERE client_id = $1 AND user_id = $2 AND expires_at > $3 ORDER BY last_seen_at DESC, created_at DESC"
        )
        .bind(client_id)
        .bind(user_id)
        .bind(now)
        .fetch_all(p)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(hash, handle, ip, user_agent, created_at, last_seen_at)| ActiveSession {
                handle: SessionHandle(handle),
                ip,
                user_agent,
                created_at,
                last_seen_at,
                current: current.as_deref() == Some(hash.as_slice()),
            })
            .collect())
    }

    /// Ends one of the user's sessions. `NotFound` when the handle is not one of theirs.
    pub async fn revoke(&self, client_id: ClientId, user_id: UserId, handle: SessionHandle) -> Result<(), DbError> {
        let n = on_pool!(self.db, |p| sqlx::query(
            "DELETE FROM sessions WHERE handle = $1 AND client_id = $2 AND user_id = $3"
        )
        .bind(handle.0)
        .bind(client_id)
        .bind(user_id)
        .execute(p)
        .await?
        .rows_affected());
        if n == 1 {
            Ok(())
        } else {
            Err(DbError::NotFound)
        }
    }

    /// Ends every session of the user, pending sign-ins included; returns how many.
    pub async fn revoke_all(&self, client_id: ClientId, user_id: UserId) -> Result<u64, DbError> {
        Ok(on_pool!(self.db, |p| sqlx::query("DELETE FROM sessions WHERE client_id = $1 AND user_id = $2")
            .bind(client_id)
            .bind(user_id)
            .execute(p)
            .await?
            .rows_affected()))
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            let c = columns(record)?;
            let hash = id_hash(&record.id);
            let now = crate::db::now();
            let inserted = on_pool!(self.db, |p| sqlx::query(
                "INSERT INTO sessions (id_hash, handle, client_id, user_id, data, ip, user_agent, created_at, \
                 last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (id_hash) DO NOTHING"
            )
            .bind(&hash)
            .bind(Uuid::now_v7())
            .bind(c.client_id)
            .bind(c.user_id)
            .bind(&c.data)
            .bind(&c.ip)
            .bind(&c.user_agent)
            .bind(now)
            .bind(c.last_seen_at)
            .bind(c.expires_at)
            .execute(p)
            .await
            .map_err(backend)?
            .rows_affected());
            if inserted == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(backend("could not allocate a unique session id"))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let c = columns(record)?;
        let hash = id_hash(&record.id);
        // UPDATE only: a row deleted by "revoke" or "sign out everywhere" is not brought back.
        on_pool!(self.db, |p| sqlx::query(
            "UPDATE sessions SET client_id = $2, user_id = $3, data = $4, ip = $5, user_agent = $6, \
             last_seen_at = $7, expires_at = $8 WHERE id_hash = $1"
        )
        .bind(&hash)
        .bind(c.client_id)
        .bind(c.user_id)
        .bind(&c.data)
        .bind(&c.ip)
        .bind(&c.user_agent)
        .bind(c.last_seen_at)
        .bind(c.expires_at)
        .execute(p)
        .await
        .map(|_| ())
        .map_err(backend)?);
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let hash = id_hash(id);
        let now = crate::db::now();
        let row: Option<(String, DateTime<Utc>)> = on_pool!(self.db, |p| sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2"
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(p)
        .await
        .map_err(backend)?);
        let Some((data, expires_at)) = row else { return Ok(None) };
        let data = serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date: to_time(expires_at) }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let hash = id_hash(id);
        on_pool!(self.db, |p| sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(&hash)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(backend)?);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.prune().await.map(|_| ()).map_err(backend)
    }
}
