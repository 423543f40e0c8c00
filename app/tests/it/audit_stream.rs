//! The live audit stream over HTTP: who may open it, what it carries (only the caller's tenant), resuming with
//! Last-Event-ID, filters checked with clear errors, and history ranges that end.

use deployclaw::audit::{self, ActionType, Actor, NewEvent};
use deployclaw::db::users::Role;

use crate::support::{eventually, TestApp, PATIENCE};

/// One server-sent event.
#[derive(Debug, Default, Clone)]
struct Sse {
    event: String,
    id: Option<String>,
    data: String,
}

/// Reads server-sent events from a streaming response.
struct Reader {
    res: reqwest::Response,
    buf: String,
}

impl Reader {
    async fn open(app: &TestApp, cookie: &str, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
        // No overall timeout here: the stream stays open; each read below is bounded instead.
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut req = client.get(app.url(&format!("/api/audit/stream{query}"))).header("cookie", cookie);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        tokio::time::timeout(PATIENCE, req.send()).await.expect("answers").expect("request completes")
    }

    /// The next event that is not a keep-alive comment (waiting at most [`PATIENCE`]); `None` when the stream
    /// ended.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut sse = Sse::default();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        sse.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        sse.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        sse.data.push_str(v.trim_start());
                    }
                }
                if !sse.event.is_empty() {
                    return Some(sse);
                }
                continue;
            }
            let chunk =
                tokio::time::timeout(PATIENCE, self.res.chunk()).await.expect("an event").expect("the stream reads");
            match chunk {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    async fn next_audit(&mut self) -> serde_json::Value {
        let sse = self.next().await.expect("an event");
        assert_eq!(sse.event, "audit", "{sse:?}");
        let row: serde_json::Value = serde_json::from_str(&sse.data).unwrap();
        assert_eq!(sse.id.as_deref(), Some(row["id"].to_string().as_str()), "the SSE id is the event id");
        row
    }
}

async fn record(app: &TestApp, client: deployclaw::db::ClientId, action: &'static str, target: &str) -> i64 {
    let event = NewEvent::new(Some(client), Actor::Platform, ActionType::known(action)).target(target);
    audit::append(app.platform.db_for_tests(), event).await.unwrap().0
}

#[tokio::test]
async fn the_stream_needs_a_signed_in_user_and_carries_only_their_tenants_events() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/api/audit/stream")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let member = app.user(Some(owner.client_id), "dev@acme.example", Role::Member).await;
    let rival = app.user(None, "owner@globex.example", Role::Owner).await;
    let first = record(&app, owner.client_id, "agent.deployed", "support-bot").await;
    record(&app, rival.client_id, "agent.deployed", "globex-secret-bot").await;

    // Any role of the client may watch.
    let b = app.sign_in_as(&member, chrono::Duration::seconds(5)).await;
    let res = Reader::open(&app, &b.cookie, "", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_eq!(res.headers()["cache-control"], "no-store");
    let mut stream = Reader { res, buf: String::new() };
    let backfill = stream.next_audit().await;
    assert_eq!(backfill["id"], first);
    assert_eq!(backfill["target"], "support-bot");

    // Live: the rival's event never shows; ours arrive in order.
    record(&app, rival.client_id, "agent.stopped", "globex-secret-bot").await;
    let a = record(&app, owner.client_id, "agent.stopped", "support-bot").await;
    let owner_browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let res = app
        .call("create_agent", Some(&owner_browser.cookie), &[("name", "fresh-bot"), ("template", "test-agent")])
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(stream.next_audit().await["id"], a);
    let created = stream.next_audit().await;
    assert_eq!(created["action"], "agent.created", "a dashboard action appears live: {created}");
    assert_eq!(created["actor"], "user");
    assert_eq!(created["ip"], "127.0.0.1");
    assert!(!stream.buf.contains("globex"), "never another tenant's event");

    // Reconnecting with Last-Event-ID resumes after it: nothing repeated, nothing missed.
    drop(stream);
    let missed = record(&app, owner.client_id, "credential.set", "support-bot").await;
    let res = Reader::open(&app, &b.cookie, "", Some(&a.to_string())).await;
    let mut resumed = Reader { res, buf: String::new() };
    assert_eq!(resumed.next_audit().await["action"], "agent.created");
    assert_eq!(resumed.next_audit().await["id"], missed);
    app.stop().await;
}

