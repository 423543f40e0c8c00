use serde_json::Value;

use crate::support::TestApp;

#[tokio::test]
async fn healthz_answers_live() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"ok": true, "status": "live"}));
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_ok_when_the_database_is_migrated() {
    let app = TestApp::spawn().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"]["ok"], true);
    assert!(body["migrations"]["detail"].as_str().unwrap().contains("schema at version"));
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_503_while_migrations_are_pending() {
    let app = TestApp::spawn_with(|_| {}, false).await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert!(body["migrations"]["detail"].as_str().unwrap().contains("pending"), "{body}");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_unreachable() {
    let app = TestApp::spawn().await;
    app.platform.db_for_tests().close().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["database"]["ok"], false);
    assert_eq!(body["database"]["detail"], "database unreachable", "no driver detail leaks out");
    app.stop().await;
}

#[tokio::test]
async fn server_function_round_trip_reports_platform_status() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", deployclaw::db::users::Role::Owner).await;
    let browser = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    assert_eq!(app.call("platform_status", None, &[]).await.status(), 401, "signed-in users only");
    let res = app.call("platform_status", Some(&browser.cookie), &[]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["backend"], "sqlite");
    assert_eq!(body["ready"], true);
    assert!(body["schema_version"].as_i64().unwrap() > 0);
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_without_harm() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/api/fn/platform_status"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(app.get("/readyz").await.status(), 200, "server still healthy");
    app.stop().await;
}
