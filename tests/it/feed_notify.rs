//! NOTIFY is a wake-up hint for the relay, and it costs a cluster-wide lock at
//! commit: the writers on hot paths (credit movements, usage records and
//! batches) pass `p_notify => false` to feed.emit; everything else notifies.

use crate::support::TestDb;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// A connection LISTENing on the relay's channel; yields each notification.
async fn listen(db: &TestDb) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<String>) {
    let cfg = agentplane::db::pg_config(&db.url, "notify-test").expect("config");
    let (client, mut conn) = cfg.connect(tokio_postgres::NoTls).await.expect("connect");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.channel().to_string());
            }
        }
    });
    client
        .batch_execute("LISTEN agentplane_events")
        .await
        .expect("listen");
    (client, rx)
}

#[tokio::test]
async fn hot_writers_do_not_notify_and_the_rest_do() {
    let db = TestDb::new().await;
    let (_listener, mut notes) = listen(&db).await;
    let c = db.client().await;
    // Hot paths, one transaction each: a first touch (refill through
    // credits._post), a fast-path spend, a slow-path spend (idempotency key),
    // a top-up, a single usage record and a usage batch.
    for write in [
        "SELECT credits.get_credits('u1')",
        "SELECT * FROM credits.spend('u1', 'blk', '{}', NULL, 1)",
        "SELECT * FROM credits.spend('u1', 'blk', '{}', NULL, 1, true, 'k1')",
        "SELECT credits.top_up('u1', 5)",
        "SELECT usage.record('t1', 'a1', 'gpt-4o', NULL, 10, 5, 100, NULL, NULL, NULL, NULL)",
        "SELECT usage.record_batch(ARRAY['t1', 't2'], ARRAY['a1', NULL], ARRAY['gpt-4o', 'gpt-4o'], \
         ARRAY[NULL, NULL]::text[], ARRAY[1, 2]::bigint[], ARRAY[3, 4]::bigint[], \
         ARRAY[NULL, NULL]::bigint[], ARRAY[NULL, NULL]::text[], ARRAY[NULL, NULL]::text[], \
         ARRAY[NULL, NULL]::jsonb[], ARRAY[NULL, NULL]::timestamptz[])",
    ] {
        c.batch_execute(write).await.expect(write);
    }
    // Then one ordinary change. Notifications arrive in commit order, so once
    // its notification is here, any from the writes above would be too.
    c.batch_execute("SELECT credits.put_user('u1', 100, 'reset', NULL)")
        .await
        .expect("user update");
    let first = tokio::time::timeout(Duration::from_secs(5), notes.recv())
        .await
        .expect("the ordinary change notifies");
    assert_eq!(first.as_deref(), Some("agentplane_events"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        notes.try_recv().is_err(),
        "exactly one notification: the hot writes sent none"
    );
    // The hot writes did write their events.
    let hot_events: i64 = c
        .query_one(
            "SELECT count(*) FROM feed.events WHERE type IN ('credits.changed', 'usage')",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        hot_events, 6,
        "refill, two spends, top-up, usage record, usage batch"
    );
}
