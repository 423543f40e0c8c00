//! The "Audit trail" settings over HTTP: everyone on the team reads them; the owner changes retention; owners
//! and admins manage SIEM destinations of their own client only; every change needs a fresh second factor
//! and lands in the client's audit trail.

use deployclaw::db::users::Role;
use deployclaw::db::ClientId;
use serde_json::{json, Value};

use crate::support::{Browser, TestApp};

async fn call(app: &TestApp, who: &Browser, endpoint: &str, args: &[(&str, &str)]) -> (u16, Value) {
    let res = app.call(endpoint, Some(&who.cookie), args).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn settings_of(app: &TestApp, who: &Browser) -> Value {
    let (status, body) = call(app, who, "audit_settings", &[]).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn actions(app: &TestApp, client: ClientId, prefix: &str) -> Vec<deployclaw::audit::AuditEvent> {
    let mut events = deployclaw::audit::recent(app.platform.db_for_tests(), client, None, 500).await.unwrap();
    events.retain(|e| e.action_type.starts_with(prefix));
    events.reverse();
    events
}

fn invalid_message(body: &Value) -> &str {
    body["Invalid"].as_str().unwrap_or_else(|| panic!("not an Invalid error: {body}"))
}

#[tokio::test]
async fn everyone_reads_retention_but_only_the_owner_changes_it() {
    let app = TestApp::spawn().await;
    let owner_user = app.user(None, "owner@acme.example", Role::Owner).await;
    let client = owner_user.client_id;
    let fresh = chrono::Duration::seconds(5);
    let owner = app.sign_in_as(&owner_user, fresh).await;
    let member = app.sign_in_as(&app.user(Some(client), "member@acme.example", Role::Member).await, fresh).await;
    let admin = app.sign_in_as(&app.user(Some(client), "admin@acme.example", Role::Admin).await, fresh).await;

    let seen = settings_of(&app, &member).await;
    assert_eq!(
        seen["retention"],
        json!({ "days": 90, "source": "platform_default", "client_days": null, "default_days": 90, "max_days": 3650 })
    );
    assert_eq!(
        (seen["can_change_retention"].clone(), seen["can_manage_destinations"].clone()),
        (json!(false), json!(false))
    );
    let seen = settings_of(&app, &admin).await;
    assert_eq!(
        (seen["can_change_retention"].clone(), seen["can_manage_destinations"].clone()),
        (json!(false), json!(true))
    );
    let seen = settings_of(&app, &owner).await;
    assert_eq!(
        (seen["can_change_retention"].clone(), seen["can_manage_destinations"].clone()),
        (json!(true), json!(true))
    );

    // Members and admins may not change it.
    for who in [&member, &admin] {
        let (status, body) = call(&app, who, "set_audit_retention", &[("days", "30")]).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.get("Forbidden").is_some(), "{body}");
    }

    // Bad input: 400 with a message saying what to change; nothing stored, nothing recorded.
    for (days, says) in [
        ("abc", "whole number of days"),
        ("1.5", "whole number of days"),
        ("0", "between 1 and 3650 days"),
        ("-7", "between 1 and 3650 days"),
        ("3651", "between 1 and 3650 days"),
        ("99999999999999999999", "between 1 and 3650 days"),
    ] {
        let (status, body) = call(&app, &owner, "set_audit_retention", &[("days", days)]).await;
        assert_eq!(status, 400, "{days}: {body}");
        let message = invalid_message(&body);
        assert!(message.contains(says) && message.starts_with(char::is_uppercase), "{days}: {message}");
    }
    assert_eq!(settings_of(&app, &owner).await["retention"]["days"], 90);
    assert!(actions(&app, client, "audit.retention_changed").await.is_empty());

    // Without a fresh second factor: refused, unchanged.
    let stale = app.sign_in_as(&owner_user, chrono::Duration::minutes(20)).await;
    let (status, body) = call(&app, &stale, "set_audit_retention", &[("days", "30")]).await;
    assert_eq!((status, body), (403, json!("TwoFactorRequired")));
    assert_eq!(settings_of(&app, &owner).await["retention"]["days"], 90);

    // The owner shortens it: stored, said to be shorter, recorded with who, where from, before and after.
    let (status, body) = call(&app, &owner, "set_audit_retention", &[("days", " 30 ")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["shortened"], true);
    assert_eq!(body["previous_days"], 90);
    assert_eq!(body["retention"]["days"], 30);
    let seen = settings_of(&app, &member).await;
    assert_eq!((seen["retention"]["days"].clone(), seen["retention"]["source"].clone()), (json!(30), json!("client")));
    let stored = deployclaw::audit::settings::retention(
        app.platform.db_for_tests(),
        &(&app.platform.config().audit).into(),
        client,
    )
    .await
    .unwrap();
    assert_eq!(stored.client_days, Some(30));
    let recorded = actions(&app, client, "audit.retention_changed").await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].actor_id, Some(owner_user.id.as_uuid()));
    assert_eq!(recorded[0].ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(recorded[0].metadata.0["from_days"], 90);
    assert_eq!(recorded[0].metadata.0["to_days"], 30);
    assert_eq!(recorded[0].metadata.0["user_agent"], "test-browser");

    // Empty goes back to the platform default.
    let (status, body) = call(&app, &owner, "set_audit_retention", &[("days", "")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["shortened"].clone(), body["retention"]["source"].clone()),
        (json!(false), json!("platform_default"))
    );
    assert_eq!(actions(&app, client, "audit.retention_changed").await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn owners_and_admins_manage_their_own_clients_siem_destinations() {
    let app = TestApp::spawn().await;
    let owner_user = app.user(None, "owner@acme.example", Role::Owner).await;
    let client = owner_user.client_id;
    let fresh = chrono::Duration::seconds(5);
    let owner = app.sign_in_as(&owner_user, fresh).await;
    let member = app.sign_in_as(&app.user(Some(client), "member@acme.example", Role::Member).await, fresh).await;
    let admin_user = app.user(Some(client), "admin@acme.example", Role::Admin).await;
    let admin = app.sign_in_as(&admin_user, fresh).await;
    let other_user = app.user(None, "owner@globex.example", Role::Owner).await;
    let other = app.sign_in_as(&other_user, fresh).await;

    // The owner adds an HTTPS destination whose URL holds tokens: they never come back.
    let url = "https://siem.example.com/receiver/v1/http/PATHTOKEN123?key=QUERYTOKEN456";
    let add_https = [("name", "Company SIEM"), ("kind", "https_json"), ("url", url), ("start", "beginning")];
    let (status, body) = call(&app, &owner, "add_siem_destination", &add_https).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("TOKEN"), "{body}");
    assert_eq!(body["endpoint"], "https://siem.example.com/…");
    assert_eq!((body["kind"].clone(), body["enabled"].clone()), (json!("https_json"), json!(true)));
    let web_id = body["id"].as_str().unwrap().to_string();

    // An admin adds a syslog one (the form sends empty fields it does not use).
    let add_syslog = [
        ("name", "Syslog relay"),
        ("kind", "syslog_tls"),
        ("host", "logs.example.com"),
        ("port", "6514"),
        ("url", ""),
        ("ca_pem", ""),
        ("start", "now"),
    ];
    let (status, body) = call(&app, &admin, "add_siem_destination", &add_syslog).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoint"], "logs.example.com:6514");
    assert_eq!(body["custom_ca"], false);

    // Everyone on the team sees both; the member may change nothing.
    let listed = settings_of(&app, &member).await;
    let rows = listed["destinations"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Company SIEM", "Syslog relay"]);
    assert_eq!(rows[0]["delivered_up_to"], 0);
    assert_eq!(rows[0]["last_error"], Value::Null);
    assert!(!listed.to_string().contains("TOKEN"), "{listed}");
    let (status, _) = call(&app, &member, "add_siem_destination", &add_https).await;
    assert_eq!(status, 403);
    let (status, _) =
        call(&app, &member, "set_siem_destination_enabled", &[("destination_id", &web_id), ("enabled", "false")]).await;
    assert_eq!(status, 403);
    let (status, _) = call(&app, &member, "delete_siem_destination", &[("destination_id", &web_id)]).await;
    assert_eq!(status, 403);

    // Another client's owner neither sees nor touches them: 404, as for an id that does not exist.
    assert_eq!(settings_of(&app, &other).await["destinations"], json!([]));
    let (status, _) =
        call(&app, &other, "set_siem_destination_enabled", &[("destination_id", &web_id), ("enabled", "false")]).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, &other, "delete_siem_destination", &[("destination_id", &web_id)]).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, &owner, "delete_siem_destination", &[("destination_id", "not-an-id")]).await;
    assert_eq!(status, 404);
    assert!(actions(&app, other_user.client_id, "siem.").await.is_empty());

    // Bad input: 400, saying what to change, never repeating a URL or a certificate.
    let cases: [(&[(&str, &str)], &str); 8] = [
        (&[("name", "x"), ("kind", "ftp"), ("start", "now")], "Choose a kind"),
        (
            &[("name", "x"), ("kind", "syslog_tcp"), ("host", "logs.example.com"), ("port", "abc"), ("start", "now")],
            "port",
        ),
        (
            &[("name", "x"), ("kind", "syslog_tcp"), ("host", "logs.example.com"), ("port", "514"), ("start", "later")],
            "where to start",
        ),
        (
            &[("name", "x"), ("kind", "https_json"), ("url", "not a url SECRETVALUE"), ("start", "now")],
            "not a valid address",
        ),
        (
            &[("name", "x"), ("kind", "https_json"), ("url", "http://siem.example.com/SECRETVALUE"), ("start", "now")],
            "https://",
        ),
        (
            &[("name", "x"), ("kind", "syslog_tls"), ("host", "127.0.0.1"), ("port", "6514"), ("start", "now")],
            "non-public address",
        ),
        (
            &[
                ("name", "x"),
                ("kind", "syslog_tls"),
                ("host", "logs.example.com"),
                ("port", "6514"),
                ("ca_pem", "SECRETVALUE"),
                ("start", "now"),
            ],
            "PEM certificates",
        ),
        (
            &[
                ("name", "x"),
                ("kind", "syslog_tcp"),
                ("host", "logs.example.com"),
                ("port", "514"),
                ("ca_pem", "-----BEGIN CERTIFICATE-----"),
                ("start", "now"),
            ],
            "syslog over TLS",
        ),
    ];
    for (args, says) in cases {
        let (status, body) = call(&app, &owner, "add_siem_destination", args).await;
        assert_eq!(status, 400, "{args:?}: {body}");
        let message = invalid_message(&body);
        assert!(message.contains(says), "{args:?}: {message}");
        assert!(!message.contains("SECRETVALUE") && !message.contains("127.0.0.1"), "{message}");
    }
    assert_eq!(settings_of(&app, &owner).await["destinations"].as_array().unwrap().len(), 2);

    // Changes need a fresh second factor.
    let stale = app.sign_in_as(&owner_user, chrono::Duration::minutes(20)).await;
    let (status, body) = call(&app, &stale, "add_siem_destination", &add_https).await;
    assert_eq!((status, body), (403, json!("TwoFactorRequired")));
    let (status, body) = call(&app, &stale, "delete_siem_destination", &[("destination_id", &web_id)]).await;
    assert_eq!((status, body), (403, json!("TwoFactorRequired")));
    assert_eq!(settings_of(&app, &stale).await["destinations"].as_array().unwrap().len(), 2, "reading needs none");

    // The admin pauses and resumes the owner's destination; the owner deletes it.
    let (status, body) =
        call(&app, &admin, "set_siem_destination_enabled", &[("destination_id", &web_id), ("enabled", "false")]).await;
    assert_eq!((status, body["enabled"].clone()), (200, json!(false)), "{body}");
    assert_eq!(settings_of(&app, &member).await["destinations"][0]["enabled"], false);
    let (status, body) =
        call(&app, &admin, "set_siem_destination_enabled", &[("destination_id", &web_id), ("enabled", "true")]).await;
    assert_eq!((status, body["enabled"].clone()), (200, json!(true)), "{body}");
    let (status, body) = call(&app, &owner, "delete_siem_destination", &[("destination_id", &web_id)]).await;
    assert_eq!(status, 200, "{body}");
    let left = settings_of(&app, &owner).await;
    let names: Vec<&str> =
        left["destinations"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Syslog relay"]);

    // Each change is in the client's trail, by whom it was made, with no token in it.
    let recorded = actions(&app, client, "siem.").await;
    let seen: Vec<(&str, Option<uuid::Uuid>)> = recorded.iter().map(|e| (e.action_type.as_str(), e.actor_id)).collect();
    assert_eq!(
        seen,
        [
            ("siem.destination_created", Some(owner_user.id.as_uuid())),
            ("siem.destination_created", Some(admin_user.id.as_uuid())),
            ("siem.destination_disabled", Some(admin_user.id.as_uuid())),
            ("siem.destination_enabled", Some(admin_user.id.as_uuid())),
            ("siem.destination_deleted", Some(owner_user.id.as_uuid())),
        ]
    );
    assert!(recorded.iter().all(|e| e.ip_address.as_deref() == Some("127.0.0.1")));
    assert!(recorded.iter().all(|e| !e.metadata.0.to_string().contains("TOKEN")));
    app.stop().await;
}

#[tokio::test]
async fn the_settings_page_shows_the_audit_trail_card() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let res = app.get_as("/dashboard/settings", &browser.cookie).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    for part in [
        "Audit trail",
        "Keep events for (days)",
        "removes events older than the new period at the next retention run",
        "Syslog has no delivery acknowledgement",
        "Add destination",
    ] {
        assert!(html.contains(part), "{part:?} missing from the settings page");
    }
    app.stop().await;
}
