use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use super::config::{DatabaseConfig, DatabaseTarget};
use super::DbError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A connection pool to the platform database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    /// Live audit announcements for this database (see `audit::live`).
    hub: std::sync::Arc<super::notify::Hub>,
}

/// How the database schema compares with the migrations compiled into this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Highest migration version applied successfully, if any.
    pub current_version: Option<i64>,
    /// Migrations this binary has that the database has not applied yet.
    pub pending: usize,
    /// Applied migrations whose recorded checksum differs from ours, or that failed half way.
    pub broken: usize,
    /// Applied migrations this binary does not know (the database is newer than the code).
    pub unknown: usize,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.pending == 0 && self.broken == 0 && self.unknown == 0
    }
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot make the database file {path} readable by its owner only: {source}")]
    DataFile { path: String, source: std::io::Error },
    #[error("cannot connect to the {backend} database ({target}): {source}")]
    Connect { backend: &'static str, target: String, source: sqlx::Error },
    #[error("database migration failed on {backend}: {source}")]
    Migrate { backend: &'static str, source: sqlx::migrate::MigrateError },
}

/// The data directory holds the database (and, in embedded mode, the master keys and the outbox): created
/// readable by its owner only, and tightened to that if it exists with wider permissions.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::info!(dir = %dir.display(), "data directory made readable by its owner only (0700)");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The SQLite file: created 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm` files the same
/// mode), and tightened to 0600 if it exists with wider permissions.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for file in [path.to_path_buf(), suffixed(path, "-wal"), suffixed(path, "-shm")] {
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn suffixed(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

impl Db {
    /// Opens a pool to the configured database. The SQLite file and its folder are created when missing;
    /// SQLite runs in WAL mode with foreign keys enforced. Does not migrate: see [`Db::migrate`].
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, ConnectError> {
        let target = &config.target;
        let wrap = |source| ConnectError::Connect { backend: target.backend_name(), target: target.describe(), source };
        let pool = match target {
            DatabaseTarget::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    private_dir(dir)
                        .map_err(|source| ConnectError::DataDir { path: dir.display().to_string(), source })?;
                }
                private_file(path)
                    .map_err(|source| ConnectError::DataFile { path: path.display().to_string(), source })?;
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(wrap)?;
                Pool::Sqlite(pool)
            }
            DatabaseTarget::Postgres { url } => {
                let options = PgConnectOptions::from_str(url.expose_secret()).map_err(wrap)?;
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(wrap)?;
                Pool::Postgres(pool)
            }
        };
        Ok(Self { pool, hub: Default::default() })
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn hub(&self) -> &std::sync::Arc<super::notify::Hub> {
        &self.hub
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending migration. Each migration runs in a transaction; a failure leaves the schema as
    /// it was before that migration and is returned, so startup stops instead of limping on.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        let backend = self.backend().name();
        let result = match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        };
        result.map_err(|source| ConnectError::Migrate { backend, source })
    }

    /// Compares the applied migrations with the ones compiled into this binary.
    pub async fn migration_status(&self) -> Result<MigrationStatus, DbError> {
        let applied: Vec<(i64, bool, Vec<u8>)> = match self.table_exists("_sqlx_migrations").await? {
            false => Vec::new(),
            true => on_pool!(self, |p| sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations")
                .fetch_all(p)
                .await?),
        };
        let ours = self.migrator().iter().filter(|m| m.migration_type.is_up_migration());
        let mut status = MigrationStatus { current_version: None, pending: 0, broken: 0, unknown: 0 };
        for m in ours.clone() {
            match applied.iter().find(|(v, _, _)| *v == m.version) {
                None => status.pending += 1,
                Some((_, success, checksum)) if !*success || checksum[..] != m.checksum[..] => status.broken += 1,
                Some(_) => {}
            }
        }
        status.unknown = applied.iter().filter(|(v, _, _)| !ours.clone().any(|m| m.version == *v)).count();
        status.current_version = applied.iter().filter(|(_, ok, _)| *ok).map(|(v, _, _)| *v).max();
        Ok(status)
    }

    async fn table_exists(&self, name: &str) -> Result<bool, DbError> {
        let found: Option<i64> =
            match &self.pool {
                Pool::Sqlite(p) => {
                    sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1")
                        .bind(name)
                        .fetch_optional(p)
                        .await?
                }
                Pool::Postgres(p) => sqlx::query_scalar(
                    "SELECT 1::BIGINT FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1",
                )
                .bind(name)
                .fetch_optional(p)
                .await?,
            };
        Ok(found.is_some())
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), DbError> {
        let one: i64 = on_pool!(self, |p| sqlx::query_scalar("SELECT CAST(1 AS BIGINT)").fetch_one(p).await?);
        debug_assert_eq!(one, 1);
        Ok(())
    }

    /// Closes every connection; later calls fail. Used at shutdown.
    pub async fn close(&self) {
        self.hub.stop();
        on_pool!(self, |p| p.close().await)
    }
}
