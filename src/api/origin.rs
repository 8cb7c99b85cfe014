//! Cross-origin protection while the server runs open.
//!
//! In open mode a request needs no key, so the only thing between a web page
//! the local user happens to visit and the API is the browser's same-origin
//! policy — which lets a page open a WebSocket to any address and send
//! "simple" POSTs. Browsers always say where such a request comes from
//! (`Origin`), so while the server is open, a WebSocket upgrade or a
//! non-GET request whose `Origin` names another origin than the server's own
//! address is refused with 403 `cross_origin`. Clients that send no `Origin`
//! (SDKs, curl, agent runtimes) are not affected, and neither is anyone once
//! keys are in use: a page then has no key to send.

use super::{ApiError, AppState};
use poem::http::{header, Method};
use poem::{Endpoint, IntoResponse, Request, Response};
use std::net::SocketAddr;

/// `around` middleware for the whole app.
pub async fn guard<E: Endpoint>(ep: std::sync::Arc<E>, req: Request) -> poem::Result<Response> {
    if let Some(refusal) = refusal(&req).await {
        return Ok(refusal.into_response());
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

async fn refusal(req: &Request) -> Option<ApiError> {
    let safe_method = matches!(*req.method(), Method::GET | Method::HEAD);
    let upgrade = req.headers().contains_key(header::UPGRADE);
    if safe_method && !upgrade {
        return None;
    }
    let origin = req.headers().get(header::ORIGIN)?;
    let state = req.data::<AppState>()?;
    let own = req
        .local_addr()
        .as_socket_addr()
        .copied()
        .unwrap_or(state.config.bind);
    let same = origin.to_str().is_ok_and(|o| is_own_origin(o, own));
    if same {
        return None;
    }
    match state.access.is_open(&state.pool).await {
        Ok(false) => None,
        Ok(true) => Some(ApiError::new(
            403,
            "cross_origin",
            "this server runs without API keys, so it refuses requests that a web page of \
             another origin makes; send no Origin header, or create an API key",
            serde_json::json!({"origin": origin.to_str().unwrap_or("")}),
        )),
        Err(e) => Some(e.into()),
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the server listening on
/// `own`: http, the same port, and the listening address or, on loopback,
/// `localhost`.
pub fn is_own_origin(origin: &str, own: SocketAddr) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => return false,
        },
        _ => (rest, 80),
    };
    if port != own.port() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return own.ip().is_loopback();
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip == own.ip() || (ip.is_loopback() && own.ip().is_loopback()))
}

#[cfg(test)]
mod tests {
    use super::is_own_origin;

    #[test]
    fn own_origins() {
        let own = "127.0.0.1:8080".parse().unwrap();
        assert!(is_own_origin("http://127.0.0.1:8080", own));
        assert!(is_own_origin("http://localhost:8080", own));
        assert!(is_own_origin("http://[::1]:8080", own));
        assert!(!is_own_origin("http://127.0.0.1:8081", own));
        assert!(!is_own_origin("https://127.0.0.1:8080", own));
        assert!(!is_own_origin("http://evil.example:8080", own));
        assert!(!is_own_origin("http://127.0.0.1", own));
        assert!(!is_own_origin("null", own));
        assert!(!is_own_origin("http://127.0.0.1:8080@evil", own));
        assert!(is_own_origin(
            "http://127.0.0.1",
            "127.0.0.1:80".parse().unwrap()
        ));
    }
}
