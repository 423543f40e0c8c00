//! Sessions, the second factor, devices and the team, on both databases.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use deployclaw::audit;
use deployclaw::context::RequestContext;
use deployclaw::db::users::{self, Role};
use deployclaw::db::DbError;
use deployclaw::email::EmailAddress;
use deployclaw::identity::devices::DeviceSeen;
use deployclaw::identity::session::store::{DbSessionStore, SessionHandle};
use deployclaw::identity::session::{SessionAuth, Stage, SESSION_KEY};
use deployclaw::identity::team::{self, Team, TeamError};
use deployclaw::identity::two_factor::{TwoFactor, TwoFactorError};
use deployclaw::mail::{MailTransport, Mailer};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::SessionStore;

use crate::support::{db_test, new_client, test_keyring};

fn ctx(ip: &str, ua: &str) -> RequestContext {
    RequestContext { ip: ip.parse::<IpAddr>().unwrap(), user_agent: Some(ua.into()) }
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn record(auth: &SessionAuth, expires_in_secs: i64) -> Record {
    let mut data = HashMap::new();
    data.insert(SESSION_KEY.to_string(), serde_json::to_value(auth).unwrap());
    Record {
        id: Id::default(),
        data,
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::seconds(expires_in_secs),
    }
}

fn signed_in(client_id: deployclaw::db::ClientId, user_id: deployclaw::db::UserId, ua: &str) -> SessionAuth {
    let now = deployclaw::db::now();
    let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id, user_id }, &ctx("203.0.113.5", ua), now);
    auth.second_factor_passed(client_id, user_id, now);
    auth
}

db_test!(the_store_keeps_only_a_hash_and_never_resurrects_a_revoked_session, |t| {
    let store = DbSessionStore::new(t.db.clone());
    let acme = new_client(&t.db, "acme").await;
    let ada = users::create(&t.db, acme.id, &email("ada@acme.example"), Role::Owner).await.unwrap();
    let mut rec = record(&signed_in(acme.id, ada.id, "Firefox"), 1800);
    store.create(&mut rec).await.unwrap();

    // The cookie value appears nowhere in the table.
    let cookie = rec.id.to_string();
    let leaked = t.raw_count(&format!("SELECT COUNT(*) FROM sessions WHERE data LIKE '%{cookie}%'")).await;
    assert_eq!(leaked, 0);
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM sessions").await, 1);

    let loaded = store.load(&rec.id).await.unwrap().expect("session loads");
    assert_eq!(loaded.data, rec.data);
    assert!(store.load(&Id::default()).await.unwrap().is_none(), "an unknown id loads nothing");

    // Listed for its user with device details, marked current for the asking session.
    let listed = store.list_for_user(acme.id, ada.id, Some(&rec.id)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current);
    assert_eq!(listed[0].user_agent.as_deref(), Some("Firefox"));
    assert_eq!(listed[0].ip.as_deref(), Some("203.0.113.5"));

    // Revoked while a request was in flight: that request's save does not bring it back.
    let handle = listed[0].handle;
    store.revoke(acme.id, ada.id, handle).await.unwrap();
    store.save(&rec).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none(), "revoked stays revoked");
    assert!(matches!(store.revoke(acme.id, ada.id, handle).await, Err(DbError::NotFound)));
});

db_test!(sessions_are_per_user_and_expire, |t| {
    let store = DbSessionStore::new(t.db.clone());
    let acme = new_client(&t.db, "acme").await;
    let globex = new_client(&t.db, "globex").await;
    let ada = users::create(&t.db, acme.id, &email("ada@acme.example"), Role::Owner).await.unwrap();
    let bob = users::create(&t.db, globex.id, &email("bob@globex.example"), Role::Owner).await.unwrap();
    let mut a1 = record(&signed_in(acme.id, ada.id, "Firefox"), 1800);
    let mut a2 = record(&signed_in(acme.id, ada.id, "Safari"), 1800);
    let mut b1 = record(&signed_in(globex.id, bob.id, "Edge"), 1800);
    let mut gone = record(&signed_in(acme.id, ada.id, "Old"), -5);
    for r in [&mut a1, &mut a2, &mut b1, &mut gone] {
        store.create(r).await.unwrap();
    }
    assert!(store.load(&gone.id).await.unwrap().is_none(), "an expired session does not load");
    let ada_sessions = store.list_for_user(acme.id, ada.id, None).await.unwrap();
    assert_eq!(ada_sessions.len(), 2, "expired and other users' sessions are not listed");
    assert!(ada_sessions.iter().all(|s| !s.current));

    // Another client's owner cannot revoke Ada's session, even knowing its handle.
    let handle: SessionHandle = ada_sessions[0].handle;
    assert!(matches!(store.revoke(globex.id, bob.id, handle).await, Err(DbError::NotFound)));
    assert!(matches!(store.revoke(acme.id, bob.id, handle).await, Err(DbError::NotFound)));

    // Sign out everywhere ends all of Ada's sessions and none of Bob's.
    assert_eq!(store.revoke_all(acme.id, ada.id).await.unwrap(), 3);
    assert!(store.load(&a1.id).await.unwrap().is_none());
    assert!(store.load(&a2.id).await.unwrap().is_none());
    assert!(store.load(&b1.id).await.unwrap().is_some());
    assert_eq!(store.prune().await.unwrap(), 0);
});

