//! `/console` as HTTP: the page and its files come with a strict
//! Content-Security-Policy and no inline script; unknown files are the
//! uniform 404; `GET /api/v1/keys/me` tells the page who the caller is.
//! (The page in a real browser: console_browser.rs.)

use crate::support::{error_code, TestApp, ADMIN_KEY};
use serde_json::json;

async fn fetch(app: &TestApp, path: &str) -> (u16, poem::http::HeaderMap, String) {
    let resp = app.client.get(path).send().await;
    let status = resp.0.status().as_u16();
    let headers = resp.0.headers().clone();
    let body = resp.0.into_body().into_string().await.expect("body");
    (status, headers, body)
}

fn csp(headers: &poem::http::HeaderMap) -> &str {
    headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_page_and_its_files_carry_a_strict_policy() {
    let app = TestApp::new().await;
    let (status, headers, html) = fetch(&app, "/console").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let policy = csp(&headers);
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(part), "{part} missing from {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    // The documented policy is the one served.
    assert_eq!(policy, agentplane::console::CONTENT_SECURITY_POLICY);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/console.md"))
        .expect("docs/console.md");
    assert!(
        doc.contains(policy),
        "docs/console.md does not state the policy"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // No inline script or style, no address outside this server.
    for tag in html.split("<script").skip(1) {
        assert!(
            tag.trim_start()
                .starts_with("type=\"module\" src=\"/console/"),
            "{tag}"
        );
    }
    assert!(!html.contains("style="), "inline style in the page");
    assert!(!html.contains("<style"), "inline style element in the page");
    assert!(!html.contains("http://") && !html.contains("https://"));

    // Every file the page and its modules name is served, with the policy.
    let mut files = vec![
        "console.css".to_string(),
        "main.js".to_string(),
        "icon.svg".to_string(),
    ];
    let mut i = 0;
    while i < files.len() {
        let (status, headers, body) = fetch(&app, &format!("/console/{}", files[i])).await;
        assert_eq!(status, 200, "{}", files[i]);
        assert!(!csp(&headers).is_empty(), "{}", files[i]);
        if files[i].ends_with(".js") {
            assert!(headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript"));
            assert!(
                !body.contains("eval(") && !body.contains("innerHTML"),
                "{}",
                files[i]
            );
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let name = line.rsplit("\"./").next().unwrap().trim_end_matches("\";");
                if !files.iter().any(|f| f == name) {
                    files.push(name.to_string());
                }
            }
        }
        i += 1;
    }
    assert!(files.len() >= 8, "{files:?}");
}

#[tokio::test]
async fn unknown_console_files_are_the_uniform_404() {
    let app = TestApp::new().await;
    for path in [
        "/console/nope.js",
        "/console/..%2Fmain.rs",
        "/console/main.js/x",
    ] {
        let resp = app.client.get(path).send().await;
        assert_eq!(resp.0.status().as_u16(), 404, "{path}");
        let body: serde_json::Value =
            serde_json::from_str(&resp.0.into_body().into_string().await.unwrap()).unwrap();
        assert_eq!(error_code(&body), "not_found", "{path}");
    }
}

#[tokio::test]
async fn keys_me_describes_the_caller() {
    let app = TestApp::new().await;
    let me = |key: Option<String>| {
        let app = &app;
        async move {
            app.call("GET", "/api/v1/keys/me", key.as_deref(), None)
                .await
        }
    };
    // No key: a key is needed (the server is not open), said with a 200.
    let (s, b) = me(None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"role": null, "userId": null, "open": false, "keyId": null})
    );
    let (s, b) = me(Some(ADMIN_KEY.into())).await;
    assert_eq!(
        (s, &b["role"], &b["open"]),
        (200, &json!("admin"), &json!(false))
    );
    assert!(b["keyId"].is_null());
    let reader = app.key("reader", None).await;
    let (s, b) = me(Some(reader)).await;
    assert_eq!(
        (s, &b["role"], &b["userId"]),
        (200, &json!("reader"), &json!(null))
    );
    assert!(b["keyId"].is_string());
    let bound = app.key("service", Some("alice")).await;
    let (s, b) = me(Some(bound.clone())).await;
    assert_eq!(
        (s, &b["role"], &b["userId"]),
        (200, &json!("service"), &json!("alice"))
    );
    // An invalid or revoked key is refused, not described.
    let (s, b) = me(Some("ap_not_a_key".into())).await;
    assert_eq!((s, error_code(&b)), (401, "unauthorized"));
    let (_, keys) = app.get("/api/v1/keys").await;
    let id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["userId"] == "alice")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = app.delete(&format!("/api/v1/keys/{id}")).await;
    assert_eq!(s, 200);
    let (s, b) = me(Some(bound)).await;
    assert_eq!((s, error_code(&b)), (401, "unauthorized"));
}

#[tokio::test]
async fn keys_me_says_when_the_server_is_open() {
    let app = TestApp::with_config(|c| c.admin_key = None).await;
    let (s, b) = app.call("GET", "/api/v1/keys/me", None, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"role": null, "userId": null, "open": true, "keyId": null})
    );
    // The first key ends open mode: the same question now says a key is needed.
    let (s, created) = app
        .call(
            "POST",
            "/api/v1/keys",
            None,
            Some(&json!({"name": "first", "role": "admin"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let (s, b) = app.call("GET", "/api/v1/keys/me", None, None).await;
    assert_eq!((s, &b["open"]), (200, &json!(false)));
}
