//! The server around the platform core (only with feature `ssr`): command line, telemetry, security
//! headers, the axum router, and graceful shutdown.

pub mod audit_export;
pub mod audit_stream;
pub mod billing_return;
pub mod billing_webhook;
mod cli;
pub mod document;
pub mod fn_requests;
pub mod headers;
pub mod listener;
pub mod router;
pub mod security;
pub mod session;
pub mod static_files;
pub mod telemetry;
pub mod tls;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use deployclaw::config::{Config, ConfigFile};
use deployclaw::Platform;
use tokio::net::TcpListener;

pub use router::{build_router, AppState};

/// Runs the `deployclaw` binary: parses the command line and dispatches. Every failure is printed with a
/// clear message and a non-zero exit code; nothing limps on.
pub async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let file = cli.config.clone().map(ConfigFile::Path).unwrap_or_default();
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("deployclaw: invalid configuration: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    match cli.command.unwrap_or_default() {
        cli::Command::CheckConfig => {
            println!("{}", config.summary());
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        cli::Command::Migrate => {
            telemetry::init(&config.log);
            match migrate(&config).await {
                Ok(version) => {
                    println!("database {} migrated; schema at version {version}", config.database.target.describe());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("deployclaw: migration failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        cli::Command::Vault { command } => {
            telemetry::init(&config.log);
            match vault(config, command).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("deployclaw: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        cli::Command::Admin { command: cli::AdminCommand::Create { email } } => {
            telemetry::init(&config.log);
            match create_admin(config, &email).await {
                Ok(message) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("deployclaw: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        cli::Command::Audit { command: cli::AuditCommand::Verify { client } } => {
            telemetry::init(&config.log);
            match verify_audit(config, client).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("deployclaw: audit verification could not run: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        cli::Command::Serve => {
            telemetry::init(&config.log);
            match serve(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "server stopped with an error");
                    eprintln!("deployclaw: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn create_admin(config: Config, email: &str) -> Result<String, Box<dyn std::error::Error>> {
    let email = deployclaw::email::EmailAddress::parse(email).map_err(|e| format!("{email:?}: {e}"))?;
    let public_url = config.server.public_url.clone();
    let platform = Platform::start(config).await?;
    let result = platform.team().create_platform_admin(&email).await;
    platform.close().await;
    let user = result?;
    Ok(format!(
        "created platform operator {} ({}). They sign in at {}sign-in with an email code and set up an authenticator \
         app at their first sign-in.",
        user.email, user.id, public_url
    ))
}

async fn migrate(config: &Config) -> Result<String, Box<dyn std::error::Error>> {
    let db = deployclaw::db::Db::connect(&config.database).await?;
    db.migrate().await?;
    let status = db.migration_status().await?;
    db.close().await;
    Ok(status.current_version.map(|v| v.to_string()).unwrap_or_else(|| "none".into()))
}

/// `deployclaw audit verify`: prints one line per chain and a summary; exit status 2 when a chain is broken.
async fn verify_audit(
    config: Config,
    client: Option<deployclaw::db::ClientId>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let embedded = config.mode == deployclaw::config::Mode::Embedded;
    let (keyring, generated) =
        deployclaw::keys::keyring::Keyring::load(&config.data_dir, embedded, &|name| std::env::var(name).ok())?;
    if let Some(path) = generated {
        eprintln!(
            "warning: no master key was found, so a new one was generated at {}; checkpoints signed with the real \
             key will not verify against it",
            path.display()
        );
    }
    let db = deployclaw::db::Db::connect(&config.database).await?;
    db.migrate().await?;
    let started = std::time::Instant::now();
    let result = deployclaw::audit::chain::verify(&db, &keyring, client).await;
    db.close().await;
    let report = result?;
    for chain in &report.chains {
        println!("{chain}");
    }
    let broken = report.broken().count();
    let summary =
        format!("checked {} events in {} chains in {:.1?}", report.events(), report.chains.len(), started.elapsed());
    if broken == 0 {
        println!("{summary}: every chain is intact");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{summary}: {broken} BROKEN");
        Ok(ExitCode::from(2))
    }
}

async fn vault(config: Config, command: cli::VaultCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use deployclaw::vault::rotation;
    let platform = Platform::start(config).await?;
    let vault = platform.vault();
    let (current, _) = vault.keyring().current();
    let versions: Vec<String> = vault.keyring().versions().iter().map(ToString::to_string).collect();
    println!("keyring: {} (current {current}, from {})", versions.join(", "), vault.keyring().source);
    let code = match command {
        cli::VaultCommand::Status => {
            let note = |version| if version == current { "" } else { " - run `deployclaw vault rotate`" };
            for (version, count) in rotation::status(vault).await? {
                println!("credentials sealed with {version}: {count}{}", note(version));
            }
            let seeds = rotation::totp_seeds::status(vault).await?;
            for (version, count) in seeds.by_version {
                println!("TOTP seeds sealed with {version}: {count}{}", note(version));
            }
            if seeds.unreadable > 0 {
                println!("TOTP seeds not in a known envelope format: {}", seeds.unreadable);
            }
            ExitCode::SUCCESS
        }
        cli::VaultCommand::Rotate { batch_size, throttle_ms } => {
            let throttle = Duration::from_millis(throttle_ms);
            let report = rotation::rotate(vault, batch_size, throttle, |p| {
                let (c, t) = (p.credentials(), &p.totp_seeds);
                println!(
                    "rotated {} credentials (skipped {}, failed {}) and {} TOTP seeds (skipped {}, failed {}); \
                     {} credentials and {} TOTP seeds left below {current}",
                    c.converted, c.skipped, c.failed, t.converted, t.skipped, t.failed, c.remaining, t.remaining
                );
            })
            .await?;
            for (record, reason) in &report.failures {
                eprintln!("{record}: {reason}");
            }
            let (c, t) = (report.progress.credentials(), &report.progress.totp_seeds);
            println!(
                "rotation to {} finished: credentials {} converted, {} skipped, {} failed; \
                 TOTP seeds {} converted, {} skipped, {} failed",
                report.target, c.converted, c.skipped, c.failed, t.converted, t.skipped, t.failed
            );
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    };
    platform.close().await;
    Ok(code)
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    tracing::info!(
        mode = ?config.mode,
        database = %config.database.target.describe(),
        sources = %config.sources.join(" < "),
        "starting DeployClaw {}",
        env!("CARGO_PKG_VERSION")
    );
    if let deployclaw::config::DatabaseTarget::Sqlite { path } = &config.database.target {
        tracing::info!(path = %path.display(), "using the embedded SQLite database");
    }
    let addr = config.server.addr;
    let listener_settings = listener::ListenerSettings::from_config(&config.server);
    // Every connection is a descriptor: take the whole hard limit, and say what it is.
    match listener::raise_open_file_limit() {
        Ok(limit) => {
            tracing::info!(open_files = limit, "open-file limit");
            if (limit as usize) < listener_settings.max_connections + 256 {
                tracing::warn!(
                    open_files = limit,
                    max_connections = listener_settings.max_connections,
                    "server.max_connections is close to or above the open-file limit: raise the limit (LimitNOFILE) \
                     or lower the setting, or accepting will fail before the cap answers"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read or raise the open-file limit"),
    }
    // Built-in TLS: a certificate that cannot be used stops the start, with the file at fault.
    let mut hooks = listener::Hooks::default();
    let mut tls_watch = None;
    if let Some(files) = &config.server.tls {
        let store =
            tls::CertStore::load(files.clone()).map_err(|e| format!("server.tls_cert_file/tls_key_file: {e}"))?;
        hooks.tls = Some(store.acceptor());
        tls_watch = Some((store.watch(tls::WATCH_INTERVAL), reload_on_sighup(store)));
    }
    let platform = Platform::start(config).await?;
    // Every background job (gateway listeners, reconciler, audit, SIEM, billing, pruning) starts in the core.
    let jobs = platform.start_jobs().await;
    tracing::info!(jobs = ?jobs.names(), "background jobs started");
    let app = build_router(platform.clone())?;
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(
        "listening on {}://{} (public URL {})",
        if hooks.tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
        platform.config().server.public_url
    );
    listener::serve(listener, app, listener_settings, hooks, shutdown_signal()).await?;
    if let Some((watch, sighup)) = tls_watch {
        watch.abort();
        sighup.abort();
    }
    jobs.stop().await;
    platform.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Reads the TLS certificate again on every SIGHUP (as `systemctl reload` sends), keeping the current one when
/// the new files cannot be used.
fn reload_on_sighup(store: std::sync::Arc<tls::CertStore>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGHUP; the certificate reloads on file change only");
                    return;
                }
            };
            while hup.recv().await.is_some() {
                match store.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => {
                        tracing::warn!(error = %e, "SIGHUP: the TLS certificate cannot be used; keeping the current one")
                    }
                }
            }
        }
        #[cfg(not(unix))]
        let _ = store;
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
