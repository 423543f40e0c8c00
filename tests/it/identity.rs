//! Sign-in codes and the throttle, on both databases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deployclaw::email::EmailAddress;
use deployclaw::identity::codes::{CodeError, SignInCodes, DEFAULT_TTL, MAX_ATTEMPTS, MAX_TTL};
use deployclaw::identity::throttle::{Bucket, Taken, Throttle, ThrottleKind, Throttled, FAILURES};

use crate::support::{db_test, test_keyring};

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn t0() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn later(secs: u64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs as i64)
}

fn rejected(r: Result<(), CodeError>) -> bool {
    matches!(r, Err(CodeError::Rejected(_)))
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

db_test!(a_code_works_once_for_its_address_only, |t| {
    let codes = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    let ada = email("ada@example.com");
    let code = codes.issue(&ada, t0()).await.unwrap();
    assert_eq!(code.expose().len(), 6);
    assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
    assert!(!format!("{code:?}").contains(code.expose()));
    assert!(rejected(codes.verify(&email("bob@example.com"), code.expose(), later(1)).await), "another address");
    codes.verify(&ada, code.expose(), later(2)).await.unwrap();
    assert!(rejected(codes.verify(&ada, code.expose(), later(3)).await), "single use");
});

db_test!(codes_are_stored_only_as_keyed_hashes, |t| {
    let codes = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    let ada = email("ada@example.com");
    let code = codes.issue(&ada, t0()).await.unwrap();
    assert_eq!(t.raw_count("SELECT COUNT(*) FROM sign_in_codes").await, 1);
    let stored = t
        .raw_count(&format!(
            "SELECT COUNT(*) FROM sign_in_codes WHERE CAST(code_hash AS TEXT) LIKE '%{}%' OR email LIKE '%{}%'",
            code.expose(),
            code.expose()
        ))
        .await;
    assert_eq!(stored, 0, "the code itself is nowhere in the table");
    // The same code under another server key does not verify: the hash is keyed.
    let other = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    assert!(rejected(other.verify(&ada, code.expose(), later(1)).await));
});

db_test!(codes_expire_after_ten_minutes, |t| {
    let codes = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    let ada = email("ada@example.com");
    let code = codes.issue(&ada, t0()).await.unwrap();
    assert!(rejected(codes.verify(&ada, code.expose(), later(600)).await), "at 10:00 it is gone");
    let code = codes.issue(&ada, t0()).await.unwrap();
    codes.verify(&ada, code.expose(), later(599)).await.unwrap();
    let long = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), Duration::from_secs(3600));
    assert_eq!(long.ttl(), MAX_TTL, "configuration can never exceed 15 minutes");
});

db_test!(five_wrong_tries_use_a_code_up, |t| {
    let codes = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    let ada = email("ada@example.com");
    let code = codes.issue(&ada, t0()).await.unwrap();
    for i in 0..MAX_ATTEMPTS {
        let guess = if i % 2 == 0 { wrong(code.expose()) } else { "12ab56".to_string() };
        assert!(rejected(codes.verify(&ada, &guess, later(1)).await));
    }
    assert!(rejected(codes.verify(&ada, code.expose(), later(2)).await), "the right code is too late now");
});

db_test!(a_new_code_supersedes_the_old_one, |t| {
    let codes = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    let ada = email("ada@example.com");
    let first = codes.issue(&ada, t0()).await.unwrap();
    let second = codes.issue(&ada, later(30)).await.unwrap();
    if first.expose() != second.expose() {
        assert!(rejected(codes.verify(&ada, first.expose(), later(31)).await));
    }
    codes.verify(&ada, second.expose(), later(32)).await.unwrap();
});

db_test!(parallel_guesses_cannot_exceed_the_attempt_limit, |t| {
    let codes = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    let ada = email("ada@example.com");
    let code = codes.issue(&ada, t0()).await.unwrap();
    let guesses = (0..20).map(|i| {
        let codes = codes.clone();
        let ada = ada.clone();
        let guess = format!("{:06}", (code.expose().parse::<u32>().unwrap() + 1 + i) % 1_000_000);
        tokio::spawn(async move { codes.verify(&ada, &guess, later(1)).await })
    });
    for g in guesses {
        assert!(rejected(g.await.unwrap()));
    }
    let attempts = t.raw_count("SELECT CAST(MAX(attempts) AS BIGINT) FROM sign_in_codes").await;
    assert_eq!(attempts, i64::from(MAX_ATTEMPTS));
});

