//! The operator console's rules against a real container runtime (SQLite): a suspension stops the client's
//! running agents and refuses deploys until lifted; a rebuild replaces a running agent's container from its
//! image; platform health reports the reconciler's last pass and its orphans. Both backends for the rest.
//!
//! Network safety: the only traffic is the platform's own health probes to the agent on a network it created
//! with an explicit subnet and gateway.

use std::sync::Arc;

use deployclaw::admin::{Admin, AdminError, Operator};
use deployclaw::agents::reconciler::{Policy, Reconciler};
use deployclaw::agents::Agents;
use deployclaw::audit::{self, Actor};
use deployclaw::db::agents::{AgentName, AgentStatus};
use deployclaw::db::clients::{self, ClientStatus};
use deployclaw::db::users::{self, Role};
use deployclaw::db::{ClientId, Db};
use deployclaw::email::EmailAddress;
use deployclaw::identity::session::store::DbSessionStore;
use deployclaw::identity::session::{SessionAuth, Stage};
use deployclaw::mail::{MailTransport, Mailer};
use deployclaw::runtime::hardening;
use deployclaw::runtime::subnets::Pool;
use deployclaw::vault::Vault;

use crate::gateway::ctx;
use crate::support::{db_test, eventually, new_client, test_keyring, TestDb, Which};

fn admin(db: &Db, agents: Agents, outbox: &std::path::Path) -> Admin {
    let mailer = Mailer::new("DeployClaw <ops@localhost>", &MailTransport::Outbox { dir: outbox.into() }).unwrap();
    Admin::new(db.clone(), agents, DbSessionStore::new(db.clone()), mailer)
}

/// An operator whose second factor passed `age` ago.
async fn operator(db: &Db, admin: &Admin, age: chrono::Duration) -> Operator {
    let email = EmailAddress::parse("ops@deployclaw.example").unwrap();
    let user = match users::find_for_sign_in(db, &email).await.unwrap() {
        Some(u) => u,
        None => deployclaw::identity::team::create_platform_admin(db, &email).await.unwrap(),
    };
    let now = deployclaw::db::now();
    let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: user.client_id, user_id: user.id }, &ctx(), now);
    auth.second_factor_passed(user.client_id, user.id, now - age);
    admin.operator(&auth, &ctx()).await.unwrap()
}

db_test!(only_platform_admins_are_operators_and_actions_need_a_fresh_factor, |t| {
    let dir = tempfile::tempdir().unwrap();
    let agents = Agents::new(crate::support::agents_parts(
        &t.db,
        Vault::new(t.db.clone(), test_keyring(&[1])),
        None,
        Pool::parse("10.219.0.0/24").unwrap(),
    ));
    let admin = admin(&t.db, agents.clone(), dir.path());
    let customer = new_client(&t.db, "Customerco").await;
    let owner =
        users::create(&t.db, customer.id, &EmailAddress::parse("owner@customerco.example").unwrap(), Role::Owner)
            .await
            .unwrap();
    let now = deployclaw::db::now();
    let mut auth = SessionAuth::begin(Stage::TwoFactor { client_id: customer.id, user_id: owner.id }, &ctx(), now);
    auth.second_factor_passed(customer.id, owner.id, now);
    assert!(matches!(admin.operator(&auth, &ctx()).await, Err(AdminError::NotOperator)), "an owner is not an operator");

    let stale = operator(&t.db, &admin, chrono::Duration::minutes(20)).await;
    assert_eq!(admin.clients(&stale).await.unwrap().iter().filter(|c| c.client.id == customer.id).count(), 1);
    assert!(matches!(admin.client(&stale, customer.id).await, Err(AdminError::StaleSecondFactor)));
    assert!(matches!(admin.suspend(&stale, customer.id, "a reason", &ctx()).await, Err(AdminError::StaleSecondFactor)));
    assert_eq!(clients::get(&t.db, customer.id).await.unwrap().status, ClientStatus::Active, "nothing happened");

    let op = operator(&t.db, &admin, chrono::Duration::seconds(5)).await;
    for bad in ["", "no", &"x".repeat(501), "two\nlines"] {
        assert!(matches!(admin.suspend(&op, customer.id, bad, &ctx()).await, Err(AdminError::Invalid(_))), "{bad:?}");
    }
    let suspended = admin.suspend(&op, customer.id, "Terms violation: crypto mining", &ctx()).await.unwrap();
    assert_eq!(
        (suspended.status, suspended.suspended_reason.as_deref()),
        (ClientStatus::Suspended, Some("Terms violation: crypto mining"))
    );
    let own = op.user().client_id;
    assert!(matches!(admin.suspend(&op, own, "ourselves", &ctx()).await, Err(AdminError::Invalid(_))));
    assert!(matches!(admin.suspend(&op, ClientId::new(), "nobody", &ctx()).await, Err(AdminError::NotFound)));
    admin.unsuspend(&op, customer.id, &ctx()).await.unwrap();
    assert!(
        matches!(admin.unsuspend(&op, customer.id, &ctx()).await, Err(AdminError::Invalid(_))),
        "not suspended now"
    );
    // Both operator actions are in the customer's own chain, by an operator, and the chain still verifies.
    let events = audit::recent(&t.db, customer.id, None, 50).await.unwrap();
    let ops: Vec<_> = events.iter().filter(|e| e.actor_kind == "admin").map(|e| e.action_type.as_str()).collect();
    assert_eq!(ops, ["admin.client_unsuspended", "admin.client_suspended"]);
    let report = deployclaw::audit::chain::verify(&t.db, &test_keyring(&[1]), Some(customer.id)).await.unwrap();
    assert!(report.is_intact() && report.events() >= 2, "{report:?}");
});

