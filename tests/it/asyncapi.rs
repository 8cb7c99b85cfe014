//! The AsyncAPI document: committed = generated, served as committed, and a
//! walk through the three WebSocket protocols that produces every message
//! the document lists for them. Each frame is validated by support::ws::recv
//! (support/asyncapi.rs); each command sent here is first checked against
//! what the document says the server reads.

use crate::support::asyncapi::{check_received, sent_messages};
use crate::support::ws::{connect, recv_named, send, Ws};
use crate::support::{TestDb, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[test]
fn committed_asyncapi_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/openapi/asyncapi.json"
    ))
    .expect("openapi/asyncapi.json is missing: run `cargo run -- asyncapi --write`");
    assert!(
        committed == agentplane::asyncapi::asyncapi_json(),
        "openapi/asyncapi.json is stale: run `cargo run -- asyncapi --write` and commit it"
    );
}

#[test]
fn connected_organism_is_the_http_organism() {
    let doc: Value = serde_json::from_str(&agentplane::asyncapi::asyncapi_json()).expect("json");
    let spec: Value = serde_json::from_str(&agentplane::api::spec_json()).expect("json");
    let organism = &doc["components"]["schemas"]["WsConnected"]["properties"]["organism"];
    assert_eq!(organism["$ref"], "#/components/schemas/Organism");
    let http =
        agentplane::api::json_schema::from_openapi(&spec["components"]["schemas"]["Organism"]);
    assert_eq!(doc["components"]["schemas"]["Organism"], http);
}

/// What a walk saw on one channel.
struct Walk {
    address: &'static str,
    ws: Ws,
    /// Names of the documented messages received.
    seen: BTreeSet<String>,
    /// `event`/`method` values received.
    kinds: BTreeSet<String>,
}

impl Walk {
    async fn open(srv: &TestServer, address: &'static str) -> Walk {
        Walk {
            address,
            ws: connect(&srv.ws_url(address)).await,
            seen: BTreeSet::new(),
            kinds: BTreeSet::new(),
        }
    }

    async fn recv(&mut self) -> Value {
        let (v, name) = recv_named(&mut self.ws).await;
        self.seen.insert(name.expect("a support::ws socket"));
        for key in ["event", "method"] {
            if let Some(k) = v[key].as_str() {
                self.kinds.insert(k.to_string());
            }
        }
        v
    }

    /// Sends a documented command and returns the next frame.
    async fn command(&mut self, cmd: Value) -> Value {
        check_received(self.address, &cmd);
        send(&mut self.ws, cmd).await;
        self.recv().await
    }

    /// Reads frames until one with `event` or `method` = `kind` has
    /// arrived (now or before).
    async fn until(&mut self, kind: &str) {
        while !self.kinds.contains(kind) {
            self.recv().await;
        }
    }

    fn assert_complete(&self) {
        let all: BTreeSet<String> = sent_messages(self.address).into_iter().collect();
        let missing: Vec<_> = all.difference(&self.seen).collect();
        assert!(
            missing.is_empty(),
            "{}: never received {missing:?}",
            self.address
        );
    }
}

fn node(status: &str) -> Value {
    json!({
        "graphId": "g1", "graphVersion": 1, "graphExecId": "ge1", "nodeId": "n1",
        "blockId": "b1", "status": status, "inputData": {"in": 1}, "outputData": {},
        "addTime": "2026-01-02T03:04:05Z"
    })
}

#[tokio::test]
async fn every_documented_message_is_sent_as_documented() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute("SELECT agents.register('echo', '{\"description\": \"echoes\"}');")
        .await
        .expect("agent");
    let srv = TestServer::on(db, |_| {}).await;

    let mut control = Walk::open(&srv, "/ws").await;
    assert_eq!(control.recv().await["event"], "connected");
    assert_eq!(
        control
            .command(json!({"cmd": "subscribe", "since": 0}))
            .await["event"],
        "subscribed"
    );
    let mut messages = Walk::open(&srv, "/ws/messages").await;
    let ack = messages
        .command(json!({"cmd": "subscribe", "filter": {"agents": ["echo"]}}))
        .await;
    assert_eq!(ack["event"], "subscribed");
    let mut execs = Walk::open(&srv, "/ws/executions").await;
    let ack = execs
        .command(json!({"method": "subscribe", "data": {"graph_id": "g1"}}))
        .await;
    assert_eq!(ack["channel"], "graph#g1");

    // Events of every shape: message and thread_updated (an inject),
    // agent_state, a data event (a top-up) and a node execution.
    let inject =
        json!({"cmd": "inject", "to": "echo", "payload": {"text": "hi"}, "thread_id": "t-1"});
    check_received("/ws", &inject);
    send(&mut control.ws, inject).await;
    // (Events replayed since 0 may come first.)
    control.until("injected").await;
    let (status, body) = srv
        .put(
            "/api/v1/agents/echo/state",
            json!({"state": "processing", "currentThread": "t-1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = srv
        .post("/api/v1/users/u1/credits/top-up", json!({"amount": 5}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = srv
        .put("/api/v1/executions/nodes/ne1", node("RUNNING"))
        .await;
    assert_eq!(status, 200, "{body}");
    for ty in [
        "message",
        "thread_updated",
        "agent_state",
        "credits.changed",
        "execution_event",
    ] {
        control.until(ty).await;
    }
    let m = messages.recv().await;
    assert_eq!(m["to"], "echo", "{m}");
    execs.until("execution_event").await;

    // The remaining answers of each protocol.
    assert_eq!(
        control.command(json!({"cmd": "ping"})).await["event"],
        "pong"
    );
    assert_eq!(
        control.command(json!({"cmd": "unsubscribe"})).await["event"],
        "unsubscribed"
    );
    send(&mut control.ws, json!({"cmd": "nope"})).await;
    assert_eq!(control.recv().await["event"], "error");
    assert_eq!(
        messages.command(json!({"cmd": "ping"})).await["event"],
        "pong"
    );
    assert_eq!(
        messages.command(json!({"cmd": "unsubscribe"})).await["event"],
        "unsubscribed"
    );
    send(&mut messages.ws, json!({"cmd": "nope"})).await;
    assert_eq!(messages.recv().await["event"], "error");
    assert_eq!(
        execs.command(json!({"method": "heartbeat"})).await["data"],
        "pong"
    );
    let ack = execs
        .command(json!({"method": "unsubscribe", "data": {"graph_id": "g1"}}))
        .await;
    assert_eq!(ack["method"], "unsubscribe");
    send(&mut execs.ws, json!({"method": "nope"})).await;
    assert_eq!(execs.recv().await["method"], "error");

    control.assert_complete();
    messages.assert_complete();
    execs.assert_complete();
}

#[tokio::test]
async fn the_documents_are_served_as_committed() {
    let srv = TestServer::start().await;
    let (status, served) = srv.get("/asyncapi.json").await;
    assert_eq!(status, 200);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/openapi/asyncapi.json"
        ))
        .expect("asyncapi.json"),
    )
    .expect("json");
    assert_eq!(served, committed);
    // The Swagger UI embeds exactly the document /openapi.json serves.
    let html = reqwest::get(srv.http_url("/docs/"))
        .await
        .expect("docs")
        .text()
        .await
        .expect("text");
    assert!(
        html.contains(&agentplane::api::spec_json()),
        "/docs shows another spec"
    );
}