#[tokio::test]
async fn filters_are_checked_and_history_ranges_end() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let rival = app.user(None, "owner@globex.example", Role::Owner).await;
    let b = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    for (query, expected) in [
        ("?from=yesterday", "\\\"from\\\" must be a date"),
        ("?actor=root", "one of user, agent, platform, admin"),
        ("?action=DROP%20TABLE", "looks like `agent.deployed`"),
        ("?from=2026-11-23T10:00:00Z&to=2026-11-23T09:00:00Z", "ends before it starts"),
    ] {
        let res = Reader::open(&app, &b.cookie, query, None).await;
        assert_eq!(res.status(), 400, "{query}");
        let body = res.text().await.unwrap();
        assert!(body.contains(expected), "{query}: {body}");
    }
    // Another client's agent is unknown here.
    let theirs = app
        .platform
        .agents()
        .configure(
            Actor::Platform,
            rival.client_id,
            deployclaw::db::agents::AgentName::parse("their-bot").unwrap(),
            "test-agent",
            &deployclaw::context::RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: None },
        )
        .await
        .unwrap();
    let res = Reader::open(&app, &b.cookie, &format!("?agent={}", theirs.id), None).await;
    assert_eq!(res.status(), 404);

    // A range in the past: what it holds, then `end`.
    record(&app, owner.client_id, "agent.deployed", "support-bot").await;
    let res = Reader::open(&app, &b.cookie, "?from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z", None).await;
    let mut history = Reader { res, buf: String::new() };
    assert_eq!(history.next().await.expect("an end event").event, "end");
    assert!(history.next().await.is_none(), "the stream ends");
    // The same search over all time finds the event, by text and action area.
    let res = Reader::open(&app, &b.cookie, "?q=SUPPORT&action=agent.", None).await;
    let mut found = Reader { res, buf: String::new() };
    assert_eq!(found.next_audit().await["target"], "support-bot");
    app.stop().await;
}

/// Two server instances on one PostgreSQL database (each with its own platform, connection pool and LISTEN
/// connection): what a user does through one appears live in a viewer connected to the other.
#[tokio::test]
async fn two_servers_on_one_postgres_database_share_the_live_stream() {
    use sqlx::Connection;
    let url = crate::support::fresh_postgres_url().await;
    let (_, name) = url.rsplit_once('/').unwrap();
    let on_postgres = |c: &mut deployclaw::config::Config| {
        c.database.target = deployclaw::config::DatabaseTarget::Postgres { url: url.clone().into() };
    };
    let first = TestApp::spawn_with(on_postgres, true).await;
    let second = TestApp::spawn_with(on_postgres, true).await;

    let owner = first.user(None, "owner@acme.example", Role::Owner).await;
    let rival = first.user(None, "owner@globex.example", Role::Owner).await;
    // Sessions live in the shared database: the same browser session works on either server.
    let b = first.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    record(&first, owner.client_id, "agent.tested", "before-the-stream").await;
    let res = Reader::open(&second, &b.cookie, "", None).await;
    assert_eq!(res.status(), 200);
    let mut stream = Reader { res, buf: String::new() };
    // The backfill has been read once the earlier event arrives; the second server hears appends once its
    // LISTEN is in place (a database fact, waited for). Only after both can the next event arrive live.
    assert_eq!(stream.next_audit().await["target"], "before-the-stream");
    let mut listening = sqlx::PgConnection::connect(&url).await.unwrap();
    eventually("the second server LISTENs for audit appends", async || {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%deployclaw_audit%'",
        )
        .bind(name)
        .fetch_one(&mut listening)
        .await
        .unwrap();
        n >= 1
    })
    .await;
    listening.close().await.unwrap();
    // Then an action through the first server, and the rival's event, which must not show.
    record(&first, rival.client_id, "agent.deployed", "globex-bot").await;
    let res = first.call("create_agent", Some(&b.cookie), &[("name", "across"), ("template", "test-agent")]).await;
    assert_eq!(res.status(), 200);
    let created = stream.next_audit().await;
    assert_eq!((created["action"].as_str(), created["target"].as_str()), (Some("agent.created"), Some("across")));
    assert!(!stream.buf.contains("globex"), "never another tenant's event");

    drop(stream);
    first.stop().await;
    second.stop().await;
    crate::support::drop_postgres(&url).await;
}
