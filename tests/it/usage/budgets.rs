//! Thread budgets: limits, the check before a call, thresholds under
//! concurrency, and epochs (reset).

use super::*;

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
               "completionTokens": 1500, "cachedPromptTokens": 0, "cacheWriteTokens": 0,
               "reasoningTokens": 0, "totalTokens": 4500, "remaining": 95500,
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
