use crate::support::TestApp;

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers().get(name).unwrap_or_else(|| panic!("missing {name}")).to_str().unwrap()
}

fn assert_security_headers(res: &reqwest::Response) {
    let csp = header(res, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'nonce-"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'") && !csp.contains("'unsafe-inline'"), "{csp}");
    assert_eq!(header(res, "x-content-type-options"), "nosniff");
    assert_eq!(header(res, "referrer-policy"), "same-origin");
    assert_eq!(header(res, "x-frame-options"), "DENY");
    assert!(res.headers().get("x-request-id").is_some());
}

#[tokio::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/", "/dashboard", "/dashboard/agents", "/healthz", "/readyz", "/no-such-page", "/pkg/missing.js"] {
        let res = app.get(path).await;
        assert_security_headers(&res);
        assert!(res.headers().get("strict-transport-security").is_none(), "no HSTS over plain http");
    }
    let res = app.client.post(app.url("/api/fn/platform_status")).body("").send().await.unwrap();
    assert_security_headers(&res);
    app.stop().await;
}

#[tokio::test]
async fn hsts_is_sent_when_served_over_tls() {
    let app = TestApp::spawn_with(|c| c.server.public_url = "https://deployclaw.example".parse().unwrap(), true).await;
    let res = app.get("/").await;
    assert_eq!(header(&res, "strict-transport-security"), "max-age=63072000; includeSubDomains");
    app.stop().await;
}

#[tokio::test]
async fn pages_carry_a_fresh_nonce_that_matches_every_script() {
    let app = TestApp::spawn().await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let res = app.get("/sign-in").await;
        let csp = header(&res, "content-security-policy").to_string();
        let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_string();
        let html = res.text().await.unwrap();
        let scripts: Vec<&str> = html.split("<script").skip(1).map(|s| &s[..s.find('>').unwrap()]).collect();
        assert!(!scripts.is_empty(), "the page has hydration scripts");
        for attrs in scripts {
            assert!(
                attrs.contains(&format!("nonce=\"{nonce}\"")),
                "script without this request's nonce: <script{attrs}>"
            );
        }
        seen.push(nonce);
    }
    assert_ne!(seen[0], seen[1], "a nonce is never reused");
    app.stop().await;
}

#[tokio::test]
async fn dynamic_responses_are_not_cached() {
    let app = TestApp::spawn().await;
    for path in ["/", "/readyz"] {
        let res = app.get(path).await;
        assert_eq!(header(&res, "cache-control"), "no-store", "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_assigned_or_propagated() {
    let app = TestApp::spawn().await;
    let a = app.get("/healthz").await;
    let b = app.get("/healthz").await;
    assert_ne!(header(&a, "x-request-id"), header(&b, "x-request-id"));
    let c = app.client.get(app.url("/healthz")).header("x-request-id", "trace-abc-123").send().await.unwrap();
    assert_eq!(header(&c, "x-request-id"), "trace-abc-123");
    app.stop().await;
}
