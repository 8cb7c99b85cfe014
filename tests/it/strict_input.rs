//! Strict input (docs/api.md): a wrong JSON type where a request body
//! expects a string is a 400 `invalid_request` (never read as its text), and
//! nothing is written.
//! One endpoint of every domain, plus the string validators that ride on the
//! strict type (lengths, identifier patterns).

use crate::support::TestApp;
use serde_json::{json, Value};

/// Rows in every table a request could write, and the event feed.
async fn written(app: &TestApp) -> i64 {
    let c = app.db.client().await;
    let tables = [
        "auth.api_keys",
        "agents.agents",
        "agents.threads",
        "agents.messages",
        "agents.inbox",
        "credits.users",
        "credits.transactions",
        "credits.holds",
        "credits.block_costs",
        "usage.records",
        "usage.model_prices",
        "usage.thread_budgets",
        "variants.variants",
        "variants.activations",
        "variants.performance",
        "feed.events",
    ];
    let sql = tables
        .iter()
        .map(|t| format!("(SELECT count(*) FROM {t})"))
        .collect::<Vec<_>>()
        .join(" + ");
    c.query_one(&format!("SELECT {sql}"), &[])
        .await
        .expect("count")
        .get(0)
}

/// Sets `field` (a JSON pointer) of `body` to `value`.
fn with(body: &Value, field: &str, value: Value) -> Value {
    let mut b = body.clone();
    *b.pointer_mut(field)
        .unwrap_or_else(|| panic!("{field} in {body}")) = value;
    b
}

/// Every value in `bad` at `field` is refused with the uniform 400 body and
/// writes nothing; then `good` itself is accepted with `ok` (proving the
/// refusal was about the field alone).
async fn refuses(
    app: &TestApp,
    method: &str,
    path: &str,
    good: Value,
    field: &str,
    bad: &[Value],
    ok: u16,
) {
    let before = written(app).await;
    for v in bad {
        let body = with(&good, field, v.clone());
        let (s, b) = app
            .call(method, path, Some(crate::support::ADMIN_KEY), Some(&body))
            .await;
        assert_eq!(s, 400, "{method} {path} {body} -> {b}");
        assert_eq!(crate::support::error_code(&b), "invalid_request", "{b}");
        assert_eq!(written(app).await, before, "{method} {path} {body} wrote");
    }
    let (s, b) = app
        .call(method, path, Some(crate::support::ADMIN_KEY), Some(&good))
        .await;
    assert_eq!(s, ok, "{method} {path} {good} -> {b}");
}

fn wrong_types() -> Vec<Value> {
    vec![
        json!(5),
        json!(1.5),
        json!(true),
        json!({"a": "b"}),
        json!(["x"]),
        Value::Null,
    ]
}

/// Wrong types for an optional string: null there means "not given".
fn wrong_types_not_null() -> Vec<Value> {
    vec![json!(5), json!(false), json!({}), json!(["x"])]
}

#[tokio::test]
async fn keys_name_and_user_id() {
    let app = TestApp::new().await;
    let good = json!({"name": "k", "role": "service", "userId": "alice"});
    refuses(
        &app,
        "POST",
        "/api/v1/keys",
        good.clone(),
        "/name",
        &wrong_types(),
        201,
    )
    .await;
    refuses(
        &app,
        "POST",
        "/api/v1/keys",
        good.clone(),
        "/userId",
        &wrong_types_not_null(),
        201,
    )
    .await;
    // validators still apply to the strict type
    let long = "x".repeat(201);
    refuses(
        &app,
        "POST",
        "/api/v1/keys",
        good.clone(),
        "/name",
        &[json!(""), json!(long)],
        201,
    )
    .await;
    let bad_ids = [json!(""), json!("a b"), json!("é"), json!("x".repeat(129))];
    refuses(&app, "POST", "/api/v1/keys", good, "/userId", &bad_ids, 201).await;
}

