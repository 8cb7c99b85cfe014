//! Credits: bad input of every kind, and the filter-matching property.

mod common;
mod credits_support;

use common::{error_code, TestApp, TestDb};
use credits_support::*;
use serde_json::{json, Value};

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

/// Everything the credits domain has written, as one fingerprint per table.
async fn credits_state(c: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for (table, order) in [
        ("credits.transactions", "id"),
        ("credits.balances", "user_id, bucket"),
        ("credits.users", "user_id"),
        ("credits.holds", "id"),
        ("credits.block_costs", "block_id"),
        ("credits.low_balance_alerts", "user_id, period, threshold"),
        ("feed.events", "id"),
    ] {
        let sql = format!(
            "SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY {order})), '') \
             FROM {table} t"
        );
        let v: String = c.query_one(sql.as_str(), &[]).await.unwrap().get(0);
        out.push(format!("{table}: {v}"));
    }
    out
}

/// The SQL functions check their own input, whatever the HTTP layer lets
/// through: each bad call fails with SQLSTATE AP400, the error code as DETAIL
/// and the details as HINT, and writes nothing.
#[tokio::test]
async fn sql_functions_refuse_bad_input_on_their_own() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT credits.put_block_costs('llm', '[{\"costType\": \"run\", \"amount\": 3}]');
         SELECT credits.put_user('ok', 100, 'reset', ARRAY[50]::bigint[]);
         SELECT credits.top_up('ok', 10, 'first');",
    )
    .await
    .unwrap();
    let hold: String = c
        .query_one(
            "SELECT credits.hold('ok', gen_random_uuid(), 1) ->> 'holdId'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let before = credits_state(&c).await;
    let long = |n: usize| format!("'{}'", "k".repeat(n));
    let user = json!({"field": "userId"});
    let block = json!({"field": "blockId"});
    let none = json!({});
    let amount = |a: Value| json!({ "amount": a });
    let cases: Vec<(String, &str, Value)> = vec![
        // spend(user, block, input, durationSeconds, amount, validateBalance, key, metadata, at)
        ("credits.spend('ok', 'llm', '{}', NULL, 0)".into(), "invalid_amount", amount(json!(0))),
        ("credits.spend('ok', 'llm', '{}', NULL, -5)".into(), "invalid_amount", amount(json!(-5))),
        ("credits.spend('ok', 'llm', '[1, 2]')".into(), "invalid_input", none.clone()),
        ("credits.spend('ok', 'llm', '\"text\"')".into(), "invalid_input", none.clone()),
        ("credits.spend('ok', 'llm', 'null')".into(), "invalid_input", none.clone()),
        (
            "credits.spend('ok', 'llm', '{}', NULL, NULL, true, NULL, '[1]')".into(),
            "invalid_metadata",
            none.clone(),
        ),
        (
            "credits.spend('ok', 'llm', '{}', NULL, NULL, true, NULL, '\"m\"')".into(),
            "invalid_metadata",
            none.clone(),
        ),
        ("credits.spend('ok', 'llm', '{}', -1)".into(), "invalid_duration", none.clone()),
        ("credits.spend('ok', 'llm', '{}', 'NaN')".into(), "invalid_duration", none.clone()),
        ("credits.spend('ok', 'llm', '{}', 'Infinity')".into(), "invalid_duration", none.clone()),
        ("credits.spend('ok', 'llm', '{}', 1e16)".into(), "invalid_duration", none.clone()),
        (
            "credits.spend('ok', 'llm', '{}', NULL, NULL, true, '')".into(),
            "invalid_idempotency_key",
            none.clone(),
        ),
        (
            format!("credits.spend('ok', 'llm', '{{}}', NULL, NULL, true, {})", long(256)),
            "invalid_idempotency_key",
            none.clone(),
        ),
        ("credits.spend('ok', 'bad block', '{}', NULL, 1)".into(), "invalid_identifier", block.clone()),
        ("credits.spend('ok', NULL, '{}', NULL, 1)".into(), "invalid_identifier", block.clone()),
        (format!("credits.spend('ok', {}, '{{}}', NULL, 1)", long(129)), "invalid_identifier", block.clone()),
        ("credits.spend('bad user', 'llm', '{}', NULL, 1)".into(), "invalid_identifier", user.clone()),
        ("credits.spend('', 'llm')".into(), "invalid_identifier", user.clone()),
        // top_up(user, amount, key, metadata, at)
        ("credits.top_up('ok', 0)".into(), "invalid_amount", amount(json!(0))),
        ("credits.top_up('ok', -1)".into(), "invalid_amount", amount(json!(-1))),
        ("credits.top_up('ok', NULL)".into(), "invalid_amount", amount(Value::Null)),
        ("credits.top_up('ok', 1, NULL, '\"x\"')".into(), "invalid_metadata", none.clone()),
        ("credits.top_up('ok', 1, NULL, '[1]')".into(), "invalid_metadata", none.clone()),
        ("credits.top_up('ok', 1, '')".into(), "invalid_idempotency_key", none.clone()),
        (format!("credits.top_up('ok', 1, {})", long(256)), "invalid_idempotency_key", none.clone()),
        ("credits.top_up('bad user', 1)".into(), "invalid_identifier", user.clone()),
        (format!("credits.top_up({}, 1)", long(129)), "invalid_identifier", user.clone()),
        // adjust(user, amount, kind, reason, key, metadata, at)
        ("credits.adjust('ok', 0, 'grant', 'r')".into(), "invalid_amount", none.clone()),
        ("credits.adjust('ok', NULL, 'grant', 'r')".into(), "invalid_amount", none.clone()),
        ("credits.adjust('ok', 5, 'gift', 'r')".into(), "invalid_kind", json!({"kind": "gift"})),
        ("credits.adjust('ok', 5, 'usage', 'r')".into(), "invalid_kind", json!({"kind": "usage"})),
        ("credits.adjust('ok', 5, 'refill', 'r')".into(), "invalid_kind", json!({"kind": "refill"})),
        ("credits.adjust('ok', 5, 'grant', '')".into(), "invalid_reason", none.clone()),
        ("credits.adjust('ok', 5, 'grant', NULL)".into(), "invalid_reason", none.clone()),
        (format!("credits.adjust('ok', 5, 'grant', {})", long(1001)), "invalid_reason", none.clone()),
        ("credits.adjust('ok', 5, 'grant', 'r', NULL, '[1]')".into(), "invalid_metadata", none.clone()),
        ("credits.adjust('ok', 5, 'grant', 'r', '')".into(), "invalid_idempotency_key", none.clone()),
        ("credits.adjust('bad user', 5, 'grant', 'r')".into(), "invalid_identifier", user.clone()),
        // hold(user, holdId, amount, block, input, durationSeconds, ttlSeconds, key)
        ("credits.hold('ok', gen_random_uuid())".into(), "invalid_hold", none.clone()),
        ("credits.hold('ok', gen_random_uuid(), 1, 'llm')".into(), "invalid_hold", none.clone()),
        ("credits.hold('ok', gen_random_uuid(), 0)".into(), "invalid_amount", amount(json!(0))),
        ("credits.hold('ok', gen_random_uuid(), -3)".into(), "invalid_amount", amount(json!(-3))),
        ("credits.hold('ok', gen_random_uuid(), NULL, 'bad block')".into(), "invalid_identifier", block.clone()),
        ("credits.hold('ok', gen_random_uuid(), NULL, 'llm', '5')".into(), "invalid_input", none.clone()),
        ("credits.hold('ok', gen_random_uuid(), NULL, 'llm', '[1]')".into(), "invalid_input", none.clone()),
        ("credits.hold('ok', gen_random_uuid(), 1, NULL, NULL, NULL, 0)".into(), "invalid_ttl", none.clone()),
        ("credits.hold('ok', gen_random_uuid(), 1, NULL, NULL, NULL, 604801)".into(), "invalid_ttl", none.clone()),
        ("credits.hold('ok', gen_random_uuid(), NULL, 'llm', '{}', -1)".into(), "invalid_duration", none.clone()),
        ("credits.hold('ok', gen_random_uuid(), NULL, 'llm', '{}', 'NaN')".into(), "invalid_duration", none.clone()),
        ("credits.hold('ok', gen_random_uuid(), 1, NULL, NULL, NULL, 300, '')".into(), "invalid_idempotency_key", none.clone()),
        (
            format!("credits.hold('ok', gen_random_uuid(), 1, NULL, NULL, NULL, 300, {})", long(256)),
            "invalid_idempotency_key",
            none.clone(),
        ),
        ("credits.hold('bad user', gen_random_uuid(), 1)".into(), "invalid_identifier", user.clone()),
        // settle(user, holdId, amount, allowDebt), release(user, holdId)
        (format!("credits.settle('ok', '{hold}', -1)"), "invalid_amount", amount(json!(-1))),
        (format!("credits.settle('ok', '{hold}', NULL)"), "invalid_amount", amount(Value::Null)),
        (format!("credits.settle('bad user', '{hold}', 1)"), "invalid_identifier", user.clone()),
        (format!("credits.release('bad user', '{hold}')"), "invalid_identifier", user.clone()),
        // put_user(user, refillAmount, refillPolicy, thresholds)
        ("credits.put_user('ok', -1, 'reset', NULL)".into(), "invalid_amount", none.clone()),
        ("credits.put_user('ok', NULL, 'reset', NULL)".into(), "invalid_amount", none.clone()),
        ("credits.put_user('ok', 1, 'monthly', NULL)".into(), "invalid_refill_policy", none.clone()),
        ("credits.put_user('ok', 1, 'RESET', NULL)".into(), "invalid_refill_policy", none.clone()),
        ("credits.put_user('ok', 1, NULL, NULL)".into(), "invalid_refill_policy", none.clone()),
        (
            "credits.put_user('ok', 1, 'reset', (SELECT array_agg(g::bigint) FROM generate_series(1, 33) g))".into(),
            "invalid_thresholds",
            none.clone(),
        ),
        ("credits.put_user('ok', 1, 'reset', ARRAY[1, NULL]::bigint[])".into(), "invalid_thresholds", none.clone()),
        ("credits.put_user('bad user', 1, 'reset', NULL)".into(), "invalid_identifier", user.clone()),
        // put_block_costs(block, costs)
        ("credits.put_block_costs('llm', '\"run\"')".into(), "invalid_costs", none.clone()),
        ("credits.put_block_costs('llm', '{}')".into(), "invalid_costs", none.clone()),
        ("credits.put_block_costs('llm', NULL)".into(), "invalid_costs", none.clone()),
        (
            "credits.put_block_costs('llm', (SELECT jsonb_agg('{\"costType\": \"run\", \"amount\": 1}'::jsonb) \
             FROM generate_series(1, 101)))".into(),
            "invalid_costs",
            none.clone(),
        ),
        ("credits.put_block_costs('llm', '[1]')".into(), "invalid_costs", none.clone()),
        (
            "credits.put_block_costs('llm', '[{\"costType\": \"minute\", \"amount\": 1}]')".into(),
            "invalid_cost_type",
            json!({"costType": "minute"}),
        ),
        (
            "credits.put_block_costs('llm', '[{\"amount\": 1}]')".into(),
            "invalid_cost_type",
            json!({"costType": null}),
        ),
        ("credits.put_block_costs('llm', '[{\"costType\": \"run\"}]')".into(), "invalid_amount", none.clone()),
        (
            "credits.put_block_costs('llm', '[{\"costType\": \"run\", \"amount\": \"1\"}]')".into(),
            "invalid_amount",
            none.clone(),
        ),
        (
            "credits.put_block_costs('llm', '[{\"costType\": \"run\", \"amount\": 1.5}]')".into(),
            "invalid_amount",
            amount(json!(1.5)),
        ),
        (
            "credits.put_block_costs('llm', '[{\"costType\": \"run\", \"amount\": 1e19}]')".into(),
            "invalid_amount",
            amount(json!(10_000_000_000_000_000_000_u64)),
        ),
        (
            "credits.put_block_costs('llm', '[{\"costType\": \"run\", \"amount\": 1}, \
             {\"costType\": \"byte\", \"amount\": -2}]')".into(),
            "invalid_amount",
            amount(json!(-2)),
        ),
        (
            "credits.put_block_costs('llm', '[{\"costType\": \"run\", \"amount\": 1, \"filter\": [1]}]')".into(),
            "invalid_filter",
            none.clone(),
        ),
        (
            "credits.put_block_costs('llm', '[{\"costType\": \"run\", \"amount\": 1, \"filter\": \"x\"}]')".into(),
            "invalid_filter",
            none.clone(),
        ),
        ("credits.put_block_costs('bad block', '[]')".into(), "invalid_identifier", block.clone()),
        // reads with bad paging or filters
        ("credits.list_transactions('ok', p_limit => 0)".into(), "invalid_limit", none.clone()),
        ("credits.list_transactions('ok', p_limit => 101)".into(), "invalid_limit", none.clone()),
        ("credits.list_transactions('ok', p_kind => 'gift')".into(), "invalid_kind", json!({"kind": "gift"})),
        (
            "credits.list_transactions('ok', p_after => 999999)".into(),
            "invalid_cursor",
            json!({"after": 999999}),
        ),
        // effective times that name no month (HTTP cannot send them; SQL can)
        (
            "credits.spend('ok', 'llm', '{}', NULL, NULL, true, NULL, NULL, 'infinity')".into(),
            "invalid_at",
            none.clone(),
        ),
        (
            "credits.spend('ok', 'llm', '{}', NULL, 1, true, NULL, NULL, '-infinity')".into(),
            "invalid_at",
            none.clone(),
        ),
        ("credits.top_up('ok', 1, NULL, NULL, 'infinity')".into(), "invalid_at", none.clone()),
        (
            "credits.adjust('ok', 1, 'grant', 'r', NULL, NULL, '-infinity')".into(),
            "invalid_at",
            none.clone(),
        ),
        ("credits.get_credits('ok', '-infinity')".into(), "invalid_at", none.clone()),
        ("credits.list_block_costs(0, 0)".into(), "invalid_paging", none.clone()),
        ("credits.list_block_costs(10, -1)".into(), "invalid_paging", none.clone()),
    ];
    for (call, code, details) in &cases {
        let sql = format!("SELECT {call}");
        let err = c.query_one(sql.as_str(), &[]).await.unwrap_err();
        let e = err.as_db_error().unwrap_or_else(|| panic!("{call}: {err}"));
        assert_eq!(e.code().code(), "AP400", "{call}: {e:?}");
        assert_eq!(e.detail(), Some(*code), "{call}: {e:?}");
        let hint: Value = serde_json::from_str(e.hint().unwrap_or("")).unwrap();
        assert_eq!(&hint, details, "{call}: {e:?}");
        let m = agentplane::db::DbError::from(err).mapped();
        assert_eq!((m.status, m.code.as_str()), (400, *code), "{call}");
    }
    // a balance that would overflow is refused too (a data error: 400)
    let err = c
        .query_one("SELECT credits.top_up('ok', 9223372036854775807)", &[])
        .await
        .unwrap_err();
    assert_eq!(agentplane::db::DbError::from(err).mapped().status, 400);
    assert_eq!(credits_state(&c).await, before, "nothing written");
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
