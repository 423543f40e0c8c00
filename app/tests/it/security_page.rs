//! The public security page: its references still point at the code, it shows the constants' current values,
//! every source link opens the code it names, the source view serves nothing else, and security.txt.

use std::path::Path;
use std::time::Duration;

use deployclaw_app::api::security::{bytes, duration, parameters};
use deployclaw_app::security::{check, PRIMITIVES, REFERENCES, THREATS};

use crate::support::TestApp;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("app/ is inside the repository")
}

/// The text as it appears in HTML (what Leptos and the source view escape).
fn html_escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Decodes the entities Leptos and the source view emit, for comparing visible text.
fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[test]
fn security_references_match_the_code() {
    let problems = check::check_all(repo_root());
    assert!(problems.is_empty(), "the security page no longer matches the code:\n{}", problems.join("\n"));
}

#[test]
fn the_page_has_every_primitive_and_at_least_eight_threats() {
    for id in ["credentials", "isolation", "egress", "auth", "sessions", "audit", "payment"] {
        assert!(PRIMITIVES.iter().any(|p| p.id == id), "primitive {id} missing");
    }
    assert!(THREATS.len() >= 8);
    for scenario in [
        "Compromised or prompt-injected agent",
        "Compromised provider API key",
        "Leaked master key",
        "Stolen database",
        "Stripe webhook replay or forgery",
        "Email account takeover",
        "Malicious insider (platform operator)",
        "Cross-tenant access",
    ] {
        assert!(THREATS.iter().any(|t| t.scenario == scenario), "threat {scenario:?} missing");
    }
}

#[tokio::test]
async fn security_page_renders_its_sections_and_the_constants_current_values() {
    let app = TestApp::spawn().await;
    let res = app.get("/security").await;
    assert_eq!(res.status(), 200);
    let html = unescape(&res.text().await.unwrap());
    for heading in
        ["Trust boundaries", "Security primitives", "Threat model", "What we do not do yet", "Audit it yourself"]
    {
        assert!(html.contains(heading), "missing section {heading:?}");
    }
    // The diagram is an accessible image with a title and a description.
    assert!(
        html.contains("role=\"img\"")
            && html.contains("aria-labelledby=\"trust-title\" aria-describedby=\"trust-desc\"")
    );
    assert!(html.contains("<title id=\"trust-title\">") && html.contains("<desc id=\"trust-desc\">"));
    for p in PRIMITIVES {
        assert!(html.contains(&format!("id=\"{}\"", p.id)) && html.contains(p.title), "primitive {}", p.id);
    }
    for t in THREATS {
        assert!(html.contains(t.scenario), "threat {:?}", t.scenario);
    }
    // Every parameter, as the page's server function computes it from the constants ...
    for p in parameters() {
        let row = format!("<div data-param=\"{}\"><dt>{}</dt><dd>{}</dd></div>", p.label, p.label, p.value);
        assert!(html.contains(&row), "parameter missing: {row}");
    }
    // ... and, formatted here from the same constants, the ones the issue names.
    use deployclaw::identity::{codes, session, throttle};
    let expected = [
        deployclaw::keys::envelope::CIPHER.to_string(),
        format!("{} bits", deployclaw::keys::keyring::KEY_BYTES * 8),
        format!("{} bytes, random for every seal", deployclaw::keys::envelope::NONCE_BYTES),
        format!("{} digits, single use", codes::CODE_DIGITS),
        duration(codes::DEFAULT_TTL),
        format!("{} to {}", duration(codes::MIN_TTL), duration(codes::MAX_TTL)),
        format!(
            "{} per {} minutes per IP network and per account",
            throttle::FAILURES.max,
            throttle::FAILURES.window.as_secs() / 60
        ),
        format!("{} minutes", session::IDLE_TIMEOUT.as_secs() / 60),
        format!("{} hours", session::ABSOLUTE_LIFETIME.as_secs() / 3600),
        format!("{} minutes", session::FRESH_SECOND_FACTOR.as_secs() / 60),
        duration(deployclaw::config::DEFAULT_CHECKPOINT_INTERVAL),
        bytes(deployclaw::gateway::proxy::MAX_HEAD_BYTES as u64),
        format!("{} seconds", deployclaw::gateway::proxy::HEAD_TIMEOUT.as_secs()),
        format!("{} seconds", deployclaw::config::DEFAULT_GATEWAY_CONNECT_TIMEOUT.as_secs()),
        duration(deployclaw::config::DEFAULT_GATEWAY_IDLE_TIMEOUT),
        deployclaw::config::DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_AGENT.to_string(),
        format!("m = {} KiB", deployclaw::identity::recovery::HASH_MEMORY_KIB),
    ];
    for value in expected {
        assert!(html.contains(&format!("{value}</dd>")) || html.contains(&value), "value {value:?} not on the page");
    }
    assert!(html.contains("mailto:security@127.0.0.1"), "the reporting contact comes from the configuration");
    assert_eq!(Duration::from_secs(600), codes::DEFAULT_TTL, "the design (DESIGN.md) says codes live 10 minutes");
    app.stop().await;
}

