//! A customer's audit settings (`audit::settings`): retention within its limits, SIEM destinations added,
//! paused, resumed and removed - each change recorded in the client's own trail, never another client's.

use deployclaw::audit::retention::RetentionPolicy;
use deployclaw::audit::settings::{self, RetentionSource};
use deployclaw::audit::siem::{self, Endpoint, Kind, NewDestination, StartAt};
use deployclaw::audit::{self, Actor, AuditEvent};
use deployclaw::config::SiemConfig;
use deployclaw::context::RequestContext;
use deployclaw::db::users::{self, Role, User};
use deployclaw::db::{ClientId, Db, DbError};
use serde_json::json;

use crate::support::{db_test, new_client};

fn ctx() -> RequestContext {
    RequestContext { ip: "203.0.113.9".parse().unwrap(), user_agent: Some("settings-test".into()) }
}

async fn owner_of(db: &Db, client: ClientId, email: &str) -> User {
    users::create(db, client, &deployclaw::email::EmailAddress::parse(email).unwrap(), Role::Owner).await.unwrap()
}

async fn events(db: &Db, client: ClientId, action: &str) -> Vec<AuditEvent> {
    let mut all = audit::recent(db, client, None, 500).await.unwrap();
    all.retain(|e| e.action_type == action);
    all.reverse();
    all
}

const POLICY: RetentionPolicy = RetentionPolicy { default_days: 90, max_days: 365, plans: None };

db_test!(retention_changes_stay_within_limits_and_are_recorded, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    let owner = owner_of(&t.db, acme, "owner@acme.example").await;
    let actor = Actor::User(owner.id);

    let now = settings::retention(&t.db, &POLICY, acme).await.unwrap();
    assert_eq!((now.days, now.source, now.client_days), (90, RetentionSource::PlatformDefault, None));
    assert_eq!((now.default_days, now.max_days), (90, 365));

    // Shorter: stored, and recorded with both periods, the actor, the address and the user agent.
    let change = settings::change_retention(&t.db, &POLICY, actor, acme, Some(30), &ctx()).await.unwrap();
    assert_eq!((change.before.days, change.after.days), (90, 30));
    assert!(change.shortened());
    let now = settings::retention(&t.db, &POLICY, acme).await.unwrap();
    assert_eq!((now.days, now.source, now.client_days), (30, RetentionSource::Client, Some(30)));
    let recorded = events(&t.db, acme, "audit.retention_changed").await;
    assert_eq!(recorded.len(), 1);
    let e = &recorded[0];
    assert_eq!((e.actor_kind.as_str(), e.actor_id), ("user", Some(owner.id.as_uuid())));
    assert_eq!(e.ip_address.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        e.metadata.0,
        json!({ "from_days": 90, "to_days": 30, "from_source": "platform_default", "to_source": "client",
                "user_agent": "settings-test" })
    );

    // The same value again changes and records nothing.
    let same = settings::change_retention(&t.db, &POLICY, actor, acme, Some(30), &ctx()).await.unwrap();
    assert!(!same.shortened());
    assert_eq!(events(&t.db, acme, "audit.retention_changed").await.len(), 1);

    // Out of range: refused with the range, nothing stored or recorded.
    for bad in [0, 366, u32::MAX] {
        let err = settings::change_retention(&t.db, &POLICY, actor, acme, Some(bad), &ctx()).await.unwrap_err();
        assert!(matches!(&err, DbError::Invalid(m) if m.contains("between 1 and 365 days")), "{bad}: {err}");
    }
    assert_eq!(settings::retention(&t.db, &POLICY, acme).await.unwrap().days, 30);
    assert_eq!(events(&t.db, acme, "audit.retention_changed").await.len(), 1);

    // Back to the default: recorded as a change from the client's setting.
    let change = settings::change_retention(&t.db, &POLICY, actor, acme, None, &ctx()).await.unwrap();
    assert_eq!((change.before.days, change.after.days), (30, 90));
    assert!(!change.shortened());
    let recorded = events(&t.db, acme, "audit.retention_changed").await;
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].metadata.0["from_source"], "client");
    assert_eq!(recorded[1].metadata.0["to_source"], "platform_default");
    let now = settings::retention(&t.db, &POLICY, acme).await.unwrap();
    assert_eq!((now.days, now.source), (90, RetentionSource::PlatformDefault));

    // The other client saw nothing of it; an unknown client is not found.
    let theirs = settings::retention(&t.db, &POLICY, globex).await.unwrap();
    assert_eq!((theirs.days, theirs.client_days), (90, None));
    assert!(events(&t.db, globex, "audit.retention_changed").await.is_empty());
    let nobody = ClientId::new();
    assert!(matches!(settings::retention(&t.db, &POLICY, nobody).await, Err(DbError::NotFound)));
    assert!(matches!(
        settings::change_retention(&t.db, &POLICY, actor, nobody, Some(10), &ctx()).await,
        Err(DbError::NotFound)
    ));

    // What retention itself applies is what the setting says.
    settings::change_retention(&t.db, &POLICY, actor, acme, Some(7), &ctx()).await.unwrap();
    let stored: i64 = t
        .raw_count("SELECT CAST(audit_retention_days AS BIGINT) FROM clients WHERE audit_retention_days IS NOT NULL")
        .await;
    assert_eq!(stored, 7);
});

