//! The operator console (platform admins only; everyone else gets 404). Thin adapters over
//! `deployclaw::admin`: opening a client and every action need a fresh second factor and land in the
//! affected client's own audit trail. Never credential values: there is no code path for them here.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::audit::AuditRow;
#[cfg(feature = "ssr")]
use super::caller::{respond, Caller};
use super::AppError;

/// One client, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub status: String,
    pub suspended_reason: Option<String>,
    pub users: i64,
    pub agents: i64,
    pub running: i64,
    /// Today's model spend (UTC), USD.
    pub spent_today_usd: String,
    pub created_at: String,
}

#[cfg(feature = "ssr")]
impl From<deployclaw::admin::AdminError> for AppError {
    fn from(e: deployclaw::admin::AdminError) -> Self {
        use deployclaw::admin::AdminError;
        match e {
            AdminError::NotOperator | AdminError::NotFound => AppError::NotFound,
            AdminError::StaleSecondFactor => AppError::TwoFactorRequired,
            AdminError::Invalid(m) => AppError::Invalid(m),
            AdminError::Db(e) => e.into(),
            AdminError::Agent(e) => e.into(),
        }
    }
}

#[cfg(feature = "ssr")]
async fn operator(caller: &Caller) -> Result<deployclaw::admin::Operator, AppError> {
    let auth = caller.auth.as_ref().ok_or(AppError::NotFound)?;
    Ok(caller.platform.admin().operator(auth, &caller.ctx).await?)
}

#[cfg(feature = "ssr")]
fn parse_client(id: &str) -> Result<deployclaw::db::ClientId, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}

/// Every client on this installation, newest first.
#[server(prefix = "/api/fn", endpoint = "admin_list_clients")]
pub async fn admin_list_clients() -> Result<Vec<ClientRow>, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let op = operator(&caller).await?;
        let rows = caller.platform.admin().clients(&op).await?;
        Ok(rows
            .into_iter()
            .map(|o| ClientRow {
                id: o.client.id.to_string(),
                name: o.client.name,
                plan: o.client.plan,
                status: o.client.status.as_str().to_string(),
                suspended_reason: o.client.suspended_reason,
                users: o.users,
                agents: o.agents,
                running: o.running,
                spent_today_usd: deployclaw::gateway::permissions::format_usd(
                    u64::try_from(o.spent_today).unwrap_or(0),
                ),
                created_at: o.client.created_at.to_rfc3339(),
            })
            .collect())
    })
    .await
}

/// One of a client's users, as operators see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub email: String,
    pub role: String,
    pub totp_enabled: bool,
    pub last_login_at: Option<String>,
}

/// One of a client's agents, as operators see them (no settings, no credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAgentRow {
    pub id: String,
    pub name: String,
    pub template: String,
    pub status: String,
    pub status_reason: Option<String>,
}

/// A client opened in the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientDetailView {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub status: String,
    pub suspended_reason: Option<String>,
    pub members: Vec<MemberRow>,
    pub agents: Vec<AdminAgentRow>,
    pub recent: Vec<AuditRow>,
}

/// Opens a client (fresh second factor; recorded in the client's audit trail).
#[server(prefix = "/api/fn", endpoint = "admin_client")]
pub async fn admin_client(client_id: String) -> Result<ClientDetailView, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let op = operator(&caller).await?;
        let d = caller.platform.admin().client(&op, parse_client(&client_id)?).await?;
        Ok(ClientDetailView {
            id: d.client.id.to_string(),
            name: d.client.name,
            plan: d.client.plan,
            status: d.client.status.as_str().to_string(),
            suspended_reason: d.client.suspended_reason,
            members: d
                .users
                .into_iter()
                .map(|u| MemberRow {
                    email: u.email.as_str().to_string(),
                    role: u.role.as_str().to_string(),
                    totp_enabled: u.totp_enabled,
                    last_login_at: u.last_login_at.map(|t| t.to_rfc3339()),
                })
                .collect(),
            agents: d
                .agents
                .into_iter()
                .map(|a| AdminAgentRow {
                    id: a.id.to_string(),
                    name: a.name.as_str().to_string(),
                    template: a.template,
                    status: a.status.as_str().to_string(),
                    status_reason: a.status_reason,
                })
                .collect(),
            recent: d.recent.into_iter().map(AuditRow::from).collect(),
        })
    })
    .await
}

/// Suspends a client with a reason its users are shown (fresh second factor).
#[server(prefix = "/api/fn", endpoint = "admin_suspend_client")]
pub async fn admin_suspend_client(client_id: String, reason: String) -> Result<(), AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let op = operator(&caller).await?;
        caller.platform.admin().suspend(&op, parse_client(&client_id)?, &reason, &caller.ctx).await?;
        Ok(())
    })
    .await
}

/// Lifts a client's suspension (fresh second factor). Its agents stay stopped.
#[server(prefix = "/api/fn", endpoint = "admin_unsuspend_client")]
pub async fn admin_unsuspend_client(client_id: String) -> Result<(), AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let op = operator(&caller).await?;
        caller.platform.admin().unsuspend(&op, parse_client(&client_id)?, &caller.ctx).await?;
        Ok(())
    })
    .await
}

/// Rebuilds a client's agent from a clean image (fresh second factor).
#[server(prefix = "/api/fn", endpoint = "admin_rebuild_agent")]
pub async fn admin_rebuild_agent(client_id: String, agent_id: String) -> Result<(), AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let op = operator(&caller).await?;
        let agent: deployclaw::db::AgentId = agent_id.parse().map_err(|_| AppError::NotFound)?;
        caller.platform.admin().rebuild_agent(&op, parse_client(&client_id)?, agent, &caller.ctx).await?;
        Ok(())
    })
    .await
}

/// One health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The platform's health and the runtime's orphaned containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    pub checks: Vec<CheckView>,
    pub orphans: Vec<String>,
}

#[server(prefix = "/api/fn", endpoint = "admin_health")]
pub async fn admin_health() -> Result<HealthView, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let op = operator(&caller).await?;
        let h = caller.platform.admin().health(&op).await;
        Ok(HealthView {
            checks: h
                .checks
                .into_iter()
                .map(|c| CheckView { name: c.name.to_string(), ok: c.ok, detail: c.detail })
                .collect(),
            orphans: h.orphans,
        })
    })
    .await
}
