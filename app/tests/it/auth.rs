//! Signing up, in and out over HTTP: the session cookie, its rotation at each step, the page guards, and the
//! cross-origin refusal.

use deployclaw::db::users::Role;

use crate::support::{session_cookie, TestApp};

/// The newest sign-in code in the outbox for `to`.
pub(crate) fn mailed_code(app: &TestApp, to: &str) -> String {
    let dir = app.platform.config().data_dir.join("outbox");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let re = regex::Regex::new(r"(?m)^\s+(\d{6})\s*$").unwrap();
    files
        .iter()
        .rev()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|m| m.contains(&format!("To: {to}")) && m.contains("sign-in code"))
        .and_then(|m| re.captures(&m).map(|c| c[1].to_string()))
        .expect("a code was mailed")
}

pub(crate) fn totp_now(secret_base32: &str) -> String {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret_base32).unwrap())
        .with_account_name("test")
        .build()
        .unwrap()
        .generate(chrono::Utc::now().timestamp() as u64)
        .to_string()
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn sign_up_enrol_and_sign_in_again_rotating_the_session_at_each_step() {
    let app = TestApp::spawn().await;
    let email = "ada@acme.example";

    // Anonymous visitors are sent to sign in; sign-in steps they have not reached send them back.
    for path in ["/dashboard", "/dashboard/settings", "/sign-in/enroll", "/sign-in/verify", "/sign-up"] {
        let res = app.get(path).await;
        assert!(res.status().is_redirection(), "{path}: {}", res.status());
        assert_eq!(location(&res), "/sign-in", "{path}");
    }

    let res = app.call("request_sign_in_code", None, &[("email", email)]).await;
    assert_eq!(res.status(), 200);
    assert!(session_cookie(&res).is_none(), "no session before the code is proven");
    let code = mailed_code(&app, email);

    let res = app.call("verify_sign_in_code", None, &[("email", email), ("code", &code)]).await;
    assert_eq!(res.status(), 200);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "cookie lacks {attr}: {set_cookie}");
    }
    let c1 = session_cookie(&res).expect("a session starts");
    assert_eq!(res.json::<serde_json::Value>().await.unwrap(), serde_json::json!("SignUp"));
    assert_eq!(location(&app.get_as("/dashboard", &c1).await), "/sign-up", "half signed in is not signed in");

    let res = app.call("complete_sign_up", Some(&c1), &[("client_name", "Acme Robotics")]).await;
    assert_eq!(res.status(), 200);
    let c2 = session_cookie(&res).expect("a new session id after sign-up");
    assert_ne!(c1, c2);
    assert_eq!(app.call("me", Some(&c1), &[]).await.status(), 401, "the old id is dead");

    let res = app.call("begin_totp_enrollment", Some(&c2), &[]).await;
    assert_eq!(res.status(), 200);
    let enrollment: serde_json::Value = res.json().await.unwrap();
    assert!(enrollment["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = enrollment["secret"].as_str().unwrap().to_string();
    let res = app.call("confirm_totp_enrollment", Some(&c2), &[("code", &totp_now(&secret))]).await;
    assert_eq!(res.status(), 200);
    let c3 = session_cookie(&res).expect("a new session id after the second factor");
    let codes: Vec<String> = res.json().await.unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(app.get_as("/dashboard", &c3).await.status(), 200);
    let me: serde_json::Value = app.call("me", Some(&c3), &[]).await.json().await.unwrap();
    assert_eq!(me["email"], email);
    assert_eq!(me["role"], "owner");
    assert_eq!(me["client_name"], "Acme Robotics");
    assert_eq!(location(&app.get_as("/sign-in", &c3).await), "/dashboard");
    assert_eq!(app.get_as("/dashboard/admin", &c3).await.status(), 404, "customers have no operator console");

    // Sign out: the session is gone server-side too.
    assert_eq!(app.call("sign_out", Some(&c3), &[]).await.status(), 200);
    assert_eq!(location(&app.get_as("/dashboard", &c3).await), "/sign-in");

    // Sign in again: email code, then TOTP (a later step than the enrolment's code).
    app.call("request_sign_in_code", None, &[("email", email)]).await;
    let code = mailed_code(&app, email);
    let res = app.call("verify_sign_in_code", None, &[("email", email), ("code", &code)]).await;
    assert_eq!(res.json_and_cookie().await, (serde_json::json!("TwoFactor"), true));
    let user = deployclaw::db::users::find_for_sign_in(
        app.platform.db_for_tests(),
        &deployclaw::email::EmailAddress::parse(email).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(user.totp_enabled);
    let events = deployclaw::audit::recent(app.platform.db_for_tests(), user.client_id, None, 100).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action_type.as_str()).collect();
    for expected in ["auth.signed_up", "auth.code_sent", "auth.totp_enrolled", "auth.signed_in", "auth.signed_out"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    assert!(events.iter().all(|e| !e.metadata.0.to_string().contains(&code)), "no code in the audit trail");
    app.stop().await;
}

trait JsonAndCookie {
    async fn json_and_cookie(self) -> (serde_json::Value, bool);
}

impl JsonAndCookie for reqwest::Response {
    async fn json_and_cookie(self) -> (serde_json::Value, bool) {
        let has_cookie = session_cookie(&self).is_some();
        (self.json().await.unwrap(), has_cookie)
    }
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let url = app.url("/api/fn/sign_out_everywhere");
    let attempts: [(&str, Option<(&str, &str)>); 4] = [
        ("no origin evidence", None),
        ("foreign Origin", Some(("origin", "https://evil.example"))),
        ("cross-site fetch", Some(("sec-fetch-site", "cross-site"))),
        ("same-site sibling", Some(("sec-fetch-site", "same-site"))),
    ];
    for (what, header) in attempts {
        let mut req = app.client.post(&url).header("cookie", &browser.cookie);
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 403, "{what}");
    }
    // Nothing happened: the session still works. Then the same call from our own page goes through.
    assert_eq!(app.call("me", Some(&browser.cookie), &[]).await.status(), 200);
    let res = app
        .client
        .post(&url)
        .header("cookie", &browser.cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.call("me", Some(&browser.cookie), &[]).await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_host_bound() {
    let app = TestApp::spawn_with(|c| c.server.public_url = "https://deployclaw.example".parse().unwrap(), true).await;
    app.call("request_sign_in_code", None, &[("email", "ada@acme.example")]).await;
    let code = mailed_code(&app, "ada@acme.example");
    let res = app.call("verify_sign_in_code", None, &[("email", "ada@acme.example"), ("code", &code)]).await;
    assert_eq!(res.status(), 200);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.starts_with("__Host-deployclaw_session="), "{set_cookie}");
    assert!(set_cookie.contains("Secure") && set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(!set_cookie.contains("Domain="), "{set_cookie}");
    app.stop().await;
}

#[tokio::test]
async fn sessions_page_lists_and_revokes_other_devices() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let laptop = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let phone = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let rows: Vec<serde_json::Value> = app.call("list_sessions", Some(&laptop.cookie), &[]).await.json().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.iter().filter(|r| r["current"] == true).count(), 1);
    let other = rows.iter().find(|r| r["current"] == false).unwrap();
    assert_eq!(other["device"], "test-browser");
    let handle = other["handle"].as_str().unwrap();
    assert_eq!(app.call("revoke_session", Some(&laptop.cookie), &[("handle", handle)]).await.status(), 200);
    assert_eq!(app.call("me", Some(&phone.cookie), &[]).await.status(), 401, "the phone is signed out");
    assert_eq!(app.call("me", Some(&laptop.cookie), &[]).await.status(), 200);
    let html = app.get_as("/dashboard/settings", &laptop.cookie).await.text().await.unwrap();
    assert!(html.contains("Active sessions") && html.contains("Sign out everywhere"), "settings page renders");
    app.stop().await;
}
