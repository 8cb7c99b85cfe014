//! Who reads what: roles, user-bound keys, `at`, the reporting views.

use super::*;

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
async fn reporting_views_for_the_reporting_role() {
    let app = TestApp::new().await;
    let p = credits_path("rep");
    app.post(&format!("{p}/top-up"), json!({"amount": 5})).await;
    app.post(&format!("{p}/holds"), json!({"amount": 15})).await;
    put_user(&app, "untouched", 300, "reset").await;
    let c = app.db.analyst_client().await;
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
