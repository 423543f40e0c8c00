//! The first factor end to end on both databases: uniform answers, throttling, sign-up, audit.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use deployclaw::audit;
use deployclaw::context::RequestContext;
use deployclaw::db::clients::ClientName;
use deployclaw::db::users::Role;
use deployclaw::email::EmailAddress;
use deployclaw::identity::codes::{SignInCodes, DEFAULT_TTL};
use deployclaw::identity::sign_in::{CodeOutcome, SignIn, SignInError};
use deployclaw::mail::{MailTransport, Mailer};

use crate::support::{db_test, test_keyring};

struct Harness {
    sign_in: SignIn,
    outbox: tempfile::TempDir,
}

fn harness(db: &deployclaw::db::Db) -> Harness {
    let outbox = tempfile::tempdir().unwrap();
    let mailer =
        Mailer::new("DeployClaw <no-reply@localhost>", &MailTransport::Outbox { dir: outbox.path().into() }).unwrap();
    let codes = SignInCodes::new(db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    Harness { sign_in: SignIn::new(db.clone(), codes, mailer), outbox }
}

impl Harness {
    /// The code in the newest message to `to`.
    fn last_code_for(&self, to: &str) -> String {
        let mut files: Vec<_> = std::fs::read_dir(self.outbox.path()).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let re = regex::Regex::new(r"(?m)^\s+(\d{6})\s*$").unwrap();
        files
            .iter()
            .rev()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .find(|m| m.contains(&format!("To: {to}")))
            .and_then(|m| re.captures(&m).map(|c| c[1].to_string()))
            .expect("a code was mailed")
    }
}

fn ctx(ip: &str) -> RequestContext {
    RequestContext { ip: ip.parse::<IpAddr>().unwrap(), user_agent: Some("test-agent/1.0".into()) }
}

fn at(secs: i64) -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(secs)
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

db_test!(sign_up_then_sign_in_with_emailed_codes, |t| {
    let h = harness(&t.db);
    let ada = email("ada@example.com");
    h.sign_in.request_code(&ada, &ctx("203.0.113.9"), at(0)).await.unwrap();
    let code = h.last_code_for("ada@example.com");
    let outcome = h.sign_in.verify_code(&ada, &code, &ctx("203.0.113.9"), at(5)).await.unwrap();
    let CodeOutcome::NewAccount(verified) = outcome else { panic!("expected sign-up") };
    let owner = h
        .sign_in
        .sign_up(verified, ClientName::parse("Analytical Engines").unwrap(), &ctx("203.0.113.9"))
        .await
        .unwrap();
    assert_eq!(owner.role, Role::Owner);

    h.sign_in.request_code(&ada, &ctx("203.0.113.9"), at(60)).await.unwrap();
    let code = h.last_code_for("ada@example.com");
    match h.sign_in.verify_code(&ada, &code, &ctx("203.0.113.9"), at(65)).await.unwrap() {
        CodeOutcome::ExistingUser(u) => assert_eq!(u.id, owner.id),
        other => panic!("expected the existing user, got {other:?}"),
    }
    let actions: Vec<String> = audit::recent(&t.db, owner.client_id, None, 50)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| e.action_type)
        .collect();
    assert_eq!(actions, ["auth.signed_up", "auth.code_sent", "auth.code_verified"]);
    let events = audit::recent(&t.db, owner.client_id, None, 50).await.unwrap();
    assert!(events.iter().all(|e| e.ip_address.as_deref() == Some("203.0.113.9")));
    assert!(events.iter().all(|e| !e.metadata.0.to_string().contains(&code)), "never the code");
});

db_test!(known_and_unknown_addresses_get_the_same_answer, |t| {
    let h = harness(&t.db);
    let known = email("owner@acme.example");
    deployclaw::db::clients::create_with_owner(
        &t.db,
        deployclaw::db::clients::NewClient { name: ClientName::parse("Acme").unwrap(), email: known.clone() },
    )
    .await
    .unwrap();
    let unknown = email("nobody@acme.example");
    let a = h.sign_in.request_code(&known, &ctx("198.51.100.1"), at(0)).await;
    let b = h.sign_in.request_code(&unknown, &ctx("198.51.100.2"), at(0)).await;
    assert!(a.is_ok() && b.is_ok());
    // Both received a code; wrong codes are rejected identically.
    for who in [&known, &unknown] {
        let err = h.sign_in.verify_code(who, "000000", &ctx("198.51.100.3"), at(1)).await.unwrap_err();
        assert!(matches!(err, SignInError::Rejected));
        assert_eq!(err.to_string(), "that code is not valid; request a new one");
    }
    assert_eq!(std::fs::read_dir(h.outbox.path()).unwrap().count(), 2);
});

