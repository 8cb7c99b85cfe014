//! A Server-Sent Events client for the event-stream tests.

use serde_json::Value;
use std::time::Duration;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: i64,
    pub ty: String,
    pub data: Value,
}

pub struct Sse {
    resp: reqwest::Response,
    buf: String,
    /// Comment lines seen (`: ping`).
    pub comments: Vec<String>,
}

/// Opens `GET {url}` with `Accept: text/event-stream`, the key (if any) and
/// extra headers; panics unless the answer is a 200 stream.
pub async fn open(url: &str, key: Option<&str>, headers: &[(&str, String)]) -> Sse {
    let resp = request(url, key, headers).await;
    assert_eq!(resp.status(), 200, "stream refused: {:?}", resp.status());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/event-stream"), "content type {ct}");
    Sse {
        resp,
        buf: String::new(),
        comments: Vec::new(),
    }
}

/// The raw answer to a stream request.
pub async fn request(
    url: &str,
    key: Option<&str>,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("Accept", "text/event-stream");
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    req.send().await.expect("request")
}

impl Sse {
    /// The next event, or None when the stream ended. Panics after `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf[..end].to_string();
                self.buf.drain(..end + 2);
                let (mut id, mut ty, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        self.comments.push(c.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse::<i64>().expect("numeric id"));
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ty = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).expect("data is JSON"));
                    }
                }
                if let (Some(id), Some(ty), Some(data)) = (id, ty, data) {
                    return Some(SseEvent { id, ty, data });
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("nothing arrived on the stream in time");
            match chunk {
                Ok(Some(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next event (generous wait).
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(super::ws::WAIT).await
    }

    /// Reads until the stream ends; returns the events read meanwhile.
    pub async fn until_end(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}
