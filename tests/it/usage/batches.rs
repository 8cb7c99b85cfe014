//! Batches: all or nothing, and every record priced by its own model and time.

use super::*;

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
    // claude-sonnet-4 costs 3/15 (6/22.5 above 200,000 prompt tokens) from
    // 1970 (shipped) and 4/20 from the middle of the batch on
    let change = t0 + Duration::seconds(N / 2);
    let old_id: i64 = c
        .query_one(
            "SELECT max(id) FROM usage.model_prices WHERE model = 'claude-sonnet-4'",
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
            "SELECT max(id) FROM usage.model_prices WHERE model = 'gpt-4o-mini'",
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
            // (the shipped version's long-context tier above 200,000
            // prompt tokens)
            0 if r.at.unwrap() < change && pt > 200_000 => {
                (Some(old_id), Some("anthropic"), Some(pt * 6 + ct * 45 / 2))
            }
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

/// A batch of a few models prices each record at its tier: the long-context
/// tier of claude-sonnet-4 (above 200,000 prompt tokens) only above its
/// threshold, and never for a model without tiers, in the same batch.
#[tokio::test]
async fn a_batch_prices_each_record_at_its_tier_at_and_around_the_threshold() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let c = db.client().await;
    let counts = [1, 199_999, 200_000, 200_001, 1_000_000];
    let records: Vec<NewRecord> = counts
        .iter()
        .flat_map(|&pt| {
            ["gpt-4o", "claude-sonnet-4-20250514", "o3-mini"]
                .map(|m| rec(&format!("t-{m}-{pt}"), None, m, pt, 10))
        })
        .collect();
    usage_db::record_batch(&pool, &batch(&records))
        .await
        .unwrap();
    // (model, prompt tokens) → micro-USD, by the shipped prices per million
    let want = |m: &str, pt: i64| -> i64 {
        let (p, c) = match m {
            "gpt-4o" => (2_500_000, 10_000_000),
            "o3-mini" => (1_100_000, 4_400_000),
            _ if pt > 200_000 => (6_000_000, 22_500_000),
            _ => (3_000_000, 15_000_000),
        };
        (pt * p + 10 * c + 500_000) / 1_000_000
    };
    let rows = c
        .query(
            "SELECT model, prompt_tokens, (cost * 1000000)::bigint FROM usage.records ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), records.len());
    for row in rows {
        let (m, pt, got): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(got, want(&m, pt), "{m} with {pt} prompt tokens");
    }
}
