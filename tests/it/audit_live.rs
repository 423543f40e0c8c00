//! The live audit stream: backfill, then each new event of the viewer's own tenant exactly once and in order,
//! filters, resuming after an id, and (PostgreSQL) fan-out from another connection pool through NOTIFY.

use std::time::Duration;

use deployclaw::audit::live::{self, Filter};
use deployclaw::audit::{self, ActionType, Actor, AuditEvent, NewEvent};
use deployclaw::db::{AuditEventId, ClientId, Db, DbError};
use futures_util::{Stream, StreamExt};

use crate::support::{db_test, eventually, new_client, PATIENCE};

async fn add(db: &Db, client: Option<ClientId>, action: &'static str, target: &str) -> AuditEventId {
    audit::append(db, NewEvent::new(client, Actor::Platform, ActionType::known(action)).target(target)).await.unwrap()
}

/// The next `n` events (each waited for at most [`PATIENCE`]).
async fn take(stream: &mut (impl Stream<Item = Result<AuditEvent, DbError>> + Unpin), n: usize) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for _ in 0..n {
        let next = tokio::time::timeout(PATIENCE, stream.next()).await;
        out.push(next.expect("an event").expect("the stream is open").expect("no database error"));
    }
    out
}

/// Nothing else is pending for the viewer: a marker event appended now is the very next one it gets (the
/// stream is in id order, so anything it should not have sent, or sent twice, would come first).
async fn quiet(stream: &mut (impl Stream<Item = Result<AuditEvent, DbError>> + Unpin), db: &Db, client: ClientId) {
    let marker = add(db, Some(client), "agent.tested", "quiet-marker").await;
    let next = take(stream, 1).await.remove(0);
    assert_eq!(next.id, marker, "unexpected event before the marker: {next:?}");
}

const HOUR: Duration = Duration::from_secs(3600);

db_test!(a_viewer_gets_a_backfill_then_each_new_event_of_its_own_tenant_once, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(add(&t.db, Some(acme), "agent.deployed", &format!("bot-{i}")).await);
    }
    add(&t.db, Some(globex), "agent.deployed", "their-bot").await;
    add(&t.db, None, "auth.code_requested", "someone").await;

    let mut stream = Box::pin(live::follow(t.db.clone(), acme, Filter::default(), None, HOUR));
    let backfill = take(&mut stream, 3).await;
    assert_eq!(backfill.iter().map(|e| e.id).collect::<Vec<_>>(), before, "oldest first");
    quiet(&mut stream, &t.db, acme).await;

    let a = add(&t.db, Some(acme), "agent.stopped", "bot-0").await;
    add(&t.db, Some(globex), "agent.stopped", "their-bot").await;
    let b = add(&t.db, Some(acme), "credential.set", "bot-1").await;
    let live = take(&mut stream, 2).await;
    assert_eq!(live.iter().map(|e| e.id).collect::<Vec<_>>(), [a, b]);
    assert!(live.iter().all(|e| e.client_id == Some(acme)), "never another tenant's event");
    quiet(&mut stream, &t.db, acme).await;
});

db_test!(resuming_after_an_id_repeats_nothing_and_misses_nothing, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(add(&t.db, Some(acme), "agent.deployed", &format!("b{i}")).await);
    }
    // The browser saw up to the second event, then its connection dropped; two more happened meanwhile.
    let mut resumed = Box::pin(live::follow(t.db.clone(), acme, Filter::default(), Some(ids[1]), HOUR));
    let got = take(&mut resumed, 3).await;
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), ids[2..]);
    quiet(&mut resumed, &t.db, acme).await;
});

db_test!(concurrent_writers_reach_a_viewer_complete_and_in_order, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let mut stream = Box::pin(live::follow(t.db.clone(), acme, Filter::default(), None, HOUR));
    quiet(&mut stream, &t.db, acme).await; // an empty backfill
    let writers = (0..4).map(|w| {
        let db = t.db.clone();
        tokio::spawn(async move {
            for i in 0..25 {
                add(&db, Some(acme), "agent.healthy", &format!("w{w}-{i}")).await;
            }
        })
    });
    for w in futures_util::future::join_all(writers).await {
        w.unwrap();
    }
    let got = take(&mut stream, 100).await;
    let ids: Vec<i64> = got.iter().map(|e| e.id.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "strictly increasing: no duplicates, in order");
    let stored = audit::recent(&t.db, acme, None, 500).await.unwrap();
    assert_eq!(got.len() + 1, stored.len(), "every stored event was delivered (and the marker before them)");
    quiet(&mut stream, &t.db, acme).await;
});

