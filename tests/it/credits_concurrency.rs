//! Credits under concurrency: no overdraft, one refill per month, one row per
//! idempotency key, holds never above the balance.

use crate::support::credits::*;
use crate::support::{error_code, TestApp};
use futures_util::future::join_all;
use serde_json::json;

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
    assert_every_row_has_event(&app.db).await;
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
async fn concurrent_holds_never_exceed_the_balance() {
    let app = TestApp::new().await;
    let p = credits_path("ch");
    let holds_path = format!("{p}/holds");
    let futs = (0..25).map(|_| app.post(&holds_path, json!({"amount": 100})));
    let results = join_all(futs).await;
    let ok = results.iter().filter(|(s, _)| *s == 201).count();
    assert!(
        results.iter().all(|(s, _)| *s == 201 || *s == 402),
        "{results:?}"
    );
    assert_eq!(ok, 10);
    let b = balance(&app, "ch").await;
    assert_eq!(b["balance"], 1000);
    assert_eq!(b["available"], 0);
}

#[tokio::test]
async fn parallel_spends_over_http() {
    let app = TestApp::new().await;
    put_user(&app, "hp", 5, "reset").await;
    let spend_path = format!("{}/spend", credits_path("hp"));
    let body = json!({"blockId": "b", "amount": 1});
    let results = join_all((0..10).map(|_| app.post(&spend_path, body.clone()))).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    for (s, b) in &results {
        assert!(*s == 200 || *s == 402, "{s} {b}");
        if *s == 402 {
            assert_eq!(error_code(b), "insufficient_credits");
        }
    }
    assert_eq!(ok, 5);
    let b = balance(&app, "hp").await;
    assert_eq!(b["balance"], 0);
    assert_ledger_consistent(&app.db).await;
}
