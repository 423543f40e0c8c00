//! Integration tests of the server: the real router on a real socket (port 0), a real SQLite database per
//! test, and the real `deployclaw` binary for startup, shutdown and the subcommands.

mod support;

mod admin;
mod agents;
mod audit_export;
mod audit_settings;
mod audit_stream;
mod auth;
mod authz;
mod bad_requests;
mod billing;
mod binary;
mod client_address;
mod credentials;
mod escaping;
mod front_door;
mod headers;
mod health;
mod logging;
mod pages;
mod security_page;
mod stripe_stand_in;
