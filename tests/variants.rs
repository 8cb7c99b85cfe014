//! Agent variants (docs/variants.md) through HTTP: CRUD, slugs, clone, activation,
//! resolution, performance, metrics, history, compare, reporting view.
//! Property and concurrency tests are in tests/variants_props.rs.

mod common;

use common::variants::agent_config;
use common::{error_code, TestApp};
use serde_json::{json, Value};

const CONFIG_KEYS: [&str; 12] = [
    "modelProvider",
    "modelName",
    "systemPrompt",
    "userPromptTemplate",
    "promptVersion",
    "temperature",
    "maxTokens",
    "contextWindow",
    "inputTokenLimit",
    "tokenBudget",
    "timeoutSeconds",
    "maxRetries",
];

/// Registers an agent directly in agents.agents (the registry API is another domain).
async fn add_agent(app: &TestApp, name: &str) {
    common::variants::add_agent(&app.db.client().await, name).await;
}

fn config_of(v: &Value) -> Value {
    let mut m = serde_json::Map::new();
    for k in CONFIG_KEYS {
        m.insert(k.to_string(), v[k].clone());
    }
    Value::Object(m)
}

async fn count_rows(app: &TestApp, sql: &str) -> i64 {
    app.db
        .client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

async fn variant_rows(app: &TestApp) -> i64 {
    count_rows(app, "SELECT count(*) FROM variants.variants").await
}

async fn events(app: &TestApp, ty: &str) -> Vec<Value> {
    app.db
        .client()
        .await
        .query(
            "SELECT body FROM feed.events WHERE type = $1 ORDER BY id",
            &[&ty],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Value>(0))
        .collect()
}

const V: &str = "/api/v1/agents/bot/variants";

#[tokio::test]
async fn create_copies_agent_config_and_crud_works() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;

    let (s, v) = app
        .post(
            V,
            json!({"name": "Fast & Cheap v2", "temperature": 0.2, "maxTokens": 50}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["slug"], "fast-cheap-v2");
    assert_eq!(v["agentName"], "bot");
    assert_eq!(v["isActive"], false);
    assert!(v["id"].is_string() && v["createdAt"].is_string() && v["updatedAt"].is_string());
    let mut expected = agent_config();
    expected["temperature"] = json!(0.2);
    expected["maxTokens"] = json!(50);
    assert_eq!(config_of(&v), expected);

    // explicit null in create = not given = copied
    let (s, w) = app
        .post(
            V,
            json!({"name": "Other", "slug": "other-1", "modelName": null}),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["slug"], "other-1");
    assert_eq!(config_of(&w), agent_config());

    let (s, list) = app.get(V).await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 2);
    assert_eq!(list["variants"][0]["slug"], "fast-cheap-v2");
    assert_eq!(list["variants"][1]["slug"], "other-1");

    let (s, got) = app.get(&format!("{V}/fast-cheap-v2")).await;
    assert_eq!(s, 200);
    assert_eq!(got, v);

    let (s, d) = app.delete(&format!("{V}/other-1")).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["success"], true);
    assert_eq!(d["variantSlug"], "other-1");
    let (s, e) = app.get(&format!("{V}/other-1")).await;
    assert_eq!((s, error_code(&e)), (404, "variant_not_found"));
    let (s, e) = app.delete(&format!("{V}/other-1")).await;
    assert_eq!((s, error_code(&e)), (404, "variant_not_found"));

    // unknown agent on every kind of endpoint
    for (m, p) in [
        ("GET", "/api/v1/agents/ghost/variants"),
        ("POST", "/api/v1/agents/ghost/variants"),
        ("GET", "/api/v1/agents/ghost/variants/x"),
        ("GET", "/api/v1/agents/ghost/variants/compare"),
        ("POST", "/api/v1/agents/ghost/variants/deactivate"),
        ("POST", "/api/v1/agents/ghost/variants/x/activate"),
        ("GET", "/api/v1/agents/ghost/resolved-config"),
    ] {
        let body = json!({"name": "x"});
        let (s, e) = app.call(m, p, Some(common::ADMIN_KEY), Some(&body)).await;
        assert_eq!((s, error_code(&e)), (404, "agent_not_found"), "{m} {p}");
    }
    let (s, e) = app
        .post(
            "/api/v1/agents/ghost/performance",
            json!({"success": true, "latencyMs": 1}),
        )
        .await;
    assert_eq!((s, error_code(&e)), (404, "agent_not_found"));
}

