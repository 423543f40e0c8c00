//! Audit benchmark: sustained append throughput (one writer; 8 concurrent writers on one account's chain and on
//! 8 accounts' chains), live delivery latency from append to receipt by 100 concurrent viewers of the live
//! stream (p50/p99), and verify speed - on SQLite, and on PostgreSQL when `DEPLOYCLAW_TEST_POSTGRES_URL` names
//! a server where the role may create databases (./scripts/test sets one up). Run:
//! `cargo bench -p deployclaw --bench audit` (`AUDIT_BENCH_EVENTS=N` to change the event counts).
//!
//! Traffic: the local database only.

use std::time::{Duration, Instant};

use deployclaw::audit::live::{self, Filter};
use deployclaw::audit::{self, chain, ActionType, Actor, NewEvent};
use deployclaw::config::{DatabaseConfig, DatabaseTarget};
use deployclaw::db::clients::{self, ClientName, NewClient};
use deployclaw::db::{ClientId, Db};
use deployclaw::email::EmailAddress;
use deployclaw::keys::keyring::{KeyVersion, Keyring, MasterKey};
use futures_util::StreamExt;
use sqlx::Connection;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(bench());
}

fn config(target: DatabaseTarget) -> DatabaseConfig {
    DatabaseConfig { target, max_connections: 16, connect_timeout: Duration::from_secs(10) }
}

async fn bench() {
    let events: usize =
        std::env::var("AUDIT_BENCH_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(2000).clamp(100, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = config(DatabaseTarget::Sqlite { path: dir.path().join("bench.db") });
    run("sqlite", &sqlite, events).await;
    let Ok(admin) = std::env::var("DEPLOYCLAW_TEST_POSTGRES_URL") else {
        println!("postgres: skipped (DEPLOYCLAW_TEST_POSTGRES_URL is not set)");
        return;
    };
    let name = format!("dc_bench_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
    let (base, _) = admin.rsplit_once('/').expect("a URL ending in /database");
    let url = format!("{base}/{name}");
    run("postgres", &config(DatabaseTarget::Postgres { url: url.into() }), events).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await.unwrap();
}

async fn client(db: &Db, n: usize) -> ClientId {
    let email = EmailAddress::parse(&format!("owner@bench{n}.example")).unwrap();
    let name = ClientName::parse(&format!("bench {n}")).unwrap();
    clients::create(db, NewClient { name, email }).await.unwrap().id
}

fn event(client: ClientId, i: usize) -> NewEvent {
    NewEvent::new(Some(client), Actor::Platform, ActionType::known("agent.healthy"))
        .target(format!("bot-{i}"))
        .metadata(serde_json::json!({ "n": i, "note": "benchmark" }))
}

fn rate(n: usize, took: Duration) -> String {
    format!("{:.0} events/s ({n} in {:.2} s)", n as f64 / took.as_secs_f64(), took.as_secs_f64())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(backend: &str, config: &DatabaseConfig, events: usize) {
    let db = Db::connect(config).await.unwrap();
    db.migrate().await.unwrap();
    let keyring = Keyring::new([(KeyVersion(1), MasterKey::generate())], "bench").unwrap();

    // One writer.
    let solo = client(&db, 0).await;
    let start = Instant::now();
    for i in 0..events {
        audit::append(&db, event(solo, i)).await.unwrap();
    }
    println!("{backend}: append, 1 writer: {}", rate(events, start.elapsed()));

    // 8 writers on one account (one chain: appends serialise on its head) and on 8 accounts (8 chains).
    let shared = client(&db, 1).await;
    let mut own = Vec::new();
    for w in 0..8 {
        own.push(client(&db, 10 + w).await);
    }
    for (label, clients) in [("one account", vec![shared; 8]), ("8 accounts", own)] {
        let per = events / 8;
        let start = Instant::now();
        let writers = clients.into_iter().map(|c| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    audit::append(&db, event(c, i)).await.unwrap();
                }
            })
        });
        for w in futures_util::future::join_all(writers).await {
            w.unwrap();
        }
        println!("{backend}: append, 8 writers, {label}: {}", rate(per * 8, start.elapsed()));
    }

    // Live delivery: 100 viewers follow one account; each append is timed until every viewer has it.
    let watched = client(&db, 2).await;
    let viewers = 100;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let mut stream = Box::pin(live::follow(db.clone(), watched, Filter::default(), None, Duration::from_secs(600)));
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(e)) = stream.next().await {
                if tx.send((e.id.0, Instant::now())).is_err() {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // every viewer subscribed (and listening, on PostgreSQL)
    let samples = 200.min(events);
    let mut latencies = Vec::with_capacity(samples * viewers);
    for i in 0..samples {
        let sent = Instant::now();
        let id = audit::append(&db, event(watched, i)).await.unwrap().0;
        let mut got = 0;
        while got < viewers {
            let (seen, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("every viewer receives within 10 s")
                .expect("viewers run");
            assert_eq!(seen, id, "in order, once");
            latencies.push(at - sent);
            got += 1;
        }
    }
    for t in tasks {
        t.abort();
    }
    latencies.sort();
    println!(
        "{backend}: live delivery to {viewers} viewers ({samples} events, {} receipts): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );

    // Verify everything, with a checkpoint per chain.
    chain::checkpoint_all(&db, &keyring).await.unwrap();
    let start = Instant::now();
    let report = chain::verify(&db, &keyring, None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    println!("{backend}: verify: {}", rate(report.events() as usize, start.elapsed()));
    db.close().await;
}
