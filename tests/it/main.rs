//! Integration tests of the platform core. Every database test runs twice, on SQLite and on a real
//! PostgreSQL server, each time on a fresh database of its own.

mod support;

mod audit;
mod audit_chain;
mod audit_export;
mod audit_live;
mod audit_settings;
mod billing;
mod gateway;
mod identity;
mod mail;
mod migrations;
mod reconciler;
mod runtime;
mod sessions;
mod sign_in;
mod tenancy;
mod vault;
