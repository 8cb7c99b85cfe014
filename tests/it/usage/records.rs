//! Single records: totals by agent and by model, bad input, roles.

use super::*;

#[tokio::test]
async fn one_record_gives_totals_by_agent_and_model() {
    let app = TestApp::new().await;
    let b = post_record(
        &app,
        json!({"threadId": "th-1", "agentId": "a1", "model": "grok-4.1",
               "promptTokens": 100, "completionTokens": 50, "latencyMs": 120}),
    )
    .await;
    assert_eq!(b["totalTokens"], 150);
    assert_eq!(b["cost"].as_f64(), Some(0.00105));
    assert!(b["id"].as_i64().is_some());
    assert_eq!(b["budget"]["totalTokens"], 150);
    assert_eq!(b["budget"]["maxTokens"], 100000);

    let (s, o) = app.get("/api/v1/usage").await;
    assert_eq!(s, 200, "{o}");
    let t = &o["usage"]["totals"];
    assert_eq!(t["totalTokens"], 150);
    assert_eq!(t["promptTokens"], 100);
    assert_eq!(t["completionTokens"], 50);
    assert_eq!(t["requestCount"], 1);
    assert_eq!(t["avgLatencyMs"].as_f64(), Some(120.0));
    assert_eq!(o["usage"]["byAgent"].as_array().unwrap().len(), 1);
    assert_eq!(o["usage"]["byAgent"][0]["agentId"], "a1");
    assert_eq!(o["usage"]["byModel"].as_array().unwrap().len(), 1);
    assert_eq!(o["usage"]["byModel"][0]["model"], "grok-4.1");
    assert_eq!(o["usage"]["activeThreads"], 1);

    // one `usage` event for the record, carrying its subjects
    let c = app.db.client().await;
    let ev = c
        .query_one(
            "SELECT thread_id, agents, body FROM feed.events WHERE type = 'usage'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ev.get::<_, Option<String>>(0).as_deref(), Some("th-1"));
    assert_eq!(ev.get::<_, Vec<String>>(1), vec!["a1".to_string()]);
    assert_eq!(ev.get::<_, Value>(2)["data"]["totalTokens"], 150);
}

#[tokio::test]
async fn agent_and_model_totals() {
    let app = TestApp::new().await;
    for (p, c) in [(1000, 500), (2000, 1000)] {
        post_record(
            &app,
            json!({"threadId": "th", "agentId": "planner", "model": "gpt-4o",
                   "promptTokens": p, "completionTokens": c}),
        )
        .await;
    }
    let (s, a) = app.get("/api/v1/usage/agents/planner").await;
    assert_eq!(s, 200);
    assert_eq!(a["agentId"], "planner");
    assert_eq!(a["totalTokens"], 4500);
    assert_eq!(a["promptTokens"], 3000);
    assert_eq!(a["completionTokens"], 1500);
    assert_eq!(a["requestCount"], 2);
    // 3000 * 2.5/1M + 1500 * 10/1M
    assert_eq!(a["totalCost"].as_f64(), Some(0.0225));

    let (s, m) = app.get("/api/v1/usage/models/GPT-4o").await;
    assert_eq!(s, 200);
    assert_eq!(m["model"], "gpt-4o");
    assert_eq!(m["totalTokens"], 4500);
    assert_eq!(m["requestCount"], 2);

    // unknown agent/model: zeros, not 404
    let (s, z) = app.get("/api/v1/usage/agents/nobody").await;
    assert_eq!(s, 200);
    assert_eq!(z["totalTokens"], 0);
    assert_eq!(z["requestCount"], 0);
    assert_eq!(z["totalCost"].as_f64(), Some(0.0));
    let (s, z) = app.get("/api/v1/usage/models/nothing").await;
    assert_eq!(s, 200);
    assert_eq!(z["requestCount"], 0);
    // bad ids
    let (s, b) = app.get("/api/v1/usage/agents/bad%20id").await;
    assert_eq!(s, 400, "{b}");
    error_code(&b);
}

#[tokio::test]
async fn bad_single_records_write_nothing() {
    let app = TestApp::new().await;
    for bad in [
        json!({"threadId": "t", "model": "o1", "promptTokens": -1, "completionTokens": 1}),
        json!({"threadId": "t", "model": "o1", "promptTokens": 1, "completionTokens": -1}),
        json!({"threadId": "t", "promptTokens": 1, "completionTokens": 1}),
        json!({"threadId": "t", "model": "", "promptTokens": 1, "completionTokens": 1}),
        json!({"model": "o1", "promptTokens": 1, "completionTokens": 1}),
        json!({"threadId": "t", "model": "o1", "promptTokens": "many", "completionTokens": 1}),
        json!({"threadId": "t", "model": "o1", "promptTokens": 1.5, "completionTokens": 1}),
        json!({"threadId": "t", "model": "o1", "promptTokens": 1, "completionTokens": 1, "latencyMs": -3}),
        json!({"threadId": "bad id!", "model": "o1", "promptTokens": 1, "completionTokens": 1}),
        json!({"threadId": "t", "agentId": "a b", "model": "o1", "promptTokens": 1, "completionTokens": 1}),
        json!({"threadId": "t", "model": "o1", "promptTokens": 1, "completionTokens": 1, "userId": ""}),
        json!({"threadId": "t", "model": "o1", "promptTokens": 1, "completionTokens": 1, "at": "yesterday"}),
        json!({"threadId": "t", "model": "o1", "promptTokens": 1, "completionTokens": 1, "metadata": 5}),
        json!([]),
    ] {
        let (s, b) = app.post("/api/v1/usage/records", bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {b}");
        error_code(&b);
    }
    assert_eq!(written(&app).await, 0);
    // bad query parameters
    for path in [
        "/api/v1/usage/history?limit=0",
        "/api/v1/usage/history?limit=101",
        "/api/v1/usage/history?after=abc",
        "/api/v1/usage/history?start=notatime",
        "/api/v1/usage/history?threadId=a%20b",
        "/api/v1/usage/daily?end=13",
        "/api/v1/usage/threads?limit=1000",
    ] {
        let (s, b) = app.get(path).await;
        assert_eq!(s, 400, "{path}: {b}");
        error_code(&b);
    }
}

#[tokio::test]
async fn roles() {
    let app = TestApp::new().await;
    let reader = app.key("reader", None).await;
    let service = app.key("service", None).await;
    let body = json!({"threadId": "t", "model": "o1", "promptTokens": 1, "completionTokens": 1});
    let (s, _) = app
        .call("POST", "/api/v1/usage/records", Some(&reader), Some(&body))
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .call("POST", "/api/v1/usage/records", Some(&service), Some(&body))
        .await;
    assert_eq!(s, 200);
    let (s, _) = app.call("GET", "/api/v1/usage", Some(&reader), None).await;
    assert_eq!(s, 200);
    let (s, _) = app.call("GET", "/api/v1/usage", None, None).await;
    assert_eq!(s, 401);
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/usage/reset",
            Some(&service),
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, 403);
    let price = json!({"provider": "x", "promptPerMillion": 1, "completionPerMillion": 1});
    let (s, _) = app
        .call(
            "PUT",
            "/api/v1/model-prices/m",
            Some(&service),
            Some(&price),
        )
        .await;
    assert_eq!(s, 403);
}
