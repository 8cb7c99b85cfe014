//! Feed guarantees under stress, against running servers: resume with
//! `since`, the listener's backend killed mid-stream, two server processes,
//! a client that stops reading, a late commit, NOTIFY switched off,
//! retention on its timer, and the server-side limits.

use crate::support::ws::{connect, recv, send, Ws, WAIT};
use crate::support::{column, TestDb, TestServer, ADMIN_KEY};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// /ws client subscribed to `events` (optionally since), returns lastEventId.
async fn subscribed(url: &str, events: &[&str], since: Option<i64>) -> (Ws, i64) {
    let mut ws = connect(url).await;
    let hello = recv(&mut ws).await;
    assert_eq!(hello["event"], "connected", "{hello}");
    let mut cmd = json!({"cmd": "subscribe", "events": events});
    if let Some(s) = since {
        cmd["since"] = json!(s);
    }
    send(&mut ws, cmd).await;
    assert_eq!(recv(&mut ws).await["event"], "subscribed");
    (ws, hello["lastEventId"].as_i64().unwrap())
}

async fn emit_n(db: &TestDb, ty: &str, n: i64) -> Vec<i64> {
    let c = db.client().await;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            c.query_one(
                "SELECT feed.emit_data($1, jsonb_build_object('n', $2::bigint))",
                &[&ty, &i],
            )
            .await
            .unwrap()
            .get(0),
        );
    }
    ids
}

async fn expect_ids(ws: &mut Ws, ids: &[i64]) {
    for (i, want) in ids.iter().enumerate() {
        let ev = recv(ws).await;
        assert_eq!(
            ev["id"].as_i64(),
            Some(*want),
            "event #{i} of {:?}..: got {ev}",
            &ids[..ids.len().min(5)]
        );
    }
}