#[tokio::test]
async fn static_routes_are_not_captured_by_slug() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    let (s, c) = app.get(&format!("{V}/compare")).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["count"], 0);
    assert_eq!(c["variants"], json!([]));
    let (s, c) = app.post(&format!("{V}/clone"), json!({"name": "c1"})).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["slug"], "c1");
    let (s, d) = app.post(&format!("{V}/deactivate"), json!({})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["changed"], false);
    let (s, g) = app.get(&format!("{V}/c1")).await;
    assert_eq!(s, 200, "{g}");
}

#[tokio::test]
async fn slug_rules() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    for (name, slug) in [
        ("  Hello,  World -- 2 ", "hello-world-2"),
        ("GPT-4o (Mini)", "gpt-4o-mini"),
        ("ÄBC déf", "bc-d-f"),
        ("x", "x"),
    ] {
        let (s, v) = app.post(V, json!({"name": name})).await;
        assert_eq!(s, 201, "{name}: {v}");
        assert_eq!(v["slug"], slug, "{name}");
    }
    let before = variant_rows(&app).await;
    // taken within the agent
    let (s, e) = app.post(V, json!({"name": "Hello world 2"})).await;
    assert_eq!((s, error_code(&e)), (409, "slug_taken"));
    let (s, e) = app.post(V, json!({"name": "y", "slug": "x"})).await;
    assert_eq!((s, error_code(&e)), (409, "slug_taken"));
    // a name with no ASCII letter or digit needs a slug
    let (s, e) = app.post(V, json!({"name": "éé — ü"})).await;
    assert_eq!((s, error_code(&e)), (400, "slug_required"));
    // a given slug must already be a slug
    for bad in ["Bad", "a--b", "-a", "a-", "a b", "a_b", "", "é"] {
        let (s, e) = app.post(V, json!({"name": "n", "slug": bad})).await;
        assert_eq!(s, 400, "{bad}: {e}");
        error_code(&e);
    }
    // reserved, given or derived
    for r in ["clone", "compare", "deactivate"] {
        let (s, e) = app.post(V, json!({"name": "n", "slug": r})).await;
        assert_eq!((s, error_code(&e)), (400, "reserved_slug"), "{r}");
        let (s, e) = app.post(V, json!({"name": r.to_uppercase()})).await;
        assert_eq!((s, error_code(&e)), (400, "reserved_slug"), "{r}");
        let (s, e) = app.post(&format!("{V}/clone"), json!({"name": r})).await;
        assert_eq!((s, error_code(&e)), (400, "reserved_slug"), "{r}");
    }
    assert_eq!(variant_rows(&app).await, before);
    // the same slug under another agent is fine
    add_agent(&app, "bot2").await;
    let (s, _) = app
        .post("/api/v1/agents/bot2/variants", json!({"name": "x"}))
        .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn bad_input_is_400_and_writes_nothing() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    let (s, _) = app.post(V, json!({"name": "base"})).await;
    assert_eq!(s, 201);
    let events_before = count_rows(&app, "SELECT count(*) FROM feed.events").await;
    let long = "x".repeat(100_001);
    let bad_bodies = [
        json!({}),
        json!({"name": ""}),
        json!({"name": "n".repeat(201)}),
        json!({"name": 5}),
        json!({"name": "n", "temperature": 2.5}),
        json!({"name": "n", "temperature": -0.1}),
        json!({"name": "n", "temperature": "hot"}),
        json!({"name": "n", "maxTokens": 0}),
        json!({"name": "n", "maxTokens": 1.5}),
        json!({"name": "n", "maxTokens": "10"}),
        json!({"name": "n", "timeoutSeconds": 0}),
        json!({"name": "n", "maxRetries": 11}),
        json!({"name": "n", "maxRetries": -1}),
        json!({"name": "n", "contextWindow": -1}),
        json!({"name": "n", "tokenBudget": -5}),
        json!({"name": "n", "systemPrompt": long}),
        json!({"name": "n", "modelName": 42}),
        json!({"name": "n", "bogus": 1}),
        json!([1, 2]),
        json!("text"),
    ];
    for b in &bad_bodies {
        let (s, e) = app.post(V, b.clone()).await;
        assert_eq!(s, 400, "{b}: {e}");
        error_code(&e);
    }
    // 100,000 characters is fine
    let ok = "y".repeat(100_000);
    let (s, v) = app
        .post(V, json!({"name": "long", "systemPrompt": ok}))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = app.delete(&format!("{V}/long")).await;
    assert_eq!(s, 200);

    // PATCH
    for b in [
        json!({"name": null}),
        json!({"name": ""}),
        json!({"temperature": 3}),
        json!({"maxTokens": 0}),
        json!({"maxRetries": "2"}),
        json!({"slug": "new"}),
        json!({"isActive": true}),
        json!({"systemPrompt": long}),
        json!(7),
    ] {
        let (s, e) = app.patch(&format!("{V}/base"), b.clone()).await;
        assert_eq!(s, 400, "{b}: {e}");
        error_code(&e);
    }
    // clone
    for b in [
        json!({}),
        json!({"name": "c", "overrides": {"temperature": 9}}),
        json!({"name": "c", "overrides": {"name": "other"}}),
        json!({"name": "c", "overrides": {"bogus": 1}}),
        json!({"name": "c", "overrides": 5}),
        json!({"name": "c", "source": "bad slug!"}),
    ] {
        let (s, e) = app.post(&format!("{V}/clone"), b.clone()).await;
        assert_eq!(s, 400, "{b}: {e}");
        error_code(&e);
    }
    // performance
    for b in [
        json!({"latencyMs": 5}),
        json!({"success": true}),
        json!({"success": "yes", "latencyMs": 5}),
        json!({"success": true, "latencyMs": -1}),
        json!({"success": true, "latencyMs": 5, "promptTokens": -1}),
        json!({"success": true, "latencyMs": 5, "completionTokens": 1.5}),
        json!({"success": true, "latencyMs": 5, "cost": -0.01}),
        json!({"success": true, "latencyMs": 5, "at": "yesterday"}),
        json!({"success": true, "latencyMs": 5, "variantSlug": "a b"}),
        json!({"success": true, "latencyMs": 5, "error": long}),
    ] {
        let (s, e) = app.post("/api/v1/agents/bot/performance", b.clone()).await;
        assert_eq!(s, 400, "{b}: {e}");
        error_code(&e);
    }
    // paths and queries
    for p in [
        "/api/v1/agents/bad%20name/variants",
        "/api/v1/agents/bot/variants/bad%20slug",
        "/api/v1/agents/bot/variants/base/history?bucket=week",
        "/api/v1/agents/bot/variants/base/metrics?start=notatime",
        "/api/v1/agents/bot/variants/base/metrics?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
        "/api/v1/agents/bot/variants/compare?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
    ] {
        let (s, e) = app.get(p).await;
        assert_eq!(s, 400, "{p}: {e}");
        error_code(&e);
    }
    assert_eq!(variant_rows(&app).await, 1);
    let (_, base) = app.get(&format!("{V}/base")).await;
    assert_eq!(config_of(&base), agent_config());
    assert_eq!(base["name"], "base");
    assert_eq!(
        count_rows(&app, "SELECT count(*) FROM variants.performance").await,
        0
    );
    // only the create+delete of "long" wrote events
    assert_eq!(
        count_rows(&app, "SELECT count(*) FROM feed.events").await,
        events_before + 2
    );
}

