//! Data set-up and the measurements that are not plain HTTP load.

use crate::harness::*;
use std::time::Instant;

/// 10,000 users with a balance nobody exhausts in a run, one hot user, and a
/// block priced 1 credit per run for platform credentials.
pub async fn credits(db: &BenchDb) {
    let c = db.client().await;
    c.batch_execute(include_str!("credits_setup.sql"))
        .await
        .expect("credits set-up");
    // Statistics and a vacuumed heap, as autovacuum would have given any
    // database by then (the minimal spend's tables get the same).
    c.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
}

/// The baseline of spend function overhead: one conditional UPDATE plus one INSERT.
pub async fn minimal_spend(db: &BenchDb) {
    let c = db.client().await;
    c.batch_execute(include_str!("minimal_spend.sql"))
        .await
        .expect("minimal spend set-up");
    c.batch_execute("VACUUM ANALYZE bench.min_balance, bench.min_ledger")
        .await
        .expect("vacuum");
}

/// After the hot-user run (and a pause for requests still in flight when the
/// load generator stopped): in one snapshot, the balance equals the sum of
/// the counted ledger rows and the refill minus one credit per usage row.
pub async fn hot_user_consistent(db: &BenchDb) -> (bool, String) {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut c = db.client().await;
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .expect("tx");
    let row = tx
        .query_one(
            "SELECT (SELECT balance FROM reporting.user_balances WHERE user_id = 'hot'),
                    (SELECT sum(amount)::bigint FROM reporting.credit_ledger
                      WHERE user_id = 'hot' AND is_active AND period = credits.month_of(now())),
                    (SELECT count(*) FROM reporting.credit_ledger
                      WHERE user_id = 'hot' AND kind = 'usage')",
            &[],
        )
        .await
        .expect("hot user balance");
    let (balance, ledger, spends): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let ok = balance == ledger && balance == 1_000_000_000 - spends && balance >= 0;
    (
        ok,
        format!("balance {balance} = ledger sum {ledger} = 1e9 - {spends} spends"),
    )
}

/// No overdraft under contention: 32 clients spend 1 credit at a time on a
/// user holding 1,000 for 3 seconds. Exactly 1,000 may succeed, the rest get
/// 402, and the balance ends at 0 with the ledger agreeing.
pub async fn overdraft_probe(db: &BenchDb, base: &str) -> (bool, String) {
    let c = db.client().await;
    c.batch_execute(
        "SELECT credits.put_user('scarce', 1000, 'reset', '{}'); SELECT credits.get_credits('scarce');",
    )
    .await
    .expect("scarce user");
    let res = http_load(base, 32, 3, |_, _| {
        (
            "/api/v1/users/scarce/credits/spend".to_string(),
            serde_json::json!({"blockId": "bench-block", "input": {"credentials": {"provider": "platform"}}}),
        )
    })
    .await;
    let row = c
        .query_one(
            "SELECT (SELECT balance FROM reporting.user_balances WHERE user_id = 'scarce'),
                    (SELECT sum(amount)::bigint FROM reporting.credit_ledger
                      WHERE user_id = 'scarce' AND is_active AND period = credits.month_of(now()))",
            &[],
        )
        .await
        .expect("scarce balance");
    let (balance, ledger): (i64, i64) = (row.get(0), row.get(1));
    let ok = res.ok == 1000 && balance == 0 && ledger == 0 && res.failed == 0;
    (
        ok,
        format!(
            "{} ok, {} refused (402), balance {balance}, ledger {ledger}",
            res.ok, res.rejected
        ),
    )
}

/// A 1,000-record batch body; with `breakdown`, every record also gives
/// cachedPromptTokens, cacheWriteTokens and reasoningTokens.
pub fn batch_body(batch: u64, breakdown: bool) -> serde_json::Value {
    let models = ["grok-4.1", "gpt-4o", "claude-sonnet-4-20250514", "o3-mini"];
    let records: Vec<_> = (0..1000u64)
        .map(|i| {
            let n = batch * 1000 + i;
            let mut r = serde_json::json!({
                "threadId": format!("t-{}", n % 5000),
                "agentId": format!("agent-{}", n % 10),
                "model": models[(n % 4) as usize],
                "promptTokens": 100 + n % 900,
                "completionTokens": 50 + n % 300,
                "latencyMs": 200 + n % 1000,
            });
            if breakdown {
                r["cachedPromptTokens"] = (n % 60).into();
                r["cacheWriteTokens"] = (n % 40).into();
                r["reasoningTokens"] = (n % 50).into();
            }
            r
        })
        .collect();
    serde_json::json!({ "records": records })
}

