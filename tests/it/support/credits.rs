//! Helpers shared by the credits tests (credits*, spend_queue).

use crate::support::{TestApp, TestDb};
use serde_json::{json, Value};

pub const PLATFORM_INPUT: &str =
    r#"{"prompt":"hi","credentials":{"provider":"openai","id":"platform-openai"}}"#;
pub const OWN_KEY_INPUT: &str =
    r#"{"prompt":"hi","credentials":{"provider":"openai","id":"user-key-42"}}"#;

pub fn credits_path(user: &str) -> String {
    format!("/api/v1/users/{user}/credits")
}

pub async fn balance_at(app: &TestApp, user: &str, at: &str) -> i64 {
    let (s, b) = app.get(&format!("{}?at={}", credits_path(user), at)).await;
    assert_eq!(s, 200, "{b}");
    b["balance"].as_i64().unwrap()
}

pub async fn balance(app: &TestApp, user: &str) -> Value {
    let (s, b) = app.get(&credits_path(user)).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Every balance row equals the sum of its bucket's active ledger rows.
pub async fn assert_ledger_consistent(db: &TestDb) {
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

pub async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

pub async fn set_platform_price(app: &TestApp, block: &str, amount: i64) {
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

pub async fn put_user(app: &TestApp, user: &str, amount: i64, policy: &str) {
    let (s, b) = app
        .put(
            &format!("/api/v1/users/{user}"),
            json!({"refillAmount": amount, "refillPolicy": policy}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

/// Every ledger row has its `credits.changed` event (written in the same
/// transaction, so a row without one would be a bug), and every such event,
/// as the feed renders it, has the shape `feed.emit_data` gives a user's
/// event and the ledger row's figures.
pub async fn assert_every_row_has_event(db: &TestDb) {
    let missing = count(
        db,
        // (Both sides read first: on Citus the ledger is on the workers and
        // the events on the coordinator, which cannot be joined directly.)
        "WITH t AS MATERIALIZED (SELECT user_id, id FROM credits.transactions),
              e AS MATERIALIZED (SELECT user_id, ledger_id FROM feed.events
                                 WHERE type = 'credits.changed')
         SELECT count(*) FROM t
         WHERE NOT EXISTS (SELECT 1 FROM e WHERE e.user_id = t.user_id AND e.ledger_id = t.id)",
    )
    .await;
    assert_eq!(
        missing, 0,
        "ledger rows without their credits.changed event"
    );
    let wrong = count(
        db,
        "WITH r AS (
             SELECT x FROM jsonb_array_elements(
                 feed.read_range(0, (SELECT coalesce(max(id), 0) FROM feed.events), 1000000)) x),
              l AS MATERIALIZED (SELECT user_id, id, amount, running_balance, kind
                                 FROM credits.transactions)
         SELECT count(*) FROM r
         LEFT JOIN l t
                ON t.user_id = r.x->>'userId'
               AND t.id = (r.x->'body'->'data'->>'transactionId')::bigint
         WHERE r.x->>'type' = 'credits.changed'
           AND (r.x->'body' IS DISTINCT FROM feed.data_body(r.x->'body'->'data', r.x->>'userId')
                OR NOT (r.x->'body'->'data' ? 'action') AND (
                       t.id IS NULL
                       OR (r.x->'body'->'data'->>'amount')::bigint <> t.amount
                       OR (r.x->'body'->'data'->>'balance')::bigint <> t.running_balance
                       OR r.x->'body'->'data'->>'kind' <> t.kind))",
    )
    .await;
    assert_eq!(
        wrong, 0,
        "credits.changed events that do not match their ledger row"
    );
}