fn https(url: &str) -> NewDestination {
    NewDestination {
        name: "Company SIEM".into(),
        kind: Kind::HttpsJson,
        endpoint: Endpoint::parse_url(url).unwrap(),
        ca_pem: None,
        start: StartAt::Beginning,
    }
}

fn syslog(host: &str, port: u16) -> NewDestination {
    NewDestination {
        name: format!("syslog {host}"),
        kind: Kind::SyslogTls,
        endpoint: Endpoint::HostPort { host: host.into(), port },
        ca_pem: None,
        start: StartAt::Now,
    }
}

db_test!(destination_changes_are_recorded_and_stay_in_their_client, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    let owner = owner_of(&t.db, acme, "owner@acme.example").await;
    let actor = Actor::User(owner.id);
    let rules = SiemConfig::default();

    // A collector token in the path and the query: stored for delivery, never shown or recorded.
    let url = "https://collector.example.com/receiver/v1/http/PATHTOKEN123?key=QUERYTOKEN456";
    let web = settings::add_destination(&t.db, &rules, actor, acme, https(url), &ctx()).await.unwrap();
    assert_eq!(web.url.as_deref(), Some(url));
    assert_eq!(settings::endpoint_display(&web), "https://collector.example.com/…");
    let logs =
        settings::add_destination(&t.db, &rules, actor, acme, syslog("logs.example.com", 6514), &ctx()).await.unwrap();
    assert_eq!(settings::endpoint_display(&logs), "logs.example.com:6514");
    let created = events(&t.db, acme, "siem.destination_created").await;
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].target.as_deref(), Some("Company SIEM"));
    assert_eq!(created[0].actor_id, Some(owner.id.as_uuid()));
    assert_eq!(created[0].ip_address.as_deref(), Some("203.0.113.9"));
    assert_eq!(created[0].metadata.0["destination_id"], web.id.to_string());
    assert_eq!(created[0].metadata.0["kind"], "https_json");
    assert_eq!(created[0].metadata.0["endpoint"], "https://collector.example.com/…");
    assert_eq!(created[0].metadata.0["start"], "beginning");
    assert_eq!(created[1].metadata.0["endpoint"], "logs.example.com:6514");
    assert_eq!(created[1].metadata.0["start"], "now");

    // Pause and resume: stored, and recorded as what they are.
    let paused = settings::set_destination_enabled(&t.db, actor, acme, web.id, false, &ctx()).await.unwrap();
    assert!(!paused.enabled);
    assert!(!siem::get(&t.db, acme, web.id).await.unwrap().enabled);
    let resumed = settings::set_destination_enabled(&t.db, actor, acme, web.id, true, &ctx()).await.unwrap();
    assert!(resumed.enabled);
    assert_eq!(events(&t.db, acme, "siem.destination_disabled").await.len(), 1);
    assert_eq!(events(&t.db, acme, "siem.destination_enabled").await.len(), 1);

    // Another client cannot see, pause or delete acme's destination, and nothing is recorded for it.
    let globex_owner = owner_of(&t.db, globex, "owner@globex.example").await;
    let theirs = Actor::User(globex_owner.id);
    assert!(matches!(
        settings::set_destination_enabled(&t.db, theirs, globex, web.id, false, &ctx()).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        settings::delete_destination(&t.db, theirs, globex, web.id, &ctx()).await,
        Err(DbError::NotFound)
    ));
    assert!(siem::get(&t.db, acme, web.id).await.unwrap().enabled, "still enabled");
    assert!(audit::recent(&t.db, globex, None, 100).await.unwrap().iter().all(|e| !e.action_type.starts_with("siem.")));

    // Delete: gone, recorded with what it was.
    settings::delete_destination(&t.db, actor, acme, web.id, &ctx()).await.unwrap();
    let left: Vec<_> = siem::list(&t.db, acme).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(left, [logs.id]);
    let deleted = events(&t.db, acme, "siem.destination_deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].metadata.0["destination_id"], web.id.to_string());
    assert!(matches!(settings::delete_destination(&t.db, actor, acme, web.id, &ctx()).await, Err(DbError::NotFound)));

    // At most MAX_DESTINATIONS per client; another client has its own allowance.
    for i in 1..settings::MAX_DESTINATIONS {
        settings::add_destination(&t.db, &rules, actor, acme, syslog(&format!("logs{i}.example.com"), 6514), &ctx())
            .await
            .unwrap();
    }
    assert_eq!(siem::list(&t.db, acme).await.unwrap().len(), settings::MAX_DESTINATIONS);
    let err = settings::add_destination(&t.db, &rules, actor, acme, syslog("one-more.example.com", 6514), &ctx())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 10 SIEM destinations"), "{err}");
    assert_eq!(events(&t.db, acme, "siem.destination_created").await.len(), settings::MAX_DESTINATIONS + 1);
    settings::add_destination(&t.db, &rules, theirs, globex, syslog("logs.example.com", 6514), &ctx()).await.unwrap();

    // The tokens are nowhere in the record.
    for e in audit::recent(&t.db, acme, None, 100).await.unwrap() {
        let text = format!("{} {:?}", e.metadata.0, e.target);
        assert!(!text.contains("TOKEN"), "{text}");
    }
});

