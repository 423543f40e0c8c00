use crate::support::TestApp;

#[tokio::test]
async fn landing_page_explains_the_product() {
    let app = TestApp::spawn().await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\""));
    assert!(html.contains("Deploy AI agents you can actually trust with your keys."));
    assert!(html.contains("How it works"));
    assert!(html.contains("/pkg/deployclaw.js"), "hydration script is referenced");
    // Without a release build's hash.txt beside the binary, the unhashed names (the dev build's).
    assert!(html.contains(r#"<link rel="stylesheet" id="leptos" href="/pkg/deployclaw.css">"#), "stylesheet linked");
    app.stop().await;
}

#[tokio::test]
async fn dashboard_shell_has_navigation_for_every_area() {
    let app = TestApp::spawn().await;
    let operator = deployclaw::identity::team::create_platform_admin(
        app.platform.db_for_tests(),
        &deployclaw::email::EmailAddress::parse("ops@deployclaw.example").unwrap(),
    )
    .await
    .unwrap();
    let browser = app.sign_in_as(&operator, chrono::Duration::seconds(5)).await;
    let html = app.get_as("/dashboard", &browser.cookie).await.text().await.unwrap();
    for (href, label) in [
        ("/dashboard/agents", "Agents"),
        ("/dashboard/credentials", "Credentials"),
        ("/dashboard/audit", "Audit"),
        ("/dashboard/billing", "Billing"),
        ("/dashboard/settings", "Settings"),
        ("/dashboard/admin", "Admin"),
    ] {
        assert!(html.contains(&format!("href=\"{href}\"")), "missing link to {href}");
        assert!(html.contains(label), "missing label {label}");
    }
    assert!(html.contains("aria-label=\"Dashboard\""), "navigation is labelled");
    assert!(html.contains("Skip to content"));
    for path in [
        "/dashboard/agents",
        "/dashboard/credentials",
        "/dashboard/audit",
        "/dashboard/billing",
        "/dashboard/settings",
        "/dashboard/admin",
    ] {
        let res = app.get_as(path, &browser.cookie).await;
        assert_eq!(res.status(), 200, "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("aria-current=\"page\""), "{path}: the current section is marked");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_pages_are_a_real_404() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", deployclaw::db::users::Role::Owner).await;
    let browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let res = app.get_as("/dashboard/no-such-area", &browser.cookie).await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("Page not found"));
    let res = app.get("/definitely/not/here").await;
    assert_eq!(res.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn landing_claims_point_at_security_sections_and_show_their_status() {
    use deployclaw_app::pages::PILLARS;
    use deployclaw_app::security::PRIMITIVES;
    let app = TestApp::spawn().await;
    let landing = app.get("/").await.text().await.unwrap();
    let security = app.get("/security").await.text().await.unwrap();
    for pillar in PILLARS {
        // The section exists on /security (whose references the security-page test checks against the code).
        assert!(
            security.contains(&format!("id=\"{}\"", pillar.primitive)),
            "{}: no section {}",
            pillar.title,
            pillar.primitive
        );
        assert!(landing.contains(&format!("href=\"/security#{}\"", pillar.primitive)), "{}: no link", pillar.title);
        // A primitive's status is shown beside the claim, so "partial" on /security is "partial" here too.
        if let Some(p) = PRIMITIVES.iter().find(|p| p.id == pillar.primitive) {
            let card = landing
                .split(&format!("<h3>{}</h3>", pillar.title))
                .nth(1)
                .and_then(|rest| rest.split("</li>").next())
                .unwrap();
            assert!(
                card.contains(&format!(">{}</span>", p.status.label())),
                "{}: status {} not shown",
                pillar.title,
                p.status.label()
            );
        } else {
            assert_eq!(
                pillar.primitive, "threats",
                "{}: only the threat model is a section without a status",
                pillar.title
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_landing_page_names_exactly_the_keys_the_gateway_keeps_from_agents() {
    use deployclaw::gateway::Provider;
    // Every credential name the landing page mentions is one the gateway holds back (and only those are said to
    // stay with the gateway): a credential the agent is given must never be promised as kept from it.
    let named: std::collections::BTreeSet<&str> = deployclaw_app::pages::PILLARS
        .iter()
        .flat_map(|p| p.body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.ends_with("_key") || w.ends_with("_token"))
        .collect();
    let held: std::collections::BTreeSet<&str> = Provider::ALL.iter().map(|p| p.credential_name()).collect();
    assert_eq!(named, held);
    assert!(named.iter().all(|n| Provider::holds(n)));
}
