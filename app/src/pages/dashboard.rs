//! The customer dashboard: a shared layout with navigation, and one page per area.

mod layout;
mod overview;
mod sections;

pub use layout::DashboardLayout;
pub use overview::OverviewPage;
pub use sections::{AdminPage, AgentsPage, AuditPage, BillingPage, CredentialsPage, SettingsPage};
