//! Billing in the core: plans become enforced limits, and verified Stripe events change a client's plan
//! exactly once and in order - payment failure, grace period, agents stopped, recovery, cancellation.

use chrono::{Duration, Utc};
use deployclaw::audit::settings;
use deployclaw::audit::siem::{Endpoint, Kind, NewDestination, StartAt};
use deployclaw::audit::{self, Actor};
use deployclaw::billing::signature::{self, SignatureError};
use deployclaw::billing::{SubscriptionStatus, WebhookError, WebhookOutcome};
use deployclaw::config::{Config, ConfigFile};
use deployclaw::context::RequestContext;
use deployclaw::db::agents::{self as agent_rows, AgentName, AgentStatus};
use deployclaw::db::users::{self, Role};
use deployclaw::db::{ClientId, DbError};
use deployclaw::Platform;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::support::{db_test, new_client, test_keyring, TestDb};

pub struct Billed {
    pub platform: Platform,
    pub secret: String,
    pub outbox: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A platform on `t`'s database with billing on: a generated test key and signing secret, and a Stripe API
/// base nobody listens on (these tests never call Stripe).
pub fn billed(t: &TestDb) -> Billed {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(ConfigFile::None).unwrap();
    config.data_dir = dir.path().to_path_buf();
    let outbox = dir.path().join("outbox");
    config.mail.transport = deployclaw::mail::MailTransport::Outbox { dir: outbox.clone() };
    let secret = format!("whsec_test_{}", uuid::Uuid::now_v7().simple());
    let key = format!("sk_test_{}", uuid::Uuid::now_v7().simple());
    config.billing.enable(
        SecretString::from(key),
        vec![SecretString::from(secret.clone())],
        "http://127.0.0.1:9".parse().unwrap(),
    );
    let platform = Platform::from_parts(config, t.db.clone(), test_keyring(&[1])).unwrap();
    Billed { platform, secret, outbox, _dir: dir }
}

fn ctx() -> RequestContext {
    RequestContext { ip: "203.0.113.7".parse().unwrap(), user_agent: Some("billing-test".into()) }
}

fn event(id: &str, kind: &str, created: i64, object: Value) -> Vec<u8> {
    json!({ "id": id, "object": "event", "type": kind, "created": created, "data": { "object": object } })
        .to_string()
        .into_bytes()
}

fn subscription(client: ClientId, status: &str, price: &str) -> Value {
    json!({ "id": "sub_test_1", "object": "subscription", "customer": "cus_test_1", "status": status,
            "metadata": { "deployclaw_client_id": client.to_string() },
            "items": { "data": [{ "price": { "id": price }, "current_period_end": 1_900_000_000 }] } })
}

impl Billed {
    async fn deliver(&self, body: &[u8]) -> Result<WebhookOutcome, WebhookError> {
        let now = Utc::now();
        let header = signature::header_for(&self.secret, now.timestamp(), body);
        self.platform.billing().handle_webhook(Some(&header), body, now).await
    }

    async fn plan(&self, client: ClientId) -> String {
        self.platform.billing().plan_limits(client).await.unwrap().plan
    }

    async fn actions(&self, client: ClientId, action: &str) -> Vec<audit::AuditEvent> {
        let mut all = self.platform.audit().recent(client, None, 500).await.unwrap();
        all.retain(|e| e.action_type == action);
        all
    }

