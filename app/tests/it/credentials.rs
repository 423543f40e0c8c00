//! Agents and their credentials over HTTP: values go in once and never come back out.

use deployclaw::db::users::Role;
use deployclaw::vault::{CredentialName, DecryptPurpose};
use secrecy::ExposeSecret;

use crate::support::TestApp;

#[tokio::test]
async fn credentials_are_listed_by_name_only_and_sealed_at_rest() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let res =
        app.call("create_agent", Some(&browser.cookie), &[("name", "support-bot"), ("template", "openclaw")]).await;
    assert_eq!(res.status(), 200);
    let agent: serde_json::Value = res.json().await.unwrap();
    assert_eq!(agent["status"], "stopped");
    assert_eq!(agent["deployed"], false);
    let agent_id = agent["id"].as_str().unwrap().to_string();

    // Bad input is refused with a reason.
    let bad =
        app.call("create_agent", Some(&browser.cookie), &[("name", "Support Bot"), ("template", "openclaw")]).await;
    assert_eq!(bad.status(), 400);
    let dup =
        app.call("create_agent", Some(&browser.cookie), &[("name", "support-bot"), ("template", "openclaw")]).await;
    assert_eq!(dup.status(), 400);
    assert!(dup.text().await.unwrap().contains("already have an agent with this name"));
    let unknown = app.call("create_agent", Some(&browser.cookie), &[("name", "x"), ("template", "nginx")]).await;
    assert_eq!(unknown.status(), 400);

    let secret = "sk-live-DO-NOT-LEAK-0123456789";
    let set = |name: &'static str, value: &'static str| {
        let (app, cookie, agent_id) = (&app, browser.cookie.clone(), agent_id.clone());
        async move {
            app.call("set_credential", Some(&cookie), &[("agent_id", &agent_id), ("name", name), ("value", value)])
                .await
        }
    };
    assert_eq!(set("openai_key", secret).await.status(), 200);
    assert_eq!(set("Bad Name", "x").await.status(), 400);
    assert_eq!(set("empty", "").await.status(), 400);

    let res = app.call("list_credentials", Some(&browser.cookie), &[("agent_id", &agent_id)]).await;
    let body = res.text().await.unwrap();
    assert!(!body.contains(secret) && !body.contains("DO-NOT-LEAK"), "the list never carries values: {body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "openai_key");
    assert!(rows[0]["set_secs_ago"].as_i64().unwrap() < 60);

    // At rest it is ciphertext; the one way back is the audited decrypt.
    let db_file = std::fs::read(app.platform.config().data_dir.join("deployclaw.db")).unwrap();
    assert!(!db_file.windows(secret.len()).any(|w| w == secret.as_bytes()), "no plaintext in the database file");
    let agent_uuid: deployclaw::db::AgentId = agent_id.parse().unwrap();
    let plain = app
        .platform
        .vault()
        .decrypt(
            deployclaw::audit::Actor::Platform,
            owner.client_id,
            agent_uuid,
            &CredentialName::parse("openai_key").unwrap(),
            DecryptPurpose::InjectIntoAgent,
        )
        .await
        .unwrap();
    assert_eq!(plain.expose_secret(), secret.as_bytes());

    // Replace, then delete; a running agent could not be deleted, a stopped one can.
    assert_eq!(set("openai_key", "sk-live-rotated").await.status(), 200);
    let del =
        app.call("delete_credential", Some(&browser.cookie), &[("agent_id", &agent_id), ("name", "openai_key")]).await;
    assert_eq!(del.status(), 200);
    let rows: Vec<serde_json::Value> =
        app.call("list_credentials", Some(&browser.cookie), &[("agent_id", &agent_id)]).await.json().await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(app.call("delete_agent", Some(&browser.cookie), &[("agent_id", &agent_id)]).await.status(), 200);

    let events = deployclaw::audit::recent(app.platform.db_for_tests(), owner.client_id, None, 100).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action_type.as_str()).collect();
    for expected in [
        "agent.created",
        "credential.added",
        "credential.decrypted",
        "credential.replaced",
        "credential.deleted",
        "agent.deleted",
    ] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    assert!(events.iter().all(|e| !e.metadata.0.to_string().contains("DO-NOT-LEAK")));
    app.stop().await;
}

#[tokio::test]
async fn writing_credentials_needs_a_fresh_second_factor() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let fresh = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let res = app.call("create_agent", Some(&fresh.cookie), &[("name", "bot"), ("template", "openclaw")]).await;
    let agent: serde_json::Value = res.json().await.unwrap();
    let agent_id = agent["id"].as_str().unwrap();
    let stale = app.sign_in_as(&owner, chrono::Duration::minutes(20)).await;
    let res =
        app.call("set_credential", Some(&stale.cookie), &[("agent_id", agent_id), ("name", "k"), ("value", "v")]).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap(), serde_json::json!("TwoFactorRequired"));
    assert_eq!(app.call("list_credentials", Some(&stale.cookie), &[("agent_id", agent_id)]).await.status(), 200);
    app.stop().await;
}
