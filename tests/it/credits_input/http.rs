//! Bad input through HTTP.

use super::*;

/// Bad input of every kind: 400 and nothing written.
#[tokio::test]
async fn bad_input_is_400_and_writes_nothing() {
    let app = TestApp::new().await;
    set_platform_price(&app, "llm", 3).await;
    // a user with some history, so ids exist
    let (_, t) = app
        .post(
            &format!("{}/top-up", credits_path("ok")),
            json!({"amount": 1}),
        )
        .await;
    let tx = t["transactionId"].as_i64().unwrap();
    let (_, h) = app
        .post(
            &format!("{}/holds", credits_path("ok")),
            json!({"amount": 1}),
        )
        .await;
    let hold = h["holdId"].as_str().unwrap().to_string();

    let snapshot = || async {
        let c = app.db.client().await;
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM credits.transactions),
                        (SELECT count(*) FROM credits.holds WHERE status = 'open'),
                        (SELECT count(*) FROM credits.users),
                        (SELECT count(*) FROM credits.balances),
                        (SELECT count(*) FROM feed.events),
                        (SELECT sum(balance) FROM credits.balances)::bigint,
                        (SELECT string_agg(costs::text, ',') FROM credits.block_costs)",
                &[],
            )
            .await
            .unwrap();
        (
            r.get::<_, i64>(0),
            r.get::<_, i64>(1),
            r.get::<_, i64>(2),
            r.get::<_, i64>(3),
            r.get::<_, i64>(4),
            r.get::<_, i64>(5),
            r.get::<_, String>(6),
        )
    };
    let before = snapshot().await;
    let huge = "99999999999999999999999";
    let big_amount: Value = serde_json::from_str(huge).unwrap();
    let p = credits_path("ok");
    let cases: Vec<(&str, String, Value)> = vec![
        // users
        (
            "PUT",
            "/api/v1/users/bad%20id".into(),
            json!({"refillAmount": 1, "refillPolicy": "reset"}),
        ),
        (
            "PUT",
            "/api/v1/users/ok".into(),
            json!({"refillAmount": -1, "refillPolicy": "reset"}),
        ),
        (
            "PUT",
            "/api/v1/users/ok".into(),
            json!({"refillAmount": 1, "refillPolicy": "monthly"}),
        ),
        (
            "PUT",
            "/api/v1/users/ok".into(),
            json!({"refillAmount": big_amount, "refillPolicy": "reset"}),
        ),
        (
            "PUT",
            "/api/v1/users/ok".into(),
            json!({"refillAmount": 1, "refillPolicy": "reset", "lowBalanceThresholds": ["x"]}),
        ),
        (
            "PUT",
            "/api/v1/users/ok".into(),
            json!({"refillPolicy": "reset"}),
        ),
        (
            "GET",
            format!("/api/v1/users/{}", "x".repeat(129)),
            Value::Null,
        ),
        // credits
        ("GET", "/api/v1/users/bad$id/credits".into(), Value::Null),
        ("GET", format!("{p}?at=yesterday"), Value::Null),
        // spend
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "amount": 0}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "amount": -5}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "amount": big_amount}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "bad block", "amount": 1}),
        ),
        ("POST", format!("{p}/spend"), json!({"amount": 1})),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "input": [1, 2]}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "input": "text"}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "durationSeconds": -1}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "metadata": [1]}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "idempotencyKey": ""}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "validateBalance": "maybe"}),
        ),
        (
            "POST",
            format!("{p}/spend"),
            json!({"blockId": "llm", "at": "not a time"}),
        ),
        (
            "POST",
            "/api/v1/users/bad%20user/credits/spend".into(),
            json!({"blockId": "llm", "amount": 1}),
        ),
        // top-up
        ("POST", format!("{p}/top-up"), json!({"amount": 0})),
        ("POST", format!("{p}/top-up"), json!({"amount": -1})),
        ("POST", format!("{p}/top-up"), json!({"amount": big_amount})),
        ("POST", format!("{p}/top-up"), json!({"amount": 1.5})),
        ("POST", format!("{p}/top-up"), json!({"amount": i64::MAX})),
        ("POST", format!("{p}/top-up"), json!({})),
        (
            "POST",
            format!("{p}/top-up"),
            json!({"amount": 1, "metadata": "x"}),
        ),
        // adjust
        (
            "POST",
            format!("{p}/adjust"),
            json!({"amount": 0, "kind": "grant", "reason": "r"}),
        ),
        (
            "POST",
            format!("{p}/adjust"),
            json!({"amount": 5, "kind": "gift", "reason": "r"}),
        ),
        (
            "POST",
            format!("{p}/adjust"),
            json!({"amount": 5, "kind": "usage", "reason": "r"}),
        ),
        (
            "POST",
            format!("{p}/adjust"),
            json!({"amount": 5, "kind": "grant", "reason": ""}),
        ),
        (
            "POST",
            format!("{p}/adjust"),
            json!({"amount": 5, "kind": "grant"}),
        ),
        // transactions
        ("GET", format!("{p}/transactions?limit=0"), Value::Null),
        ("GET", format!("{p}/transactions?limit=101"), Value::Null),
        ("GET", format!("{p}/transactions?kind=gift"), Value::Null),
        ("GET", format!("{p}/transactions?after=abc"), Value::Null),
        ("GET", format!("{p}/transactions?after=999999"), Value::Null),
        ("GET", format!("{p}/transactions?from=soon"), Value::Null),
        (
            "POST",
            format!("{p}/transactions/abc/deactivate"),
            json!({}),
        ),
        ("POST", format!("{p}/transactions/-1/deactivate"), json!({})),
        ("POST", format!("{p}/transactions/0/activate"), json!({})),
        // holds
        ("POST", format!("{p}/holds"), json!({})),
        ("POST", format!("{p}/holds"), json!({"amount": 0})),
        ("POST", format!("{p}/holds"), json!({"amount": -3})),
        ("POST", format!("{p}/holds"), json!({"amount": big_amount})),
        (
            "POST",
            format!("{p}/holds"),
            json!({"amount": 1, "blockId": "llm"}),
        ),
        (
            "POST",
            format!("{p}/holds"),
            json!({"amount": 1, "ttlSeconds": 0}),
        ),
        (
            "POST",
            format!("{p}/holds"),
            json!({"amount": 1, "ttlSeconds": 10_000_000}),
        ),
        (
            "POST",
            format!("{p}/holds"),
            json!({"blockId": "llm", "input": 5}),
        ),
        (
            "POST",
            format!("{p}/holds/{hold}/settle"),
            json!({"amount": -1}),
        ),
        (
            "POST",
            format!("{p}/holds/{hold}/settle"),
            json!({"amount": big_amount}),
        ),
        ("POST", format!("{p}/holds/{hold}/settle"), json!({})),
        (
            "POST",
            format!("{p}/holds/xyz/settle"),
            json!({"amount": 1}),
        ),
        ("POST", format!("{p}/holds/xyz/release"), json!({})),
        // block costs
        (
            "PUT",
            "/api/v1/block-costs/llm".into(),
            json!({"costs": [{"costType": "minute", "amount": 1}]}),
        ),
        (
            "PUT",
            "/api/v1/block-costs/llm".into(),
            json!({"costs": [{"costType": "run", "amount": -1}]}),
        ),
        (
            "PUT",
            "/api/v1/block-costs/llm".into(),
            json!({"costs": [{"costType": "run", "amount": big_amount}]}),
        ),
        (
            "PUT",
            "/api/v1/block-costs/llm".into(),
            json!({"costs": [{"costType": "run", "amount": 1, "filter": [1]}]}),
        ),
        (
            "PUT",
            "/api/v1/block-costs/llm".into(),
            json!({"costs": [{"costType": "run"}]}),
        ),
        (
            "PUT",
            "/api/v1/block-costs/llm".into(),
            json!({"costs": "run"}),
        ),
        (
            "PUT",
            "/api/v1/block-costs/bad%20block".into(),
            json!({"costs": []}),
        ),
        ("GET", "/api/v1/block-costs?limit=0".into(), Value::Null),
        ("GET", "/api/v1/block-costs?offset=-1".into(), Value::Null),
        ("GET", "/api/v1/block-costs/bad%20block".into(), Value::Null),
    ];
    for (method, path, body) in &cases {
        let body = if body.is_null() { None } else { Some(body) };
        let (s, b) = app
            .call(method, path, Some(crate::support::ADMIN_KEY), body)
            .await;
        assert_eq!(s, 400, "{method} {path} {body:?} -> {s} {b}");
        error_code(&b);
    }
    // a balance overflow is bad input too
    let (s, b) = app
        .post(&format!("{p}/top-up"), json!({"amount": i64::MAX - 1}))
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(snapshot().await, before);
    // ids that do not exist are 404
    let (s, _) = app
        .post(
            &format!("{p}/transactions/{}/deactivate", tx + 1000),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .post(
            &format!(
                "{}/transactions/{tx}/deactivate",
                credits_path("someone-else")
            ),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
}
