//! `GET /api/audit/export`: who may download, whose events they get, the response headers, bad requests,
//! CSV safety, and a large export streamed whole and in order.

use deployclaw::audit::{self, ActionType, Actor, NewEvent};
use deployclaw::db::users::Role;
use deployclaw::db::ClientId;
use serde_json::{json, Value};

use crate::support::TestApp;

fn range() -> (String, String) {
    let now = chrono::Utc::now();
    ((now - chrono::Duration::days(1)).to_rfc3339(), (now + chrono::Duration::days(1)).to_rfc3339())
}

fn export_path(format: &str) -> String {
    let (from, to) = range();
    export_path_for(format, &from, &to)
}

fn export_path_for(format: &str, from: &str, to: &str) -> String {
    format!("/api/audit/export?format={format}&from={}&to={}", enc(from), enc(to))
}

/// Percent-encodes what an RFC 3339 time needs in a query (`+` and `:`).
fn enc(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

async fn record(app: &TestApp, client: ClientId, target: &str) {
    let event = NewEvent::new(Some(client), Actor::Platform, ActionType::parse("agent.tested").unwrap()).target(target);
    audit::append(app.platform.db_for_tests(), event).await.unwrap();
}

#[tokio::test]
async fn anonymous_and_half_signed_in_callers_cannot_export() {
    let app = TestApp::spawn().await;
    let res = app.get(&export_path("jsonl")).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert!(body["SignInRequired"].as_str().unwrap().contains("sign in"), "{body}");

    // A session that has passed the email code but not the second factor is not signed in.
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let cookie = half_signed_in(&app, &owner).await;
    assert_eq!(app.get_as(&export_path("jsonl"), &cookie).await.status(), 401);
    // Bad parameters do not tell an anonymous caller anything more.
    assert_eq!(app.get("/api/audit/export?format=xml").await.status(), 401);
    let trail = audit::recent(app.platform.db_for_tests(), owner.client_id, None, 50).await.unwrap();
    assert!(trail.iter().all(|e| e.action_type != "audit.exported"), "nothing was exported");
    app.stop().await;
}

/// A session at the second-factor step.
async fn half_signed_in(app: &TestApp, user: &deployclaw::db::users::User) -> String {
    use deployclaw::context::RequestContext;
    use deployclaw::identity::session::{SessionAuth, Stage, SESSION_KEY};
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore;
    let ctx = RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: Some("test-browser".into()) };
    let auth = SessionAuth::begin(
        Stage::TwoFactor { client_id: user.client_id, user_id: user.id },
        &ctx,
        deployclaw::db::now(),
    );
    let mut record = Record {
        id: Id::default(),
        data: [(SESSION_KEY.to_string(), serde_json::to_value(&auth).unwrap())].into_iter().collect(),
        expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
            + tower_sessions::cookie::time::Duration::minutes(30),
    };
    app.platform.sessions().create(&mut record).await.unwrap();
    format!("{}={}", deployclaw_app::server::session::DEV_COOKIE, record.id)
}

