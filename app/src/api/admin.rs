//! The operator console (platform admins only).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::caller::{respond, Access, Caller};
use super::AppError;

/// One client, as operators see it. Never credential values: there is no code path for them here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub status: String,
    pub users: i64,
    pub created_at: String,
}

/// Every client on this installation, newest first.
#[server(prefix = "/api/fn", endpoint = "admin_list_clients")]
pub async fn admin_list_clients() -> Result<Vec<ClientRow>, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        caller.require(Access::PlatformAdmin).await?;
        let rows = deployclaw::db::clients::list_all_for_operators(caller.platform.db(), 500).await?;
        Ok(rows
            .into_iter()
            .map(|(c, users)| ClientRow {
                id: c.id.to_string(),
                name: c.name,
                plan: c.plan,
                status: c.status.as_str().to_string(),
                users,
                created_at: c.created_at.to_rfc3339(),
            })
            .collect())
    })
    .await
}
