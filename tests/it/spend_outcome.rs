//! A spend whose connection breaks under way is never applied twice: its
//! caller gets 503 `outcome_unknown`, nothing is replayed, and the same
//! request with the same idempotency key then answers what happened.

use crate::support::{error_code, TestApp};
use serde_json::json;
use std::time::Duration;

/// Waits until a spend's backend waits on a lock, then terminates it. (On
/// Citus the lock is waited for on the worker holding the user's shard, and
/// the server's backend on the coordinator waits for the worker's answer:
/// there, a spend still running after half a second is the waiting one.)
async fn kill_the_waiting_spend(db: &tokio_postgres::Client) {
    for _ in 0..200 {
        let killed: i64 = db
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'agentplane'
                    AND (wait_event_type = 'Lock'
                         OR (state = 'active' AND query LIKE '%spend%'
                             AND now() - query_start > interval '500 ms'))",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if killed > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no spend ever waited on the lock");
}

/// Ledger rows written with the test's idempotency key.
async fn written(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM credits.transactions WHERE idempotency_key = 'k-1'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_broken_connection_answers_outcome_unknown_and_a_retry_tells() {
    let app = TestApp::new().await;
    let path = "/api/v1/users/u1/credits";
    let (s, b) = app.get(path).await; // the month's refill: a balance row exists
    assert_eq!(s, 200, "{b}");
    let spend = json!({"blockId": "blk", "amount": 7, "idempotencyKey": "k-1"});

    // Hold the user's balance row so the spend waits inside its statement.
    let mut holder = app.db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM credits.balances WHERE user_id = 'u1' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let killer = app.db.client().await;
    let spend_path = format!("{path}/spend");
    let (answer, ()) = tokio::join!(
        app.post(&spend_path, spend.clone()),
        kill_the_waiting_spend(&killer)
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        (answer.0, error_code(&answer.1)),
        (503, "outcome_unknown"),
        "{:?}",
        answer.1
    );

    // Nothing was written, and nothing is written behind the caller's back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(written(&killer).await, 0);
    // The retry applies it once; another retry answers the same.
    let (s1, first) = app.post(&spend_path, spend.clone()).await;
    let (s2, second) = app.post(&spend_path, spend).await;
    assert_eq!((s1, s2), (200, 200), "{first} {second}");
    assert_eq!(first["transactionId"], second["transactionId"]);
    assert_eq!(written(&killer).await, 1);
}