/// Waits until every written-behind usage batch is folded into the budgets
/// and rollups (the server's folder runs every 200 ms); returns the seconds
/// waited.
pub async fn until_folded(db: &BenchDb) -> f64 {
    let c = db.client().await;
    let started = Instant::now();
    loop {
        let row = c
            .query_one("SELECT count(*) FROM usage.unfolded", &[])
            .await
            .expect("unfolded");
        if row.get::<_, i64>(0) == 0 {
            return started.elapsed().as_secs_f64();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Batch usage ingest: records/s through the batch endpoint (1,000 per batch, 4
/// clients) vs COPY of the same rows into a plain table. The rate counts the
/// time until the last batch is folded into budgets and rollups too, so it is
/// what the server sustains, not what it can queue.
/// With `breakdown`, the records also carry the three breakdown counts (and
/// COPY copies them too).
pub async fn usage_ingest(db: &BenchDb, base: &str, secs: u64, breakdown: bool) -> (f64, f64) {
    let bodies: std::sync::Arc<Vec<bytes::Bytes>> = std::sync::Arc::new(
        (0..64)
            .map(|i| {
                bytes::Bytes::from(serde_json::to_vec(&batch_body(i, breakdown)).expect("body"))
            })
            .collect(),
    );
    let b = bodies.clone();
    let res = http_load_bytes(base, 4, secs, move |w, seq| {
        let i = (w as u64 * 16 + seq) as usize % b.len();
        ("/api/v1/usage/records/batch".to_string(), b[i].clone())
    })
    .await;
    assert_eq!(res.failed, 0, "batch ingest failed");
    let drain = until_folded(db).await;
    eprintln!("batch usage ingest: the last batches were folded {drain:.2}s after the load");
    let api_rate = res.ok as f64 * 1000.0 / (res.secs + drain);

    // COPY the same rows (as text) into a plain table, the same number of times.
    let c = db.client().await;
    c.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS bench;
         DROP TABLE IF EXISTS bench.usage_copy;
         CREATE TABLE bench.usage_copy (thread_id text, agent_id text, model text,
             prompt_tokens bigint, completion_tokens bigint, latency_ms bigint,
             cached_prompt_tokens bigint, cache_write_tokens bigint, reasoning_tokens bigint,
             created_at timestamptz DEFAULT now())",
    )
    .await
    .expect("copy table");
    let mut text = String::new();
    for i in 0..bodies.len() {
        let body = batch_body(i as u64, breakdown);
        for r in body["records"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                r["threadId"].as_str().unwrap_or(""),
                r["agentId"].as_str().unwrap_or(""),
                r["model"].as_str().unwrap_or(""),
                r["promptTokens"],
                r["completionTokens"],
                r["latencyMs"]
            ));
            if breakdown {
                text.push_str(&format!(
                    "\t{}\t{}\t{}",
                    r["cachedPromptTokens"], r["cacheWriteTokens"], r["reasoningTokens"]
                ));
            }
            text.push('\n');
        }
    }
    let columns = if breakdown {
        "thread_id, agent_id, model, prompt_tokens, completion_tokens, latency_ms, \
         cached_prompt_tokens, cache_write_tokens, reasoning_tokens"
    } else {
        "thread_id, agent_id, model, prompt_tokens, completion_tokens, latency_ms"
    };
    let copy_sql = format!("COPY bench.usage_copy ({columns}) FROM STDIN");
    let rows_per_copy = bodies.len() as f64 * 1000.0;
    let start = Instant::now();
    let mut copies = 0u64;
    while start.elapsed().as_secs() < secs.min(5) || copies == 0 {
        use futures_util::SinkExt;
        let sink = c
            .copy_in::<_, bytes::Bytes>(copy_sql.as_str())
            .await
            .expect("copy in");
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(text.clone()))
            .await
            .expect("copy send");
        sink.finish().await.expect("copy finish");
        copies += 1;
    }
    let copy_rate = copies as f64 * rows_per_copy / start.elapsed().as_secs_f64();
    (api_rate, copy_rate)
}

/// The usage totals reads' data: `total` usage records written through the real batch
/// function (so rollups are maintained as in production), 10,000 per call,
/// on two connections; returns once the server's folder has folded them.
pub async fn load_usage_records(db: &BenchDb, total: u64) {
    let calls = total.div_ceil(10_000);
    let mut tasks = Vec::new();
    for lane in 0..2u64 {
        let c = db.client().await;
        tasks.push(tokio::spawn(async move {
            let mut call = lane;
            while call < calls {
                c.execute(
                    "WITH g AS (SELECT n FROM generate_series($1::bigint, $1::bigint + 9999) n)
                     SELECT usage.record_batch(
                        array_agg('t-' || (n % 50000)), array_agg('agent-' || (n % 10)),
                        array_agg((ARRAY['grok-4.1','gpt-4o','claude-sonnet-4','o3-mini'])[1 + n % 4]),
                        array_agg(NULL::text), array_agg(100 + n % 900), array_agg(50 + n % 300),
                        array_agg(200 + n % 1000), array_agg(NULL::text), array_agg(NULL::text),
                        array_agg(NULL::jsonb), array_agg(NULL::timestamptz))
                     FROM g",
                    &[&((call * 10_000) as i64)],
                )
                .await
                .expect("load usage batch");
                call += 2;
            }
        }));
    }
    for t in tasks {
        t.await.expect("loader");
    }
    until_folded(db).await;
}

/// Statistics for the usage totals reads, as autovacuum would have them by then.
pub async fn analyze_usage(db: &BenchDb) {
    let c = db.client().await;
    c.batch_execute("VACUUM ANALYZE usage.records")
        .await
        .expect("analyze");
}

/// Median latency of `n` sequential GETs, in milliseconds.
pub async fn median_get_ms(base: &str, path: &str, n: usize) -> f64 {
    let client = reqwest::Client::new();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        let _ = r.bytes().await;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    median(&mut samples)
}

/// Median time of `n` runs of `sql`, in milliseconds.
pub async fn median_sql_ms(db: &BenchDb, sql: &str, n: usize) -> f64 {
    let c = db.client().await;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        c.query(sql, &[]).await.expect("naive aggregate");
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    median(&mut samples)
}
