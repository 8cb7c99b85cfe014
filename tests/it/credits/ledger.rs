//! The ledger: keyset history, debt when the balance is not validated, block
//! prices.

use super::*;

#[tokio::test]
async fn transaction_history_pages_by_keyset() {
    let app = TestApp::new().await;
    let p = credits_path("pg");
    for i in 0..7 {
        let (s, _) = app
            .post(
                &format!("{p}/top-up"),
                json!({"amount": i + 1, "at": format!("2024-05-0{}T00:00:00Z", i + 1)}),
            )
            .await;
        assert_eq!(s, 200);
    }
    // same effective time: id breaks the tie
    app.post(
        &format!("{p}/top-up"),
        json!({"amount": 50, "at": "2024-05-03T00:00:00Z"}),
    )
    .await;
    let mut seen = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let q = match after {
            Some(a) => format!("{p}/transactions?limit=3&from=2024-05-01T00:00:00Z&to=2024-06-01T00:00:00Z&after={a}"),
            None => format!("{p}/transactions?limit=3&from=2024-05-01T00:00:00Z&to=2024-06-01T00:00:00Z"),
        };
        let (s, page) = app.get(&q).await;
        assert_eq!(s, 200, "{page}");
        let items = page["transactions"].as_array().unwrap();
        assert_eq!(page["count"].as_u64().unwrap() as usize, items.len());
        for t in items {
            seen.push((
                t["effectiveAt"].as_str().unwrap().to_string(),
                t["id"].as_i64().unwrap(),
            ));
        }
        match page["nextAfter"].as_i64() {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    // 7 top-ups + 1 + the May refill
    assert_eq!(seen.len(), 9, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted);
    // `to` is exclusive, `from` inclusive
    let (_, page) = app
        .get(&format!(
            "{p}/transactions?from=2024-05-02T00:00:00Z&to=2024-05-03T00:00:00Z"
        ))
        .await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["transactions"][0]["amount"], 2);
    let (_, page) = app.get(&format!("{p}/transactions?kind=refill")).await;
    assert!(page["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["kind"] == "refill"));
}

#[tokio::test]
async fn block_costs_api_and_pricing() {
    let app = TestApp::new().await;
    let (s, b) = app
        .put(
            "/api/v1/block-costs/multi",
            json!({"costs": [
                {"costType": "second", "amount": 3, "filter": {"mode": "slow"}},
                {"costType": "byte", "amount": 2, "filter": {"mode": "bulk"}},
                {"costType": "run", "amount": 5}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["costs"][2]["filter"], json!({}));
    let (s, one) = app.get("/api/v1/block-costs/multi").await;
    assert_eq!(s, 200);
    assert_eq!(one["costs"], b["costs"]);
    let (s, list) = app.get("/api/v1/block-costs").await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 1);
    assert_eq!(list["total"], 1);
    assert_eq!(list["blockCosts"][0]["blockId"], "multi");
    assert_eq!(app.get("/api/v1/block-costs/none").await.0, 404);

    let c = app.db.client().await;
    let price = |input: Value, dur: Option<f64>| {
        let c = &c;
        async move {
            c.query_one("SELECT credits.price('multi', $1, $2)", &[&input, &dur])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(price(json!({"mode": "slow"}), Some(2.1)).await, 9);
    assert_eq!(price(json!({"mode": "slow"}), None).await, 0);
    let big = "x".repeat(3000);
    assert_eq!(price(json!({"mode": "bulk", "data": big}), None).await, 6);
    assert_eq!(price(json!({"mode": "other"}), None).await, 5);
    assert_eq!(price(json!({}), None).await, 5);
    // unpriced block: 0
    let zero: i64 = c
        .query_one("SELECT credits.price('nope', '{}')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(zero, 0);
    // spend with a second price and a duration
    let (s, sp) = app
        .post(
            "/api/v1/users/z/credits/spend",
            json!({"blockId": "multi", "input": {"mode": "slow"}, "durationSeconds": 4.5}),
        )
        .await;
    assert_eq!(s, 200, "{sp}");
    assert_eq!(sp["cost"], 15);
}

#[tokio::test]
async fn validate_balance_false_records_debt() {
    let app = TestApp::new().await;
    let p = credits_path("debt");
    balance(&app, "debt").await;
    let events = count(&app.db, "SELECT count(*) FROM feed.events").await;
    let (s, e) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 1500}),
        )
        .await;
    assert_eq!(s, 402);
    assert_eq!(
        count(&app.db, "SELECT count(*) FROM feed.events").await,
        events
    );
    assert_eq!(error_code(&e), "insufficient_credits");
    assert_eq!(e["error"]["details"]["balance"], 1000);
    assert_eq!(e["error"]["details"]["cost"], 1500);
    assert_eq!(
        count(
            &app.db,
            "SELECT count(*) FROM credits.transactions WHERE kind = 'usage'"
        )
        .await,
        0
    );
    let (s, b) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 1500, "validateBalance": false}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["balance"], -500);
    assert_eq!(balance(&app, "debt").await["balance"], -500);
    // a NULL validateBalance from SQL means the default (true)
    let e = app
        .db
        .client()
        .await
        .query_one(
            "SELECT * FROM credits.spend('debt', 'b', '{}', NULL, 1, NULL)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "AP402");
    assert_ledger_consistent(&app.db).await;
}
