//! The usage folder: adds written-behind usage batches to the thread budgets
//! and rollups (`usage.fold()`, sql/usage_ingest/fold.sql) on a timer.
//!
//! Reads never wait for it: every budget and total adds the batches not
//! folded yet. What it bounds is how late a batch's `budget.threshold` events
//! fire, and how much unfolded work reads have to add. Folding many batches
//! at once is the point: a thread's budget row is updated once per fold, not
//! once per batch, which is the largest saving of the write-behind.

use super::{usage, DbError};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::sync::watch;

/// Records folded per transaction at most (about, in whole batches): a
/// backlog (after a stop, say) is folded in steps of this size. A fold reads
/// and groups its records before it writes anything, so the feed relay, which
/// holds back events committed after any open transaction that has written,
/// waits only for its short writing part: the budget rows it updates, one
/// per thread.
pub const MAX_RECORDS_PER_FOLD: i32 = 250_000;

/// Records that make a fold due at once. A fold costs about as much per
/// thread it touches (a budget row update, its groups) as per record, so
/// under a steady stream the folder waits for this many, or for a pause, or
/// for the oldest batch to have waited five ticks: folding every tick under
/// a steady stream over 5,000 threads would update 5,000 budget rows five
/// times a second.
pub const FOLD_AT_RECORDS: i32 = 100_000;

/// The folder's rule for a tick of `every`: due at FOLD_AT_RECORDS, after a
/// tick without a new batch, or once the oldest has waited five ticks.
pub fn due_every(every: Duration) -> usage::FoldDue {
    usage::FoldDue {
        min_records: FOLD_AT_RECORDS,
        quiet: every,
        max_age: every * 5,
    }
}

/// Folds when `due` says so (None: whatever waits), then on until nothing
/// waits (or another server's fold holds the lock); returns how many records
/// it folded.
pub async fn fold_all(pool: &Pool, due: Option<usage::FoldDue>) -> Result<u64, DbError> {
    let mut total = 0u64;
    let mut due = due;
    loop {
        let n = usage::fold(pool, MAX_RECORDS_PER_FOLD, due).await?;
        total += u64::try_from(n).unwrap_or(0);
        if n < MAX_RECORDS_PER_FOLD {
            return Ok(total);
        }
        due = None; // a backlog: fold the rest now
    }
}

/// Runs until `stop` turns true, looking every `every`; folds whatever waits
/// on the way out.
pub async fn run(pool: Pool, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
        let stopping = *stop.borrow();
        let due = (!stopping).then(|| due_every(every));
        if let Err(e) = fold_all(&pool, due).await {
            tracing::warn!(error = %e, "folding usage batches failed; retrying");
        }
        if stopping {
            return;
        }
    }
}