/// One attempt at `now`: `Ok` when admitted (and counted), the wait otherwise.
async fn take(throttle: &Throttle, buckets: &[Bucket], now: DateTime<Utc>) -> Result<Taken, Throttled> {
    throttle.take(buckets, ThrottleKind::Failure, FAILURES, now).await.unwrap()
}

db_test!(five_failures_lock_the_ip_and_the_account_for_fifteen_minutes, |t| {
    let throttle = Throttle::new(t.db.clone());
    let ip = Bucket::ip("203.0.113.9".parse().unwrap());
    let ada = Bucket::account(&email("ada@example.com"));
    let both = [ip.clone(), ada.clone()];
    for i in 0..5 {
        let _failed = take(&throttle, &both, later(i * 60)).await.expect("under the limit");
    }
    let locked = take(&throttle, &both, later(300)).await;
    let Err(Throttled { retry_after }) = locked else { panic!("not locked: {locked:?}") };
    assert_eq!(retry_after, Duration::from_secs(900 - 300), "free when the oldest failure leaves the window");
    // The same account from another IP is locked too; another account from the same IP too.
    let other_ip = [Bucket::ip("198.51.100.7".parse().unwrap()), ada.clone()];
    assert!(take(&throttle, &other_ip, later(300)).await.is_err());
    let other_account = [ip.clone(), Bucket::account(&email("bob@example.com"))];
    assert!(take(&throttle, &other_account, later(300)).await.is_err());
    // Unrelated clients are not affected; other kinds are counted apart.
    let stranger = [Bucket::ip("198.51.100.7".parse().unwrap()), Bucket::account(&email("bob@example.com"))];
    assert!(take(&throttle, &stranger, later(300)).await.is_ok());
    assert!(throttle.take(&both, ThrottleKind::CodeSent, FAILURES, later(300)).await.unwrap().is_ok());
    // A restarted server (new handle, same database) still refuses; after the window it allows again.
    let restarted = Throttle::new(t.db.clone());
    assert!(take(&restarted, &both, later(899)).await.is_err());
    assert!(take(&restarted, &both, later(901)).await.is_ok());
});

db_test!(parallel_attempts_never_exceed_the_limit, |t| {
    // 100 attempts at once on one account, each from its own address: check and record are one step, so
    // exactly five get through and nothing is recorded for the others.
    let throttle = Throttle::new(t.db.clone());
    let ada = Bucket::account(&email("ada@example.com"));
    let attempts = (0..100u32).map(|i| {
        let throttle = throttle.clone();
        let buckets = [Bucket::ip(format!("10.1.{}.{}", i / 200, i % 200 + 1).parse().unwrap()), ada.clone()];
        tokio::spawn(async move { take(&throttle, &buckets, later(1)).await.is_ok() })
    });
    let mut admitted = 0;
    for a in attempts {
        admitted += usize::from(a.await.unwrap());
    }
    assert_eq!(admitted, 5, "admitted attempts");
    let recorded = t.raw_count("SELECT COUNT(*) FROM auth_throttle WHERE bucket = 'account:ada@example.com'").await;
    assert_eq!(recorded, 5, "refused attempts leave nothing behind");
});

db_test!(a_refunded_attempt_gives_its_slot_back_and_an_address_never_blocks_another, |t| {
    let throttle = Throttle::new(t.db.clone());
    let here = [Bucket::ip("203.0.113.9".parse().unwrap()), Bucket::account(&email("ada@example.com"))];
    // Ten successes in a row (each refunded) cost nothing.
    for i in 0..10 {
        let taken = take(&throttle, &here, later(i)).await.expect("successes are refunded");
        throttle.refund(taken).await.unwrap();
    }
    for i in 0..5 {
        let _failed = take(&throttle, &here, later(20 + i)).await.unwrap();
    }
    assert!(take(&throttle, &here, later(30)).await.is_err(), "five failures lock");
    // The address's lock is its own: another address, another account, is not blocked.
    let elsewhere = [Bucket::ip("203.0.113.10".parse().unwrap()), Bucket::account(&email("bob@example.com"))];
    assert!(take(&throttle, &elsewhere, later(31)).await.is_ok());
});

