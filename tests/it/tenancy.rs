//! Tenant isolation in the repositories: every read and write is scoped by the caller's client id, and
//! another tenant's data is indistinguishable from missing data.

use deployclaw::db::agents::{self, AgentName, AgentStatus, NewAgent};
use deployclaw::db::clients::{self, Client, ClientName, ClientStatus, NewClient};
use deployclaw::db::credentials::{self, Envelope};
use deployclaw::db::users::{self, Role};
use deployclaw::db::{AgentId, Db, DbError};
use deployclaw::email::EmailAddress;
use serde_json::json;

use crate::support::{db_test, new_client};

async fn agent(db: &Db, client: &Client, name: &str) -> agents::Agent {
    agents::create(
        db,
        client.id,
        NewAgent {
            name: AgentName::parse(name).unwrap(),
            template: "openclaw".into(),
            config: json!({"model": "gpt-4o-mini"}),
            permissions: json!({"scopes": ["api:outbound"], "allowedDomains": ["api.openai.com"]}),
        },
    )
    .await
    .unwrap()
}

fn envelope(byte: u8) -> ([u8; 12], Vec<u8>) {
    ([byte; 12], vec![byte; 48])
}

db_test!(clients_round_trip_and_duplicates_conflict, |t| {
    let acme = new_client(&t.db, "Acme").await;
    let again = clients::get(&t.db, acme.id).await.unwrap();
    assert_eq!(again, acme);
    assert_eq!(acme.status, ClientStatus::Active);
    assert_eq!(acme.plan, "trial");
    let dup =
        clients::create(&t.db, NewClient { name: ClientName::parse("Other").unwrap(), email: acme.email.clone() })
            .await;
    assert!(matches!(dup, Err(DbError::Conflict(_))), "{dup:?}");
    assert!(matches!(clients::get(&t.db, deployclaw::db::ClientId::new()).await, Err(DbError::NotFound)));
});

db_test!(a_constraint_refusal_never_names_the_schema, |t| {
    // What a user may be shown says what happened, not how our tables are built (the constraint is logged).
    let acme = new_client(&t.db, "Acme").await;
    let dup =
        clients::create(&t.db, NewClient { name: ClientName::parse("Other").unwrap(), email: acme.email.clone() })
            .await
            .unwrap_err();
    let DbError::Conflict(message) = &dup else { panic!("{dup:?}") };
    assert_eq!(message, deployclaw::db::error::ALREADY_EXISTS);
    let shown = dup.to_string().to_lowercase();
    for schema in ["constraint", "unique", "clients", "email", "key", "sqlite", "postgres"] {
        assert!(!shown.contains(schema), "{schema:?} in {shown:?}");
    }
});

db_test!(users_are_scoped_to_their_client, |t| {
    let acme = new_client(&t.db, "Acme").await;
    let globex = new_client(&t.db, "Globex").await;
    let email = EmailAddress::parse("Owner@Acme.example").unwrap();
    let owner = users::create(&t.db, acme.id, &email, Role::Owner).await.unwrap();
    assert_eq!(owner.role, Role::Owner);
    assert!(!owner.totp_enabled);
    assert_eq!(users::get(&t.db, acme.id, owner.id).await.unwrap(), owner);
    assert!(matches!(users::get(&t.db, globex.id, owner.id).await, Err(DbError::NotFound)));
    assert_eq!(users::list(&t.db, acme.id).await.unwrap().len(), 1);
    assert!(users::list(&t.db, globex.id).await.unwrap().is_empty());
    // One address, one account, across all clients.
    let dup = users::create(&t.db, globex.id, &email, Role::Member).await;
    assert!(matches!(dup, Err(DbError::Conflict(_))), "{dup:?}");
    let found = users::find_for_sign_in(&t.db, &EmailAddress::parse("owner@acme.example").unwrap()).await.unwrap();
    assert_eq!(found.map(|u| u.id), Some(owner.id));
    let nobody = users::find_for_sign_in(&t.db, &EmailAddress::parse("nobody@acme.example").unwrap()).await.unwrap();
    assert!(nobody.is_none());
});

