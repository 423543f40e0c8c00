//! The audit hash chain on both databases: concurrent appends stay linked, checkpoints are signed with the
//! keyring's key, `verify` names the first broken link for each kind of tampering, and retention deletes only
//! through its privileged path and leaves a chain that still verifies.
//!
//! Tampering needs more power than the application has: the tests take it the way an intruder with database
//! access would. On SQLite they drop the append-only triggers (anyone with the file can); on PostgreSQL the
//! test role owns the tables (it ran the migrations), grants itself UPDATE/DELETE back and disables the
//! triggers - deliberate DDL, which the application never runs.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use deployclaw::audit::chain::{self, BreakKind, Chain, ChainHash};
use deployclaw::audit::retention::{self, RetentionPolicy};
use deployclaw::audit::{self, ActionType, Actor, AuditEvent, NewEvent, EVENT_COLUMNS};
use deployclaw::db::{Backend, ClientId, Db};
use deployclaw::keys::keyring::Keyring;
use serde_json::json;

use crate::support::{db_test, new_client, test_keyring, TestDb};

fn action(s: &str) -> ActionType {
    ActionType::parse(s).unwrap()
}

async fn append_n(db: &Db, client: Option<ClientId>, n: usize) {
    for i in 0..n {
        let event = NewEvent::new(client, Actor::Platform, action("agent.deployed"))
            .target(format!("bot-{i}"))
            .metadata(json!({"n": i, "ratio": 0.5 + i as f64, "big": 1e19, "nested": {"b": [1, 2.0], "a": "é\n"}}))
            .ip("203.0.113.7".parse().unwrap());
        audit::append(db, event).await.unwrap();
    }
}

