use std::net::SocketAddr;
use std::time::Duration;

use deployclaw::config::{Config, ConfigFile, DatabaseTarget};
use deployclaw::db::Db;
use deployclaw::Platform;
use deployclaw_app::server::build_router;
use deployclaw_app::server::listener::{self, Hooks, ListenerSettings};
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub platform: Platform,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// A configuration for tests: embedded defaults, a private data dir, loopback, any free port.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::load(ConfigFile::None).expect("default config is valid");
    config.data_dir = dir.to_path_buf();
    config.database.target = DatabaseTarget::Sqlite { path: dir.join("deployclaw.db") };
    config.server.addr = "127.0.0.1:0".parse().unwrap();
    config.server.site_root = dir.join("site");
    config.mail.transport = deployclaw::mail::MailTransport::Outbox { dir: dir.join("outbox") };
    // Each test app its own /24 of agent networks, so apps running at once never want the same subnet.
    static NEXT_POOL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = (std::process::id() + NEXT_POOL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 256;
    config.runtime.network_pool = deployclaw::runtime::subnets::Pool::parse(&format!("10.215.{n}.0/24")).unwrap();
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}, true).await
    }

    /// Starts the app with a tweaked config; `migrate: false` leaves the database unmigrated.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config), migrate: bool) -> Self {
        Self::spawn_with_hooks(tweak, migrate, Hooks::default()).await
    }

    /// Starts the app with a tweaked config and the listener's hooks (e.g. an observer of accepted sockets).
    pub async fn spawn_with_hooks(tweak: impl FnOnce(&mut Config), migrate: bool, hooks: Hooks) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let platform = if migrate {
            Platform::start(config).await.expect("platform starts")
        } else {
            let db = Db::connect(&config.database).await.unwrap();
            let keyring = deployclaw::keys::keyring::Keyring::new(
                [(deployclaw::keys::keyring::KeyVersion(1), deployclaw::keys::keyring::MasterKey::generate())],
                "test",
            )
            .unwrap();
            Platform::from_parts(config, db, keyring).unwrap()
        };
        let router = build_router(platform.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut settings = ListenerSettings::from_config(&platform.config().server);
        settings.grace = Duration::from_secs(5);
        let server = tokio::spawn(listener::serve(listener, router, settings, hooks, async move {
            let _ = stopped.await;
        }));
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(PATIENCE).build().unwrap();
        Self { base: format!("http://{addr}"), platform, client, stop: Some(stop), server: Some(server), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request completes")
    }

    /// Stops the server as SIGTERM would, and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(PATIENCE, server).await.expect("the server stops").unwrap().unwrap();
        }
    }
}

/// A signed-in browser for tests: a session created directly in the store (both factors passed just now).
pub struct Browser {
    pub user: deployclaw::db::users::User,
    pub cookie: String,
}

impl TestApp {
    /// A new user with `role` in `client` (a new client when `None`).
    pub async fn user(
        &self,
        client: Option<deployclaw::db::ClientId>,
        email: &str,
        role: deployclaw::db::users::Role,
    ) -> deployclaw::db::users::User {
        use deployclaw::db::clients::{self, ClientName, NewClient};
        use deployclaw::email::EmailAddress;
        let db = self.platform.db_for_tests();
        let email = EmailAddress::parse(email).unwrap();
        let client_id = match client {
            Some(id) => id,
            None => {
                let name = ClientName::parse(&format!("client of {email}")).unwrap();
                clients::create(db, NewClient { name, email: email.clone() }).await.unwrap().id
            }
        };
        deployclaw::db::users::create(db, client_id, &email, role).await.unwrap()
    }

    /// A signed-in session for `user`; `second_factor_age` is how long ago their TOTP passed.
    pub async fn sign_in_as(&self, user: &deployclaw::db::users::User, second_factor_age: chrono::Duration) -> Browser {
        use deployclaw::context::RequestContext;
        use deployclaw::identity::session::{SessionAuth, Stage, SESSION_KEY};
        use tower_sessions::session::{Id, Record};
        use tower_sessions::SessionStore;
        let now = deployclaw::db::now();
        let ctx = RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: Some("test-browser".into()) };
        let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: user.client_id, user_id: user.id }, &ctx, now);
        auth.second_factor_passed(user.client_id, user.id, now - second_factor_age);
        auth.started_at = now - second_factor_age;
        let mut record = Record {
            id: Id::default(),
            data: [(SESSION_KEY.to_string(), serde_json::to_value(&auth).unwrap())].into_iter().collect(),
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
                + tower_sessions::cookie::time::Duration::minutes(30),
        };
        self.platform.sessions().create(&mut record).await.unwrap();
        Browser { user: user.clone(), cookie: format!("{}={}", deployclaw_app::server::session::DEV_COOKIE, record.id) }
    }

    /// Calls a server function the way the browser does (form-encoded POST from our own origin).
    pub async fn call(&self, endpoint: &str, cookie: Option<&str>, args: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(&format!("/api/fn/{endpoint}")))
            .header("origin", self.platform.config().server.public_origin())
            .header("user-agent", "test-browser")
            .form(args);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send().await.expect("request completes")
    }

    /// A page with a session cookie.
    pub async fn get_as(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.client.get(self.url(path)).header("cookie", cookie).send().await.expect("request completes")
    }
}

/// The `Set-Cookie` session value of a response, as a `Cookie` header (`name=value`), if it set one.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let pair = v.split(';').next()?.trim();
        pair.starts_with(deployclaw_app::server::session::DEV_COOKIE).then(|| pair.to_string())
    })
}

/// How long a test waits for something it expects to happen. Generous on purpose: the suite must pass on a
/// loaded machine; a wait that runs out is a failure, never a pass.
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

/// A fresh, empty PostgreSQL database on the test server (`DEPLOYCLAW_TEST_POSTGRES_URL`, which
/// `./scripts/test` sets): its URL.
pub async fn fresh_postgres_url() -> String {
    use sqlx::Connection;
    let admin =
        std::env::var("DEPLOYCLAW_TEST_POSTGRES_URL").expect("DEPLOYCLAW_TEST_POSTGRES_URL (./scripts/test sets it)");
    let name = format!("dc_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Drops a database [`fresh_postgres_url`] made (whoever is still connected to it).
pub async fn drop_postgres(url: &str) {
    use sqlx::Connection;
    let admin = std::env::var("DEPLOYCLAW_TEST_POSTGRES_URL").expect("DEPLOYCLAW_TEST_POSTGRES_URL");
    let (_, name) = url.rsplit_once('/').unwrap();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await.unwrap();
}

/// [`fresh_postgres_url`] as a config tweak for [`TestApp::spawn_with`].
pub async fn on_fresh_postgres() -> impl FnOnce(&mut Config) {
    let url = fresh_postgres_url().await;
    move |c: &mut Config| c.database.target = DatabaseTarget::Postgres { url: url.into() }
}
