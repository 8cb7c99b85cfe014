//! Reading final events from the table for a subscriber that is not (yet)
//! live: the `GET /api/v1/events` page and the stream's replay. Only ids up
//! to the hub's watermark are read: the relay publishes an id only once it
//! is final (`feed.relay_poll`), so nothing below a page's end can still
//! appear later.

use super::{visible_to, Event, Filter};
use crate::db::{self, DbError};
use deadpool_postgres::Pool;
use std::sync::Arc;

/// Rows read from the table per query.
const READ_PAGE: i32 = 500;

/// One page's events and where the next one starts.
pub struct Page {
    /// Matching, visible events in id order.
    pub events: Vec<Arc<Event>>,
    /// The last id looked at: every id up to here was read.
    pub scanned_to: i64,
}

/// What to read: the subscriber's filter, its key's user binding and the
/// bounds of one page.
pub struct PageQuery<'a> {
    pub filter: &'a Filter,
    pub bound_user: Option<&'a str>,
    /// Events after this id.
    pub after: i64,
    /// Up to this id (a final one: the hub's watermark).
    pub upto: i64,
    /// At most this many events.
    pub limit: usize,
    /// Stop before the events' JSON passes this many bytes (a page always
    /// holds at least one event).
    pub max_bytes: usize,
    /// Stop after looking at this many rows, matching or not (a narrow
    /// filter over a long history answers with an empty page that moved on,
    /// instead of reading the whole table in one request).
    pub max_rows: usize,
}

/// Reads the events of `(q.after, q.upto]` that the filter matches and the
/// key may see, stopping at the first bound reached.
pub async fn read(pool: &Pool, q: &PageQuery<'_>) -> Result<Page, DbError> {
    let mut events: Vec<Arc<Event>> = Vec::new();
    let mut bytes = 0usize;
    let mut rows = 0usize;
    let mut cur = q.after;
    // With a `users` filter only those users' rows can match: the database
    // reads just those (the relay does the same).
    let users = (!q.filter.users.is_empty()).then_some(q.filter.users.as_slice());
    'pages: while cur < q.upto && rows < q.max_rows {
        let batch = db::feed::read_range_of(pool, cur, q.upto, READ_PAGE, users).await?;
        if batch.is_empty() {
            // (a page holds at least one row whenever one is left)
            cur = q.upto;
            break;
        }
        for stored in batch {
            if q.filter.matches(&stored) && visible_to(q.bound_user, &stored) {
                let ev = Event::new(stored);
                let len = ev.control_json.len();
                if events.len() >= q.limit || (!events.is_empty() && bytes + len > q.max_bytes) {
                    break 'pages;
                }
                bytes += len;
                cur = ev.stored.id;
                events.push(ev);
            } else {
                cur = stored.id;
            }
            rows += 1;
        }
    }
    Ok(Page {
        events,
        scanned_to: cur,
    })
}
