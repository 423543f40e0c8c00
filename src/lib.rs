//! DeployClaw platform core (crate `deployclaw`).
//!
//! Owns every rule and every query of the platform: configuration, the database layer, the audit trail,
//! and the secret scrubber used by logs and audit metadata. It knows nothing of Leptos or HTTP routing;
//! the web app in `app/` calls into it through one cheap-to-clone [`Platform`] handle.
#![forbid(unsafe_code)]

pub mod admin;
pub mod agents;
pub mod audit;
pub mod billing;
pub mod config;
pub mod config_error;
pub mod context;
pub mod db;
pub mod email;
pub mod gateway;
pub mod identity;
pub mod keys;
pub mod mail;
pub mod net;
pub mod plans;
pub mod platform;
pub mod runtime;
pub mod scrub;
pub mod vault;

pub use config::Config;
pub use platform::Platform;
