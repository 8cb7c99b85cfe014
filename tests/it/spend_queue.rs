//! The spend queue (src/db/spend_queue.rs): concurrent spends of one user
//! share transactions, and each caller still gets its own spend's answer.

use crate::support::credits::*;
use crate::support::TestApp;
use agentplane::db::credits::{SpendArgs, Spent};
use agentplane::db::spend_queue::SpendQueue;
use agentplane::db::DbError;
use futures_util::future::join_all;
use std::collections::HashSet;

fn fixed(amount: i64) -> SpendArgs {
    SpendArgs {
        block_id: "blk".into(),
        amount: Some(amount),
        validate_balance: true,
        ..SpendArgs::default()
    }
}

/// `n` spends of `user` started at once through one queue.
async fn spend_at_once(
    queue: &std::sync::Arc<SpendQueue>,
    user: &str,
    spends: Vec<SpendArgs>,
) -> Vec<Result<Spent, DbError>> {
    join_all(spends.into_iter().map(|a| queue.spend(user, a))).await
}

/// How many transactions wrote the user's credits.changed events.
async fn transactions_of(app: &TestApp, user: &str) -> i64 {
    count(
        &app.db,
        &format!(
            "SELECT count(DISTINCT xid) FROM feed.events
             WHERE type = 'credits.changed' AND user_id = '{user}'"
        ),
    )
    .await
}

#[tokio::test]
async fn a_hot_users_spends_share_transactions() {
    let app = TestApp::new().await;
    put_user(&app, "hot", 100_000, "reset").await;
    let _ = balance(&app, "hot").await; // the month's refill, alone
    let before = transactions_of(&app, "hot").await;
    let queue = SpendQueue::new(app.db.pool());

    // 50 spends of different amounts, so an answer given to the wrong caller
    // would show
    let amounts: Vec<i64> = (1..=50).collect();
    let results = spend_at_once(&queue, "hot", amounts.iter().map(|a| fixed(*a)).collect()).await;

    let spent: Vec<Spent> = results.into_iter().map(|r| r.expect("spend")).collect();
    for (s, amount) in spent.iter().zip(&amounts) {
        assert_eq!(s.cost, *amount, "{s:?} answered to the spend of {amount}");
    }
    let ids: HashSet<i64> = spent.iter().map(|s| s.transaction_id).collect();
    assert_eq!(ids.len(), 50, "one ledger row per spend");
    // in arrival order: each balance is the previous one minus its own cost
    for pair in spent.windows(2) {
        assert_eq!(pair[1].balance, pair[0].balance - pair[1].cost, "{pair:?}");
    }
    assert_eq!(balance(&app, "hot").await["balance"], 100_000 - 1275);
    let used = transactions_of(&app, "hot").await - before;
    // the first spend may run alone; the others wait and run as one batch
    assert!(
        used <= 2,
        "50 concurrent spends took {used} transactions: they were not batched"
    );
    assert_ledger_consistent(&app.db).await;
    assert_every_row_has_event(&app.db).await;
}

#[tokio::test]
async fn a_refused_spend_does_not_fail_the_rest_of_its_batch() {
    let app = TestApp::new().await;
    put_user(&app, "scarce", 10, "reset").await;
    let queue = SpendQueue::new(app.db.pool());
    let mut spends: Vec<SpendArgs> = (0..30).map(|_| fixed(1)).collect();
    // an invalid block id in the middle: a 400 for that one spend only
    spends[5].block_id = "not an id".into();

    let results = spend_at_once(&queue, "scarce", spends).await;

    let status = |r: &Result<Spent, DbError>| match r {
        Ok(_) => 200,
        Err(e) => e.mapped().status,
    };
    assert_eq!(status(&results[5]), 400, "{:?}", results[5]);
    let ok = results.iter().filter(|r| status(r) == 200).count();
    let refused = results.iter().filter(|r| status(r) == 402).count();
    assert_eq!((ok, refused), (10, 19), "exactly the balance was spent");
    assert_eq!(balance(&app, "scarce").await["balance"], 0);
    assert_ledger_consistent(&app.db).await;
}

#[tokio::test]
async fn one_idempotency_key_in_a_batch_writes_one_row() {
    let app = TestApp::new().await;
    put_user(&app, "idem", 100, "reset").await;
    let queue = SpendQueue::new(app.db.pool());
    // A spend without a key goes first and alone; the 20 with the same new
    // key queue behind it and meet in one batch.
    let mut spends: Vec<SpendArgs> = (0..21).map(|_| fixed(3)).collect();
    for s in &mut spends[1..] {
        s.idempotency_key = Some("once".into());
    }

    let results = spend_at_once(&queue, "idem", spends).await;

    let ids: HashSet<i64> = results[1..]
        .iter()
        .map(|r| r.as_ref().expect("replayed, not refused").transaction_id)
        .collect();
    assert_eq!(ids.len(), 1, "every caller gets the one transaction");
    assert_eq!(balance(&app, "idem").await["balance"], 94);
    let rows = count(
        &app.db,
        "SELECT count(*) FROM credits.transactions WHERE user_id = 'idem' AND kind = 'usage'",
    )
    .await;
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn spend_batch_checks_its_arrays() {
    let app = TestApp::new().await;
    let c = app.db.client().await;
    let err = c
        .query(
            "SELECT * FROM credits.spend_batch('u1', ARRAY['blk', 'blk'], ARRAY[NULL]::jsonb[],
                 ARRAY[NULL, NULL]::float8[], ARRAY[1, 1]::bigint[], ARRAY[true, true],
                 ARRAY[NULL, NULL]::text[], ARRAY[NULL, NULL]::jsonb[],
                 ARRAY[NULL, NULL]::timestamptz[])",
            &[],
        )
        .await
        .expect_err("arrays of different lengths");
    assert_eq!(err.code().map(|c| c.code()), Some("AP400"), "{err}");
    let none = c
        .query(
            "SELECT * FROM credits.spend_batch('u1', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
            &[],
        )
        .await
        .expect("an empty batch");
    assert!(none.is_empty());
}

#[tokio::test]
async fn an_unreachable_database_answers_every_caller_503() {
    // Nothing listens on port 1: every connection attempt is refused.
    let pool = agentplane::db::pool("postgres://postgres@127.0.0.1:1/none", 4).expect("pool");
    let queue = SpendQueue::new(pool);
    let results = spend_at_once(&queue, "u", (0..20).map(|_| fixed(1)).collect()).await;
    for r in &results {
        let status = r
            .as_ref()
            .map(|_| 200)
            .unwrap_or_else(|e| e.mapped().status);
        assert_eq!(status, 503, "{r:?}");
    }
    // and the user's queue is free again: a later spend is tried afresh
    let again = queue.spend("u", fixed(1)).await;
    assert_eq!(
        again.map(|_| 200).unwrap_or_else(|e| e.mapped().status),
        503
    );
}
