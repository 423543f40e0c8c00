//! The vault against real databases: sealing, tenant binding, auditing of every decryption, rotation.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use deployclaw::audit::{self, Actor};
use deployclaw::db::agents::{self, AgentName, NewAgent};
use deployclaw::db::users::{self, Role, User};
use deployclaw::db::{credentials, AgentId, ClientId, Db, UserId};
use deployclaw::email::EmailAddress;
use deployclaw::identity::fresh::FreshTwoFactor;
use deployclaw::identity::totp::{self, Enrollment};
use deployclaw::keys::envelope::{self, EnvelopeError};
use deployclaw::keys::keyring::{KeyVersion, Keyring, MasterKey};
use deployclaw::vault::rotation::{self, totp_seeds, RotationCounts, SealedRecord};
use deployclaw::vault::{CredentialName, DecryptPurpose, Vault, VaultError, MAX_SECRET_BYTES};
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

use crate::support::fresh_proof as proof;

async fn put(vault: &Vault, t: &Tenant, n: &str, value: &str) {
    vault.put(t.user, t.client, t.agent, &name(n), secret(value), &proof(t.client), None).await.unwrap();
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
    // Nor do the bytes on disk: on SQLite the write sits in the write-ahead log until a checkpoint, so both
    // files are read (the WAL must hold something, or this check would prove nothing).
    if let Some(path) = t.sqlite_path() {
        let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
        for file in [&path, &wal] {
            let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(!bytes.windows(9).any(|w| w == b"ROUNDTRIP"), "plaintext in {}", file.display());
        }
        assert!(std::fs::metadata(&wal).unwrap().len() > 0, "the write-ahead log was read");
    }

    let value = vault
        .decrypt(Actor::Platform, acme.client, acme.agent, &name("openai_key"), DecryptPurpose::InjectIntoAgent)
        .await
        .unwrap();
    assert_eq!(value.expose_secret(), b"sk-test-ROUNDTRIP-value");

    // A replacement at a later time than the first write (times are stored to the microsecond).
    let created = vault.list(acme.client, acme.agent).await.unwrap()[0].created_at;
    crate::support::eventually("the clock moves on", async || deployclaw::db::now() > created).await;
    put(&vault, &acme, "openai_key", "sk-test-REPLACED-value").await;
    let listed = vault.list(acme.client, acme.agent).await.unwrap();
    assert!(listed[0].updated_at > listed[0].created_at, "replace shows when it was last set");
    vault.delete(acme.user, acme.client, acme.agent, &name("openai_key"), &proof(acme.client), None).await.unwrap();
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
    let empty = vault.put(acme.user, acme.client, acme.agent, &name("k"), secret(""), &proof(acme.client), None).await;
    assert!(matches!(empty, Err(VaultError::Invalid(_))));
    let huge = SecretSlice::from(vec![b'x'; MAX_SECRET_BYTES + 1]);
    let huge = vault.put(acme.user, acme.client, acme.agent, &name("k"), huge, &proof(acme.client), None).await;
    assert!(matches!(huge, Err(VaultError::Invalid(_))));
    assert!(vault.list(acme.client, acme.agent).await.unwrap().is_empty());
});

