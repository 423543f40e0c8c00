//! The vault against real databases: sealing, tenant binding, auditing of every decryption, rotation.

use std::time::Duration;

use deployclaw::audit::{self, Actor};
use deployclaw::db::agents::{self, AgentName, NewAgent};
use deployclaw::db::{credentials, AgentId, ClientId, Db, UserId};
use deployclaw::vault::envelope::EnvelopeError;
use deployclaw::vault::keyring::{KeyVersion, Keyring, MasterKey};
use deployclaw::vault::rotation;
use deployclaw::vault::{CredentialName, DecryptPurpose, FreshTwoFactor, Vault, VaultError, MAX_SECRET_BYTES};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::json;

use crate::support::{db_test, new_client};

struct Tenant {
    client: ClientId,
    agent: AgentId,
    user: Actor,
}

async fn tenant(db: &Db, name: &str) -> Tenant {
    let client = new_client(db, name).await.id;
    let agent = agents::create(
        db,
        client,
        NewAgent {
            name: AgentName::parse("bot").unwrap(),
            template: "openclaw".into(),
            config: json!({}),
            permissions: json!({}),
        },
    )
    .await
    .unwrap()
    .id;
    Tenant { client, agent, user: Actor::User(UserId::new()) }
}

fn keys(pairs: &[(u32, u8)]) -> Keyring {
    Keyring::new(pairs.iter().map(|(v, b)| (KeyVersion(*v), MasterKey::from_bytes([*b; 32]))), "test").unwrap()
}

fn name(s: &str) -> CredentialName {
    CredentialName::parse(s).unwrap()
}

fn secret(s: &str) -> SecretSlice<u8> {
    SecretSlice::from(s.as_bytes().to_vec())
}

fn proof() -> FreshTwoFactor {
    FreshTwoFactor::not_enforced_until_identity_lands()
}

async fn put(vault: &Vault, t: &Tenant, n: &str, value: &str) {
    vault.put(t.user, t.client, t.agent, &name(n), secret(value), &proof(), None).await.unwrap();
}

async fn actions(db: &Db, client: ClientId) -> Vec<String> {
    let mut a: Vec<String> =
        audit::recent(db, client, None, 500).await.unwrap().into_iter().map(|e| e.action_type).collect();
    a.reverse();
    a
}

db_test!(credentials_round_trip_and_every_step_is_audited, |t| {
    let vault = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    put(&vault, &acme, "openai_key", "sk-test-ROUNDTRIP-value").await;
    let listed = vault.list(acme.client, acme.agent).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!format!("{listed:?}").contains("ROUNDTRIP"), "lists never carry values");
    // The database holds no plaintext either.
    let row = credentials::get(&t.db, acme.client, acme.agent, "openai_key").await.unwrap();
    assert!(!row.ciphertext.windows(9).any(|w| w == b"ROUNDTRIP"));

    let value = vault
        .decrypt(Actor::Platform, acme.client, acme.agent, &name("openai_key"), DecryptPurpose::InjectIntoAgent)
        .await
        .unwrap();
    assert_eq!(value.expose_secret(), b"sk-test-ROUNDTRIP-value");

    tokio::time::sleep(Duration::from_millis(5)).await;
    put(&vault, &acme, "openai_key", "sk-test-REPLACED-value").await;
    let listed = vault.list(acme.client, acme.agent).await.unwrap();
    assert!(listed[0].updated_at > listed[0].created_at, "replace shows when it was last set");
    vault.delete(acme.user, acme.client, acme.agent, &name("openai_key"), &proof(), None).await.unwrap();
    assert!(vault.list(acme.client, acme.agent).await.unwrap().is_empty());

    assert_eq!(
        actions(&t.db, acme.client).await,
        ["credential.added", "credential.decrypted", "credential.replaced", "credential.deleted"]
    );
    let events = audit::recent(&t.db, acme.client, None, 10).await.unwrap();
    let decrypted = events.iter().find(|e| e.action_type == "credential.decrypted").unwrap();
    assert_eq!(decrypted.metadata.0["purpose"], "inject_into_agent");
    assert_eq!(decrypted.metadata.0["name"], "openai_key");
    assert!(!events.iter().any(|e| e.metadata.0.to_string().contains("value")), "no values in the audit trail");
});

