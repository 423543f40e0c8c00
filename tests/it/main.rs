//! Integration tests of the platform core. Every database test runs twice, on SQLite and on a real
//! PostgreSQL server, each time on a fresh database of its own.

mod support;

mod admin;
mod agent_networks;
mod architecture;
mod audit;
mod audit_chain;
mod audit_export;
mod audit_live;
mod audit_settings;
mod billing;
mod gateway;
mod identity;
mod llm_gateway;
mod mail;
mod migrations;
mod providers;
mod reconciler;
mod runtime;
mod sessions;
mod sign_in;
mod tenancy;
mod vault;