#[tokio::test]
async fn a_member_exports_only_their_own_clients_events() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let member = app.user(Some(owner.client_id), "member@acme.example", Role::Member).await;
    let rival = app.user(None, "owner@globex.example", Role::Owner).await;
    for i in 0..3 {
        record(&app, owner.client_id, &format!("acme-{i}")).await;
        record(&app, rival.client_id, &format!("globex-{i}")).await;
    }
    let browser = app.sign_in_as(&member, chrono::Duration::minutes(20)).await;

    // A client id in the query is ignored: the session decides whose events these are.
    let (from, to) = range();
    let path = format!("{}&client_id={}", export_path_for("jsonl", &from, &to), rival.client_id);
    let res = app.get_as(&path, &browser.cookie).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "application/x-ndjson");
    assert_eq!(h["cache-control"], "no-store");
    let disposition = h["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment; filename=\"deployclaw-audit-"), "{disposition}");
    assert!(disposition.ends_with(".jsonl\""), "{disposition}");
    let from_day = chrono::DateTime::parse_from_rfc3339(&from).unwrap().format("%Y%m%d").to_string();
    assert!(disposition.contains(&from_day), "the file is named after the range asked for: {disposition}");
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().all(|l| l["client_id"] == json!(owner.client_id)), "another tenant's event: {text}");
    let targets: Vec<&str> = lines.iter().filter_map(|l| l["target"].as_str()).collect();
    assert_eq!(targets, ["acme-0", "acme-1", "acme-2"]);
    assert!(!text.contains("globex"), "{text}");

    // The rival's export has none of acme's events.
    let rival_browser = app.sign_in_as(&rival, chrono::Duration::minutes(1)).await;
    let text = app.get_as(&export_path("csv"), &rival_browser.cookie).await.text().await.unwrap();
    assert!(text.contains("globex-2") && !text.contains("acme-"), "{text}");

    // The export is itself in acme's trail, with who, format and range.
    let trail = audit::recent(app.platform.db_for_tests(), owner.client_id, None, 50).await.unwrap();
    let exported = trail.iter().find(|e| e.action_type == "audit.exported").expect("export recorded");
    assert_eq!(exported.actor_id, Some(member.id.as_uuid()));
    assert_eq!(exported.metadata.0["format"], "jsonl");
    assert!(exported.metadata.0["from"].is_string() && exported.metadata.0["to"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_a_clear_400() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let cases = [
        ("format=xml&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z", "jsonl"),
        ("from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z", "jsonl"),
        ("format=csv&from=last-week&to=2026-11-02T00:00:00Z", "RFC 3339"),
        ("format=csv&to=2026-11-02T00:00:00Z", "from"),
        ("format=csv&from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "later"),
        ("format=csv&from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "366"),
        ("format=csv&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&agent=bot", "agent"),
    ];
    for (query, says) in cases {
        let res = app.get_as(&format!("/api/audit/export?{query}"), &browser.cookie).await;
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await.unwrap();
        let message = body["Invalid"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {body}");
    }
    // HEAD would record an export that sends nothing: refused.
    let head = app.client.head(app.url(&export_path("csv"))).header("cookie", &browser.cookie).send().await.unwrap();
    assert_eq!(head.status(), 405);
    let trail = audit::recent(app.platform.db_for_tests(), owner.client_id, None, 50).await.unwrap();
    assert!(trail.iter().all(|e| e.action_type != "audit.exported"), "refused exports are not exports");
    app.stop().await;
}

#[tokio::test]
async fn csv_download_is_quoted_and_formula_safe() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    record(&app, owner.client_id, "=HYPERLINK(\"http://evil.example\",\"open\")").await;
    record(&app, owner.client_id, "@SUM(1+1)").await;
    record(&app, owner.client_id, "a, \"quoted\"\nvalue").await;
    let res = app.get_as(&export_path("csv"), &browser.cookie).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(res.headers()["content-disposition"].to_str().unwrap().ends_with(".csv\""));
    let text = res.text().await.unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        "id,created_at,client_id,agent_id,actor_kind,actor_id,action_type,target,ip_address,metadata,seq,prev_hash,hash"
    );
    assert!(text.contains(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"open\"\")\","), "{text}");
    assert!(text.contains(",'@SUM(1+1),"), "{text}");
    assert!(text.contains(",\"a, \"\"quoted\"\"\nvalue\","), "{text}");
    assert!(text.ends_with("\r\n"));
    app.stop().await;
}

#[tokio::test]
async fn a_large_export_streams_completely_and_in_order() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    const N: usize = 5_000;
    let appended = std::time::Instant::now();
    for i in 0..N {
        let event = NewEvent::new(Some(owner.client_id), Actor::Platform, ActionType::parse("agent.tested").unwrap())
            .metadata(json!({ "n": i }));
        audit::append(app.platform.db_for_tests(), event).await.unwrap();
    }
    let appended = appended.elapsed();

    let started = std::time::Instant::now();
    let res = app.get_as(&export_path("jsonl"), &browser.cookie).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-length").is_none(), "streamed, not buffered: {:?}", res.headers());
    let text = res.text().await.unwrap();
    let elapsed = started.elapsed();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), N + 1, "every event, and the export's own record at the end");
    let ns: Vec<i64> = lines[..N].iter().map(|l| l["metadata"]["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, (0..N as i64).collect::<Vec<_>>(), "in order");
    let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend");
    assert_eq!(lines[N]["action_type"], "audit.exported");
    println!(
        "appended {N} events in {appended:?}; exported {} events ({} bytes) over HTTP in {elapsed:?}: {:.0} events/s",
        N + 1,
        text.len(),
        (N + 1) as f64 / elapsed.as_secs_f64()
    );
    app.stop().await;
}