db_test!(bad_input_is_refused_and_nothing_is_stored, |t| {
    let vault = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    for bad in ["", "Upper", "1starts_with_digit", "has space", "slash/name", &"a".repeat(65)] {
        assert!(matches!(CredentialName::parse(bad), Err(VaultError::Invalid(_))), "{bad:?} accepted");
    }
    let empty = vault.put(acme.user, acme.client, acme.agent, &name("k"), secret(""), &proof(), None).await;
    assert!(matches!(empty, Err(VaultError::Invalid(_))));
    let huge = SecretSlice::from(vec![b'x'; MAX_SECRET_BYTES + 1]);
    let huge = vault.put(acme.user, acme.client, acme.agent, &name("k"), huge, &proof(), None).await;
    assert!(matches!(huge, Err(VaultError::Invalid(_))));
    assert!(vault.list(acme.client, acme.agent).await.unwrap().is_empty());
});

db_test!(another_tenant_gets_not_found_and_the_attempt_is_audited, |t| {
    let vault = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    let globex = tenant(&t.db, "globex").await;
    put(&vault, &acme, "openai_key", "sk-test-acme").await;
    let n = name("openai_key");
    let write = vault.put(globex.user, globex.client, acme.agent, &n, secret("overwrite"), &proof(), None).await;
    assert!(matches!(write, Err(VaultError::NotFound)));
    let read = vault.decrypt(globex.user, globex.client, acme.agent, &n, DecryptPurpose::InjectIntoAgent).await;
    assert!(matches!(read, Err(VaultError::NotFound)));
    let delete = vault.delete(globex.user, globex.client, acme.agent, &n, &proof(), None).await;
    assert!(matches!(delete, Err(VaultError::NotFound)));
    assert!(matches!(vault.list(globex.client, acme.agent).await, Err(VaultError::NotFound)));

    assert_eq!(actions(&t.db, globex.client).await, ["credential.not_found"; 3], "recorded in the caller's own trail");
    assert_eq!(actions(&t.db, acme.client).await, ["credential.added"], "nothing happened to acme");
    let value = vault.decrypt(acme.user, acme.client, acme.agent, &n, DecryptPurpose::InjectIntoAgent).await.unwrap();
    assert_eq!(value.expose_secret(), b"sk-test-acme");
});

db_test!(a_ciphertext_swapped_between_rows_clients_or_names_fails_to_decrypt, |t| {
    let vault = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    let globex = tenant(&t.db, "globex").await;
    put(&vault, &acme, "openai_key", "sk-test-acme-openai").await;
    put(&vault, &acme, "anthropic_key", "sk-test-acme-anthropic").await;
    put(&vault, &globex, "openai_key", "sk-test-globex-openai").await;

    // An attacker with write access to the database copies envelopes between records.
    let copy = |from: &str, to_client: ClientId, to_name: &str| {
        format!(
            "UPDATE agent_credentials SET nonce = (SELECT nonce FROM agent_credentials WHERE id = {from}), \
             ciphertext = (SELECT ciphertext FROM agent_credentials WHERE id = {from}) \
             WHERE client_id = {c} AND name = '{to_name}'",
            c = t.literal_uuid(to_client.as_uuid())
        )
    };
    let acme_openai = credentials::get(&t.db, acme.client, acme.agent, "openai_key").await.unwrap().id;
    let from = t.literal_uuid(acme_openai.as_uuid());
    t.raw_execute(&copy(&from, acme.client, "anthropic_key")).await.unwrap(); // another name, same agent
    t.raw_execute(&copy(&from, globex.client, "openai_key")).await.unwrap(); // another client, same name

    for (tenant, n) in [(&acme, "anthropic_key"), (&globex, "openai_key")] {
        let err = vault
            .decrypt(tenant.user, tenant.client, tenant.agent, &name(n), DecryptPurpose::InjectIntoAgent)
            .await
            .unwrap_err();
        assert!(matches!(err, VaultError::Envelope(EnvelopeError::Unauthentic)), "{err:?}");
        assert!(actions(&t.db, tenant.client).await.contains(&"credential.decrypt_failed".to_string()));
    }
    // The original still opens.
    let ok =
        vault.decrypt(acme.user, acme.client, acme.agent, &name("openai_key"), DecryptPurpose::InjectIntoAgent).await;
    assert_eq!(ok.unwrap().expose_secret(), b"sk-test-acme-openai");
});