/// Lets the test role UPDATE and DELETE audit rows (and insert unchained ones), as an intruder with
/// database-owner access could.
async fn bypass_append_only(t: &TestDb) {
    let statements: &[&str] = match t.db.backend() {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_logs_no_update",
            "DROP TRIGGER audit_logs_no_delete",
            "DROP TRIGGER audit_logs_must_be_chained",
            "DROP TRIGGER audit_chain_heads_forward_only",
        ],
        Backend::Postgres => &[
            "GRANT UPDATE, DELETE ON audit_logs TO CURRENT_USER",
            "ALTER TABLE audit_logs DISABLE TRIGGER USER",
            "ALTER TABLE audit_chain_heads DISABLE TRIGGER USER",
            "ALTER TABLE audit_logs DROP CONSTRAINT audit_logs_chained",
        ],
    };
    for sql in statements {
        t.raw_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn bytes_literal(t: &TestDb, bytes: &[u8]) -> String {
    match t.db.backend() {
        Backend::Sqlite => format!("X'{}'", hex(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every event of `client`'s chain, in chain order, read outside the platform's API.
async fn chain_events(t: &TestDb, client: ClientId) -> Vec<AuditEvent> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_logs WHERE client_id = $1 ORDER BY seq");
    match t.db.backend() {
        Backend::Sqlite => {
            let pool =
                sqlx::SqlitePool::connect(&format!("sqlite://{}", t.sqlite_path().unwrap().display())).await.unwrap();
            sqlx::query_as(&sql).bind(client).fetch_all(&pool).await.unwrap()
        }
        Backend::Postgres => {
            let url = match &t.config.target {
                deployclaw::config::DatabaseTarget::Postgres { url } => {
                    secrecy::ExposeSecret::expose_secret(url).to_string()
                }
                _ => unreachable!(),
            };
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query_as(&sql).bind(client).fetch_all(&pool).await.unwrap()
        }
    }
}

async fn intact(db: &Db, keyring: &Keyring) -> chain::Report {
    let report = chain::verify(db, keyring, None).await.unwrap();
    for c in &report.chains {
        assert!(c.problem.is_none(), "{}: {}", c.chain, c.problem.as_ref().unwrap());
    }
    report
}

async fn problem(db: &Db, keyring: &Keyring, client: ClientId) -> chain::Break {
    let report = chain::verify(db, keyring, Some(client)).await.unwrap();
    assert!(!report.is_intact());
    report.chains[0].problem.clone().unwrap()
}

db_test!(events_carry_their_chain_position_and_hash, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    append_n(&t.db, Some(acme), 3).await;
    append_n(&t.db, Some(globex), 2).await;
    append_n(&t.db, None, 2).await;
    let events = audit::recent(&t.db, acme, None, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(), [3, 2, 1], "acme's own sequence");
    assert_eq!(events[2].prev_hash, Some(ChainHash::GENESIS));
    assert_eq!(events[1].prev_hash, events[2].hash);
    assert_eq!(events[0].prev_hash, events[1].hash);
    // Recomputed from what the database gives back (JSONB reorders keys and rewrites 1e19 and 2.0).
    for e in &events {
        assert_eq!(e.canonical().unwrap().hash(&e.prev_hash.unwrap()), e.hash.unwrap());
    }
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["hash"], events[0].hash.unwrap().to_hex());
    assert!(json["prev_hash"].as_str().unwrap().chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_eq!(audit::recent(&t.db, globex, None, 10).await.unwrap()[0].seq, Some(2));

    let report = intact(&t.db, &keyring).await;
    assert_eq!(report.chains.len(), 3, "acme, globex and the platform chain");
    assert_eq!(report.events(), 7);
    assert!(report.chains.iter().any(|c| c.chain == Chain::Platform && c.events == 2));
});

db_test!(eight_concurrent_writers_leave_unbroken_chains, |t| {
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                // Half to acme's chain, half to the platform chain, interleaved.
                let client = if (w + i) % 2 == 0 { Some(acme) } else { None };
                let event = NewEvent::new(client, Actor::Platform, action("agent.deployed"))
                    .metadata(json!({"writer": w, "i": i}));
                audit::append(&db, event).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{:?}: {} appends by {WRITERS} writers in {elapsed:?} ({:.0} events/s)",
        t.db.backend(),
        WRITERS * EACH,
        (WRITERS * EACH) as f64 / elapsed.as_secs_f64()
    );
    let started = Instant::now();
    let report = intact(&t.db, &keyring).await;
    eprintln!("{:?}: verified {} events in {:?}", t.db.backend(), report.events(), started.elapsed());
    for c in &report.chains {
        assert_eq!(c.events, (WRITERS * EACH / 2) as u64, "{}", c.chain);
        assert_eq!((c.first_seq, c.last_seq), (Some(1), Some((WRITERS * EACH / 2) as i64)), "{}", c.chain);
    }
    assert_eq!(report.chains.len(), 2);
});

db_test!(the_application_role_cannot_update_or_delete_the_audit_record, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 2).await;
    chain::checkpoint_all(&t.db, &keyring).await.unwrap();
    for sql in [
        "UPDATE audit_logs SET target = 'nothing happened'",
        "DELETE FROM audit_logs",
        "UPDATE audit_checkpoints SET seq = 1",
        "DELETE FROM audit_checkpoints",
        "DELETE FROM audit_chain_heads",
        "UPDATE audit_chain_heads SET seq = 1",
    ] {
        let err = t.raw_execute(sql).await.expect_err(sql).to_string();
        assert!(
            err.contains("append-only")
                || err.contains("permission denied")
                || err.contains("only move forward")
                || err.contains("never deleted"),
            "{sql}: {err}"
        );
    }
    let unchained = format!(
        "INSERT INTO audit_logs (client_id, actor_kind, action_type, metadata, created_at) \
         VALUES ({}, 'platform', 'agent.forged', '{{}}', '2026-01-01T00:00:00Z')",
        t.literal_uuid(acme.as_uuid())
    );
    assert!(t.raw_execute(&unchained).await.is_err(), "a row outside the chain is refused");
    if t.db.backend() == Backend::Postgres {
        // DELETE on audit_logs belongs to the retention role alone. On PostgreSQL 15 a member inherits it (16+
        // grants the membership WITH INHERIT FALSE; docs/audit.md); the trigger refuses it all the same unless the
        // session has switched to that role, and then only for rows a retention checkpoint covers.
        let inherits = t
            .raw_count(
                "SELECT CAST(CASE WHEN pg_has_role(current_user, 'deployclaw_audit_retention', 'USAGE') \
                 THEN 1 ELSE 0 END AS BIGINT)",
            )
            .await;
        let delete = t
            .raw_count(
                "SELECT CAST(CASE WHEN has_table_privilege(current_user, 'audit_logs', 'DELETE') \
                 THEN 1 ELSE 0 END AS BIGINT)",
            )
            .await;
        assert_eq!(delete, inherits, "DELETE on audit_logs comes only from the retention role");
        for (table, privilege) in [
            ("audit_logs", "UPDATE"),
            ("audit_logs", "TRUNCATE"),
            ("audit_checkpoints", "UPDATE"),
            ("audit_checkpoints", "DELETE"),
            ("audit_checkpoints", "TRUNCATE"),
            ("audit_chain_heads", "DELETE"),
        ] {
            let sql = format!(
                "SELECT CAST(CASE WHEN has_table_privilege(current_user, '{table}', '{privilege}') THEN 1 ELSE 0 END \
                 AS BIGINT)"
            );
            assert_eq!(t.raw_count(&sql).await, 0, "the application role holds {privilege} on {table}");
        }
        // Even switched to the retention role, only rows a retention checkpoint covers may go.
        let err = t
            .raw_execute("DO $$ BEGIN SET LOCAL ROLE deployclaw_audit_retention; DELETE FROM audit_logs; END $$")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("append-only"), "{err}");
    } else {
        // Opening the retention gate by hand does not let uncovered rows go either.
        t.raw_execute("INSERT INTO audit_retention_gate (opened_at) VALUES ('x')").await.unwrap();
        let err = t.raw_execute("DELETE FROM audit_logs").await.unwrap_err().to_string();
        assert!(err.contains("append-only"), "{err}");
    }
    assert_eq!(audit::recent(&t.db, acme, None, 10).await.unwrap().len(), 2);
    intact(&t.db, &keyring).await;
});

