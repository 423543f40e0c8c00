//! Stored HTML injection: text a user saved through the real server functions is served on every page that
//! shows it as text, never as markup. Each payload goes into every user-controlled field a page renders; a field
//! whose validation refuses it must say so with a 400 and a reason, and every page is then read as served.

use std::fmt::Debug;

use reqwest::Response;
use serde::Serialize;
use serde_json::Value;

use crate::auth::{mailed_code, totp_now};
use crate::support::{session_cookie, TestApp};

/// Closes a `<textarea>` and redirects with a meta refresh; then a script (blocked by the CSP, but it breaks
/// hydration).
const TEXTAREA_BREAKOUT: &str =
    r#"</textarea><meta http-equiv=refresh content="0;url=https://example.invalid"><script>alert(1)</script>"#;
/// Closes a quoted attribute and adds an element with an event handler.
const ATTRIBUTE_BREAKOUT: &str = r#""><img src=x onerror=alert(1)>"#;

/// What must never appear in a served page: the payloads' elements as markup.
const RAW_MARKUP: [&str; 3] = ["<meta http-equiv=refresh", "<img src=x", "<script>alert"];

/// A fragment of `payload` as it reads once escaped: found in a page, the text is shown, as text.
fn escaped(payload: &str) -> &'static str {
    if payload == TEXTAREA_BREAKOUT {
        "&lt;/textarea&gt;&lt;meta http-equiv=refresh"
    } else {
        "&lt;img src=x onerror=alert(1)&gt;"
    }
}

fn assert_inert(html: &str, page: &str) {
    for raw in RAW_MARKUP {
        assert!(!html.contains(raw), "{page} serves {raw:?} as markup:\n{}", around(html, raw));
    }
}

/// The text around `needle` in `html`, for a failure message.
fn around(html: &str, needle: &str) -> String {
    let at = html.find(needle).unwrap_or(0);
    html.char_indices().skip_while(|(i, _)| *i + 200 < at).take_while(|(i, _)| *i < at + 200).map(|(_, c)| c).collect()
}

/// A browser whose user agent is the payload (the sessions table shows it as the device), signed in through
/// the real sign-up: email code, account name, authenticator.
struct Visitor<'a> {
    app: &'a TestApp,
    user_agent: &'static str,
    cookie: String,
}

impl Visitor<'_> {
    async fn call<A: Serialize + ?Sized>(&self, endpoint: &str, args: &A) -> Response {
        let mut req = self
            .app
            .client
            .post(self.app.url(&format!("/api/fn/{endpoint}")))
            .header("origin", self.app.platform.config().server.public_origin())
            .header("user-agent", self.user_agent)
            .form(args);
        if !self.cookie.is_empty() {
            req = req.header("cookie", &self.cookie);
        }
        req.send().await.expect("request completes")
    }

    /// Calls `endpoint`, and then holds the session cookie it set, if any.
    async fn step(&mut self, endpoint: &str, args: &[(&str, &str)]) -> Response {
        let res = self.call(endpoint, args).await;
        assert_eq!(res.status(), 200, "{endpoint}");
        if let Some(cookie) = session_cookie(&res) {
            self.cookie = cookie;
        }
        res
    }

    async fn page(&self, path: &str) -> String {
        let res = self
            .app
            .client
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .header("user-agent", self.user_agent)
            .send()
            .await
            .expect("request completes");
        assert_eq!(res.status(), 200, "{path}");
        res.text().await.unwrap()
    }

    /// Signs up as `email`, naming the account `account`, with the authenticator set up just now.
    async fn sign_up<'a>(app: &'a TestApp, email: &str, account: &str, user_agent: &'static str) -> Visitor<'a> {
        let mut v = Visitor { app, user_agent, cookie: String::new() };
        v.step("request_sign_in_code", &[("email", email)]).await;
        let code = mailed_code(app, email);
        v.step("verify_sign_in_code", &[("email", email), ("code", &code)]).await;
        v.step("complete_sign_up", &[("client_name", account)]).await;
        let enrollment: Value = v.step("begin_totp_enrollment", &[]).await.json().await.unwrap();
        let secret = enrollment["secret"].as_str().unwrap().to_string();
        v.step("confirm_totp_enrollment", &[("code", &totp_now(&secret))]).await;
        v
    }

    /// Saves `args` with `endpoint`: stored (200), or refused with a 400 that says why. Returns whether it was
    /// stored, and the response body.
    async fn save<A: Serialize + Debug + ?Sized>(&self, endpoint: &str, args: &A) -> (bool, Value) {
        let res = self.call(endpoint, args).await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        match status {
            200 => (true, body),
            400 => {
                let reason = body["Invalid"].as_str().unwrap_or_default();
                assert!(!reason.is_empty(), "{endpoint} {args:?}: a refusal says why: {body}");
                (false, body)
            }
            other => panic!("{endpoint} {args:?}: stored (200) or refused (400), not {other}: {body}"),
        }
    }
}

