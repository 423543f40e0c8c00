//! The front door: every accepted socket has TCP_NODELAY, slow and idle clients are cut off after the configured
//! timeouts while others are served, connections are capped per address with a clean 503, and static files go
//! out precompressed, cached and revalidated.
//!
//! Network safety: loopback only (127.0.0.1 and, as a second client address, 127.0.0.2); every wait bounded.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deployclaw_app::server::listener::Hooks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{TestApp, PATIENCE};

fn addr(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// A TCP connection to the app from `from` (a loopback address).
async fn connect_from(app: &TestApp, from: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    socket.connect(addr(app)).await.unwrap()
}

/// Everything the server sends until it closes the connection (bounded by [`PATIENCE`]).
async fn read_until_closed(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection")
        .expect("reads");
    String::from_utf8_lossy(&buf).into_owned()
}

/// One `GET path` with `Connection: close` from `from`; the whole answer.
async fn get_from(app: &TestApp, from: Ipv4Addr, path: &str) -> String {
    let mut s = connect_from(app, from).await;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    read_until_closed(&mut s).await
}

#[tokio::test]
async fn every_accepted_socket_has_tcp_nodelay() {
    let seen: Arc<Mutex<Vec<bool>>> = Arc::default();
    let record = seen.clone();
    let hooks = Hooks {
        on_accept: Some(Arc::new(move |s: &TcpStream| record.lock().unwrap().push(s.nodelay().unwrap()))),
        ..Hooks::default()
    };
    let app = TestApp::spawn_with_hooks(|_| {}, true, hooks).await;
    for _ in 0..3 {
        assert!(get_from(&app, Ipv4Addr::LOCALHOST, "/healthz").await.starts_with("HTTP/1.1 200"));
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![true; 3], "read back from each accepted socket after the listener prepared it");
    app.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_address_cap_get_a_503_while_other_addresses_are_served() {
    let app = TestApp::spawn_with(
        |c| {
            c.server.max_connections_per_address = 3;
            c.server.header_read_timeout = Duration::from_secs(300);
        },
        true,
    )
    .await;
    // Three slow clients from one address, each holding a connection with half a request head.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from(&app, Ipv4Addr::LOCALHOST).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n").await.unwrap();
        held.push(s);
    }
    // A fourth from the same address is refused at once, with a reason, and closed.
    let mut fourth = connect_from(&app, Ipv4Addr::LOCALHOST).await;
    let answer = read_until_closed(&mut fourth).await;
    assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{answer}");
    assert!(
        answer.contains("retry-after: 5")
            && answer.ends_with("Too many open connections from your address; close some and try again.\n"),
        "{answer}"
    );
    // Another address is not held back by that one.
    let other = get_from(&app, Ipv4Addr::new(127, 0, 0, 2), "/healthz").await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    // Once one slow client goes, its address gets a place again.
    drop(held.pop());
    crate::support::eventually("a place is free again", async || {
        get_from(&app, Ipv4Addr::LOCALHOST, "/healthz").await.starts_with("HTTP/1.1 200")
    })
    .await;
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn half_sent_heads_and_idle_kept_alive_connections_are_closed_after_the_header_timeout() {
    // One second from the configuration: the test waits only as long as the server takes to act on it.
    let app = TestApp::spawn_with(|c| c.server.header_read_timeout = Duration::from_secs(1), true).await;
    let mut slow = connect_from(&app, Ipv4Addr::LOCALHOST).await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-One-More: ").await.unwrap();
    let mut idle = connect_from(&app, Ipv4Addr::LOCALHOST).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    // Meanwhile, another client is answered.
    assert!(get_from(&app, Ipv4Addr::new(127, 0, 0, 2), "/healthz").await.starts_with("HTTP/1.1 200"));
    // The half-sent head is cut off; nothing was answered on it but (at most) a timeout status.
    let cut = read_until_closed(&mut slow).await;
    assert!(cut.is_empty() || cut.starts_with("HTTP/1.1 408"), "{cut:?}");
    // The kept-alive connection got its answer, then was closed while idle.
    let answered = read_until_closed(&mut idle).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert_eq!(answered.matches("HTTP/1.1 ").count(), 1, "one answer, then the idle close: {answered}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed() {
    let app = TestApp::spawn_with(|c| c.server.request_body_timeout = Duration::from_secs(1), true).await;
    let origin = app.platform.config().server.public_origin();
    let mut s = connect_from(&app, Ipv4Addr::LOCALHOST).await;
    // A server function that reads its body; the client promises 100 bytes and sends 12.
    let head = format!(
        "POST /api/fn/request_sign_in_code HTTP/1.1\r\nHost: test\r\nOrigin: {origin}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nemail=ada%40"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert!(answer.ends_with("The request body did not arrive in time.\n"), "{answer}");
    app.stop().await;
}

/// A built site's bundle: a hashed WASM file with its brotli and gzip variants, and an unhashed asset.
fn write_site(app: &TestApp) -> (String, Vec<u8>, Vec<u8>, Vec<u8>) {
    let root = app.platform.config().server.site_root.clone();
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    let name = "deployclaw.Zq3kQ9xY2mN8pL4tR6vW1A.wasm";
    let (raw, br, gz) = (b"\0asm-raw-bytes".repeat(100), b"brotli-bytes".to_vec(), b"gzip-bytes".to_vec());
    std::fs::write(root.join("pkg").join(name), &raw).unwrap();
    std::fs::write(root.join("pkg").join(format!("{name}.br")), &br).unwrap();
    std::fs::write(root.join("pkg").join(format!("{name}.gz")), &gz).unwrap();
    std::fs::write(root.join("favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>").unwrap();
    (format!("/pkg/{name}"), raw, br, gz)
}

#[tokio::test]
async fn the_bundle_goes_out_precompressed_and_immutable_and_other_files_revalidate_with_304() {
    let app = TestApp::spawn().await;
    let (wasm, raw, br, gz) = write_site(&app);
    // reqwest here sends Accept-Encoding only as we set it and does not decode: we see the bytes on the wire.
    let fetch = |accept: Option<&'static str>| {
        let mut req = app.client.get(app.url(&wasm));
        if let Some(a) = accept {
            req = req.header("accept-encoding", a);
        }
        async move {
            let res = req.send().await.unwrap();
            let h = res.headers().clone();
            (res.status().as_u16(), h, res.bytes().await.unwrap().to_vec())
        }
    };
    let (status, h, body) = fetch(Some("gzip, deflate, br")).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-encoding"], "br");
    assert_eq!(body, br);
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["vary"], "accept-encoding");
    let (_, h, body) = fetch(Some("gzip")).await;
    assert_eq!((h["content-encoding"].to_str().unwrap(), body), ("gzip", gz));
    let (_, h, body) = fetch(None).await;
    assert!(h.get("content-encoding").is_none());
    assert_eq!(body, raw);
    assert_eq!(h["content-type"], "application/wasm");
    assert!(h.get("set-cookie").is_none(), "static files never start a session");

    // An unhashed file: revalidated every time, and unchanged means 304 without a body (by ETag or by date).
    let res = app.client.get(app.url("/favicon.svg")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let etag = res.headers()["etag"].clone();
    let modified = res.headers()["last-modified"].clone();
    let again = app.client.get(app.url("/favicon.svg")).header("if-none-match", etag.clone()).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let by_date = app.client.get(app.url("/favicon.svg")).header("if-modified-since", modified).send().await.unwrap();
    assert_eq!(by_date.status(), 304);
    let other = app.client.get(app.url("/favicon.svg")).header("if-none-match", "\"something-else\"").send().await;
    assert_eq!(other.unwrap().status(), 200);

    // Not a file: the app's own "not found" page, not a file-server error.
    let missing = app.client.get(app.url("/pkg/nothing-here.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    app.stop().await;
}
