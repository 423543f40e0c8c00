//! The operator console's rules: what the platform's own operators (`platform_admin`) may see and do.
//!
//! Every method takes an [`Operator`], which only [`Admin::operator`] makes, from a signed-in session whose
//! user is a platform admin in the database. Actions (suspend, unsuspend, rebuild) and opening a client
//! also need a second factor from the last 15 minutes, and are recorded in the **affected client's own**
//! audit trail with actor kind `admin`, so the customer sees every operator access (DESIGN.md invariant 7).
//!
//! There is deliberately no way here to read a credential's value: the console sees credential names at
//! most, through the same tenant-scoped queries as the customer, and the vault's only decryption purposes are
//! injecting into an agent and a provider call.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::agents::{AgentError, Agents};
use crate::audit::{self, ActionType, Actor, AuditEvent, NewEvent};
use crate::context::RequestContext;
use crate::db::agents::{Agent, AgentStatus};
use crate::db::clients::{self, Client, ClientStatus, Overview};
use crate::db::users::{self, Role, User};
use crate::db::{AgentId, ClientId, Db, DbError};
use crate::identity::session::store::DbSessionStore;
use crate::identity::session::SessionAuth;
use crate::mail::Mailer;

/// Longest suspension reason (shown to the customer).
pub const MAX_REASON_CHARS: usize = 500;
/// A reconciler pass older than this means it is not running.
pub const RECONCILER_STALE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not a platform operator (the console answers as if it did not exist).
    #[error("not found")]
    NotOperator,
    #[error("confirm with your authenticator first")]
    StaleSecondFactor,
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Db(DbError),
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl From<DbError> for AdminError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => Self::NotFound,
            DbError::Invalid(m) => Self::Invalid(m.into_owned()),
            other => Self::Db(other),
        }
    }
}

/// A platform operator acting now. Only [`Admin::operator`] makes one.
#[derive(Debug, Clone)]
pub struct Operator {
    user: User,
    fresh: bool,
    ip: std::net::IpAddr,
}

impl Operator {
    pub fn user(&self) -> &User {
        &self.user
    }

    fn actor(&self) -> Actor {
        Actor::Admin(self.user.id)
    }

    fn require_fresh(&self) -> Result<(), AdminError> {
        if self.fresh {
            Ok(())
        } else {
            Err(AdminError::StaleSecondFactor)
        }
    }
}

/// One check of the platform's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The platform as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub checks: Vec<Check>,
    /// Containers with our labels that no agent owns (from the last reconciler pass; never deleted for you).
    pub orphans: Vec<String>,
}

/// A client opened in the console.
#[derive(Debug, Clone)]
pub struct ClientDetail {
    pub client: Client,
    pub users: Vec<User>,
    pub agents: Vec<Agent>,
    /// The client's latest audit events, newest first.
    pub recent: Vec<AuditEvent>,
}

/// The console's service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admin {
    db: Db,
    agents: Agents,
    sessions: DbSessionStore,
    mailer: Mailer,
}

impl Admin {
    pub fn new(db: Db, agents: Agents, sessions: DbSessionStore, mailer: Mailer) -> Self {
        Self { db, agents, sessions, mailer }
    }

    /// The session's user as an operator: signed in, and a platform admin in the database right now.
    pub async fn operator(&self, auth: &SessionAuth, ctx: &RequestContext) -> Result<Operator, AdminError> {
        let (client_id, user_id) = auth.signed_in().ok_or(AdminError::NotOperator)?;
        let user = match users::get(&self.db, client_id, user_id).await {
            Ok(u) => u,
            Err(DbError::NotFound) => return Err(AdminError::NotOperator),
            Err(e) => return Err(e.into()),
        };
        if user.role != Role::PlatformAdmin {
            return Err(AdminError::NotOperator);
        }
        let fresh = auth.second_factor_is_fresh(crate::db::now());
        Ok(Operator { user, fresh, ip: ctx.ip })
    }

