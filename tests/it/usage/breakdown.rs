//! The token breakdown (cached prompt, cache write, reasoning tokens) and
//! the prices of its parts: the cost formula against an independent
//! computation, long-context tiers at their thresholds, the breakdown in
//! every total, and bad breakdowns refused.

use super::*;
use proptest::prelude::*;

/// USD per million tokens given in micro-USD (an integer) as the decimal
/// text SQL reads exactly.
fn usd(micros: i64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// The prices of one price version or tier, in micro-USD per million tokens
/// (None: missing, so the part's default).
#[derive(Debug, Clone)]
struct Rates {
    prompt: i64,
    completion: i64,
    cached: Option<i64>,
    cache_write: Option<i64>,
    reasoning: Option<i64>,
}

impl Rates {
    fn json(&self) -> String {
        let opt = |v: Option<i64>| v.map_or("null".to_string(), usd);
        format!(
            r#""promptPerMillion": {}, "completionPerMillion": {}, "cachedPromptPerMillion": {},
               "cacheWritePerMillion": {}, "reasoningPerMillion": {}"#,
            usd(self.prompt),
            usd(self.completion),
            opt(self.cached),
            opt(self.cache_write),
            opt(self.reasoning)
        )
    }
}

/// The cost in micro-USD, half up, computed here in 128-bit integers from
/// the formula's text: uncached prompt tokens at the prompt price, cached
/// and cache-write tokens at theirs, non-reasoning completion tokens at the
/// completion price and reasoning tokens at theirs, over a million (prices
/// per million tokens), with the tier whose threshold the prompt tokens
/// exceed the most.
fn expected_micros(
    counts: (i64, i64, i64, i64, i64),
    base: &Rates,
    tier: Option<&(i64, Rates)>,
) -> i64 {
    let (pt, c, w, ct, r) = counts;
    let rates = match tier {
        Some((above, t)) if pt > *above => t,
        _ => base,
    };
    let i = i128::from;
    // prices are micro-USD per million tokens: tokens × price is in
    // micro-USD × 10^6
    let sum = i(pt - c - w) * i(rates.prompt)
        + i(c) * i(rates.cached.unwrap_or(rates.prompt))
        + i(w) * i(rates.cache_write.unwrap_or(rates.prompt))
        + i(ct - r) * i(rates.completion)
        + i(r) * i(rates.reasoning.unwrap_or(rates.completion));
    ((sum + 500_000) / 1_000_000) as i64
}

fn price() -> impl Strategy<Value = i64> {
    // micro-USD per million: from nothing through the shipped range to
    // 10^6 USD per million (past the integer arithmetic's 4,000)
    prop_oneof![
        0i64..=10,
        0i64..=100_000_000,
        0i64..=1_000_000_000_000,
        Just(4_000_000_000),
        Just(4_000_000_001),
    ]
}

fn rates() -> impl Strategy<Value = Rates> {
    (
        price(),
        price(),
        proptest::option::of(price()),
        proptest::option::of(price()),
        proptest::option::of(price()),
    )
        .prop_map(
            |(prompt, completion, cached, cache_write, reasoning)| Rates {
                prompt,
                completion,
                cached,
                cache_write,
                reasoning,
            },
        )
}

/// Counts (prompt, cached, cache write, completion, reasoning) that make a
/// valid breakdown.
fn counts() -> impl Strategy<Value = (i64, i64, i64, i64, i64)> {
    (
        prop_oneof![0i64..=1000, 0i64..=1_000_000_000],
        prop_oneof![0i64..=1000, 0i64..=1_000_000_000],
    )
        .prop_flat_map(|(pt, ct)| (Just(pt), 0..=pt, Just(ct), 0..=ct))
        .prop_flat_map(|(pt, c, ct, r)| (Just(pt), Just(c), 0..=pt - c, Just(ct), Just(r)))
}

#[test]
fn the_cost_formula_matches_an_independent_computation() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::new());
    let pool = db.pool();
    let client = rt.block_on(db.client());
    let mut config = ProptestConfig::with_cases(96);
    config.failure_persistence = None;
    let case = std::cell::Cell::new(0u32);
    proptest!(config, |(counts in counts(), base in rates(),
                        tier in proptest::option::of((0i64..=1_000_000_000, rates())))| {
        case.set(case.get() + 1);
        let case = case.get();
        let model = format!("formula-{case}");
        let tiers = match &tier {
            Some((above, t)) => format!(r#"[{{"abovePromptTokens": {above}, {}}}]"#, t.json()),
            None => "[]".to_string(),
        };
        let opt = |v: Option<i64>| v.map(usd);
        let want = expected_micros(counts, &base, tier.as_ref());
        let (pt, c, w, ct, r) = counts;
        let got: Vec<i64> = rt.block_on(async {
            client
                .execute(
                    "SELECT usage.set_price($1, 'p', $2::text::numeric, $3::text::numeric,
                                            $4::text::numeric, $5::text::numeric,
                                            $6::text::numeric, $7::text::jsonb)",
                    &[&model, &usd(base.prompt), &usd(base.completion), &opt(base.cached),
                      &opt(base.cache_write), &opt(base.reasoning), &tiers],
                )
                .await
                .unwrap();
            // one record alone, and the same in a batch priced at one
            // instant and in a back-dated one (each pricing path)
            let one = NewRecord {
                thread_id: format!("t{case}"),
                model: model.clone(),
                prompt_tokens: pt,
                completion_tokens: ct,
                cached_prompt_tokens: Some(c),
                cache_write_tokens: Some(w),
                reasoning_tokens: Some(r),
                ..Default::default()
            };
            usage_db::record(&pool, &one).await.unwrap();
            usage_db::record_batch(&pool, &batch(&[one.clone(), one.clone()])).await.unwrap();
            let dated = NewRecord { at: Some(chrono::Utc::now()), ..one.clone() };
            usage_db::record_batch(&pool, &batch(&[dated])).await.unwrap();
            // and the same counts without the breakdown, in a batch where
            // no record gives one (the formula's shorter branch)
            let plain = NewRecord {
                cached_prompt_tokens: None,
                cache_write_tokens: None,
                reasoning_tokens: None,
                ..one
            };
            usage_db::record_batch(&pool, &batch(&[plain])).await.unwrap();
            let rows = client
                .query(
                    "SELECT (cost * 1000000)::bigint FROM usage.records WHERE model = $1 ORDER BY id",
                    &[&model],
                )
                .await
                .unwrap();
            rows.iter().map(|row| row.get(0)).collect()
        });
        let want_plain = expected_micros((pt, 0, 0, ct, 0), &base, tier.as_ref());
        prop_assert_eq!(got, vec![want, want, want, want, want_plain]);
    });
}