struct Harness {
    two_factor: TwoFactor,
    team: Team,
    outbox: tempfile::TempDir,
}

fn harness(db: &deployclaw::db::Db) -> Harness {
    let outbox = tempfile::tempdir().unwrap();
    let mailer =
        Mailer::new("DeployClaw <no-reply@localhost>", &MailTransport::Outbox { dir: outbox.path().into() }).unwrap();
    Harness {
        two_factor: TwoFactor::new(
            db.clone(),
            test_keyring(&[1]),
            mailer.clone(),
            deployclaw::identity::argon::ArgonPool::new(1),
        ),
        team: Team::new(db.clone(), mailer, &"https://deployclaw.example".parse().unwrap()),
        outbox,
    }
}

impl Harness {
    fn mails_to(&self, to: &str) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.outbox.path()).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files.iter().map(|f| std::fs::read_to_string(f).unwrap()).filter(|m| m.contains(&format!("To: {to}"))).collect()
    }
}

fn app_code(secret_base32: &str, now: DateTime<Utc>) -> String {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret_base32).unwrap())
        .with_account_name("test")
        .build()
        .unwrap()
        .generate(now.timestamp() as u64)
        .to_string()
}

async fn actions(t: &crate::support::TestDb, client: deployclaw::db::ClientId) -> Vec<String> {
    let mut events = audit::recent(&t.db, client, None, 500).await.unwrap();
    events.reverse();
    events.into_iter().map(|e| e.action_type).collect()
}

db_test!(enrolment_recovery_and_the_shared_lockout, |t| {
    let h = harness(&t.db);
    let acme = new_client(&t.db, "acme").await;
    let ada = users::create(&t.db, acme.id, &email("ada@acme.example"), Role::Owner).await.unwrap();
    let here = ctx("203.0.113.5", "Firefox");
    let now = deployclaw::db::now();

    let enrollment = h.two_factor.begin_enrollment(&ada).await.unwrap();
    let codes =
        h.two_factor.confirm_enrollment(&ada, &app_code(&enrollment.secret_base32, now), &here, now).await.unwrap();
    assert_eq!(codes.len(), 10);

    // A recovery code signs in once, resets the authenticator and warns by email.
    let remaining = h.two_factor.redeem_recovery_code(&ada, codes[0].expose(), &here, now).await.unwrap();
    assert_eq!(remaining, 9);
    assert!(!users::get(&t.db, acme.id, ada.id).await.unwrap().totp_enabled, "authenticator reset");
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM recovery_codes").await, 0, "old codes are gone with it");
    let warning = h.mails_to("ada@acme.example").pop().expect("warning email");
    assert!(warning.contains("recovery code was used") && warning.contains("203.0.113.5"), "{warning}");
    assert!(!warning.contains(codes[0].expose()), "the code itself is never mailed");
    let log = actions(&t, acme.id).await;
    for expected in ["auth.totp_enrolled", "auth.recovery_codes_issued", "auth.recovery_code_used", "auth.totp_reset"] {
        assert!(log.iter().any(|a| a == expected), "{expected} missing from {log:?}");
    }

    // Wrong answers of any kind share one lockout: 5 failures, then a wait, whatever the factor.
    let enrollment = h.two_factor.begin_enrollment(&ada).await.unwrap();
    h.two_factor.confirm_enrollment(&ada, &app_code(&enrollment.secret_base32, now), &here, now).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(h.two_factor.verify(&ada, "000000", &here, now).await, Err(TwoFactorError::Rejected)));
    }
    for _ in 0..2 {
        assert!(matches!(
            h.two_factor.redeem_recovery_code(&ada, "AAAAA-AAAAA", &here, now).await,
            Err(TwoFactorError::Rejected)
        ));
    }
    let good = app_code(&enrollment.secret_base32, now + chrono::Duration::seconds(30));
    let locked = h.two_factor.verify(&ada, &good, &here, now + chrono::Duration::seconds(30)).await;
    match locked {
        Err(TwoFactorError::Throttled(th)) => assert!(th.to_string().contains("try again in 15 minute")),
        other => panic!("expected a lockout, got {other:?}"),
    }
    // From another network the per-account bucket still holds.
    let elsewhere = ctx("198.51.100.7", "Firefox");
    assert!(matches!(
        h.two_factor.verify(&ada, &good, &elsewhere, now + chrono::Duration::seconds(31)).await,
        Err(TwoFactorError::Throttled(_))
    ));
    assert_eq!(actions(&t, acme.id).await.iter().filter(|a| *a == "auth.totp_failed").count(), 3);
});