    /// Every client with its plan, status, users, agents and today's model spend, newest first.
    pub async fn clients(&self, _op: &Operator) -> Result<Vec<Overview>, AdminError> {
        Ok(clients::overview_for_operators(&self.db, 500).await?)
    }

    /// Opens a client: its users, agents and latest audit events. An access to tenant data, so it needs a
    /// fresh second factor and is recorded in the client's own audit trail.
    pub async fn client(&self, op: &Operator, id: ClientId) -> Result<ClientDetail, AdminError> {
        op.require_fresh()?;
        let client = clients::get(&self.db, id).await?;
        self.record(op, id, None, "admin.client_viewed", &client.name, json!({})).await?;
        let users = users::list(&self.db, id).await?;
        let agents = self.agents.list(id).await?;
        let recent = audit::recent(&self.db, id, None, 50).await?;
        Ok(ClientDetail { client, users, agents, recent })
    }

    /// Suspends a client: sign-in is refused with `reason`, every session of its users ends, its agents are
    /// stopped (not deleted), its owners are emailed, and the client's audit trail records it.
    pub async fn suspend(
        &self,
        op: &Operator,
        id: ClientId,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<Client, AdminError> {
        op.require_fresh()?;
        let reason = reason.trim();
        if reason.chars().count() < 3 || reason.chars().count() > MAX_REASON_CHARS {
            return Err(AdminError::Invalid(format!(
                "give the customer a reason of 3 to {MAX_REASON_CHARS} characters: they are shown it"
            )));
        }
        if reason.chars().any(char::is_control) {
            return Err(AdminError::Invalid("the reason is one line of text".into()));
        }
        let client = clients::get(&self.db, id).await?;
        if users::operator_client(&self.db).await? == Some(id) {
            return Err(AdminError::Invalid("the operators' own account cannot be suspended".into()));
        }
        if client.status == ClientStatus::Suspended {
            return Err(AdminError::Invalid("this client is already suspended".into()));
        }
        // Status first: from here sign-in and deploys are refused, so nothing restarts what is stopped next.
        let suspended = clients::set_status(&self.db, id, ClientStatus::Suspended, Some(reason)).await?;
        let members = users::list(&self.db, id).await?;
        let mut sessions_ended = 0;
        for u in &members {
            sessions_ended += self.sessions.revoke_all(id, u.id).await?;
        }
        let mut stopped = Vec::new();
        let mut not_stopped = Vec::new();
        if self.agents.runtime().is_some() {
            for agent in self.agents.list(id).await? {
                if matches!(agent.status, AgentStatus::Stopped | AgentStatus::Deleting) {
                    continue;
                }
                match self.agents.stop(op.actor(), id, agent.id, ctx).await {
                    Ok(_) => stopped.push(agent.name.as_str().to_string()),
                    Err(e) => {
                        tracing::warn!(agent = %agent.id, error = %e, "suspension: could not stop an agent");
                        not_stopped.push(agent.name.as_str().to_string());
                    }
                }
            }
        }
        let meta = json!({
            "reason": reason,
            "agents_stopped": stopped,
            "agents_not_stopped": not_stopped,
            "sessions_ended": sessions_ended,
        });
        self.record(op, id, Some(ctx), "admin.client_suspended", &client.name, meta).await?;
        for owner in members.iter().filter(|u| u.role == Role::Owner) {
            if let Err(e) = self.mailer.send(crate::mail::suspended_email(&owner.email, &client.name, reason)).await {
                tracing::warn!(client = %id, error = %e, "suspension email not sent");
            }
        }
        Ok(suspended)
    }

    /// Lifts a suspension: sign-in works again. Agents stay stopped until their owners start them.
    pub async fn unsuspend(&self, op: &Operator, id: ClientId, ctx: &RequestContext) -> Result<Client, AdminError> {
        op.require_fresh()?;
        let client = clients::get(&self.db, id).await?;
        if client.status != ClientStatus::Suspended {
            return Err(AdminError::Invalid("this client is not suspended".into()));
        }
        let active = clients::set_status(&self.db, id, ClientStatus::Active, None).await?;
        self.record(op, id, Some(ctx), "admin.client_unsuspended", &client.name, json!({})).await?;
        Ok(active)
    }

    /// Rebuilds a client's running agent from a clean image (see [`Agents::rebuild`]).
    pub async fn rebuild_agent(
        &self,
        op: &Operator,
        client_id: ClientId,
        agent_id: AgentId,
        ctx: &RequestContext,
    ) -> Result<Agent, AdminError> {
        op.require_fresh()?;
        let client = clients::get(&self.db, client_id).await?;
        if client.status == ClientStatus::Suspended {
            return Err(AdminError::Invalid("this client is suspended: its agents stay stopped".into()));
        }
        Ok(self.agents.rebuild(op.actor(), client_id, agent_id, ctx).await?)
    }

    /// Database, container runtime, reconciler, egress gateway and email, each with what it said.
    pub async fn health(&self, _op: &Operator) -> Health {
        let mut checks = Vec::new();
        let started = Instant::now();
        let db = self.db.ping().await;
        checks.push(Check {
            name: "database",
            ok: db.is_ok(),
            detail: match db {
                Ok(()) => format!("{} answering in {} ms", self.db.backend().name(), started.elapsed().as_millis()),
                Err(e) => e.to_string(),
            },
        });
        let runtime = match self.agents.runtime() {
            None => Check { name: "container runtime", ok: false, detail: "no runtime found at startup".into() },
            Some(rt) => match tokio::time::timeout(Duration::from_secs(5), rt.info()).await {
                Ok(Ok(info)) => Check {
                    name: "container runtime",
                    ok: true,
                    detail: format!("{} at {}", info.version, info.endpoint),
                },
                Ok(Err(e)) => Check { name: "container runtime", ok: false, detail: e.to_string() },
                Err(_) => Check { name: "container runtime", ok: false, detail: "no answer within 5 s".into() },
            },
        };
        checks.push(runtime);
        let reconciled = self.agents.reconciler_status();
        checks.push(match &reconciled {
            None => Check { name: "reconciler", ok: false, detail: "no pass yet".into() },
            Some(s) => {
                let age = (crate::db::now() - s.at).to_std().unwrap_or_default();
                let ok = s.error.is_none() && age <= RECONCILER_STALE;
                let detail = match &s.error {
                    Some(e) => format!("last pass {} s ago failed: {e}", age.as_secs()),
                    None => format!("last pass {} s ago", age.as_secs()),
                };
                Check { name: "reconciler", ok, detail }
            }
        });
        checks.push(match self.agents.gateway() {
            None => Check { name: "egress gateway", ok: false, detail: "not started".into() },
            Some(proxy) => Check {
                name: "egress gateway",
                ok: true,
                detail: format!("listening for {} agent(s) on port {}", proxy.listener_count(), proxy.port()),
            },
        });
        let mail = tokio::time::timeout(Duration::from_secs(25), self.mailer.check()).await;
        checks.push(match mail {
            Ok(Ok(detail)) => Check { name: "email", ok: true, detail },
            Ok(Err(e)) => Check { name: "email", ok: false, detail: e.to_string() },
            Err(_) => Check { name: "email", ok: false, detail: "no answer within 25 s".into() },
        });
        Health { checks, orphans: reconciled.map(|s| s.orphans).unwrap_or_default() }
    }

    async fn record(
        &self,
        op: &Operator,
        client: ClientId,
        ctx: Option<&RequestContext>,
        action: &'static str,
        target: &str,
        mut meta: serde_json::Value,
    ) -> Result<(), DbError> {
        meta["operator"] = json!(op.user.email.as_str());
        let mut event =
            NewEvent::new(Some(client), op.actor(), ActionType::known(action)).target(target).metadata(meta);
        event = match ctx {
            Some(ctx) => event.request(ctx),
            None => event.ip(op.ip),
        };
        audit::append(&self.db, event).await.map(|_| ())
    }
}