#[tokio::test]
async fn tiers_apply_above_their_threshold_only() {
    let app = TestApp::new().await;
    let (s, p) = app
        .put(
            "/api/v1/model-prices/tiered",
            json!({"provider": "x", "promptPerMillion": 1, "completionPerMillion": 2,
                   "cachedPromptPerMillion": 0.5,
                   "tiers": [
                       {"abovePromptTokens": 2000, "promptPerMillion": 100, "completionPerMillion": 200},
                       {"abovePromptTokens": 1000, "promptPerMillion": 10, "completionPerMillion": 20,
                        "reasoningPerMillion": 30}]}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    // stored sorted, every field present
    assert_eq!(p["tiers"][0]["abovePromptTokens"], 1000);
    assert_eq!(p["tiers"][0]["reasoningPerMillion"].as_f64(), Some(30.0));
    assert_eq!(p["tiers"][1]["cachedPromptPerMillion"], Value::Null);
    assert_eq!(p["cachedPromptPerMillion"].as_f64(), Some(0.5));
    assert_eq!(p["cacheWritePerMillion"], Value::Null);
    // (prompt, cached, reasoning, completion) → USD
    let cases = [
        (1000, 0, 0, 10, 1000.0 * 1.0 + 10.0 * 2.0),
        (1000, 400, 0, 10, 600.0 * 1.0 + 400.0 * 0.5 + 10.0 * 2.0),
        (1001, 0, 0, 10, 1001.0 * 10.0 + 10.0 * 20.0),
        (
            1001,
            1,
            5,
            10,
            1000.0 * 10.0 + 1.0 * 10.0 + 5.0 * 20.0 + 5.0 * 30.0,
        ),
        (2000, 0, 0, 0, 2000.0 * 10.0),
        (2001, 0, 0, 1, 2001.0 * 100.0 + 200.0),
        (0, 0, 0, 0, 0.0),
    ];
    for (i, (pt, cached, reasoning, ct, usd_per_million)) in cases.into_iter().enumerate() {
        let b = post_record(
            &app,
            json!({"threadId": format!("t{i}"), "model": "tiered", "promptTokens": pt,
                   "completionTokens": ct, "cachedPromptTokens": cached,
                   "reasoningTokens": reasoning}),
        )
        .await;
        let want: f64 = usd_per_million / 1e6;
        assert_eq!(b["cost"].as_f64(), Some(want), "case {i}: {b}");
    }
    // the listing shows the version with its tiers
    let (_, l) = app.get("/api/v1/model-prices").await;
    let t = l["modelPrices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == "tiered")
        .unwrap();
    assert_eq!(t["tiers"].as_array().unwrap().len(), 2);
    // bad tiers are refused, nothing stored
    for bad in [
        json!([{"abovePromptTokens": 5, "promptPerMillion": 1, "completionPerMillion": 1},
               {"abovePromptTokens": 5, "promptPerMillion": 2, "completionPerMillion": 2}]),
        json!([{"abovePromptTokens": -1, "promptPerMillion": 1, "completionPerMillion": 1}]),
        json!([{"abovePromptTokens": 5, "promptPerMillion": 1}]),
        json!([{"abovePromptTokens": 5, "promptPerMillion": 1, "completionPerMillion": 2e9}]),
    ] {
        let (s, b) = app
            .put(
                "/api/v1/model-prices/tiered",
                json!({"provider": "x", "promptPerMillion": 1, "completionPerMillion": 2, "tiers": bad}),
            )
            .await;
        assert_eq!(s, 400, "{b}");
    }
    let c = app.db.client().await;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM usage.model_prices WHERE model = 'tiered'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn shipped_prices_include_the_cache_prices_and_the_long_context_tier() {
    let app = TestApp::new().await;
    let (s, l) = app.get("/api/v1/model-prices").await;
    assert_eq!(s, 200);
    let find = |m: &str| {
        l["modelPrices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["model"] == m)
            .unwrap()
            .clone()
    };
    let sonnet = find("claude-sonnet-4");
    assert_eq!(sonnet["cachedPromptPerMillion"].as_f64(), Some(0.3));
    assert_eq!(sonnet["cacheWritePerMillion"].as_f64(), Some(3.75));
    assert_eq!(sonnet["reasoningPerMillion"], Value::Null);
    assert_eq!(
        sonnet["tiers"],
        json!([{"abovePromptTokens": 200000, "promptPerMillion": 6.0,
                "completionPerMillion": 22.5, "cachedPromptPerMillion": 0.6,
                "cacheWritePerMillion": 7.5, "reasoningPerMillion": null}])
    );
    assert_eq!(
        find("gpt-4o")["cachedPromptPerMillion"].as_f64(),
        Some(1.25)
    );
    assert_eq!(
        find("gpt-4o-mini")["cachedPromptPerMillion"].as_f64(),
        Some(0.075)
    );
    assert_eq!(
        find("claude-opus-4")["cacheWritePerMillion"].as_f64(),
        Some(18.75)
    );
    assert_eq!(
        find("o3-mini")["cachedPromptPerMillion"].as_f64(),
        Some(0.55)
    );
    assert_eq!(find("grok-3")["tiers"], json!([]));
    assert_eq!(find("grok-3")["cachedPromptPerMillion"], Value::Null);
    // 300,000 prompt tokens of which 100,000 cached and 50,000 written, 1,000
    // completion: the tier's prices
    let b = post_record(
        &app,
        json!({"threadId": "s", "model": "claude-sonnet-4-20250514", "promptTokens": 300_000,
               "cachedPromptTokens": 100_000, "cacheWriteTokens": 50_000,
               "completionTokens": 1000}),
    )
    .await;
    // (in micro-USD per million, exact)
    let want = (150_000 * 6_000_000i64 + 100_000 * 600_000 + 50_000 * 7_500_000 + 1000 * 22_500_000)
        as f64
        / 1e12;
    assert_eq!(b["cost"].as_f64(), Some(want), "{b}");
}

#[tokio::test]
async fn the_breakdown_shows_in_every_total_and_budgets_count_prompt_and_completion() {
    let app = TestApp::new().await;
    let b = post_record(
        &app,
        json!({"threadId": "t", "agentId": "a", "model": "o3-mini", "promptTokens": 100,
               "cachedPromptTokens": 60, "cacheWriteTokens": 10, "completionTokens": 50,
               "reasoningTokens": 40}),
    )
    .await;
    assert_eq!(b["budget"]["totalTokens"], 150);
    assert_eq!(b["budget"]["cachedPromptTokens"], 60);
    // a batch: one record gives a breakdown, one gives none
    let (s, out) = app
        .post(
            "/api/v1/usage/records/batch",
            json!({"records": [
                {"threadId": "t", "agentId": "a", "model": "o3-mini", "promptTokens": 10,
                 "completionTokens": 5, "cachedPromptTokens": 1, "cacheWriteTokens": 2,
                 "reasoningTokens": 3},
                {"threadId": "t", "agentId": "a", "model": "o3-mini", "promptTokens": 10,
                 "completionTokens": 5}]}),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    let check = |v: &Value, what: &str| {
        assert_eq!(v["promptTokens"], 120, "{what}: {v}");
        assert_eq!(v["completionTokens"], 60, "{what}: {v}");
        assert_eq!(v["cachedPromptTokens"], 61, "{what}: {v}");
        assert_eq!(v["cacheWriteTokens"], 12, "{what}: {v}");
        assert_eq!(v["reasoningTokens"], 43, "{what}: {v}");
    };
    let c = app.db.client().await;
    // before and after the batch is folded
    for folded in [false, true] {
        if folded {
            c.execute("SELECT usage.fold()", &[]).await.unwrap();
        }
        let (_, o) = app.get("/api/v1/usage").await;
        check(&o["usage"]["totals"], "totals");
        check(&o["usage"]["byAgent"][0], "byAgent");
        check(&o["usage"]["byModel"][0], "byModel");
        let (_, a) = app.get("/api/v1/usage/agents/a").await;
        check(&a, "agent");
        let (_, m) = app.get("/api/v1/usage/models/o3-mini").await;
        check(&m, "model");
        let (_, t) = app.get("/api/v1/usage/threads/t").await;
        check(&t, "budget");
        assert_eq!(t["totalTokens"], 180);
        let (_, l) = app.get("/api/v1/usage/threads").await;
        check(&l["threads"][0], "budget list");
        let (_, d) = app.get("/api/v1/usage/daily").await;
        assert_eq!(d["days"][0]["cachedPromptTokens"], 61);
        assert_eq!(d["days"][0]["cacheWriteTokens"], 12);
        assert_eq!(d["days"][0]["reasoningTokens"], 43);
        assert_eq!(d["days"][0]["totalTokens"], 180);
        let row = c
            .query_one(
                "SELECT (SELECT row_to_json(x)::jsonb FROM (SELECT sum(cached_prompt_tokens) AS c,
                         sum(cache_write_tokens) AS w, sum(reasoning_tokens) AS r
                         FROM reporting.usage_records) x),
                        (SELECT row_to_json(x)::jsonb FROM (SELECT sum(cached_prompt_tokens) AS c,
                         sum(cache_write_tokens) AS w, sum(reasoning_tokens) AS r
                         FROM reporting.usage_daily) x),
                        (SELECT row_to_json(x)::jsonb FROM (SELECT sum(cached_prompt_tokens) AS c,
                         sum(cache_write_tokens) AS w, sum(reasoning_tokens) AS r
                         FROM reporting.usage_by_agent) x),
                        (SELECT row_to_json(x)::jsonb FROM (SELECT sum(cached_prompt_tokens) AS c,
                         sum(cache_write_tokens) AS w, sum(reasoning_tokens) AS r
                         FROM reporting.usage_by_model) x)",
                &[],
            )
            .await
            .unwrap();
        for i in 0..4 {
            let v: Value = row.get(i);
            assert_eq!(v, json!({"c": 61, "w": 12, "r": 43}), "reporting view {i}");
        }
    }
    let (_, h) = app.get("/api/v1/usage/history").await;
    let recs = h["records"].as_array().unwrap();
    assert_eq!(recs[0]["cachedPromptTokens"], 0);
    assert_eq!(recs[1]["cacheWriteTokens"], 2);
    assert_eq!(recs[2]["reasoningTokens"], 40);
    // o3-mini: cached 0.55, the rest 1.1 / 4.4
    let want = (30 * 1_100_000i64 + 60 * 550_000 + 10 * 1_100_000 + 50 * 4_400_000) as f64 / 1e12;
    assert_eq!(recs[2]["cost"].as_f64(), Some(want));
    // the check counts prompt + completion
    let (s, _) = app
        .put("/api/v1/usage/threads/t", json!({"maxTokens": 180}))
        .await;
    assert_eq!(s, 200);
    let (s, b) = app
        .post(
            "/api/v1/usage/threads/t/check",
            json!({"estimatedTokens": 0}),
        )
        .await;
    assert_eq!((s, error_code(&b)), (429, "budget_exhausted"));
}

#[tokio::test]
async fn bad_breakdowns_are_refused_and_nothing_is_written() {
    let app = TestApp::new().await;
    let base =
        json!({"threadId": "t", "model": "gpt-4o", "promptTokens": 10, "completionTokens": 5});
    let with = |extra: Value| {
        let mut r = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    for bad in [
        json!({"cachedPromptTokens": 11}),
        json!({"cachedPromptTokens": 6, "cacheWriteTokens": 5}),
        json!({"cacheWriteTokens": 11}),
        json!({"reasoningTokens": 6}),
    ] {
        let (s, b) = app.post("/api/v1/usage/records", with(bad.clone())).await;
        assert_eq!(
            (s, error_code(&b)),
            (400, "invalid_token_breakdown"),
            "{bad}"
        );
    }
    for bad in [
        json!({"cachedPromptTokens": -1}),
        json!({"reasoningTokens": 1.5}),
    ] {
        let (s, b) = app.post("/api/v1/usage/records", with(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
    // the limits themselves are fine
    let (s, b) = app
        .post(
            "/api/v1/usage/records",
            with(json!({"cachedPromptTokens": 4, "cacheWriteTokens": 6, "reasoningTokens": 5})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // a batch: all or nothing, the first bad record named
    let good = with(json!({"cachedPromptTokens": 1}));
    let records = json!([
        good,
        good,
        with(json!({"reasoningTokens": 9})),
        with(json!({"cachedPromptTokens": 99}))
    ]);
    let (s, b) = app
        .post("/api/v1/usage/records/batch", json!({"records": records}))
        .await;
    assert_eq!((s, error_code(&b)), (400, "invalid_token_breakdown"), "{b}");
    assert_eq!(b["error"]["details"]["index"], 2);
    let c = app.db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM usage.records").await, 1);
    // the SQL writer refuses them whoever calls it
    let err = c
        .query_one(
            "SELECT usage.record_batch('{t}', '{NULL}', '{m}', '{NULL}', '{5}', '{5}', '{NULL}',
                                       '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{3}', '{3}', NULL)",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("invalid_token_breakdown"),
        "{err:?}"
    );
}
