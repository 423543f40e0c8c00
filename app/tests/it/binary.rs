//! The real `deployclaw` binary: subcommands, startup on an empty data dir, failure modes, graceful stop.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::eventually;

const BIN: &str = env!("CARGO_BIN_EXE_deployclaw");

fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEPLOYCLAW_DATA_DIR", dir.join("data"))
        .env("DEPLOYCLAW_SERVER__SITE_ROOT", dir.join("site"))
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `url` until it answers 200 (the server is still starting until then); fails if the server exits.
async fn wait_ready(url: &str, child: &mut Child) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    eventually(&format!("{url} answers 200"), async || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited early with {status}");
        }
        matches!(client.get(url).send().await, Ok(res) if res.status() == 200)
    })
    .await;
}

fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let mut exited = None;
    eventually("the server exits", async || {
        exited = child.try_wait().unwrap();
        exited.is_some()
    })
    .await;
    exited.expect("exited")
}

#[test]
fn check_config_prints_the_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(command(dir.path())
        .arg("check-config")
        .env("DATABASE_URL", "postgres://app:V3ryS3cretPw@db.internal:5432/deployclaw"));
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("configuration OK"));
    assert!(shown.contains("db.internal:5432/deployclaw"));
    assert!(!shown.contains("V3ryS3cretPw"), "{shown}");
}

#[test]
fn check_config_names_the_bad_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(command(dir.path()).arg("check-config").env("DEPLOYCLAW_SERVER__ADDR", "localhost"));
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("server.addr"), "{}", text(&out));

    std::fs::write(dir.path().join("bad.toml"), "[database]\nmax_connections = \"many\"\n").unwrap();
    let out = run(command(dir.path()).args(["--config", "bad.toml", "check-config"]));
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out).contains("database.max_connections"), "{}", text(&out));
}

#[test]
fn migrate_creates_the_data_dir_and_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = run(command(dir.path()).arg("migrate"));
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("schema at version"), "{}", text(&out));
    }
    assert!(dir.path().join("data/deployclaw.db").exists());
}

#[tokio::test]
async fn a_failed_migration_stops_startup_with_a_clear_error() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("data/deployclaw.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (squatter INTEGER)").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    let port = free_port();
    let mut child = command(dir.path())
        .env("DEPLOYCLAW_SERVER__ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child).await;
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    let shown = text(&out);
    assert!(shown.contains("migration failed"), "{shown}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listening");
}

