//! The spend queue: concurrent spends of one user share a transaction.
//!
//! Spends of one user serialise on that user's balance row, and the row lock
//! is held until the commit's WAL flush: one hot user tops out at one spend
//! per flush (about 1,000/s on the benchmark machine) however many clients
//! send. So while a spend of a user is in flight, later spends of the same
//! user wait here, and the next transaction runs all of them, in arrival
//! order, through `credits.spend_batch` — each item exactly `credits.spend`.
//! An uncontended spend runs alone, as one `credits.spend` call.
//!
//! If a batch fails (one spend is refused with 402, say), its items are
//! replayed one at a time, so each caller gets the answer its own spend
//! would have had. The work runs in a spawned task: a client that goes away
//! does not cancel a spend half-way through the queue.

use super::credits::{spend, spend_batch, SpendArgs, Spent};
use super::DbError;
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// At most this many spends per transaction: bounds the time a batch holds
/// the user's row lock.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<Spent, DbError>>;

struct Waiting {
    args: SpendArgs,
    reply: Reply,
}

/// Per-user queues of spends waiting for the user's spend in flight.
pub struct SpendQueue {
    pool: Pool,
    /// A user has an entry while a task is spending for them; the entry
    /// holds the spends that arrived meanwhile.
    users: Mutex<HashMap<String, Vec<Waiting>>>,
}

impl SpendQueue {
    pub fn new(pool: Pool) -> Arc<SpendQueue> {
        Arc::new(SpendQueue {
            pool,
            users: Mutex::new(HashMap::new()),
        })
    }

    /// Spends for `user_id`; answers what `credits.spend` answers.
    pub async fn spend(self: &Arc<Self>, user_id: &str, args: SpendArgs) -> Result<Spent, DbError> {
        let (reply, answer) = oneshot::channel();
        let first = Waiting { args, reply };
        let start = {
            let mut users = self.lock();
            match users.get_mut(user_id) {
                Some(queue) => {
                    queue.push(first);
                    None
                }
                None => {
                    users.insert(user_id.to_owned(), Vec::new());
                    Some(first)
                }
            }
        };
        if let Some(first) = start {
            tokio::spawn(self.clone().drive(user_id.to_owned(), vec![first]));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(DbError::decode("the spend task ended without an answer")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Waiting>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every critical section is a single insert, push or take).
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `batch`, then whatever queued for the user meanwhile, until the
    /// queue is empty; then the user has no entry again.
    async fn drive(self: Arc<Self>, user_id: String, mut batch: Vec<Waiting>) {
        let mut entry = EntryGuard {
            queue: &self,
            user_id: &user_id,
            armed: true,
        };
        loop {
            self.run(&user_id, batch).await;
            let mut users = self.lock();
            let Some(queue) = users.get_mut(&user_id) else {
                entry.armed = false;
                return;
            };
            if queue.is_empty() {
                users.remove(&user_id);
                entry.armed = false;
                return;
            }
            let rest = queue.split_off(queue.len().min(MAX_BATCH));
            batch = std::mem::replace(queue, rest);
        }
    }

    async fn run(&self, user_id: &str, batch: Vec<Waiting>) {
        if batch.len() > 1 {
            let args: Vec<&SpendArgs> = batch.iter().map(|w| &w.args).collect();
            match spend_batch(&self.pool, user_id, &args).await {
                Ok(spent) => {
                    for (w, s) in batch.into_iter().zip(spent) {
                        let _ = w.reply.send(Ok(s));
                    }
                    return;
                }
                // The database refused one of the spends (a 402, a bad
                // input) and rolled the batch back: replay one by one below,
                // so each caller gets its own spend's answer.
                Err(DbError::Postgres(e)) if e.as_db_error().is_some() => {}
                // The database could not be reached: replaying would only
                // wait for it once per spend. Every caller gets this error.
                Err(e) => {
                    let shared = Arc::new(e);
                    for w in batch {
                        let _ = w.reply.send(Err(DbError::Shared(shared.clone())));
                    }
                    return;
                }
            }
        }
        for w in batch {
            let result = spend(&self.pool, user_id, &w.args).await;
            let _ = w.reply.send(result);
        }
    }
}

/// Removes the user's entry if the driving task ends without doing so (a
/// panic): the waiting spends are then dropped, so their callers get an
/// error instead of waiting forever, and the user's next spend starts a new
/// driver.
struct EntryGuard<'a> {
    queue: &'a SpendQueue,
    user_id: &'a str,
    armed: bool,
}

impl Drop for EntryGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.queue.lock().remove(self.user_id);
        }
    }
}