db_test!(visibly_non_public_destinations_are_refused_unless_the_operator_allows_them, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let actor = Actor::User(owner_of(&t.db, acme, "owner@acme.example").await.id);
    let public_only = SiemConfig::default();
    let refused = [
        syslog("127.0.0.1", 514),
        syslog("127.1", 514),
        syslog("10.20.30.40", 514),
        syslog("::1", 514),
        syslog("localhost", 514),
        https("https://169.254.169.254/latest/meta-data"),
        https("https://[fd00::1]:8443/in"),
    ];
    for new in refused {
        let shown = format!("{:?}", new.endpoint);
        let err = settings::add_destination(&t.db, &public_only, actor, acme, new, &ctx()).await.unwrap_err();
        let DbError::Invalid(message) = &err else { panic!("{shown}: {err}") };
        assert!(message.contains("non-public address"), "{shown}: {message}");
        for part in ["127.", "10.20", "169.254", "fd00", "::1", "localhost"] {
            assert!(!message.contains(part), "the refusal names no address: {message}");
        }
    }
    assert!(siem::list(&t.db, acme).await.unwrap().is_empty());
    assert!(events(&t.db, acme, "siem.destination_created").await.is_empty());

    // The core's own checks still apply through the wrapper, and record nothing either.
    let err = settings::add_destination(&t.db, &public_only, actor, acme, https("http://siem.example.com/"), &ctx())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");
    assert!(events(&t.db, acme, "siem.destination_created").await.is_empty());

    let tcp_with_ca = NewDestination {
        kind: Kind::SyslogTcp,
        ca_pem: Some("-----BEGIN CERTIFICATE-----".into()),
        ..syslog("logs.example.com", 514)
    };
    let err = settings::add_destination(&t.db, &public_only, actor, acme, tcp_with_ca, &ctx()).await.unwrap_err();
    assert!(err.to_string().contains("plain TCP does not use certificates"), "{err}");
    assert!(events(&t.db, acme, "siem.destination_created").await.is_empty());

    // A self-hosted operator may allow private destinations.
    let allow = SiemConfig { allow_private_destinations: true };
    let d = settings::add_destination(&t.db, &allow, actor, acme, syslog("127.0.0.1", 6514), &ctx()).await.unwrap();
    assert_eq!(settings::endpoint_display(&d), "127.0.0.1:6514");
    assert_eq!(events(&t.db, acme, "siem.destination_created").await.len(), 1);
});