    async fn agent(&self, client: ClientId, owner: Actor, name: &str) -> Result<agent_rows::Agent, DbError> {
        self.platform.agents().configure(owner, client, AgentName::parse(name).unwrap(), "openclaw", &ctx()).await
    }
}

async fn owner(t: &TestDb, client: ClientId) -> Actor {
    let email = deployclaw::email::EmailAddress::parse(&format!("owner-{}@acme.example", client.short())).unwrap();
    Actor::User(users::create(&t.db, client, &email, Role::Owner).await.unwrap().id)
}

db_test!(without_billing_every_client_has_the_self_hosted_limits, |t| {
    let platform =
        Platform::from_parts(Config::load(ConfigFile::None).unwrap(), t.db.clone(), test_keyring(&[1])).unwrap();
    let client = new_client(&t.db, "acme").await.id;
    let limits = platform.billing().plan_limits(client).await.unwrap();
    assert_eq!(limits.plan, "self_hosted");
    assert!(limits.siem_export && limits.daily_token_cap_micro_usd > 0);
    assert!(!platform.billing().enabled());
    let err = platform.billing().handle_webhook(Some("t=1,v1=00"), b"{}", Utc::now()).await.unwrap_err();
    assert!(matches!(err, WebhookError::NotConfigured), "{err:?}");
    assert!(matches!(
        deployclaw::plans::limits_of(&t.db, platform.billing().catalog(), ClientId::new()).await,
        Err(DbError::NotFound)
    ));
});

db_test!(agent_count_memory_cpu_retention_and_siem_follow_the_plan, |t| {
    let b = billed(&t);
    let client = new_client(&t.db, "acme").await.id;
    let owner = owner(&t, client).await;
    let limits = b.platform.billing().plan_limits(client).await.unwrap();
    assert_eq!((limits.plan.as_str(), limits.max_agents, limits.memory_mib_per_agent), ("trial", 1, 1024));

    // Agent count: the trial has one.
    let first = b.agent(client, owner, "first").await.unwrap();
    let err = b.agent(client, owner, "second").await.unwrap_err();
    assert!(matches!(&err, DbError::Invalid(m) if m.contains("the Trial plan allows 1 agent")), "{err}");
    assert_eq!(b.platform.agents().list(client).await.unwrap().len(), 1, "nothing was created");

    // Memory and CPU per agent: refused above the plan, naming its limit; nothing stored.
    let agents = b.platform.agents();
    let template = deployclaw::runtime::hardening::template("openclaw").unwrap();
    let big = deployclaw::agents::AgentSettings::parse_form(&template, "2048", "", "").unwrap();
    let err = agents.update_settings(owner, client, first.id, big.clone(), &ctx()).await.unwrap_err();
    assert!(err.to_string().contains("more than the Trial plan allows per agent (1024 MiB)"), "{err}");
    let fast = deployclaw::agents::AgentSettings::parse_form(&template, "", "2000", "").unwrap();
    let err = agents.update_settings(owner, client, first.id, fast, &ctx()).await.unwrap_err();
    assert!(err.to_string().contains("the Trial plan allows per agent (1000)"), "{err}");
    assert_eq!(agents.get(client, first.id).await.unwrap().config.0, json!({}));

    // Retention: the trial keeps 30 days at most.
    let policy = b.platform.retention_policy().clone();
    assert_eq!(settings::retention(&t.db, &policy, client).await.unwrap().max_days, 30);
    let err = settings::change_retention(&t.db, &policy, owner, client, Some(90), &ctx()).await.unwrap_err();
    assert!(err.to_string().contains("between 1 and 30 days"), "{err}");

    // SIEM export: not on the trial.
    let destination = || NewDestination {
        name: "siem".into(),
        kind: Kind::HttpsJson,
        endpoint: Endpoint::Url("https://siem.example/ingest".parse().unwrap()),
        ca_pem: None,
        start: StartAt::Now,
    };
    let rules = deployclaw::config::SiemConfig::default();
    let err =
        b.platform.billing().add_siem_destination(&rules, owner, client, destination(), &ctx()).await.unwrap_err();
    assert!(err.to_string().contains("the Trial plan does not include SIEM export"), "{err}");

    // A Team subscription lifts every limit at once.
    let body = event(
        "evt_team",
        "customer.subscription.created",
        1_800_000_000,
        subscription(client, "active", "price_deployclaw_team"),
    );
    b.deliver(&body).await.unwrap();
    assert_eq!(b.plan(client).await, "team");
    b.agent(client, owner, "second").await.unwrap();
    agents.update_settings(owner, client, first.id, big, &ctx()).await.unwrap();
    settings::change_retention(&t.db, &policy, owner, client, Some(365), &ctx()).await.unwrap();
    b.platform.billing().add_siem_destination(&rules, owner, client, destination(), &ctx()).await.unwrap();
});

db_test!(deploying_beyond_the_running_agents_of_the_plan_is_refused, |t| {
    let b = billed(&t);
    let client = new_client(&t.db, "acme").await.id;
    let owner = owner(&t, client).await;
    let body = event(
        "evt_s",
        "customer.subscription.created",
        1_800_000_000,
        subscription(client, "active", "price_deployclaw_starter"),
    );
    b.deliver(&body).await.unwrap();
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(b.agent(client, owner, name).await.unwrap().id);
    }
    for id in &ids[..3] {
        agent_rows::set_status(&t.db, client, *id, AgentStatus::Running).await.unwrap();
    }
    // Cancelled: back to the trial - the agents beyond its one are stopped, the oldest keeps running.
    let body = event(
        "evt_c",
        "customer.subscription.deleted",
        1_800_000_100,
        subscription(client, "canceled", "price_deployclaw_starter"),
    );
    b.deliver(&body).await.unwrap();
    assert_eq!(b.plan(client).await, "trial");
    let statuses: Vec<AgentStatus> = b.platform.agents().list(client).await.unwrap().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [AgentStatus::Running, AgentStatus::Stopped, AgentStatus::Stopped]);
    assert_eq!(b.platform.agents().list(client).await.unwrap().len(), 3, "stopped, never deleted");
    assert_eq!(b.actions(client, "billing.downgraded").await.len(), 1);
    // Deploying a stopped one now is refused before anything runs.
    let err = b.platform.agents().deploy(owner, client, ids[1], &ctx()).await.unwrap_err();
    assert!(err.to_string().contains("the Trial plan allows 1 running agent(s) and you already run 1"), "{err}");
    assert_eq!(b.platform.agents().get(client, ids[1]).await.unwrap().status, AgentStatus::Stopped);
    // A stop that did not happen (say the runtime was down) is retried by the enforcement pass.
    agent_rows::set_status(&t.db, client, ids[2], AgentStatus::Running).await.unwrap();
    b.platform.billing().enforce_downgraded().await.unwrap();
    assert_eq!(b.platform.agents().get(client, ids[2]).await.unwrap().status, AgentStatus::Stopped);
    assert_eq!(b.platform.agents().get(client, ids[0]).await.unwrap().status, AgentStatus::Running);
});

