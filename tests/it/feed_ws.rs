//! The live feed through a real WebSocket client against a running server
//! (in-process on 127.0.0.1:0, or the built binary for the two-process test).

use crate::support::ws::{connect, recv, send, Ws};
use crate::support::{TestDb, TestServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// A /ws client that got `connected`.
async fn control(srv: &TestServer) -> (Ws, Value) {
    let mut ws = connect(&srv.ws_url("/ws")).await;
    let hello = recv(&mut ws).await;
    assert_eq!(hello["event"], "connected", "{hello}");
    (ws, hello)
}

async fn subscribe(ws: &mut Ws, cmd: Value) -> Value {
    send(ws, cmd).await;
    let ack = recv(ws).await;
    assert_eq!(ack["event"], "subscribed", "{ack}");
    ack
}

async fn emit(db: &TestDb, ty: &str, n: i64) -> i64 {
    let c = db.client().await;
    c.query_one(
        "SELECT feed.emit_data($1, jsonb_build_object('n', $2::bigint))",
        &[&ty, &n],
    )
    .await
    .unwrap()
    .get(0)
}

/// Registers the agents `echo` and `other` through the real registry function.
async fn register_agents(db: &TestDb) {
    let c = db.client().await;
    c.batch_execute(
        "SELECT agents.register('echo', '{\"description\": \"echoes\"}');
         SELECT agents.register('other', '{\"description\": \"another\"}');",
    )
    .await
    .expect("agents");
}

fn node(graph: &str, exec: &str, status: &str) -> Value {
    json!({
        "graphId": graph, "graphVersion": 1, "graphExecId": exec, "nodeId": "n1",
        "blockId": "b1", "status": status, "inputData": {"in": 1}, "outputData": {},
        "addTime": "2026-01-02T03:04:05Z"
    })
}

async fn put_node(srv: &TestServer, id: &str, body: Value) {
    let (status, value) = srv
        .put(&format!("/api/v1/executions/nodes/{id}"), body)
        .await;
    assert_eq!(status, 200, "{value}");
}

#[tokio::test]
async fn control_connect_subscribe_ping_errors() {
    let db = TestDb::new().await;
    register_agents(&db).await;
    let srv = TestServer::on(db, |_| {}).await;
    let (mut ws, hello) = control(&srv).await;
    assert!(hello["organism"].is_object(), "{hello}");
    assert!(hello["agents"].is_array());
    assert!(hello["threads"].as_array().unwrap().len() <= 100);
    assert!(hello["lastEventId"].is_i64());
    assert_eq!(hello["agents"].as_array().unwrap().len(), 2);

    let ack = subscribe(
        &mut ws,
        json!({"cmd": "subscribe", "events": ["test.a"], "agents": []}),
    )
    .await;
    assert_eq!(ack["filters"]["events"], json!(["test.a"]));
    for k in [
        "agents",
        "threads",
        "payload_types",
        "events",
        "graphs",
        "users",
    ] {
        assert!(ack["filters"][k].is_array(), "{k} missing in {ack}");
    }

    send(&mut ws, json!({"cmd": "bogus"})).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["event"], "error");
    assert!(e["error"].as_str().unwrap().contains("bogus"));
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await["event"], "error");
    send(&mut ws, json!({"cmd": "subscribe", "agents": "x"})).await;
    assert_eq!(recv(&mut ws).await["event"], "error");
    // the socket still works
    send(&mut ws, json!({"cmd": "ping"})).await;
    assert_eq!(recv(&mut ws).await, json!({"event": "pong"}));

    // filtered: test.b is not delivered, test.a is, with the pushed shape
    emit(&srv.db, "test.b", 1).await;
    let id = emit(&srv.db, "test.a", 2).await;
    let ev = recv(&mut ws).await;
    assert_eq!(ev["event"], "test.a", "{ev}");
    assert_eq!(ev["id"], id);
    assert_eq!(ev["data"], json!({"n": 2}));
    assert!(ev["createdAt"].is_string());

    // unsubscribe: nothing more
    send(&mut ws, json!({"cmd": "unsubscribe"})).await;
    assert_eq!(recv(&mut ws).await["event"], "unsubscribed");
    emit(&srv.db, "test.a", 3).await;
    send(&mut ws, json!({"cmd": "ping"})).await;
    // the relay delivers test.a #3 before or after the ping; it must never come
    assert_eq!(recv(&mut ws).await, json!({"event": "pong"}));
    subscribe(&mut ws, json!({"cmd": "subscribe", "events": ["test.c"]})).await;
    let id_c = emit(&srv.db, "test.c", 4).await;
    assert_eq!(recv(&mut ws).await["id"], id_c);
}

