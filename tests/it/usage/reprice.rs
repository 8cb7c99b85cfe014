//! Repricing: a price version dated in the past, then POST /usage/reprice;
//! every view of the records follows, twice changes nothing, a dry run
//! writes nothing, access is admin only, and ingest running meanwhile is
//! neither lost nor miscounted.

use super::*;

/// The records whose stored cost or price version is not what the version
/// (and tier) in force at their time gives, recomputed here with the
/// formula written out in numeric.
async fn stale(c: &tokio_postgres::Client) -> i64 {
    count(
        c,
        // (The records read first: on Citus, a statement sent to the
        // shards cannot call a function that reads another table.)
        "WITH r AS MATERIALIZED (SELECT * FROM usage.records)
         SELECT count(*) FROM r
         LEFT JOIN LATERAL usage.price_at(r.model, r.created_at) p ON true
         LEFT JOIN LATERAL (
             SELECT t FROM jsonb_array_elements(coalesce(p.tiers, '[]')) t
             WHERE r.prompt_tokens > (t->>'abovePromptTokens')::bigint
             ORDER BY (t->>'abovePromptTokens')::bigint DESC LIMIT 1) tier ON true
         CROSS JOIN LATERAL (SELECT
             coalesce((tier.t->>'promptPerMillion')::numeric, p.prompt_per_million) AS pp,
             coalesce((tier.t->>'completionPerMillion')::numeric, p.completion_per_million) AS cp,
             CASE WHEN tier.t IS NULL THEN p.cached_prompt_per_million
                  ELSE (tier.t->>'cachedPromptPerMillion')::numeric END AS cpp,
             CASE WHEN tier.t IS NULL THEN p.cache_write_per_million
                  ELSE (tier.t->>'cacheWritePerMillion')::numeric END AS cwp,
             CASE WHEN tier.t IS NULL THEN p.reasoning_per_million
                  ELSE (tier.t->>'reasoningPerMillion')::numeric END AS rp) x
         WHERE r.price_id IS DISTINCT FROM p.id
            OR r.cost IS DISTINCT FROM round((
                 (r.prompt_tokens - r.cached_prompt_tokens - r.cache_write_tokens) * x.pp
                 + r.cached_prompt_tokens * coalesce(x.cpp, x.pp)
                 + r.cache_write_tokens * coalesce(x.cwp, x.pp)
                 + (r.completion_tokens - r.reasoning_tokens) * x.cp
                 + r.reasoning_tokens * coalesce(x.rp, x.cp)) / 1000000, 6)",
    )
    .await
}

/// Whether every total (live rollups plus what waits, by agent, by model,
/// by day) equals the sum of the records, in cost and count.
async fn totals_match_records(c: &tokio_postgres::Client) {
    let row = c
        .query_one(
            "SELECT (SELECT jsonb_build_array(count(*), coalesce(sum(cost), 0)) FROM usage.records),
                    (SELECT jsonb_build_array(coalesce(sum(request_count), 0), coalesce(sum(cost), 0))
                     FROM usage.agent_usage),
                    (SELECT jsonb_build_array(coalesce(sum(request_count), 0), coalesce(sum(cost), 0))
                     FROM usage.model_usage),
                    (SELECT jsonb_build_array(coalesce(sum(request_count), 0), coalesce(sum(cost), 0))
                     FROM usage.daily_usage)",
            &[],
        )
        .await
        .unwrap();
    let records: Value = row.get(0);
    for i in 1..4 {
        let v: Value = row.get(i);
        assert_eq!(
            v[0].as_i64(),
            records[0].as_i64(),
            "count, view {i}: {v} vs {records}"
        );
        assert_eq!(
            v[1].as_f64(),
            records[1].as_f64(),
            "cost, view {i}: {v} vs {records}"
        );
    }
}