db_test!(events_apply_once_in_order_and_a_failed_payment_ends_in_stopped_agents, |t| {
    let b = billed(&t);
    let client = new_client(&t.db, "acme").await.id;
    let owner = owner(&t, client).await;
    let billing = b.platform.billing();

    // Checkout links the customer; the subscription names the plan.
    let checkout = json!({ "id": "cs_test_1", "object": "checkout.session", "client_reference_id": client.to_string(),
                            "customer": "cus_test_1", "subscription": "sub_test_1", "mode": "subscription" });
    b.deliver(&event("evt_1", "checkout.session.completed", 1_800_000_000, checkout)).await.unwrap();
    let created = event(
        "evt_2",
        "customer.subscription.created",
        1_800_000_001,
        subscription(client, "active", "price_deployclaw_team"),
    );
    assert!(matches!(b.deliver(&created).await.unwrap(), WebhookOutcome::Processed { .. }));
    assert_eq!(b.plan(client).await, "team");

    // The same event again: acknowledged, nothing changes, nothing recorded twice.
    assert_eq!(b.deliver(&created).await.unwrap(), WebhookOutcome::Duplicate);
    assert_eq!(b.actions(client, "billing.plan_changed").await.len(), 1);

    // An older state delivered late does not undo a newer one.
    let stale = event(
        "evt_0",
        "customer.subscription.updated",
        1_799_999_000,
        subscription(client, "canceled", "price_deployclaw_team"),
    );
    b.deliver(&stale).await.unwrap();
    assert_eq!(b.plan(client).await, "team");

    // Unknown types are acknowledged and ignored.
    let other = event("evt_x", "charge.refunded", 1_800_000_002, json!({ "id": "ch_1" }));
    assert!(matches!(b.deliver(&other).await.unwrap(), WebhookOutcome::Processed { .. }));

    let mut running = Vec::new();
    for name in ["a", "b"] {
        let a = b.agent(client, owner, name).await.unwrap();
        agent_rows::set_status(&t.db, client, a.id, AgentStatus::Running).await.unwrap();
        running.push(a.id);
    }

    // Payment fails: a grace period, an email to the owner, agents keep running.
    let failed = json!({ "id": "in_1", "object": "invoice", "customer": "cus_test_1", "subscription": "sub_test_1" });
    b.deliver(&event("evt_3", "invoice.payment_failed", 1_800_000_003, failed.clone())).await.unwrap();
    let sub = deployclaw::billing::store::get(&t.db, client).await.unwrap().unwrap();
    let grace = sub.grace_until.expect("grace period started");
    assert!(grace > Utc::now() + Duration::days(6) && grace < Utc::now() + Duration::days(8), "{grace}");
    assert_eq!(b.actions(client, "billing.payment_failed").await.len(), 1);
    assert_eq!(std::fs::read_dir(&b.outbox).unwrap().count(), 1, "the owner was emailed");
    assert_eq!(billing.expire_grace_periods(Utc::now()).await.unwrap(), 0, "still in grace");
    assert_eq!(b.plan(client).await, "team");

    // The grace period ends: every agent is stopped (not deleted), the trial limits apply.
    assert_eq!(billing.expire_grace_periods(grace + Duration::seconds(1)).await.unwrap(), 1);
    assert_eq!(billing.expire_grace_periods(grace + Duration::seconds(2)).await.unwrap(), 0, "only once");
    assert_eq!(b.plan(client).await, "trial");
    for id in &running {
        let a = b.platform.agents().get(client, *id).await.unwrap();
        assert_eq!(a.status, AgentStatus::Stopped);
        assert!(a.status_reason.unwrap().contains("payment overdue"));
    }
    assert_eq!(b.actions(client, "billing.suspended").await.len(), 1);
    assert_eq!(b.actions(client, "agent.stopped").await.len(), 2);
    assert_eq!(std::fs::read_dir(&b.outbox).unwrap().count(), 2);

    // A payment succeeds: the plan is back (agents wait for their owner to start them).
    let paid = json!({ "id": "in_1", "object": "invoice", "customer": "cus_test_1" });
    b.deliver(&event("evt_4", "invoice.paid", 1_800_000_004, paid)).await.unwrap();
    assert_eq!(b.plan(client).await, "team");
    assert_eq!(b.actions(client, "billing.payment_recovered").await.len(), 1);
    // The earlier failure delivered again late changes nothing.
    b.deliver(&event("evt_3b", "invoice.payment_failed", 1_800_000_003, failed)).await.unwrap();
    assert!(deployclaw::billing::store::get(&t.db, client).await.unwrap().unwrap().grace_until.is_none());

    // Cancellation: the trial, recorded.
    let deleted = event(
        "evt_5",
        "customer.subscription.deleted",
        1_800_000_005,
        subscription(client, "active", "price_deployclaw_team"),
    );
    b.deliver(&deleted).await.unwrap();
    let sub = deployclaw::billing::store::get(&t.db, client).await.unwrap().unwrap();
    assert_eq!((sub.status, b.plan(client).await.as_str()), (SubscriptionStatus::Canceled, "trial"));
});

