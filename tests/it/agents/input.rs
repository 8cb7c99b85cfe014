//! Bad input is a 4xx and writes nothing; the config rules and the agent
//! lookup shared with variants.

use super::*;

#[tokio::test]
async fn bad_input_is_4xx_and_writes_nothing() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let (_, _) = inject(
        &app,
        json!({"to": "greeter", "payload": {}, "threadId": "t1"}),
    )
    .await;
    let before = counts(&app).await;
    let big = "x".repeat(100_001);
    let cases: Vec<(&str, String, Value)> = vec![
        ("PUT", "/api/v1/agents/bad%20name".into(), json!({})),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"temperature": 2.5}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"temperature": -0.1}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"maxTokens": 0}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"maxRetries": 11}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"timeoutSeconds": 0}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"maxTokens": 3_000_000_000i64}}),
        ),
        ("PUT", "/api/v1/agents/a".into(), json!({"config": "nope"})),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"peers": ["ok", "not ok"]}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"peers": "shouter"}),
        ),
        ("PUT", "/api/v1/agents/a".into(), json!({"isAgent": "yes"})),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"description": big}),
        ),
        ("PUT", "/api/v1/agents/a".into(), json!([1, 2])),
        (
            "PUT",
            "/api/v1/agents/greeter/state".into(),
            json!({"state": "sleeping"}),
        ),
        (
            "PUT",
            "/api/v1/agents/greeter/state".into(),
            json!({"state": "idle", "currentThread": "a b"}),
        ),
        ("PUT", "/api/v1/agents/greeter/state".into(), json!({})),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": [1]}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": "text"}),
        ),
        ("POST", "/api/v1/inject".into(), json!({"to": "greeter"})),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": {}, "threadId": "bad id"}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": {}, "threadId": ""}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": {}, "from": "a b"}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": {}, "payloadType": "x y"}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "", "payload": {}}),
        ),
        (
            "POST",
            "/api/v1/messages".into(),
            json!({"threadId": "t1", "from": "greeter", "to": "shouter", "payload": {}}),
        ),
        (
            "POST",
            "/api/v1/messages".into(),
            json!({"threadId": "t1", "from": "greeter", "to": "shouter", "payloadType": "X", "payload": 3}),
        ),
        (
            "POST",
            "/api/v1/agents/greeter/inbox/claim".into(),
            json!({"max": 0}),
        ),
        (
            "POST",
            "/api/v1/agents/greeter/inbox/claim".into(),
            json!({"max": 101}),
        ),
        (
            "POST",
            "/api/v1/agents/greeter/inbox/claim".into(),
            json!({"visibilitySeconds": 0}),
        ),
        (
            "POST",
            "/api/v1/agents/greeter/inbox/claim".into(),
            json!({"max": "ten"}),
        ),
        (
            "POST",
            "/api/v1/threads/t1/complete".into(),
            json!({"status": "active"}),
        ),
        ("POST", "/api/v1/threads/t1/complete".into(), json!({})),
        ("GET", "/api/v1/threads?limit=0".into(), Value::Null),
        ("GET", "/api/v1/threads?limit=101".into(), Value::Null),
        ("GET", "/api/v1/threads?offset=-1".into(), Value::Null),
        ("GET", "/api/v1/threads?status=ACTIVE".into(), Value::Null),
        ("GET", "/api/v1/messages?limit=abc".into(), Value::Null),
        (
            "GET",
            "/api/v1/threads/t1/messages?limit=1000".into(),
            Value::Null,
        ),
    ];
    for (method, path, body) in &cases {
        let b = if body.is_null() { None } else { Some(body) };
        let (s, resp) = app
            .call(method, path, Some(crate::support::ADMIN_KEY), b)
            .await;
        assert_eq!(s, 400, "{method} {path} {body}: {resp}");
        error_code(&resp);
    }
    // malformed JSON
    let resp = app
        .client
        .post("/api/v1/inject")
        .header(
            "Authorization",
            format!("Bearer {}", crate::support::ADMIN_KEY),
        )
        .content_type("application/json")
        .body("{\"to\": ")
        .send()
        .await;
    assert_eq!(resp.0.status().as_u16(), 400);
    assert_eq!(counts(&app).await, before, "nothing written");

    // the SQL functions refuse bad input on their own too
    let c = app.db.client().await;
    for sql in [
        "SELECT agents.register('bad name', '{}')",
        "SELECT agents.register('a', '{\"config\": {\"temperature\": 9}}')",
        "SELECT agents.inject('greeter', '[1]')",
        "SELECT agents.claim('greeter', 0, 10)",
        "SELECT agents.list_threads('bogus', NULL, 10, 0)",
        "SELECT agents.report_state('greeter', 'sleeping')",
    ] {
        let err = c.query_one(sql, &[]).await.unwrap_err();
        let mapped = db::DbError::from(err).mapped();
        assert_eq!(mapped.status, 400, "{sql}: {mapped:?}");
    }
    assert_eq!(counts(&app).await, before, "nothing written");
}

