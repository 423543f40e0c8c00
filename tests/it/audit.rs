use deployclaw::audit::{self, ActionType, Actor, NewEvent};
use deployclaw::db::{DbError, UserId};
use serde_json::json;

use crate::support::{db_test, new_client};

fn action(s: &str) -> ActionType {
    ActionType::parse(s).unwrap()
}

db_test!(append_assigns_increasing_ids_and_reads_back_per_tenant, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    let user = UserId::new();
    let first = audit::append(
        &t.db,
        NewEvent::new(Some(acme), Actor::User(user), action("auth.signed_in")).ip("203.0.113.9".parse().unwrap()),
    )
    .await
    .unwrap();
    let second = audit::append(
        &t.db,
        NewEvent::new(Some(acme), Actor::Platform, action("agent.deployed")).target("support-bot"),
    )
    .await
    .unwrap();
    audit::append(&t.db, NewEvent::new(Some(globex), Actor::Platform, action("agent.deployed"))).await.unwrap();
    audit::append(&t.db, NewEvent::new(None, Actor::Platform, action("auth.code_requested"))).await.unwrap();
    assert!(second > first);

    let events = audit::recent(&t.db, acme, None, 50).await.unwrap();
    assert_eq!(events.len(), 2, "only acme's events");
    assert_eq!(events[0].id, second, "newest first");
    assert_eq!(events[1].actor_kind, "user");
    assert_eq!(events[1].actor_id, Some(user.as_uuid()));
    assert_eq!(events[1].ip_address.as_deref(), Some("203.0.113.9"));
    assert_eq!(events[0].target.as_deref(), Some("support-bot"));
    let older = audit::recent(&t.db, acme, Some(second), 50).await.unwrap();
    assert_eq!(older.iter().map(|e| e.id).collect::<Vec<_>>(), [first]);
});

db_test!(secrets_in_metadata_and_target_are_scrubbed_before_storage, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let key = format!("sk-proj-{}", "NotARealKey0123456789");
    audit::append(
        &t.db,
        NewEvent::new(Some(acme), Actor::Platform, action("credential.decrypted"))
            .target(format!("https://api.example/v1?token={}", "abcdef123456"))
            .metadata(
                json!({"credential": "openai_key", "api_key": key, "note": format!("used {key}"), "code": "123456"}),
            ),
    )
    .await
    .unwrap();
    let e = &audit::recent(&t.db, acme, None, 1).await.unwrap()[0];
    let stored = format!("{} {}", e.metadata.0, e.target.clone().unwrap_or_default());
    for secret in ["NotARealKey0123456789", "abcdef123456", "123456\""] {
        assert!(!stored.contains(secret), "{secret} stored: {stored}");
    }
    assert_eq!(e.metadata.0["credential"], "openai_key");
});

db_test!(bad_events_are_refused_and_nothing_is_stored, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let not_object =
        audit::append(&t.db, NewEvent::new(Some(acme), Actor::Platform, action("x.y")).metadata(json!([1, 2]))).await;
    assert!(matches!(not_object, Err(DbError::Invalid(_))));
    let huge = audit::append(
        &t.db,
        NewEvent::new(Some(acme), Actor::Platform, action("x.y")).metadata(json!({"blob": "a".repeat(10_000)})),
    )
    .await;
    assert!(matches!(huge, Err(DbError::Invalid(_))));
    let unknown_client =
        audit::append(&t.db, NewEvent::new(Some(deployclaw::db::ClientId::new()), Actor::Platform, action("x.y")))
            .await;
    assert!(matches!(unknown_client, Err(DbError::Conflict(_))), "{unknown_client:?}");
    assert!(audit::recent(&t.db, acme, None, 10).await.unwrap().is_empty());
});

db_test!(the_database_itself_refuses_to_update_or_delete_audit_rows, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    audit::append(&t.db, NewEvent::new(Some(acme), Actor::Platform, action("agent.deployed"))).await.unwrap();
    // On PostgreSQL the application role holds no UPDATE/DELETE privilege; on SQLite the triggers refuse.
    let refused = |e: sqlx::Error| {
        let e = e.to_string();
        e.contains("append-only") || e.contains("permission denied for table audit_logs")
    };
    let update = t.raw_execute("UPDATE audit_logs SET action_type = 'agent.nothing_happened'").await;
    assert!(refused(update.unwrap_err()));
    let delete = t.raw_execute("DELETE FROM audit_logs").await;
    assert!(refused(delete.unwrap_err()));
    let events = audit::recent(&t.db, acme, None, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action_type, "agent.deployed");
});