#[tokio::test]
async fn every_source_link_on_the_page_opens_the_code_it_names() {
    let app = TestApp::spawn().await;
    let html = app.get("/security").await.text().await.unwrap();
    let links = regex::Regex::new(r##"href="(/security/source/[^"#?]+)\?lines=(\d+)-(\d+)#L(\d+)-L(\d+)""##).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for cap in links.captures_iter(&html) {
        let (path, start, end) = (&cap[1], &cap[2], &cap[3]);
        assert_eq!((start, end), (&cap[4], &cap[5]), "fragment and highlighted range agree");
        if !seen.insert((path.to_string(), start.to_string(), end.to_string())) {
            continue;
        }
        let file = path.trim_start_matches("/security/source/");
        let reference = REFERENCES
            .iter()
            .find(|r| r.path == file && r.start.to_string() == start && r.end.to_string() == end)
            .unwrap_or_else(|| panic!("link {path}:{start}-{end} is not in the data file"));
        let res = app.get(&format!("{path}?lines={start}-{end}")).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let view = res.text().await.unwrap();
        assert!(view.contains(&format!("id=\"L{start}-L{end}\"")), "{path}: the range has an anchor");
        let highlighted: Vec<&str> = view.split("<span class=\"line hl\"").skip(1).collect();
        let count = reference.end - reference.start + 1;
        assert_eq!(highlighted.len() as u32, count, "{path}: exactly lines {start}-{end} are highlighted");
        let range_html = highlighted.join("");
        assert!(
            range_html.contains(&html_escaped(reference.symbol)),
            "{path}:{start}-{end} shows {:?}",
            reference.symbol
        );
    }
    let ranges: std::collections::BTreeSet<_> = REFERENCES
        .iter()
        .map(|r| (format!("/security/source/{}", r.path), r.start.to_string(), r.end.to_string()))
        .collect();
    assert_eq!(seen, ranges, "every reference is linked from the page");
    app.stop().await;
}

#[tokio::test]
async fn the_source_view_serves_only_referenced_files() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/security/source/src/keys/envelope.rs").await.status(), 200);
    for path in [
        "/security/source/Cargo.toml",
        "/security/source/src/lib.rs",
        "/security/source/src/config.rs",
        "/security/source/security/references.toml",
        "/security/source/src/keys/envelope.rs.bak",
        "/security/source//src/keys/envelope.rs",
        "/security/source/src/vault/..%2f..%2fCargo.toml",
        "/security/source/src%2f..%2f..%2f..%2fetc%2fpasswd",
        "/security/source/%2e%2e/%2e%2e/Cargo.toml",
        "/security/source/",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 404, "{path}");
        assert!(!res.text().await.unwrap().contains("[package]"), "{path}");
    }
    // A client that does not normalise `..` itself: the raw request line reaches the server as written.
    for target in [
        "/security/source/src/vault/../../Cargo.toml",
        "/security/source/../../../../etc/passwd",
        "/security/source/./src/lib.rs",
        "/security/source/src/../Cargo.toml",
    ] {
        let (status, body) = raw_get(&app.base, target).await;
        assert!(status == 404 || status == 400, "{target}: {status}");
        assert!(!body.contains("[package]") && !body.contains("root:"), "{target}");
    }
    app.stop().await;
}

/// Sends `GET target` exactly as written and returns the status and body.
async fn raw_get(base: &str, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn security_txt_follows_rfc_9116() {
    let app = TestApp::spawn().await;
    let res = app.get("/.well-known/security.txt").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    let text = res.text().await.unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
            .to_string()
    };
    assert_eq!(field("Contact"), app.platform.config().security.contact);
    assert_eq!(field("Contact"), "mailto:security@127.0.0.1");
    assert_eq!(field("Preferred-Languages"), "en");
    let public = app.platform.config().server.public_url.as_str().trim_end_matches('/').to_string();
    assert_eq!(field("Canonical"), format!("{public}/.well-known/security.txt"));
    assert_eq!(field("Policy"), format!("{public}/security"));
    let expires = chrono::DateTime::parse_from_rfc3339(&field("Expires")).expect("Expires is RFC 3339");
    let now = chrono::Utc::now();
    assert!(expires > now + chrono::Duration::days(30), "not about to expire: {expires}");
    assert!(expires < now + chrono::Duration::days(365), "less than a year ahead: {expires}");
    assert!(field("Expires").ends_with('Z'));
    app.stop().await;

    let app = TestApp::spawn_with(|c| c.security.contact = "https://example.com/report".into(), true).await;
    let text = app.get("/.well-known/security.txt").await.text().await.unwrap();
    assert!(text.contains("\nContact: https://example.com/report\n"), "{text}");
    let page = app.get("/security").await.text().await.unwrap();
    assert!(page.contains("href=\"https://example.com/report\""), "the page shows the same contact");
    app.stop().await;
}

#[tokio::test]
async fn the_landing_page_links_to_the_security_page() {
    let app = TestApp::spawn().await;
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.matches("href=\"/security\"").count() >= 2, "in the navigation and the footer");
    app.stop().await;
}
