use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// DeployClaw: deploy, secure and monitor OpenClaw AI agents.
#[derive(Debug, Parser)]
#[command(name = "deployclaw", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Default: $DEPLOYCLAW_CONFIG, else ./deployclaw.toml when present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Default, Subcommand)]
pub enum Command {
    /// Run the web server (default).
    #[default]
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load and validate the configuration, print it without secrets, and exit.
    CheckConfig,
    /// The credential vault's master keys: status and rotation.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Platform operators (the admin console).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The audit trail's tamper evidence.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk every audit hash chain (or one client's) in order, check the signed checkpoints, and report the
    /// first broken link of each chain. Exit status: 0 intact, 2 a chain is broken, 1 verification could not run.
    Verify {
        /// Only this client's chain (the client id, a UUID).
        #[arg(long, value_name = "UUID")]
        client: Option<deployclaw::db::ClientId>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform operator. They sign in like everyone else - an email code, then an authenticator
    /// app they set up at their first sign-in - and see the admin console.
    Create {
        /// The operator's email address.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Show the key versions in the keyring and how many credentials and TOTP seeds each one seals.
    Status,
    /// Re-encrypt every credential and TOTP seed to the newest master key, online, in batches. Safe to
    /// interrupt and to run again; once it reports nothing left under an old version, that version can be
    /// removed (retired).
    Rotate {
        /// Records per batch.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch_size: u32,
        /// Pause between batches, to spare a busy database.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
        throttle_ms: u64,
    },
}