async fn serves_then_stops_cleanly_on_sigterm(extra_env: &[(&str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = command(dir.path());
    cmd.env("DEPLOYCLAW_SERVER__ADDR", format!("127.0.0.1:{port}"))
        .env("DEPLOYCLAW_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    wait_ready(&format!("http://127.0.0.1:{port}/readyz"), &mut child).await;
    let page = reqwest::get(format!("http://127.0.0.1:{port}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    // First start in embedded mode generates the vault key file, readable by its owner only.
    let key_file = dir.path().join("data/master.keys");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("key file generated").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    terminate(&child);
    let status = wait_exit(&mut child).await;
    let out = child.wait_with_output().unwrap();
    let logs = text(&out);
    assert!(status.success(), "exit {status}: {logs}");
    assert!(logs.contains("shutdown requested") && logs.contains("stopped cleanly"), "{logs}");
    for line in String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[tokio::test]
async fn serves_on_sqlite_from_an_empty_data_dir_and_stops_cleanly_on_sigterm() {
    serves_then_stops_cleanly_on_sigterm(&[]).await;
}

#[tokio::test]
async fn serves_on_postgres_when_database_url_says_so() {
    use sqlx::Connection;
    let admin = std::env::var("DEPLOYCLAW_TEST_POSTGRES_URL")
        .expect("DEPLOYCLAW_TEST_POSTGRES_URL must point at a PostgreSQL server (scripts/test sets it)");
    let name = format!("dc_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    serves_then_stops_cleanly_on_sigterm(&[("DATABASE_URL", url.to_string())]).await;
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).execute(&mut conn).await.unwrap();
}

/// Rotation is killed with SIGKILL half way, then run again: every credential ends up under the new key
/// and still decrypts, with the old key retired.
#[tokio::test]
async fn vault_rotation_survives_being_killed_half_way() {
    use base64::Engine as _;
    use deployclaw::audit::Actor;
    use deployclaw::db::{agents, clients, Db};
    use deployclaw::identity::fresh::FreshTwoFactor;
    use deployclaw::keys::keyring::{KeyVersion, Keyring, MasterKey};
    use deployclaw::vault::{rotation, CredentialName, DecryptPurpose, Vault};
    use secrecy::{ExposeSecret, SecretSlice};
    use tokio::io::AsyncBufReadExt;

    const RECORDS: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let key_file = data.join("master.keys");
    let b64 = |k: &[u8; 32]| base64::engine::general_purpose::STANDARD.encode(k);
    let (k1, k2) = ([11u8; 32], [22u8; 32]);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key_file).unwrap();
        std::io::Write::write_all(&mut f, format!("1:{}\n", b64(&k1)).as_bytes()).unwrap();
    }

    // Seed credentials under key 1 through the core, on the same database file the binary will use.
    let mut config = crate::support::test_config(dir.path());
    config.data_dir = data.clone();
    config.database.target = deployclaw::config::DatabaseTarget::Sqlite { path: data.join("deployclaw.db") };
    let db = Db::connect(&config.database).await.unwrap();
    db.migrate().await.unwrap();
    let v1 = Vault::new(db.clone(), Keyring::new([(KeyVersion(1), MasterKey::from_bytes(k1))], "test").unwrap());
    let client = clients::create(
        &db,
        clients::NewClient {
            name: clients::ClientName::parse("Acme").unwrap(),
            email: deployclaw::email::EmailAddress::parse("o@acme.example").unwrap(),
        },
    )
    .await
    .unwrap()
    .id;
    let agent = agents::create(
        &db,
        client,
        agents::NewAgent {
            name: agents::AgentName::parse("bot").unwrap(),
            template: "openclaw".into(),
            config: serde_json::json!({}),
            permissions: serde_json::json!({}),
        },
    )
    .await
    .unwrap()
    .id;
    let proof = {
        use deployclaw::identity::session::{SessionAuth, Stage};
        let ctx = deployclaw::context::RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: None };
        let now = deployclaw::db::now();
        let user_id = deployclaw::db::UserId::new();
        let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: client, user_id }, &ctx, now);
        auth.second_factor_passed(client, user_id, now);
        FreshTwoFactor::from_session(&auth, now).unwrap()
    };
    for i in 0..RECORDS {
        let name = CredentialName::parse(&format!("key{i}")).unwrap();
        let value = SecretSlice::from(format!("secret-number-{i}").into_bytes());
        v1.put(Actor::Platform, client, agent, &name, value, &proof, None).await.unwrap();
    }

    // Add key 2, start rotating with the longest pause the command allows (a minute) after each batch, and kill
    // the process as soon as it reports its first batch: it is then in that pause, so the kill lands half way.
    std::fs::write(&key_file, format!("1:{}\n2:{}\n", b64(&k1), b64(&k2))).unwrap();
    let mut child = tokio::process::Command::from({
        let mut cmd = command(dir.path());
        cmd.args(["vault", "rotate", "--batch-size", "5", "--throttle-ms", "60000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    })
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(crate::support::PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("rotated ") {
                return line;
            }
        }
        panic!("rotation printed no progress");
    })
    .await
    .expect("a progress report");
    assert!(first.contains("left below v2"), "{first}");
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed, not finished");

    let v12 = Vault::new(
        db.clone(),
        Keyring::new([(KeyVersion(1), MasterKey::from_bytes(k1)), (KeyVersion(2), MasterKey::from_bytes(k2))], "t")
            .unwrap(),
    );
    let midway = rotation::status(&v12).await.unwrap();
    assert_eq!(midway.len(), 2, "half way: both versions in use: {midway:?}");
    assert!(midway.iter().all(|(_, n)| *n > 0), "{midway:?}");

    // Run again to completion.
    let out = run(command(dir.path()).args(["vault", "rotate", "--batch-size", "50"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("finished"), "{}", text(&out));
    let out = run(command(dir.path()).args(["vault", "status"]));
    assert!(text(&out).contains(&format!("credentials sealed with v2: {RECORDS}")), "{}", text(&out));

    // Key 1 retired: every record opens with key 2 alone.
    let v2 = Vault::new(db.clone(), Keyring::new([(KeyVersion(2), MasterKey::from_bytes(k2))], "t").unwrap());
    for i in 0..RECORDS {
        let name = CredentialName::parse(&format!("key{i}")).unwrap();
        let value = v2.decrypt(Actor::Platform, client, agent, &name, DecryptPurpose::InjectIntoAgent).await.unwrap();
        assert_eq!(value.expose_secret(), format!("secret-number-{i}").as_bytes());
    }
    db.close().await;
}

#[test]
fn admin_create_makes_a_platform_operator_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(command(dir.path()).args(["admin", "create", "Ops@DeployClaw.example"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("created platform operator ops@deployclaw.example"), "{}", text(&out));
    let again = run(command(dir.path()).args(["admin", "create", "ops@deployclaw.example"]));
    assert!(!again.status.success());
    assert!(text(&again).contains("already has an account"), "{}", text(&again));
    let bad = run(command(dir.path()).args(["admin", "create", "not-an-address"]));
    assert!(!bad.status.success());
    assert!(text(&bad).contains("looks like name@example.com"), "{}", text(&bad));
}
