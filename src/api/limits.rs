//! Request body size limit: a body over `AGENTPLANE_MAX_BODY_BYTES` is a 413.
//!
//! poem's own `SizeLimit` refuses every request without `Content-Length`
//! (even GETs), so this one checks the header when present and otherwise
//! reads the body (chunked, or of unknown length) up to the limit.

use poem::http::{header, StatusCode};
use poem::{Body, Endpoint, Error, Middleware, Request, Result};

pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            max: self.0,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    max: usize,
}

fn too_large(max: usize) -> Error {
    Error::from_string(
        format!("the request body is larger than {max} bytes"),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        match declared {
            Some(len) if len > self.max => return Err(too_large(self.max)),
            Some(_) => {}
            None => {
                let body = req.take_body();
                let bytes = body
                    .into_bytes_limit(self.max)
                    .await
                    .map_err(|_| too_large(self.max))?;
                req.set_body(Body::from_bytes(bytes));
            }
        }
        self.inner.call(req).await
    }
}