db_test!(an_edited_row_is_reported_at_its_position, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 6).await;
    let victim = &chain_events(&t, acme).await[2];
    bypass_append_only(&t).await;
    t.raw_execute(&format!("UPDATE audit_logs SET target = 'bot-innocent' WHERE id = {}", victim.id)).await.unwrap();
    let p = problem(&t.db, &keyring, acme).await;
    assert_eq!((p.seq, p.id), (Some(3), Some(victim.id)));
    assert!(matches!(p.kind, BreakKind::Edited { .. }), "{p}");
    assert!(p.to_string().contains("edited"), "{p}");
});

db_test!(a_deleted_row_is_reported_as_a_gap, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 6).await;
    let events = chain_events(&t, acme).await;
    bypass_append_only(&t).await;
    t.raw_execute(&format!("DELETE FROM audit_logs WHERE id = {}", events[3].id)).await.unwrap();
    let p = problem(&t.db, &keyring, acme).await;
    assert_eq!((p.seq, p.id), (Some(5), Some(events[4].id)));
    assert_eq!(p.kind, BreakKind::Missing { expected_seq: 4, found_seq: Some(5) });

    // The last row, too: the chain head still names it.
    t.raw_execute(&format!("DELETE FROM audit_logs WHERE id = {}", events[5].id)).await.unwrap();
    t.raw_execute(&format!("DELETE FROM audit_logs WHERE id = {}", events[4].id)).await.unwrap();
    let p = problem(&t.db, &keyring, acme).await;
    assert_eq!(p.kind, BreakKind::Missing { expected_seq: 4, found_seq: None }, "{p}");
});