db_test!(five_failures_lock_out_even_the_right_code_and_say_when_to_retry, |t| {
    let h = harness(&t.db);
    let ada = email("ada@example.com");
    h.sign_in.request_code(&ada, &ctx("203.0.113.9"), at(0)).await.unwrap();
    let code = h.last_code_for("ada@example.com");
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for i in 0..5 {
        let err = h.sign_in.verify_code(&ada, &wrong, &ctx("203.0.113.9"), at(10 + i)).await.unwrap_err();
        assert!(matches!(err, SignInError::Rejected));
    }
    // Fresh code, other IP: the account is locked all the same, with the same kind of answer.
    h.sign_in.request_code(&ada, &ctx("198.51.100.7"), at(20)).await.unwrap();
    let code = h.last_code_for("ada@example.com");
    let err = h.sign_in.verify_code(&ada, &code, &ctx("198.51.100.7"), at(30)).await.unwrap_err();
    assert!(matches!(err, SignInError::Throttled(_)), "{err:?}");
    assert!(err.to_string().contains("try again in 15 minute(s)"), "{err}");
    // After the window the same (still valid) code works.
    let later = h.sign_in.verify_code(&ada, &code, &ctx("198.51.100.7"), at(10 + 15 * 60 + 5)).await;
    assert!(later.is_err(), "the code expired meanwhile (10 minutes)");
    h.sign_in.request_code(&ada, &ctx("198.51.100.7"), at(15 * 60 + 20)).await.unwrap();
    let code = h.last_code_for("ada@example.com");
    assert!(h.sign_in.verify_code(&ada, &code, &ctx("198.51.100.7"), at(15 * 60 + 25)).await.is_ok());
});

db_test!(sending_codes_is_throttled_per_address_and_per_ip, |t| {
    let h = harness(&t.db);
    let ada = email("ada@example.com");
    for i in 0..5 {
        h.sign_in.request_code(&ada, &ctx("203.0.113.9"), at(i)).await.unwrap();
    }
    let err = h.sign_in.request_code(&ada, &ctx("198.51.100.1"), at(10)).await.unwrap_err();
    assert!(matches!(err, SignInError::Throttled(_)), "per address");
    let err = h.sign_in.request_code(&email("bob@example.com"), &ctx("203.0.113.9"), at(10)).await.unwrap_err();
    assert!(matches!(err, SignInError::Throttled(_)), "per IP");
    assert_eq!(std::fs::read_dir(h.outbox.path()).unwrap().count(), 5, "nothing sent while throttled");
});

db_test!(signing_up_twice_with_one_address_is_refused_and_creates_nothing, |t| {
    let h = harness(&t.db);
    let ada = email("ada@example.com");
    let mut verified = Vec::new();
    for i in 0..2 {
        h.sign_in.request_code(&ada, &ctx("203.0.113.9"), at(i * 60)).await.unwrap();
        let code = h.last_code_for("ada@example.com");
        match h.sign_in.verify_code(&ada, &code, &ctx("203.0.113.9"), at(i * 60 + 1)).await.unwrap() {
            CodeOutcome::NewAccount(v) => verified.push(v),
            other => panic!("{other:?}"),
        }
    }
    let second = verified.pop().unwrap();
    h.sign_in.sign_up(verified.pop().unwrap(), ClientName::parse("First").unwrap(), &ctx("203.0.113.9")).await.unwrap();
    let err = h.sign_in.sign_up(second, ClientName::parse("Second").unwrap(), &ctx("203.0.113.9")).await.unwrap_err();
    assert!(matches!(err, SignInError::Db(deployclaw::db::DbError::Conflict(_))), "{err:?}");
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM clients").await, 1);
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM users").await, 1);
});

db_test!(twenty_parallel_sends_leave_five_mails_and_one_live_code, |t| {
    let h = harness(&t.db);
    let ada = email("ada@example.com");
    let sends = (0..20).map(|i| {
        let (sign_in, ada) = (h.sign_in.clone(), ada.clone());
        tokio::spawn(async move { sign_in.request_code(&ada, &ctx(&format!("203.0.113.{}", i + 1)), at(i)).await })
    });
    let (mut sent, mut throttled) = (0, 0);
    for s in sends {
        match s.await.unwrap() {
            Ok(()) => sent += 1,
            Err(SignInError::Throttled(_)) => throttled += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((sent, throttled), (5, 15), "the per-address limit holds under a burst");
    assert_eq!(std::fs::read_dir(h.outbox.path()).unwrap().count(), 5);
    let live = t.raw_count("SELECT COUNT(*) FROM sign_in_codes WHERE consumed_at IS NULL").await;
    assert_eq!(live, 1, "exactly one code works");
});
