//! An agent's credentials: names and ages only, never values; set, replace and delete with a fresh second
//! factor. Values travel browser -> server once and are sealed at once.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::caller::{respond, Access, Caller};
use super::AppError;

/// A stored credential: its name and when it was set. There is no value field, on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRow {
    pub name: String,
    /// Seconds since it was last set.
    pub set_secs_ago: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[cfg(feature = "ssr")]
impl From<deployclaw::vault::VaultError> for AppError {
    fn from(e: deployclaw::vault::VaultError) -> Self {
        use deployclaw::vault::VaultError;
        match e {
            VaultError::Invalid(m) => AppError::Invalid(super::auth::capital(&m)),
            VaultError::NotFound => AppError::NotFound,
            VaultError::Db(e) => e.into(),
            VaultError::Envelope(e) => AppError::internal(&e),
        }
    }
}

/// The credentials of one of the caller's agents.
#[server(prefix = "/api/fn", endpoint = "list_credentials")]
pub async fn list_credentials(agent_id: String) -> Result<Vec<CredentialRow>, AppError> {
    respond(async {
        let caller = Caller::current().await?;
        let user = caller.require(Access::SignedIn).await?;
        let agent = super::agents::parse_agent_id(&agent_id)?;
        caller.platform.agents().get(user.client_id, agent).await?;
        let now = deployclaw::db::now();
        let rows = caller.platform.vault().list(user.client_id, agent).await?;
        Ok(rows
            .into_iter()
            .map(|c| CredentialRow {
                name: c.name,
                set_secs_ago: (now - c.updated_at).num_seconds().max(0),
                created_at: c.created_at.to_rfc3339(),
                updated_at: c.updated_at.to_rfc3339(),
            })
            .collect())
    })
    .await
}

/// Adds or replaces credential `name` of an agent (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "set_credential")]
pub async fn set_credential(agent_id: String, name: String, value: String) -> Result<(), AppError> {
    respond(async move {
        use deployclaw::vault::CredentialName;
        // Take ownership of the bytes at once; they are zeroized when the secret drops.
        let value = secrecy::SecretSlice::from(value.into_bytes());
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let proof = caller.vault_proof()?;
        let agent = super::agents::parse_agent_id(&agent_id)?;
        let name = CredentialName::parse(&name)?;
        let actor = deployclaw::audit::Actor::User(user.id);
        caller.platform.vault().put(actor, user.client_id, agent, &name, value, &proof, Some(caller.ctx.ip)).await?;
        Ok(())
    })
    .await
}

/// Deletes credential `name` of an agent (owner or admin; fresh second factor).
#[server(prefix = "/api/fn", endpoint = "delete_credential")]
pub async fn delete_credential(agent_id: String, name: String) -> Result<(), AppError> {
    respond(async {
        use deployclaw::vault::CredentialName;
        let caller = Caller::current().await?;
        let user = caller.require_fresh(Access::ManagesClient).await?;
        let proof = caller.vault_proof()?;
        let agent = super::agents::parse_agent_id(&agent_id)?;
        let name = CredentialName::parse(&name)?;
        let actor = deployclaw::audit::Actor::User(user.id);
        caller.platform.vault().delete(actor, user.client_id, agent, &name, &proof, Some(caller.ctx.ip)).await?;
        Ok(())
    })
    .await
}