db_test!(a_deleted_row_with_renumbered_successors_is_an_unlinked_hash, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 5).await;
    let events = chain_events(&t, acme).await;
    bypass_append_only(&t).await;
    // Remove seq 2 and close the gap by renumbering: positions look complete, the links do not.
    t.raw_execute(&format!("DELETE FROM audit_logs WHERE id = {}", events[1].id)).await.unwrap();
    for e in &events[2..] {
        t.raw_execute(&format!("UPDATE audit_logs SET seq = {} WHERE id = {}", e.seq.unwrap() - 1, e.id))
            .await
            .unwrap();
    }
    let p = problem(&t.db, &keyring, acme).await;
    assert_eq!((p.seq, p.id), (Some(2), Some(events[2].id)));
    assert!(matches!(p.kind, BreakKind::Unlinked { .. }), "{p}");
});

db_test!(reordered_rows_are_reported, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 5).await;
    let events = chain_events(&t, acme).await;
    let (a, b) = (events[1].id, events[2].id);
    bypass_append_only(&t).await;
    // Swap the rows' places in the table (their ids), leaving each row's content and chain fields intact.
    for sql in [
        format!("UPDATE audit_logs SET id = 999999 WHERE id = {a}"),
        format!("UPDATE audit_logs SET id = {a} WHERE id = {b}"),
        format!("UPDATE audit_logs SET id = {b} WHERE id = 999999"),
    ] {
        t.raw_execute(&sql).await.unwrap();
    }
    let p = problem(&t.db, &keyring, acme).await;
    assert_eq!(p.seq, Some(3));
    assert_eq!(p.kind, BreakKind::Reordered { previous_id: b });
});

/// Rewrites event `index` of `client`'s chain and recomputes every hash after it, and the chain head: what
/// someone who knows the algorithm but not the master key can do.
async fn forge_from(t: &TestDb, client: ClientId, index: usize) {
    let mut events = chain_events(t, client).await;
    events[index].action_type = "agent.nothing_happened".into();
    let mut prev = events[index].prev_hash.unwrap();
    for e in &mut events[index..] {
        let hash = e.canonical().unwrap().hash(&prev);
        let sql = format!(
            "UPDATE audit_logs SET action_type = '{}', prev_hash = {}, hash = {} WHERE id = {}",
            e.action_type,
            bytes_literal(t, &prev.0),
            bytes_literal(t, &hash.0),
            e.id
        );
        t.raw_execute(&sql).await.unwrap();
        prev = hash;
    }
    let sql = format!(
        "UPDATE audit_chain_heads SET head = {} WHERE chain_id = {}",
        bytes_literal(t, &prev.0),
        t.literal_uuid(client.as_uuid())
    );
    t.raw_execute(&sql).await.unwrap();
}

db_test!(a_forged_and_rehashed_chain_is_caught_by_a_signed_checkpoint, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    append_n(&t.db, Some(acme), 4).await;
    append_n(&t.db, Some(globex), 4).await;
    assert_eq!(chain::checkpoint_all(&t.db, &keyring).await.unwrap(), 2);
    append_n(&t.db, Some(acme), 2).await;
    bypass_append_only(&t).await;

    // The limit first, stated honestly: acme's events 5 and 6 came after its last checkpoint, so a forgery of
    // those alone, with hashes recomputed, verifies.
    forge_from(&t, acme, 4).await;
    intact(&t.db, &keyring).await;

    // A forgery reaching back before a checkpoint is caught there.
    forge_from(&t, globex, 1).await;
    let p = problem(&t.db, &keyring, globex).await;
    assert_eq!(p.seq, Some(4), "the checkpoint signed globex's head at seq 4");
    assert!(matches!(p.kind, BreakKind::Rewritten { .. }), "{p}");
    assert!(p.to_string().contains("forged"), "{p}");
});

