//! Server functions and the DTOs they exchange with the browser, one file per area. Each server function
//! is a thin adapter: take the platform handle from context, call one core function, map to a DTO.

pub mod account;
pub mod admin;
pub mod agents;
pub mod audit;
pub mod audit_settings;
pub mod auth;
pub mod billing;
#[cfg(feature = "ssr")]
pub mod caller;
pub mod credentials;
pub mod error;
pub mod security;
pub mod system;

pub use error::AppError;
