//! Fresh databases for tests: a new SQLite file in a temp dir, or a new PostgreSQL database named by a
//! UUID on the server at `DEPLOYCLAW_TEST_POSTGRES_URL` (scripts/test starts one and sets it).

use std::path::PathBuf;
use std::time::Duration;

use deployclaw::config::{DatabaseConfig, DatabaseTarget};
use deployclaw::db::Db;
use secrecy::SecretString;
use sqlx::Connection;

pub const POSTGRES_ENV: &str = "DEPLOYCLAW_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy)]
pub enum Which {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub db: Db,
    pub config: DatabaseConfig,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

fn admin_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_ENV} is not set: the PostgreSQL half of the database tests needs a server. \
             Run ./scripts/test, which starts one, or point {POSTGRES_ENV} at a role that may CREATE DATABASE."
        )
    })
}

fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("valid postgres URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

impl TestDb {
    /// An empty database (no migrations applied).
    pub async fn empty(which: Which) -> Self {
        match which {
            Which::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let config = config(DatabaseTarget::Sqlite { path: dir.path().join("nested/data/test.db") });
                let db = Db::connect(&config).await.expect("open sqlite");
                Self { db, config, _dir: Some(dir), postgres: None }
            }
            Which::Postgres => {
                let admin = admin_url();
                let name = format!("dc_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to test PostgreSQL server");
                sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.expect("create database");
                conn.close().await.ok();
                let url = with_database(&admin, &name);
                let config = config(DatabaseTarget::Postgres { url: SecretString::from(url) });
                let db = Db::connect(&config).await.expect("open postgres");
                Self { db, config, _dir: None, postgres: Some((admin, name)) }
            }
        }
    }

    /// A migrated database.
    pub async fn fresh(which: Which) -> Self {
        let t = Self::empty(which).await;
        t.db.migrate().await.expect("migrations apply to a fresh database");
        t
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.config.target {
            DatabaseTarget::Sqlite { path } => Some(path.clone()),
            DatabaseTarget::Postgres { .. } => None,
        }
    }

    /// Runs raw SQL outside the platform's API (to prove what the database itself refuses).
    pub async fn raw_execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match &self.config.target {
            DatabaseTarget::Sqlite { path } => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
                Ok(sqlx::query(sql).execute(&mut c).await?.rows_affected())
            }
            DatabaseTarget::Postgres { url } => {
                use secrecy::ExposeSecret;
                let mut c = sqlx::PgConnection::connect(url.expose_secret()).await?;
                Ok(sqlx::query(sql).execute(&mut c).await?.rows_affected())
            }
        }
    }

    /// Closes the pool and drops the PostgreSQL database.
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some((admin, name)) = &self.postgres {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let _ =
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await;
            }
        }
    }
}

fn config(target: DatabaseTarget) -> DatabaseConfig {
    DatabaseConfig { target, max_connections: 5, connect_timeout: Duration::from_secs(10) }
}

/// Declares a test that runs once per backend: `name::sqlite` and `name::postgres`.
macro_rules! db_test {
    ($name:ident, |$t:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let $t = $crate::support::TestDb::fresh($crate::support::Which::Sqlite).await;
                let $t = {
                    $body;
                    $t
                };
                $t.cleanup().await;
            }

            #[tokio::test]
            async fn postgres() {
                let $t = $crate::support::TestDb::fresh($crate::support::Which::Postgres).await;
                let $t = {
                    $body;
                    $t
                };
                $t.cleanup().await;
            }
        }
    };
}
pub(crate) use db_test;