db_test!(checkpoints_are_signed_with_the_keyring_key_and_forged_ones_are_refused, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 3).await;
    append_n(&t.db, None, 1).await;
    assert_eq!(chain::checkpoint_all(&t.db, &keyring).await.unwrap(), 2, "both chains moved");
    assert_eq!(chain::checkpoint_all(&t.db, &keyring).await.unwrap(), 0, "nothing moved since");
    append_n(&t.db, Some(acme), 1).await;
    assert_eq!(chain::checkpoint_all(&t.db, &keyring).await.unwrap(), 1, "only acme moved");
    let report = intact(&t.db, &keyring).await;
    assert_eq!(report.chains.iter().map(|c| c.checkpoints).sum::<u64>(), 3);

    // Another master key does not vouch for these checkpoints.
    let other = test_keyring(&[1]);
    let p = chain::verify(&t.db, &other, Some(acme)).await.unwrap().chains[0].problem.clone().unwrap();
    assert!(matches!(p.kind, BreakKind::BadSignature { .. }), "{p}");
    // A retired key version is neither trusted nor refuted.
    let rotated = test_keyring(&[2]);
    let report = chain::verify(&t.db, &rotated, Some(acme)).await.unwrap();
    assert!(report.is_intact());
    assert_eq!((report.chains[0].checkpoints, report.chains[0].untrusted_checkpoints), (0, 2));

    // Inserting a checkpoint needs no special privilege; passing for a signed one needs the key.
    let cp = &chain::checkpoints(&t.db, Chain::Client(acme), 1).await.unwrap()[0];
    let forged = format!(
        "INSERT INTO audit_checkpoints (chain_id, seq, head_hash, kind, key_version, public_key, signature, created_at) \
         VALUES ({}, {}, {}, 'periodic', 1, {}, {}, '2026-11-23T00:00:00+00:00')",
        t.literal_uuid(acme.as_uuid()),
        cp.seq,
        bytes_literal(&t, &cp.head_hash.0),
        bytes_literal(&t, &cp.public_key),
        bytes_literal(&t, &[7u8; 64]),
    );
    t.raw_execute(&forged).await.unwrap();
    let p = problem(&t.db, &keyring, acme).await;
    assert_eq!(p.seq, Some(cp.seq));
    assert!(matches!(p.kind, BreakKind::BadSignature { checkpoint_id } if checkpoint_id > cp.id), "{p}");
});

db_test!(a_row_slipped_in_outside_the_chain_is_reported, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 2).await;
    bypass_append_only(&t).await;
    let sql = format!(
        "INSERT INTO audit_logs (client_id, actor_kind, action_type, metadata, created_at) \
         VALUES ({}, 'platform', 'agent.forged', '{{}}', '2026-01-01T00:00:00+00:00')",
        t.literal_uuid(acme.as_uuid())
    );
    t.raw_execute(&sql).await.unwrap();
    let p = problem(&t.db, &keyring, acme).await;
    assert_eq!(p.kind, BreakKind::Unchained, "{p}");
});

db_test!(verify_pages_through_long_chains, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    for _ in 0..6 {
        append_n(&t.db, Some(acme), 200).await;
        chain::checkpoint_all(&t.db, &keyring).await.unwrap();
    }
    let started = Instant::now();
    let report = intact(&t.db, &keyring).await;
    let elapsed = started.elapsed();
    eprintln!(
        "{:?}: verified {} events in {elapsed:?} ({:.0} events/s)",
        t.db.backend(),
        report.events(),
        report.events() as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(report.events(), 1200);
    assert_eq!(report.chains[0].checkpoints, 6);
});

fn policy(days: u32) -> RetentionPolicy {
    RetentionPolicy { default_days: days, max_days: 3650, plans: None }
}

