//! Test harness: every test gets its own database, cloned from a template
//! that is migrated once. Uses DATABASE_URL when set, else one self-managed
//! throwaway cluster for the whole run: every integration test lives in this
//! one binary, so the cluster starts once and stops when the binary exits.

use agentplane::api::{self, AppState};
use agentplane::config::Config;
use agentplane::db;
use poem::test::TestClient;
use serde_json::Value;
use std::sync::OnceLock;
use tokio::sync::OnceCell;

pub mod asyncapi;
pub mod browser;
pub mod citus_cluster;
pub mod console;
pub mod credits;
pub mod receiver;
pub mod spec;
pub mod sse;
pub mod variants;
pub mod ws;

/// The first column of every row `sql` selects, in order.
pub async fn column<T>(client: &tokio_postgres::Client, sql: &str) -> Vec<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The admin secret every test app is configured with.
pub const ADMIN_KEY: &str = "test-admin-key";

/// URL of the maintenance database (`postgres`) of the server tests use.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            if !url.trim().is_empty() {
                return url;
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "agentplane-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let cluster = agentplane::localpg::LocalCluster::start(
            &dir,
            agentplane::localpg::Storage::UnsafeFast,
        )
        .unwrap_or_else(|e| panic!("cannot start a test cluster: {e}"));
        let url = cluster.url("postgres");
        cluster.stop_when_process_exits(std::process::id(), &dir);
        url
    })
}

/// `url` with its database name replaced by `db`.
pub fn with_db(url: &str, db: &str) -> String {
    db::with_database(url, db)
}

/// A name that changes whenever the schema does.
fn template_name() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations dir")
        .flatten()
    {
        entry.file_name().hash(&mut h);
        std::fs::read(entry.path()).expect("migration").hash(&mut h);
    }
    for (name, text) in db::migrate::SQL_FILES {
        name.hash(&mut h);
        text.hash(&mut h);
    }
    format!("agentplane_tpl_{:016x}", h.finish())
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// Creates (once, across concurrent test processes) the migrated template.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let admin = db::connect(server_url(), "agentplane-test")
                .await
                .expect("connect");
            admin
                .execute("SELECT pg_advisory_lock(7411)", &[])
                .await
                .expect("lock");
            let ready: Option<bool> = admin
                .query_opt(
                    "SELECT datistemplate FROM pg_database WHERE datname = $1",
                    &[&name],
                )
                .await
                .expect("query")
                .map(|r| r.get(0));
            if ready != Some(true) {
                if ready.is_some() {
                    admin
                        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                        .await
                        .expect("drop half-built template");
                }
                admin
                    .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create template");
                db::migrate::run(&with_db(server_url(), &name))
                    .await
                    .expect("migrate template");
                admin
                    .batch_execute(&format!(
                        "ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
                    ))
                    .await
                    .expect("mark template");
            }
            admin
                .execute("SELECT pg_advisory_unlock(7411)", &[])
                .await
                .expect("unlock");
            name
        })
        .await
}

/// A fresh database for one test, dropped when this value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// Whether dropping this value drops the database (false for a
    /// [`TestDb::handle`]).
    owned: bool,
}

/// Citus mode (scripts/citus-check.sh): the coordinator's and the workers'
/// `host:port`, from AGENTPLANE_TEST_CITUS_COORDINATOR and
/// AGENTPLANE_TEST_CITUS_WORKERS (comma-separated).
fn citus_nodes() -> Option<(String, Vec<String>)> {
    let coordinator = std::env::var("AGENTPLANE_TEST_CITUS_COORDINATOR").ok()?;
    let workers = std::env::var("AGENTPLANE_TEST_CITUS_WORKERS").ok()?;
    Some((coordinator, citus_cluster::nodes(&workers)))
}

