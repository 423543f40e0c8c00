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