db_test!(a_sign_in_from_a_new_device_is_alerted, |t| {
    let h = harness(&t.db);
    let acme = new_client(&t.db, "acme").await;
    let ada = users::create(&t.db, acme.id, &email("ada@acme.example"), Role::Owner).await.unwrap();
    let now = deployclaw::db::now();
    let laptop = ctx("203.0.113.5", "Firefox on Linux");
    assert_eq!(h.two_factor.complete_sign_in(&ada, &laptop, now).await.unwrap(), DeviceSeen::First);
    assert_eq!(h.two_factor.complete_sign_in(&ada, &laptop, now).await.unwrap(), DeviceSeen::Known);
    assert!(h.mails_to("ada@acme.example").is_empty(), "no alert for the first or a known device");
    let phone = ctx("198.51.100.7", "Safari on iPhone");
    assert_eq!(h.two_factor.complete_sign_in(&ada, &phone, now).await.unwrap(), DeviceSeen::New);
    let alert = h.mails_to("ada@acme.example").pop().expect("alert email");
    assert!(alert.contains("198.51.100.7") && alert.contains("Safari on iPhone"), "{alert}");
    let log = actions(&t, acme.id).await;
    assert_eq!(log.iter().filter(|a| *a == "auth.signed_in").count(), 3);
    assert_eq!(log.iter().filter(|a| *a == "auth.new_device").count(), 1);
    assert!(users::get(&t.db, acme.id, ada.id).await.unwrap().last_login_at.is_some());
});

db_test!(team_roles_and_resets_follow_the_rules, |t| {
    let h = harness(&t.db);
    let store = DbSessionStore::new(t.db.clone());
    let acme = new_client(&t.db, "acme").await;
    let here = ctx("203.0.113.5", "Firefox");
    let owner = users::create(&t.db, acme.id, &email("owner@acme.example"), Role::Owner).await.unwrap();
    let member = h.team.invite(&owner, &email("mem@acme.example"), Role::Member, &here).await.unwrap();
    assert_eq!(member.role, Role::Member);
    assert!(h.mails_to("mem@acme.example").pop().unwrap().contains("https://deployclaw.example/sign-in"));

    // Members manage nothing; nobody grants platform_admin; the last owner stays.
    assert!(matches!(
        h.team.invite(&member, &email("x@acme.example"), Role::Member, &here).await,
        Err(TeamError::Forbidden(_))
    ));
    assert!(matches!(h.team.change_role(&member, owner.id, Role::Member, &here).await, Err(TeamError::Forbidden(_))));
    assert!(matches!(
        h.team.change_role(&owner, member.id, Role::PlatformAdmin, &here).await,
        Err(TeamError::Forbidden(_))
    ));
    assert!(matches!(h.team.change_role(&owner, owner.id, Role::Member, &here).await, Err(TeamError::Forbidden(_))));
    let promoted = h.team.change_role(&owner, member.id, Role::Admin, &here).await.unwrap();
    assert_eq!(promoted.role, Role::Admin);

    // Another client's owner cannot touch Acme's users.
    let globex = new_client(&t.db, "globex").await;
    let intruder = users::create(&t.db, globex.id, &email("boss@globex.example"), Role::Owner).await.unwrap();
    assert!(matches!(
        h.team.change_role(&intruder, member.id, Role::Member, &here).await,
        Err(TeamError::Db(DbError::NotFound))
    ));
    assert!(matches!(
        h.two_factor.reset_for_member(&intruder, member.id, &here).await,
        Err(TwoFactorError::Db(DbError::NotFound))
    ));

    // An owner resets a member's authenticator: the member's sessions end.
    let mut rec = record(&signed_in(acme.id, member.id, "Chrome"), 1800);
    store.create(&mut rec).await.unwrap();
    let plain = users::create(&t.db, acme.id, &email("plain@acme.example"), Role::Member).await.unwrap();
    assert!(matches!(h.two_factor.reset_for_member(&plain, member.id, &here).await, Err(TwoFactorError::Forbidden(_))));
    h.two_factor.reset_for_member(&owner, member.id, &here).await.unwrap();
    assert!(store.load(&rec.id).await.unwrap().is_none(), "the member was signed out");
    let log = actions(&t, acme.id).await;
    for expected in ["team.member_added", "team.role_changed", "auth.totp_reset"] {
        assert!(log.iter().any(|a| a == expected), "{expected} missing from {log:?}");
    }
});

