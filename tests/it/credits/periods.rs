//! Months and refills: reset semantics, top-up policies, low-balance events.

use super::*;

#[tokio::test]
async fn reset_month_semantics() {
    let app = TestApp::new().await;
    set_platform_price(&app, "llm", 7).await;
    let u = "alice";
    assert_eq!(app.get("/api/v1/users/alice").await.0, 404);

    let start = balance(&app, u).await;
    assert_eq!(start["balance"], 1000);
    assert_eq!(start["available"], 1000);
    assert_eq!(start["refillPolicy"], "reset");
    let (s, user) = app.get("/api/v1/users/alice").await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["refillAmount"], 1000);

    let spend = |input: &str| json!({"blockId": "llm", "input": serde_json::from_str::<Value>(input).unwrap()});
    let (s, a) = app
        .post(&format!("{}/spend", credits_path(u)), spend(PLATFORM_INPUT))
        .await;
    assert_eq!(s, 200, "{a}");
    let (s, b) = app
        .post(&format!("{}/spend", credits_path(u)), spend(OWN_KEY_INPUT))
        .await;
    assert_eq!(s, 200, "{b}");
    let (ca, cb) = (a["cost"].as_i64().unwrap(), b["cost"].as_i64().unwrap());
    assert!(ca > 0);
    assert_eq!(cb, 0);
    assert_eq!(balance(&app, u).await["balance"], 1000 - ca - cb);
    assert_eq!(b["balance"], 1000 - ca - cb);

    let (s, t) = app
        .post(
            &format!("{}/top-up", credits_path(u)),
            json!({"amount": 100}),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["balance"], 1000 - ca + 100);
    assert_eq!(balance(&app, u).await["balance"], 1000 - ca + 100);

    // month 2 computed first, then a top-up dated in month 1
    let m1 = "2024-01-15T10:00:00Z";
    let m2 = "2024-02-10T10:00:00Z";
    let m2_before = balance_at(&app, u, m2).await;
    assert_eq!(m2_before, 1000);
    let m1_before = balance_at(&app, u, m1).await;
    let (s, t) = app
        .post(
            &format!("{}/top-up", credits_path(u)),
            json!({"amount": 100, "at": m1}),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(balance_at(&app, u, m1).await, m1_before + 100);
    assert_eq!(balance_at(&app, u, m2).await, m2_before);
    let (_, period) = app.get(&format!("{}?at={}", credits_path(u), m1)).await;
    let ts = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    assert_eq!(
        ts(&period["period"]["start"]),
        ts(&json!("2024-01-01T00:00:00Z"))
    );
    assert_eq!(
        ts(&period["period"]["end"]),
        ts(&json!("2024-02-01T00:00:00Z"))
    );

    // spend in month 1 too, then deactivate every transaction of month 1
    let (s, _) = app
        .post(
            &format!("{}/spend", credits_path(u)),
            json!({"blockId": "x", "amount": 30, "at": m1}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, list) = app
        .get(&format!(
            "{}/transactions?from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:00Z&limit=100",
            credits_path(u)
        ))
        .await;
    assert_eq!(s, 200, "{list}");
    let txs = list["transactions"].as_array().unwrap().clone();
    assert_eq!(txs.len(), 3, "{list}");
    for tx in &txs {
        assert_eq!(tx["period"], "2024-01-01");
        let (s, d) = app
            .post(
                &format!("{}/transactions/{}/deactivate", credits_path(u), tx["id"]),
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{d}");
        assert_eq!(d["isActive"], false);
    }
    assert_eq!(balance_at(&app, u, m1).await, 1000);
    assert_eq!(balance_at(&app, u, m2).await, m2_before);
    // exactly one active refill per month
    assert_eq!(
        count(
            &app.db,
            "SELECT count(*) FROM credits.transactions WHERE user_id = 'alice' \
             AND period = '2024-01-01' AND kind = 'refill' AND is_active"
        )
        .await,
        1
    );
    // reactivating the old refill while a new one counts is a conflict
    let old_refill = txs.iter().find(|t| t["kind"] == "refill").unwrap();
    let (s, e) = app
        .post(
            &format!(
                "{}/transactions/{}/activate",
                credits_path(u),
                old_refill["id"]
            ),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    // reactivating the top-up brings its 100 back
    let top = txs.iter().find(|t| t["kind"] == "top_up").unwrap();
    let (s, _) = app
        .post(
            &format!("{}/transactions/{}/activate", credits_path(u), top["id"]),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(balance_at(&app, u, m1).await, 1100);
    assert_ledger_consistent(&app.db).await;
    assert_every_row_has_event(&app.db).await;
    // every movement wrote a credits.changed event for alice
    assert!(
        count(
            &app.db,
            "SELECT count(*) FROM feed.events WHERE type = 'credits.changed' AND user_id = 'alice'"
        )
        .await
            >= 10
    );
}

#[tokio::test]
async fn top_up_to_policy() {
    let app = TestApp::new().await;
    put_user(&app, "bob", 1000, "top_up_to").await;
    let p = credits_path("bob");
    let (m1, m2, m3) = (
        "2024-01-05T00:00:00Z",
        "2024-02-05T00:00:00Z",
        "2024-03-05T00:00:00Z",
    );
    assert_eq!(balance_at(&app, "bob", m1).await, 1000);
    let (s, _) = app
        .post(&format!("{p}/top-up"), json!({"amount": 100, "at": m1}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(balance_at(&app, "bob", m2).await, 1100);
    let (s, b) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 700, "at": m2}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["balance"], 400);
    assert_eq!(balance_at(&app, "bob", m3).await, 1000);
    let (_, refills) = app.get(&format!("{p}/transactions?kind=refill")).await;
    let amounts: Vec<(String, i64)> = refills["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["period"].as_str().unwrap().to_string(),
                t["amount"].as_i64().unwrap(),
            )
        })
        .filter(|(p, _)| p.starts_with("2024"))
        .collect();
    assert_eq!(
        amounts,
        vec![("2024-03-01".into(), 600), ("2024-01-01".into(), 1000)]
    );
    // policy none: a plain wallet
    put_user(&app, "carol", 1000, "none").await;
    assert_eq!(balance(&app, "carol").await["balance"], 0);
    // switching policy within a month: the running bucket starts on its own
    put_user(&app, "dan", 1000, "reset").await;
    let (s, _) = app
        .post(
            &format!("{}/spend", credits_path("dan")),
            json!({"blockId": "b", "amount": 100}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(balance(&app, "dan").await["balance"], 900);
    put_user(&app, "dan", 1000, "top_up_to").await;
    assert_eq!(balance(&app, "dan").await["balance"], 1000);
    put_user(&app, "dan", 1000, "none").await;
    assert_eq!(balance(&app, "dan").await["balance"], 1000);
    put_user(&app, "dan", 1000, "reset").await;
    assert_eq!(balance(&app, "dan").await["balance"], 900);
    assert_ledger_consistent(&app.db).await;
}

#[tokio::test]
async fn low_balance_events_once_per_threshold_and_month() {
    let app = TestApp::new().await;
    let (s, u) = app
        .put(
            "/api/v1/users/lo",
            json!({"refillAmount": 1000, "refillPolicy": "reset", "lowBalanceThresholds": [500, 100]}),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["lowBalanceThresholds"], json!([500, 100]));
    let p = credits_path("lo");
    for amount in [400, 200, 50, 300, 40] {
        // 600, 400 (crosses 500), 350, 50 (crosses 100), 10
        let (s, _) = app
            .post(
                &format!("{p}/spend"),
                json!({"blockId": "b", "amount": amount}),
            )
            .await;
        assert_eq!(s, 200);
    }
    // back up over 500 and down again in the same month: no second event
    app.post(&format!("{p}/top-up"), json!({"amount": 900}))
        .await;
    app.post(
        &format!("{p}/spend"),
        json!({"blockId": "b", "amount": 500}),
    )
    .await;
    let c = app.db.client().await;
    let thresholds: Vec<i64> = column(
        &c,
        "SELECT (body->'data'->>'threshold')::bigint FROM feed.events \
         WHERE type = 'credits.low_balance' AND user_id = 'lo' ORDER BY id",
    )
    .await;
    assert_eq!(thresholds, vec![500, 100]);
}
