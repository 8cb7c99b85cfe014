//! Reads across epochs: history pages and filters, the daily series, the
//! reporting views.

use super::*;

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
        json!([{"date": "2026-01-05", "totalTokens": 9, "cachedPromptTokens": 0, "cacheWriteTokens": 0,
                "reasoningTokens": 0, "requestCount": 3, "totalCost": d["days"][0]["totalCost"]}])
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
    let c = db.analyst_client().await;
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
