//! Model prices: exact costs, rounding, versions looked up by longest prefix,
//! unknown models.

use super::*;

#[tokio::test]
async fn a_million_tokens_each_way_on_grok_costs_exactly_18() {
    let app = TestApp::new().await;
    let b = post_record(
        &app,
        json!({"threadId": "big", "model": "grok-4.1",
               "promptTokens": 1_000_000, "completionTokens": 1_000_000}),
    )
    .await;
    assert_eq!(b["cost"].as_f64(), Some(18.0));
    let (_, o) = app.get("/api/v1/usage").await;
    assert_eq!(o["usage"]["totals"]["totalCost"].as_f64(), Some(18.0));
    // exact in the database too
    let c = app.db.client().await;
    let exact: bool = c
        .query_one("SELECT cost = 18 FROM usage.records", &[])
        .await
        .unwrap()
        .get(0);
    assert!(exact);
}

#[tokio::test]
async fn costs_round_half_up_to_the_micro_dollar_at_any_price() {
    // Costs are stored in whole micro-USD and computed in integers below
    // 4,000 USD per million tokens, in numeric above: both must give
    // round((pt * ppm + ct * cpm) / 1e6, 6), half up.
    let app = TestApp::new().await;
    let c = app.db.client().await;
    c.batch_execute(
        "SELECT usage.set_price('cheap', 'x', 0.000001, 0.000003);
         SELECT usage.set_price('dear', 'x', 999999999.999999, 4000.000001);
         SELECT usage.set_price('edge', 'x', 4000, 4000);",
    )
    .await
    .unwrap();
    let cases: [(&str, i64, i64); 8] = [
        ("cheap", 1, 0),       // 1e-12 USD: rounds to 0
        ("cheap", 500_000, 0), // 0.5e-6 exactly: half up to 0.000001
        ("cheap", 499_999, 0), // just under half: 0
        ("cheap", 0, 166_667), // 0.500001e-6: 0.000001
        ("dear", 1_000_000_000, 1_000_000_000),
        ("dear", 7, 0),
        ("edge", 1_000_000_000, 1_000_000_000),
        ("edge", 123_456_789, 987_654_321),
    ];
    for (i, (model, p, ct)) in cases.iter().enumerate() {
        let b = post_record(
            &app,
            json!({"threadId": format!("t{i}"), "model": model,
                   "promptTokens": p, "completionTokens": ct}),
        )
        .await;
        assert!(b["id"].is_i64(), "{b}");
    }
    let rows = c
        .query(
            "SELECT r.thread_id, r.cost::text,
                    round((r.prompt_tokens * p.prompt_per_million
                           + r.completion_tokens * p.completion_per_million) / 1000000, 6)::text
             FROM usage.records r JOIN usage.model_prices p ON p.id = r.price_id
             ORDER BY r.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), cases.len());
    for r in &rows {
        let (t, got, want): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(got, want, "record {t}");
    }
    let got: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(got[0], "0.000000");
    assert_eq!(got[1], "0.000001");
    assert_eq!(got[2], "0.000000");
    assert_eq!(got[3], "0.000001");
    assert_eq!(got[4], "1000004000000.000000");
    assert_eq!(got[6], "8000000.000000");
    // the totals agree with the records, through the fold and through a batch
    let (_, o) = app.get("/api/v1/usage").await;
    let total = text(&c, "SELECT sum(cost)::text FROM usage.records").await;
    assert_eq!(
        o["usage"]["totals"]["totalCost"].as_f64(),
        total.parse::<f64>().ok()
    );
    let batch = app
        .post(
            "/api/v1/usage/records/batch",
            json!({"records": [
                {"threadId": "b", "model": "cheap", "promptTokens": 500_000, "completionTokens": 0},
                {"threadId": "b", "model": "dear", "promptTokens": 1, "completionTokens": 1}
            ]}),
        )
        .await;
    assert_eq!(batch.0, 200, "{}", batch.1);
    assert_eq!(batch.1["totalCost"].as_f64(), Some(1000.004001));
    // ten of the dearest records: their micro-USD sum passes 2^63, in the
    // batch's total and in the fold's sums alike
    let dear: Vec<Value> = (0..10)
        .map(|_| {
            json!({"threadId": "d", "agentId": "rich", "model": "dear",
                        "promptTokens": 1_000_000_000i64, "completionTokens": 1_000_000_000i64})
        })
        .collect();
    let (s, b) = app
        .post("/api/v1/usage/records/batch", json!({"records": dear}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["totalCost"].as_f64(), Some(10_000_040_000_000.0));
    c.execute("SELECT usage.fold()", &[]).await.unwrap();
    let (s, a) = app.get("/api/v1/usage/agents/rich").await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["totalCost"].as_f64(), Some(10_000_040_000_000.0));
    let rollup = text(
        &c,
        "SELECT sum(cost)::text FROM usage.agent_rollup WHERE agent_id = 'rich'",
    )
    .await;
    assert_eq!(rollup, "10000040000000.000000");
}