db_test!(platform_admins_share_one_operator_client, |t| {
    let first = team::create_platform_admin(&t.db, &email("ops1@deployclaw.example")).await.unwrap();
    let second = team::create_platform_admin(&t.db, &email("ops2@deployclaw.example")).await.unwrap();
    assert_eq!(first.role, Role::PlatformAdmin);
    assert_eq!(first.client_id, second.client_id);
    assert!(!first.totp_enabled, "operators enrol TOTP at first sign-in like everyone");
    assert!(matches!(
        team::create_platform_admin(&t.db, &email("ops1@deployclaw.example")).await,
        Err(DbError::Conflict(_))
    ));
});

/// A six-digit code that no step from `now` - 1 to `now` + 1 accepts.
fn wrong_code(secret_base32: &str, now: DateTime<Utc>) -> String {
    let valid: Vec<String> =
        [-30, 0, 30].iter().map(|d| app_code(secret_base32, now + chrono::Duration::seconds(*d))).collect();
    (0..10u32).map(|i| format!("{i:06}")).find(|c| !valid.contains(c)).unwrap()
}

db_test!(a_burst_of_second_factor_guesses_is_evaluated_at_most_five_times, |t| {
    let h = harness(&t.db);
    let acme = new_client(&t.db, "acme").await;
    let ada = users::create(&t.db, acme.id, &email("ada@acme.example"), Role::Owner).await.unwrap();
    let now = deployclaw::db::now();
    let enrollment = h.two_factor.begin_enrollment(&ada).await.unwrap();
    let secret = enrollment.secret_base32.clone();
    h.two_factor.confirm_enrollment(&ada, &app_code(&secret, now), &ctx("203.0.113.5", "Firefox"), now).await.unwrap();

    // 100 wrong TOTP codes at once, each from its own address: five are checked, the rest refused unchecked.
    let at = now + chrono::Duration::seconds(60);
    let wrong = wrong_code(&secret, at);
    let guesses = (0..100u32).map(|i| {
        let (two_factor, ada, wrong) = (h.two_factor.clone(), ada.clone(), wrong.clone());
        let here = ctx(&format!("10.2.{}.{}", i / 200, i % 200 + 1), "burst");
        tokio::spawn(async move { two_factor.verify(&ada, &wrong, &here, at).await })
    });
    let (mut rejected, mut throttled) = (0, 0);
    for g in guesses {
        match g.await.unwrap() {
            Err(TwoFactorError::Rejected) => rejected += 1,
            Err(TwoFactorError::Throttled(_)) => throttled += 1,
            other => panic!("unexpected answer to a wrong code: {other:?}"),
        }
    }
    assert_eq!((rejected, throttled), (5, 95), "(evaluated, refused before evaluation)");
    assert_eq!(actions(&t, acme.id).await.iter().filter(|a| *a == "auth.totp_failed").count(), 5);

    // Recovery-code guesses (each an argon2id hash) are capped the same way, once the window has passed.
    let at = now + chrono::Duration::minutes(17);
    let guesses = (0..20u32).map(|i| {
        let (two_factor, ada) = (h.two_factor.clone(), ada.clone());
        let here = ctx(&format!("10.3.0.{}", i + 1), "burst");
        tokio::spawn(async move { two_factor.redeem_recovery_code(&ada, "AAAAA-AAAAA", &here, at).await })
    });
    let (mut rejected, mut throttled) = (0, 0);
    for g in guesses {
        match g.await.unwrap() {
            Err(TwoFactorError::Rejected) => rejected += 1,
            Err(TwoFactorError::Throttled(_)) => throttled += 1,
            // Every hashing worker busy: refused unchecked, and not counted against the user.
            Err(TwoFactorError::Busy) => {}
            other => panic!("unexpected answer to a wrong recovery code: {other:?}"),
        }
    }
    assert!(rejected <= 5 && throttled >= 15, "recovery guesses: {rejected} evaluated, {throttled} throttled");
    let failed = actions(&t, acme.id).await.iter().filter(|a| *a == "auth.recovery_code_failed").count();
    assert_eq!(failed, rejected, "every evaluated guess is audited");

    // Right answers are given back: six sign-ins in a row, then four wrong codes, and the right one still works.
    let start = now + chrono::Duration::minutes(34);
    let here = ctx("203.0.113.5", "Firefox");
    for i in 0..6 {
        let step = start + chrono::Duration::seconds(30 * i);
        h.two_factor.verify(&ada, &app_code(&secret, step), &here, step).await.expect("a right code");
    }
    let step = start + chrono::Duration::seconds(300);
    for _ in 0..4 {
        assert!(matches!(
            h.two_factor.verify(&ada, &wrong_code(&secret, step), &here, step).await,
            Err(TwoFactorError::Rejected)
        ));
    }
    h.two_factor.verify(&ada, &app_code(&secret, step), &here, step).await.expect("successes cost no attempts");
});

