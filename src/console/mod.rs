//! `GET /console`: the operators' console, a browser page built into the
//! binary. Its files live in `src/console/assets/` and are compiled in with
//! `include_str!`, so the binary serves them with no build step, CDN or
//! network. The page talks to the server only through the public API (REST
//! and `/ws`) with the key its user gives, so it shows exactly what that key
//! may see. It is HTML, not API: it is not in the OpenAPI document.

use poem::http::{header, StatusCode};
use poem::web::Path;
use poem::{handler, Response};

/// Only this origin's scripts, styles and connections (`'self'` covers the
/// same host's `ws:`); no inline script or style, no frames, no forms posted
/// anywhere, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page's files: name under `/console/`, content type, text.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "main.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/main.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dom.js"),
    ),
    (
        "feed.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/feed.js"),
    ),
    (
        "credits.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/credits.js"),
    ),
    (
        "usage.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/usage.js"),
    ),
    (
        "agents.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/agents.js"),
    ),
    (
        "variants.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/variants.js"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
];

const INDEX: &str = include_str!("assets/index.html");

/// A console response: the type, the strict policy and no caching (a new
/// binary's page never mixes with an old one's scripts).
fn page(content_type: &str, body: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
        .header("X-Frame-Options", "DENY")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
}

/// `GET /console`: the page.
#[handler]
pub fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{file}`: one of the page's scripts, styles or images;
/// anything else is the uniform 404.
#[handler]
pub fn asset(Path(name): Path<String>) -> poem::Result<Response> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ty, body)| page(ty, body))
        .ok_or_else(|| poem::Error::from_status(StatusCode::NOT_FOUND))
}
