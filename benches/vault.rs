//! Vault benchmarks: sealing and opening 1 KiB secrets, and rotation throughput on SQLite and PostgreSQL
//! (PostgreSQL only when DEPLOYCLAW_TEST_POSTGRES_URL names a server; scripts/lib.sh `ensure_postgres` sets
//! it). Run: `cargo bench -p deployclaw --bench vault`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deployclaw::audit::Actor;
use deployclaw::config::{DatabaseConfig, DatabaseTarget};
use deployclaw::db::{agents, clients, AgentId, ClientId, Db};
use deployclaw::email::EmailAddress;
use deployclaw::identity::fresh::FreshTwoFactor;
use deployclaw::keys::envelope::{self, Binding};
use deployclaw::keys::keyring::{KeyVersion, Keyring, MasterKey};
use deployclaw::vault::{rotation, CredentialName, Vault};
use secrecy::{ExposeSecret, SecretSlice};
use sqlx::Connection;

const ROTATION_RECORDS: usize = 400;

fn keyring(versions: &[u32]) -> Keyring {
    Keyring::new(versions.iter().map(|v| (KeyVersion(*v), MasterKey::from_bytes([*v as u8; 32]))), "bench").unwrap()
}

fn envelope_bench(c: &mut Criterion) {
    let k = keyring(&[1]);
    let binding = Binding { client_id: ClientId::new(), agent_id: AgentId::new(), name: "openai_key" };
    let secret = vec![0x5au8; 1024];
    let mut group = c.benchmark_group("envelope_1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal+open", |b| {
        b.iter(|| {
            let sealed = envelope::seal(&k, binding, &secret).unwrap();
            let opened = envelope::open(&k, binding, &sealed).unwrap();
            assert_eq!(opened.expose_secret().len(), 1024);
        })
    });
    group.finish();
}

struct Seeded {
    db: Db,
    _dir: Option<tempfile::TempDir>,
}

async fn seed(target: &str) -> Seeded {
    let (config, dir) = match target {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("bench.db");
            (DatabaseTarget::Sqlite { path }, Some(dir))
        }
        _ => {
            let admin = std::env::var("DEPLOYCLAW_TEST_POSTGRES_URL").unwrap();
            let name = format!("dc_test_bench_{}", uuid::Uuid::now_v7().simple());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&format!("/{name}"));
            (DatabaseTarget::Postgres { url: url.to_string().into() }, None)
        }
    };
    let db =
        Db::connect(&DatabaseConfig { target: config, max_connections: 5, connect_timeout: Duration::from_secs(10) })
            .await
            .unwrap();
    db.migrate().await.unwrap();
    let client = clients::create(
        &db,
        clients::NewClient {
            name: clients::ClientName::parse("Bench").unwrap(),
            email: EmailAddress::parse("bench@bench.example").unwrap(),
        },
    )
    .await
    .unwrap()
    .id;
    let agent = agents::create(
        &db,
        client,
        agents::NewAgent {
            name: agents::AgentName::parse("bot").unwrap(),
            template: "openclaw".into(),
            config: serde_json::json!({}),
            permissions: serde_json::json!({}),
        },
    )
    .await
    .unwrap()
    .id;
    let v1 = Vault::new(db.clone(), keyring(&[1]));
    let proof = fresh_proof(client);
    for i in 0..ROTATION_RECORDS {
        let name = CredentialName::parse(&format!("key{i}")).unwrap();
        v1.put(Actor::Platform, client, agent, &name, SecretSlice::from(vec![7u8; 1024]), &proof, None).await.unwrap();
    }
    Seeded { db, _dir: dir }
}

fn rotation_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("rotation");
    group.sample_size(10).throughput(Throughput::Elements(ROTATION_RECORDS as u64));
    let mut targets = vec!["sqlite"];
    if std::env::var("DEPLOYCLAW_TEST_POSTGRES_URL").is_ok() {
        targets.push("postgres");
    } else {
        eprintln!("rotation/postgres skipped: DEPLOYCLAW_TEST_POSTGRES_URL is not set");
    }
    for target in targets {
        group.bench_function(format!("{target}/{ROTATION_RECORDS}x1KiB/batch100"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let seeded = rt.block_on(seed(target));
                    let vault = Vault::new(seeded.db.clone(), keyring(&[1, 2]));
                    let start = Instant::now();
                    let report = rt.block_on(rotation::rotate(&vault, 100, Duration::ZERO, |_| {})).unwrap();
                    total += start.elapsed();
                    assert_eq!(report.progress.converted, ROTATION_RECORDS as u64);
                    rt.block_on(seeded.db.close());
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, envelope_bench, rotation_bench);
criterion_main!(benches);

/// A fresh second-factor proof for a user of `client`, from a signed-in session.
fn fresh_proof(client: deployclaw::db::ClientId) -> FreshTwoFactor {
    use deployclaw::identity::session::{SessionAuth, Stage};
    let ctx = deployclaw::context::RequestContext { ip: "127.0.0.1".parse().unwrap(), user_agent: None };
    let now = deployclaw::db::now();
    let user_id = deployclaw::db::UserId::new();
    let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: client, user_id }, &ctx, now);
    auth.second_factor_passed(client, user_id, now);
    FreshTwoFactor::from_session(&auth, now).expect("fresh")
}
