//! Usage metering and thread budgets (docs/usage.md), against a real database:
//! the SQL functions directly and the HTTP API through the real router.

mod common;

use agentplane::db::usage::{self as usage_db, NewRecord};
use agentplane::db::usage_columns::RecordColumns;
use common::{column, error_code, TestApp, TestDb};
use serde_json::{json, Value};

fn rec(thread: &str, agent: Option<&str>, model: &str, p: i64, c: i64) -> NewRecord {
    NewRecord {
        thread_id: thread.into(),
        agent_id: agent.map(Into::into),
        model: model.into(),
        prompt_tokens: p,
        completion_tokens: c,
        latency_ms: Some(10),
        ..Default::default()
    }
}

/// `records` as one batch.
fn batch(records: &[NewRecord]) -> RecordColumns {
    RecordColumns::from(records)
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The threads of records whose price version, provider or cost is not
/// what `usage.price_at` at the record's time gives (cost recomputed here in
/// numeric, half up to 6 decimals); `provider` is the SQL for the provider
/// expected (`p` is the price row, `r` the record).
async fn mispriced(client: &tokio_postgres::Client, provider: &str) -> Vec<String> {
    column(
        client,
        &format!(
            "SELECT r.thread_id FROM usage.records r
                 LEFT JOIN LATERAL usage.price_at(r.model, r.created_at) p ON true
                 WHERE r.price_id IS DISTINCT FROM p.id
                    OR r.provider IS DISTINCT FROM {provider}
                    OR r.cost IS DISTINCT FROM
                       round((r.prompt_tokens * p.prompt_per_million
                              + r.completion_tokens * p.completion_per_million) / 1000000, 6)"
        ),
    )
    .await
}

/// How many records have a cost (a known model).
async fn priced(client: &tokio_postgres::Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM usage.records WHERE cost IS NOT NULL",
    )
    .await
}