db_test!(rotation_moves_every_record_forward_and_old_keys_can_then_be_retired, |t| {
    let v1 = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    let globex = tenant(&t.db, "globex").await;
    for i in 0..7 {
        put(&v1, &acme, &format!("key{i}"), &format!("acme-secret-{i}")).await;
    }
    put(&v1, &globex, "only", "globex-secret").await;

    let v12 = Vault::new(t.db.clone(), keys(&[(1, 1), (2, 2)]));
    put(&v12, &acme, "fresh", "written-after-key-2").await; // new writes use the newest key
    assert_eq!(rotation::status(&v12).await.unwrap(), [(KeyVersion(1), 8), (KeyVersion(2), 1)]);

    let mut reports = Vec::new();
    let report = rotation::rotate(&v12, 3, Duration::ZERO, |p| reports.push(p.clone())).await.unwrap();
    assert_eq!(report.target, KeyVersion(2));
    assert_eq!((report.progress.converted, report.progress.failed), (8, 0));
    assert_eq!(reports.len(), 3, "8 records in batches of 3");
    assert_eq!(reports.iter().map(|p| p.remaining).collect::<Vec<_>>(), [5, 2, 0]);
    assert_eq!(rotation::status(&v12).await.unwrap(), [(KeyVersion(2), 9)]);

    // Key 1 retired: everything still opens.
    let v2 = Vault::new(t.db.clone(), keys(&[(2, 2)]));
    for i in 0..7 {
        let value = v2
            .decrypt(
                Actor::Platform,
                acme.client,
                acme.agent,
                &name(&format!("key{i}")),
                DecryptPurpose::InjectIntoAgent,
            )
            .await
            .unwrap();
        assert_eq!(value.expose_secret(), format!("acme-secret-{i}").as_bytes());
    }
    // Twice is harmless.
    let again = rotation::rotate(&v2, 3, Duration::ZERO, |_| {}).await.unwrap();
    assert_eq!(again.progress.converted, 0);
    assert!(actions(&t.db, acme.client).await.contains(&"vault.rotated".to_string()));
    assert!(actions(&t.db, globex.client).await.contains(&"vault.rotated".to_string()));
});

db_test!(retired_keys_fail_clearly_and_rotation_reports_what_it_cannot_open, |t| {
    let v1 = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    put(&v1, &acme, "old", "sealed-under-1").await;
    // Key 1 retired before rotating: a clear error, and rotation reports the record instead of looping.
    let v23 = Vault::new(t.db.clone(), keys(&[(2, 2), (3, 3)]));
    let err = v23
        .decrypt(acme.user, acme.client, acme.agent, &name("old"), DecryptPurpose::InjectIntoAgent)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Envelope(EnvelopeError::UnknownKeyVersion(KeyVersion(1)))), "{err:?}");
    assert!(err.to_string().contains("not in the keyring"));
    let report = rotation::rotate(&v23, 10, Duration::ZERO, |_| {}).await.unwrap();
    assert_eq!((report.progress.converted, report.progress.failed), (0, 1));
    assert!(report.failures[0].1.contains("v1"));
});

db_test!(rotation_never_overwrites_a_credential_changed_meanwhile, |t| {
    let v1 = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    put(&v1, &acme, "k", "first").await;
    let stale = credentials::get(&t.db, acme.client, acme.agent, "k").await.unwrap();
    put(&v1, &acme, "k", "second").await; // the owner replaces it after rotation read it
    let fresh = credentials::get(&t.db, acme.client, acme.agent, "k").await.unwrap();
    let swapped = credentials::replace_envelope(
        &t.db,
        acme.client,
        stale.id,
        (stale.key_version, &stale.nonce),
        credentials::Envelope { key_version: 2, nonce: &[0; 12], ciphertext: &[0; 32] },
    )
    .await
    .unwrap();
    assert!(!swapped);
    assert_eq!(credentials::get(&t.db, acme.client, acme.agent, "k").await.unwrap(), fresh);
});
