//! The ground floor: configuration, migrations, auth, error bodies, the spec,
//! and the self-managed cluster.

use crate::support::{error_code, TestApp, TestDb, ADMIN_KEY};
use agentplane::config::Config;
use agentplane::db;
use serde_json::json;

fn config(vars: &[(&str, &str)]) -> Result<Config, agentplane::config::ConfigError> {
    Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
}

#[test]
fn config_defaults() {
    let c = config(&[]).unwrap();
    assert_eq!(c.database_url, None);
    assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(c.organism, "agentplane");
    assert_eq!(c.max_body_bytes, 1024 * 1024);
    assert_eq!(c.event_retention.as_secs(), 7 * 86_400);
    assert!(c.notify);
    assert_eq!(c.admin_key, None);
}

#[test]
fn config_values_and_errors() {
    let c = config(&[
        ("DATABASE_URL", "postgres://x@h/db"),
        ("AGENTPLANE_BIND", "0.0.0.0:9000"),
        ("AGENTPLANE_ORGANISM", "org1"),
        ("AGENTPLANE_MAX_BODY_BYTES", "2048"),
        ("AGENTPLANE_EVENT_RETENTION", "36h"),
        ("AGENTPLANE_ADMIN_KEY", "k"),
        ("AGENTPLANE_NOTIFY", "off"),
    ])
    .unwrap();
    assert_eq!(c.database_url.as_deref(), Some("postgres://x@h/db"));
    assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
    assert_eq!(c.organism, "org1");
    assert_eq!(c.max_body_bytes, 2048);
    assert_eq!(c.event_retention.as_secs(), 36 * 3600);
    assert_eq!(c.admin_key.as_deref(), Some("k"));
    assert!(!c.notify);
    assert_eq!(
        config(&[("AGENTPLANE_BIND", "9001")]).unwrap().bind.port(),
        9001
    );
    // empty values mean unset
    assert_eq!(
        config(&[("DATABASE_URL", "  ")]).unwrap().database_url,
        None
    );
    for (var, bad) in [
        ("AGENTPLANE_BIND", "nonsense:port"),
        ("AGENTPLANE_MAX_BODY_BYTES", "-1"),
        ("AGENTPLANE_MAX_BODY_BYTES", "0"),
        ("AGENTPLANE_EVENT_RETENTION", "7 weeks"),
        ("AGENTPLANE_EVENT_RETENTION", "0d"),
        ("AGENTPLANE_NOTIFY", "maybe"),
        ("AGENTPLANE_POOL_SIZE", "0"),
    ] {
        let err = config(&[(var, bad)]).unwrap_err();
        assert_eq!(err.var, var, "{bad}");
    }
}

async fn table_count(url: &str) -> i64 {
    let c = db::connect(url, "t").await.unwrap();
    c.query_one(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog','information_schema')",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::empty().await;
    db::migrate::run(&db.url).await.unwrap();
    let tables = table_count(&db.url).await;
    assert!(tables > 3);
    db::migrate::run(&db.url).await.unwrap();
    assert_eq!(table_count(&db.url).await, tables);
    let c = db.client().await;
    let applied: i64 = c
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count() as i64;
    assert_eq!(applied, files);
}

#[tokio::test]
async fn concurrent_migrations_queue_instead_of_racing() {
    let db = TestDb::empty().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { db::migrate::run(&url).await })
        })
        .collect();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    let c = db.client().await;
    let organisms: i64 = c
        .query_one("SELECT count(*) FROM agents.organism", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(organisms, 1);
}

#[tokio::test]
async fn migrate_command_twice_concurrently() {
    let db = TestDb::empty().await;
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_agentplane"))
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .output()
    };
    let a = std::thread::scope(|s| {
        let h1 = s.spawn(spawn);
        let h2 = s.spawn(spawn);
        [h1.join().unwrap().unwrap(), h2.join().unwrap().unwrap()]
    });
    for out in a {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(table_count(&db.url).await > 3);
}

