//! Node executions (SQL + HTTP), retention pruning and the hub's fan-out
//! rules. The relay's read is in feed_relay.rs. The WebSocket protocols against a
//! running server are in feed_ws.rs.

use crate::support::{column, error_code, TestApp, TestDb};
use agentplane::db::feed::StoredEvent;
use agentplane::feed::{Event, Filter, Hub, Interest};
use serde_json::{json, Value};
use std::sync::Arc;

fn node(graph: &str, exec: &str, status: &str) -> Value {
    json!({
        "graphId": graph, "graphVersion": 3, "graphExecId": exec, "nodeId": "n1",
        "blockId": "b1", "status": status, "inputData": {"x": 1}, "outputData": {"y": [2]},
        "addTime": "2026-01-02T03:04:05Z"
    })
}

async fn event_count(app: &TestApp, ty: &str) -> i64 {
    let c = app.db.client().await;
    c.query_one("SELECT count(*) FROM feed.events WHERE type = $1", &[&ty])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn node_execution_upsert_list_and_event() {
    let app = TestApp::new().await;
    let (s, b) = app
        .put("/api/v1/executions/nodes/ne1", node("g1", "e1", "QUEUED"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["nodeExecId"], "ne1");
    assert_eq!(b["graphVersion"], 3);
    assert_eq!(b["status"], "QUEUED");
    assert_eq!(b["inputData"], json!({"x": 1}));
    assert_eq!(b["queueTime"], Value::Null);
    assert!(b["addTime"]
        .as_str()
        .unwrap()
        .starts_with("2026-01-02T03:04:05"));

    // the same PUT again changes nothing and emits nothing
    let (s, _) = app
        .put("/api/v1/executions/nodes/ne1", node("g1", "e1", "QUEUED"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(event_count(&app, "execution_event").await, 1);

    let mut running = node("g1", "e1", "RUNNING");
    running["startTime"] = json!("2026-01-02T03:04:06Z");
    let (s, b) = app.put("/api/v1/executions/nodes/ne1", running).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "RUNNING");
    assert_eq!(event_count(&app, "execution_event").await, 2);

    // the event: subject columns and the snake_case data
    let c = app.db.client().await;
    let row = c
        .query_one(
            "SELECT graph_id, graph_exec_id, body FROM feed.events
              WHERE type = 'execution_event' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "g1");
    assert_eq!(row.get::<_, String>(1), "e1");
    let body: Value = row.get(2);
    assert_eq!(body["graphId"], "g1");
    assert_eq!(body["graphExecId"], "e1");
    let data = &body["data"];
    for k in [
        "graph_id",
        "graph_version",
        "graph_exec_id",
        "node_exec_id",
        "node_id",
        "block_id",
        "status",
        "input_data",
        "output_data",
        "add_time",
        "queue_time",
        "start_time",
        "end_time",
    ] {
        assert!(data.get(k).is_some(), "{k} missing in {data}");
    }
    assert_eq!(data["status"], "RUNNING");
    assert_eq!(data["node_exec_id"], "ne1");
    assert!(data["start_time"]
        .as_str()
        .unwrap()
        .starts_with("2026-01-02T03:04:06"));

    let (s, _) = app
        .put(
            "/api/v1/executions/nodes/ne0",
            node("g1", "e1", "COMPLETED"),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = app.get("/api/v1/executions/e1/nodes").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["count"], 2);
    assert_eq!(b["nodes"].as_array().unwrap().len(), 2);
    let (s, b) = app.get("/api/v1/executions/unknown/nodes").await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"nodes": [], "count": 0}));
}

