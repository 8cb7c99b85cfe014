//! The registry: agents and capabilities, state reports, removal, names in
//! paths, roles.

use super::*;

#[tokio::test]
async fn registry_capabilities_and_organism_counts() {
    let app = TestApp::new().await;
    register_pair(&app).await;

    let (s, b) = app.get("/api/v1/organism").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["agentCount"], 2);
    assert_eq!(b["name"], "agentplane");
    assert_eq!(b["status"], "running");
    assert_eq!(b["identityConfigured"], true);
    assert_eq!(b["activeThreads"], 0);
    assert_eq!(b["totalMessages"], 0);

    let (s, g) = app.get("/api/v1/agents/greeter").await;
    assert_eq!(s, 200);
    assert_eq!(g["name"], "greeter");
    assert_eq!(g["description"], "Greets people");
    assert_eq!(g["isAgent"], true);
    assert_eq!(g["peers"], json!(["shouter"]));
    assert_eq!(g["payloadClass"], "GreetingPayload");
    assert_eq!(g["state"], "idle");
    assert_eq!(g["currentThread"], Value::Null);
    assert_eq!(g["queueDepth"], 0);
    assert_eq!(g["messageCount"], 0);
    assert!(g["lastActivity"].is_string());

    let (s, c) = app.get("/api/v1/agents/greeter/config").await;
    assert_eq!(s, 200);
    assert_eq!(c["name"], "greeter");
    assert_eq!(c["peers"], json!(["shouter"]));
    assert_eq!(c["payloadClass"], "GreetingPayload");
    let cfg = &c["config"];
    assert_eq!(cfg["modelProvider"], "xai");
    assert_eq!(cfg["modelName"], "grok-4.1");
    assert_eq!(cfg["systemPrompt"], "You greet.");
    assert_eq!(cfg["temperature"], 0.7);
    assert_eq!(cfg["maxTokens"], 512);
    assert_eq!(cfg["timeoutSeconds"], 30);
    assert_eq!(cfg["maxRetries"], 3);
    assert_eq!(cfg["contextWindow"], Value::Null);
    assert!(cfg.as_object().unwrap().contains_key("userPromptTemplate"));

    // re-registering without config keeps the config; with one replaces it
    let (s, _) = app
        .put(
            "/api/v1/agents/greeter",
            json!({"description": "Greets", "isAgent": true, "peers": ["shouter"], "payloadClass": "GreetingPayload",
                   "rootTag": "greeting", "schemaXsd": "<xs:schema/>", "exampleXml": "<greeting>hi</greeting>"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, c) = app.get("/api/v1/agents/greeter/config").await;
    assert_eq!(c["description"], "Greets");
    assert_eq!(c["config"]["modelName"], "grok-4.1");

    // capabilities: sorted by name, whatever the registration order
    let (s, _) = app
        .put("/api/v1/agents/aardvark", json!({"description": "first"}))
        .await;
    assert_eq!(s, 200);
    let (s, caps) = app.get("/api/v1/capabilities").await;
    assert_eq!(s, 200);
    assert_eq!(caps["count"], 3);
    let names: Vec<&str> = caps["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aardvark", "greeter", "shouter"]);
    let greeter = &caps["capabilities"][1];
    assert_eq!(greeter["rootTag"], "greeting");
    assert_eq!(greeter["peers"], json!(["shouter"]));
    assert_eq!(greeter["isAgent"], true);

    let (s, d) = app.get("/api/v1/capabilities/greeter").await;
    assert_eq!(s, 200);
    assert_eq!(d["payloadClass"], "GreetingPayload");
    assert_eq!(d["schemaXsd"], "<xs:schema/>");
    assert_eq!(d["exampleXml"], "<greeting>hi</greeting>");
    let (s, d) = app.get("/api/v1/capabilities/shouter").await;
    assert_eq!(s, 200);
    assert_eq!(d["isAgent"], false);
    let obj = d.as_object().unwrap();
    assert!(obj.contains_key("exampleXml") && d["exampleXml"].is_null());

    let (s, list) = app.get("/api/v1/agents").await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 3);
    assert_eq!(list["agents"][0]["name"], "aardvark");

    // unknown names → 404
    for path in [
        "/api/v1/agents/nobody",
        "/api/v1/agents/nobody/config",
        "/api/v1/capabilities/nobody",
    ] {
        let (s, b) = app.get(path).await;
        assert_eq!((s, error_code(&b)), (404, "agent_not_found"), "{path}");
    }
    for path in [
        "/api/v1/agents/nobody/pause",
        "/api/v1/agents/nobody/resume",
    ] {
        let (s, _) = app.post(path, json!({})).await;
        assert_eq!(s, 404, "{path}");
    }
    let (s, _) = app
        .put("/api/v1/agents/nobody/state", json!({"state": "idle"}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = app.delete("/api/v1/agents/nobody").await;
    assert_eq!(s, 404);

    // registrations wrote agent_state events
    let ev = events(&app, "agent_state").await;
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[0]["body"]["agent"], "greeter");
    assert_eq!(ev[0]["body"]["state"], "idle");
    assert_eq!(ev[0]["agents"], json!(["greeter"]));
}

