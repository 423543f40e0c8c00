//! Dashboard users. Each belongs to exactly one client and has one role.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::text_enum::text_enum;
use super::{ClientId, Db, DbError, UserId};
use crate::email::EmailAddress;

text_enum!(
    /// What a user may do. `Owner` is the client's first user; `PlatformAdmin` is an operator of this
    /// DeployClaw installation (admin console), not a customer role.
    Role {
        Owner = "owner",
        Admin = "admin",
        Member = "member",
        PlatformAdmin = "platform_admin",
    }
);

impl Role {
    /// May manage the client's team, billing and security settings.
    pub fn manages_client(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Place in a client's hierarchy: owner above admin above member. Operators are not part of a customer's
    /// team (they act through the admin console), so they rank nowhere here.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member => 1,
            Role::PlatformAdmin => 0,
        }
    }

    /// Whether someone with this role may act on (reset, end the sessions of, remove) someone with `target`:
    /// a manager, acting on a role no higher than their own.
    pub fn may_act_on(self, target: Role) -> bool {
        self.manages_client() && target.rank() > 0 && target.rank() <= self.rank()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub client_id: ClientId,
    pub email: EmailAddress,
    pub display_name: Option<String>,
    pub role: Role,
    pub totp_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

pub(super) const COLUMNS: &str = "id, client_id, email, display_name, role, totp_enabled, created_at, last_login_at";

/// Adds a user to `client_id`. `Conflict` if the address is already in use (by any client), `Conflict`
/// too if the client does not exist.
pub async fn create(db: &Db, client_id: ClientId, email: &EmailAddress, role: Role) -> Result<User, DbError> {
    let sql = format!(
        "INSERT INTO users (id, client_id, email, role, totp_enabled, created_at) \
         VALUES ($1, $2, $3, $4, FALSE, $5) RETURNING {COLUMNS}"
    );
    let id = UserId::new();
    let now = super::now();
    Ok(on_pool!(db, |p| sqlx::query_as::<_, User>(&sql)
        .bind(id)
        .bind(client_id)
        .bind(email)
        .bind(role)
        .bind(now)
        .fetch_one(p)
        .await?))
}

/// One user of `client_id`; `NotFound` for a user of another client.
pub async fn get(db: &Db, client_id: ClientId, id: UserId) -> Result<User, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1 AND client_id = $2");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, User>(&sql).bind(id).bind(client_id).fetch_one(p).await?))
}

/// The user `id` of `client_id`, unless that client is suspended: what a signed-in session stands for, read on
/// every request, so a session that outlived (or raced) a suspension is worth nothing.
pub async fn get_unless_suspended(db: &Db, client_id: ClientId, id: UserId) -> Result<User, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 AND client_id = $2 \
         AND NOT EXISTS (SELECT 1 FROM clients WHERE clients.id = users.client_id AND clients.status = 'suspended')"
    );
    Ok(on_pool!(db, |p| sqlx::query_as::<_, User>(&sql).bind(id).bind(client_id).fetch_one(p).await?))
}

/// The users of `client_id`, oldest first.
pub async fn list(db: &Db, client_id: ClientId) -> Result<Vec<User>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE client_id = $1 ORDER BY created_at, id");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, User>(&sql).bind(client_id).fetch_all(p).await?))
}

/// The sign-in lookup: the only query keyed by something other than the tenant, because at sign-in the
/// tenant is not known yet. Callers must answer identically whether or not a user was found.
pub async fn find_for_sign_in(db: &Db, email: &EmailAddress) -> Result<Option<User>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
    Ok(on_pool!(db, |p| sqlx::query_as::<_, User>(&sql).bind(email).fetch_optional(p).await?))
}

/// Records a completed sign-in.
pub async fn record_sign_in(db: &Db, client_id: ClientId, id: UserId, at: DateTime<Utc>) -> Result<(), DbError> {
    on_pool!(db, |p| sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2 AND client_id = $3")
        .bind(at)
        .bind(id)
        .bind(client_id)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Changes a user's role within their client. `NotFound` for a user of another client.
/// Gives the user `role`, unless that would leave the client without an owner (`Ok(None)`). Role changes of one
/// client are serialised (the client's row is locked first; on SQLite, the write lock), so two owners demoting
/// each other at once cannot both succeed.
pub async fn set_role(db: &Db, client_id: ClientId, id: UserId, role: Role) -> Result<Option<User>, DbError> {
    let sql = format!(
        "UPDATE users SET role = $1 WHERE id = $2 AND client_id = $3 \
         AND ($1 = 'owner' OR role <> 'owner' \
              OR (SELECT COUNT(*) FROM users o WHERE o.client_id = $3 AND o.role = 'owner') > 1) \
         RETURNING {COLUMNS}"
    );
    Ok(on_pool!(db, |p| {
        let mut tx = p.begin().await?;
        let locked = sqlx::query("UPDATE clients SET id = id WHERE id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if locked == 0 {
            return Err(DbError::NotFound);
        }
        let user = sqlx::query_as::<_, User>(&sql).bind(role).bind(id).bind(client_id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        user
    }))
}

/// The client that platform operators belong to, if one has been created.
pub async fn operator_client(db: &Db) -> Result<Option<ClientId>, DbError> {
    Ok(on_pool!(db, |p| sqlx::query_scalar("SELECT client_id FROM users WHERE role = $1 ORDER BY created_at LIMIT 1")
        .bind(Role::PlatformAdmin)
        .fetch_optional(p)
        .await?))
}
