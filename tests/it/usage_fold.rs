//! Usage batches are written behind: their records are kept at once and added
//! to budgets and rollups by the server's folder (`usage.fold()`). Reads never
//! wait for it; thresholds a batch reaches fire when it is folded.

use crate::support::{TestDb, TestServer};
use agentplane::db::usage as usage_db;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn batch(thread: &str, n: usize, tokens: i64) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({"threadId": thread, "agentId": format!("a{}", i % 2), "model": "grok-4.1",
                   "promptTokens": tokens, "completionTokens": 0})
        })
        .collect();
    json!({ "records": records })
}

/// Writes one batch of five records on thread `t` (one token each way),
/// through the SQL function.
async fn five_records(c: &tokio_postgres::Client) {
    c.execute(
        "SELECT usage.record_batch(array_fill('t'::text, ARRAY[5]), array_fill(NULL::text, ARRAY[5]),
            array_fill('gpt-4o'::text, ARRAY[5]), array_fill(NULL::text, ARRAY[5]),
            array_fill(1::bigint, ARRAY[5]), array_fill(1::bigint, ARRAY[5]),
            array_fill(NULL::bigint, ARRAY[5]), array_fill(NULL::text, ARRAY[5]),
            array_fill(NULL::text, ARRAY[5]), array_fill(NULL::jsonb, ARRAY[5]),
            array_fill(NULL::timestamptz, ARRAY[5]))",
        &[],
    )
    .await
    .expect("batch");
}

async fn thresholds(db: &TestDb, thread: &str) -> Vec<i32> {
    db.client()
        .await
        .query(
            "SELECT (body->'data'->>'threshold')::int FROM feed.events \
             WHERE type = 'budget.threshold' AND thread_id = $1 ORDER BY 1",
            &[&thread],
        )
        .await
        .expect("thresholds")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_batch_is_read_exactly_at_once_and_its_thresholds_fire_when_folded() {
    // a long interval: the batch is still unfolded when it is read
    let srv = TestServer::start_with(|c| c.usage_fold_interval = Duration::from_secs(3600)).await;
    let put = srv
        .put("/api/v1/usage/threads/tb", json!({"maxTokens": 1000}))
        .await;
    assert_eq!(put.0, 200);
    let (s, b) = srv
        .post("/api/v1/usage/records/batch", batch("tb", 10, 91))
        .await;
    assert_eq!((s, b["inserted"].clone()), (200, json!(10)), "{b}");

    // exact before any fold: budget, check, overview, agent totals, list
    let (s, b) = srv.get("/api/v1/usage/threads/tb").await;
    assert_eq!(
        (s, b["totalTokens"].clone(), b["percentUsed"].clone()),
        (200, json!(910), json!(91.0))
    );
    let (s, b) = srv
        .post(
            "/api/v1/usage/threads/tb/check",
            json!({"estimatedTokens": 100}),
        )
        .await;
    assert_eq!(s, 429, "{b}");
    let (_, o) = srv.get("/api/v1/usage").await;
    assert_eq!(o["usage"]["totals"]["totalTokens"], 910);
    assert_eq!(o["usage"]["activeThreads"], 1);
    let (_, a) = srv.get("/api/v1/usage/agents/a1").await;
    assert_eq!(
        (a["totalTokens"].clone(), a["requestCount"].clone()),
        (json!(455), json!(5))
    );
    let (_, l) = srv.get("/api/v1/usage/threads").await;
    assert_eq!(l["threads"][0]["totalTokens"], 910);
    assert_eq!(
        thresholds(&srv.db, "tb").await,
        Vec::<i32>::new(),
        "not folded yet"
    );

    // the fold fires 75 and 90 once; reads do not change
    let folded = usage_db::fold(&srv.state.pool, 1_000_000, None)
        .await
        .expect("fold");
    assert_eq!(folded, 10);
    assert_eq!(thresholds(&srv.db, "tb").await, [75, 90]);
    let (_, b) = srv.get("/api/v1/usage/threads/tb").await;
    assert_eq!(b["totalTokens"], 910);
    assert_eq!(
        usage_db::fold(&srv.state.pool, 1_000_000, None)
            .await
            .expect("fold"),
        0
    );
    assert_eq!(thresholds(&srv.db, "tb").await, [75, 90], "each fires once");
}

#[tokio::test]
async fn the_server_folds_on_its_timer() {
    let srv = TestServer::start_with(|c| c.usage_fold_interval = Duration::from_millis(20)).await;
    srv.put("/api/v1/usage/threads/tt", json!({"maxTokens": 100}))
        .await;
    let (s, _) = srv
        .post("/api/v1/usage/records/batch", batch("tt", 4, 30))
        .await;
    assert_eq!(s, 200);
    let started = Instant::now();
    while thresholds(&srv.db, "tt").await.len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the folder did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(thresholds(&srv.db, "tt").await, [75, 90, 95, 100]);
    let c = srv.db.client().await;
    let waiting: i64 = c
        .query_one("SELECT count(*) FROM usage.unfolded", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting, 0);
}

/// The folder folds when enough records wait, after a pause in the stream,
/// or when the oldest batch has waited long enough; otherwise it leaves them.
#[tokio::test]
async fn a_fold_is_due_at_enough_records_after_a_pause_or_when_the_oldest_is_old() {
    use usage_db::FoldDue;
    let db = TestDb::new().await;
    let pool = db.pool();
    let c = db.client().await;
    let hour = Duration::from_secs(3600);
    let due = |min_records| FoldDue {
        min_records,
        quiet: hour,
        max_age: hour,
    };
    // nothing waits: not due
    assert_eq!(usage_db::fold(&pool, 100, Some(due(1))).await.unwrap(), 0);
    five_records(&c).await;
    five_records(&c).await;
    // 10 records, fresh: due only from 10 records on
    assert_eq!(usage_db::fold(&pool, 100, Some(due(11))).await.unwrap(), 0);
    assert_eq!(usage_db::fold(&pool, 100, Some(due(10))).await.unwrap(), 10);
    // a pause: the newest batch is older than `quiet`
    five_records(&c).await;
    let age = |first: &str, secs: i32| {
        format!(
            "UPDATE usage.batches SET recorded_at = now() - make_interval(secs => {secs})
             WHERE first_id = (SELECT {first}(first_id) FROM usage.unfolded)"
        )
    };
    c.execute(&age("max", 5), &[]).await.unwrap();
    let paused = FoldDue {
        quiet: Duration::from_secs(4),
        ..due(1_000)
    };
    assert_eq!(usage_db::fold(&pool, 100, Some(paused)).await.unwrap(), 5);
    // a steady stream: the newest is fresh, the oldest older than `max_age`
    five_records(&c).await;
    five_records(&c).await;
    c.execute(&age("min", 5), &[]).await.unwrap();
    let stale = FoldDue {
        max_age: Duration::from_secs(6),
        ..due(1_000)
    };
    assert_eq!(usage_db::fold(&pool, 100, Some(stale)).await.unwrap(), 0);
    let stale = FoldDue {
        max_age: Duration::from_secs(4),
        ..due(1_000)
    };
    assert_eq!(usage_db::fold(&pool, 100, Some(stale)).await.unwrap(), 10);
    assert_eq!(usage_db::fold(&pool, 100, None).await.unwrap(), 0);
}

#[tokio::test]
async fn a_fold_takes_at_most_about_its_limit_and_leaves_the_rest() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let c = db.client().await;
    for _ in 0..3 {
        five_records(&c).await;
    }
    // whole batches, oldest first, until the limit is reached
    assert_eq!(usage_db::fold(&pool, 6, None).await.unwrap(), 10);
    assert_eq!(usage_db::fold(&pool, 6, None).await.unwrap(), 5);
    assert_eq!(usage_db::fold(&pool, 6, None).await.unwrap(), 0);
    let b: Value = c
        .query_one("SELECT usage.get_budget('t')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(b["totalTokens"], 30);
}

#[tokio::test]
async fn a_batch_fits_in_one_block_of_ids() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT increment_by, usage.max_batch()::bigint FROM pg_sequences \
             WHERE schemaname = 'usage' AND sequencename = 'record_blocks'",
            &[],
        )
        .await
        .expect("sequence");
    let (block, max_batch): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        block >= max_batch,
        "a block of {block} ids for batches of up to {max_batch}"
    );
}

