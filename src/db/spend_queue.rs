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
//! If the database refuses one spend of a batch (a 402, say), the batch
//! rolls back and its items are replayed one at a time, so each caller gets
//! the answer its own spend would have had. Only a refusal is replayed: when
//! the connection breaks while a batch or spend is under way, it may have
//! committed, so nothing is sent again and each of its callers gets 503
//! `outcome_unknown` (the same request with the same idempotency key then
//! answers what happened). If the database cannot be reached at all, every
//! caller still waiting gets that error at once. The work runs
//! in a spawned task, so a spend is never cut off half-way; a spend whose
//! caller has gone away before its turn is not made at all (its client got no
//! answer, as for any aborted request, and may retry with an idempotency
//! key). At most `MAX_WAITING` spends wait per user; more are refused with
//! 503 rather than queued without bound.

use super::credits::{spend, spend_batch, SpendArgs, Spent};
use super::DbError;
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// At most this many spends per transaction: bounds the time a batch holds
/// the user's row lock.
const MAX_BATCH: usize = 64;

/// At most this many spends wait for one user; the next ones get 503.
const MAX_WAITING: usize = 4096;

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
                Some(queue) if queue.len() >= MAX_WAITING => {
                    return Err(DbError::Busy(format!(
                        "more than {MAX_WAITING} spends of this user are waiting"
                    )));
                }
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

    /// Spends waiting behind another spend of the same user (for
    /// `agentplane_spend_queue_waiting`).
    pub fn waiting(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
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
        let batch: Vec<Waiting> = batch.into_iter().filter(|w| !w.reply.is_closed()).collect();
        if batch.len() > 1 {
            let args: Vec<&SpendArgs> = batch.iter().map(|w| &w.args).collect();
            match spend_batch(&self.pool, user_id, &args).await {
                Ok(spent) => {
                    for (w, s) in batch.into_iter().zip(spent) {
                        let _ = w.reply.send(Ok(s));
                    }
                    return;
                }
                // The connection broke: the batch may have committed, so
                // it is never replayed. Every caller learns that.
                Err(e) if e.connection_lost() => {
                    let shared = Arc::new(e);
                    let unknown = outcome_unknown(&shared);
                    return answer_all(batch, unknown);
                }
                // The database refused one of the spends (a 402, a bad
                // input) and rolled the batch back: replay one by one below,
                // so each caller gets its own spend's answer.
                Err(_) => {}
            }
        }
        let mut batch = batch.into_iter();
        while let Some(w) = batch.next() {
            match spend(&self.pool, user_id, &w.args).await {
                // This one may have committed; the rest were never sent and
                // would only wait for the database in turn: they get the
                // error as it is.
                Err(e) if e.connection_lost() => {
                    let shared = Arc::new(e);
                    let _ = w.reply.send(Err(outcome_unknown(&shared)));
                    for rest in batch {
                        let _ = rest.reply.send(Err(DbError::Shared(shared.clone())));
                    }
                    return;
                }
                result => {
                    let _ = w.reply.send(result);
                }
            }
        }
    }
}

/// Answers one error to every waiter.
fn answer_all(waiters: impl IntoIterator<Item = Waiting>, e: DbError) {
    let shared = Arc::new(e);
    for w in waiters {
        let _ = w.reply.send(Err(DbError::Shared(shared.clone())));
    }
}

/// What a caller whose spend was under way when `e` happened gets: a
/// statement was sent, so nobody can tell whether it committed. A pool
/// error stays as it is (nothing was sent).
fn outcome_unknown(e: &Arc<DbError>) -> DbError {
    match **e {
        DbError::Postgres(_) => DbError::OutcomeUnknown(e.to_string()),
        _ => DbError::Shared(e.clone()),
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