db_test!(concurrent_deliveries_of_one_event_take_effect_once, |t| {
    let b = billed(&t);
    let client = new_client(&t.db, "acme").await.id;
    let body = event(
        "evt_once",
        "customer.subscription.created",
        1_800_000_000,
        subscription(client, "active", "price_deployclaw_team"),
    );
    let deliveries = (0..6).map(|_| b.deliver(&body));
    let outcomes = futures_util::future::join_all(deliveries).await;
    let processed = outcomes.iter().filter(|o| matches!(o, Ok(WebhookOutcome::Processed { .. }))).count();
    let duplicates = outcomes.iter().filter(|o| matches!(o, Ok(WebhookOutcome::Duplicate))).count();
    assert_eq!((processed, duplicates), (1, 5), "{outcomes:?}");
    assert_eq!(b.actions(client, "billing.subscription_synced").await.len(), 1);
});

db_test!(bad_signatures_and_bodies_change_nothing, |t| {
    let b = billed(&t);
    let client = new_client(&t.db, "acme").await.id;
    let body = event(
        "evt_sig",
        "customer.subscription.created",
        1_800_000_000,
        subscription(client, "active", "price_deployclaw_team"),
    );
    let now = Utc::now();
    let billing = b.platform.billing();
    let wrong = signature::header_for(&format!("whsec_test_{}", uuid::Uuid::now_v7().simple()), now.timestamp(), &body);
    let stale = signature::header_for(&b.secret, now.timestamp() - 3600, &body);
    for (header, expected) in [
        (Some(wrong.as_str()), SignatureError::NoMatch),
        (Some(stale.as_str()), SignatureError::OutsideTolerance),
        (Some("t=,v1=zz"), SignatureError::Malformed),
        (None, SignatureError::Missing),
    ] {
        let err = billing.handle_webhook(header, &body, now).await.unwrap_err();
        assert!(matches!(err, WebhookError::Signature(e) if e == expected), "{header:?}");
    }
    let junk = b"{\"id\":\"evt_1\"";
    let header = signature::header_for(&b.secret, now.timestamp(), junk);
    assert!(matches!(billing.handle_webhook(Some(&header), junk, now).await, Err(WebhookError::Event(_))));
    assert_eq!(b.plan(client).await, "trial");
    assert!(!deployclaw::billing::store::seen(&t.db, "evt_sig").await.unwrap());
});