/// The one text value `sql` selects.
async fn text(client: &tokio_postgres::Client, sql: &str) -> String {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Rows written by the usage domain anywhere (records, budgets, rollups, events).
async fn written(app: &TestApp) -> i64 {
    let c = app.db.client().await;
    count(
        &c,
        "SELECT (SELECT count(*) FROM usage.records) + (SELECT count(*) FROM usage.thread_budgets) \
         + (SELECT count(*) FROM usage.agent_rollup) + (SELECT count(*) FROM usage.model_rollup) \
         + (SELECT count(*) FROM usage.daily_rollup) + (SELECT count(*) FROM feed.events)",
    )
    .await
}

async fn post_record(app: &TestApp, body: Value) -> Value {
    let (s, b) = app.post("/api/v1/usage/records", body).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Every record of `GET /usage/history?{query}`, following `nextAfter` from
/// page to page.
async fn history_pages(app: &TestApp, query: &str) -> Vec<Value> {
    let mut records = Vec::new();
    let mut path = format!("/api/v1/usage/history?{query}");
    loop {
        let (s, h) = app.get(&path).await;
        assert_eq!(s, 200, "{h}");
        records.extend(h["records"].as_array().unwrap().iter().cloned());
        match h["nextAfter"].as_i64() {
            Some(n) => path = format!("/api/v1/usage/history?{query}&after={n}"),
            None => return records,
        }
    }
}

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
async fn thread_budgets() {
    let app = TestApp::new().await;
    post_record(
        &app,
        json!({"threadId": "t-a", "model": "grok-3", "promptTokens": 3000, "completionTokens": 1500}),
    )
    .await;
    let (s, b) = app.get("/api/v1/usage/threads/t-a").await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        json!({"threadId": "t-a", "maxTokens": 100000, "promptTokens": 3000,
               "completionTokens": 1500, "totalTokens": 4500, "remaining": 95500,
               "percentUsed": 4.5, "isExhausted": false})
    );

    post_record(
        &app,
        json!({"threadId": "t-b", "model": "grok-3", "promptTokens": 5000, "completionTokens": 2000}),
    )
    .await;
    post_record(
        &app,
        json!({"threadId": "t-c", "model": "grok-3", "promptTokens": 10000, "completionTokens": 5000}),
    )
    .await;
    let (s, l) = app.get("/api/v1/usage/threads").await;
    assert_eq!(s, 200);
    assert_eq!(l["defaultMaxTokens"], 100000);
    assert_eq!(l["count"], 3);
    let ids: Vec<&str> = l["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["threadId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t-c", "t-b", "t-a"]);
    assert_eq!(l["threads"][0]["percentUsed"].as_f64(), Some(15.0));

    // unknown thread
    let (s, b) = app.get("/api/v1/usage/threads/never-seen").await;
    assert_eq!((s, error_code(&b)), (404, "budget_not_found"));

    // PUT sets maxTokens; remaining never negative; exhausted
    let (s, b) = app
        .put("/api/v1/usage/threads/t-c", json!({"maxTokens": 10000}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["remaining"], 0);
    assert_eq!(b["isExhausted"], true);
    assert_eq!(b["percentUsed"].as_f64(), Some(150.0));
    // lowering the limit fired every threshold once
    let c = app.db.client().await;
    let n = count(
        &c,
        "SELECT count(*) FROM feed.events WHERE type = 'budget.threshold' AND thread_id = 't-c'",
    )
    .await;
    assert_eq!(n, 4);
    // a PUT for a new thread creates its budget
    let (s, b) = app
        .put("/api/v1/usage/threads/fresh", json!({"maxTokens": 500}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["totalTokens"], 0);
    assert_eq!(b["percentUsed"].as_f64(), Some(0.0));
    for bad in [
        json!({"maxTokens": 0}),
        json!({"maxTokens": "x"}),
        json!({}),
    ] {
        let (s, b) = app.put("/api/v1/usage/threads/fresh", bad).await;
        assert_eq!(s, 400, "{b}");
        error_code(&b);
    }
}

#[tokio::test]
async fn budget_check_before_a_call() {
    let app = TestApp::new().await;
    // no budget yet: the default, unused
    let (s, b) = app
        .post(
            "/api/v1/usage/threads/chk/check",
            json!({"estimatedTokens": 1000}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["allowed"], true);
    assert_eq!(b["budget"]["remaining"], 100000);
    // nothing was written by the check
    assert_eq!(written(&app).await, 0);

    app.put("/api/v1/usage/threads/chk", json!({"maxTokens": 1000}))
        .await;
    post_record(
        &app,
        json!({"threadId": "chk", "model": "o1", "promptTokens": 600, "completionTokens": 300}),
    )
    .await;
    let (s, b) = app
        .post(
            "/api/v1/usage/threads/chk/check",
            json!({"estimatedTokens": 100}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .post(
            "/api/v1/usage/threads/chk/check",
            json!({"estimatedTokens": 101}),
        )
        .await;
    assert_eq!((s, error_code(&b)), (429, "budget_exhausted"));
    assert_eq!(b["error"]["details"]["budget"]["remaining"], 100);
    assert_eq!(b["error"]["details"]["budget"]["threadId"], "chk");

    // a record is always kept, even past the budget
    post_record(
        &app,
        json!({"threadId": "chk", "model": "o1", "promptTokens": 600, "completionTokens": 0}),
    )
    .await;
    let (s, b) = app.post("/api/v1/usage/threads/chk/check", json!({})).await;
    assert_eq!((s, error_code(&b)), (429, "budget_exhausted"));
    assert_eq!(b["error"]["details"]["budget"]["isExhausted"], true);
    assert_eq!(b["error"]["details"]["budget"]["remaining"], 0);
    let (s, b) = app
        .post(
            "/api/v1/usage/threads/chk/check",
            json!({"estimatedTokens": -1}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test]
async fn reset_starts_a_new_epoch_and_keeps_every_record() {
    let app = TestApp::new().await;
    for i in 0..3 {
        post_record(
            &app,
            json!({"threadId": format!("r{i}"), "agentId": "ag", "model": "grok-4.1",
                   "promptTokens": 10, "completionTokens": 5}),
        )
        .await;
    }
    let (s, b) = app.post("/api/v1/usage/reset", json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["success"], true);
    assert!(b["message"].is_string());

    let (_, o) = app.get("/api/v1/usage").await;
    assert_eq!(o["usage"]["totals"]["totalTokens"], 0);
    assert_eq!(o["usage"]["totals"]["requestCount"], 0);
    assert_eq!(o["usage"]["totals"]["totalCost"].as_f64(), Some(0.0));
    assert_eq!(o["usage"]["byAgent"], json!([]));
    assert_eq!(o["usage"]["activeThreads"], 0);
    let (_, a) = app.get("/api/v1/usage/agents/ag").await;
    assert_eq!(a["requestCount"], 0);

    let c = app.db.client().await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM reporting.usage_records").await,
        3
    );
    let (_, h) = app.get("/api/v1/usage/history").await;
    assert_eq!(h["count"], 3);
    let (_, d) = app.get("/api/v1/usage/daily").await;
    assert_eq!(d["days"][0]["requestCount"], 3);

    // new records count from the new epoch; the thread's budget is untouched
    post_record(
        &app,
        json!({"threadId": "r0", "agentId": "ag", "model": "grok-4.1",
               "promptTokens": 1, "completionTokens": 1}),
    )
    .await;
    let (_, o) = app.get("/api/v1/usage").await;
    assert_eq!(o["usage"]["totals"]["totalTokens"], 2);
    assert_eq!(o["usage"]["activeThreads"], 1);
    let (_, b) = app.get("/api/v1/usage/threads/r0").await;
    assert_eq!(b["totalTokens"], 17);
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
               "promptTokens": 1_000_000, "completionTokens": 0}),
    )
    .await;
    assert_eq!(first["cost"].as_f64(), Some(3.0));
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
    assert_eq!(costs, [4.0, 3.0]);
    let (_, l) = app.get("/api/v1/model-prices").await;
    let cs = l["modelPrices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == "claude-sonnet-4")
        .unwrap()
        .clone();
    assert_eq!(cs["promptPerMillion"].as_f64(), Some(4.0));
    // two versions stored
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM usage.model_prices WHERE model = 'claude-sonnet-4'"
        )
        .await,
        2
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

#[tokio::test]
async fn concurrent_records_on_one_thread_fire_each_threshold_once() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let mut tasks = Vec::new();
    // 64 records of 2,500 tokens = 160% of the default budget
    for i in 0..64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            if i % 4 == 0 {
                // batches of two records interleave with single records
                usage_db::record_batch(
                    &pool,
                    &batch(&[
                        rec("hot", Some("a"), "grok-4.1", 1000, 250),
                        rec("hot", Some("b"), "gpt-4o", 1000, 250),
                    ]),
                )
                .await
                .unwrap();
            } else {
                usage_db::record(&pool, &rec("hot", Some("a"), "grok-4.1", 2000, 500))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = db.client().await;
    // Budget read before and after the written-behind batches are folded: the
    // same, and equal to the records.
    let live = "SELECT u.prompt_tokens, u.completion_tokens, \
                    (SELECT sum(prompt_tokens) FROM usage.records WHERE thread_id = 'hot')::bigint, \
                    (SELECT sum(completion_tokens) FROM usage.records WHERE thread_id = 'hot')::bigint \
             FROM usage.thread_usage('hot') u";
    let row = c.query_one(live, &[]).await.unwrap();
    let (bp, bc, rp, rc): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((bp, bc), (rp, rc));
    assert_eq!(bp + bc, 160_000);
    let folded: i32 = c
        .query_one("SELECT usage.fold()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(folded, 32, "the 16 batches of 2 were written behind");
    let stored = c
        .query_one(
            "SELECT prompt_tokens, completion_tokens FROM usage.thread_budgets WHERE thread_id = 'hot'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((stored.get::<_, i64>(0), stored.get::<_, i64>(1)), (rp, rc));
    assert_eq!(c.query_one(live, &[]).await.unwrap().get::<_, i64>(0), rp);
    let fired: Vec<i32> = column(
        &c,
        "SELECT (body->'data'->>'threshold')::int FROM feed.events \
             WHERE type = 'budget.threshold' AND thread_id = 'hot' ORDER BY 1",
    )
    .await;
    assert_eq!(fired, [75, 90, 95, 100]);
    // the rollups saw every record
    let o: Value = c
        .query_one("SELECT usage.overview()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(o["usage"]["totals"]["totalTokens"], 160_000);
    assert_eq!(o["usage"]["totals"]["requestCount"], 80);
    assert_eq!(o["usage"]["activeThreads"], 1);
}

#[tokio::test]
async fn batch_is_all_or_nothing() {
    let app = TestApp::new().await;
    let good = |i: i64| {
        json!({"threadId": format!("b{}", i % 7), "agentId": "bat", "model": "o3-mini",
               "promptTokens": i, "completionTokens": 2 * i, "latencyMs": 5})
    };
    let records: Vec<Value> = (0..500).map(good).collect();
    let (s, b) = app
        .post("/api/v1/usage/records/batch", json!({"records": records}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["inserted"], 500);
    let c = app.db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM usage.records").await, 500);
    // the batch's cost is the sum of the records' costs
    let sum = text(&c, "SELECT sum(cost)::text FROM usage.records").await;
    assert_eq!(b["totalCost"].as_f64(), sum.parse::<f64>().ok());
    // one summary `usage` event per batch
    assert_eq!(
        count(&c, "SELECT count(*) FROM feed.events WHERE type = 'usage'").await,
        1
    );
    let before = written(&app).await;

    // one bad record anywhere: 400, nothing written
    for bad in [
        json!({"threadId": "x", "model": "o1", "promptTokens": -1, "completionTokens": 1}),
        json!({"threadId": "bad id", "model": "o1", "promptTokens": 1, "completionTokens": 1}),
        json!({"threadId": "x", "promptTokens": 1, "completionTokens": 1}),
        json!({"threadId": "x", "model": "o1", "promptTokens": "1", "completionTokens": 1}),
    ] {
        let mut records: Vec<Value> = (0..50).map(good).collect();
        records.insert(17, bad.clone());
        let (s, b) = app
            .post("/api/v1/usage/records/batch", json!({"records": records}))
            .await;
        assert_eq!(s, 400, "{bad}: {b}");
        error_code(&b);
    }
    // over the limit
    let records: Vec<Value> = (0..10_001)
        .map(|_| json!({"threadId": "t", "model": "m", "promptTokens": 1, "completionTokens": 1}))
        .collect();
    let (s, b) = app
        .post("/api/v1/usage/records/batch", json!({"records": records}))
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(written(&app).await, before);

    // the SQL function enforces the same rules on its own
    let pool = &app.state.pool;
    let mut many: Vec<NewRecord> = (0..20).map(|_| rec("s", None, "o1", 1, 1)).collect();
    many[13].completion_tokens = -5;
    let e = usage_db::record_batch(pool, &batch(&many))
        .await
        .unwrap_err();
    let m = e.mapped();
    assert_eq!((m.status, m.code.as_str()), (400, "invalid_record"));
    assert_eq!(m.details, json!({"index": 13, "field": "completionTokens"}));
    many[13].completion_tokens = 1;
    many[3].metadata = Some(json!("not an object"));
    let m = usage_db::record_batch(pool, &batch(&many))
        .await
        .unwrap_err()
        .mapped();
    assert_eq!(m.details, json!({"index": 3, "field": "metadata"}));
    many[3].metadata = None;
    // Identifiers are checked a whole array at a time, on its printed form
    // (usage.idents_ok): too long, a character outside the set, and every
    // character that array_out quotes or that separates its elements (a
    // space, a comma, a brace, a quote, a backslash, an empty one), and a
    // provider over 128 characters.
    type Spoil = fn(&mut NewRecord);
    let cases: [(usize, &str, Spoil); 12] = [
        (5, "threadId", |r| r.thread_id = "x".repeat(129)),
        (5, "threadId", |r| r.thread_id = "tab\there".into()),
        (2, "threadId", |r| r.thread_id = String::new()),
        (8, "threadId", |r| r.thread_id = "q\"uote".into()),
        (4, "agentId", |r| r.agent_id = Some("a,b".into())),
        (6, "model", |r| r.model = "{o1}".into()),
        (9, "userId", |r| r.user_id = Some("back\\slash".into())),
        (1, "agentId", |r| r.agent_id = Some(String::new())),
        (19, "agentId", |r| r.agent_id = Some("a".repeat(129))),
        (7, "userId", |r| r.user_id = Some("two words".into())),
        (0, "variantId", |r| r.variant_id = Some("v ".into())),
        (11, "provider", |r| r.provider = Some("p".repeat(129))),
    ];
    for (index, field, spoil) in cases {
        let mut spoiled = many.clone();
        spoil(&mut spoiled[index]);
        let m = usage_db::record_batch(pool, &batch(&spoiled))
            .await
            .unwrap_err()
            .mapped();
        assert_eq!((m.status, m.code.as_str()), (400, "invalid_record"));
        assert_eq!(m.details, json!({"index": index, "field": field}));
    }
    let over: Vec<NewRecord> = (0..10_001).map(|_| rec("s", None, "o1", 1, 1)).collect();
    let m = usage_db::record_batch(pool, &batch(&over))
        .await
        .unwrap_err()
        .mapped();
    assert_eq!((m.status, m.code.as_str()), (400, "batch_too_large"));
    assert_eq!(written(&app).await, before);
    // an empty batch is a no-op
    let v = usage_db::record_batch(pool, &batch(&[])).await.unwrap();
    assert_eq!(v["inserted"], 0);
    // identifiers spelled like NULL are valid (array_out quotes them: a
    // false alarm the record by record check clears)
    let nullish = [
        rec("NULL", Some("null"), "o1", 1, 1),
        rec("s", None, "NuLl", 1, 1),
    ];
    let v = usage_db::record_batch(pool, &batch(&nullish))
        .await
        .unwrap();
    assert_eq!(v["inserted"], 2);
    // the longest identifiers and provider are accepted
    let mut longest = rec(&"t".repeat(128), Some(&"a".repeat(128)), "o1", 1, 1);
    longest.provider = Some("p".repeat(128));
    longest.user_id = Some("u".repeat(128));
    let v = usage_db::record_batch(pool, &batch(&[longest.clone(), rec("s", None, "o1", 1, 1)]))
        .await
        .unwrap();
    assert_eq!(v["inserted"], 2);
}

/// A batch of many models, some named twice in different cases, some
/// unknown, some records naming their own provider: each record gets its own
/// model's price version, provider and cost. The batch's first 16 distinct
/// models are found one at a time and the rest by hashing
/// (usage.distinct_models); a record matched to the wrong model would show.
#[tokio::test]
async fn a_batch_of_many_models_prices_each_record_by_its_own_model() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let c = db.client().await;
    let mut models: Vec<String> = (0..20).map(|k| format!("unknown-{k:02}")).collect();
    models.extend(
        [
            "o3-mini",
            "GPT-4o",
            "gpt-4o",
            "gpt-4o-mini",
            "Claude-Sonnet-4-20250514",
            "grok-4.1",
        ]
        .map(String::from),
    );
    let records: Vec<NewRecord> = (0..2_000i64)
        .map(|i| NewRecord {
            thread_id: format!("t{i}"),
            // a stride through the models, so first appearances are not in
            // the list's order
            model: models[((i * 7) % models.len() as i64) as usize].clone(),
            provider: (i % 5 == 0).then(|| "mine".to_string()),
            prompt_tokens: 1_000 + 37 * i,
            completion_tokens: 3 * i,
            ..Default::default()
        })
        .collect();
    let out = usage_db::record_batch(&pool, &batch(&records))
        .await
        .unwrap();
    assert_eq!(out["inserted"], 2_000);
    let wrong = mispriced(
        &c,
        "CASE WHEN substr(r.thread_id, 2)::int % 5 = 0 THEN 'mine' ELSE p.provider END",
    )
    .await;
    assert!(wrong.is_empty(), "records priced wrongly: {wrong:?}");
    assert_eq!(
        priced(&c).await,
        2_000 * 6 / 26 + 1,
        "records with a known model"
    );
    // more than eight models: each record keeps its own price id and
    // provider (a reader does not search 26 models per record)
    let keyed = count(
        &c,
        "SELECT count(*) FROM usage.batches WHERE key_models IS NOT NULL OR price_ids IS NULL",
    )
    .await;
    assert_eq!(keyed, 0);
    // the answer's total is the sum of the records' costs
    let same: bool = c
        .query_one(
            "SELECT round(sum(cost), 6) = $1::text::numeric FROM usage.records",
            &[&out["totalCost"].to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(same, "totalCost {}", out["totalCost"]);
}

/// A batch whose first records name fewer models than the rest (the batch
/// function guesses the models from its first 64 records) prices every
/// record by its own model, and a bad model seen only late is still refused,
/// by its record's index.
#[tokio::test]
async fn models_first_named_late_in_a_batch_are_priced_and_checked() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let c = db.client().await;
    let model_of = |i: i64| match i {
        0..100 => "o3-mini",
        100..150 => "grok-4.1",
        _ => "unknown-late",
    };
    let records: Vec<NewRecord> = (0..200i64)
        .map(|i| rec(&format!("t{i}"), None, model_of(i), 1_000 + i, 10 * i))
        .collect();
    let out = usage_db::record_batch(&pool, &batch(&records))
        .await
        .unwrap();
    assert_eq!(out["inserted"], 200);
    let wrong = mispriced(&c, "p.provider").await;
    assert!(wrong.is_empty(), "records priced wrongly: {wrong:?}");
    assert_eq!(priced(&c).await, 150, "records with a known model");
    // three models: their price ids and providers are kept once each
    let keys = text(&c, "SELECT key_models::text FROM usage.batches").await;
    assert_eq!(keys, "{o3-mini,grok-4.1,unknown-late}");

    let mut bad = records.clone();
    bad[180].model = "not a model".into();
    let m = usage_db::record_batch(&pool, &batch(&bad))
        .await
        .unwrap_err()
        .mapped();
    assert_eq!((m.status, m.code.as_str()), (400, "invalid_record"));
    assert_eq!(m.details, json!({"index": 180, "field": "model"}));
    assert_eq!(count(&c, "SELECT count(*) FROM usage.records").await, 200);
}

/// A full batch in which every record has its own `at` (10,000 distinct
/// times) is priced record by record with the version in effect at its time,
/// keeps the batch's order for its ids and falls back to the price's provider.
#[tokio::test]
async fn full_batch_with_a_distinct_at_per_record_uses_each_records_price_version() {
    use chrono::{DateTime, Duration, TimeZone, Utc};
    let db = TestDb::new().await;
    let pool = db.pool();
    let c = db.client().await;
    let t0: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    const N: i64 = 10_000;
    // claude-sonnet-4 costs 3/15 from 1970 (shipped) and 4/20 from the middle
    // of the batch on
    let change = t0 + Duration::seconds(N / 2);
    let old_id: i64 = c
        .query_one(
            "SELECT id FROM usage.model_prices WHERE model = 'claude-sonnet-4'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let new_id: i64 = c
        .query_one(
            "INSERT INTO usage.model_prices (model, provider, prompt_per_million, \
             completion_per_million, effective_from) \
             VALUES ('claude-sonnet-4', 'anthropic-2', 4, 20, $1) RETURNING id",
            &[&change],
        )
        .await
        .unwrap()
        .get(0);
    let mini_id: i64 = c
        .query_one(
            "SELECT id FROM usage.model_prices WHERE model = 'gpt-4o-mini'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    const MODELS: [&str; 3] = ["Claude-Sonnet-4-20250514", "gpt-4o-mini", "no-such-model"];
    let records: Vec<NewRecord> = (0..N)
        .map(|i| NewRecord {
            thread_id: format!("t{}", i % 13),
            model: MODELS[(i % 3) as usize].into(),
            provider: (i % 5 == 0).then(|| "mine".to_string()),
            prompt_tokens: 100 * (i + 1),
            completion_tokens: 100 * (i % 7),
            metadata: Some(json!({ "i": i })),
            // every record its own time, not in time order
            at: Some(t0 + Duration::seconds((i * 7919) % N)),
            ..Default::default()
        })
        .collect();
    let out = usage_db::record_batch(&pool, &batch(&records))
        .await
        .unwrap();
    assert_eq!(out["inserted"], N);

    // expected price version, provider and cost in micro-USD, per record
    let expect = |i: i64| -> (Option<i64>, Option<&str>, Option<i64>) {
        let r = &records[i as usize];
        let (pt, ct) = (r.prompt_tokens, r.completion_tokens);
        let (id, provider, micros) = match i % 3 {
            0 if r.at.unwrap() < change => {
                (Some(old_id), Some("anthropic"), Some(pt * 3 + ct * 15))
            }
            0 => (Some(new_id), Some("anthropic-2"), Some(pt * 4 + ct * 20)),
            1 => (
                Some(mini_id),
                Some("openai"),
                Some((pt * 15 + ct * 60) / 100),
            ),
            _ => (None, None, None),
        };
        let provider = if r.provider.is_some() {
            Some("mine")
        } else {
            provider
        };
        (id, provider, micros)
    };
    let rows = c
        .query(
            "SELECT (metadata->>'i')::bigint, created_at, price_id, provider, \
                    (cost * 1000000)::bigint \
             FROM usage.records ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, N);
    let mut total_micros = 0;
    for (pos, row) in rows.iter().enumerate() {
        let i: i64 = row.get(0);
        // ids follow the order of the batch
        assert_eq!(i, pos as i64);
        let at: DateTime<Utc> = row.get(1);
        assert_eq!(Some(at), records[pos].at);
        let got: (Option<i64>, Option<String>, Option<i64>) = (row.get(2), row.get(3), row.get(4));
        let (id, provider, micros) = expect(i);
        assert_eq!(got, (id, provider.map(String::from), micros), "record {i}");
        total_micros += micros.unwrap_or(0);
    }
    // both versions were used
    assert_eq!(
        count(
            &c,
            &format!("SELECT count(DISTINCT price_id) FROM usage.records WHERE price_id IN ({old_id}, {new_id})")
        )
        .await,
        2
    );
    assert_eq!(
        out["totalCost"].as_f64(),
        Some(total_micros as f64 / 1_000_000.0)
    );
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

#[tokio::test]
async fn history_pages_and_filters_and_daily_series() {
    let app = TestApp::new().await;
    let pool = &app.state.pool;
    let mut recs = Vec::new();
    for i in 0..9i64 {
        let mut r = rec(
            if i % 2 == 0 { "even" } else { "odd" },
            Some(if i % 3 == 0 { "a0" } else { "a1" }),
            if i < 5 { "grok-4.1" } else { "gpt-4o" },
            100 * (i + 1),
            10,
        );
        // three days: 2026-01-01 .. 03, at 06:00, 12:00, 18:00
        let day = 1 + i / 3;
        let hour = 6 * (1 + i % 3);
        r.at = Some(format!("2026-01-0{day}T{hour:02}:00:00Z").parse().unwrap());
        r.metadata = Some(json!({"i": i}));
        recs.push(r);
    }
    usage_db::record_batch(pool, &batch(&recs)).await.unwrap();

    // pages of 4, newest first, following nextAfter
    let seen: Vec<i64> = history_pages(&app, "limit=4")
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(seen.len(), 9);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

    let (_, h) = app
        .get("/api/v1/usage/history?threadId=even&agentId=a0")
        .await;
    // i in {0, 6}
    assert_eq!(h["count"], 2);
    let r = &h["records"][0];
    assert_eq!(r["metadata"], json!({"i": 6}));
    assert_eq!(r["threadId"], "even");
    assert_eq!(r["totalTokens"], 710);
    let at: chrono::DateTime<chrono::Utc> = r["createdAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        at,
        "2026-01-03T06:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    let (_, h) = app
        .get("/api/v1/usage/history?start=2026-01-02T00:00:00Z&end=2026-01-03T00:00:00Z&model=GPT-4o")
        .await;
    assert_eq!(h["count"], 1); // i = 5

    // daily: whole days, and partial first/last days
    let (_, d) = app.get("/api/v1/usage/daily").await;
    assert_eq!(d["count"], 3);
    assert_eq!(d["days"][0]["date"], "2026-01-01");
    assert_eq!(d["days"][0]["requestCount"], 3);
    assert_eq!(d["days"][0]["totalTokens"], 100 + 200 + 300 + 30);
    let (_, d) = app
        .get("/api/v1/usage/daily?start=2026-01-01T10:00:00Z&end=2026-01-03T07:00:00Z")
        .await;
    let days: Vec<(String, i64)> = d["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["date"].as_str().unwrap().to_string(),
                x["requestCount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2026-01-01".to_string(), 2),
            ("2026-01-02".to_string(), 3),
            ("2026-01-03".to_string(), 1)
        ]
    );
    let (_, d) = app
        .get("/api/v1/usage/daily?start=2026-01-02T07:00:00Z&end=2026-01-02T13:00:00Z")
        .await;
    assert_eq!(d["days"][0]["requestCount"], 1);
    assert_eq!(d["count"], 1);

    // Across batches (each stored as one row): two more, one back-dated to
    // 2026-01-05, and a single record. Pages still run newest first over
    // all of them; filters skip whole batches but never lose a record.
    let later: Vec<NewRecord> = (0..3)
        .map(|i| {
            let mut r = rec("even", Some("a0"), "o1", 1 + i, 1);
            r.at = Some("2026-01-05T12:00:00Z".parse().unwrap());
            r
        })
        .collect();
    usage_db::record_batch(pool, &batch(&later)).await.unwrap();
    usage_db::record(pool, &rec("odd", Some("a1"), "o1", 7, 7))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for r in history_pages(&app, "limit=2&threadId=even").await {
        assert_eq!(r["threadId"], "even");
        seen.push(r["id"].as_i64().unwrap());
    }
    assert_eq!(seen.len(), 5 + 3, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    let (_, h) = app
        .get("/api/v1/usage/history?start=2026-01-04T00:00:00Z&end=2026-01-06T00:00:00Z")
        .await;
    assert_eq!(h["count"], 3);
    assert_eq!(h["records"][0]["promptTokens"], 3); // newest of the batch first
    let (_, d) = app
        .get("/api/v1/usage/daily?start=2026-01-05T11:00:00Z&end=2026-01-05T13:00:00Z")
        .await;
    assert_eq!(
        d["days"],
        json!([{"date": "2026-01-05", "totalTokens": 9, "requestCount": 3, "totalCost": d["days"][0]["totalCost"]}])
    );
    let (_, h) = app.get("/api/v1/usage/history?limit=100").await;
    assert_eq!(h["count"], 9 + 3 + 1);
}

#[tokio::test]
async fn reporting_role_reads_the_usage_views() {
    let db = TestDb::new().await;
    let pool = db.pool();
    usage_db::record(&pool, &rec("t", Some("a"), "grok-4.1", 10, 5))
        .await
        .unwrap();
    let c = db.client().await;
    c.batch_execute("SET ROLE agentplane_reporting")
        .await
        .unwrap();
    for view in [
        "usage_records",
        "usage_daily",
        "usage_by_agent",
        "usage_by_model",
    ] {
        let n = count(&c, &format!("SELECT count(*) FROM reporting.{view}")).await;
        assert_eq!(n, 1, "{view}");
    }
    let cost = text(
        &c,
        "SELECT cost::text || ' ' || priced_as FROM reporting.usage_records",
    )
    .await;
    assert_eq!(cost, "0.000105 grok-4.1");
    // and not the tables behind them
    assert!(c.query("SELECT * FROM usage.records", &[]).await.is_err());
}

mod property {
    use super::*;
    use proptest::prelude::*;

    /// thread, agent, model, prompt, completion, latency, day offset
    type BatchRec = (u8, u8, u8, i64, i64, Option<i64>, i64);

    #[derive(Debug, Clone)]
    enum Op {
        Batch(Vec<BatchRec>),
        Single(u8, u8, u8, i64, i64),
        Reset,
    }

    const MODELS: [&str; 4] = ["grok-4.1", "GPT-4o-mini", "unknown-x", "claude-opus-4-1"];

    fn to_rec(t: u8, a: u8, m: u8, p: i64, c: i64) -> NewRecord {
        NewRecord {
            thread_id: format!("t{t}"),
            agent_id: if a == 0 { None } else { Some(format!("a{a}")) },
            model: MODELS[m as usize % MODELS.len()].into(),
            prompt_tokens: p,
            completion_tokens: c,
            ..Default::default()
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => proptest::collection::vec(
                (0u8..5, 0u8..3, 0u8..4, 0i64..5000, 0i64..5000,
                 proptest::option::of(0i64..1000), -3i64..3),
                1..30
            )
            .prop_map(Op::Batch),
            3 => (0u8..5, 0u8..3, 0u8..4, 0i64..5000, 0i64..5000)
                .prop_map(|(t, a, m, p, c)| Op::Single(t, a, m, p, c)),
            1 => Just(Op::Reset),
        ]
    }

    /// The naive aggregates over the records, for comparison with the rollups.
    const NAIVE: &str = "
        WITH cur AS (SELECT * FROM usage.records WHERE epoch = usage.current_epoch())
        SELECT jsonb_build_object(
          'totals', (SELECT jsonb_build_object('p', coalesce(sum(prompt_tokens), 0),
                       'c', coalesce(sum(completion_tokens), 0), 'n', count(*),
                       'cost', round(coalesce(sum(cost), 0), 4)::text,
                       'lat', CASE WHEN count(latency_ms) > 0
                                   THEN round(avg(latency_ms), 1) ELSE 0 END) FROM cur),
          'agents', (SELECT coalesce(jsonb_object_agg(coalesce(agent_id, ''), jsonb_build_object(
                       'p', p, 'c', c, 'n', n, 'cost', cost)), '{}') FROM (
                       SELECT agent_id, sum(prompt_tokens) p, sum(completion_tokens) c, count(*) n,
                              round(coalesce(sum(cost), 0), 4)::text cost
                       FROM cur GROUP BY agent_id) x),
          'models', (SELECT coalesce(jsonb_object_agg(m, jsonb_build_object(
                       'p', p, 'c', c, 'n', n, 'cost', cost)), '{}') FROM (
                       SELECT lower(model) m, sum(prompt_tokens) p, sum(completion_tokens) c,
                              count(*) n, round(coalesce(sum(cost), 0), 4)::text cost
                       FROM cur GROUP BY lower(model)) x),
          'active', (SELECT count(DISTINCT thread_id) FROM cur),
          'days', (SELECT coalesce(jsonb_object_agg(d, jsonb_build_object('t', t, 'n', n)), '{}')
                   FROM (SELECT to_char((created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') d,
                                sum(prompt_tokens + completion_tokens) t, count(*) n
                         FROM usage.records GROUP BY 1) x),
          'budgets', (SELECT coalesce(jsonb_object_agg(thread_id, t), '{}') FROM (
                       SELECT thread_id, sum(prompt_tokens + completion_tokens) t
                       FROM usage.records GROUP BY thread_id) x))";

    /// The same facts read through the API's SQL functions (rollups).
    const FAST: &str = "
        WITH o AS (SELECT usage.overview()->'usage' AS u)
        SELECT jsonb_build_object(
          'totals', (SELECT jsonb_build_object('p', u->'totals'->'promptTokens',
                       'c', u->'totals'->'completionTokens', 'n', u->'totals'->'requestCount',
                       'cost', round((u->'totals'->>'totalCost')::numeric, 4)::text,
                       'lat', u->'totals'->'avgLatencyMs') FROM o),
          'agents', (SELECT coalesce(jsonb_object_agg(coalesce(a->>'agentId', ''), jsonb_build_object(
                       'p', a->'promptTokens', 'c', a->'completionTokens', 'n', a->'requestCount',
                       'cost', round((a->>'totalCost')::numeric, 4)::text)), '{}')
                     FROM o, jsonb_array_elements(u->'byAgent') a),
          'models', (SELECT coalesce(jsonb_object_agg(m->>'model', jsonb_build_object(
                       'p', m->'promptTokens', 'c', m->'completionTokens', 'n', m->'requestCount',
                       'cost', round((m->>'totalCost')::numeric, 4)::text)), '{}')
                     FROM o, jsonb_array_elements(u->'byModel') m),
          'active', (SELECT u->'activeThreads' FROM o),
          'days', (SELECT coalesce(jsonb_object_agg(d->>'date', jsonb_build_object(
                       't', d->'totalTokens', 'n', d->'requestCount')), '{}')
                   FROM jsonb_array_elements(usage.daily(NULL, NULL)->'days') d),
          'budgets', (SELECT coalesce(jsonb_object_agg(b->>'threadId', b->'totalTokens'), '{}')
                      FROM jsonb_array_elements(usage.list_budgets(100, 0)->'threads') b))";

    /// Concurrent batches over overlapping threads (in different orders) and
    /// resets: no deadlock, no error, and the rollups still equal the records.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_and_resets_keep_rollups_exact() {
        let db = TestDb::new().await;
        let pool = db.pool();
        let mut tasks = Vec::new();
        for w in 0..12u8 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..4u8 {
                    if w == 0 && round % 2 == 1 {
                        usage_db::reset(&pool).await.unwrap();
                        continue;
                    }
                    let recs: Vec<NewRecord> = (0..60u8)
                        .map(|i| {
                            // each worker walks the threads in its own order
                            let t = if w % 2 == 0 { i % 10 } else { 9 - i % 10 };
                            to_rec(t, i % 3, (i + w) % 4, i64::from(i) * 7, i64::from(w))
                        })
                        .collect();
                    usage_db::record_batch(&pool, &batch(&recs)).await.unwrap();
                }
            }));
        }
        // two folders race each other and the writers
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut folders = Vec::new();
        for _ in 0..2 {
            let (pool, stop) = (pool.clone(), stop.clone());
            folders.push(tokio::spawn(async move {
                let mut folded = 0i64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    folded += i64::from(usage_db::fold(&pool, 150, None).await.unwrap());
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                }
                folded
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut folded_while_writing = 0;
        for f in folders {
            folded_while_writing += f.await.unwrap();
        }
        let client = db.client().await;
        let naive: Value = client.query_one(NAIVE, &[]).await.unwrap().get(0);
        let fast: Value = client.query_one(FAST, &[]).await.unwrap().get(0);
        assert_eq!(naive, fast, "live totals, partly folded");
        usage_db::fold(&pool, 1_000_000, None).await.unwrap();
        assert!(folded_while_writing > 0, "the folders raced the writers");
        // every record folded exactly once (by a folder or by a reset), in
        // every epoch's rollups
        assert_eq!(
            count(
                &client,
                "SELECT sum(request_count)::bigint FROM usage.agent_rollup"
            )
            .await,
            11 * 4 * 60 + 2 * 60
        );
        assert_eq!(
            count(&client, "SELECT count(*) FROM usage.unfolded").await,
            0
        );
        let fast: Value = client.query_one(FAST, &[]).await.unwrap().get(0);
        assert_eq!(naive, fast, "totals after the last fold");
        assert_eq!(
            count(&client, "SELECT count(*) FROM usage.records").await,
            11 * 4 * 60 + 2 * 60
        );
    }

    #[test]
    fn rollups_equal_the_naive_aggregates() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let db = rt.block_on(TestDb::new());
        let pool = db.pool();
        let client = rt.block_on(db.client());
        let mut config = ProptestConfig::with_cases(24);
        config.failure_persistence = None;
        proptest!(config, |(ops in proptest::collection::vec(op(), 1..8))| {
            rt.block_on(async {
                for op in &ops {
                    match op {
                        Op::Batch(rs) => {
                            let recs: Vec<NewRecord> = rs
                                .iter()
                                .map(|&(t, a, m, p, c, l, days)| {
                                    let mut r = to_rec(t, a, m, p, c);
                                    r.latency_ms = l;
                                    r.at = Some(chrono::Utc::now() + chrono::Duration::days(days));
                                    r
                                })
                                .collect();
                            usage_db::record_batch(&pool, &batch(&recs)).await.unwrap();
                        }
                        Op::Single(t, a, m, p, c) => {
                            usage_db::record(&pool, &to_rec(*t, *a, *m, *p, *c)).await.unwrap();
                        }
                        Op::Reset => {
                            usage_db::reset(&pool).await.unwrap();
                        }
                    }
                }
                let naive: Value = client.query_one(NAIVE, &[]).await.unwrap().get(0);
                let fast: Value = client.query_one(FAST, &[]).await.unwrap().get(0);
                assert_eq!(naive, fast, "before the fold");
                usage_db::fold(&pool, 1_000_000, None).await.unwrap();
                let fast: Value = client.query_one(FAST, &[]).await.unwrap().get(0);
                assert_eq!(naive, fast, "after the fold");
            });
        });
    }
}