db_test!(retention_deletes_old_events_through_its_path_and_verify_still_passes, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 5).await;
    append_n(&t.db, None, 2).await;
    chain::checkpoint_all(&t.db, &keyring).await.unwrap();
    append_n(&t.db, Some(acme), 5).await;
    let events = chain_events(&t, acme).await;
    // Keep acme's events from seq 6 on: the cut is at its time, 90 days later.
    let cut: DateTime<Utc> = events[5].created_at;
    let expired = events.iter().take_while(|e| e.created_at < cut).count();
    assert!((1..=5).contains(&expired));

    let report = retention::run(&t.db, &keyring, &policy(90), cut + Duration::days(90)).await.unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.deleted, expired as u64 + 2, "acme's old events and both platform events");
    assert_eq!(report.checkpoints, 2);
    let left = chain_events(&t, acme).await;
    assert_eq!(left.len(), 10 - expired);
    assert_eq!(left[0].seq, Some(expired as i64 + 1));

    let verified = intact(&t.db, &keyring).await;
    let acme_report = verified.chains.iter().find(|c| c.chain == Chain::Client(acme)).unwrap();
    assert_eq!(acme_report.retained_after, Some(expired as i64));
    // The chain goes on from where retention cut it, and runs again are harmless.
    append_n(&t.db, Some(acme), 2).await;
    append_n(&t.db, None, 1).await;
    let again = retention::run(&t.db, &keyring, &policy(90), cut + Duration::days(90)).await.unwrap();
    assert_eq!((again.deleted, again.checkpoints), (0, 0));
    intact(&t.db, &keyring).await;
    // Everything expires in the end; the chains still verify, from their retention checkpoints.
    let all = retention::run(&t.db, &keyring, &policy(1), Utc::now() + Duration::days(2)).await.unwrap();
    assert_eq!(all.deleted, (10 - expired + 2 + 1) as u64);
    assert!(audit::recent(&t.db, acme, None, 50).await.unwrap().is_empty());
    intact(&t.db, &keyring).await;
    // The pooled connections are the application's again (on PostgreSQL the role switch was LOCAL).
    append_n(&t.db, Some(acme), 6).await;
    let report = intact(&t.db, &keyring).await;
    assert_eq!(report.events(), 6);
});

db_test!(retention_follows_the_client_override_within_the_platform_maximum, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    append_n(&t.db, Some(acme), 3).await;
    append_n(&t.db, Some(globex), 3).await;
    retention::set_client_retention(&t.db, acme, Some(7)).await.unwrap();
    assert!(retention::set_client_retention(&t.db, globex, Some(0)).await.is_err());
    retention::set_client_retention(&t.db, globex, Some(3650)).await.unwrap();
    // 10 days on: acme keeps 7 days, globex asked for 10 years but the platform maximum is 9 days.
    let policy = RetentionPolicy { default_days: 90, max_days: 9, plans: None };
    let report = retention::run(&t.db, &keyring, &policy, Utc::now() + Duration::days(8)).await.unwrap();
    assert_eq!(report.deleted, 3, "acme's events only");
    let report = retention::run(&t.db, &keyring, &policy, Utc::now() + Duration::days(10)).await.unwrap();
    assert_eq!(report.deleted, 3, "globex's, at the platform maximum");
    intact(&t.db, &keyring).await;
});

db_test!(retention_keeps_evidence_of_tampering, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 4).await;
    let victim = chain_events(&t, acme).await[1].id;
    bypass_append_only(&t).await;
    t.raw_execute(&format!("UPDATE audit_logs SET target = 'x' WHERE id = {victim}")).await.unwrap();
    let report = retention::run(&t.db, &keyring, &policy(1), Utc::now() + Duration::days(2)).await.unwrap();
    assert_eq!(report.deleted, 0);
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.refused[0].0, Chain::Client(acme));
    assert_eq!(chain_events(&t, acme).await.len(), 4);
});

