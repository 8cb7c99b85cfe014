//! Performance attribution and the metrics over a known log.

use super::*;

#[tokio::test]
async fn performance_attribution_and_metrics() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    for n in ["a", "b"] {
        app.post(V, json!({"name": n})).await;
    }
    let perf = "/api/v1/agents/bot/performance";
    // none active, no slug: unattributed
    let (s, r) = app
        .post(perf, json!({"success": true, "latencyMs": 5}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["variantId"], Value::Null);
    let c = app.db.client().await;
    app.post(&format!("{V}/a/activate"), json!({})).await;
    let t_a: chrono::DateTime<chrono::Utc> = c
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .unwrap()
        .get(0);
    app.post(&format!("{V}/b/activate"), json!({})).await;
    // no slug, no time: the variant active now
    let (_, r) = app
        .post(perf, json!({"success": true, "latencyMs": 5}))
        .await;
    assert_eq!(r["variantSlug"], "b");
    // a past time: the variant active then
    let (_, r) = app
        .post(
            perf,
            json!({"success": true, "latencyMs": 5, "at": t_a.to_rfc3339()}),
        )
        .await;
    assert_eq!(r["variantSlug"], "a", "{r}");
    let before = t_a - chrono::Duration::days(1);
    let (_, r) = app
        .post(
            perf,
            json!({"success": true, "latencyMs": 5, "at": before.to_rfc3339()}),
        )
        .await;
    assert_eq!(r["variantId"], Value::Null);
    // explicit slug wins
    let (_, r) = app
        .post(
            perf,
            json!({"success": false, "latencyMs": 5, "variantSlug": "a", "error": "boom"}),
        )
        .await;
    assert_eq!(r["variantSlug"], "a");
    assert_eq!(r["error"], "boom");
    let (s, e) = app
        .post(
            perf,
            json!({"success": true, "latencyMs": 5, "variantSlug": "nope"}),
        )
        .await;
    assert_eq!((s, error_code(&e)), (404, "variant_not_found"));
    app.post(&format!("{V}/deactivate"), json!({})).await;
    let (_, r) = app
        .post(
            perf,
            json!({"success": true, "latencyMs": 5, "at": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    assert_eq!(r["variantId"], Value::Null);
}

#[tokio::test]
async fn metrics_on_a_known_log() {
    let app = TestApp::new().await;
    add_agent(&app, "bot").await;
    app.post(V, json!({"name": "m"})).await;
    app.post(V, json!({"name": "idle"})).await;
    let perf = "/api/v1/agents/bot/performance";
    // 10 runs, 8 successes (runs 3 and 7 fail), latencies 100..1000 given in
    // shuffled order, 10+5 tokens and $0.0015 each, two quality scores.
    let latencies = [
        700.0, 100.0, 1000.0, 300.0, 500.0, 200.0, 900.0, 400.0, 800.0, 600.0,
    ];
    for (i, lat) in latencies.iter().enumerate() {
        let mut b = json!({
            "success": i != 3 && i != 7, "latencyMs": lat, "promptTokens": 10,
            "completionTokens": 5, "cost": 0.0015, "variantSlug": "m",
            "at": format!("2026-03-01T{:02}:30:00Z", 10 + i / 4),
        });
        if i == 0 {
            b["qualityScore"] = json!(0.5);
        }
        if i == 1 {
            b["qualityScore"] = json!(1.0);
        }
        let (s, r) = app.post(perf, b).await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, m) = app.get(&format!("{V}/m/metrics")).await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["runs"], 10);
    assert_eq!(m["successRate"], 0.8);
    assert_eq!(m["avgLatencyMs"], 550.0);
    // percentile_cont: position p*(n-1) in the sorted list, interpolated.
    // p50: 0.5*9 = 4.5 → 500 + 0.5*(600-500) = 550
    // p95: 0.95*9 = 8.55 → 900 + 0.55*(1000-900) = 955
    assert!(
        (m["p50LatencyMs"].as_f64().unwrap() - 550.0).abs() < 1e-9,
        "{m}"
    );
    assert!(
        (m["p95LatencyMs"].as_f64().unwrap() - 955.0).abs() < 1e-9,
        "{m}"
    );
    assert_eq!(m["totalTokens"], 150);
    assert_eq!(m["totalCost"], 0.015);
    assert_eq!(m["avgQualityScore"], 0.75);
    assert_eq!(m["variantSlug"], "m");

    // a window: [10:00, 11:00) holds runs 0-3 (latencies 700,100,1000,300; run 3 failed)
    let (_, w) = app
        .get(&format!(
            "{V}/m/metrics?start=2026-03-01T10:00:00Z&end=2026-03-01T11:00:00Z"
        ))
        .await;
    assert_eq!(w["runs"], 4);
    assert_eq!(w["successRate"], 0.75);
    assert_eq!(w["avgLatencyMs"], 525.0);
    // sorted 100,300,700,1000: p50 at 1.5 → 300 + 0.5*400 = 500
    assert!((w["p50LatencyMs"].as_f64().unwrap() - 500.0).abs() < 1e-9);

    // no runs
    let (_, e) = app.get(&format!("{V}/idle/metrics")).await;
    assert_eq!(e["runs"], 0);
    assert_eq!(e["successRate"], Value::Null);
    assert_eq!(e["avgLatencyMs"], Value::Null);
    assert_eq!(e["totalTokens"], 0);
    assert_eq!(e["totalCost"], 0.0);

    // hourly history: 10:xx runs 0-3, 11:xx runs 4-7, 12:xx runs 8-9
    let (s, h) = app.get(&format!("{V}/m/history?bucket=hour")).await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["bucket"], "hour");
    assert_eq!(h["count"], 3);
    let pts = h["points"].as_array().unwrap();
    assert_eq!(
        pts[0]["bucketStart"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        "2026-03-01T10:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(
        pts.iter()
            .map(|p| p["runs"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    assert_eq!(pts[1]["successRate"], 0.75);
    assert_eq!(pts[2]["avgLatencyMs"], 700.0);
    // daily (the default bucket): one point equal to the metrics
    let (_, d) = app.get(&format!("{V}/m/history")).await;
    assert_eq!(d["bucket"], "day");
    assert_eq!(d["count"], 1);
    assert_eq!(d["points"][0]["runs"], 10);
    assert_eq!(d["points"][0]["p95LatencyMs"], m["p95LatencyMs"]);
    let (_, d) = app
        .get(&format!(
            "{V}/m/history?bucket=day&start=2026-03-02T00:00:00Z"
        ))
        .await;
    assert_eq!(d["count"], 0);

    // compare: every variant side by side
    let (s, c) = app.get(&format!("{V}/compare")).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["count"], 2);
    assert_eq!(c["variants"][0]["variantSlug"], "m");
    assert_eq!(c["variants"][0]["runs"], 10);
    assert_eq!(c["variants"][0]["p50LatencyMs"], m["p50LatencyMs"]);
    assert_eq!(c["variants"][1]["variantSlug"], "idle");
    assert_eq!(c["variants"][1]["runs"], 0);

    // the reporting view, read by the reporting role
    let client = app.db.analyst_client().await;
    let row = client
        .query_one(
            "SELECT variant_slug, day::text, runs, successes, success_rate, avg_latency_ms, \
             p50_latency_ms, p95_latency_ms, total_tokens::bigint, total_cost::float8, \
             avg_quality_score FROM reporting.variant_performance WHERE agent_name = 'bot'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("m"));
    assert_eq!(row.get::<_, String>(1), "2026-03-01");
    assert_eq!(row.get::<_, i64>(2), 10);
    assert_eq!(row.get::<_, i64>(3), 8);
    assert_eq!(row.get::<_, f64>(4), 0.8);
    assert_eq!(row.get::<_, f64>(5), 550.0);
    assert!((row.get::<_, f64>(7) - 955.0).abs() < 1e-9);
    assert_eq!(row.get::<_, i64>(8), 150);
    assert_eq!(row.get::<_, f64>(9), 0.015);
    assert_eq!(row.get::<_, f64>(10), 0.75);
    assert!(client
        .query("SELECT * FROM variants.performance", &[])
        .await
        .is_err());
}
