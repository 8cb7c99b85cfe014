//! Credits (docs/credits.md): month semantics, refill policies, holds, history,
//! roles, block prices, reporting views. SQL functions are called directly
//! and through the real HTTP router. Concurrency: tests/credits_concurrency.rs;
//! bad input and the filter property: tests/credits_input.rs.

mod common;
mod credits_support;

use common::{column, error_code, TestApp};
use credits_support::*;
use serde_json::{json, Value};

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
async fn holds_reserve_settle_release_expire() {
    let app = TestApp::new().await;
    let p = credits_path("h");
    put_user(&app, "h", 1000, "reset").await;
    let (s, h) = app
        .post(&format!("{p}/holds"), json!({"amount": 300}))
        .await;
    assert_eq!(s, 201, "{h}");
    assert_eq!(h["available"], 700);
    let b = balance(&app, "h").await;
    assert_eq!(
        (b["balance"].as_i64(), b["available"].as_i64()),
        (Some(1000), Some(700))
    );
    // a spend cannot use held credits
    let (s, e) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 701}),
        )
        .await;
    assert_eq!(s, 402, "{e}");
    assert_eq!(e["error"]["details"]["cost"], 701);
    // settle lower: the rest is released
    let hid = h["holdId"].as_str().unwrap().to_string();
    let (s, st) = app
        .post(&format!("{p}/holds/{hid}/settle"), json!({"amount": 120}))
        .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["amount"], 120);
    assert_eq!(st["balance"], 880);
    let b = balance(&app, "h").await;
    assert_eq!(
        (b["balance"].as_i64(), b["available"].as_i64()),
        (Some(880), Some(880))
    );
    // settled twice / released after settle: 409
    let (s, e) = app
        .post(&format!("{p}/holds/{hid}/settle"), json!({"amount": 1}))
        .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(error_code(&e), "hold_settled");
    let (s, _) = app
        .post(&format!("{p}/holds/{hid}/release"), json!({}))
        .await;
    assert_eq!(s, 409);

    // release
    let (_, h2) = app.post(&format!("{p}/holds"), json!({"amount": 80})).await;
    let hid2 = h2["holdId"].as_str().unwrap().to_string();
    let (s, r) = app
        .post(&format!("{p}/holds/{hid2}/release"), json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["available"], 880);
    let (s, e) = app
        .post(&format!("{p}/holds/{hid2}/release"), json!({}))
        .await;
    assert_eq!((s, error_code(&e)), (409, "hold_released"));

    // expiry restores availability without anyone calling
    let (_, h3) = app
        .post(
            &format!("{p}/holds"),
            json!({"amount": 500, "ttlSeconds": 60}),
        )
        .await;
    assert_eq!(balance(&app, "h").await["available"], 380);
    let hid3 = h3["holdId"].as_str().unwrap().to_string();
    app.db
        .client()
        .await
        .execute(
            "UPDATE credits.holds SET expires_at = now() - interval '1 second' WHERE id = $1::text::uuid",
            &[&hid3],
        )
        .await
        .unwrap();
    assert_eq!(balance(&app, "h").await["available"], 880);
    let (s, e) = app
        .post(&format!("{p}/holds/{hid3}/settle"), json!({"amount": 1}))
        .await;
    assert_eq!((s, error_code(&e)), (409, "hold_expired"));
    let (s, _) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 880}),
        )
        .await;
    assert_eq!(s, 200);

    // settle above the hold: only with allowDebt when not available
    let (_, fund) = app
        .post(&format!("{p}/top-up"), json!({"amount": 100}))
        .await;
    assert_eq!(fund["balance"], 100);
    let (_, h4) = app.post(&format!("{p}/holds"), json!({"amount": 60})).await;
    let hid4 = h4["holdId"].as_str().unwrap().to_string();
    let (s, e) = app
        .post(&format!("{p}/holds/{hid4}/settle"), json!({"amount": 150}))
        .await;
    assert_eq!((s, error_code(&e)), (402, "insufficient_credits"));
    let (s, st) = app
        .post(
            &format!("{p}/holds/{hid4}/settle"),
            json!({"amount": 150, "allowDebt": true}),
        )
        .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["balance"], -50);
    // unknown hold: 404; bad hold id: 400
    let (s, _) = app
        .post(
            &format!("{p}/holds/{}/release", uuid::Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .post(&format!("{p}/holds/not-a-uuid/release"), json!({}))
        .await;
    assert_eq!(s, 400);
    // a hold priced from a block
    set_platform_price(&app, "llm", 9).await;
    app.post(&format!("{p}/top-up"), json!({"amount": 100}))
        .await;
    let (s, hb) = app
        .post(
            &format!("{p}/holds"),
            json!({"blockId": "llm", "input": serde_json::from_str::<Value>(PLATFORM_INPUT).unwrap()}),
        )
        .await;
    assert_eq!(s, 201, "{hb}");
    assert_eq!(hb["amount"], 9);
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
async fn roles_user_binding_and_at() {
    let app = TestApp::new().await;
    let reader = app.key("reader", None).await;
    let bound = app.key("service", Some("dora")).await;
    let bound_reader = app.key("reader", Some("dora")).await;
    let p = credits_path("dora");
    let spend = json!({"blockId": "b", "amount": 1});
    // reader: reads, no spends, no `at`
    assert_eq!(app.call("GET", &p, Some(&reader), None).await.0, 200);
    assert_eq!(
        app.call("POST", &format!("{p}/spend"), Some(&reader), Some(&spend))
            .await
            .0,
        403
    );
    let (s, e) = app
        .call(
            "GET",
            &format!("{p}?at=2024-01-01T00:00:00Z"),
            Some(&bound_reader),
            None,
        )
        .await;
    assert_eq!(s, 403, "{e}");
    // bound key: its own user only
    assert_eq!(
        app.call("POST", &format!("{p}/spend"), Some(&bound), Some(&spend))
            .await
            .0,
        200
    );
    let other = credits_path("eve");
    assert_eq!(
        app.call(
            "POST",
            &format!("{other}/spend"),
            Some(&bound),
            Some(&spend)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        app.call("GET", &other, Some(&bound_reader), None).await.0,
        403
    );
    // top-ups mint credits: never by a key bound to the user it credits
    let top_up = json!({"amount": 5, "at": "2024-01-01T00:00:00Z"});
    let (s, _) = app
        .call("POST", &format!("{p}/top-up"), Some(&bound), Some(&top_up))
        .await;
    assert_eq!(s, 403);
    // service `at` is honoured
    let service = app.key("service", None).await;
    let (s, _) = app
        .call(
            "POST",
            &format!("{p}/top-up"),
            Some(&service),
            Some(&top_up),
        )
        .await;
    assert_eq!(s, 200);
    // admin-only operations
    assert_eq!(
        app.call(
            "POST",
            &format!("{p}/adjust"),
            Some(&bound),
            Some(&json!({"amount": 5, "kind": "grant", "reason": "x"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        app.call(
            "PUT",
            "/api/v1/block-costs/b",
            Some(&bound),
            Some(&json!({"costs": []}))
        )
        .await
        .0,
        403
    );
    assert_eq!(app.call("GET", &p, None, None).await.0, 401);
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

#[tokio::test]
async fn reporting_views_for_the_reporting_role() {
    let app = TestApp::new().await;
    let p = credits_path("rep");
    app.post(&format!("{p}/top-up"), json!({"amount": 5})).await;
    app.post(&format!("{p}/holds"), json!({"amount": 15})).await;
    put_user(&app, "untouched", 300, "reset").await;
    let c = app.db.client().await;
    c.batch_execute("SET ROLE agentplane_reporting")
        .await
        .unwrap();
    let rows = c
        .query(
            "SELECT kind, amount, running_balance, is_active, period::text \
             FROM reporting.credit_ledger WHERE user_id = 'rep' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(0), "refill");
    assert_eq!(rows[1].get::<_, i64>(2), 1005);
    let r = c
        .query_one(
            "SELECT balance, held, touched FROM reporting.user_balances WHERE user_id = 'rep'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, bool>(2)),
        (1005, 15, true)
    );
    let r = c
        .query_one(
            "SELECT balance, touched FROM reporting.user_balances WHERE user_id = 'untouched'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, bool>(1)), (300, false));
    for table in [
        "credits.transactions",
        "credits.balances",
        "credits.users",
        "credits.holds",
    ] {
        let e = c
            .query(&format!("SELECT * FROM {table}"), &[])
            .await
            .unwrap_err();
        assert_eq!(e.code().unwrap().code(), "42501", "{table}: {e}");
    }
}

#[tokio::test]
async fn holds_count_against_every_period() {
    let app = TestApp::new().await;
    let p = credits_path("hb");
    let old = "2024-01-10T00:00:00Z";
    assert_eq!(balance_at(&app, "hb", old).await, 1000);
    let (s, _) = app
        .post(&format!("{p}/holds"), json!({"amount": 600}))
        .await;
    assert_eq!(s, 201);
    let (_, b) = app.get(&format!("{p}?at={old}")).await;
    assert_eq!(b["available"], 400);
    let (s, e) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 500, "at": old}),
        )
        .await;
    assert_eq!(s, 402, "{e}");
    let (s, _) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 400, "at": old}),
        )
        .await;
    assert_eq!(s, 200);
    assert_ledger_consistent(&app.db).await;
}