db_test!(agents_are_scoped_and_cross_tenant_writes_change_nothing, |t| {
    let acme = new_client(&t.db, "Acme").await;
    let globex = new_client(&t.db, "Globex").await;
    let a = agent(&t.db, &acme, "support-bot").await;
    assert_eq!(a.status, AgentStatus::Provisioning);
    assert_eq!(a.config.0["model"], "gpt-4o-mini");
    // Same name in another tenant is fine; twice in one tenant is a conflict.
    agent(&t.db, &globex, "support-bot").await;
    let dup = agents::create(
        &t.db,
        acme.id,
        NewAgent {
            name: AgentName::parse("support-bot").unwrap(),
            template: "openclaw".into(),
            config: json!({}),
            permissions: json!({}),
        },
    )
    .await;
    assert!(matches!(dup, Err(DbError::Conflict(_))), "{dup:?}");

    assert!(matches!(agents::get(&t.db, globex.id, a.id).await, Err(DbError::NotFound)));
    assert!(matches!(agents::set_status(&t.db, globex.id, a.id, AgentStatus::Stopped).await, Err(DbError::NotFound)));
    assert!(matches!(agents::delete(&t.db, globex.id, a.id).await, Err(DbError::NotFound)));
    assert_eq!(agents::get(&t.db, acme.id, a.id).await.unwrap().status, AgentStatus::Provisioning, "unchanged");
    assert_eq!(agents::list(&t.db, acme.id).await.unwrap().len(), 1);

    let running = agents::set_status(&t.db, acme.id, a.id, AgentStatus::Running).await.unwrap();
    assert_eq!(running.status, AgentStatus::Running);
    assert!(running.updated_at >= a.updated_at);
    agents::delete(&t.db, acme.id, a.id).await.unwrap();
    assert!(matches!(agents::get(&t.db, acme.id, a.id).await, Err(DbError::NotFound)));
});

db_test!(credentials_are_bound_to_their_tenant_and_list_names_only, |t| {
    let acme = new_client(&t.db, "Acme").await;
    let globex = new_client(&t.db, "Globex").await;
    let a = agent(&t.db, &acme, "mailer").await;
    let (nonce, ct) = envelope(7);
    let sealed = credentials::put(
        &t.db,
        acme.id,
        a.id,
        "openai_key",
        Envelope { key_version: 1, nonce: &nonce, ciphertext: &ct },
    )
    .await
    .unwrap();
    assert_eq!(sealed.client_id, acme.id);
    assert!(!format!("{sealed:?}").contains("7, 7, 7"), "Debug must not print the envelope bytes");

    // Another tenant cannot write to, read, list or delete this agent's credentials.
    let foreign = credentials::put(
        &t.db,
        globex.id,
        a.id,
        "openai_key",
        Envelope { key_version: 1, nonce: &nonce, ciphertext: &ct },
    )
    .await;
    assert!(matches!(foreign, Err(DbError::NotFound)), "{foreign:?}");
    assert!(matches!(credentials::get(&t.db, globex.id, a.id, "openai_key").await, Err(DbError::NotFound)));
    assert!(matches!(credentials::list(&t.db, globex.id, a.id).await, Err(DbError::NotFound)));
    assert!(matches!(credentials::delete(&t.db, globex.id, a.id, "openai_key").await, Err(DbError::NotFound)));
    assert!(matches!(credentials::list(&t.db, acme.id, AgentId::new()).await, Err(DbError::NotFound)));

    // Replacing keeps the row and its creation time, and swaps the envelope.
    let (nonce2, ct2) = envelope(9);
    let replaced = credentials::put(
        &t.db,
        acme.id,
        a.id,
        "openai_key",
        Envelope { key_version: 2, nonce: &nonce2, ciphertext: &ct2 },
    )
    .await
    .unwrap();
    assert_eq!(replaced.id, sealed.id);
    assert_eq!(replaced.created_at, sealed.created_at);
    assert_eq!((replaced.key_version, replaced.ciphertext.clone()), (2, ct2.clone()));
    let fetched = credentials::get(&t.db, acme.id, a.id, "openai_key").await.unwrap();
    assert_eq!(fetched.nonce, nonce2.to_vec());

    let names = credentials::list(&t.db, acme.id, a.id).await.unwrap();
    assert_eq!(names.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["openai_key"]);

    // Malformed envelopes are refused by the schema itself.
    let bad =
        credentials::put(&t.db, acme.id, a.id, "short", Envelope { key_version: 1, nonce: &[1; 5], ciphertext: &ct })
            .await;
    assert!(matches!(bad, Err(DbError::Invalid(_))), "{bad:?}");

    // Deleting the agent removes its credentials.
    agents::delete(&t.db, acme.id, a.id).await.unwrap();
    let b = agent(&t.db, &acme, "mailer").await;
    assert!(credentials::list(&t.db, acme.id, b.id).await.unwrap().is_empty());
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM agent_credentials").await, 0);
});