#[tokio::test]
async fn prices_are_versioned_and_looked_up_by_longest_prefix() {
    let app = TestApp::new().await;
    let (s, l) = app.get("/api/v1/model-prices").await;
    assert_eq!(s, 200);
    let prices = l["modelPrices"].as_array().unwrap();
    assert_eq!(prices.len(), 9);
    let gpt = prices.iter().find(|p| p["model"] == "gpt-4o-mini").unwrap();
    assert_eq!(gpt["promptPerMillion"].as_f64(), Some(0.15));
    assert_eq!(gpt["completionPerMillion"].as_f64(), Some(0.6));

    let first = post_record(
        &app,
        json!({"threadId": "p", "model": "claude-sonnet-4-20250514",
               "promptTokens": 200_000, "completionTokens": 0}),
    )
    .await;
    // (200,000 prompt tokens: not above the shipped long-context tier)
    assert_eq!(first["cost"].as_f64(), Some(0.6));
    // case-insensitive, longest prefix (gpt-4o-mini, not gpt-4o)
    let b = post_record(
        &app,
        json!({"threadId": "p", "model": "GPT-4o-Mini-2024", "promptTokens": 1_000_000,
               "completionTokens": 1_000_000}),
    )
    .await;
    assert_eq!(b["cost"].as_f64(), Some(0.75));
    let c = app.db.client().await;
    let m = text(
        &c,
        "SELECT model FROM usage.price_at('Claude-Sonnet-4-20250514', now())",
    )
    .await;
    assert_eq!(m, "claude-sonnet-4");

    // a new price applies from now on; the old record keeps its cost
    let (s, p) = app
        .put(
            "/api/v1/model-prices/Claude-Sonnet-4",
            json!({"provider": "anthropic", "promptPerMillion": 4, "completionPerMillion": 20}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["model"], "claude-sonnet-4");
    assert_eq!(p["promptPerMillion"].as_f64(), Some(4.0));
    let second = post_record(
        &app,
        json!({"threadId": "p", "model": "claude-sonnet-4-20250514",
               "promptTokens": 1_000_000, "completionTokens": 0}),
    )
    .await;
    // (the new version has no tiers)
    assert_eq!(second["cost"].as_f64(), Some(4.0));
    let (_, h) = app
        .get("/api/v1/usage/history?model=claude-sonnet-4-20250514")
        .await;
    let costs: Vec<f64> = h["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost"].as_f64().unwrap())
        .collect();
    assert_eq!(costs, [4.0, 0.6]);
    let (_, l) = app.get("/api/v1/model-prices").await;
    let cs = l["modelPrices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == "claude-sonnet-4")
        .unwrap()
        .clone();
    assert_eq!(cs["promptPerMillion"].as_f64(), Some(4.0));
    // three versions stored (the first release's, the shipped one with the
    // cache prices and tier, the new one)
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM usage.model_prices WHERE model = 'claude-sonnet-4'"
        )
        .await,
        3
    );
    // bad prices
    for bad in [
        json!({"provider": "x", "promptPerMillion": -1, "completionPerMillion": 1}),
        json!({"provider": "x", "promptPerMillion": "a", "completionPerMillion": 1}),
        json!({"promptPerMillion": 1, "completionPerMillion": 1}),
        json!({"provider": "x", "promptPerMillion": 1, "completionPerMillion": 1.000001e9}),
        json!({"provider": "x", "promptPerMillion": 2e9, "completionPerMillion": 1}),
    ] {
        let (s, b) = app.put("/api/v1/model-prices/m1", bad).await;
        assert_eq!(s, 400, "{b}");
    }
    // the SQL function refuses them too, whoever calls it
    let err = c
        .query_one(
            "SELECT usage.set_price('m1', 'x', 1, 1000000000.000001)",
            &[],
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("invalid_price"), "{err:?}");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM usage.model_prices WHERE model = 'm1'"
        )
        .await,
        0
    );
    let (s, _) = app
        .put(
            "/api/v1/model-prices/bad%20model",
            json!({"provider": "x", "promptPerMillion": 1, "completionPerMillion": 1}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn unknown_model_has_null_cost_and_is_left_out_of_cost_totals() {
    let app = TestApp::new().await;
    let b = post_record(
        &app,
        json!({"threadId": "u", "agentId": "x", "model": "mystery-9", "promptTokens": 1000,
               "completionTokens": 1000}),
    )
    .await;
    assert_eq!(b["cost"], Value::Null);
    post_record(
        &app,
        json!({"threadId": "u", "agentId": "x", "model": "grok-4.1",
               "promptTokens": 1_000_000, "completionTokens": 0}),
    )
    .await;
    let (_, o) = app.get("/api/v1/usage").await;
    assert_eq!(o["usage"]["totals"]["totalCost"].as_f64(), Some(3.0));
    assert_eq!(o["usage"]["totals"]["totalTokens"], 1_002_000);
    let (_, m) = app.get("/api/v1/usage/models/mystery-9").await;
    assert_eq!(m["totalCost"].as_f64(), Some(0.0));
    assert_eq!(m["totalTokens"], 2000);
    let (_, h) = app.get("/api/v1/usage/history?model=mystery-9").await;
    assert_eq!(h["records"][0]["cost"], Value::Null);
}