db_test!(the_report_reads_as_one_line_per_chain, |t| {
    let keyring = test_keyring(&[1]);
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 3).await;
    chain::checkpoint_all(&t.db, &keyring).await.unwrap();
    let report = chain::verify(&t.db, &keyring, Some(acme)).await.unwrap();
    assert_eq!(
        report.chains[0].to_string(),
        format!("client {acme}: intact - 3 events (seq 1..3), 1 signed checkpoints match")
    );
    let events = chain_events(&t, acme).await;
    bypass_append_only(&t).await;
    t.raw_execute(&format!("DELETE FROM audit_logs WHERE id = {}", events[1].id)).await.unwrap();
    let line = chain::verify(&t.db, &keyring, None).await.unwrap().chains[0].to_string();
    assert_eq!(
        line,
        format!(
            "client {acme}: BROKEN at seq 3 (event id {}): event seq 2 is missing (deleted row): the next event \
             found is seq 3",
            events[2].id
        )
    );
});

db_test!(after_a_key_rotation_checkpoints_are_re_signed_so_the_old_key_can_retire, |t| {
    use deployclaw::keys::keyring::{KeyVersion, MasterKey};
    let (v1, v2) = (MasterKey::generate(), MasterKey::generate());
    let old = Keyring::new([(KeyVersion(1), v1.clone())], "test").unwrap();
    let both = Keyring::new([(KeyVersion(1), v1), (KeyVersion(2), v2.clone())], "test").unwrap();
    let new = Keyring::new([(KeyVersion(2), v2)], "test").unwrap();
    let acme = new_client(&t.db, "acme").await.id;
    append_n(&t.db, Some(acme), 4).await;
    chain::checkpoint_all(&t.db, &old).await.unwrap();
    retention::run(&t.db, &old, &policy(1), Utc::now() + Duration::days(2)).await.unwrap();
    append_n(&t.db, Some(acme), 2).await;
    chain::checkpoint_all(&t.db, &old).await.unwrap();

    // Retiring v1 now would leave the chain's start (its retention checkpoint) unverifiable.
    let p = problem(&t.db, &new, acme).await;
    assert!(matches!(p.kind, BreakKind::Missing { expected_seq: 1, .. }), "{p}");
    // With both keys loaded, the checkpointer re-signs the head and the retention checkpoint with v2.
    assert_eq!(chain::checkpoint_all(&t.db, &both).await.unwrap(), 2);
    assert_eq!(chain::checkpoint_all(&t.db, &both).await.unwrap(), 0);
    let report = chain::verify(&t.db, &new, Some(acme)).await.unwrap();
    assert!(report.is_intact(), "{}", report.chains[0]);
    assert_eq!(report.chains[0].retained_after, Some(4));
    assert_eq!(report.chains[0].checkpoints, 1, "the re-signed head");

    // A retention checkpoint under a version the keyring cannot check is not re-signed (nor trusted).
    let fake = format!(
        "INSERT INTO audit_checkpoints (chain_id, seq, head_hash, kind, key_version, public_key, signature, created_at) \
         VALUES ({}, 5, {}, 'retention', 7, {}, {}, '2026-11-23T00:00:00+00:00')",
        t.literal_uuid(acme.as_uuid()),
        bytes_literal(&t, &[0u8; 32]),
        bytes_literal(&t, &[1u8; 32]),
        bytes_literal(&t, &[2u8; 64]),
    );
    t.raw_execute(&fake).await.unwrap();
    assert_eq!(chain::checkpoint_all(&t.db, &both).await.unwrap(), 0);
    let report = chain::verify(&t.db, &new, Some(acme)).await.unwrap();
    assert!(report.is_intact(), "{}", report.chains[0]);
    assert_eq!(report.chains[0].retained_after, Some(4), "the checkpoint it cannot check changes nothing");
    assert_eq!(report.chains[0].untrusted_checkpoints, 2, "the v1 head checkpoint and the fake");
});
