//! Property tests: concurrent batches and resets keep the rollups exact, and
//! the rollups equal the naive aggregates of the records.

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
/// (The records are read first: on Citus, a statement sent to the shards
/// cannot call usage.current_epoch, which reads another table.)
const NAIVE: &str = "
    WITH every AS MATERIALIZED (SELECT * FROM usage.records),
         cur AS (SELECT * FROM every WHERE epoch = usage.current_epoch())
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
    // Records the folders have folded so far: every writer waits for the
    // first fold before its last round, so the folders race the writers
    // however fast the writers are.
    let folded_so_far = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut tasks = Vec::new();
    for w in 0..12u8 {
        let (pool, folded_so_far) = (pool.clone(), folded_so_far.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..4u8 {
                if round == 3 {
                    for _ in 0..1000 {
                        if folded_so_far.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
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
        let (pool, stop, folded_so_far) = (pool.clone(), stop.clone(), folded_so_far.clone());
        folders.push(tokio::spawn(async move {
            let mut folded = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = i64::from(usage_db::fold(&pool, 150, None).await.unwrap());
                folded_so_far.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                folded += n;
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