db_test!(an_admin_cannot_act_on_an_owner_and_two_owners_cannot_demote_each_other_to_none, |t| {
    let h = harness(&t.db);
    let store = DbSessionStore::new(t.db.clone());
    let acme = new_client(&t.db, "acme").await;
    let here = ctx("203.0.113.5", "Firefox");
    let owner = users::create(&t.db, acme.id, &email("owner@acme.example"), Role::Owner).await.unwrap();
    let admin = users::create(&t.db, acme.id, &email("admin@acme.example"), Role::Admin).await.unwrap();
    let member = users::create(&t.db, acme.id, &email("mem@acme.example"), Role::Member).await.unwrap();

    // An admin who could reset the owner's authenticator would, with the owner's mailbox, own the account.
    let mut owners_session = record(&signed_in(acme.id, owner.id, "Firefox"), 1800);
    store.create(&mut owners_session).await.unwrap();
    let refused = h.two_factor.reset_for_member(&admin, owner.id, &here).await;
    assert!(matches!(refused, Err(TwoFactorError::Forbidden(_))), "{refused:?}");
    assert!(store.load(&owners_session.id).await.unwrap().is_some(), "the owner stays signed in");
    // Admins act on their own level and below; nobody on themselves here.
    let other_admin = users::create(&t.db, acme.id, &email("admin2@acme.example"), Role::Admin).await.unwrap();
    h.two_factor.reset_for_member(&admin, member.id, &here).await.unwrap();
    h.two_factor.reset_for_member(&admin, other_admin.id, &here).await.unwrap();
    // Admins change no roles, and only owners add owners or admins.
    assert!(matches!(h.team.change_role(&admin, member.id, Role::Admin, &here).await, Err(TeamError::Forbidden(_))));
    assert!(matches!(h.team.change_role(&admin, owner.id, Role::Member, &here).await, Err(TeamError::Forbidden(_))));
    assert!(matches!(
        h.team.invite(&admin, &email("new@acme.example"), Role::Owner, &here).await,
        Err(TeamError::Forbidden(_))
    ));

    // Two owners demoting each other at the same moment: one wins, the client keeps an owner.
    let second = h.team.change_role(&owner, admin.id, Role::Owner, &here).await.unwrap();
    for round in 0..10 {
        let (a, b) = if round % 2 == 0 { (owner.clone(), second.clone()) } else { (second.clone(), owner.clone()) };
        let (t1, t2) = (h.team.clone(), h.team.clone());
        let (ha, hb) = (here.clone(), here.clone());
        let (a_id, b_id) = (a.id, b.id);
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { t1.change_role(&a, b_id, Role::Member, &ha).await }),
            tokio::spawn(async move { t2.change_role(&b, a_id, Role::Member, &hb).await }),
        );
        let owners = users::list(&t.db, acme.id).await.unwrap().iter().filter(|u| u.role == Role::Owner).count();
        assert_eq!(owners, 1, "round {round}: {:?} / {:?}", ra.unwrap().map(|u| u.role), rb.unwrap().map(|u| u.role));
        // Put both back for the next round (whichever is still owner promotes the other).
        let still = users::list(&t.db, acme.id).await.unwrap().into_iter().find(|u| u.role == Role::Owner).unwrap();
        let demoted = if still.id == owner.id { second.id } else { owner.id };
        h.team.change_role(&still, demoted, Role::Owner, &here).await.unwrap();
    }
});