#[tokio::test]
async fn users_and_credits_reason_and_ids() {
    let app = TestApp::new().await;
    let (s, b) = app
        .put(
            "/api/v1/users/alice",
            json!({"refillAmount": 0, "refillPolicy": "none"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let path = "/api/v1/users/alice/credits/adjust";
    let good = json!({"amount": 10, "kind": "grant", "reason": "welcome", "idempotencyKey": "k1"});
    refuses(
        &app,
        "POST",
        path,
        good.clone(),
        "/reason",
        &wrong_types(),
        200,
    )
    .await;
    let good = with(&good, "/idempotencyKey", json!("k2"));
    refuses(
        &app,
        "POST",
        path,
        good.clone(),
        "/idempotencyKey",
        &wrong_types_not_null(),
        200,
    )
    .await;
    let good = with(&good, "/idempotencyKey", json!("k3"));
    refuses(&app, "POST", path, good, "/reason", &[json!("")], 200).await;

    let path = "/api/v1/users/alice/credits/spend";
    let good = json!({"blockId": "b1", "amount": 1});
    let mut bad = wrong_types();
    bad.extend([json!(""), json!("a b")]);
    refuses(&app, "POST", path, good, "/blockId", &bad, 200).await;
}

#[tokio::test]
async fn usage_record_fields() {
    let app = TestApp::new().await;
    let path = "/api/v1/usage/records";
    let good = json!({
        "threadId": "t1", "model": "m1", "agentId": "a1",
        "promptTokens": 1, "completionTokens": 1
    });
    let mut bad = wrong_types();
    bad.extend([json!(""), json!("a b"), json!("x".repeat(129))]);
    refuses(&app, "POST", path, good.clone(), "/threadId", &bad, 200).await;
    refuses(
        &app,
        "POST",
        path,
        good.clone(),
        "/model",
        &wrong_types(),
        200,
    )
    .await;
    refuses(
        &app,
        "POST",
        path,
        good.clone(),
        "/agentId",
        &wrong_types_not_null(),
        200,
    )
    .await;
    // inside a batch too
    let batch = json!({"records": [good.clone(), good]});
    refuses(
        &app,
        "POST",
        "/api/v1/usage/records/batch",
        batch,
        "/records/1/threadId",
        &wrong_types(),
        200,
    )
    .await;
    let price = json!({"provider": "p", "promptPerMillion": 1, "completionPerMillion": 2});
    refuses(
        &app,
        "PUT",
        "/api/v1/model-prices/m1",
        price,
        "/provider",
        &wrong_types(),
        200,
    )
    .await;
}

#[tokio::test]
async fn agents_registration_and_state() {
    let app = TestApp::new().await;
    let path = "/api/v1/agents/greeter";
    let good = json!({
        "description": "Greets", "peers": ["shouter"], "payloadClass": "P",
        "config": {"modelProvider": "xai"}
    });
    refuses(
        &app,
        "PUT",
        path,
        good.clone(),
        "/description",
        &wrong_types_not_null(),
        200,
    )
    .await;
    // a peer is a string, null included
    refuses(
        &app,
        "PUT",
        path,
        good.clone(),
        "/peers/0",
        &wrong_types(),
        200,
    )
    .await;
    refuses(
        &app,
        "PUT",
        path,
        good,
        "/config/modelProvider",
        &wrong_types_not_null(),
        200,
    )
    .await;

    let path = "/api/v1/agents/greeter/state";
    let good = json!({"state": "processing", "currentThread": "t1"});
    let mut bad = wrong_types_not_null();
    bad.push(json!("a b"));
    refuses(&app, "PUT", path, good, "/currentThread", &bad, 200).await;
}

#[tokio::test]
async fn messages_inject_and_post() {
    let app = TestApp::new().await;
    let (s, b) = app.put("/api/v1/agents/greeter", json!({})).await;
    assert_eq!(s, 200, "{b}");
    let good = json!({"to": "greeter", "payload": {"x": 1}, "from": "me"});
    let mut bad = wrong_types();
    bad.extend([json!(""), json!("a b")]);
    refuses(
        &app,
        "POST",
        "/api/v1/inject",
        good.clone(),
        "/to",
        &bad,
        200,
    )
    .await;
    refuses(
        &app,
        "POST",
        "/api/v1/inject",
        good,
        "/from",
        &wrong_types_not_null(),
        200,
    )
    .await;

    let good = json!({
        "threadId": "t9", "from": "me", "to": "greeter", "payloadType": "hello",
        "payload": {}
    });
    for field in ["/threadId", "/from", "/to", "/payloadType"] {
        let before = written(&app).await;
        for v in wrong_types() {
            let body = with(&good, field, v);
            let (s, b) = app.post("/api/v1/messages", body.clone()).await;
            assert_eq!(s, 400, "{body} -> {b}");
            assert_eq!(crate::support::error_code(&b), "invalid_request", "{b}");
        }
        assert_eq!(written(&app).await, before);
    }
}

#[tokio::test]
async fn variants_create_and_patch() {
    let app = TestApp::new().await;
    let (s, b) = app.put("/api/v1/agents/bot", json!({})).await;
    assert_eq!(s, 200, "{b}");
    let path = "/api/v1/agents/bot/variants";
    let good = json!({"name": "Fast", "modelName": "m"});
    let mut bad = wrong_types();
    bad.extend([json!(""), json!("x".repeat(201))]);
    refuses(&app, "POST", path, good.clone(), "/name", &bad, 201).await;
    let good = json!({"name": "Slow", "modelName": "m"});
    refuses(
        &app,
        "POST",
        path,
        good,
        "/modelName",
        &wrong_types_not_null(),
        201,
    )
    .await;
}