#[tokio::test]
async fn patch_changes_only_given_fields_and_null_falls_back() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    let (_, v) = app.post(V, json!({"name": "a", "temperature": 0.1})).await;
    let patch = json!({"temperature": null, "modelName": "gpt-5", "name": "A2", "maxRetries": 9});
    let (s, p1) = app.patch(&format!("{V}/a"), patch.clone()).await;
    assert_eq!(s, 200, "{p1}");
    assert_eq!(p1["temperature"], Value::Null);
    assert_eq!(p1["modelName"], "gpt-5");
    assert_eq!(p1["maxRetries"], 9);
    assert_eq!(p1["name"], "A2");
    assert_eq!(p1["slug"], "a");
    for k in CONFIG_KEYS {
        if !["temperature", "modelName", "maxRetries"].contains(&k) {
            assert_eq!(p1[k], v[k], "{k}");
        }
    }
    let (s, p2) = app.patch(&format!("{V}/a"), patch).await;
    assert_eq!(s, 200);
    assert_eq!(p1, p2, "the same PATCH twice leaves the same state");
    // an empty patch changes nothing
    let (s, p3) = app.patch(&format!("{V}/a"), json!({})).await;
    assert_eq!((s, &p3), (200, &p1));
    assert_eq!(events(&app, "variant.updated").await.len(), 1);

    // the cleared field resolves to the agent's value
    let (s, _) = app.post(&format!("{V}/a/activate"), json!({})).await;
    assert_eq!(s, 200);
    let (_, r) = app.get("/api/v1/agents/bot/resolved-config").await;
    assert_eq!(r["temperature"], 0.7);
    assert_eq!(r["modelName"], "gpt-5");
    assert_eq!(r["maxRetries"], 9);
}

