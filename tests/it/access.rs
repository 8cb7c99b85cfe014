//! Access control that cannot open itself: open mode ends with the first key
//! and never comes back, the last admin key stays, user-bound keys see only
//! their user, foreign origins are refused while open, and no token or
//! header reaches a panic.

use crate::support::{error_code, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

async fn open_app() -> TestApp {
    TestApp::with_config(|c| c.admin_key = None).await
}

async fn create_key(app: &TestApp, by: Option<&str>, role: &str, user: Option<&str>) -> Value {
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/keys",
            by,
            Some(&json!({"name": role, "role": role, "userId": user})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    b
}

#[tokio::test]
async fn open_mode_never_returns_once_a_key_existed() {
    let app = open_app().await;
    let first = create_key(&app, None, "admin", None).await;
    let first_key = first["key"].as_str().unwrap();
    // the only admin key cannot go: nobody could manage keys afterwards
    let path = format!("/api/v1/keys/{}", first["id"].as_str().unwrap());
    let (s, b) = app.call("DELETE", &path, Some(first_key), None).await;
    assert_eq!((s, error_code(&b)), (409, "last_admin_key"));
    // with a second admin key it can; then revoke every other key too
    let second = create_key(&app, Some(first_key), "admin", None).await;
    let second_key = second["key"].as_str().unwrap();
    let reader = create_key(&app, Some(first_key), "reader", None).await;
    let (s, b) = app.call("DELETE", &path, Some(second_key), None).await;
    assert_eq!(s, 200, "{b}");
    let reader_path = format!("/api/v1/keys/{}", reader["id"].as_str().unwrap());
    let (s, _) = app
        .call("DELETE", &reader_path, Some(second_key), None)
        .await;
    assert_eq!(s, 200);
    // a fresh server on the same database does not start open either
    let fresh = agentplane::api::AppState::new(app.db.pool(), app.state.config.as_ref().clone());
    assert!(!fresh.access.is_open(&fresh.pool).await.unwrap());
    for who in [None, Some(first_key)] {
        let (s, b) = app.call("GET", "/api/v1/keys", who, None).await;
        assert_eq!((s, error_code(&b)), (401, "unauthorized"), "{who:?}");
    }
}

#[tokio::test]
async fn the_last_admin_key_may_go_when_one_is_configured() {
    let app = TestApp::new().await;
    let stored = create_key(&app, Some(ADMIN_KEY), "admin", None).await;
    let path = format!("/api/v1/keys/{}", stored["id"].as_str().unwrap());
    let (s, b) = app.delete(&path).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn concurrent_revocations_keep_one_admin() {
    let app = open_app().await;
    let first = create_key(&app, None, "admin", None).await;
    let first_key = first["key"].as_str().unwrap().to_string();
    let second = create_key(&app, Some(&first_key), "admin", None).await;
    let second_key = second["key"].as_str().unwrap().to_string();
    // each revokes the other at once: exactly one may succeed
    let a = format!("/api/v1/keys/{}", second["id"].as_str().unwrap());
    let b = format!("/api/v1/keys/{}", first["id"].as_str().unwrap());
    let (ra, rb) = tokio::join!(
        app.call("DELETE", &a, Some(&first_key), None),
        app.call("DELETE", &b, Some(&second_key), None)
    );
    let mut statuses = [ra.0, rb.0];
    statuses.sort();
    assert!(
        statuses == [200, 401] || statuses == [200, 409],
        "{ra:?} {rb:?}"
    );
    let active: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM auth.api_keys WHERE revoked_at IS NULL AND role = 'admin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 1);
}

#[tokio::test]
async fn user_bound_keys_cannot_manage_keys_or_mint_credits() {
    let app = TestApp::new().await;
    let (s, b) = app
        .post(
            "/api/v1/keys",
            json!({"name": "x", "role": "admin", "userId": "alice"}),
        )
        .await;
    assert_eq!((s, error_code(&b)), (400, "invalid_user_binding"));
    let alice = app.key("service", Some("alice")).await;
    for (method, path) in [("GET", "/api/v1/keys"), ("POST", "/api/v1/keys")] {
        let body = json!({"name": "mine", "role": "reader"});
        let (s, b) = app.call(method, path, Some(&alice), Some(&body)).await;
        assert_eq!((s, error_code(&b)), (403, "forbidden"), "{method} {path}");
    }
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/users/alice/credits/top-up",
            Some(&alice),
            Some(&json!({"amount": 1000000})),
        )
        .await;
    assert_eq!((s, error_code(&b)), (403, "forbidden"));
    let service = app.key("service", None).await;
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/users/alice/credits/top-up",
            Some(&service),
            Some(&json!({"amount": 5})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

async fn record(app: &TestApp, key: &str, user: Option<&str>, tokens: i64) -> (u16, Value) {
    app.call(
        "POST",
        "/api/v1/usage/records",
        Some(key),
        Some(
            &json!({"threadId": "t1", "model": "gpt-4o", "promptTokens": tokens,
                      "completionTokens": 1, "latencyMs": 5, "userId": user}),
        ),
    )
    .await
}

#[tokio::test]
async fn user_bound_keys_see_only_their_usage() {
    let app = TestApp::new().await;
    let service = app.key("service", None).await;
    record(&app, &service, Some("alice"), 10).await;
    record(&app, &service, Some("bob"), 20).await;
    record(&app, &service, None, 30).await;
    let alice = app.key("service", Some("alice")).await;
    // recording for another user is refused; without a user, it is alice's
    let (s, b) = record(&app, &alice, Some("bob"), 1).await;
    assert_eq!((s, error_code(&b)), (403, "forbidden"));
    let (s, b) = record(&app, &alice, None, 40).await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = app
        .call("GET", "/api/v1/usage/history", Some(&alice), None)
        .await;
    assert_eq!(s, 200, "{b}");
    let users: Vec<&str> = b["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userId"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(users, ["alice", "alice"], "{b}");
    let (_, all) = app.get("/api/v1/usage/history").await;
    assert_eq!(all["count"], 4);

    let (s, b) = app
        .call("GET", "/api/v1/usage/daily", Some(&alice), None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["days"][0]["totalTokens"], 10 + 1 + 40 + 1, "{b}");
    assert_eq!(b["days"][0]["requestCount"], 2, "{b}");

    for path in [
        "/api/v1/usage",
        "/api/v1/usage/threads",
        "/api/v1/usage/agents/a1",
        "/api/v1/usage/models/gpt-4o",
    ] {
        let (s, b) = app.call("GET", path, Some(&alice), None).await;
        assert_eq!((s, error_code(&b)), (403, "forbidden"), "{path}");
    }
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/usage/records/batch",
            Some(&alice),
            Some(&json!({"records": []})),
        )
        .await;
    assert_eq!((s, error_code(&b)), (403, "forbidden"));
}

async fn with_origin(
    app: &TestApp,
    method: &str,
    path: &str,
    origin: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = match method {
        "GET" => app.client.get(path),
        _ => app.client.post(path),
    };
    req = req.header("Origin", origin);
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    if method == "POST" {
        req = req.body_json(&json!({}));
    }
    let resp = req.send().await;
    let status = resp.0.status().as_u16();
    let bytes = resp.0.into_body().into_vec().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn open_mode_refuses_foreign_origins() {
    let app = open_app().await;
    let own = format!("http://{}", app.state.config.bind);
    let evil = "http://evil.example";
    let (s, b) = with_origin(&app, "POST", "/api/v1/organism/stop", evil, None).await;
    assert_eq!((s, error_code(&b)), (403, "cross_origin"));
    let (s, _) = with_origin(&app, "GET", "/api/v1/organism", evil, None).await;
    assert_eq!(s, 200, "reads carry no side effect");
    let (s, b) = with_origin(&app, "POST", "/api/v1/organism/start", &own, None).await;
    assert_eq!(s, 200, "{b}");
    let (status, _) = app.call("POST", "/api/v1/organism/stop", None, None).await;
    assert_eq!(status, 200, "no Origin header: not a browser");
    // once a key exists, a foreign page has no key to send
    let key = create_key(&app, None, "admin", None).await;
    let key = key["key"].as_str().unwrap();
    let (s, _) = with_origin(&app, "POST", "/api/v1/organism/start", evil, Some(key)).await;
    assert_eq!(s, 200);
}

/// Sends `request` as raw bytes to `server` and returns the status line.
async fn raw_status(server: &crate::support::TestServer, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn malformed_tokens_get_a_401_not_a_panic() {
    let server = crate::support::TestServer::start().await;
    for query in ["%a\u{e9}", "%\u{e9}", "%", "%zz%ff%fe", "\u{1f600}%f"] {
        let request = format!(
            "GET /api/v1/agents?token={query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let status = raw_status(&server, request.as_bytes()).await;
        assert!(status.contains(" 401 "), "{query:?}: {status:?}");
    }
    for header in [
        &b"Bearer \xff\xfe"[..],
        b"Bearer",
        b"bearer  ",
        b"Basic abc",
    ] {
        let mut request =
            b"GET /api/v1/agents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
                .to_vec();
        request.extend_from_slice(header);
        request.extend_from_slice(b"\r\n\r\n");
        let status = raw_status(&server, &request).await;
        assert!(status.contains(" 401 "), "{header:?}: {status:?}");
    }
}
