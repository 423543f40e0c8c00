//! The customer dashboard: a shared layout with navigation, and one page per area.

mod admin;
mod layout;
mod overview;
mod sections;
mod settings;

pub use admin::AdminPage;
pub use layout::DashboardLayout;
pub use overview::OverviewPage;
pub use sections::{AgentsPage, AuditPage, BillingPage, CredentialsPage};
pub use settings::SettingsPage;