/// The AgentConfig rules have one home in SQL: `agents.register` called
/// directly refuses a bad config with the same 400 (code and details) as the
/// variants functions, and writes nothing.
#[tokio::test]
async fn register_and_variants_share_the_config_rules() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let c = app.db.client().await;
    let before = counts(&app).await;
    let config_sql = "SELECT agents.get_config('greeter')::text";
    let was: String = c.query_one(config_sql, &[]).await.unwrap().get(0);
    let code = |err: tokio_postgres::Error| {
        let m = db::DbError::from(err).mapped();
        (m.status, m.code, m.details)
    };
    for (field, value) in [
        ("temperature", json!(2.5)),
        ("temperature", json!(-0.1)),
        ("maxTokens", json!(0)),
        ("maxTokens", json!(1.5)),
        ("maxTokens", json!("512")),
        ("contextWindow", json!(-1)),
        ("inputTokenLimit", json!(2_147_483_648_i64)),
        ("tokenBudget", json!(-1)),
        ("timeoutSeconds", json!(0)),
        ("maxRetries", json!(11)),
        ("systemPrompt", json!(7)),
        ("modelName", json!("x".repeat(100_001))),
        ("notAConfigField", json!(1)),
    ] {
        let mut create = json!({ "name": "v" });
        create[field] = value.clone();
        let want = code(
            c.query_one("SELECT variants.create('greeter', $1)", &[&create])
                .await
                .unwrap_err(),
        );
        assert_eq!(want.0, 400, "{field}: {want:?}");
        let body = json!({ "config": { field: value } });
        for agent in ["greeter", "newcomer"] {
            let got = code(
                c.query_one("SELECT agents.register($1, $2)", &[&agent, &body])
                    .await
                    .unwrap_err(),
            );
            assert_eq!(got, want, "{agent} {field}={value}");
        }
    }
    let now: String = c.query_one(config_sql, &[]).await.unwrap().get(0);
    assert_eq!(now, was, "the agent's config is unchanged");
    assert_eq!(counts(&app).await, before, "nothing written");

    // a good config is stored normalised (integers as integers), and null or
    // missing fields are cleared
    let v = c
        .query_one(
            "SELECT agents.get_config(agents.register('greeter', $1) ->> 'name') -> 'config'",
            &[&json!({"config": {"maxTokens": 100.0, "temperature": 1, "modelName": null}})],
        )
        .await
        .unwrap()
        .get::<_, Value>(0);
    assert_eq!(v["maxTokens"], json!(100));
    assert_eq!(v["temperature"].as_f64(), Some(1.0));
    assert_eq!(v["modelName"], Value::Null);
    assert_eq!(v["systemPrompt"], Value::Null);
}

/// Variants name their agent the way `agents.must_get` does: an unknown or
/// malformed agent name is a 404 agent_not_found from every variants function.
#[tokio::test]
async fn variants_find_their_agent_like_agents_must_get() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let c = app.db.client().await;
    for name in ["nobody", "bad name", ""] {
        let want = db::DbError::from(
            c.query_one("SELECT agents.get($1)", &[&name])
                .await
                .unwrap_err(),
        )
        .mapped();
        assert_eq!((want.status, want.code.as_str()), (404, "agent_not_found"));
        for sql in [
            "SELECT variants.list($1)",
            "SELECT variants.create($1, '{\"name\": \"v\"}')",
            "SELECT variants.clone($1, NULL, 'v', NULL, '{}')",
            "SELECT variants.get($1, 'v')",
            "SELECT variants.patch($1, 'v', '{}')",
            "SELECT variants.delete($1, 'v')",
            "SELECT variants.activate($1, 'v')",
            "SELECT variants.deactivate($1)",
            "SELECT variants.resolved_config($1)",
            "SELECT variants.metrics($1, 'v', NULL, NULL)",
            "SELECT variants.compare($1, NULL, NULL)",
        ] {
            let got = db::DbError::from(c.query_one(sql, &[&name]).await.unwrap_err()).mapped();
            assert_eq!(got, want, "{sql} with {name:?}");
        }
    }
}
