//! The relay's read (`feed.relay_poll`): it never skips a late commit,
//! checkpoints become final while an older one still waits, reads are
//! limited to the users someone follows, and the hub guards against a read
//! filtered by an interest that changed.

use crate::support::TestDb;
use agentplane::db::feed::{relay_poll, RelayCursor, StoredEvent, RELAY_POLL};
use agentplane::feed::{Event, Filter, Hub, Interest};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Starts a relay cursor: everything already in the table is history.
async fn started(relay: &tokio_postgres::Client) -> (RelayCursor, i64) {
    let mut cursor = RelayCursor::default();
    // transactions elsewhere in the cluster may hold the first cut back
    for _ in 0..500 {
        relay_poll(relay, RELAY_POLL, None, &mut cursor, 0, None)
            .await
            .unwrap();
        if !cursor.is_pending() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!cursor.is_pending());
    let start = cursor.cut;
    (cursor, start)
}

async fn emit(c: &impl tokio_postgres::GenericClient, ty: &str, user: Option<&str>) -> i64 {
    c.query_one("SELECT feed.emit($1, '{}', $2)", &[&ty, &user])
        .await
        .unwrap()
        .get(0)
}

/// Polls until `want` events arrived after `got` (generous bound, not a
/// timing assertion: other databases' transactions may hold a cut briefly).
async fn poll_until(
    relay: &tokio_postgres::Client,
    cursor: &mut RelayCursor,
    start: i64,
    got: &mut Vec<StoredEvent>,
    want: usize,
    users: Option<&[String]>,
) {
    for _ in 0..500 {
        let after = got.last().map(|e| e.id).unwrap_or(start).max(start);
        got.extend(
            relay_poll(relay, RELAY_POLL, Some(after), cursor, 100, users)
                .await
                .unwrap(),
        );
        if got.len() >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One relay step from `start` that must deliver nothing: an open
/// transaction holds the cut back.
async fn poll_nothing(relay: &tokio_postgres::Client, cursor: &mut RelayCursor, start: i64) {
    let got = relay_poll(relay, RELAY_POLL, Some(start), cursor, 100, None)
        .await
        .unwrap();
    assert!(
        got.is_empty(),
        "delivered past an open transaction: {got:?}"
    );
}

/// The ids of `got`, in delivery order.
fn delivered_ids(got: &[StoredEvent]) -> Vec<i64> {
    got.iter().map(|e| e.id).collect()
}

/// A transaction that took a lower id commits after one with a higher id:
/// the relay read holds the higher one back until the lower one is final.
#[tokio::test]
async fn relay_read_never_skips_a_late_commit() {
    let db = TestDb::new().await;
    let relay = db.client().await;
    let (mut cursor, start) = started(&relay).await;

    let mut late = db.client().await;
    let tx = late.transaction().await.unwrap();
    let low = emit(&tx, "late", None).await;
    // nothing after it has completed yet: the open transaction's xid is at
    // or above the snapshot's xmax, where snapshots list no running xids
    for _ in 0..3 {
        poll_nothing(&relay, &mut cursor, start).await;
        assert!(
            cursor.cut < low,
            "cut {} passed an open transaction's id {low}",
            cursor.cut
        );
    }
    let other = db.client().await;
    let high = emit(&other, "early", None).await;
    assert!(high > low);
    for _ in 0..3 {
        poll_nothing(&relay, &mut cursor, start).await;
        assert!(cursor.cut < low);
    }
    tx.commit().await.unwrap();
    let mut got = Vec::new();
    poll_until(&relay, &mut cursor, start, &mut got, 2, None).await;
    assert_eq!(delivered_ids(&got), vec![low, high]);
    assert_eq!(got[0].ty, "late");
}

/// Checkpoint c1 waits for T1; c2, taken after a later commit while c1
/// still waits, holds only T1 too. When T1 commits both are final, even
/// though T3 began meanwhile: the later commit is delivered without waiting
/// for T3 (a single pending checkpoint would have waited for T3 as well).
#[tokio::test]
async fn a_later_checkpoint_is_final_once_the_transactions_it_saw_end() {
    let db = TestDb::new().await;
    let relay = db.client().await;
    let (mut cursor, start) = started(&relay).await;

    let mut t1c = db.client().await;
    let t1 = t1c.transaction().await.unwrap();
    let low = emit(&t1, "t1", None).await;
    poll_nothing(&relay, &mut cursor, start).await;
    assert!(cursor.is_pending());

    let other = db.client().await;
    let committed = emit(&other, "committed", None).await;
    poll_nothing(&relay, &mut cursor, start).await;
    assert!(cursor.checkpoints.len() >= 2, "{cursor:?}");

    let mut t3c = db.client().await;
    let t3 = t3c.transaction().await.unwrap();
    let open = emit(&t3, "t3", None).await;
    t1.commit().await.unwrap();

    let mut got = Vec::new();
    poll_until(&relay, &mut cursor, start, &mut got, 2, None).await;
    assert_eq!(delivered_ids(&got), vec![low, committed]);
    assert!(
        cursor.cut < open,
        "cut {} passed open id {open}",
        cursor.cut
    );

    t3.commit().await.unwrap();
    poll_until(&relay, &mut cursor, start, &mut got, 3, None).await;
    assert_eq!(delivered_ids(&got), vec![low, committed, open]);
}

#[tokio::test]
async fn a_read_for_named_users_skips_the_rest_and_still_advances() {
    let db = TestDb::new().await;
    let relay = db.client().await;
    let (mut cursor, start) = started(&relay).await;
    let c = db.client().await;
    let mut ids = Vec::new();
    for user in [Some("u1"), Some("u2"), None, Some("u1"), Some("u3")] {
        ids.push(emit(&c, "x", user).await);
    }
    let followed = vec!["u1".to_string(), "u3".to_string()];
    let mut got = Vec::new();
    poll_until(&relay, &mut cursor, start, &mut got, 3, Some(&followed)).await;
    assert_eq!(delivered_ids(&got), vec![ids[0], ids[3], ids[4]]);
    assert!(cursor.cut >= ids[4]);
    // nobody followed: nothing read, the cut still moves
    let last = emit(&c, "x", Some("u1")).await;
    let mut none = Vec::new();
    for _ in 0..500 {
        none.extend(
            relay_poll(
                &relay,
                RELAY_POLL,
                Some(ids[4]),
                &mut cursor,
                100,
                Some(&[]),
            )
            .await
            .unwrap(),
        );
        if cursor.cut >= last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(none.is_empty() && cursor.cut >= last);
}

fn ev(id: i64, user: Option<&str>) -> Arc<Event> {
    Event::new(StoredEvent {
        id,
        ty: "credits.changed".into(),
        user_id: user.map(Into::into),
        agents: vec![],
        thread_id: None,
        payload_type: None,
        graph_id: None,
        graph_exec_id: None,
        body: json!({}),
        created_at: "2026-01-01T00:00:00.000000Z".into(),
    })
}

fn users_filter(users: &[&str]) -> Interest {
    Interest::Filter(Filter {
        users: users.iter().map(|u| u.to_string()).collect(),
        ..Filter::default()
    })
}

#[tokio::test]
async fn the_hub_names_the_users_wanted_and_refuses_a_stale_filtered_read() {
    let hub = Hub::new(16, 100);
    hub.start_at(0);
    assert_eq!(hub.wanted_users().1, Some(vec![]));
    let mut a = hub.register(hub.try_connect().unwrap(), None);
    assert_eq!(hub.wanted_users().1, Some(vec![]), "no interest yet");
    hub.set_interest(&a, users_filter(&["u2", "u1"]));
    let b = hub.register(hub.try_connect().unwrap(), Some("u9".into()));
    hub.set_interest(&b, users_filter(&["u1"]));
    assert_eq!(hub.wanted_users().1, Some(vec!["u1".into(), "u2".into()]));
    // a connection that wants every user's events (a bound key's own events
    // include those with no user) or a channel: everything is read
    let c = hub.register(hub.try_connect().unwrap(), Some("u9".into()));
    hub.set_interest(&c, Interest::Filter(Filter::default()));
    assert_eq!(hub.wanted_users().1, None);
    hub.set_interest(&c, Interest::Channels(["graph#g".to_string()].into()));
    assert_eq!(hub.wanted_users().1, None);
    drop(c);
    let (version, users) = hub.wanted_users();
    assert_eq!(users, Some(vec!["u1".into(), "u2".into()]));

    // the relay read u1/u2 only; meanwhile `a` also follows u3
    hub.set_interest(&a, users_filter(&["u1", "u2", "u3"]));
    assert!(!hub.publish_read(&[ev(1, Some("u1"))], 5, Some(version)));
    assert!(
        a.rx.try_recv().is_err(),
        "nothing published from a stale read"
    );
    assert_eq!(hub.last_id(), Some(0));
    // the range read again unfiltered is published, up to its end
    assert!(hub.publish_read(&[ev(1, Some("u1")), ev(3, Some("u3"))], 5, None));
    let got: Vec<i64> = std::iter::from_fn(|| a.rx.try_recv().ok())
        .map(|e| e.stored.id)
        .collect();
    assert_eq!(got, vec![1, 3]);
    assert_eq!(hub.last_id(), Some(5));
    // a read filtered by the current interest is published
    let (version, _) = hub.wanted_users();
    assert!(hub.publish_read(&[ev(7, Some("u3"))], 9, Some(version)));
    assert_eq!(a.rx.try_recv().map(|e| e.stored.id).ok(), Some(7));
    assert_eq!(hub.last_id(), Some(9));
}
