//! Billing over HTTP: the Stripe webhook on the real router (signatures made here with generated test
//! secrets), and the whole journey against the local Stripe stand-in - checkout, webhook, plan active, limits
//! applied to real (test) agents on Podman, payment failed, grace, agents stopped, paid, cancelled, downgraded.

use deployclaw::billing::signature::header_for;
use deployclaw::db::users::Role;
use deployclaw::db::ClientId;
use deployclaw::runtime::hardening;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::stripe_stand_in::StripeStandIn;
use crate::support::TestApp;

const WEBHOOK: &str = "/api/billing/webhook";

fn test_secret() -> String {
    format!("whsec_test_{}", uuid::Uuid::now_v7().simple())
}

/// An app with billing on: the stand-in's key and API base, and these webhook secrets.
async fn billed_app(stand_in: &StripeStandIn, secrets: Vec<String>) -> TestApp {
    let (key, base) = (stand_in.key.clone(), stand_in.base.parse().unwrap());
    let app = TestApp::spawn_with(
        move |c| c.billing.enable(SecretString::from(key), secrets.into_iter().map(SecretString::from).collect(), base),
        true,
    )
    .await;
    stand_in.deliver_to(app.url(WEBHOOK));
    app
}

async fn post_webhook(app: &TestApp, header: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut req = app.client.post(app.url(WEBHOOK)).header("content-type", "application/json").body(body);
    if let Some(h) = header {
        req = req.header("stripe-signature", h);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn subscription_event(id: &str, client: ClientId, created: i64) -> Vec<u8> {
    json!({ "id": id, "type": "customer.subscription.created", "created": created, "data": { "object": {
        "id": "sub_test_x", "customer": "cus_test_x", "status": "active",
        "metadata": { "deployclaw_client_id": client.to_string() },
        "items": { "data": [{ "price": { "id": "price_deployclaw_team" } }] } } } })
    .to_string()
    .into_bytes()
}

async fn plan_of(app: &TestApp, client: ClientId) -> String {
    app.platform.billing().plan_limits(client).await.unwrap().plan
}

async fn count(app: &TestApp, client: ClientId, action: &str) -> usize {
    let all = deployclaw::audit::recent(app.platform.db_for_tests(), client, None, 500).await.unwrap();
    all.iter().filter(|e| e.action_type == action).count()
}

#[tokio::test]
async fn webhook_signatures_bodies_and_replays_are_checked() {
    let stand_in = StripeStandIn::start().await;
    let (old, new) = (test_secret(), test_secret());
    let app = billed_app(&stand_in, vec![old.clone(), new.clone()]).await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let client = owner.client_id;
    // Headers the server must accept are signed at the moment they are sent; the refused timestamps lie an hour
    // outside the 5-minute window, so no load on the machine moves them in or out of it. (The exact boundary
    // is a unit test of `signature.rs`, on an injected clock.)
    let now = || chrono::Utc::now().timestamp();

    let refused = [
        ("wrong secret", Some(header_for(&test_secret(), now(), &subscription_event("evt_a", client, 1)))),
        ("stale timestamp", Some(header_for(&new, now() - 3600, &subscription_event("evt_a", client, 1)))),
        ("future timestamp", Some(header_for(&new, now() + 3600, &subscription_event("evt_a", client, 1)))),
        ("malformed header", Some("t=soon,v1=nothex".to_string())),
        ("no header", None),
    ];
    for (what, header) in refused {
        let (status, body) = post_webhook(&app, header.as_deref(), subscription_event("evt_a", client, 1)).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(!body.contains(&new) && !body.contains(&old), "{what}: a secret in the answer");
    }
    assert_eq!(plan_of(&app, client).await, "trial", "nothing applied");

    // A signed body that is not an event.
    let junk = b"{\"id\": 42}".to_vec();
    let (status, _) = post_webhook(&app, Some(&header_for(&new, now(), &junk)), junk).await;
    assert_eq!(status, 400);

    // Too big: 413 from the length alone.
    let huge = vec![b' '; deployclaw::billing::WEBHOOK_MAX_BODY_BYTES + 1];
    let (status, _) = post_webhook(&app, Some(&header_for(&new, now(), &huge)), huge).await;
    assert_eq!(status, 413);

    // Rotation: a header with an unknown signature and one under the new secret verifies; so does the old secret.
    let body = subscription_event("evt_rotated", client, 100);
    let unknown = header_for(&test_secret(), now(), &body);
    let good = header_for(&new, now(), &body);
    let both = format!("{unknown},{}", good.split_once(',').unwrap().1);
    let (status, text) = post_webhook(&app, Some(&both), body.clone()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(plan_of(&app, client).await, "team");
    assert_eq!(count(&app, client, "billing.subscription_synced").await, 1);
    // Replayed (same id, freshly signed): acknowledged, applied once.
    let (status, _) = post_webhook(&app, Some(&header_for(&old, now(), &body)), body).await;
    assert_eq!(status, 200);
    assert_eq!(count(&app, client, "billing.subscription_synced").await, 1, "a replay takes effect once");

    // Unknown types are acknowledged and ignored.
    let other =
        json!({ "id": "evt_other", "type": "payment_intent.created", "created": now(), "data": { "object": {} } })
            .to_string()
            .into_bytes();
    let (status, _) = post_webhook(&app, Some(&header_for(&new, now(), &other)), other).await;
    assert_eq!(status, 200);

    // The webhook needs no Origin and no session; every other state-changing request still does.
    let res = app.client.post(app.url("/api/fn/billing_overview")).send().await.unwrap();
    assert_eq!(res.status(), 403, "the CSRF guard still covers server functions");
    app.stop().await;
}

#[tokio::test]
async fn without_stripe_the_webhook_is_absent_and_the_page_says_so() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let b = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let (status, _) = post_webhook(&app, Some("t=1,v1=00"), b"{}".to_vec()).await;
    assert_eq!(status, 404);
    let view: Value = app.call("billing_overview", Some(&b.cookie), &[]).await.json().await.unwrap();
    assert_eq!((view["enabled"].clone(), view["current"]["id"].clone()), (json!(false), json!("self_hosted")));
    let res = app.call("start_checkout", Some(&b.cookie), &[("plan", "team")]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("not configured"));
    let page = app.get_as("/dashboard/billing", &b.cookie).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Billing is not configured"));
    app.stop().await;
}

async fn status_of(app: &TestApp, cookie: &str, id: &str) -> String {
    let rows: Vec<Value> = app.call("list_agents", Some(cookie), &[]).await.json().await.unwrap();
    rows.iter().find(|r| r["id"] == id).unwrap()["status"].as_str().unwrap().to_string()
}

async fn running_in_podman(app: &TestApp, client: ClientId, id: &str) -> bool {
    let runtime = app.platform.agents().runtime().cloned().expect("a container runtime (run ./scripts/test)");
    let names = hardening::names(client, id.parse().unwrap());
    runtime.inspect_container(&names.container).await.unwrap().is_some_and(|s| s.running)
}

#[tokio::test]
async fn checkout_webhook_limits_grace_stop_and_downgrade_against_the_stripe_stand_in() {
    let stand_in = StripeStandIn::start().await;
    let app = billed_app(&stand_in, vec![stand_in.webhook_secret.clone()]).await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let client = owner.client_id;
    let member = app.user(Some(client), "member@acme.example", Role::Member).await;
    let fresh = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let stale = app.sign_in_as(&owner, chrono::Duration::minutes(20)).await;
    let other = app.sign_in_as(&member, chrono::Duration::seconds(5)).await;

    let view: Value = app.call("billing_overview", Some(&fresh.cookie), &[]).await.json().await.unwrap();
    assert_eq!((view["enabled"].clone(), view["current"]["id"].clone()), (json!(true), json!("trial")));
    assert_eq!(view["plans"].as_array().unwrap().len(), 3);

    // Upgrading needs the owner, with a fresh second factor.
    assert_eq!(app.call("start_checkout", Some(&stale.cookie), &[("plan", "team")]).await.status(), 403);
    assert_eq!(app.call("start_checkout", Some(&other.cookie), &[("plan", "team")]).await.status(), 403);
    assert_eq!(app.call("start_checkout", Some(&fresh.cookie), &[("plan", "trial")]).await.status(), 400);
    assert!(stand_in.seen.lock().unwrap().requests.is_empty(), "nothing reached Stripe");

    let res = app.call("start_checkout", Some(&fresh.cookie), &[("plan", "team")]).await;
    assert_eq!(res.status(), 200);
    let checkout_url: String = res.json().await.unwrap();
    assert!(checkout_url.starts_with(&format!("{}/pay/cs_test_", stand_in.base)), "{checkout_url}");
    {
        let seen = stand_in.seen.lock().unwrap();
        assert_eq!(seen.unauthorized, 0);
        let (path, form) = &seen.requests[1];
        assert_eq!(path, "/v1/checkout/sessions");
        assert_eq!(form["client_reference_id"], client.to_string());
        assert_eq!(form["customer"], seen.requests[0].1.get("email").map(|_| "cus_test_1").unwrap());
        assert_eq!(form["line_items[0][price]"], "price_deployclaw_team");
        assert_eq!(form["mode"], "subscription");
    }
    assert_eq!(count(&app, client, "billing.checkout_started").await, 1);
    // A second checkout reuses the customer.
    app.call("start_checkout", Some(&fresh.cookie), &[("plan", "starter")]).await;
    assert_eq!(
        stand_in.seen.lock().unwrap().requests.iter().filter(|(p, _)| p == "/v1/customers").count(),
        1,
        "one Stripe customer per client"
    );

    // The customer pays on the hosted page; Stripe's events arrive; the browser comes back.
    let res = app.client.get(&checkout_url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(back, format!("{}billing/return?checkout=success", app.platform.config().server.public_url));
    // Back on our site without the (SameSite=Strict) cookie: a sessionless page moves on, same-origin.
    let public = app.platform.config().server.public_origin();
    let res = app.client.get(app.url(back.strip_prefix(&public).unwrap())).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("url=/dashboard/billing?checkout=success"));
    let view: Value = app.call("billing_overview", Some(&fresh.cookie), &[]).await.json().await.unwrap();
    assert_eq!((view["current"]["id"].clone(), view["status"].clone()), (json!("team"), json!("active")));
    assert!(view["current_period_end"].is_string());
    // A subscriber changes plans in the portal: a second Checkout (a second subscription) is refused.
    let res = app.call("start_checkout", Some(&fresh.cookie), &[("plan", "business")]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("under Manage billing"));

    // The plan's limits apply: two real agents deploy (the trial would allow one).
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let row: Value = app
            .call("create_agent", Some(&fresh.cookie), &[("name", name), ("template", "test-agent")])
            .await
            .json()
            .await
            .unwrap();
        let id = row["id"].as_str().unwrap().to_string();
        let res = app.call("deploy_agent", Some(&fresh.cookie), &[("agent_id", &id)]).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        ids.push(id);
    }
    for id in &ids {
        assert!(running_in_podman(&app, client, id).await);
    }

    // The payment fails: a grace period, shown on the page; agents keep running.
    stand_in.fail_payment().await;
    let view: Value = app.call("billing_overview", Some(&fresh.cookie), &[]).await.json().await.unwrap();
    assert_eq!((view["status"].clone(), view["current"]["id"].clone()), (json!("past_due"), json!("team")));
    let grace: chrono::DateTime<chrono::Utc> = view["grace_until"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.platform.billing().expire_grace_periods(chrono::Utc::now()).await.unwrap(), 0);
    assert!(running_in_podman(&app, client, &ids[0]).await);

    // The grace period ends (the server's enforcement pass, run here at a time past it): every agent stopped.
    assert_eq!(app.platform.billing().expire_grace_periods(grace + chrono::Duration::seconds(1)).await.unwrap(), 1);
    for id in &ids {
        assert_eq!(status_of(&app, &fresh.cookie, id).await, "stopped");
        assert!(!running_in_podman(&app, client, id).await, "container still running");
    }
    let view: Value = app.call("billing_overview", Some(&fresh.cookie), &[]).await.json().await.unwrap();
    assert_eq!((view["current"]["id"].clone(), view["subscribed_plan"].clone()), (json!("trial"), json!("team")));
    assert!(view["suspended_at"].is_string());
    assert_eq!(count(&app, client, "billing.suspended").await, 1);
    let outbox = app.platform.config().data_dir.join("outbox");
    let mails: Vec<String> =
        std::fs::read_dir(&outbox).unwrap().map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap()).collect();
    assert!(mails.iter().any(|m| m.contains("payment failed")), "failure email");
    assert!(mails.iter().any(|m| m.contains("agents were stopped")), "suspension email");
    // Suspended: the trial's one agent may run, not two.
    assert_eq!(app.call("deploy_agent", Some(&fresh.cookie), &[("agent_id", &ids[0])]).await.status(), 200);
    let res = app.call("deploy_agent", Some(&fresh.cookie), &[("agent_id", &ids[1])]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Trial plan allows 1 running agent"));

    // Paid: the team plan again; both run.
    stand_in.pay().await;
    assert_eq!(plan_of(&app, client).await, "team");
    assert_eq!(app.call("deploy_agent", Some(&fresh.cookie), &[("agent_id", &ids[1])]).await.status(), 200);

    // Manage billing: the portal, owner only.
    assert_eq!(app.call("open_billing_portal", Some(&other.cookie), &[]).await.status(), 403);
    let portal: String = app.call("open_billing_portal", Some(&fresh.cookie), &[]).await.json().await.unwrap();
    assert!(portal.starts_with(&format!("{}/portal/", stand_in.base)));

    // Cancelled: down to the trial; the newest agent is stopped, not deleted; the oldest keeps running.
    stand_in.cancel().await;
    let view: Value = app.call("billing_overview", Some(&fresh.cookie), &[]).await.json().await.unwrap();
    assert_eq!((view["current"]["id"].clone(), view["status"].clone()), (json!("trial"), json!("canceled")));
    assert!(running_in_podman(&app, client, &ids[0]).await);
    assert_eq!(status_of(&app, &fresh.cookie, &ids[1]).await, "stopped");
    assert!(!running_in_podman(&app, client, &ids[1]).await);
    assert_eq!(count(&app, client, "billing.downgraded").await, 1);

    for id in &ids {
        let res = app.call("delete_agent", Some(&fresh.cookie), &[("agent_id", id)]).await;
        assert_eq!(res.status(), 200);
    }
    app.stop().await;
}
