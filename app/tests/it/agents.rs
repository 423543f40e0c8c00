//! Deploying a real (test) agent from the dashboard's server functions, against real Podman.

use deployclaw::db::users::Role;
use deployclaw::runtime::hardening;

use crate::support::{eventually, TestApp};

#[tokio::test]
async fn deploy_reaches_healthy_then_stop_and_delete_clean_up_everything() {
    let app = TestApp::spawn().await;
    let runtime = app.platform.agents().runtime().cloned().expect("a container runtime (run ./scripts/test)");
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let b = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let res = app.call("create_agent", Some(&b.cookie), &[("name", "probe"), ("template", "test-agent")]).await;
    let agent: serde_json::Value = res.json().await.unwrap();
    let id = agent["id"].as_str().unwrap().to_string();
    let res = app
        .call(
            "set_credential",
            Some(&b.cookie),
            &[("agent_id", &id), ("name", "slack_token"), ("value", "xoxb-injected-NOTREAL")],
        )
        .await;
    assert_eq!(res.status(), 200);

    let res = app.call("deploy_agent", Some(&b.cookie), &[("agent_id", &id)]).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // The list asks a starting agent for its health: poll it until it says running (deploy to healthy is
    // timed in `benches/deploy.rs`, not here).
    eventually("the agent is running", async || {
        let rows: Vec<serde_json::Value> = app.call("list_agents", Some(&b.cookie), &[]).await.json().await.unwrap();
        let row = rows.into_iter().find(|r| r["id"] == id.as_str()).unwrap();
        assert_ne!(row["status"], "error", "{row}");
        row["status"] == "running"
    })
    .await;

    let agent_id: deployclaw::db::AgentId = id.parse().unwrap();
    let names = hardening::names(owner.client_id, agent_id);
    let status = runtime.inspect_container(&names.container).await.unwrap().expect("container exists");
    assert!(status.running);
    let events = deployclaw::audit::recent(app.platform.db_for_tests(), owner.client_id, None, 100).await.unwrap();
    let injected = events.iter().find(|e| e.action_type == "credential.decrypted").expect("decryption audited");
    assert_eq!(injected.metadata.0["purpose"], "inject_into_agent");
    assert!(events.iter().any(|e| e.action_type == "agent.healthy"));

    // The agent page: its log lines, and resource samples once the reconciler has taken some.
    let reconciler = deployclaw::agents::reconciler::Reconciler::new(app.platform.agents().clone(), Default::default());
    reconciler.pass().await.unwrap();
    let page: serde_json::Value =
        app.call("agent_detail", Some(&b.cookie), &[("agent_id", &id)]).await.json().await.unwrap();
    assert_eq!(page["agent"]["status"], "running");
    let logs = page["logs"].as_array().unwrap();
    assert!(logs.iter().any(|l| l.as_str().unwrap().contains("listening")), "{logs:?}");
    let metrics = page["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 1, "{page}");
    assert!(metrics[0]["memory_mib"].as_f64().unwrap() > 0.0);
    let html = app.get_as(&format!("/dashboard/agents/{id}"), &b.cookie).await.text().await.unwrap();
    assert!(html.contains("Resources (last 10 minutes)") && html.contains("Recent log lines"));

    let res = app.call("stop_agent", Some(&b.cookie), &[("agent_id", &id)]).await;
    assert_eq!(res.status(), 200);
    let row: serde_json::Value = res.json().await.unwrap();
    assert_eq!(row["status"], "stopped");
    assert!(!runtime.inspect_container(&names.container).await.unwrap().unwrap().running);

    let res = app.call("delete_agent", Some(&b.cookie), &[("agent_id", &id)]).await;
    assert_eq!(res.status(), 200);
    assert!(runtime.inspect_container(&names.container).await.unwrap().is_none(), "container removed");
    assert!(runtime.list_containers("deployclaw.agent", &id).await.unwrap().is_empty());
    let rows: Vec<serde_json::Value> = app.call("list_agents", Some(&b.cookie), &[]).await.json().await.unwrap();
    assert!(rows.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn settings_are_validated_stored_and_shown_back_without_secrets() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let b = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let res = app.call("create_agent", Some(&b.cookie), &[("name", "tuned"), ("template", "openclaw")]).await;
    let agent: serde_json::Value = res.json().await.unwrap();
    let id = agent["id"].as_str().unwrap().to_string();
    let save = |memory: &'static str, env: String| {
        let (app, cookie, id) = (&app, b.cookie.clone(), id.clone());
        async move {
            app.call(
                "update_agent_settings",
                Some(&cookie),
                &[("agent_id", &id), ("memory_mib", memory), ("cpu_millis", ""), ("environment", &env)],
            )
            .await
        }
    };
    // Refused, with a reason the customer can act on, and nothing stored. The key is made up here, obviously fake.
    let fake = format!("NOTREAL{}", uuid::Uuid::now_v7().simple());
    for (memory, env, expected) in [
        ("256", String::new(), "between 1024 and 8192 MiB"),
        ("", "HTTPS_PROXY=http://elsewhere:8080".to_string(), "set by DeployClaw"),
        ("", format!("SLACK_API_KEY=xoxb-{fake}"), "store it as a credential"),
        ("", format!("OPENAI_API_KEY=sk-proj-{fake}"), "set by DeployClaw"),
    ] {
        let res = save(memory, env).await;
        assert_eq!(res.status(), 400);
        let body = res.text().await.unwrap();
        assert!(body.contains(expected), "{body}");
        assert!(!body.contains(&fake), "the refused secret is not echoed: {body}");
    }
    let res = save("2048", "LOG_LEVEL=debug\nGREETING=hello".to_string()).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let page: serde_json::Value =
        app.call("agent_detail", Some(&b.cookie), &[("agent_id", &id)]).await.json().await.unwrap();
    assert_eq!(page["settings"]["memory_mib"], "2048");
    assert_eq!(page["settings"]["environment"], "GREETING=hello\nLOG_LEVEL=debug\n");
    assert_eq!(page["settings"]["default_memory_mib"], 1024);
    assert_eq!(page["agent"]["status"], "stopped", "a configured agent is not started by saving settings");
}

#[tokio::test]
async fn permissions_are_validated_stored_and_shown_back() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let b = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let res = app.call("create_agent", Some(&b.cookie), &[("name", "gated"), ("template", "test-agent")]).await;
    let agent: serde_json::Value = res.json().await.unwrap();
    let id = agent["id"].as_str().unwrap().to_string();
    // A new agent may do nothing.
    let page: serde_json::Value =
        app.call("agent_detail", Some(&b.cookie), &[("agent_id", &id)]).await.json().await.unwrap();
    assert_eq!(page["permissions"]["scopes"], "");
    assert_eq!(page["permissions"]["allowed_domains"], "");
    assert_eq!(page["permissions"]["max_daily_token_spend_usd"], "0.00");

    let save = |scopes: &'static str, limits: &'static str, domains: &'static str, spend: &'static str| {
        let (app, cookie, id) = (&app, b.cookie.clone(), id.clone());
        async move {
            app.call(
                "update_agent_permissions",
                Some(&cookie),
                &[
                    ("agent_id", &id),
                    ("scopes", scopes),
                    ("rate_limits", limits),
                    ("allowed_domains", domains),
                    ("max_daily_token_spend_usd", spend),
                ],
            )
            .await
        }
    };
    for (scopes, limits, domains, spend, expected) in [
        ("api:outbound", "", "10.0.0.1", "1", "is an IP address"),
        ("api:outbound", "", "*.com", "1", "allowed domains"),
        ("api:outbound", "", "*", "1", "would allow everything"),
        ("api:outbound", "", "example.com:443", "1", "no scheme, port, path"),
        ("root", "", "", "1", "unknown scope"),
        ("api:outbound", "api:outbound 100 10", "", "1", "max per day must be at least max per hour"),
        ("api:outbound", "", "", "lots", "max daily token spend"),
    ] {
        let res = save(scopes, limits, domains, spend).await;
        assert_eq!(res.status(), 400, "{domains} {scopes} {limits} {spend}");
        let body = res.text().await.unwrap();
        assert!(body.contains(expected), "{body}");
    }
    let res =
        save("api:outbound", "api:outbound 100 1000", "API.OpenAI.com.\n*.Example.org\nbücher.example", "12.5").await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let page: serde_json::Value =
        app.call("agent_detail", Some(&b.cookie), &[("agent_id", &id)]).await.json().await.unwrap();
    let p = &page["permissions"];
    assert_eq!(p["scopes"], "api:outbound\n");
    assert_eq!(p["rate_limits"], "api:outbound 100 1000\n");
    assert_eq!(p["allowed_domains"], "api.openai.com\nxn--bcher-kva.example\n*.example.org\n");
    assert_eq!(p["max_daily_token_spend_usd"], "12.50");
    let events = deployclaw::audit::recent(app.platform.db_for_tests(), owner.client_id, None, 100).await.unwrap();
    let updated = events.iter().find(|e| e.action_type == "agent.permissions_updated").expect("audited");
    assert_eq!(updated.metadata.0["changed"]["scopes_added"], serde_json::json!(["api:outbound"]));
    assert_eq!(
        events.iter().filter(|e| e.action_type == "agent.permissions_updated").count(),
        1,
        "refusals store nothing"
    );
    let html = app.get_as(&format!("/dashboard/agents/{id}"), &b.cookie).await.text().await.unwrap();
    assert!(html.contains("Permissions") && html.contains("xn--bcher-kva.example"), "the page shows them back");

    // Today's model spend against the cap, as the LLM gateway recorded it.
    assert_eq!(page["spend"]["spent_usd"], "0.00");
    assert_eq!(page["spend"]["cap_usd"], "12.50");
    let agent_id: deployclaw::db::AgentId = id.parse().unwrap();
    let usage = deployclaw::gateway::pricing::Usage { input_tokens: 1000, output_tokens: 500 };
    let day = deployclaw::gateway::llm::spend::today();
    deployclaw::gateway::llm::spend::add(app.platform.db_for_tests(), owner.client_id, agent_id, day, 3_125_000, usage)
        .await
        .unwrap();
    let page: serde_json::Value =
        app.call("agent_detail", Some(&b.cookie), &[("agent_id", &id)]).await.json().await.unwrap();
    assert_eq!(page["spend"]["spent_usd"], "3.125");
    assert_eq!(page["spend"]["percent"], 25);
    assert_eq!((page["spend"]["calls"].as_u64(), page["spend"]["output_tokens"].as_u64()), (Some(1), Some(500)));
    let html = app.get_as(&format!("/dashboard/agents/{id}"), &b.cookie).await.text().await.unwrap();
    assert!(html.contains("Model calls today (UTC)") && html.contains("3.125 of 12.50 USD"), "the spend card");
    app.stop().await;
}

#[tokio::test]
async fn the_deploy_form_offers_the_installations_templates() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let b = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let list: Vec<serde_json::Value> = app.call("list_templates", Some(&b.cookie), &[]).await.json().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["openclaw", "test-agent"]);
    assert_eq!(list[0]["memory_mib"], 1024, "OpenClaw needs about 1 GiB");
    assert_eq!(app.call("list_templates", None, &[]).await.status(), 401, "signed-in users only");
    let html = app.get_as("/dashboard/agents", &b.cookie).await.text().await.unwrap();
    assert!(html.contains(r#"value="test-agent""#) && html.contains("OpenClaw gateway (1024 MiB)"), "the select");
    app.stop().await;
}
