//! The [`Platform`] handle: the one entry point the web app holds. Cheap to clone; owns the configuration
//! and every capability: identity, vault, audit, agents (with the runtime and the gateway), billing and mail.
//! [`Platform::start`] is the composition root; [`Platform::start_jobs`] the one place background work starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

mod jobs;

pub use jobs::Jobs;

use crate::agents::{Agents, AgentsParts};
use crate::audit::retention::RetentionPolicy;
use crate::audit::Audit;
use crate::billing::Billing;
use crate::config::Config;
use crate::db::pool::ConnectError;
use crate::db::{Backend, Db, MigrationStatus};
use crate::gateway::{EgressProxy, LlmGateway, LlmSettings, ProxySettings};
use crate::identity::codes::SignInCodes;
use crate::identity::session::store::DbSessionStore;
use crate::identity::sign_in::SignIn;
use crate::identity::team::Team;
use crate::identity::two_factor::TwoFactor;
use crate::keys::keyring::{Keyring, KeyringError};
use crate::mail::{MailError, Mailer};
use crate::runtime::ContainerRuntime;
use crate::vault::Vault;

#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    db: Db,
    vault: Vault,
    mailer: Mailer,
    sign_in: SignIn,
    two_factor: TwoFactor,
    team: Team,
    sessions: DbSessionStore,
    agents: Agents,
    admin: crate::admin::Admin,
    billing: Billing,
    audit: Audit,
    gateway: EgressProxy,
    started: Instant,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").field("backend", &self.inner.db.backend()).finish_non_exhaustive()
    }
}

/// Why the platform could not start. Startup stops on any of these; it never limps on.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] ConnectError),
    #[error("vault master keys: {0}")]
    Keyring(#[from] KeyringError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("LLM gateway: {0}")]
    Gateway(String),
}

/// Whether the platform can serve requests right now.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: Check,
    pub migrations: Check,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

/// What the dashboard shows about the platform itself.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub backend: Backend,
    pub schema_version: Option<i64>,
    pub ready: bool,
    pub uptime: Duration,
    pub version: &'static str,
}

impl Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Platform {
    /// Loads the vault's master keys (from the environment or the key file), connects to the configured
    /// database and applies pending migrations. Any failure stops startup.
    pub async fn start(config: Config) -> Result<Self, StartupError> {
        let embedded = config.mode == crate::config::Mode::Embedded;
        let (keyring, generated) = Keyring::load(&config.data_dir, embedded, &|name| std::env::var(name).ok())?;
        match generated {
            Some(path) => tracing::warn!(
                path = %path.display(),
                "generated a new vault master key file; back it up - without it stored credentials cannot be decrypted"
            ),
            None => {
                tracing::info!(source = %keyring.source, versions = ?keyring.versions(), "vault master keys loaded")
            }
        }
        let db = Db::connect(&config.database).await?;
        db.migrate().await?;
        let runtime: Option<Arc<dyn ContainerRuntime>> = match crate::runtime::connect(
            config.runtime.docker_host.as_deref(),
        )
        .await
        {
            Ok(rt) => {
                match rt.info().await {
                    Ok(info) => {
                        tracing::info!(endpoint = %info.endpoint, version = %info.version, "container runtime found")
                    }
                    Err(e) => tracing::warn!(error = %e, "container runtime stopped answering"),
                }
                Some(Arc::new(rt))
            }
            Err(e) => {
                tracing::warn!(error = %e, "no container runtime: agents cannot be deployed until one is available");
                None
            }
        };
        Self::from_parts_with_runtime(config, db, keyring, runtime)
    }

    /// Assembles a platform from an already opened database and a keyring, without a container runtime.
    pub fn from_parts(config: Config, db: Db, keyring: Keyring) -> Result<Self, StartupError> {
        Self::from_parts_with_runtime(config, db, keyring, None)
    }