/// Each customer puts one payload into every field they can; the pages they see, then the operator's pages
/// (after the operator stored the payload as the suspension reason), serve all of it as text only.
#[tokio::test]
async fn user_text_is_served_as_text_on_every_page() {
    let app = TestApp::spawn().await;
    let mut clients = Vec::new();
    for (n, payload) in [TEXTAREA_BREAKOUT, ATTRIBUTE_BREAKOUT].into_iter().enumerate() {
        let email = format!("owner{n}@acme.example");
        let v = Visitor::sign_up(&app, &email, payload, payload).await;

        // Fields whose validation refuses the payload (their pages are still read below).
        let (stored, _) = v.save("create_agent", &[("name", payload), ("template", "test-agent")]).await;
        assert!(!stored, "agent names are a-z, 0-9 and '-'");
        let (_, agent) = v.save("create_agent", &[("name", "probe"), ("template", "test-agent")]).await;
        let id = agent["id"].as_str().unwrap().to_string();
        let settings = |memory: &'static str, cpu: &'static str, environment: String| {
            [
                ("agent_id", id.clone()),
                ("memory_mib", memory.into()),
                ("cpu_millis", cpu.into()),
                ("environment", environment),
            ]
        };
        for args in [settings(payload, "", String::new()), settings("", payload, String::new())] {
            assert!(!v.save("update_agent_settings", &args).await.0, "{args:?}");
        }
        for field in ["scopes", "allowed_domains", "rate_limits", "max_daily_token_spend_usd"] {
            let mut args = vec![
                ("agent_id", id.as_str()),
                ("scopes", ""),
                ("allowed_domains", ""),
                ("rate_limits", ""),
                ("max_daily_token_spend_usd", "0"),
            ];
            args.iter_mut().find(|(k, _)| *k == field).unwrap().1 = payload;
            assert!(!v.save("update_agent_permissions", &args).await.0, "{field}");
        }
        let refused = [
            ("set_credential", vec![("agent_id", id.as_str()), ("name", payload), ("value", "not-a-secret")]),
            ("invite_member", vec![("email", payload), ("role", "member")]),
            ("set_audit_retention", vec![("days", payload)]),
        ];
        for (endpoint, args) in refused {
            assert!(!v.save(endpoint, &args).await.0, "{endpoint}");
        }

        // Fields that store it. A whole environment that is only the payload is no NAME=value line; as the value
        // of one it is stored.
        let bare = settings("", "", payload.to_string());
        assert!(!v.save("update_agent_settings", &bare).await.0, "a line without a NAME= is refused");
        let good = settings("", "", format!("GREETING={payload}"));
        assert!(v.save("update_agent_settings", &good).await.0, "an environment value is free text");
        let siem = [
            ("name", payload),
            ("kind", "syslog_tls"),
            ("host", "siem.example.invalid"),
            ("port", "6514"),
            ("start", "now"),
        ];
        let siem_stored = v.save("add_siem_destination", &siem).await.0;
        assert_eq!(siem_stored, payload.chars().count() <= 100, "a destination name is 1 to 100 characters");
        let siem = [("name", "siem"), ("kind", "syslog_tls"), ("host", payload), ("port", "6514"), ("start", "now")];
        assert!(!v.save("add_siem_destination", &siem).await.0, "a host is a DNS name or an IP address");

        // Every page the customer has, as served.
        let agent_page = format!("/dashboard/agents/{id}");
        let credentials_page = format!("/dashboard/credentials?agent={id}");
        for path in [
            "/dashboard",
            "/dashboard/agents",
            &agent_page,
            &credentials_page,
            "/dashboard/audit",
            "/dashboard/settings",
            "/dashboard/billing",
        ] {
            let html = v.page(path).await;
            assert_inert(&html, path);
            assert!(html.contains(escaped(payload)), "{path}: the account name is shown (as text)");
        }
        let html = v.page(&agent_page).await;
        let textarea = html.split(r#"id="settings-env""#).nth(1).and_then(|t| t.split("</textarea>").next()).unwrap();
        assert!(textarea.contains(escaped(payload)), "the environment is in its textarea, as text: {textarea}");
        let html = v.page("/dashboard/settings").await;
        let sessions = html.split(r#"data-testid="sessions""#).nth(1).unwrap();
        assert!(sessions.contains(escaped(payload)), "the device (user agent) is shown, as text");
        if siem_stored {
            let destinations = html.split(r#"data-testid="destination-row""#).nth(1).unwrap();
            assert!(destinations.contains(escaped(payload)), "the destination's name is shown, as text");
        }
        clients.push(payload);
    }

    // The operator suspends each client with the payload as the reason, and reads the console.
    let operator = deployclaw::identity::team::create_platform_admin(
        app.platform.db_for_tests(),
        &deployclaw::email::EmailAddress::parse("ops@deployclaw.example").unwrap(),
    )
    .await
    .unwrap();
    let op = app.sign_in_as(&operator, chrono::Duration::seconds(5)).await;
    let listed: Vec<Value> = app.call("admin_list_clients", Some(&op.cookie), &[]).await.json().await.unwrap();
    for payload in &clients {
        let client = listed.iter().find(|c| c["name"] == *payload).expect("the client is listed");
        let id = client["id"].as_str().unwrap();
        let res = app.call("admin_suspend_client", Some(&op.cookie), &[("client_id", id), ("reason", payload)]).await;
        assert_eq!(res.status(), 200, "a suspension reason is free text: {}", res.text().await.unwrap());
        let path = format!("/dashboard/admin/clients/{id}");
        let html = app.get_as(&path, &op.cookie).await.text().await.unwrap();
        assert_inert(&html, &path);
        let status = html.split(r#"data-testid="client-status""#).nth(1).unwrap();
        assert!(status.contains(escaped(payload)), "{path}: the reason is shown, as text");
        let recent = html.split(r#"data-testid="client-audit""#).nth(1).unwrap();
        assert!(recent.contains(escaped(payload)), "{path}: the audit target (client name) is shown, as text");
    }
    let html = app.get_as("/dashboard/admin", &op.cookie).await.text().await.unwrap();
    assert_inert(&html, "/dashboard/admin");
    for payload in &clients {
        assert!(html.contains(escaped(payload)), "/dashboard/admin lists the client, by its name as text");
    }
    app.stop().await;
}
