//! Bad input is a 400 and writes nothing.

use super::*;

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
