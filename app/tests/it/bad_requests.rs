//! Requests a server function cannot decode are the client's fault: 400 (413 for a body over the limit) with a
//! short reason that names the problem and nothing of our internals, never 500; and text that is not UTF-8 is
//! refused, never stored with replacement characters.

use std::net::SocketAddr;

use deployclaw::db::users::Role;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestApp, PATIENCE};

/// Words of a decoder's own messages (serde, serde_qs, std's UTF-8 error, http-body's limit): none may reach a
/// client.
const INTERNALS: [&str; 8] =
    ["serde", "invalid type", "expected", "utf-8 sequence", "index", "qs", "length limit", "Args"];

/// POSTs `body` as it is to server function `endpoint`, from our own origin, with `content_type`.
async fn post_raw(app: &TestApp, endpoint: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/fn/{endpoint}")))
        .header("origin", app.platform.config().server.public_origin())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request completes")
}

/// The reason of a refusal with `status`, checked to hold none of our internals.
async fn refusal(res: reqwest::Response, status: u16, what: &str) -> String {
    assert_eq!(res.status(), status, "{what}");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{what}");
    let body: Value = res.json().await.unwrap();
    let reason = body["Invalid"].as_str().unwrap_or_else(|| panic!("{what}: an AppError::Invalid: {body}")).to_string();
    for word in INTERNALS {
        assert!(!reason.contains(word), "{what}: {reason:?} leaks {word:?}");
    }
    reason
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn undecodable_server_function_requests_are_400_with_a_reason() {
    let app = TestApp::spawn().await;
    let cases: [(&str, &str, &str, &[u8], &str); 6] = [
        ("a body that is not UTF-8", "request_sign_in_code", FORM, b"email=ada\xff\xfe@acme.example", "UTF-8"),
        ("a form without the fields", "request_sign_in_code", FORM, b"", "field"),
        ("a field sent as a map", "request_sign_in_code", FORM, b"email[a]=1&email[b]=2", "field"),
        ("a form that is not one", "verify_sign_in_code", FORM, b"%%%&&==[[]]", "field"),
        ("a field of the wrong type", "set_siem_destination_enabled", FORM, b"destination_id=x&enabled=maybe", "field"),
        (
            "wrongly typed JSON",
            "set_siem_destination_enabled",
            "application/json",
            br#"{"destination_id": 7, "enabled": "yes"}"#,
            "field",
        ),
    ];
    for (what, endpoint, content_type, body, says) in cases {
        let res = post_raw(&app, endpoint, content_type, body.to_vec()).await;
        let reason = refusal(res, 400, what).await;
        assert!(reason.contains(says), "{what}: {reason:?}");
    }
    // Percent-encoded bytes that are not UTF-8 are refused as well: serde_qs would decode them lossily.
    let res = post_raw(&app, "request_sign_in_code", FORM, b"email=ada%FF%FE%40acme.example".to_vec()).await;
    let reason = refusal(res, 400, "percent-encoded bytes that are not UTF-8").await;
    assert!(reason.contains("UTF-8"), "{reason:?}");
    assert_eq!(app.get("/readyz").await.status(), 200, "the server is still healthy");
    app.stop().await;
}

#[tokio::test]
async fn a_credential_value_that_is_not_utf8_is_refused_not_stored_with_replacement_characters() {
    let app = TestApp::spawn().await;
    let owner = app.user(None, "owner@acme.example", Role::Owner).await;
    let b = app.sign_in_as(&owner, chrono::Duration::seconds(5)).await;
    let agent: Value = app
        .call("create_agent", Some(&b.cookie), &[("name", "probe"), ("template", "test-agent")])
        .await
        .json()
        .await
        .unwrap();
    let id = agent["id"].as_str().unwrap();
    let body = format!("agent_id={id}&name=slack_token&value=%FF%FE");
    let res = app
        .client
        .post(app.url("/api/fn/set_credential"))
        .header("origin", app.platform.config().server.public_origin())
        .header("content-type", FORM)
        .header("cookie", &b.cookie)
        .body(body)
        .send()
        .await
        .unwrap();
    let reason = refusal(res, 400, "a credential value of bytes that are not UTF-8").await;
    assert!(reason.contains("UTF-8"), "{reason:?}");
    let rows: Vec<Value> =
        app.call("list_credentials", Some(&b.cookie), &[("agent_id", id)]).await.json().await.unwrap();
    assert!(rows.is_empty(), "nothing was stored: {rows:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_with_a_reason() {
    let app = TestApp::spawn().await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let origin = app.platform.config().server.public_origin().to_string();
    // 2 MiB in 64 KiB chunks, no Content-Length: only reading the body shows it is too large. Written while the
    // answer is read: the server answers before it has read it all, and may close without reading the rest.
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /api/fn/request_sign_in_code HTTP/1.1\r\nHost: test\r\nOrigin: {origin}\r\n\
             Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..32 {
            write.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            write.write_all(&chunk).await?;
            write.write_all(b"\r\n").await?;
        }
        write.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    // Until the server closes (or resets, once it has answered): bounded by PATIENCE.
    let _ = tokio::time::timeout(PATIENCE, async {
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    writer.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    let reason = body["TooLarge"].as_str().unwrap_or_default();
    assert!(reason.contains("too large") && reason.contains("1 MiB"), "{answer}");
    for word in INTERNALS {
        assert!(!reason.contains(word), "{reason:?} leaks {word:?}");
    }
    assert_eq!(app.get("/readyz").await.status(), 200, "the server is still healthy");
    app.stop().await;
}