db_test!(parallel_requests_leave_exactly_one_live_code, |t| {
    let codes = SignInCodes::new(t.db.clone(), &test_keyring(&[1]), DEFAULT_TTL);
    let ada = email("ada@example.com");
    let issued = (0..20).map(|i| {
        let (codes, ada) = (codes.clone(), ada.clone());
        tokio::spawn(async move { codes.issue(&ada, later(i)).await.map(|c| c.expose().to_string()) })
    });
    let mut sent = Vec::new();
    for i in issued {
        sent.push(i.await.unwrap().expect("every request issues a code"));
    }
    let live = t.raw_count("SELECT COUNT(*) FROM sign_in_codes WHERE consumed_at IS NULL").await;
    assert_eq!(live, 1, "one live code per address");
});

mod recovery_codes {
    use deployclaw::db::users::{self, Role};
    use deployclaw::identity::argon::ArgonPool;
    use deployclaw::identity::recovery::{self, RecoveryError, RECOVERY_CODES};

    use super::*;
    use crate::support::new_client;

    db_test!(ten_single_use_codes_stored_only_as_argon2id, |t| {
        let argon = ArgonPool::new(2);
        let acme = new_client(&t.db, "acme").await;
        let ada = users::create(&t.db, acme.id, &email("ada@acme.example"), Role::Owner).await.unwrap();
        let codes = recovery::generate(&t.db, &argon, acme.id, ada.id).await.unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert_eq!(t.raw_count("SELECT COUNT(*) FROM recovery_codes WHERE code_hash LIKE '$argon2id$%'").await, 10);
        let plain = codes[0].expose().replace('-', "");
        let leaked =
            t.raw_count(&format!("SELECT COUNT(*) FROM recovery_codes WHERE code_hash LIKE '%{plain}%'")).await;
        assert_eq!(leaked, 0);

        // Typed loosely (lower case, spaces) it still works - once.
        let typed = format!(" {} ", codes[3].expose().to_lowercase());
        assert_eq!(recovery::redeem(&t.db, &argon, acme.id, ada.id, &typed).await.unwrap(), 9);
        assert!(matches!(
            recovery::redeem(&t.db, &argon, acme.id, ada.id, &typed).await,
            Err(RecoveryError::Rejected(_))
        ));
        assert!(matches!(
            recovery::redeem(&t.db, &argon, acme.id, ada.id, "ABCDE-FGHJK").await,
            Err(RecoveryError::Rejected(_))
        ));
        assert!(matches!(
            recovery::redeem(&t.db, &argon, acme.id, ada.id, "not a code").await,
            Err(RecoveryError::Rejected(_))
        ));
    });

    db_test!(codes_belong_to_one_user_and_a_new_set_replaces_the_old, |t| {
        let argon = ArgonPool::new(2);
        let acme = new_client(&t.db, "acme").await;
        let globex = new_client(&t.db, "globex").await;
        let ada = users::create(&t.db, acme.id, &email("ada@acme.example"), Role::Owner).await.unwrap();
        let bob = users::create(&t.db, globex.id, &email("bob@globex.example"), Role::Owner).await.unwrap();
        let ada_codes = recovery::generate(&t.db, &argon, acme.id, ada.id).await.unwrap();
        recovery::generate(&t.db, &argon, globex.id, bob.id).await.unwrap();
        let stolen = ada_codes[0].expose();
        assert!(recovery::redeem(&t.db, &argon, globex.id, bob.id, stolen).await.is_err(), "another user's code");
        assert!(recovery::redeem(&t.db, &argon, globex.id, ada.id, stolen).await.is_err(), "another client's scope");
        assert!(
            matches!(
                recovery::generate(&t.db, &argon, globex.id, ada.id).await,
                Err(RecoveryError::Db(deployclaw::db::DbError::NotFound))
            ),
            "cannot replace another tenant's user's codes"
        );
        let fresh = recovery::generate(&t.db, &argon, acme.id, ada.id).await.unwrap();
        assert!(recovery::redeem(&t.db, &argon, acme.id, ada.id, stolen).await.is_err(), "old set is gone");
        assert_eq!(recovery::redeem(&t.db, &argon, acme.id, ada.id, fresh[0].expose()).await.unwrap(), 9);
    });
}

mod totp {
    use deployclaw::db::users::{self, Role};
    use deployclaw::identity::totp::{self, TotpError};
    use totp_rs::{Builder, Secret};

    use super::*;
    use crate::support::new_client;

    /// What the user's authenticator app shows at `now`, from the base32 secret it was given.
    fn app_code(secret_base32: &str, now: DateTime<Utc>) -> String {
        let t = Builder::new()
            .with_secret(Secret::try_from_base32(secret_base32).unwrap())
            .with_account_name("test")
            .build()
            .unwrap();
        t.generate(now.timestamp() as u64).to_string()
    }

