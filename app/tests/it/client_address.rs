//! The client's address behind a reverse proxy, and built-in TLS.
//!
//! - From a trusted proxy, the client is the right-most untrusted `X-Forwarded-For` entry: through the real
//!   nginx of `docs/examples/nginx.conf`, five code requests from one client (each with a forged header) do not
//!   stop a sixth from another client, and do stop the same client's sixth. From an untrusted peer the header
//!   is ignored. On SQLite and PostgreSQL (the throttle is in the database).
//! - Built-in TLS serves the configured certificate, and a renewed one once its files change.
//!
//! Network safety: loopback only (127.0.0.1 for the app and nginx; 127.0.0.2-127.0.0.4 as client addresses);
//! every wait bounded by `PATIENCE`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use deployclaw::config::Config;
use deployclaw::net::forwarded::TrustedProxies;
use http::StatusCode;

use crate::support::{eventually, on_fresh_postgres, TestApp, PATIENCE};

const CLIENT_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const CLIENT_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

fn trust_loopback_proxy(c: &mut Config) {
    c.server.trusted_proxies = TrustedProxies::new(
        vec!["127.0.0.1".parse().unwrap()],
        deployclaw::net::forwarded::ClientAddressHeader::XForwardedFor,
    );
}

/// An HTTP client whose connections come from `from`.
fn client_from(from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// Asks for a sign-in code for a new random address through `base`, with `forged` as the client's own
/// `X-Forwarded-For`; the status.
async fn send_code(app: &TestApp, client: &reqwest::Client, base: &str, forged: &str) -> StatusCode {
    let email = format!("{}@random.example", uuid::Uuid::new_v4().simple());
    client
        .post(format!("{base}/api/fn/request_sign_in_code"))
        .header("origin", app.platform.config().server.public_origin())
        .header("x-forwarded-for", forged)
        .form(&[("email", email.as_str())])
        .send()
        .await
        .expect("request completes")
        .status()
}

/// nginx running `docs/examples/nginx.conf` on a loopback port, proxying to `upstream`; stopped on drop.
struct Nginx {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstream: &str) -> Self {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: ./scripts/test installs it (Debian package nginx-light)");
        let example =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/nginx.conf"))
                .expect("docs/examples/nginx.conf");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // The example exactly, but for TLS (a loopback port in plain HTTP) and the upstream's port.
        let mut site = String::new();
        for line in example.lines() {
            let t = line.trim();
            if t.starts_with("listen [::]") || t.starts_with("ssl_certificate") {
                continue;
            }
            if t.starts_with("listen 443 ssl;") {
                site.push_str(&format!("    listen 127.0.0.1:{port};\n"));
                continue;
            }
            site.push_str(&line.replace("http://127.0.0.1:3000", &format!("http://{upstream}")));
            site.push('\n');
        }
        assert!(site.contains(&format!("proxy_pass http://{upstream};")), "the example proxies to the app");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\nhttp {{\n\
             access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{site}}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        eventually("nginx listens", async || tokio::net::TcpStream::connect(addr).await.is_ok()).await;
        Self { child, base: format!("http://{addr}"), _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn each_client_has_its_own_limits_through_the_example_nginx(app: TestApp) {
    let upstream = app.base.trim_start_matches("http://").to_string();
    let nginx = Nginx::start(&upstream).await;
    let (a, b) = (client_from(CLIENT_A), client_from(CLIENT_B));
    // Client A forges a new address in every request: nginx appends A's real one, which is what counts.
    for i in 0..deployclaw::identity::throttle::CODE_SENDS.max {
        let status = send_code(&app, &a, &nginx.base, &format!("198.51.100.{i}")).await;
        assert_eq!(status, StatusCode::OK, "send {i} from client A");
    }
    assert_eq!(
        send_code(&app, &a, &nginx.base, "203.0.113.99").await,
        StatusCode::TOO_MANY_REQUESTS,
        "client A's sixth send is throttled whatever address it forges"
    );
    assert_eq!(
        send_code(&app, &b, &nginx.base, "198.51.100.0").await,
        StatusCode::OK,
        "client B, behind the same proxy, is not blocked by A's bucket (not even forging A's forged address)"
    );
    app.stop().await;
}

/// The app trusting a loopback proxy, on SQLite or on a fresh PostgreSQL database.
async fn app_trusting_loopback(postgres: bool) -> TestApp {
    if !postgres {
        return TestApp::spawn_with(trust_loopback_proxy, true).await;
    }
    let pg = on_fresh_postgres().await;
    TestApp::spawn_with(
        |c| {
            pg(c);
            trust_loopback_proxy(c);
        },
        true,
    )
    .await
}

#[tokio::test]
async fn through_a_trusted_proxy_each_client_has_its_own_limits_sqlite() {
    each_client_has_its_own_limits_through_the_example_nginx(app_trusting_loopback(false).await).await;
}

#[tokio::test]
async fn through_a_trusted_proxy_each_client_has_its_own_limits_postgres() {
    each_client_has_its_own_limits_through_the_example_nginx(app_trusting_loopback(true).await).await;
}

async fn an_untrusted_peers_forwarding_header_is_ignored(app: TestApp) {
    // Straight to the app from an address that is not a trusted proxy: every forged header is ignored.
    let a = client_from(CLIENT_A);
    for i in 0..deployclaw::identity::throttle::CODE_SENDS.max {
        assert_eq!(send_code(&app, &a, &app.base, &format!("198.51.100.{i}")).await, StatusCode::OK);
    }
    assert_eq!(send_code(&app, &a, &app.base, "203.0.113.7").await, StatusCode::TOO_MANY_REQUESTS);
    let c = client_from(Ipv4Addr::new(127, 0, 0, 4));
    assert_eq!(send_code(&app, &c, &app.base, "127.0.0.2").await, StatusCode::OK, "another peer has its own bucket");
    app.stop().await;
}

#[tokio::test]
async fn an_untrusted_peers_forwarding_header_is_ignored_sqlite() {
    an_untrusted_peers_forwarding_header_is_ignored(app_trusting_loopback(false).await).await;
}

#[tokio::test]
async fn an_untrusted_peers_forwarding_header_is_ignored_postgres() {
    an_untrusted_peers_forwarding_header_is_ignored(app_trusting_loopback(true).await).await;
}

/// A self-signed certificate for `127.0.0.1`, written as PEM files; the certificate's DER.
fn write_certificate(dir: &Path, name: &str) -> (deployclaw::config::TlsFiles, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let files =
        deployclaw::config::TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    (files, cert.der().to_vec())
}

/// Connects over TLS trusting only `trusted` (DER), sends `GET /readyz`; the certificate the server presented
/// and the answer's status line.
async fn tls_get(addr: SocketAddr, trusted: &[u8]) -> Result<(Vec<u8>, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(trusted.to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let presented = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    tls.write_all(b"GET /readyz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, tls.read_to_end(&mut answer)).await.map_err(|_| "no answer".to_string())?.ok();
    let text = String::from_utf8_lossy(&answer);
    Ok((presented, text.lines().next().unwrap_or_default().to_string()))
}

#[tokio::test]
async fn built_in_tls_serves_the_certificate_and_picks_up_a_renewed_one() {
    use deployclaw_app::server::tls::CertStore;
    let dir = tempfile::tempdir().unwrap();
    let (files, first) = write_certificate(dir.path(), "first");
    let store = CertStore::load(files.clone()).expect("a valid pair loads");
    let hooks = deployclaw_app::server::listener::Hooks { tls: Some(store.acceptor()), ..Default::default() };
    let app = TestApp::spawn_with_hooks(|_| {}, true, hooks).await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();

    let (presented, status) = tls_get(addr, &first).await.expect("a TLS client trusting the certificate connects");
    assert_eq!(presented, first);
    assert_eq!(status, "HTTP/1.1 200 OK");
    // Plain HTTP to a TLS listener gets no page.
    let plain = app.client.get(app.url("/readyz")).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK, "no plain-HTTP answer on the TLS port");

    // Renewal: new files in place (as certbot does), noticed by the watcher.
    let (renewed, second) = write_certificate(dir.path(), "second");
    std::fs::rename(&renewed.cert, &files.cert).unwrap();
    std::fs::rename(&renewed.key, &files.key).unwrap();
    let _watch = store.watch(std::time::Duration::from_millis(50));
    eventually(
        "the renewed certificate is served",
        async || matches!(tls_get(addr, &second).await, Ok((p, _)) if p == second),
    )
    .await;

    // A broken renewal keeps the certificate in use.
    std::fs::write(&files.key, "not a key").unwrap();
    assert!(store.reload().is_err(), "an unusable pair is refused with its reason");
    assert_eq!(tls_get(addr, &second).await.expect("still served").0, second);
    app.stop().await;
}

#[test]
fn an_unusable_certificate_pair_is_refused_naming_the_file() {
    use deployclaw_app::server::tls::CertStore;
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = write_certificate(dir.path(), "a");
    let (other, _) = write_certificate(dir.path(), "b");
    let mismatched = deployclaw::config::TlsFiles { cert: files.cert.clone(), key: other.key.clone() };
    let err = CertStore::load(mismatched).unwrap_err().to_string();
    assert!(err.contains("does not fit") && err.contains("b.key"), "{err}");
    std::fs::write(dir.path().join("empty.crt"), "").unwrap();
    let err =
        CertStore::load(deployclaw::config::TlsFiles { cert: dir.path().join("empty.crt"), key: files.key.clone() })
            .unwrap_err()
            .to_string();
    assert!(err.contains("empty.crt") && err.contains("no PEM certificate"), "{err}");
    let err = CertStore::load(deployclaw::config::TlsFiles { cert: dir.path().join("missing.crt"), key: files.key })
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.crt"), "{err}");
    let key_text = std::fs::read_to_string(&other.key).unwrap();
    assert!(!err.contains(&key_text[30..60]), "never the key's contents");
}
