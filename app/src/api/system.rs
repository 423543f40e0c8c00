//! The platform's own status, as the dashboard shows it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::AppError;

/// What the dashboard shows about the platform (signed-in users only). No tenant data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformStatusView {
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub schema_version: Option<i64>,
    pub ready: bool,
    pub uptime_secs: u64,
    pub version: String,
}

#[server(prefix = "/api/fn", endpoint = "platform_status")]
pub async fn platform_status() -> Result<PlatformStatusView, AppError> {
    use super::caller::{respond, Access, Caller};
    respond(async {
        let caller = Caller::current().await?;
        caller.require(Access::SignedIn).await?;
        let status = caller.platform.status().await;
        Ok(PlatformStatusView {
            backend: status.backend.name().to_string(),
            schema_version: status.schema_version,
            ready: status.ready,
            uptime_secs: status.uptime.as_secs(),
            version: status.version.to_string(),
        })
    })
    .await
}