#[tokio::test]
async fn resume_with_since_gets_exactly_what_was_missed_then_live() {
    let srv = TestServer::start().await;
    let (ws, last) = subscribed(&srv.ws_url("/ws"), &["test.r"], None).await;
    drop(ws);
    emit_n(&srv.db, "test.other", 5).await;
    let missed = emit_n(&srv.db, "test.r", 100).await;
    // wait until the relay has published them, so part of the replay is
    // history and the live edge is close
    let target = *missed.last().unwrap();
    tokio::time::timeout(WAIT, async {
        while srv.state.hub.last_id().unwrap_or(0) < target {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let (mut ws, _) = subscribed(&srv.ws_url("/ws"), &["test.r"], Some(last)).await;
    expect_ids(&mut ws, &missed).await;
    let live = emit_n(&srv.db, "test.r", 3).await;
    expect_ids(&mut ws, &live).await;

    // replay racing with writes: no gap, no duplicate
    let db_url = srv.db.url.clone();
    let writer = tokio::spawn(async move {
        let c = agentplane::db::connect(&db_url, "writer").await.unwrap();
        let mut ids = Vec::new();
        for i in 0..300i64 {
            ids.push(
                c.query_one(
                    "SELECT feed.emit_data('test.r', jsonb_build_object('n', $1::bigint))",
                    &[&i],
                )
                .await
                .unwrap()
                .get::<_, i64>(0),
            );
        }
        ids
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (mut ws2, _) = subscribed(&srv.ws_url("/ws"), &["test.r"], Some(last)).await;
    let ids = writer.await.unwrap();
    let mut want = missed.clone();
    want.extend(&live);
    want.extend(&ids);
    expect_ids(&mut ws2, &want).await;
}

#[tokio::test]
async fn listener_killed_mid_stream_loses_and_repeats_nothing() {
    let srv = TestServer::start().await;
    let (mut ws, _) = subscribed(&srv.ws_url("/ws"), &["test.f"], None).await;
    let db_url = srv.db.url.clone();
    let writer = tokio::spawn(async move {
        let c = agentplane::db::connect(&db_url, "writer").await.unwrap();
        let mut ids = Vec::new();
        for i in 0..400i64 {
            ids.push(
                c.query_one(
                    "SELECT feed.emit_data('test.f', jsonb_build_object('n', $1::bigint))",
                    &[&i],
                )
                .await
                .unwrap()
                .get::<_, i64>(0),
            );
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        ids
    });
    let admin = srv.db.client().await;
    let mut kills = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = $1) t",
                &[&agentplane::feed::LISTENER_APP_NAME],
            )
            .await
            .unwrap()
            .get(0);
        kills += n;
    }
    assert!(kills >= 1, "the listener connection was not found");
    let ids = writer.await.unwrap();
    expect_ids(&mut ws, &ids).await;
    // and it is back: a later event still arrives
    let more = emit_n(&srv.db, "test.f", 1).await;
    expect_ids(&mut ws, &more).await;
}

#[tokio::test]
async fn a_late_commit_is_delivered_in_id_order() {
    let srv = TestServer::start().await;
    let (mut ws, _) = subscribed(&srv.ws_url("/ws"), &["test.l"], None).await;
    let mut late = srv.db.client().await;
    let tx = late.transaction().await.unwrap();
    let low: i64 = tx
        .query_one(
            "SELECT feed.emit_data('test.l', '{\"which\":\"late\"}')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let high = emit_n(&srv.db, "test.l", 1).await[0];
    assert!(high > low);
    // a ping round trip while the late one is open: the early one must not
    // have been delivered ahead of it
    send(&mut ws, json!({"cmd": "ping"})).await;
    assert_eq!(recv(&mut ws).await["event"], "pong");
    tx.commit().await.unwrap();
    expect_ids(&mut ws, &[low, high]).await;
}

#[tokio::test]
async fn correct_with_notify_off() {
    let srv = TestServer::start_with(|c| c.notify = false).await;
    // the pool's sessions run with agentplane.notify=off
    let c = srv.state.pool.get().await.unwrap();
    let v: String = c
        .query_one("SELECT current_setting('agentplane.notify', true)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "off");
    drop(c);
    let (mut ws, _) = subscribed(&srv.ws_url("/ws"), &["execution_event"], None).await;
    let resp = reqwest::Client::new()
        .put(format!("http://{}/api/v1/executions/nodes/n1", srv.addr))
        .bearer_auth(ADMIN_KEY)
        .json(
            &json!({"graphId": "g", "graphVersion": 1, "graphExecId": "e", "nodeId": "n",
                      "blockId": "b", "status": "QUEUED", "addTime": "2026-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ev = recv(&mut ws).await;
    assert_eq!(ev["event"], "execution_event");
    assert_eq!(ev["graphId"], "g");
    assert_eq!(ev["data"]["status"], "QUEUED");
}

/// Reads a stalled client's backlog: the ids it got and its close code.
async fn drain(ws: &mut Ws) -> (Vec<i64>, Option<u16>) {
    let mut seen = Vec::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                seen.push(v["id"].as_i64().unwrap());
            }
            Message::Close(c) => return (seen, c.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
    (seen, None)
}

#[tokio::test]
async fn a_stalled_client_does_not_hold_up_fifty_others() {
    let srv = TestServer::start().await;
    let (mut stalled, _) = subscribed(&srv.ws_url("/ws"), &["test.s"], None).await;
    let mut others = Vec::new();
    for _ in 0..50 {
        others.push(subscribed(&srv.ws_url("/ws"), &["test.s"], None).await.0);
    }
    let c = srv.db.client().await;
    let ids: Vec<i64> = column(
        &c,
        "SELECT feed.emit_data('test.s', jsonb_build_object('pad', repeat('x', 1000), 'n', g))
               FROM generate_series(1, 300) g",
    )
    .await;
    let mut tasks = Vec::new();
    for mut ws in others {
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            expect_ids(&mut ws, &ids).await;
        }));
    }
    // every other client gets everything while the stalled one reads nothing
    for t in tasks {
        t.await.unwrap();
    }
    // the stalled client: a prefix in order, then all of it or 1013
    let (seen, code) = drain(&mut stalled).await;
    assert_eq!(
        seen[..],
        ids[..seen.len()],
        "stalled client got events out of order"
    );
    assert!(
        seen.len() == ids.len() || code == Some(1013),
        "{} of {}, close {code:?}",
        seen.len(),
        ids.len()
    );
}

#[tokio::test]
async fn a_client_past_its_queue_bound_is_closed_with_1013_and_resumes() {
    let srv = TestServer::start_with(|c| c.ws_queue = 8).await;
    let (mut stalled, last) = subscribed(&srv.ws_url("/ws"), &["test.k"], None).await;
    // more than the socket buffers hold, so the server's writes block
    let c = srv.db.client().await;
    let ids: Vec<i64> = column(
        &c,
        "SELECT feed.emit_data('test.k', jsonb_build_object('pad', repeat('x', 20000), 'n', g))
               FROM generate_series(1, 800) g",
    )
    .await;
    tokio::time::timeout(WAIT, async {
        while srv.state.hub.last_id().unwrap_or(0) < *ids.last().unwrap() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let (seen, code) = drain(&mut stalled).await;
    assert_eq!(code, Some(1013), "got {} events", seen.len());
    assert!(seen.len() < ids.len());
    assert_eq!(seen[..], ids[..seen.len()]);
    // resume with since: the rest, exactly
    let resume_from = seen.last().copied().unwrap_or(last);
    let (mut ws, _) = subscribed(&srv.ws_url("/ws"), &["test.k"], Some(resume_from)).await;
    expect_ids(&mut ws, &ids[seen.len()..]).await;
}

#[tokio::test]
async fn two_server_processes_share_one_feed() {
    let db = TestDb::new().await;
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentplane"))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("AGENTPLANE_BIND", format!("127.0.0.1:{port}"))
            .env("AGENTPLANE_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn server");
        children.push(child);
        addrs.push(format!("127.0.0.1:{port}"));
    }
    let http = reqwest::Client::new();
    for a in &addrs {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(r) = http.get(format!("http://{a}/health")).send().await {
                    if r.status().is_success() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("server did not come up");
    }
    let (mut on_b, _) = subscribed(
        &format!("ws://{}/ws?token={ADMIN_KEY}", addrs[1]),
        &["execution_event"],
        None,
    )
    .await;
    let mut exec_b = connect(&format!(
        "ws://{}/ws/executions?token={ADMIN_KEY}",
        addrs[1]
    ))
    .await;
    send(
        &mut exec_b,
        json!({"method": "subscribe", "data": {"graph_id": "g-two"}}),
    )
    .await;
    assert_eq!(recv(&mut exec_b).await["success"], true);
    // the change goes through server A
    let resp = http
        .put(format!("http://{}/api/v1/executions/nodes/x1", addrs[0]))
        .bearer_auth(ADMIN_KEY)
        .json(
            &json!({"graphId": "g-two", "graphVersion": 1, "graphExecId": "e-two", "nodeId": "n",
                      "blockId": "b", "status": "RUNNING", "addTime": "2026-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ev = recv(&mut on_b).await;
    assert_eq!(ev["event"], "execution_event");
    assert_eq!(ev["data"]["node_exec_id"], "x1");
    let ev = recv(&mut exec_b).await;
    assert_eq!(ev["method"], "execution_event");
    assert_eq!(ev["data"]["node_exec_id"], "x1");
    for mut c in children {
        let _ = c.kill().await;
    }
}

#[tokio::test]
async fn retention_timer_prunes_old_events() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT feed.emit('old', '{}') FROM generate_series(1, 30);
         UPDATE feed.events SET created_at = now() - interval '2 days';",
    )
    .await
    .unwrap();
    let srv = TestServer::on(db, |cfg| cfg.event_retention = Duration::from_secs(86_400)).await;
    let c = srv.db.client().await;
    c.batch_execute("SELECT feed.emit('fresh', '{}')")
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            let n: i64 = c
                .query_one("SELECT count(*) FROM feed.events WHERE type = 'old'", &[])
                .await
                .unwrap()
                .get(0);
            if n == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("old events were not pruned");
    let fresh: i64 = c
        .query_one("SELECT count(*) FROM feed.events WHERE type = 'fresh'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(fresh, 1);
}

#[tokio::test]
async fn server_limits_connections_size_and_idle() {
    let srv = TestServer::start_with(|c| {
        c.ws_max_connections = 2;
        c.ws_max_command_bytes = 1024;
        c.ws_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut a = connect(&srv.ws_url("/ws/executions")).await;
    let _b = connect(&srv.ws_url("/ws/executions")).await;
    match tokio_tungstenite::connect_async(srv.ws_url("/ws/executions")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("third connection: {other:?}"),
    }
    // a command over the size limit closes the socket (1009)
    a.send(Message::Text("x".repeat(4096))).await.unwrap();
    let mut code = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(WAIT, a.next()).await {
        if let Message::Close(c) = m {
            code = c.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(1009));
    drop(a);
    // clients that never read (so never answer the server's pings) are
    // dropped after the idle timeout: _b and this one
    let c = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (_idle, _) = tokio_tungstenite::client_async(srv.ws_url("/ws/executions"), c)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while srv.state.hub.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("idle connections were not closed");
}