    fn other_code(code: &str) -> String {
        format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
    }

    db_test!(enrol_then_verify_with_replay_guard_and_skew, |t| {
        let keys = test_keyring(&[1]);
        let acme = new_client(&t.db, "acme").await;
        let ada_email = email("ada@acme.example");
        let ada = users::create(&t.db, acme.id, &ada_email, Role::Owner).await.unwrap();
        let enrollment = totp::begin(&t.db, &keys, acme.id, ada.id, &ada_email).await.unwrap();
        assert!(enrollment.otpauth_url.starts_with("otpauth://totp/DeployClaw:"));
        assert!(enrollment.qr_svg.contains("<svg"));
        assert!(!format!("{enrollment:?}").contains(enrollment.secret_base32.as_str()));
        let seed_leak = t
            .raw_count(&format!(
                "SELECT COUNT(*) FROM users WHERE CAST(totp_secret AS TEXT) LIKE '%{}%'",
                &enrollment.secret_base32[..16]
            ))
            .await;
        assert_eq!(seed_leak, 0, "the seed is stored sealed");

        // Not active until confirmed; a wrong code does not confirm.
        let code = app_code(&enrollment.secret_base32, t0());
        assert!(matches!(totp::verify(&t.db, &keys, acme.id, ada.id, &code, t0()).await, Err(TotpError::NotEnrolled)));
        assert!(totp::confirm(&t.db, &keys, acme.id, ada.id, &other_code(&code), t0()).await.is_err());
        totp::confirm(&t.db, &keys, acme.id, ada.id, &code, t0()).await.unwrap();
        assert!(users::get(&t.db, acme.id, ada.id).await.unwrap().totp_enabled);

        // The confirming code cannot be replayed; the next step's code works once.
        assert!(totp::verify(&t.db, &keys, acme.id, ada.id, &code, later(5)).await.is_err(), "replay refused");
        let next = app_code(&enrollment.secret_base32, later(30));
        totp::verify(&t.db, &keys, acme.id, ada.id, &next, later(30)).await.unwrap();
        assert!(totp::verify(&t.db, &keys, acme.id, ada.id, &next, later(31)).await.is_err());
        // One step of clock skew is accepted (a phone 30 s fast), two are not.
        let fast = app_code(&enrollment.secret_base32, later(90));
        totp::verify(&t.db, &keys, acme.id, ada.id, &fast, later(60)).await.unwrap();
        let far = app_code(&enrollment.secret_base32, later(300));
        assert!(totp::verify(&t.db, &keys, acme.id, ada.id, &far, later(240)).await.is_err());
        // Enrolling again while active is refused.
        assert!(matches!(
            totp::begin(&t.db, &keys, acme.id, ada.id, &ada_email).await,
            Err(TotpError::AlreadyEnrolled)
        ));
    });

    db_test!(a_seed_copied_to_another_user_does_not_open, |t| {
        let keys = test_keyring(&[1]);
        let acme = new_client(&t.db, "acme").await;
        let (ea, eb) = (email("a@acme.example"), email("b@acme.example"));
        let a = users::create(&t.db, acme.id, &ea, Role::Owner).await.unwrap();
        let b = users::create(&t.db, acme.id, &eb, Role::Member).await.unwrap();
        let enrollment = totp::begin(&t.db, &keys, acme.id, a.id, &ea).await.unwrap();
        totp::begin(&t.db, &keys, acme.id, b.id, &eb).await.unwrap();
        let (a_lit, b_lit) = (t.literal_uuid(a.id.as_uuid()), t.literal_uuid(b.id.as_uuid()));
        t.raw_execute(&format!(
            "UPDATE users SET totp_secret = (SELECT totp_secret FROM users WHERE id = {a_lit}) WHERE id = {b_lit}"
        ))
        .await
        .unwrap();
        let code = app_code(&enrollment.secret_base32, t0());
        let err = totp::confirm(&t.db, &keys, acme.id, b.id, &code, t0()).await.unwrap_err();
        assert!(matches!(err, TotpError::Envelope(_)), "{err:?}");
        // Another client's scope cannot reach the user at all.
        let globex = new_client(&t.db, "globex").await;
        assert!(totp::confirm(&t.db, &keys, globex.id, a.id, &code, t0()).await.is_err());
    });
}