#[tokio::test]
async fn inject_over_ws() {
    let db = TestDb::new().await;
    register_agents(&db).await;
    let srv = TestServer::on(db, |_| {}).await;
    let (mut ws, _) = control(&srv).await;
    subscribe(&mut ws, json!({"cmd": "subscribe", "events": ["message"]})).await;
    send(
        &mut ws,
        json!({"cmd": "inject", "to": "echo", "payload": {"text": "hi"}, "thread_id": "t-1"}),
    )
    .await;
    let r = recv(&mut ws).await;
    assert_eq!(r["event"], "injected", "{r}");
    assert_eq!(r["thread_id"], "t-1");
    let mid = r["message_id"].clone();
    assert!(mid.is_string());
    let m = recv(&mut ws).await;
    assert_eq!(m["event"], "message", "{m}");
    assert_eq!(m["message"]["id"], mid);
    assert_eq!(m["message"]["threadId"], "t-1");
    assert_eq!(m["message"]["to"], "echo");
    assert_eq!(m["message"]["payload"], json!({"text": "hi"}));

    send(
        &mut ws,
        json!({"cmd": "inject", "to": "nobody", "payload": {}}),
    )
    .await;
    let e = recv(&mut ws).await;
    assert_eq!(e["event"], "error", "{e}");
    send(&mut ws, json!({"cmd": "inject", "payload": {}})).await;
    assert_eq!(recv(&mut ws).await["event"], "error");

    // a reader key may subscribe but not inject
    let reader = reader_key(&srv).await;
    let mut rws = connect(&srv.ws_url_with("/ws", &reader)).await;
    assert_eq!(recv(&mut rws).await["event"], "connected");
    send(
        &mut rws,
        json!({"cmd": "inject", "to": "echo", "payload": {}}),
    )
    .await;
    assert_eq!(recv(&mut rws).await["event"], "error");
}

async fn reader_key(srv: &TestServer) -> String {
    make_key(srv, "reader", None).await
}

async fn make_key(srv: &TestServer, role: &str, user: Option<&str>) -> String {
    let (status, resp) = srv
        .post(
            "/api/v1/keys",
            json!({"name": "k", "role": role, "userId": user}),
        )
        .await;
    assert_eq!(status, 201, "{resp}");
    resp["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn auth_on_upgrade_and_user_bound_keys() {
    let srv = TestServer::start().await;
    for url in [
        format!("ws://{}/ws", srv.addr),
        format!("ws://{}/ws?token=wrong", srv.addr),
        format!("ws://{}/ws/executions?token=wrong", srv.addr),
    ] {
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 401);
                let body: Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or(b"{}")).unwrap();
                assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            }
            other => panic!("upgrade without a valid key: {other:?}"),
        }
    }
    // a key bound to u1 never sees u2's credit events
    let bound = make_key(&srv, "reader", Some("u1")).await;
    let mut ws = connect(&srv.ws_url_with("/ws", &bound)).await;
    assert_eq!(recv(&mut ws).await["event"], "connected");
    subscribe(&mut ws, json!({"cmd": "subscribe"})).await;
    let c = srv.db.client().await;
    let mut mine = Vec::new();
    for (i, user) in ["u2", "u1", "u2", "u1"].iter().enumerate() {
        let id: i64 = c
            .query_one(
                "SELECT feed.emit_data('credits.changed', jsonb_build_object('i', $1::int), p_user_id => $2)",
                &[&(i as i32), user],
            )
            .await
            .unwrap()
            .get(0);
        if *user == "u1" {
            mine.push(id);
        }
    }
    let id_public = emit(&srv.db, "organism", 0).await;
    mine.push(id_public);
    for want in mine {
        let ev = recv(&mut ws).await;
        assert_eq!(ev["id"], want, "{ev}");
        if ev["event"] == "credits.changed" {
            assert_eq!(ev["userId"], "u1");
        }
    }
}

#[tokio::test]
async fn messages_protocol_filters() {
    let db = TestDb::new().await;
    register_agents(&db).await;
    let srv = TestServer::on(db, |_| {}).await;
    let mut ws = connect(&srv.ws_url("/ws/messages")).await;
    let filter = json!({"agents": ["echo"], "threads": [], "payload_types": ["task"]});
    send(&mut ws, json!({"cmd": "subscribe", "filter": filter})).await;
    let ack = recv(&mut ws).await;
    assert_eq!(ack, json!({"event": "subscribed", "filter": filter}));

    let c = srv.db.client().await;
    let inject = |to: &'static str, ty: &'static str, text: &'static str| {
        let c = &c;
        async move {
            let r: Value = c
                .query_one(
                    "SELECT agents.inject($1, jsonb_build_object('text', $3::text), NULL, 'tester', $2)",
                    &[&to, &ty, &text],
                )
                .await
                .unwrap()
                .get(0);
            r["messageId"].clone()
        }
    };
    inject("other", "task", "wrong agent").await;
    inject("echo", "note", "wrong type").await;
    let want = inject("echo", "task", "right").await;
    emit(&srv.db, "test.x", 1).await; // not a message
    let want2 = inject("echo", "task", "right again").await;
    let m = recv(&mut ws).await;
    assert_eq!(m["id"], want, "{m}");
    assert_eq!(m["payload"], json!({"text": "right"}));
    for k in [
        "id",
        "threadId",
        "from",
        "to",
        "payloadType",
        "payload",
        "timestamp",
    ] {
        assert!(m.get(k).is_some(), "{k} missing in {m}");
    }
    assert_eq!(recv(&mut ws).await["id"], want2);
    send(&mut ws, json!({"cmd": "nope"})).await;
    assert_eq!(recv(&mut ws).await["event"], "error");
}

