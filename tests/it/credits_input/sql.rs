//! Bad input straight to the SQL functions.

use super::*;

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