/// A count past usage.max_count() would be accepted and then fail every fold
/// (its sums overflow), so it is refused at the door, by SQL on its own and
/// by the API; a huge maxTokens does not overflow the threshold check.
#[tokio::test]
async fn counts_past_the_cap_are_refused_and_huge_budgets_do_not_overflow() {
    let db = TestDb::new().await;
    let c = db.client().await;
    for (prompt, latency, field) in [
        ("1000000001", "NULL", "promptTokens"),
        ("1", "1000000001", "latencyMs"),
    ] {
        let sql = format!(
            "SELECT usage.record_batch(ARRAY['t', 't'], ARRAY[NULL, NULL]::text[],
                ARRAY['gpt-4o', 'gpt-4o'], ARRAY[NULL, NULL]::text[], ARRAY[1, {prompt}]::bigint[],
                ARRAY[1, 1]::bigint[], ARRAY[NULL, {latency}]::bigint[], ARRAY[NULL, NULL]::text[],
                ARRAY[NULL, NULL]::text[], ARRAY[NULL, NULL]::jsonb[], ARRAY[NULL, NULL]::timestamptz[])"
        );
        let err = c.query_one(sql.as_str(), &[]).await.expect_err("refused");
        let e = err.as_db_error().expect("database error");
        assert_eq!(
            (e.code().code(), e.detail()),
            ("AP400", Some("invalid_record"))
        );
        let hint: Value = serde_json::from_str(e.hint().unwrap_or("null")).expect("hint");
        assert_eq!(hint, json!({"index": 1, "field": field}));
    }
    let written: i64 = c
        .query_one("SELECT count(*) FROM usage.records", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 0);

    let srv = TestServer::on(db, |_| {}).await;
    let mut body = batch("t", 1, 1);
    body["records"][0]["completionTokens"] = json!(1_000_000_001i64);
    let (s, _) = srv.post("/api/v1/usage/records/batch", body).await;
    assert_eq!(s, 400);

    // the largest budget a client may set, and the largest records
    let (s, b) = srv
        .put("/api/v1/usage/threads/big", json!({"maxTokens": i64::MAX}))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = srv
        .post(
            "/api/v1/usage/records",
            json!({"threadId": "big", "model": "gpt-4o", "promptTokens": 1_000_000_000,
                             "completionTokens": 1_000_000_000}),
        )
        .await;
    assert_eq!(
        (s, b["budget"]["totalTokens"].clone()),
        (200, json!(2_000_000_000i64)),
        "{b}"
    );
}
