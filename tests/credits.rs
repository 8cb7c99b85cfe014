//! Credits (CONTRACT §2): month semantics, policies, concurrency, holds,
//! idempotency, bad input, reporting views. SQL functions are called
//! directly and through the real HTTP router.

mod common;

use common::{error_code, TestApp, TestDb};
use futures_util::future::join_all;
use serde_json::{json, Value};

const PLATFORM_INPUT: &str =
    r#"{"prompt":"hi","credentials":{"provider":"openai","id":"platform-openai"}}"#;
const OWN_KEY_INPUT: &str =
    r#"{"prompt":"hi","credentials":{"provider":"openai","id":"user-key-42"}}"#;

fn credits_path(user: &str) -> String {
    format!("/api/v1/users/{user}/credits")
}

async fn balance_at(app: &TestApp, user: &str, at: &str) -> i64 {
    let (s, b) = app.get(&format!("{}?at={}", credits_path(user), at)).await;
    assert_eq!(s, 200, "{b}");
    b["balance"].as_i64().unwrap()
}

async fn balance(app: &TestApp, user: &str) -> Value {
    let (s, b) = app.get(&credits_path(user)).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Every balance row equals the sum of its bucket's active ledger rows.
async fn assert_ledger_consistent(db: &TestDb) {
    let c = db.client().await;
    let bad: i64 = c
        .query_one(
            "SELECT count(*) FROM credits.balances b
             WHERE b.balance <> (SELECT coalesce(sum(t.amount), 0) FROM credits.transactions t
                                 WHERE t.user_id = b.user_id AND t.bucket = b.bucket
                                   AND t.is_active)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        bad, 0,
        "a balance row differs from the sum of its ledger rows"
    );
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

async fn set_platform_price(app: &TestApp, block: &str, amount: i64) {
    let (s, b) = app
        .put(
            &format!("/api/v1/block-costs/{block}"),
            json!({"costs": [
                {"costType": "run", "amount": amount,
                 "filter": {"credentials": {"id": "platform-openai"}}}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

async fn put_user(app: &TestApp, user: &str, amount: i64, policy: &str) {
    let (s, b) = app
        .put(
            &format!("/api/v1/users/{user}"),
            json!({"refillAmount": amount, "refillPolicy": policy}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

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
    assert_ledger_consistent(&app.db).await;
}

#[tokio::test]
async fn parallel_spends_never_overdraw() {
    let app = TestApp::new().await;
    let pool = app.db.pool();
    for (user, funds, expect_ok) in [("p10", 10i64, 10usize), ("p5", 5, 5)] {
        put_user(&app, user, 0, "none").await;
        let (s, _) = app
            .post(
                &format!("{}/top-up", credits_path(user)),
                json!({"amount": funds}),
            )
            .await;
        assert_eq!(s, 200);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let pool = pool.clone();
                let user = user.to_string();
                tokio::spawn(async move {
                    let c = pool.get().await.unwrap();
                    c.query_one(
                        "SELECT * FROM credits.spend($1, 'blk', '{}'::jsonb, NULL, 1)",
                        &[&user],
                    )
                    .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in join_all(tasks).await {
            match t.unwrap() {
                Ok(row) => {
                    ok += 1;
                    assert!(row.get::<_, i64>(2) >= 0);
                }
                Err(e) => assert_eq!(e.code().unwrap().code(), "AP402", "{e}"),
            }
        }
        assert_eq!(ok, expect_ok, "{user}");
        assert_eq!(balance(&app, user).await["balance"], funds - ok as i64);
    }
    assert_ledger_consistent(&app.db).await;
}

#[tokio::test]
async fn random_parallel_movements_keep_the_books() {
    use rand::Rng;
    let app = TestApp::new().await;
    put_user(&app, "r", 0, "none").await;
    let initial = 200i64;
    app.post(
        &format!("{}/top-up", credits_path("r")),
        json!({"amount": initial}),
    )
    .await;
    let mut rng = rand::thread_rng();
    let ops: Vec<(u8, i64)> = (0..100)
        .map(|_| (rng.gen_range(0..3u8), rng.gen_range(1..40i64)))
        .collect();
    let futs = ops.iter().map(|&(op, n)| {
        let app = &app;
        async move {
            let p = credits_path("r");
            match op {
                0 => {
                    let (s, b) = app
                        .post(&format!("{p}/spend"), json!({"blockId": "b", "amount": n}))
                        .await;
                    assert!(s == 200 || s == 402, "{s} {b}");
                    if s == 200 {
                        assert!(b["balance"].as_i64().unwrap() >= 0);
                    } else {
                        assert_eq!(error_code(&b), "insufficient_credits");
                        assert_eq!(b["error"]["details"]["cost"], n);
                    }
                    (if s == 200 { -n } else { 0 }, s)
                }
                1 => {
                    let (s, b) = app.post(&format!("{p}/top-up"), json!({"amount": n})).await;
                    assert_eq!(s, 200, "{b}");
                    (n, s)
                }
                _ => {
                    let (s, b) = app.get(&p).await;
                    assert_eq!(s, 200, "{b}");
                    assert!(b["balance"].as_i64().unwrap() >= 0);
                    (0, s)
                }
            }
        }
    });
    let results = join_all(futs).await;
    let expected: i64 = initial + results.iter().map(|(d, _)| d).sum::<i64>();
    assert_eq!(balance(&app, "r").await["balance"], expected);
    let min_running: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT min(running_balance) FROM credits.transactions WHERE user_id = 'r'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(min_running >= 0);
    assert_ledger_consistent(&app.db).await;
}

#[tokio::test]
async fn first_touch_of_a_month_refills_once() {
    let app = TestApp::new().await;
    let pool = app.db.pool();
    // 20 parallel first touches of a new user and month, half reads, half spends
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let c = pool.get().await.unwrap();
                let at: chrono::DateTime<chrono::Utc> = "2023-06-15T12:00:00Z".parse().unwrap();
                if i % 2 == 0 {
                    c.query_one("SELECT credits.get_credits('fresh', $1)", &[&at])
                        .await
                        .unwrap();
                } else {
                    c.query_one(
                        "SELECT * FROM credits.spend('fresh', 'b', '{}', NULL, 1, true, NULL, NULL, $1)",
                        &[&at],
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in join_all(tasks).await {
        t.unwrap();
    }
    assert_eq!(
        count(
            &app.db,
            "SELECT count(*) FROM credits.transactions WHERE user_id = 'fresh' AND kind = 'refill'"
        )
        .await,
        1
    );
    assert_eq!(balance_at(&app, "fresh", "2023-06-01T00:00:00Z").await, 990);
    assert_ledger_consistent(&app.db).await;
}

#[tokio::test]
async fn idempotent_movements() {
    let app = TestApp::new().await;
    let p = credits_path("idem");
    let body = json!({"amount": 25, "idempotencyKey": "pay-1", "metadata": {"order": 7}});
    let top_up_path = format!("{p}/top-up");
    let answers = join_all((0..10).map(|_| app.post(&top_up_path, body.clone()))).await;
    for (s, b) in &answers {
        assert_eq!(*s, 200, "{b}");
        assert_eq!(b, &answers[0].1);
    }
    assert_eq!(
        count(
            &app.db,
            "SELECT count(*) FROM credits.transactions WHERE user_id = 'idem' AND kind = 'top_up'"
        )
        .await,
        1
    );
    assert_eq!(balance(&app, "idem").await["balance"], 1025);
    // same key, different body
    let (s, e) = app
        .post(
            &format!("{p}/top-up"),
            json!({"amount": 26, "idempotencyKey": "pay-1"}),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(error_code(&e), "idempotency_conflict");
    // the key is taken for a spend too
    let (s, _) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 1, "idempotencyKey": "pay-1"}),
        )
        .await;
    assert_eq!(s, 409);
    // spends: concurrent identical requests answer the same, one row
    let sp = json!({"blockId": "b", "amount": 5, "idempotencyKey": "run-9"});
    let spend_path = format!("{p}/spend");
    let answers = join_all((0..10).map(|_| app.post(&spend_path, sp.clone()))).await;
    for (s, b) in &answers {
        assert_eq!(*s, 200, "{b}");
        assert_eq!(b, &answers[0].1);
    }
    assert_eq!(balance(&app, "idem").await["balance"], 1020);
    // holds
    let h = json!({"amount": 10, "idempotencyKey": "hold-1"});
    let (s1, h1) = app.post(&format!("{p}/holds"), h.clone()).await;
    let (s2, h2) = app.post(&format!("{p}/holds"), h.clone()).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(h1, h2);
    assert_eq!(
        count(
            &app.db,
            "SELECT count(*) FROM credits.holds WHERE user_id = 'idem'"
        )
        .await,
        1
    );
    let (s, _) = app
        .post(
            &format!("{p}/holds"),
            json!({"amount": 11, "idempotencyKey": "hold-1"}),
        )
        .await;
    assert_eq!(s, 409);
    // adjust
    let adj =
        json!({"amount": -3, "kind": "adjustment", "reason": "fix", "idempotencyKey": "adj-1"});
    let (s1, a1) = app.post(&format!("{p}/adjust"), adj.clone()).await;
    let (s2, a2) = app.post(&format!("{p}/adjust"), adj.clone()).await;
    assert_eq!((s1, s2), (200, 200), "{a1}");
    assert_eq!(a1, a2);
    assert_eq!(balance(&app, "idem").await["balance"], 1017);
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
async fn concurrent_holds_never_exceed_the_balance() {
    let app = TestApp::new().await;
    let p = credits_path("ch");
    let holds_path = format!("{p}/holds");
    let futs = (0..25).map(|_| app.post(&holds_path, json!({"amount": 100})));
    let results = join_all(futs).await;
    let ok = results.iter().filter(|(s, _)| *s == 201).count();
    assert!(results.iter().all(|(s, _)| *s == 201 || *s == 402));
    assert_eq!(ok, 10);
    let b = balance(&app, "ch").await;
    assert_eq!(b["balance"], 1000);
    assert_eq!(b["available"], 0);
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
    let rows = c
        .query(
            "SELECT (body->'data'->>'threshold')::bigint FROM feed.events \
             WHERE type = 'credits.low_balance' AND user_id = 'lo' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let thresholds: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
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
    // service `at` is honoured
    let (s, _) = app
        .call(
            "POST",
            &format!("{p}/top-up"),
            Some(&bound),
            Some(&json!({"amount": 5, "at": "2024-01-01T00:00:00Z"})),
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
    let (s, e) = app
        .post(
            &format!("{p}/spend"),
            json!({"blockId": "b", "amount": 1500}),
        )
        .await;
    assert_eq!(s, 402);
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
    assert_ledger_consistent(&app.db).await;
}

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
        let (s, b) = app.call(method, path, Some(common::ADMIN_KEY), body).await;
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

mod filter_property {
    //! Filter matching against the SQL function, compared with expectations
    //! stated from how the data was generated.
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0i64..5).prop_map(Value::from),
            "[a-c]{1,2}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ]
    }

    fn input() -> impl Strategy<Value = Map<String, Value>> {
        let leaf = prop_oneof![
            4 => scalar(),
            1 => Just(Value::Null),
            1 => Just(Value::from("")),
        ];
        let nested = prop::collection::btree_map("[p-r]", leaf.clone(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        prop::collection::btree_map("[a-e]", prop_oneof![3 => leaf, 1 => nested], 0..5)
            .prop_map(|m| m.into_iter().collect())
    }

    /// A filter contained in `input` (a subset, recursively), chosen by `picks`.
    fn subset(input: &Map<String, Value>, picks: &[bool]) -> Map<String, Value> {
        let mut out = Map::new();
        for (i, (k, v)) in input.iter().enumerate() {
            if !picks.get(i).copied().unwrap_or(false) {
                continue;
            }
            let v = match v {
                Value::Object(inner) => {
                    let rotated: Vec<bool> = picks.iter().skip(i + 1).copied().collect();
                    Value::Object(subset(inner, &rotated))
                }
                other => other.clone(),
            };
            out.insert(k.clone(), v);
        }
        out
    }

    fn matches(
        rt: &tokio::runtime::Runtime,
        c: &tokio_postgres::Client,
        f: &Value,
        i: &Value,
    ) -> bool {
        rt.block_on(async {
            c.query_one("SELECT credits.filter_matches($1, $2)", &[f, i])
                .await
                .unwrap()
                .get(0)
        })
    }

    #[test]
    fn filter_matching() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let db = rt.block_on(super::TestDb::new());
        let c = rt.block_on(db.client());
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
        runner
            .run(
                &(
                    input(),
                    prop::collection::vec(any::<bool>(), 8),
                    "[v-z]",
                    0usize..3,
                    scalar(),
                ),
                |(inp, picks, absent_key, empty_kind, other)| {
                    let input = Value::Object(inp.clone());
                    // 1. any subset matches
                    let f = subset(&inp, &picks);
                    prop_assert!(
                        matches(&rt, &c, &Value::Object(f.clone()), &input),
                        "subset {f:?} of {input}"
                    );
                    // 2. a key the input lacks, asked to be null / "" / {}, still matches
                    let empty = match empty_kind {
                        0 => Value::Null,
                        1 => Value::from(""),
                        _ => Value::Object(Map::new()),
                    };
                    let mut f2 = f.clone();
                    f2.insert(absent_key.clone(), empty);
                    prop_assert!(
                        matches(&rt, &c, &Value::Object(f2.clone()), &input),
                        "{f2:?} on {input}"
                    );
                    // 3. null and "" in the input are alike for the filter
                    for (k, v) in &inp {
                        if v.is_null() || v == &Value::from("") {
                            for alt in [Value::Null, Value::from("")] {
                                let mut f3 = Map::new();
                                f3.insert(k.clone(), alt);
                                prop_assert!(matches(&rt, &c, &Value::Object(f3), &input));
                            }
                        }
                    }
                    // 4. a key whose value differs does not match
                    for (k, v) in &inp {
                        let is_empty = v.is_null() || v == &Value::from("");
                        if !is_empty && !v.is_object() && v != &other {
                            let mut f4 = f.clone();
                            f4.insert(k.clone(), other.clone());
                            prop_assert!(
                                !matches(&rt, &c, &Value::Object(f4.clone()), &input),
                                "{f4:?} on {input}"
                            );
                            // and a non-empty scalar never matches a missing key
                            let mut f5 = Map::new();
                            f5.insert(absent_key.clone(), v.clone());
                            prop_assert!(!matches(&rt, &c, &Value::Object(f5), &input));
                        }
                    }
                    Ok(())
                },
            )
            .unwrap();
        drop(c);
        drop(db);
    }
}