#[tokio::test]
async fn state_reports_and_agent_removal() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let (s, b) = app
        .put(
            "/api/v1/agents/greeter/state",
            json!({"state": "processing", "currentThread": "t-1"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "processing");
    assert_eq!(b["currentThread"], "t-1");
    let ev = events(&app, "agent_state").await;
    let last = &ev.last().unwrap()["body"];
    assert_eq!(
        *last,
        json!({"agent": "greeter", "state": "processing", "currentThread": "t-1"})
    );

    // a message to greeter sits in its inbox; removing greeter drops the
    // inbox but keeps the history
    let (s, inj) = inject(&app, json!({"to": "greeter", "payload": {"x": 1}})).await;
    assert_eq!(s, 200);
    let (s, b) = app.delete("/api/v1/agents/greeter").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({"success": true, "name": "greeter"}));
    let (s, _) = app.get("/api/v1/agents/greeter").await;
    assert_eq!(s, 404);
    let c = app.db.client().await;
    let inbox: i64 = c
        .query_one("SELECT count(*) FROM agents.inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(inbox, 0);
    let (s, m) = app
        .get(&format!(
            "/api/v1/threads/{}/messages",
            inj["threadId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(m["total"], 1);
    let removed = events(&app, "agent_removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["body"]["agent"], "greeter");
}

#[tokio::test]
async fn roles() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let reader = app.key("reader", None).await;
    let service = app.key("service", None).await;
    let before = counts(&app).await;
    let body = json!({"to": "greeter", "payload": {}});
    let (s, _) = app
        .call("POST", "/api/v1/inject", Some(&reader), Some(&body))
        .await;
    assert_eq!(s, 403, "reader cannot inject");
    let (s, _) = app.call("POST", "/api/v1/inject", None, Some(&body)).await;
    assert_eq!(s, 401);
    for (method, path, b) in [
        ("PUT", "/api/v1/agents/x", json!({})),
        ("DELETE", "/api/v1/agents/greeter", Value::Null),
        (
            "PUT",
            "/api/v1/agents/greeter/state",
            json!({"state": "idle"}),
        ),
        ("POST", "/api/v1/agents/greeter/pause", json!({})),
        ("POST", "/api/v1/agents/greeter/inbox/claim", json!({})),
        ("POST", "/api/v1/organism/start", json!({})),
    ] {
        let b = if b.is_null() { None } else { Some(&b) };
        let (s, _) = app.call(method, path, Some(&reader), b).await;
        assert_eq!(s, 403, "{method} {path}");
    }
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/organism/start",
            Some(&service),
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(counts(&app).await, before);
    for path in [
        "/api/v1/agents",
        "/api/v1/agents/greeter",
        "/api/v1/agents/greeter/config",
        "/api/v1/capabilities",
        "/api/v1/threads",
        "/api/v1/messages",
        "/api/v1/organism",
        "/api/v1/organism/config",
    ] {
        let (s, b) = app.call("GET", path, Some(&reader), None).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let (s, b) = app
        .call("POST", "/api/v1/inject", Some(&service), Some(&body))
        .await;
    assert_eq!(s, 200, "service injects: {b}");
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/agents/greeter/inbox/claim",
            Some(&service),
            Some(&json!({"max": 5, "visibilitySeconds": 10})),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn names_with_slashes_are_percent_encoded_in_paths() {
    let app = TestApp::new().await;
    let (s, b) = app
        .put("/api/v1/agents/team%2Fgreeter", json!({"description": "d"}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["name"], "team/greeter");
    let (s, b) = app.get("/api/v1/agents/team%2Fgreeter").await;
    assert_eq!((s, b["name"].as_str()), (200, Some("team/greeter")));
    let (s, b) = inject(
        &app,
        json!({"to": "team/greeter", "payload": {}, "threadId": "a/b"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.get("/api/v1/threads/a%2Fb").await;
    assert_eq!((s, b["id"].as_str()), (200, Some("a/b")));
    let (s, b) = app.get("/api/v1/messages?agent=team%2Fgreeter").await;
    assert_eq!((s, b["total"].as_i64()), (200, Some(1)));
}
