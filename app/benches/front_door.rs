//! The front door as a user receives it: requests per second and latency of the web listener under 16
//! kept-alive connections (wrk on loopback), with a same-run baseline that turns Nagle's algorithm back on, and
//! the server's memory after 100 sign-ups and 100 recovery-code redemptions, with a same-run baseline of the
//! old way of hashing (a fresh 19 MiB argon2 allocation per hash on the blocking pool, in a child process).
//!
//! Run: `./scripts/bench` (installs wrk), or `cargo bench -p deployclaw-app --bench front_door --features ssr`
//! with wrk on PATH. The server runs in this process (release build), on SQLite in a temp dir, loopback only.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use deployclaw::config::{Config, ConfigFile, DatabaseTarget};
use deployclaw::context::RequestContext;
use deployclaw::db::users::{Role, User};
use deployclaw::Platform;
use deployclaw_app::server::build_router;
use deployclaw_app::server::listener::{self, Hooks, ListenerSettings};

const SIGN_UPS: usize = 100;

fn main() {
    if std::env::args().any(|a| a == "--baseline-hashing") {
        baseline_hashing();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench --list
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(bench());
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

async fn platform(dir: &std::path::Path) -> Platform {
    let mut config = Config::load(ConfigFile::None).unwrap();
    config.data_dir = dir.to_path_buf();
    config.database.target = DatabaseTarget::Sqlite { path: dir.join("deployclaw.db") };
    config.server.addr = "127.0.0.1:0".parse().unwrap();
    config.server.site_root = dir.join("site");
    config.mail.transport = deployclaw::mail::MailTransport::Outbox { dir: dir.join("outbox") };
    Platform::start(config).await.unwrap()
}

/// Serves the platform on a fresh loopback port; `nagle: true` turns Nagle's algorithm back on for the baseline.
async fn serve(platform: &Platform, nagle: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hooks = Hooks {
        on_accept: nagle.then(|| Arc::new(|s: &tokio::net::TcpStream| s.set_nodelay(false).unwrap()) as _),
        ..Hooks::default()
    };
    let settings = ListenerSettings::from_config(&platform.config().server);
    let router = build_router(platform.clone()).unwrap();
    tokio::spawn(listener::serve(listener, router, settings, hooks, std::future::pending()));
    addr
}

async fn user(platform: &Platform, n: usize) -> User {
    use deployclaw::db::clients::{self, ClientName, NewClient};
    let email = deployclaw::email::EmailAddress::parse(&format!("bench{n}@acme.example")).unwrap();
    let name = ClientName::parse(&format!("Bench {n}")).unwrap();
    let client = clients::create(platform.db_for_tests(), NewClient { name, email: email.clone() }).await.unwrap();
    deployclaw::db::users::create(platform.db_for_tests(), client.id, &email, Role::Owner).await.unwrap()
}

/// A signed-in session cookie for `user` (both factors just passed), as the test support makes one.
async fn session(platform: &Platform, user: &User) -> String {
    use deployclaw::identity::session::{SessionAuth, Stage, SESSION_KEY};
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore;
    let now = deployclaw::db::now();
    let ctx = RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: Some("bench".into()) };
    let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: user.client_id, user_id: user.id }, &ctx, now);
    auth.second_factor_passed(user.client_id, user.id, now);
    let mut record = Record {
        id: Id::default(),
        data: [(SESSION_KEY.to_string(), serde_json::to_value(&auth).unwrap())].into_iter().collect(),
        expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
            + tower_sessions::cookie::time::Duration::hours(2),
    };
    platform.sessions().create(&mut record).await.unwrap();
    format!("{}={}", deployclaw_app::server::session::DEV_COOKIE, record.id)
}

/// `wrk -t1 -c16 -d5s --latency`: (requests per second, p50 ms, p99 ms).
fn wrk(addr: SocketAddr, path: &str, cookie: Option<&str>) -> (f64, f64, f64) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c16", "-d5s", "--latency", "-H", "Accept-Encoding: br, gzip"]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: {c}")]);
    }
    let out = cmd.arg(format!("http://{addr}{path}")).output().expect("wrk on PATH (./scripts/bench installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| -> f64 {
        let line = text.lines().find(|l| l.trim_start().starts_with(prefix)).unwrap_or_else(|| panic!("{text}"));
        let v = line.trim_start().trim_start_matches(prefix).split_whitespace().next().unwrap();
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap();
        match unit {
            "us" => n / 1000.0,
            "ms" | "" => n,
            "s" => n * 1000.0,
            "k" => n * 1000.0,
            other => panic!("unit {other} in {line}"),
        }
    };
    let errors = text.lines().any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    assert!(!errors, "wrk saw errors: {text}");
    (field("Requests/sec:"), field("50%"), field("99%"))
}

async fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(dir.path()).await;
    // A stylesheet the size of ours, so the file path is measured as the browser meets it.
    let pkg = dir.path().join("site/pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("deployclaw.css"), "body { color: #123456; }\n".repeat(520)).unwrap();
    let fresh = rss_mib();
    // Memory after real use, on a fresh server: sign-ups (enrolment: ten recovery codes hashed) and
    // recovery-code sign-ins.
    let mut enrolled = Vec::new();
    for n in 1..=SIGN_UPS {
        let u = user(&platform, n).await;
        let ctx = RequestContext { ip: format!("10.1.{}.{}", n / 250, n % 250 + 1).parse().unwrap(), user_agent: None };
        let enrollment = platform.two_factor().begin_enrollment(&u).await.unwrap();
        let code = totp_rs::Builder::new()
            .with_secret(totp_rs::Secret::try_from_base32(enrollment.secret_base32.as_str()).unwrap())
            .with_account_name("bench")
            .build()
            .unwrap()
            .generate(chrono::Utc::now().timestamp() as u64)
            .to_string();
        let codes = platform.two_factor().confirm_enrollment(&u, &code, &ctx, chrono::Utc::now()).await.unwrap();
        enrolled.push((u, ctx, codes[0].expose().to_string()));
    }
    let after_sign_ups = rss_mib();
    for (u, ctx, code) in &enrolled {
        platform.two_factor().redeem_recovery_code(u, code, ctx, chrono::Utc::now()).await.unwrap();
    }
    let after_redemptions = rss_mib();
    let owner = user(&platform, 0).await;
    let cookie = session(&platform, &owner).await;
    let now = serve(&platform, false).await;
    let nagle = serve(&platform, true).await;

    println!("front door: wrk -t1 -c16 -d5s on loopback, release build, SQLite; same process, same data");
    println!(
        "{:<22} {:>12} {:>9} {:>9}   {:>12} {:>9}",
        "request", "req/s", "p50 ms", "p99 ms", "Nagle req/s", "p50 ms"
    );
    let mut rows = Vec::new();
    for (path, signed_in) in [
        ("/readyz", false),
        ("/pkg/deployclaw.css", false),
        ("/", false),
        ("/security", false),
        ("/dashboard", true),
        ("/dashboard/agents", true),
    ] {
        let c = signed_in.then_some(cookie.as_str());
        let (rps, p50, p99) = tokio::task::spawn_blocking({
            let path = path.to_string();
            let c = c.map(str::to_string);
            move || wrk(now, &path, c.as_deref())
        })
        .await
        .unwrap();
        let (base_rps, base_p50, _) = tokio::task::spawn_blocking({
            let path = path.to_string();
            let c = c.map(str::to_string);
            move || wrk(nagle, &path, c.as_deref())
        })
        .await
        .unwrap();
        println!("{path:<22} {rps:>12.0} {p50:>9.2} {p99:>9.2}   {base_rps:>12.0} {base_p50:>9.2}");
        rows.push((path, rps, p50));
    }
    let readyz = rows[0].1;
    let css = rows[1].1;
    println!("css req/s / readyz req/s: {:.2}", css / readyz);
    println!(
        "server RSS: fresh {fresh:.1} MiB, after {SIGN_UPS} sign-ups {after_sign_ups:.1} MiB, after {SIGN_UPS} \
         recovery redemptions {after_redemptions:.1} MiB, after the load above {:.1} MiB",
        rss_mib()
    );

    let baseline = Command::new(std::env::current_exe().unwrap()).arg("--baseline-hashing").output().unwrap();
    print!("{}", String::from_utf8_lossy(&baseline.stdout));
}

/// The old way, for comparison: every argon2 hash allocates its 19 MiB on a blocking-pool thread. The same
/// number of hashes as the sign-ups and redemptions above (ten per sign-up, up to ten per redemption).
fn baseline_hashing() {
    use argon2::password_hash::rand_core::OsRng;
    use argon2::password_hash::{PasswordHasher, SaltString};
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let fresh = rss_mib();
    rt.block_on(async {
        for _ in 0..SIGN_UPS * 2 {
            tokio::task::spawn_blocking(|| {
                for i in 0..10 {
                    let salt = SaltString::generate(&mut OsRng);
                    argon2::Argon2::default().hash_password(format!("CODE{i:06}").as_bytes(), &salt).unwrap();
                }
            })
            .await
            .unwrap();
        }
    });
    println!(
        "baseline (argon2 allocating per hash on the blocking pool, {} hashes): RSS fresh {fresh:.1} MiB, after {:.1} MiB",
        SIGN_UPS * 20,
        rss_mib()
    );
}
