//! Webhook endpoints: management, access control and bad input. Delivery is
//! in webhooks_delivery.rs.

use crate::support::{error_code, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/api/v1/webhooks", body).await
}

#[tokio::test]
async fn create_shows_the_secret_once_and_lists_without_it() {
    let app = TestApp::new().await;
    let (s, made) = create(
        &app,
        json!({"url": "https://hooks.example.com/in", "events": ["usage", "message", "usage"],
               "users": ["bob", "alice"], "agents": ["bot"], "description": "billing"}),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let secret = made["secret"].as_str().expect("secret");
    let key = base64_len(secret.strip_prefix("whsec_").expect("whsec_"));
    assert!(key >= 24, "{key} bytes");
    assert_eq!(made["events"], json!(["message", "usage"]));
    assert_eq!(made["users"], json!(["alice", "bob"]));
    assert_eq!(made["enabled"], json!(true));
    let id = made["id"].as_str().expect("id");

    let (s, list) = app.get("/api/v1/webhooks").await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], json!(1));
    assert!(!list.to_string().contains(secret), "{list}");
    assert!(list["webhooks"][0].get("secret").is_none());
    let (s, one) = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(one["description"], json!("billing"));
    assert!(one.get("secret").is_none());

    // a second endpoint gets another secret
    let (_, other) = create(&app, json!({"url": "http://127.0.0.1:1/x"})).await;
    assert_ne!(other["secret"], made["secret"]);
    assert_eq!(other["description"], Value::Null);
    assert_eq!(other["events"], json!([]));

    let (s, gone) = app.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!((s, &gone["success"]), (200, &json!(true)));
    let (s, b) = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!((s, error_code(&b)), (404, "webhook_not_found"));
    let (s, b) = app.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!((s, error_code(&b)), (404, "webhook_not_found"));
    for path in ["deliveries", "enable"] {
        let method = if path == "enable" { "POST" } else { "GET" };
        let (s, b) = app
            .call(
                method,
                &format!("/api/v1/webhooks/{id}/{path}"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!((s, error_code(&b)), (404, "webhook_not_found"), "{path}");
    }
}

fn base64_len(s: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
        .len()
}

#[tokio::test]
async fn only_unbound_admins_manage_webhooks() {
    let app = TestApp::new().await;
    let (_, made) = create(&app, json!({"url": "https://example.com/h"})).await;
    let id = made["id"].as_str().expect("id").to_string();
    let reader = app.key("reader", None).await;
    let service = app.key("service", None).await;
    let bound_service = app.key("service", Some("alice")).await;
    // A bound admin key cannot be made through the API any more; one from
    // before that rule is made here by hand.
    let bound_admin = app.key("service", Some("bob")).await;
    app.db
        .client()
        .await
        .execute(
            "UPDATE auth.api_keys SET role = 'admin' WHERE user_id = 'bob'",
            &[],
        )
        .await
        .expect("bound admin");
    let body = json!({"url": "https://example.com/x"});
    let calls: Vec<(&str, String, Option<&Value>)> = vec![
        ("POST", "/api/v1/webhooks".into(), Some(&body)),
        ("GET", "/api/v1/webhooks".into(), None),
        ("GET", format!("/api/v1/webhooks/{id}"), None),
        ("GET", format!("/api/v1/webhooks/{id}/deliveries"), None),
        ("POST", format!("/api/v1/webhooks/{id}/enable"), None),
        ("DELETE", format!("/api/v1/webhooks/{id}"), None),
    ];
    for key in [&reader, &service, &bound_service, &bound_admin] {
        for (method, path, body) in &calls {
            let (s, b) = app.call(method, path, Some(key), *body).await;
            assert_eq!((s, error_code(&b)), (403, "forbidden"), "{method} {path}");
        }
    }
    for (method, path, body) in &calls {
        let (s, b) = app.call(method, path, None, *body).await;
        assert_eq!(s, 401, "{method} {path}: {b}");
    }
    // nothing changed
    let (_, list) = app.get("/api/v1/webhooks").await;
    assert_eq!(list["count"], json!(1));
}

#[tokio::test]
async fn bad_input_is_a_clear_400() {
    let app = TestApp::new().await;
    let long_url = format!("https://example.com/{}", "a".repeat(2100));
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let cases = [
        (json!({}), None),
        (json!({"url": 5}), None),
        (json!({"url": ""}), None),
        (json!({"url": "not a url"}), Some("invalid_url")),
        (json!({"url": "/relative/path"}), Some("invalid_url")),
        (json!({"url": "ftp://example.com/x"}), Some("invalid_url")),
        (json!({"url": "javascript:alert(1)"}), Some("invalid_url")),
        (json!({"url": "http://"}), Some("invalid_url")),
        (json!({"url": long_url}), None),
        (
            json!({"url": "https://e.com", "events": ["usage", "nope"]}),
            Some("unknown_event_type"),
        ),
        (json!({"url": "https://e.com", "events": "usage"}), None),
        (json!({"url": "https://e.com", "users": ["bad id!"]}), None),
        (json!({"url": "https://e.com", "users": many}), None),
        (json!({"url": "https://e.com", "agents": [""]}), None),
        (
            json!({"url": "https://e.com", "description": "d".repeat(1001)}),
            None,
        ),
    ];
    for (body, code) in cases {
        let (s, b) = create(&app, body.clone()).await;
        assert_eq!(s, 400, "{body}: {b}");
        let got = error_code(&b);
        if let Some(code) = code {
            assert_eq!(got, code, "{body}");
        }
    }
    let (_, list) = app.get("/api/v1/webhooks").await;
    assert_eq!(list["count"], json!(0));

    let (_, made) = create(&app, json!({"url": "https://e.com"})).await;
    let id = made["id"].as_str().expect("id");
    for q in ["limit=0", "limit=1001", "limit=x", "after=-1", "after=x"] {
        let (s, b) = app
            .get(&format!("/api/v1/webhooks/{id}/deliveries?{q}"))
            .await;
        assert_eq!(s, 400, "{q}: {b}");
        error_code(&b);
    }
    let (s, b) = app.get("/api/v1/webhooks/not-a-uuid").await;
    assert_eq!(s, 400, "{b}");
    error_code(&b);
    let (s, b) = app
        .get("/api/v1/webhooks/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!((s, error_code(&b)), (404, "webhook_not_found"));
}

#[tokio::test]
async fn retention_prunes_old_delivery_attempts() {
    let app = TestApp::new().await;
    let (_, made) = create(&app, json!({"url": "https://e.com/h"})).await;
    let id = made["id"].as_str().expect("id").to_string();
    let db = app.db.client().await;
    db.execute(
        "INSERT INTO webhooks.deliveries (endpoint_id, event_id, attempt, at, duration_ms, delivered) \
         SELECT $1::text::uuid, g, 1, now() - make_interval(days => CASE WHEN g <= 3 THEN 8 ELSE 0 END), 1, true \
           FROM generate_series(1, 5) g",
        &[&id],
    )
    .await
    .expect("attempts");
    agentplane::feed::retention::prune_all(
        &app.db.pool(),
        std::time::Duration::from_secs(7 * 86_400),
    )
    .await
    .expect("prune");
    let (_, page) = app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
    let kept: Vec<i64> = page["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| d["eventId"].as_i64())
        .collect();
    assert_eq!(kept, vec![4, 5]);
}