    /// The composition root: builds every capability from the configuration, each with what it needs and
    /// nothing it could forget (plan limits and the gateway are arguments, not later additions). Nothing runs
    /// yet; [`Platform::start_jobs`] starts the background work.
    pub fn from_parts_with_runtime(
        config: Config,
        db: Db,
        keyring: Keyring,
        runtime: Option<Arc<dyn ContainerRuntime>>,
    ) -> Result<Self, StartupError> {
        let plans = config.billing.catalog.clone();
        let mailer = Mailer::new(&config.mail.from, &config.mail.transport)?;
        let retention =
            RetentionPolicy { plans: Some(plans.retention_limits()), ..RetentionPolicy::from(&config.audit) };
        let audit = Audit::new(db.clone(), keyring.clone(), retention);
        let codes = SignInCodes::new(db.clone(), &keyring, config.auth.code_ttl);
        let sign_in = SignIn::new(db.clone(), codes, mailer.clone());
        // Every argon2id hash of the platform runs here: bounded threads, memory held once per worker.
        let argon = crate::identity::argon::ArgonPool::for_this_machine();
        let two_factor = TwoFactor::new(db.clone(), keyring.clone(), mailer.clone(), argon);
        let team = Team::new(db.clone(), mailer.clone(), &config.server.public_url);
        let sessions = DbSessionStore::new(db.clone());
        let vault = Vault::new(db.clone(), keyring);
        // The agents' only way out; model calls arrive on the same listeners, where the LLM gateway holds the
        // provider keys and the spend caps. It listens once the jobs start and on each agent when it is deployed.
        let llm = LlmGateway::new(
            db.clone(),
            vault.clone(),
            Some(mailer.clone()),
            LlmSettings::from_config(&config.gateway, plans.clone()),
        )
        .map_err(StartupError::Gateway)?;
        let gateway = EgressProxy::with_llm(db.clone(), ProxySettings::from_config(&config.gateway), llm);
        let agents = Agents::new(AgentsParts {
            db: db.clone(),
            vault: vault.clone(),
            runtime,
            pool: config.runtime.network_pool,
            templates: config.runtime.templates.clone(),
            plans,
            gateway: Some(gateway.clone()),
        });
        let admin = crate::admin::Admin::new(db.clone(), agents.clone(), sessions.clone(), mailer.clone());
        let billing = Billing::new(
            db.clone(),
            config.billing.clone(),
            agents.clone(),
            mailer.clone(),
            config.server.public_url.clone(),
        );
        let inner = Inner {
            config,
            db,
            vault,
            mailer,
            audit,
            sign_in,
            two_factor,
            team,
            sessions,
            agents,
            gateway,
            admin,
            billing,
            started: Instant::now(),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The first factor: email codes and sign-up.
    pub fn sign_in(&self) -> &SignIn {
        &self.inner.sign_in
    }

    /// The second factor: TOTP, recovery codes, resets, sign-in completion.
    pub fn two_factor(&self) -> &TwoFactor {
        &self.inner.two_factor
    }

    /// Team membership and roles.
    pub fn team(&self) -> &Team {
        &self.inner.team
    }

    /// Agents: configure, list, remove.
    pub fn agents(&self) -> &Agents {
        &self.inner.agents
    }

    /// The operator console's rules.
    pub fn admin(&self) -> &crate::admin::Admin {
        &self.inner.admin
    }

    /// Billing: plans and their limits, Checkout, the Stripe webhook, grace periods.
    pub fn billing(&self) -> &Billing {
        &self.inner.billing
    }

    /// The audit trail: append, read, follow, export, retention and SIEM settings, checkpoints.
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// How long audit events are kept: the configured defaults, lowered by each plan's limit.
    pub fn retention_policy(&self) -> &RetentionPolicy {
        self.inner.audit.retention_policy()
    }

    /// The egress proxy and LLM gateway (listening once [`Platform::start_jobs`] ran).
    pub fn gateway(&self) -> &EgressProxy {
        &self.inner.gateway
    }

    /// The session store (also handed to the web layer's session middleware).
    pub fn sessions(&self) -> &DbSessionStore {
        &self.inner.sessions
    }

    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database is the capabilities' business: the web app reaches it only through them.
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The database, for integration tests that check what the app wrote (feature `test-support`).
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn db_for_tests(&self) -> &Db {
        &self.inner.db
    }

    /// Closes the database pool (after the server or a command stopped using the platform).
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    /// Database reachable and schema exactly at this binary's migrations. Bounded: a database that does not
    /// answer within 3 seconds counts as down.
    pub async fn readiness(&self) -> Readiness {
        const LIMIT: Duration = Duration::from_secs(3);
        let database = match tokio::time::timeout(LIMIT, self.db().ping()).await {
            Ok(Ok(())) => Check { ok: true, detail: format!("{} reachable", self.db().backend().name()) },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database ping failed");
                Check { ok: false, detail: "database unreachable".into() }
            }
            Err(_) => Check { ok: false, detail: "database did not answer within 3 s".into() },
        };
        let migrations = if !database.ok {
            Check { ok: false, detail: "unknown (database unreachable)".into() }
        } else {
            match tokio::time::timeout(LIMIT, self.db().migration_status()).await {
                Ok(Ok(s)) => describe_migrations(&s),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "readiness: migration status failed");
                    Check { ok: false, detail: "cannot read migration state".into() }
                }
                Err(_) => Check { ok: false, detail: "migration state did not load within 3 s".into() },
            }
        };
        Readiness { ready: database.ok && migrations.ok, database, migrations }
    }

    pub async fn status(&self) -> Status {
        let readiness = self.readiness().await;
        let schema_version = match readiness.database.ok {
            true => self.db().migration_status().await.ok().and_then(|s| s.current_version),
            false => None,
        };
        Status {
            backend: self.db().backend(),
            schema_version,
            ready: readiness.ready,
            uptime: self.inner.started.elapsed(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

fn describe_migrations(s: &MigrationStatus) -> Check {
    if s.is_current() {
        let v = s.current_version.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
        return Check { ok: true, detail: format!("schema at version {v}") };
    }
    let mut problems = Vec::new();
    if s.pending > 0 {
        problems.push(format!("{} migration(s) pending", s.pending));
    }
    if s.broken > 0 {
        problems.push(format!("{} migration(s) failed or modified", s.broken));
    }
    if s.unknown > 0 {
        problems.push(format!("{} migration(s) newer than this binary", s.unknown));
    }
    Check { ok: false, detail: problems.join(", ") }
}
