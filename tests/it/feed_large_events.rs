//! A run of large events does not wedge the feed: the relay reads them in
//! pages bounded by bytes, so hundreds of 1 MiB events (far past what one
//! jsonb value may hold) reach a subscriber, followed by the next event.

use crate::support::ws::{connect, recv, send};
use crate::support::TestServer;
use serde_json::json;

const BIG_EVENTS: i64 = 300;

#[tokio::test]
async fn hundreds_of_one_mebibyte_events_are_relayed() {
    let server = TestServer::start().await;
    let mut ws = connect(&server.ws_url("/ws")).await;
    assert_eq!(recv(&mut ws).await["event"], "connected");
    send(
        &mut ws,
        json!({"cmd": "subscribe", "events": ["big", "after"]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["event"], "subscribed");
    // 300 MiB rendered, well past the 256 MiB a jsonb array may hold; each
    // compresses to a few KiB on disk, so the test stays light.
    let db = server.db.client().await;
    db.batch_execute(&format!(
        "SELECT feed.emit_data('big', jsonb_build_object('blob', repeat('a', 1048576), 'n', i))
           FROM generate_series(1, {BIG_EVENTS}) i;
         SELECT feed.emit_data('after', '{{}}'::jsonb);"
    ))
    .await
    .unwrap();
    let mut big = 0;
    loop {
        let ev = recv(&mut ws).await;
        match ev["event"].as_str() {
            Some("big") => {
                big += 1;
                assert_eq!(ev["data"]["n"], big, "in order, none lost");
                assert_eq!(ev["data"]["blob"].as_str().map(str::len), Some(1048576));
            }
            Some("after") => break,
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(big, BIG_EVENTS);
}
