use std::net::SocketAddr;
use std::time::Duration;

use deployclaw::config::{Config, ConfigFile, DatabaseTarget};
use deployclaw::db::Db;
use deployclaw::Platform;
use deployclaw_app::server::{build_router, serve_until_signal};
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
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}, true).await
    }

    /// Starts the app with a tweaked config; `migrate: false` leaves the database unmigrated.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config), migrate: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let platform = if migrate {
            Platform::start(config).await.expect("platform starts")
        } else {
            let db = Db::connect(&config.database).await.unwrap();
            let keyring = deployclaw::vault::keyring::Keyring::new(
                [(deployclaw::vault::keyring::KeyVersion(1), deployclaw::vault::keyring::MasterKey::generate())],
                "test",
            )
            .unwrap();
            Platform::from_parts(config, db, keyring).unwrap()
        };
        let router = build_router(platform.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_until_signal(listener, router, Duration::from_secs(5), async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
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
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("server stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}
