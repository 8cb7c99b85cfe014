//! Activation and the field-by-field resolution of the active variant.

use super::*;

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