#[tokio::test]
async fn suspension_stops_running_agents_and_refuses_deploys_and_a_rebuild_replaces_the_container() {
    let t = TestDb::fresh(Which::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let runtime: Arc<dyn deployclaw::runtime::ContainerRuntime> =
        Arc::new(deployclaw::runtime::connect(None).await.expect("a container runtime (run ./scripts/test)"));
    let pool = Pool::parse(&format!("10.212.{}.0/24", std::process::id() % 256)).unwrap();
    let agents = Agents::new(crate::support::agents_parts(
        &t.db,
        Vault::new(t.db.clone(), test_keyring(&[1])),
        Some(runtime.clone()),
        pool,
    ));
    let admin = admin(&t.db, agents.clone(), dir.path());
    let op = operator(&t.db, &admin, chrono::Duration::seconds(5)).await;
    let client = new_client(&t.db, "Runningco").await.id;
    let agent = agents
        .configure(Actor::Platform, client, AgentName::parse("busy").unwrap(), "test-agent", &ctx())
        .await
        .unwrap();
    agents.deploy(Actor::Platform, client, agent.id, &ctx()).await.unwrap();
    let reconciler = Reconciler::new(agents.clone(), Policy::default());
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        eventually("healthy", async || {
            reconciler.pass().await.unwrap();
            agents.get(client, agent.id).await.unwrap().status == AgentStatus::Running
        })
        .await;
        let health = admin.health(&op).await;
        let check = |name: &str| health.checks.iter().find(|c| c.name == name).unwrap().clone();
        assert!(check("database").ok && check("container runtime").ok && check("reconciler").ok, "{health:?}");
        assert!(!check("egress gateway").ok, "no gateway attached in this test: {health:?}");

        // A rebuild: a new container from the image, the agent back to healthy.
        let name = hardening::names(client, agent.id).container;
        let before = runtime.inspect_container(&name).await.unwrap().unwrap().id;
        let rebuilt = admin.rebuild_agent(&op, client, agent.id, &ctx()).await.unwrap();
        assert_eq!(rebuilt.status, AgentStatus::Starting);
        let after = runtime.inspect_container(&name).await.unwrap().unwrap().id;
        assert_ne!(before, after, "a fresh container");
        eventually("healthy again", async || {
            reconciler.pass().await.unwrap();
            agents.get(client, agent.id).await.unwrap().status == AgentStatus::Running
        })
        .await;

        // A suspension stops it (not deletes), and nothing starts it again until it is lifted.
        admin.suspend(&op, client, "Abuse report under review", &ctx()).await.unwrap();
        let stopped = agents.get(client, agent.id).await.unwrap();
        assert_eq!(stopped.status, AgentStatus::Stopped);
        assert!(!runtime.inspect_container(&name).await.unwrap().unwrap().running, "stopped, still there");
        reconciler.pass().await.unwrap();
        assert_eq!(
            agents.get(client, agent.id).await.unwrap().status,
            AgentStatus::Stopped,
            "the reconciler leaves it"
        );
        let refused = agents.deploy(Actor::Platform, client, agent.id, &ctx()).await.unwrap_err();
        assert!(refused.to_string().contains("suspended"), "{refused}");
        assert!(matches!(admin.rebuild_agent(&op, client, agent.id, &ctx()).await, Err(AdminError::Invalid(_))));
        let events = audit::recent(&t.db, client, None, 50).await.unwrap();
        let suspended = events.iter().find(|e| e.action_type == "admin.client_suspended").unwrap();
        assert_eq!(suspended.metadata.0["agents_stopped"], serde_json::json!(["busy"]));
        assert!(events.iter().any(|e| e.action_type == "agent.rebuilt" && e.actor_kind == "admin"));
        assert!(events.iter().any(|e| e.action_type == "agent.stopped" && e.actor_kind == "admin"));
        admin.unsuspend(&op, client, &ctx()).await.unwrap();
        agents.deploy(Actor::Platform, client, agent.id, &ctx()).await.expect("startable again once lifted");
    }))
    .await;
    agents.remove(Actor::Platform, client, agent.id, &ctx()).await.unwrap();
    t.cleanup().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
