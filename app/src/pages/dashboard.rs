//! The customer dashboard: a shared layout with navigation, and one page per area.

mod admin;
mod agent_detail;
mod agents;
mod audit;
mod audit_settings;
mod billing;
mod credentials;
mod layout;
mod overview;
mod settings;

pub use admin::{AdminClientPage, AdminPage};
pub use agent_detail::AgentDetailPage;
pub use agents::AgentsPage;
pub use audit::AuditPage;
pub use billing::BillingPage;
pub use credentials::CredentialsPage;
pub use layout::DashboardLayout;
pub use overview::OverviewPage;
pub use settings::SettingsPage;