db_test!(another_tenant_gets_not_found_and_the_attempt_is_audited, |t| {
    let vault = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    let globex = tenant(&t.db, "globex").await;
    put(&vault, &acme, "openai_key", "sk-test-acme").await;
    let n = name("openai_key");
    let write =
        vault.put(globex.user, globex.client, acme.agent, &n, secret("overwrite"), &proof(globex.client), None).await;
    assert!(matches!(write, Err(VaultError::NotFound)));
    let read = vault.decrypt(globex.user, globex.client, acme.agent, &n, DecryptPurpose::InjectIntoAgent).await;
    assert!(matches!(read, Err(VaultError::NotFound)));
    let delete = vault.delete(globex.user, globex.client, acme.agent, &n, &proof(globex.client), None).await;
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
    assert_eq!(reports.len(), 3, "8 records in batches of 3, no TOTP seeds");
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
    let (ada, _) = enrol(&t.db, v1.keyring(), acme.client, "ada@acme.example").await;
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
    assert_eq!((report.progress.totp_seeds.converted, report.progress.totp_seeds.failed), (0, 1));
    assert!(matches!(report.failures[0].0, SealedRecord::Credential(_)));
    assert_eq!(report.failures[1].0, SealedRecord::TotpSeed(ada.id));
    assert!(report.failures.iter().all(|(_, reason)| reason.contains("v1")), "{:?}", report.failures);
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

/// A fixed instant on a 30-second step boundary, and `secs` after it.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

/// What the user's authenticator app shows at `now`, from the base32 secret it was given at enrolment.
fn app_code(enrollment: &Enrollment, now: DateTime<Utc>) -> String {
    let t = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(enrollment.secret_base32.as_str()).unwrap())
        .with_account_name("test")
        .build()
        .unwrap();
    t.generate(now.timestamp() as u64).to_string()
}

/// A new user of `client` with a TOTP seed sealed under `keyring`, enrolment pending.
async fn enrol(db: &Db, keyring: &Keyring, client: ClientId, address: &str) -> (User, Enrollment) {
    let email = EmailAddress::parse(address).unwrap();
    let user = users::create(db, client, &email, Role::Member).await.unwrap();
    let enrollment = totp::begin(db, keyring, client, user.id, &email).await.unwrap();
    (user, enrollment)
}

db_test!(rotation_moves_totp_seeds_forward_and_their_codes_still_verify, |t| {
    let v1 = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    let (ada, ada_app) = enrol(&t.db, v1.keyring(), acme.client, "ada@acme.example").await;
    totp::confirm(&t.db, v1.keyring(), acme.client, ada.id, &app_code(&ada_app, at(0)), at(0)).await.unwrap();
    let (bob, bob_app) = enrol(&t.db, v1.keyring(), acme.client, "bob@acme.example").await; // still pending
    let no_totp = EmailAddress::parse("carol@acme.example").unwrap();
    users::create(&t.db, acme.client, &no_totp, Role::Member).await.unwrap();

    let v12 = Vault::new(t.db.clone(), keys(&[(1, 1), (2, 2)]));
    assert_eq!(totp_seeds::status(&v12).await.unwrap().by_version, [(KeyVersion(1), 2)]);
    let mut reports = Vec::new();
    let report = rotation::rotate(&v12, 1, Duration::ZERO, |p| reports.push(p.clone())).await.unwrap();
    assert_eq!(report.progress.totp_seeds, RotationCounts { converted: 2, skipped: 0, failed: 0, remaining: 0 });
    assert_eq!(reports.iter().map(|p| p.totp_seeds.remaining).collect::<Vec<_>>(), [1, 0], "batches of 1");
    assert_eq!(
        totp_seeds::status(&v12).await.unwrap(),
        totp_seeds::SeedStatus { by_version: vec![(KeyVersion(2), 2)], unreadable: 0 }
    );

    // Key 1 retired: the seeds open with key 2 alone, enrolment state and replay guard are intact.
    let k2 = keys(&[(2, 2)]);
    let replayed = totp::verify(&t.db, &k2, acme.client, ada.id, &app_code(&ada_app, at(0)), at(0)).await;
    assert!(replayed.is_err(), "the step used before rotation stays used");
    totp::verify(&t.db, &k2, acme.client, ada.id, &app_code(&ada_app, at(30)), at(30)).await.unwrap();
    totp::confirm(&t.db, &k2, acme.client, bob.id, &app_code(&bob_app, at(30)), at(30)).await.unwrap();

    // Twice is harmless.
    let again = rotation::rotate(&Vault::new(t.db.clone(), k2.clone()), 1, Duration::ZERO, |_| {}).await.unwrap();
    assert_eq!(again.progress, rotation::RotationProgress::default());
    totp::verify(&t.db, &k2, acme.client, ada.id, &app_code(&ada_app, at(60)), at(60)).await.unwrap();

    // The run is audited with the seed count, and never with seed material.
    let events = audit::recent(&t.db, acme.client, None, 50).await.unwrap();
    let rotated: Vec<_> = events.iter().filter(|e| e.action_type == "vault.rotated").collect();
    assert_eq!(rotated.len(), 1, "the second run converted nothing for acme");
    assert_eq!(rotated[0].metadata.0, json!({"target_version": 2, "credentials": 0, "totp_seeds": 2}));
});

db_test!(rotation_never_overwrites_a_totp_seed_re_enrolled_meanwhile, |t| {
    let v1 = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    let (ada, _) = enrol(&t.db, v1.keyring(), acme.client, "ada@acme.example").await;
    let stale = totp_seeds::batch(&t.db, KeyVersion(2), None, 10).await.unwrap();
    assert_eq!(stale.len(), 1, "rotation read the first seed");
    // Ada restarts enrolment (a new seed) after rotation read the old one, before it writes.
    let ada_app =
        totp::begin(&t.db, v1.keyring(), acme.client, ada.id, &EmailAddress::parse("ada@acme.example").unwrap())
            .await
            .unwrap();
    let k12 = keys(&[(1, 1), (2, 2)]);
    let resealed_old = envelope::seal_user_secret(&k12, acme.client, ada.id, "totp", b"the-old-seed").unwrap();
    let swapped =
        totp_seeds::replace(&t.db, acme.client, ada.id, &stale[0].sealed, &resealed_old.to_bytes()).await.unwrap();
    assert!(!swapped);

    // The new seed is what is stored, and a full run then moves it forward intact.
    let report = rotation::rotate(&Vault::new(t.db.clone(), k12), 10, Duration::ZERO, |_| {}).await.unwrap();
    assert_eq!(report.progress.totp_seeds.converted, 1);
    let k2 = keys(&[(2, 2)]);
    totp::confirm(&t.db, &k2, acme.client, ada.id, &app_code(&ada_app, at(0)), at(0)).await.unwrap();
});

db_test!(writes_need_a_fresh_second_factor_of_the_same_account, |t| {
    use deployclaw::identity::session::{SessionAuth, Stage};
    let vault = Vault::new(t.db.clone(), keys(&[(1, 1)]));
    let acme = tenant(&t.db, "acme").await;
    let globex = tenant(&t.db, "globex").await;
    // Globex's proof does not write Acme's credentials, even naming Acme's client.
    let wrong =
        vault.put(acme.user, acme.client, acme.agent, &name("k"), secret("v"), &proof(globex.client), None).await;
    assert!(matches!(wrong, Err(VaultError::Invalid(_))), "{wrong:?}");
    let delete = vault.delete(acme.user, acme.client, acme.agent, &name("k"), &proof(globex.client), None).await;
    assert!(matches!(delete, Err(VaultError::Invalid(_))), "{delete:?}");
    // No proof from a session whose second factor is 16 minutes old, or that never passed one.
    let ctx = deployclaw::context::RequestContext { ip: "203.0.113.1".parse().unwrap(), user_agent: None };
    let now = deployclaw::db::now();
    let user_id = UserId::new();
    let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: acme.client, user_id }, &ctx, now);
    assert!(FreshTwoFactor::from_session(&auth, now).is_none(), "half signed in");
    auth.second_factor_passed(acme.client, user_id, now - chrono::Duration::minutes(16));
    assert!(FreshTwoFactor::from_session(&auth, now).is_none(), "stale");
    assert!(FreshTwoFactor::from_session(&auth, now - chrono::Duration::minutes(2)).is_some());
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM agent_credentials").await, 0);
});
