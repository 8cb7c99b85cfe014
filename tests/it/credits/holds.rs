//! Holds: reserve, settle, release, expire, and their weight in every period.

use super::*;

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