#[tokio::test]
async fn health_and_organism() {
    let app = TestApp::new().await;
    let (s, b) = app.call("GET", "/health", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(b["status"], "healthy");
    assert_eq!(b["database"], "ok");
    assert_eq!(b["organism"], "agentplane");
    assert!(b["uptimeSeconds"].is_i64());
    let (s, b) = app.get("/api/v1/organism").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "running");
}

#[tokio::test]
async fn health_reports_unreachable_database() {
    let app = TestApp::new().await;
    let state = agentplane::api::AppState {
        pool: db::pool("postgres://nobody@127.0.0.1:1/none", 2).unwrap(),
        ..app.state.clone()
    };
    let client = poem::test::TestClient::new(agentplane::api::app(state));
    let resp = client.get("/health").send().await;
    resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = resp.json().await.value().deserialize();
    assert_eq!(body["status"], "unhealthy");
    // an authenticated call needing the database answers 503, not 500
    let resp = client
        .get("/api/v1/keys")
        .header("Authorization", "Bearer some-key")
        .send()
        .await;
    resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn auth_statuses() {
    let app = TestApp::new().await;
    // no key
    let (s, b) = app.call("GET", "/api/v1/keys", None, None).await;
    assert_eq!((s, error_code(&b)), (401, "unauthorized"));
    // wrong key
    let (s, b) = app.call("GET", "/api/v1/keys", Some("nope"), None).await;
    assert_eq!((s, error_code(&b)), (401, "unauthorized"));
    // wrong role
    let reader = app.key("reader", None).await;
    let (s, b) = app.call("GET", "/api/v1/keys", Some(&reader), None).await;
    assert_eq!((s, error_code(&b)), (403, "forbidden"));
    let (s, _) = app
        .call("GET", "/api/v1/organism", Some(&reader), None)
        .await;
    assert_eq!(s, 200);
    // a stored admin key works; after revocation it is refused at once
    let admin = app.key("admin", None).await;
    let (s, b) = app.call("GET", "/api/v1/keys", Some(&admin), None).await;
    assert_eq!(s, 200);
    let keys = b["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys
        .iter()
        .all(|k| k.get("key").is_none() && k["id"].is_string()));
    let admin_id = keys.iter().find(|k| k["role"] == "admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = app.delete(&format!("/api/v1/keys/{admin_id}")).await;
    assert_eq!(s, 200);
    let (s, b) = app.call("GET", "/api/v1/keys", Some(&admin), None).await;
    assert_eq!((s, error_code(&b)), (401, "unauthorized"));
    // revoking again / unknown id
    let (s, b) = app.delete(&format!("/api/v1/keys/{admin_id}")).await;
    assert_eq!((s, error_code(&b)), (404, "key_not_found"));
    // the secret is never stored in clear
    let c = app.db.client().await;
    let clear: i64 = c
        .query_one(
            "SELECT count(*) FROM auth.api_keys WHERE key_hash = $1",
            &[&admin],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(clear, 0);
}

#[tokio::test]
async fn open_mode_only_without_any_key() {
    let app = TestApp::with_config(|c| c.admin_key = None).await;
    let (s, _) = app.call("GET", "/api/v1/keys", None, None).await;
    assert_eq!(s, 200, "open mode lets an unauthenticated caller in");
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/keys",
            None,
            Some(&json!({"name": "first", "role": "admin"})),
        )
        .await;
    assert_eq!(s, 201);
    let key = b["key"].as_str().unwrap().to_string();
    let (s, _) = app.call("GET", "/api/v1/keys", None, None).await;
    assert_eq!(s, 401, "once a key exists the API is closed");
    let (s, _) = app.call("GET", "/api/v1/keys", Some(&key), None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn serve_refuses_open_mode_off_loopback() {
    let db = TestDb::new().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentplane"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("AGENTPLANE_BIND", "0.0.0.0:0")
        .env_remove("AGENTPLANE_ADMIN_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AGENTPLANE_ADMIN_KEY"), "{err}");
}

#[tokio::test]
async fn malformed_input_gets_the_uniform_body() {
    let app = TestApp::with_config(|c| c.max_body_bytes = 1000).await;
    let raw = |body: &'static str| {
        app.client
            .post("/api/v1/keys")
            .header("Authorization", format!("Bearer {ADMIN_KEY}"))
            .content_type("application/json")
            .body(body)
            .send()
    };
    for bad in [
        "{not json",
        "[]",
        "{\"name\": {\"a\": 1}, \"role\": \"admin\"}",
        "{\"name\": \"x\", \"role\": 5}",
        "{\"name\":\"x\",\"role\":\"root\"}",
        "{\"name\":\"\",\"role\":\"admin\"}",
        "{\"name\":\"x\",\"role\":\"admin\",\"userId\":\"bad id!\"}",
    ] {
        let resp = raw(bad).await;
        assert_eq!(resp.0.status(), 400, "{bad}");
        let v: serde_json::Value = resp.json().await.value().deserialize();
        assert_eq!(error_code(&v), "invalid_request", "{bad}");
    }
    // wrong type of path parameter
    let (s, b) = app.delete("/api/v1/keys/not-a-uuid").await;
    assert_eq!((s, error_code(&b)), (400, "invalid_request"));
    // unknown route and wrong method
    let (s, b) = app.get("/api/v1/nothing-here").await;
    assert_eq!((s, error_code(&b)), (404, "not_found"));
    let (s, b) = app.call("PATCH", "/health", None, Some(&json!({}))).await;
    assert!(s == 405 || s == 404, "{s}");
    error_code(&b);
    // body over the limit
    let big = json!({"name": "x".repeat(2000), "role": "admin"});
    let (s, b) = app.post("/api/v1/keys", big).await;
    assert_eq!((s, error_code(&b)), (413, "payload_too_large"));
    // nothing was written by any of it
    let c = app.db.client().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM auth.api_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[test]
fn committed_spec_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is missing: run `cargo run -- openapi --write`");
    let generated = agentplane::api::spec_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -- openapi --write` and commit it"
    );
}

#[test]
fn every_operation_has_id_tag_and_errors() {
    let spec: serde_json::Value = serde_json::from_str(&agentplane::api::spec_json()).unwrap();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{id}: no tag"
            );
            let responses = op["responses"].as_object().unwrap();
            if path != "/health" {
                for status in ["400", "401", "403", "404", "503"] {
                    assert!(
                        responses.contains_key(status),
                        "{id}: {status} not documented"
                    );
                }
            }
        }
    }
}

#[test]
fn self_managed_cluster_starts_and_stops() {
    use agentplane::localpg::Storage::Durable;
    let dir = std::env::temp_dir().join(format!(
        "agentplane-cluster-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut cluster = agentplane::localpg::LocalCluster::start(&dir, Durable).expect("start");
    let url = cluster.url("postgres");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = db::connect(&url, "t").await.expect("connect");
        let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
    });
    let data = cluster.data_dir().to_path_buf();
    cluster.stop().expect("stop");
    assert!(
        !data.join("postmaster.pid").exists(),
        "server still running"
    );
    rt.block_on(async {
        assert!(
            db::connect(&url, "t").await.is_err(),
            "server still answers"
        );
    });
    // the data folder is kept: a second start reuses it without initdb
    let cluster = agentplane::localpg::LocalCluster::start(&dir, Durable).expect("restart");
    assert_eq!(cluster.data_dir(), data);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The spec's operations are exactly the published list (tests/endpoints.txt),
/// and every `{placeholder}` of a path is a declared path parameter —
/// generated SDKs break otherwise.
#[test]
fn spec_paths_match_the_contract_and_their_parameters() {
    let spec: serde_json::Value = serde_json::from_str(&agentplane::api::spec_json()).unwrap();
    let mut ops = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.insert(format!("{} {path}", method.to_uppercase()));
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            for segment in path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(
                        declared.contains(&name),
                        "{method} {path}: {{{name}}} is not a parameter"
                    );
                }
            }
        }
    }
    let wanted: std::collections::BTreeSet<String> = include_str!("../endpoints.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let missing: Vec<_> = wanted.difference(&ops).collect();
    let extra: Vec<_> = ops.difference(&wanted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, not in tests/endpoints.txt {extra:?}"
    );
}