impl TestDb {
    pub async fn new() -> TestDb {
        if let Some((coordinator, workers)) = citus_nodes() {
            return Self::distributed(&coordinator, &workers).await;
        }
        let tpl = template().await;
        let name = format!("agentplane_t_{}", uuid::Uuid::new_v4().simple());
        let admin = db::connect(server_url(), "agentplane-test")
            .await
            .expect("connect");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{tpl}\""))
            .await
            .expect("create test database");
        TestDb {
            url: with_db(server_url(), &name),
            name,
            owned: true,
        }
    }

    /// A database on the Citus cluster, distributed
    /// ([`citus_cluster::distribute`]). A template cannot be cloned here:
    /// the shards live on the workers.
    async fn distributed(coordinator: &str, workers: &[String]) -> TestDb {
        // One set-up at a time: Citus creates the schema's roles and types
        // on the workers, which are shared by every database of a node.
        static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = SETUP.lock().await;
        let db = Self::empty().await;
        citus_cluster::distribute(coordinator, workers, &db.name).await;
        db
    }

    /// An empty, unmigrated database (for migration tests).
    pub async fn empty() -> TestDb {
        let name = format!("agentplane_t_{}", uuid::Uuid::new_v4().simple());
        let admin = db::connect(server_url(), "agentplane-test")
            .await
            .expect("connect");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        TestDb {
            url: with_db(server_url(), &name),
            name,
            owned: true,
        }
    }

    /// The same database, without owning it: for servers started one after
    /// another on it while the test keeps the owner.
    pub fn handle(&self) -> TestDb {
        TestDb {
            name: self.name.clone(),
            url: self.url.clone(),
            owned: false,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        db::connect(&self.url, "agentplane-test")
            .await
            .expect("connect")
    }

    pub fn pool(&self) -> deadpool_postgres::Pool {
        db::pool(&self.url, 16).expect("pool")
    }

    /// A connection as an analyst: a login role that is a member of
    /// `agentplane_reporting` and nothing else, as the docs tell operators to
    /// set up. (A `SET ROLE` to the reporting role itself would not do on
    /// Citus: it connects to the workers as the current role, and the
    /// reporting role cannot log in.)
    pub async fn analyst_client(&self) -> tokio_postgres::Client {
        const ANALYST: &str = "agentplane_test_analyst";
        let admin = self.client().await;
        // Every test database shares the node's roles: made once, and a
        // test racing another to make it finds it made.
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN
                     CREATE ROLE {ANALYST} LOGIN IN ROLE agentplane_reporting;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END $$"
            ))
            .await
            .expect("analyst role");
        let mut cfg: tokio_postgres::Config = self.url.parse().expect("test database url");
        cfg.user(ANALYST);
        let (client, conn) = cfg
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect as the analyst");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let name = self.name.clone();
        let url = server_url().to_string();
        // Drop runs inside the test's runtime: do the async work on a thread
        // with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(c) = db::connect(&url, "agentplane-test").await {
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Configuration for a test app: admin key set, everything else default.
pub fn test_config(url: &str) -> Config {
    let url = url.to_string();
    Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(url.clone()),
        "AGENTPLANE_ADMIN_KEY" => Some(ADMIN_KEY.into()),
        _ => None,
    })
    .expect("config")
}

/// The real HTTP router over a fresh database, driven in-process.
pub struct TestApp {
    pub db: TestDb,
    pub state: AppState,
    pub client: TestClient<poem::endpoint::BoxEndpoint<'static>>,
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_config(|_| {}).await
    }

    /// A test app whose configuration `adjust` may change first.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new().await;
        let mut config = test_config(&db.url);
        adjust(&mut config);
        let state = AppState::new(db.pool(), config);
        use poem::EndpointExt;
        let client = TestClient::new(api::app(state.clone()).map_to_response().boxed());
        TestApp { db, state, client }
    }

    /// Sends a request with `key` (None: no Authorization header) and
    /// returns the status and the JSON body (Null when the body is empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = match method {
            "GET" => self.client.get(path),
            "POST" => self.client.post(path),
            "PUT" => self.client.put(path),
            "PATCH" => self.client.patch(path),
            "DELETE" => self.client.delete(path),
            other => panic!("unsupported method {other}"),
        };
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        if let Some(b) = body {
            req = req.body_json(b);
        }
        let resp = req.send().await;
        let status = resp.0.status().as_u16();
        let bytes = resp.0.into_body().into_vec().await.expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        spec::check(method, path, status, &value);
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, Some(ADMIN_KEY), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(ADMIN_KEY), Some(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PUT", path, Some(ADMIN_KEY), Some(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PATCH", path, Some(ADMIN_KEY), Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, Some(ADMIN_KEY), None).await
    }

    /// Creates a key with `role` (and optional user binding); returns its secret.
    pub async fn key(&self, role: &str, user_id: Option<&str>) -> String {
        let (status, body) = self
            .post(
                "/api/v1/keys",
                serde_json::json!({"name": format!("{role} key"), "role": role, "userId": user_id}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().expect("key").to_string()
    }
}

/// Asserts the uniform error body and returns its code.
pub fn error_code(body: &Value) -> &str {
    let err = &body["error"];
    assert!(err["message"].is_string(), "no message in {body}");
    assert!(err["details"].is_object(), "no details object in {body}");
    err["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {body}"))
}

/// A real server (HTTP + WebSocket + feed relay + pruner) on 127.0.0.1:0
/// over its own database, stopped when dropped.
pub struct TestServer {
    pub db: TestDb,
    pub state: AppState,
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// A server whose configuration `adjust` may change first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::on(TestDb::new().await, adjust).await
    }

    /// A server over an existing database.
    pub async fn on(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config(&db.url);
        adjust(&mut config);
        let pool = db::pool_with(&db.url, 16, config.notify).expect("pool");
        let state = AppState::new(pool, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let url = db.url.clone();
        let st = state.clone();
        let handle = tokio::spawn(async move {
            agentplane::server::run(st, &url, listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("server");
        });
        // ready once the relay has started
        tokio::time::timeout(std::time::Duration::from_secs(20), state.hub.watermark())
            .await
            .expect("feed relay did not start");
        TestServer {
            db,
            state,
            addr,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// `ws://ADDR{path}?token=ADMIN_KEY`.
    pub fn ws_url(&self, path: &str) -> String {
        self.ws_url_with(path, ADMIN_KEY)
    }

    pub fn ws_url_with(&self, path: &str, key: &str) -> String {
        format!("ws://{}{}?token={}", self.addr, path, key)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// An HTTP request to the running server with the admin key: the status
    /// and the JSON body (Null when the body is empty or not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let method_name = method.as_str().to_string();
        let method_name = method_name.as_str();
        let mut req = reqwest::Client::new()
            .request(method, self.http_url(path))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let value = resp.json().await.unwrap_or(Value::Null);
        spec::check(method_name, path, status, &value);
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(&body)).await
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(15), h).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
