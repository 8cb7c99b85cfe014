//! The usage folder: adds written-behind usage batches to the thread budgets
//! and rollups (`usage.fold()`, sql/usage_ingest.sql) on a timer.
//!
//! Reads never wait for it: every budget and total adds the batches not
//! folded yet. What it bounds is how late a batch's `budget.threshold` events
//! fire, and how much unfolded work reads have to add. Folding many batches
//! at once is the point: a thread's budget row is updated once per fold, not
//! once per batch (README "Benchmarks", figure 5).

use super::{usage, DbError};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::sync::watch;

/// Records folded per transaction at most (about, in whole batches): a
/// backlog (after a stop, say) is folded in steps of this size. A fold reads
/// and groups its records before it writes anything, so the feed relay, which
/// holds back events committed after any open transaction that has written,
/// waits only for its short writing part: the budget rows it updates, one
/// per thread. Larger steps update each busy thread's row less often per
/// record (20,000 gave 15% less ingest throughput, README "Benchmarks").
pub const MAX_RECORDS_PER_FOLD: i32 = 100_000;

/// Folds until nothing waits (or another server's fold holds the lock);
/// returns how many records it folded.
pub async fn fold_all(pool: &Pool) -> Result<u64, DbError> {
    let mut total = 0u64;
    loop {
        let n = usage::fold(pool, MAX_RECORDS_PER_FOLD).await?;
        total += u64::try_from(n).unwrap_or(0);
        if n < MAX_RECORDS_PER_FOLD {
            return Ok(total);
        }
    }
}

/// Runs until `stop` turns true; folds once more on the way out.
pub async fn run(pool: Pool, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
        if let Err(e) = fold_all(&pool).await {
            tracing::warn!(error = %e, "folding usage batches failed; retrying");
        }
        if *stop.borrow() {
            return;
        }
    }
}