impl TestDb {
    /// `SELECT COUNT(*) ...` outside the platform's API.
    pub async fn raw_count(&self, sql: &str) -> i64 {
        match &self.config.target {
            DatabaseTarget::Sqlite { path } => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            DatabaseTarget::Postgres { url } => {
                use secrecy::ExposeSecret;
                let mut c = sqlx::PgConnection::connect(url.expose_secret()).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

/// A keyring with fresh random keys for the given versions.
pub fn test_keyring(versions: &[u32]) -> deployclaw::keys::keyring::Keyring {
    use deployclaw::keys::keyring::{KeyVersion, Keyring, MasterKey};
    Keyring::new(versions.iter().map(|v| (KeyVersion(*v), MasterKey::generate())), "test").unwrap()
}

impl TestDb {
    /// A UUID as a SQL literal of the backend's id type (BLOB on SQLite, UUID on PostgreSQL).
    pub fn literal_uuid(&self, id: uuid::Uuid) -> String {
        match self.config.target {
            DatabaseTarget::Sqlite { .. } => format!("X'{}'", id.simple()),
            DatabaseTarget::Postgres { .. } => format!("'{id}'::uuid"),
        }
    }
}

/// A new client named `name` with contact address `owner@<name>.example`.
pub async fn new_client(db: &Db, name: &str) -> deployclaw::db::clients::Client {
    use deployclaw::db::clients::{self, ClientName, NewClient};
    let email = format!("owner@{}.example", name.to_lowercase());
    clients::create(
        db,
        NewClient {
            name: ClientName::parse(name).unwrap(),
            email: deployclaw::email::EmailAddress::parse(&email).unwrap(),
        },
    )
    .await
    .unwrap()
}

/// A fresh second-factor proof for a user of `client`, made the only way there is: from a signed-in session.
pub fn fresh_proof(client: deployclaw::db::ClientId) -> deployclaw::identity::fresh::FreshTwoFactor {
    use deployclaw::identity::session::{SessionAuth, Stage};
    let ctx = deployclaw::context::RequestContext { ip: "203.0.113.1".parse().unwrap(), user_agent: None };
    let now = deployclaw::db::now();
    let user_id = deployclaw::db::UserId::new();
    let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: client, user_id }, &ctx, now);
    auth.second_factor_passed(client, user_id, now);
    deployclaw::identity::fresh::FreshTwoFactor::from_session(&auth, now).expect("fresh")
}

/// How long a test waits for something it expects to happen (a container to answer, an event to be written,
/// a background task to act). Generous on purpose: the suite must pass on a loaded machine, so no test may
/// pass or fail by how fast the machine is; a wait that runs out is a failure, never a pass.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `check` until it holds (every 50 ms); fails naming `what` once [`PATIENCE`] has passed. Polling for an
/// observable state is the only waiting a test does: never a fixed sleep in place of the event it needs.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True for the connection errors of a service that is still starting (nothing listens yet, or its network
/// is not up yet): the only errors a wait for it may retry.
pub fn not_up_yet(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | HostUnreachable
            | NetworkUnreachable
            | UnexpectedEof
            | BrokenPipe
            | TimedOut
    )
}

/// Whether the container `name` has stopped. Podman can answer 500 "no such process" while the process it
/// inspects is exiting: that answer, and only that one, means "not yet".
pub async fn container_stopped(rt: &dyn deployclaw::runtime::ContainerRuntime, name: &str) -> bool {
    match rt.inspect_container(name).await {
        Ok(status) => !status.expect("the container exists").running,
        Err(e) if e.to_string().contains("no such process") => false,
        Err(e) => panic!("inspecting {name}: {e}"),
    }
}

/// Checks a deployed agent's health (as the reconciler does) until it is `running`.
pub async fn until_healthy(
    agents: &deployclaw::agents::Agents,
    client: deployclaw::db::ClientId,
    agent: deployclaw::db::AgentId,
) {
    use deployclaw::db::agents::AgentStatus;
    eventually("the agent is healthy", async || {
        agents.check_health(client, agent).await.unwrap().status == AgentStatus::Running
    })
    .await;
}

/// The parts of an agents service for tests: built-in templates, billing off (the self-hosted plan's limits),
/// no gateway. Change a field with struct update syntax: `AgentsParts { gateway: Some(p), ..agents_parts(..) }`.
pub fn agents_parts(
    db: &Db,
    vault: deployclaw::vault::Vault,
    runtime: Option<std::sync::Arc<dyn deployclaw::runtime::ContainerRuntime>>,
    pool: deployclaw::runtime::subnets::Pool,
) -> deployclaw::agents::AgentsParts {
    deployclaw::agents::AgentsParts {
        db: db.clone(),
        vault,
        runtime,
        pool,
        templates: Default::default(),
        plans: deployclaw::plans::Catalog::self_hosted(),
        gateway: None,
    }
}