db_test!(filters_narrow_the_backfill_and_the_live_events, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    add(&t.db, Some(acme), "agent.deployed", "support-bot").await;
    add(&t.db, Some(acme), "auth.signed_in", "ada@acme.example").await;
    add(&t.db, Some(acme), "agent.stopped", "sales-bot").await;
    let agents_only = Filter { action: Some("agent.".into()), ..Filter::default() };
    let mut stream = Box::pin(live::follow(t.db.clone(), acme, agents_only, None, HOUR));
    let got = take(&mut stream, 2).await;
    assert_eq!(got.iter().map(|e| e.action_type.as_str()).collect::<Vec<_>>(), ["agent.deployed", "agent.stopped"]);
    add(&t.db, Some(acme), "auth.signed_out", "ada@acme.example").await;
    let next = add(&t.db, Some(acme), "agent.restarted", "support-bot").await;
    assert_eq!(take(&mut stream, 1).await[0].id, next);
    quiet(&mut stream, &t.db, acme).await;

    // Text (case-insensitive, `_` and `%` literal), exact action, actor kind, and a closed time range.
    let search = |f: Filter| {
        let db = t.db.clone();
        async move { live::matching(&db, acme, &f, None, 100, false).await.unwrap() }
    };
    assert_eq!(search(Filter { text: Some("SUPPORT-bot".into()), ..Filter::default() }).await.len(), 2);
    assert_eq!(search(Filter { text: Some("%".into()), ..Filter::default() }).await.len(), 0);
    assert_eq!(search(Filter { action: Some("auth.signed_in".into()), ..Filter::default() }).await.len(), 1);
    assert_eq!(search(Filter { action: Some("auth.signed".into()), ..Filter::default() }).await.len(), 0, "exact");
    assert_eq!(search(Filter { actor_kind: Some("user".into()), ..Filter::default() }).await.len(), 0);
    // Five events and the `quiet` marker.
    assert_eq!(search(Filter { actor_kind: Some("platform".into()), ..Filter::default() }).await.len(), 6);
    let past = Filter {
        from: Some(deployclaw::db::now() - chrono::Duration::hours(2)),
        to: Some(deployclaw::db::now() - chrono::Duration::hours(1)),
        ..Filter::default()
    };
    assert!(search(past.clone()).await.is_empty());
    let mut history = Box::pin(live::follow(t.db.clone(), acme, past, None, HOUR));
    let end = tokio::time::timeout(PATIENCE, history.next()).await.expect("ends without waiting for events");
    assert!(end.is_none(), "a range in the past is history: the stream ends");
});

/// Two server processes on one PostgreSQL database: what one appends, a viewer connected to the other sees,
/// through LISTEN/NOTIFY (the second pool never hears of the append in-process).
#[tokio::test]
async fn postgres_fans_out_across_connection_pools() {
    let t = crate::support::TestDb::fresh(crate::support::Which::Postgres).await;
    let other = Db::connect(&t.config).await.unwrap();
    let acme = new_client(&t.db, "acme").await.id;
    let mut stream = Box::pin(live::follow(other.clone(), acme, Filter::default(), None, HOUR));
    quiet(&mut stream, &t.db, acme).await; // the backfill has been read
                                           // The other pool's LISTEN is in place (a database fact): the next append can only reach it by NOTIFY.
    eventually("the other pool LISTENs", async || {
        t.raw_count(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE 'LISTEN%deployclaw_audit%'",
        )
        .await
            >= 1
    })
    .await;
    let id = add(&t.db, Some(acme), "agent.deployed", "bot").await;
    assert_eq!(take(&mut stream, 1).await[0].id, id);
    drop(stream);
    other.close().await;
    t.cleanup().await;
}
