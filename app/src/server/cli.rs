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
}
