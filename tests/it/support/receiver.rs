//! A webhook receiver for tests: a small HTTP server on 127.0.0.1:0 that
//! checks every request's Standard Webhooks signature on its own (hmac +
//! sha2 + base64, not the server's signing code), logs it, and answers 500
//! while told to fail.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use poem::web::Data;
use poem::{handler, http::StatusCode, Body, EndpointExt, Request, Route};
use serde_json::Value;
use sha2::Sha256;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    /// `webhook-id`, as a number.
    pub id: i64,
    pub body: Value,
    /// Whether it answered 2xx.
    pub accepted: bool,
}

#[derive(Default)]
pub struct ReceiverState {
    /// The endpoint's key bytes (decoded from its `whsec_` secret).
    key: Mutex<Option<Vec<u8>>>,
    /// Answer 500 to this many requests from now on.
    fail_next: AtomicUsize,
    /// Answer 500 to every request while set.
    fail_all: AtomicBool,
    hits: Mutex<Vec<Hit>>,
    /// Requests whose signature, id or timestamp did not check out.
    bad: AtomicUsize,
}

pub struct Receiver {
    pub addr: std::net::SocketAddr,
    pub state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(ReceiverState::default());
        let app = Route::new()
            .at("/hook", poem::post(hook))
            .data(state.clone());
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Receiver { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The secret the server showed at creation.
    pub fn set_secret(&self, secret: &str) {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .expect("base64 secret");
        assert!(key.len() >= 24, "secret of {} bytes", key.len());
        *self.state.key.lock().unwrap() = Some(key);
    }

    pub fn fail_next(&self, n: usize) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn fail_all(&self, on: bool) {
        self.state.fail_all.store(on, Ordering::SeqCst);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    /// The ids it accepted (answered 2xx), in arrival order.
    pub fn accepted(&self) -> Vec<i64> {
        self.hits()
            .into_iter()
            .filter(|h| h.accepted)
            .map(|h| h.id)
            .collect()
    }

    /// Requests that failed the signature check (must stay 0).
    pub fn bad(&self) -> usize {
        self.state.bad.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests were accepted (panics after `secs`).
    pub async fn wait_accepted(&self, n: usize, secs: u64) -> Vec<i64> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} deliveries after {secs} s: {got:?}",
                got.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether the headers sign `body` with `key`, as Standard Webhooks 1.0 says.
fn signed(req: &Request, key: &[u8], body: &[u8]) -> bool {
    let (Some(id), Some(ts), Some(sigs)) = (
        header(req, "webhook-id"),
        header(req, "webhook-timestamp"),
        header(req, "webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts_n) = ts.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - ts_n).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    header(req, "content-type") == Some("application/json")
        && sigs
            .split(' ')
            .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

#[handler]
async fn hook(req: &Request, body: Body, state: Data<&Arc<ReceiverState>>) -> StatusCode {
    let body = body.into_bytes().await.unwrap_or_default();
    let key = state.key.lock().unwrap().clone();
    let id = header(req, "webhook-id").and_then(|v| v.parse::<i64>().ok());
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let ok_sig = key.as_deref().is_some_and(|k| signed(req, k, &body));
    // the id header is the event's id
    let ok_id = id.is_some() && json["id"].as_i64() == id;
    if !ok_sig || !ok_id {
        state.bad.fetch_add(1, Ordering::SeqCst);
        return StatusCode::BAD_REQUEST;
    }
    let fail = state.fail_all.load(Ordering::SeqCst)
        || state
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    state.hits.lock().unwrap().push(Hit {
        id: id.unwrap_or_default(),
        body: json,
        accepted: !fail,
    });
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}
