//! Retention: events older than AGENTPLANE_EVENT_RETENTION, and webhook
//! delivery attempts as old, are deleted in small batches (one short transaction each, skipping rows another pruner
//! holds), on a timer. Writers are never blocked for long.

use crate::db;
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::sync::watch;

const BATCH: i32 = 1000;

/// How often to prune: a quarter of the horizon, between 1 s and 60 s.
pub fn interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Deletes every expired event, then every expired webhook delivery
/// attempt, batch by batch; returns how many events.
pub async fn prune_all(pool: &Pool, retention: Duration) -> Result<u64, db::DbError> {
    let mut total = 0u64;
    loop {
        let n = db::feed::prune(pool, retention, BATCH).await?;
        total += n.max(0) as u64;
        if n < BATCH {
            break;
        }
        // let writers and other work in between batches
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    loop {
        let n = {
            let client = pool.get().await?;
            db::webhooks::prune_deliveries(&**client, retention, BATCH).await?
        };
        if n < BATCH {
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs until `stop` turns true.
pub async fn run(pool: Pool, retention: Duration, mut stop: watch::Receiver<bool>) {
    let every = interval(retention);
    loop {
        match prune_all(&pool, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned expired feed events"),
            Err(e) => tracing::warn!(error = %e, "pruning feed events failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}