#[tokio::test]
async fn clone_from_agent_and_from_variant() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    let (s, from_agent) = app
        .post(&format!("{V}/clone"), json!({"name": "Plain copy"}))
        .await;
    assert_eq!(s, 201, "{from_agent}");
    assert_eq!(from_agent["slug"], "plain-copy");
    assert_eq!(config_of(&from_agent), agent_config());

    let (_, src) = app
        .post(
            V,
            json!({"name": "src", "systemPrompt": "Be long.", "maxTokens": 5}),
        )
        .await;
    let (s, c) = app
        .post(
            &format!("{V}/clone"),
            json!({"source": "src", "name": "Src copy", "slug": "src-2",
                   "overrides": {"temperature": 1.5, "maxTokens": null}}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["slug"], "src-2");
    assert_eq!(c["name"], "Src copy");
    assert_eq!(c["isActive"], false);
    let mut expected = config_of(&src);
    expected["temperature"] = json!(1.5);
    expected["maxTokens"] = Value::Null;
    assert_eq!(config_of(&c), expected);

    // no overrides: equal to the source
    let (s, same) = app
        .post(
            &format!("{V}/clone"),
            json!({"source": "src", "name": "src 3", "overrides": {}}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(config_of(&same), config_of(&src));

    let (s, e) = app
        .post(
            &format!("{V}/clone"),
            json!({"source": "nope", "name": "z"}),
        )
        .await;
    assert_eq!((s, error_code(&e)), (404, "variant_not_found"));
    let (s, e) = app
        .post(
            &format!("{V}/clone"),
            json!({"source": "src", "name": "src"}),
        )
        .await;
    assert_eq!((s, error_code(&e)), (409, "slug_taken"));
}

#[tokio::test]
async fn activation_rules_and_events() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    for n in ["a", "b"] {
        let (s, _) = app.post(V, json!({"name": n})).await;
        assert_eq!(s, 201);
    }
    let (s, a) = app.post(&format!("{V}/a/activate"), json!({})).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["isActive"], true);
    let (s, b) = app.post(&format!("{V}/b/activate"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(b["isActive"], true);
    let (_, a_now) = app.get(&format!("{V}/a")).await;
    assert_eq!(a_now["isActive"], false);
    // activating the active one: 200 no-op, no event
    let (s, b2) = app.post(&format!("{V}/b/activate"), json!({})).await;
    assert_eq!((s, b2["isActive"].clone()), (200, json!(true)));
    let ev = events(&app, "variant.activated").await;
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1]["agent"], "bot");
    assert_eq!(ev[1]["data"]["variantSlug"], "b");
    assert_eq!(ev[1]["data"]["variantId"], b["id"]);
    assert_eq!(ev[1]["data"]["previousVariantSlug"], "a");

    let (s, e) = app.delete(&format!("{V}/b")).await;
    assert_eq!((s, error_code(&e)), (409, "variant_active"));
    let (s, e) = app.post(&format!("{V}/zzz/activate"), json!({})).await;
    assert_eq!((s, error_code(&e)), (404, "variant_not_found"));

    let (s, d) = app.post(&format!("{V}/deactivate"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(d["changed"], true);
    assert_eq!(d["variantSlug"], "b");
    let (s, d) = app.post(&format!("{V}/deactivate"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(d["changed"], false);
    assert_eq!(d["variantId"], Value::Null);
    assert_eq!(events(&app, "variant.deactivated").await.len(), 1);
    let (s, _) = app.delete(&format!("{V}/b")).await;
    assert_eq!(s, 200);

    // roles: a reader reads but cannot change
    let reader = app.key("reader", None).await;
    let (s, _) = app.call("GET", V, Some(&reader), None).await;
    assert_eq!(s, 200);
    let (s, e) = app
        .call(
            "POST",
            &format!("{V}/a/activate"),
            Some(&reader),
            Some(&json!({})),
        )
        .await;
    assert_eq!((s, error_code(&e)), (403, "forbidden"));
    let (s, _) = app.call("GET", V, None, None).await;
    assert_eq!(s, 401);
    let service = app.key("service", None).await;
    let (s, _) = app
        .call(
            "POST",
            &format!("{V}/a/activate"),
            Some(&service),
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn resolution_falls_back_field_by_field() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    let (s, r) = app.get("/api/v1/agents/bot/resolved-config").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["agentName"], "bot");
    assert_eq!(r["variantId"], Value::Null);
    assert_eq!(r["variantSlug"], Value::Null);
    assert_eq!(config_of(&r), agent_config());

    let (_, v) = app
        .post(
            V,
            json!({"name": "v", "modelName": "claude", "temperature": 0.0, "maxRetries": 0}),
        )
        .await;
    app.post(&format!("{V}/v/activate"), json!({})).await;
    let (_, r) = app.get("/api/v1/agents/bot/resolved-config").await;
    assert_eq!(r["variantId"], v["id"]);
    assert_eq!(r["variantSlug"], "v");
    let mut expected = agent_config();
    expected["modelName"] = json!("claude");
    expected["temperature"] = json!(0.0);
    expected["maxRetries"] = json!(0);
    assert_eq!(config_of(&r), expected);

    // null variant fields fall back to the agent's, one by one
    app.patch(
        &format!("{V}/v"),
        json!({"modelName": null, "systemPrompt": null}),
    )
    .await;
    // and a later change to the agent shows through a null field
    app.db
        .client()
        .await
        .execute(
            "UPDATE agents.agents SET system_prompt = 'Changed.' WHERE name = 'bot'",
            &[],
        )
        .await
        .unwrap();
    let (_, r) = app.get("/api/v1/agents/bot/resolved-config").await;
    assert_eq!(r["modelName"], "gpt-4o");
    assert_eq!(r["systemPrompt"], "Changed.");
    assert_eq!(r["maxRetries"], 0);
}

#[tokio::test]
async fn performance_attribution_and_metrics() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    for n in ["a", "b"] {
        app.post(V, json!({"name": n})).await;
    }
    let perf = "/api/v1/agents/bot/performance";
    // none active, no slug: unattributed
    let (s, r) = app
        .post(perf, json!({"success": true, "latencyMs": 5}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["variantId"], Value::Null);
    let c = app.db.client().await;
    app.post(&format!("{V}/a/activate"), json!({})).await;
    let t_a: chrono::DateTime<chrono::Utc> = c
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .unwrap()
        .get(0);
    app.post(&format!("{V}/b/activate"), json!({})).await;
    // no slug, no time: the variant active now
    let (_, r) = app
        .post(perf, json!({"success": true, "latencyMs": 5}))
        .await;
    assert_eq!(r["variantSlug"], "b");
    // a past time: the variant active then
    let (_, r) = app
        .post(
            perf,
            json!({"success": true, "latencyMs": 5, "at": t_a.to_rfc3339()}),
        )
        .await;
    assert_eq!(r["variantSlug"], "a", "{r}");
    let before = t_a - chrono::Duration::days(1);
    let (_, r) = app
        .post(
            perf,
            json!({"success": true, "latencyMs": 5, "at": before.to_rfc3339()}),
        )
        .await;
    assert_eq!(r["variantId"], Value::Null);
    // explicit slug wins
    let (_, r) = app
        .post(
            perf,
            json!({"success": false, "latencyMs": 5, "variantSlug": "a", "error": "boom"}),
        )
        .await;
    assert_eq!(r["variantSlug"], "a");
    assert_eq!(r["error"], "boom");
    let (s, e) = app
        .post(
            perf,
            json!({"success": true, "latencyMs": 5, "variantSlug": "nope"}),
        )
        .await;
    assert_eq!((s, error_code(&e)), (404, "variant_not_found"));
    app.post(&format!("{V}/deactivate"), json!({})).await;
    let (_, r) = app
        .post(
            perf,
            json!({"success": true, "latencyMs": 5, "at": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    assert_eq!(r["variantId"], Value::Null);
}

#[tokio::test]
async fn metrics_on_a_known_log() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    app.post(V, json!({"name": "m"})).await;
    app.post(V, json!({"name": "idle"})).await;
    let perf = "/api/v1/agents/bot/performance";
    // 10 runs, 8 successes (runs 3 and 7 fail), latencies 100..1000 given in
    // shuffled order, 10+5 tokens and $0.0015 each, two quality scores.
    let latencies = [
        700.0, 100.0, 1000.0, 300.0, 500.0, 200.0, 900.0, 400.0, 800.0, 600.0,
    ];
    for (i, lat) in latencies.iter().enumerate() {
        let mut b = json!({
            "success": i != 3 && i != 7, "latencyMs": lat, "promptTokens": 10,
            "completionTokens": 5, "cost": 0.0015, "variantSlug": "m",
            "at": format!("2026-03-01T{:02}:30:00Z", 10 + i / 4),
        });
        if i == 0 {
            b["qualityScore"] = json!(0.5);
        }
        if i == 1 {
            b["qualityScore"] = json!(1.0);
        }
        let (s, r) = app.post(perf, b).await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, m) = app.get(&format!("{V}/m/metrics")).await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["runs"], 10);
    assert_eq!(m["successRate"], 0.8);
    assert_eq!(m["avgLatencyMs"], 550.0);
    // percentile_cont: position p*(n-1) in the sorted list, interpolated.
    // p50: 0.5*9 = 4.5 → 500 + 0.5*(600-500) = 550
    // p95: 0.95*9 = 8.55 → 900 + 0.55*(1000-900) = 955
    assert!(
        (m["p50LatencyMs"].as_f64().unwrap() - 550.0).abs() < 1e-9,
        "{m}"
    );
    assert!(
        (m["p95LatencyMs"].as_f64().unwrap() - 955.0).abs() < 1e-9,
        "{m}"
    );
    assert_eq!(m["totalTokens"], 150);
    assert_eq!(m["totalCost"], 0.015);
    assert_eq!(m["avgQualityScore"], 0.75);
    assert_eq!(m["variantSlug"], "m");

    // a window: [10:00, 11:00) holds runs 0-3 (latencies 700,100,1000,300; run 3 failed)
    let (_, w) = app
        .get(&format!(
            "{V}/m/metrics?start=2026-03-01T10:00:00Z&end=2026-03-01T11:00:00Z"
        ))
        .await;
    assert_eq!(w["runs"], 4);
    assert_eq!(w["successRate"], 0.75);
    assert_eq!(w["avgLatencyMs"], 525.0);
    // sorted 100,300,700,1000: p50 at 1.5 → 300 + 0.5*400 = 500
    assert!((w["p50LatencyMs"].as_f64().unwrap() - 500.0).abs() < 1e-9);

    // no runs
    let (_, e) = app.get(&format!("{V}/idle/metrics")).await;
    assert_eq!(e["runs"], 0);
    assert_eq!(e["successRate"], Value::Null);
    assert_eq!(e["avgLatencyMs"], Value::Null);
    assert_eq!(e["totalTokens"], 0);
    assert_eq!(e["totalCost"], 0.0);

    // hourly history: 10:xx runs 0-3, 11:xx runs 4-7, 12:xx runs 8-9
    let (s, h) = app.get(&format!("{V}/m/history?bucket=hour")).await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["bucket"], "hour");
    assert_eq!(h["count"], 3);
    let pts = h["points"].as_array().unwrap();
    assert_eq!(
        pts[0]["bucketStart"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        "2026-03-01T10:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(
        pts.iter()
            .map(|p| p["runs"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    assert_eq!(pts[1]["successRate"], 0.75);
    assert_eq!(pts[2]["avgLatencyMs"], 700.0);
    // daily (the default bucket): one point equal to the metrics
    let (_, d) = app.get(&format!("{V}/m/history")).await;
    assert_eq!(d["bucket"], "day");
    assert_eq!(d["count"], 1);
    assert_eq!(d["points"][0]["runs"], 10);
    assert_eq!(d["points"][0]["p95LatencyMs"], m["p95LatencyMs"]);
    let (_, d) = app
        .get(&format!(
            "{V}/m/history?bucket=day&start=2026-03-02T00:00:00Z"
        ))
        .await;
    assert_eq!(d["count"], 0);

    // compare: every variant side by side
    let (s, c) = app.get(&format!("{V}/compare")).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["count"], 2);
    assert_eq!(c["variants"][0]["variantSlug"], "m");
    assert_eq!(c["variants"][0]["runs"], 10);
    assert_eq!(c["variants"][0]["p50LatencyMs"], m["p50LatencyMs"]);
    assert_eq!(c["variants"][1]["variantSlug"], "idle");
    assert_eq!(c["variants"][1]["runs"], 0);

    // the reporting view, read by the reporting role
    let client = app.db.client().await;
    client
        .batch_execute("SET ROLE agentplane_reporting")
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT variant_slug, day::text, runs, successes, success_rate, avg_latency_ms, \
             p50_latency_ms, p95_latency_ms, total_tokens::bigint, total_cost::float8, \
             avg_quality_score FROM reporting.variant_performance WHERE agent_name = 'bot'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("m"));
    assert_eq!(row.get::<_, String>(1), "2026-03-01");
    assert_eq!(row.get::<_, i64>(2), 10);
    assert_eq!(row.get::<_, i64>(3), 8);
    assert_eq!(row.get::<_, f64>(4), 0.8);
    assert_eq!(row.get::<_, f64>(5), 550.0);
    assert!((row.get::<_, f64>(7) - 955.0).abs() < 1e-9);
    assert_eq!(row.get::<_, i64>(8), 150);
    assert_eq!(row.get::<_, f64>(9), 0.015);
    assert_eq!(row.get::<_, f64>(10), 0.75);
    assert!(client
        .query("SELECT * FROM variants.performance", &[])
        .await
        .is_err());
}