#[tokio::test]
async fn node_execution_bad_input_and_roles() {
    let app = TestApp::new().await;
    let mut bad_status = node("g1", "e1", "DONE");
    let (s, b) = app
        .put("/api/v1/executions/nodes/ne1", bad_status.clone())
        .await;
    assert_eq!(s, 400, "{b}");
    error_code(&b);
    bad_status["status"] = json!("QUEUED");
    bad_status["graphId"] = json!("bad id!");
    let (s, _) = app.put("/api/v1/executions/nodes/ne1", bad_status).await;
    assert_eq!(s, 400);
    let (s, _) = app
        .put(
            "/api/v1/executions/nodes/bad%20id",
            node("g1", "e1", "QUEUED"),
        )
        .await;
    assert_eq!(s, 400);
    let mut no_time = node("g1", "e1", "QUEUED");
    no_time.as_object_mut().unwrap().remove("addTime");
    let (s, _) = app.put("/api/v1/executions/nodes/ne1", no_time).await;
    assert_eq!(s, 400);
    let mut neg = node("g1", "e1", "QUEUED");
    neg["graphVersion"] = json!(-1);
    let (s, _) = app.put("/api/v1/executions/nodes/ne1", neg).await;
    assert_eq!(s, 400);
    assert_eq!(event_count(&app, "execution_event").await, 0);

    let reader = app.key("reader", None).await;
    let body = node("g1", "e1", "QUEUED");
    let (s, b) = app
        .call(
            "PUT",
            "/api/v1/executions/nodes/ne1",
            Some(&reader),
            Some(&body),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    let (s, _) = app
        .call("GET", "/api/v1/executions/e1/nodes", Some(&reader), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .call("GET", "/api/v1/executions/e1/nodes", None, None)
        .await;
    assert_eq!(s, 401);

    // identity is fixed once created
    let (s, _) = app
        .put("/api/v1/executions/nodes/ne1", node("g1", "e1", "QUEUED"))
        .await;
    assert_eq!(s, 200);
    let (s, b) = app
        .put("/api/v1/executions/nodes/ne1", node("g2", "e1", "RUNNING"))
        .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(error_code(&b), "execution_mismatch");
    assert_eq!(event_count(&app, "execution_event").await, 1);
}

#[tokio::test]
async fn retention_prunes_in_batches_and_keeps_fresh_events() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT feed.emit('old', '{}') FROM generate_series(1, 25);
         UPDATE feed.events SET created_at = now() - interval '8 days';
         SELECT feed.emit('fresh', '{}') FROM generate_series(1, 5);",
    )
    .await
    .unwrap();
    let n: i32 = c
        .query_one("SELECT feed.prune(interval '7 days', 10)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10);
    let pool = db.pool();
    let rest =
        agentplane::feed::retention::prune_all(&pool, std::time::Duration::from_secs(7 * 86_400))
            .await
            .unwrap();
    assert_eq!(rest, 15);
    let left: Vec<String> = column(&c, "SELECT type FROM feed.events ORDER BY id").await;
    assert_eq!(left, vec!["fresh"; 5]);
}

fn ev(id: i64, ty: &str, user: Option<&str>, agents: &[&str], graph: Option<&str>) -> Arc<Event> {
    Event::new(StoredEvent {
        id,
        ty: ty.into(),
        user_id: user.map(Into::into),
        agents: agents.iter().map(|a| a.to_string()).collect(),
        thread_id: None,
        payload_type: None,
        graph_id: graph.map(Into::into),
        graph_exec_id: graph.map(|g| format!("{g}-exec")),
        body: json!({"data": {"n": id}}),
        created_at: "2026-01-01T00:00:00.000000Z".into(),
    })
}

#[tokio::test]
async fn hub_filters_bounds_and_channels() {
    let hub = Hub::new(4, 100);
    hub.start_at(0);
    let mut fast = hub.register(hub.try_connect().unwrap(), None);
    let slow = hub.register(hub.try_connect().unwrap(), None);
    let mut bound = hub.register(hub.try_connect().unwrap(), Some("u1".into()));
    let mut agent_a = hub.register(hub.try_connect().unwrap(), None);
    let mut exec = hub.register(hub.try_connect().unwrap(), None);
    let all = Interest::Filter(Filter::default());
    hub.set_interest(&fast, all.clone());
    hub.set_interest(&slow, all.clone());
    hub.set_interest(&bound, all);
    hub.set_interest(
        &agent_a,
        Interest::Filter(Filter {
            agents: vec!["a".into()],
            ..Filter::default()
        }),
    );
    hub.set_interest(&exec, Interest::Channels(["graph#g1".to_string()].into()));
    assert_eq!(hub.channel_count(), 1);

    let mut received = Vec::new();
    for i in 1..=10 {
        let user = if i % 2 == 0 { Some("u1") } else { Some("u2") };
        let agents: &[&str] = if i == 3 { &["a", "b"] } else { &["b"] };
        let graph = if i == 5 { Some("g1") } else { Some("g2") };
        let ty = if i == 5 || i == 6 {
            "execution_event"
        } else {
            "credits.changed"
        };
        hub.publish(&[ev(i, ty, user, agents, graph)]);
        while let Ok(e) = fast.rx.try_recv() {
            received.push(e.stored.id);
        }
    }
    // the fast one got everything; the slow one (queue 4) was dropped and kicked
    assert_eq!(received, (1..=10).collect::<Vec<_>>());
    assert!(slow.kicked.is_set());
    assert!(!fast.kicked.is_set());
    // a key bound to u1 sees no u2 event
    let mut b = Vec::new();
    while let Ok(e) = bound.rx.try_recv() {
        b.push(e.stored.id);
    }
    assert_eq!(b, vec![2, 4, 6, 8]); // then it overflowed too (queue 4, 5 matching events)
    assert!(bound.kicked.is_set());
    let mut a = Vec::new();
    while let Ok(e) = agent_a.rx.try_recv() {
        a.push(e.stored.id);
    }
    assert_eq!(a, vec![3]);
    let mut x = Vec::new();
    while let Ok(e) = exec.rx.try_recv() {
        x.push(e.stored.id);
    }
    assert_eq!(x, vec![5]);
    // a channel with no subscribers left is dropped
    hub.set_interest(&exec, Interest::Nothing);
    assert_eq!(hub.channel_count(), 0);
    drop(exec);
    assert_eq!(hub.last_id(), Some(10));
    // republishing old ids is a no-op
    hub.publish(&[ev(3, "x", None, &[], None)]);
    assert!(fast.rx.try_recv().is_err());
}

#[tokio::test]
async fn an_idle_hub_skips_ahead_and_a_registered_connection_stops_it() {
    let hub = Hub::new(4, 100);
    hub.start_at(5);
    assert!(hub.is_idle());
    // nobody registered: the relay may move the watermark without events
    assert!(hub.skip_while_idle(9));
    assert_eq!(hub.last_id(), Some(9));
    assert_eq!(hub.watermark().await, 9);
    // never backwards
    assert!(hub.skip_while_idle(7));
    assert_eq!(hub.last_id(), Some(9));
    // a registered connection (even with no interest yet) must get events
    let mut sub = hub.register(hub.try_connect().unwrap(), None);
    assert!(!hub.is_idle());
    assert!(!hub.skip_while_idle(20));
    assert_eq!(hub.last_id(), Some(9));
    // it subscribes from 9 on, and event 10 reaches it
    assert_eq!(
        hub.set_interest(&sub, Interest::Filter(Filter::default())),
        9
    );
    hub.publish(&[ev(10, "credits.changed", None, &[], None)]);
    assert_eq!(sub.rx.try_recv().map(|e| e.stored.id).ok(), Some(10));
    drop(sub);
    assert!(hub.is_idle());
    assert!(hub.skip_while_idle(12));
    assert_eq!(hub.last_id(), Some(12));
}

#[tokio::test]
async fn hub_connection_limit() {
    let hub = Hub::new(4, 2);
    let a = hub.try_connect();
    let b = hub.try_connect();
    assert!(a.is_some() && b.is_some());
    assert!(hub.try_connect().is_none());
    drop(a);
    assert!(hub.try_connect().is_some());
}

#[test]
fn feed_config_defaults_and_errors() {
    use agentplane::config::Config;
    let get = |vars: &'static [(&'static str, &'static str)]| {
        Config::from_lookup(move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    };
    let c = get(&[]).unwrap();
    assert_eq!(c.poll_interval.as_millis(), 10);
    assert_eq!(c.ws_max_connections, 10_000);
    assert_eq!(c.ws_queue, 1024);
    assert_eq!(c.ws_max_command_bytes, 65_536);
    assert_eq!(c.ws_idle_timeout.as_secs(), 60);
    let c = get(&[
        ("AGENTPLANE_POLL_MS", "25"),
        ("AGENTPLANE_WS_MAX_CONNECTIONS", "5"),
        ("AGENTPLANE_WS_QUEUE", "7"),
        ("AGENTPLANE_WS_MAX_COMMAND_BYTES", "100"),
        ("AGENTPLANE_WS_IDLE_TIMEOUT", "2m"),
    ])
    .unwrap();
    assert_eq!(c.poll_interval.as_millis(), 25);
    assert_eq!(c.ws_max_connections, 5);
    assert_eq!(c.ws_queue, 7);
    assert_eq!(c.ws_max_command_bytes, 100);
    assert_eq!(c.ws_idle_timeout.as_secs(), 120);
    for (var, bad) in [
        ("AGENTPLANE_POLL_MS", "0"),
        ("AGENTPLANE_POLL_MS", "fast"),
        ("AGENTPLANE_WS_QUEUE", "-1"),
        ("AGENTPLANE_WS_MAX_CONNECTIONS", "0"),
        ("AGENTPLANE_WS_IDLE_TIMEOUT", "soon"),
    ] {
        let vars: &'static [(&'static str, &'static str)] = Box::leak(Box::new([(var, bad)]));
        let e = get(vars).unwrap_err();
        assert_eq!(e.var, var);
    }
}