#[tokio::test]
async fn a_past_price_reprices_its_range_once_everywhere() {
    let app = TestApp::new().await;
    let c = app.db.client().await;
    // back-dated records (each its own version lookup) in March and April,
    // a single record, and a batch priced now
    let dated = |i: i64, day: u32| {
        json!({"threadId": format!("t{}", i % 3), "agentId": "a", "model": "GPT-4o-2024",
               "promptTokens": 1000 + i, "completionTokens": 100, "cachedPromptTokens": 500,
               "at": format!("2026-0{}-{:02}T12:00:00Z", 3 + day / 30, 1 + day % 30)})
    };
    let (s, b) = app
        .post(
            "/api/v1/usage/records/batch",
            json!({"records": (0..40).map(|i| dated(i, i as u32)).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    c.execute("SELECT usage.fold()", &[]).await.unwrap(); // folded
    post_record(&app, dated(99, 5)).await;
    let (s, _) = app
        .post(
            "/api/v1/usage/records/batch",
            json!({"records": [
                {"threadId": "now", "model": "gpt-4o", "promptTokens": 10, "completionTokens": 1},
                {"threadId": "now", "model": "grok-3", "promptTokens": 10, "completionTokens": 1}]}),
        )
        .await;
    assert_eq!(s, 200);
    // (this batch waits: not folded)
    assert_eq!(stale(&c).await, 0);
    let before = app.get("/api/v1/usage").await.1["usage"]["totals"]["totalCost"].clone();

    // gpt-4o was cheaper from March 15 on: a version dated in the past
    // changes nothing by itself
    let (s, p) = app
        .put(
            "/api/v1/model-prices/gpt-4o",
            json!({"provider": "openai", "promptPerMillion": 2, "completionPerMillion": 8,
                   "cachedPromptPerMillion": 1, "effectiveFrom": "2026-03-15T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert!(p["effectiveFrom"]
        .as_str()
        .unwrap()
        .starts_with("2026-03-15T00:00:00"));
    let stale_now = stale(&c).await;
    assert!(stale_now > 0);
    assert_eq!(
        app.get("/api/v1/usage").await.1["usage"]["totals"]["totalCost"],
        before
    );

    // a dry run: the figures, nothing written
    let range = json!({"start": "2026-03-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"});
    let mut dry = range.clone();
    dry["dryRun"] = json!(true);
    let (s, d) = app.post("/api/v1/usage/reprice", dry).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["repriceId"], Value::Null);
    assert_eq!(d["records"], 43);
    assert_eq!(stale(&c).await, stale_now);
    assert_eq!(count(&c, "SELECT count(*) FROM usage.repricings").await, 0);

    let (s, r) = app.post("/api/v1/usage/reprice", range.clone()).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["repriceId"].is_i64());
    assert_eq!(r["records"], 43);
    // March 15 on (25 of the 40, the single one is March 6; the batch of
    // now: gpt-4o, and grok-3 moves to nothing new)
    assert_eq!(r["changed"], d["changed"]);
    assert_eq!(r["difference"], d["difference"]);
    assert_eq!(r["newCost"], d["newCost"]);
    assert!(r["difference"].as_f64().unwrap() < 0.0, "{r}");
    assert_eq!(stale(&c).await, 0);
    totals_match_records(&c).await;
    let changed = r["changed"].as_i64().unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM reporting.usage_cost_changes").await,
        changed
    );
    let run: Value = c
        .query_one(
            "SELECT row_to_json(x)::jsonb FROM reporting.usage_repricings x",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(run["changed"].as_i64(), Some(changed));
    assert_eq!(run["records"], 43);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM feed.events WHERE type = 'usage.repriced'"
        )
        .await,
        1
    );
    // the overview's total moved by the difference
    let after = app.get("/api/v1/usage").await.1["usage"]["totals"]["totalCost"].clone();
    let moved = after.as_f64().unwrap() - before.as_f64().unwrap();
    assert!(
        (moved - r["difference"].as_f64().unwrap()).abs() < 1e-4,
        "{moved} {r}"
    );
    // history shows the new costs; the daily series sums them
    let (_, h) = app.get("/api/v1/usage/history?limit=100").await;
    let sum: f64 = h["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["cost"].as_f64())
        .sum();
    assert!((sum - r["newCost"].as_f64().unwrap()).abs() < 1e-9);

    // again: nothing changes; the fold then folds the new costs
    let (_, again) = app.post("/api/v1/usage/reprice", range.clone()).await;
    assert_eq!(again["changed"], 0);
    assert_eq!(again["difference"].as_f64(), Some(0.0));
    assert_eq!(again["newCost"], r["newCost"]);
    c.execute("SELECT usage.fold()", &[]).await.unwrap();
    totals_match_records(&c).await;
    assert_eq!(stale(&c).await, 0);

    // only one model's records
    let (s, m) = app
        .post(
            "/api/v1/usage/reprice",
            json!({"start": "2026-03-01T00:00:00Z", "end": "2099-01-01T00:00:00Z",
                   "model": "GROK-3"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (m["records"].as_i64(), m["changed"].as_i64()),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn reprice_is_for_admins_and_checks_its_range() {
    let app = TestApp::new().await;
    let range = json!({"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"});
    for role in ["service", "reader"] {
        let key = app.key(role, None).await;
        let (s, b) = app
            .call("POST", "/api/v1/usage/reprice", Some(&key), Some(&range))
            .await;
        assert_eq!((s, error_code(&b)), (403, "forbidden"), "{role}");
    }
    let (s, b) = app
        .call("POST", "/api/v1/usage/reprice", None, Some(&range))
        .await;
    assert_eq!(s, 401, "{b}");
    for bad in [
        json!({"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}),
        json!({"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}),
    ] {
        let (s, b) = app.post("/api/v1/usage/reprice", bad).await;
        assert_eq!((s, error_code(&b)), (400, "invalid_range"));
    }
    for bad in [
        json!({"start": "2026-03-01T00:00:00Z"}),
        json!({"start": "x", "end": "y"}),
    ] {
        let (s, _) = app.post("/api/v1/usage/reprice", bad).await;
        assert_eq!(s, 400);
    }
    let c = app.db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM usage.repricings").await, 0);
}

/// Batches stream in (and folds run) while the range is repriced again and
/// again: every record is kept, and every total equals the sum of the
/// records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repricing_while_batches_stream_loses_nothing() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let c = db.client().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let (pool, stop) = (pool.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let recs: Vec<NewRecord> = (0..200)
                    .map(|i| NewRecord {
                        cached_prompt_tokens: Some(i % 50),
                        ..rec(&format!("t{}", i % 17), Some("a"), "gpt-4o", 100 + w, 10)
                    })
                    .collect();
                usage_db::record_batch(&pool, &batch(&recs)).await.unwrap();
                usage_db::record(&pool, &rec("single", None, "gpt-4o", 100, 10))
                    .await
                    .unwrap();
                n += 201;
            }
            n
        }));
    }
    let folder = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                usage_db::fold(&pool, 1000, None).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut changed = 0;
    for round in 0..4 {
        // a cheaper gpt-4o from an hour ago, every round
        c.execute(
            "SELECT usage.set_price('gpt-4o', 'openai', $1::float8::numeric, 9,
                                    p_effective_from => now() - interval '1 hour')",
            &[&(2.0 - f64::from(round) * 0.25)],
        )
        .await
        .unwrap();
        let r = usage_db::reprice(&pool, start, end, None, false)
            .await
            .unwrap();
        changed += r["changed"].as_i64().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    folder.await.unwrap();
    assert!(changed > 0);
    assert_eq!(
        count(&c, "SELECT count(*) FROM usage.records").await,
        written
    );
    totals_match_records(&c).await;
    // a last reprice brings every record to the newest version
    usage_db::reprice(&pool, start, end, None, false)
        .await
        .unwrap();
    assert_eq!(stale(&c).await, 0);
    c.execute("SELECT usage.fold(NULL)", &[]).await.unwrap();
    totals_match_records(&c).await;
}

/// A reprice is one transaction over its whole range, so it may run far
/// longer than the statement timeout every other call keeps: here sessions
/// that cut any statement off after 50 ms still reprice 50,000 records.
#[tokio::test]
async fn a_reprice_outlasts_the_statement_timeout_of_other_calls() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT usage.record_batch(
             array_agg('t-' || (n % 500)), array_agg('agent-' || (n % 10)),
             array_agg('gpt-4o'::text), array_agg(NULL::text), array_agg(100 + n % 900),
             array_agg(50 + n % 300), array_agg(200 + n % 1000), array_agg(NULL::text),
             array_agg(NULL::text), array_agg(NULL::jsonb), array_agg(NULL::timestamptz))
         FROM generate_series(1, 10000) n, generate_series(1, 5) k
         GROUP BY k;
         SELECT usage.set_price('gpt-4o', 'openai', 1, 2,
                                p_effective_from => now() - interval '1 hour');",
    )
    .await
    .unwrap();
    let mut cfg: tokio_postgres::Config = db.url.parse().unwrap();
    cfg.options("-c statement_timeout=50ms");
    let manager = deadpool_postgres::Manager::new(cfg, tokio_postgres::NoTls);
    let short = deadpool_postgres::Pool::builder(manager)
        .max_size(1)
        .build()
        .unwrap();
    // the other calls are cut off at 50 ms
    let slow = short.get().await.unwrap();
    let err = slow.query("SELECT pg_sleep(0.2)", &[]).await.unwrap_err();
    assert_eq!(
        err.as_db_error().map(|e| e.code().clone()),
        Some(tokio_postgres::error::SqlState::QUERY_CANCELED)
    );
    drop(slow);
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    let began = std::time::Instant::now();
    let r = usage_db::reprice(&short, start, end, None, false)
        .await
        .unwrap();
    assert_eq!(r["records"], 50_000);
    assert_eq!(r["changed"], 50_000);
    assert!(
        began.elapsed() > std::time::Duration::from_millis(50),
        "the reprice ran past the other calls' timeout"
    );
}
