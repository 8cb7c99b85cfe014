//! Create, read, update, delete; slugs; patch; clone.

use super::*;

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
        let (s, e) = app
            .call(m, p, Some(crate::support::ADMIN_KEY), Some(&body))
            .await;
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
