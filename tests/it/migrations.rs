use crate::support::{db_test, TestDb, Which};
use deployclaw::config::{Config, ConfigFile};
use deployclaw::db::Backend;
use deployclaw::Platform;

db_test!(fresh_database_is_fully_migrated_and_ready, |t| {
    let status = t.db.migration_status().await.unwrap();
    assert!(status.is_current(), "{status:?}");
    assert!(status.current_version.is_some());
    t.db.ping().await.unwrap();
});

db_test!(migrating_twice_is_harmless, |t| {
    t.db.migrate().await.expect("second run is a no-op");
    assert!(t.db.migration_status().await.unwrap().is_current());
});

async fn unmigrated_database_is_reported_pending(which: Which) {
    let t = TestDb::empty(which).await;
    let status = t.db.migration_status().await.unwrap();
    assert!(status.pending > 0 && status.current_version.is_none(), "{status:?}");
    let platform =
        Platform::from_parts(Config::load(ConfigFile::None).unwrap(), t.db.clone(), crate::support::test_keyring(&[1]))
            .unwrap();
    let readiness = platform.readiness().await;
    assert!(!readiness.ready);
    assert!(readiness.database.ok);
    assert!(readiness.migrations.detail.contains("pending"), "{readiness:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn unmigrated_sqlite_is_not_ready() {
    unmigrated_database_is_reported_pending(Which::Sqlite).await;
}

#[tokio::test]
async fn unmigrated_postgres_is_not_ready() {
    unmigrated_database_is_reported_pending(Which::Postgres).await;
}

/// A migration that cannot apply (here: a table it creates already exists) fails with an error naming the
/// backend and the cause, and leaves the database as it was.
async fn failed_migration_is_an_error_and_changes_nothing(which: Which) {
    let t = TestDb::empty(which).await;
    t.raw_execute("CREATE TABLE agents (squatter INTEGER)").await.unwrap();
    let err = t.db.migrate().await.expect_err("migration must fail").to_string();
    assert!(err.contains("migration failed"), "{err}");
    assert!(err.contains(t.db.backend().name()), "{err}");
    // The failed migration's transaction rolled back: the tables it created before failing are gone.
    assert!(t.raw_execute("SELECT 1 FROM clients").await.is_err(), "clients table survived a failed migration");
    let status = t.db.migration_status().await.unwrap();
    assert!(!status.is_current());
    t.cleanup().await;
}

#[tokio::test]
async fn failed_migration_on_sqlite_is_an_error_and_changes_nothing() {
    failed_migration_is_an_error_and_changes_nothing(Which::Sqlite).await;
}

#[tokio::test]
async fn failed_migration_on_postgres_is_an_error_and_changes_nothing() {
    failed_migration_is_an_error_and_changes_nothing(Which::Postgres).await;
}

#[tokio::test]
async fn sqlite_creates_its_data_dir_and_runs_in_wal_mode_with_foreign_keys() {
    let t = TestDb::fresh(Which::Sqlite).await;
    let path = t.sqlite_path().unwrap();
    assert!(path.exists(), "database file created with its parent folders");
    assert_eq!(t.db.backend(), Backend::Sqlite);
    let wal = path.with_file_name("test.db-wal");
    assert!(wal.exists(), "WAL file present: journal_mode=WAL");
    // Foreign keys are enforced on the platform's own pool: a user pointing at no client is refused.
    let email = deployclaw::email::EmailAddress::parse("x@example.com").unwrap();
    let err = deployclaw::db::users::create(
        &t.db,
        deployclaw::db::ClientId::new(),
        &email,
        deployclaw::db::users::Role::Owner,
    )
    .await
    .expect_err("foreign key not enforced");
    assert!(matches!(err, deployclaw::db::DbError::Conflict(_)), "{err:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn closed_pool_makes_the_platform_not_ready() {
    let t = TestDb::fresh(Which::Sqlite).await;
    let platform =
        Platform::from_parts(Config::load(ConfigFile::None).unwrap(), t.db.clone(), crate::support::test_keyring(&[1]))
            .unwrap();
    assert!(platform.readiness().await.ready);
    t.db.close().await;
    let readiness = platform.readiness().await;
    assert!(!readiness.ready && !readiness.database.ok, "{readiness:?}");
    t.cleanup().await;
}

/// The lifecycle migration rebuilds the agents table on SQLite (a CHECK constraint cannot change in place);
/// an agent's credentials, which cascade from it, must come through untouched on both backends.
async fn agents_and_their_credentials_survive_the_lifecycle_migration(which: Which) {
    use sqlx::Connection;
    let t = TestDb::empty(which).await;
    let folder = match which {
        Which::Sqlite => "sqlite",
        Which::Postgres => "postgres",
    };
    // Bring the database to the schema before the lifecycle migration.
    let before = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(folder);
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "20261123000006" {
            std::fs::copy(&path, before.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(before.path()).await.unwrap();
    match t.sqlite_path() {
        Some(path) => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            migrator.run(&mut c).await.unwrap();
        }
        None => {
            let url = match &t.config.target {
                deployclaw::config::DatabaseTarget::Postgres { url } => {
                    secrecy::ExposeSecret::expose_secret(url).to_string()
                }
                _ => unreachable!(),
            };
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            migrator.run(&mut c).await.unwrap();
        }
    }
    let (client, agent, credential) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let (c, a, k) = (t.literal_uuid(client), t.literal_uuid(agent), t.literal_uuid(credential));
    let now = "'2026-11-23T00:00:00Z'";
    let blob = |hex: &str| match which {
        Which::Sqlite => format!("X'{hex}'"),
        Which::Postgres => format!("'\\x{hex}'::bytea"),
    };
    for sql in [
        format!("INSERT INTO clients (id, name, email, created_at, updated_at) VALUES ({c}, 'acme', 'o@acme.example', {now}, {now})"),
        format!(
            "INSERT INTO agents (id, client_id, name, status, template, permissions, created_at, updated_at, network_block) \
             VALUES ({a}, {c}, 'bot', 'running', 'test-agent', '{{}}', {now}, {now}, 7)"
        ),
        format!(
            "INSERT INTO agent_credentials (id, client_id, agent_id, name, key_version, nonce, ciphertext, created_at, updated_at) \
             VALUES ({k}, {c}, {a}, 'openai_key', 1, {}, {}, {now}, {now})",
            blob(&"ab".repeat(12)),
            blob(&"cd".repeat(32))
        ),
    ] {
        t.raw_execute(&sql).await.unwrap();
    }
    t.db.migrate().await.expect("the lifecycle migration applies over existing rows");
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM agent_credentials").await, 1, "the credential survived");
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM agents WHERE status = 'running' AND network_block = 7").await, 1);
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM agents WHERE restart_count = 0").await, 1);
    t.raw_execute(&format!("UPDATE agents SET status = 'stopping' WHERE id = {a}")).await.expect("new state allowed");
    assert!(t.raw_execute(&format!("UPDATE agents SET status = 'bogus' WHERE id = {a}")).await.is_err());
    // The foreign key still holds after the rebuild: deleting the agent takes its credentials along.
    t.raw_execute(&format!("DELETE FROM agents WHERE id = {a}")).await.unwrap();
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM agent_credentials").await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn agents_and_their_credentials_survive_the_lifecycle_migration_on_sqlite() {
    agents_and_their_credentials_survive_the_lifecycle_migration(Which::Sqlite).await;
}

#[tokio::test]
async fn agents_and_their_credentials_survive_the_lifecycle_migration_on_postgres() {
    agents_and_their_credentials_survive_the_lifecycle_migration(Which::Postgres).await;
}

#[tokio::test]
async fn the_sqlite_data_directory_and_files_are_readable_by_their_owner_only() {
    use deployclaw::db::config::{DatabaseConfig, DatabaseTarget};
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let connect = |path: std::path::PathBuf| async move {
        let config = DatabaseConfig {
            target: DatabaseTarget::Sqlite { path },
            max_connections: 2,
            connect_timeout: std::time::Duration::from_secs(10),
        };
        let db = deployclaw::db::Db::connect(&config).await.unwrap();
        db.migrate().await.unwrap();
        db
    };

    // Created fresh: the folder 0700, the database and its write-ahead log 0600, whatever the umask.
    let dir = root.path().join("data");
    let db = connect(dir.join("deployclaw.db")).await;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("deployclaw.db")), 0o600);
    assert_eq!(mode(&dir.join("deployclaw.db-wal")), 0o600);
    db.close().await;

    // Found with wider permissions (an older install, a copied backup): tightened at start.
    let old = root.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(old.join("deployclaw.db"), b"").unwrap();
    std::fs::set_permissions(old.join("deployclaw.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = connect(old.join("deployclaw.db")).await;
    assert_eq!(mode(&old), 0o700);
    assert_eq!(mode(&old.join("deployclaw.db")), 0o600);
    db.close().await;
}