#[tokio::test]
async fn executions_protocol_channels() {
    let srv = TestServer::start().await;
    // no subscribers: nothing sent, no error
    put_node(&srv, "ne0", node("g1", "e0", "QUEUED")).await;
    // (a subscription gets what the server publishes after it: let the relay
    // publish ne0 first)
    let c = srv.db.client().await;
    let top: i64 = c
        .query_one("SELECT max(id) FROM feed.events", &[])
        .await
        .unwrap()
        .get(0);
    tokio::time::timeout(Duration::from_secs(30), async {
        while srv.state.hub.last_id().unwrap_or(0) < top {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    let mut ws = connect(&srv.ws_url("/ws/executions")).await;
    send(&mut ws, json!({"method": "heartbeat"})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"method": "heartbeat", "data": "pong", "success": true})
    );
    send(
        &mut ws,
        json!({"method": "subscribe", "data": {"graph_id": "g1"}}),
    )
    .await;
    let ack = recv(&mut ws).await;
    assert_eq!(ack["method"], "subscribe");
    assert_eq!(ack["success"], true);
    let ch = ack["channel"].as_str().unwrap().to_string();
    assert_eq!(srv.state.hub.channel_count(), 1);

    put_node(&srv, "ne2", node("g2", "e2", "QUEUED")).await; // not g1: never sent
    put_node(&srv, "ne1", node("g1", "e1", "RUNNING")).await;
    let ev = recv(&mut ws).await;
    assert_eq!(ev["method"], "execution_event", "{ev}");
    assert_eq!(ev["channel"], ch.as_str());
    let d = &ev["data"];
    assert_eq!(d["node_exec_id"], "ne1");
    assert_eq!(d["graph_id"], "g1");
    assert_eq!(d["graph_exec_id"], "e1");
    assert_eq!(d["status"], "RUNNING");
    assert_eq!(d["input_data"], json!({"in": 1}));
    for k in [
        "graph_version",
        "node_id",
        "block_id",
        "output_data",
        "add_time",
        "queue_time",
        "start_time",
        "end_time",
    ] {
        assert!(d.get(k).is_some(), "{k} missing in {d}");
    }

    // by graph execution
    send(
        &mut ws,
        json!({"method": "subscribe", "data": {"graph_exec_id": "e9"}}),
    )
    .await;
    let ack = recv(&mut ws).await;
    let ch_exec = ack["channel"].as_str().unwrap().to_string();
    assert_ne!(ch_exec, ch);
    put_node(&srv, "ne9", node("g9", "e9", "QUEUED")).await;
    let ev = recv(&mut ws).await;
    assert_eq!(ev["channel"], ch_exec.as_str());
    assert_eq!(ev["data"]["node_exec_id"], "ne9");

    // unsubscribe both: nothing arrives any more; the channels are dropped
    for data in [json!({"graph_id": "g1"}), json!({"graph_exec_id": "e9"})] {
        send(&mut ws, json!({"method": "unsubscribe", "data": data})).await;
        let a = recv(&mut ws).await;
        assert_eq!(a["method"], "unsubscribe");
        assert_eq!(a["success"], true);
    }
    assert_eq!(srv.state.hub.channel_count(), 0);
    put_node(&srv, "ne1", node("g1", "e1", "COMPLETED")).await;
    put_node(&srv, "ne9", node("g9", "e9", "COMPLETED")).await;
    // a sentinel on a fresh channel proves nothing else was queued before it
    send(
        &mut ws,
        json!({"method": "subscribe", "data": {"graph_id": "g5"}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["method"], "subscribe");
    put_node(&srv, "ne5", node("g5", "e5", "QUEUED")).await;
    let ev = recv(&mut ws).await;
    assert_eq!(ev["data"]["node_exec_id"], "ne5", "{ev}");

    // bad messages
    for bad in [
        json!({"method": "subscribe", "data": {}}),
        json!({"method": "x"}),
        json!([1]),
    ] {
        send(&mut ws, bad).await;
        let e = recv(&mut ws).await;
        assert_eq!(e["method"], "error");
        assert_eq!(e["success"], false);
        assert!(e["error"].is_string());
    }
    ws.send(Message::Text("{".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await["method"], "error");
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let srv = TestServer::start().await;
    let mut ws = connect(&srv.ws_url("/ws/executions")).await;
    send(&mut ws, json!({"method": "heartbeat"})).await;
    assert_eq!(recv(&mut ws).await["data"], "pong");
    srv.stop().await;
    let mut code = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        if let Message::Close(c) = m {
            code = c.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(1001));
}
