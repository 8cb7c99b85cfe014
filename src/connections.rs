//! What the server accepts on its socket: at most `max` connections at once
//! (more wait in the kernel's backlog), Nagle's algorithm off, and a
//! connection that has not finished sending its first request's headers
//! within `header_timeout` is dropped, so a client trickling bytes cannot
//! hold a connection open for ever. (Connections that go silent later are
//! closed by the server's idle timeout.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct GuardedAcceptor {
    inner: poem::listener::TcpAcceptor,
    slots: Arc<Semaphore>,
    header_timeout: Duration,
}

impl GuardedAcceptor {
    pub fn new(
        inner: poem::listener::TcpAcceptor,
        max: usize,
        header_timeout: Duration,
    ) -> GuardedAcceptor {
        GuardedAcceptor {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            header_timeout,
        }
    }
}

impl poem::listener::Acceptor for GuardedAcceptor {
    type Io = GuardedStream;

    fn local_addr(&self) -> Vec<poem::web::LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(
        Self::Io,
        poem::web::LocalAddr,
        poem::web::RemoteAddr,
        poem::http::uri::Scheme,
    )> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("the connection limit was closed"))?;
        let (stream, local, remote, scheme) = self.inner.accept().await?;
        // The live feed writes small frames as events arrive; with Nagle on,
        // a frame written while the previous one is unacknowledged waits for
        // the client's delayed ACK (up to 40 ms on Linux).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not turn Nagle's algorithm off");
        }
        let stream = GuardedStream {
            inner: stream,
            _permit: permit,
            header_deadline: Some(Box::pin(tokio::time::sleep(self.header_timeout))),
            matched: 0,
        };
        Ok((stream, local, remote, scheme))
    }
}

/// A connection holding one of the acceptor's slots until it is dropped.
pub struct GuardedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until the first `\r\n\r\n` arrives.
    header_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// How much of `\r\n\r\n` the bytes read so far end with.
    matched: usize,
}

const HEADERS_END: &[u8] = b"\r\n\r\n";

/// Feeds `bytes` to the search for the end of headers: how much of
/// `\r\n\r\n` the stream now ends with, and whether it was all seen.
fn advance(mut matched: usize, bytes: &[u8]) -> (usize, bool) {
    for &b in bytes {
        matched = if b == HEADERS_END[matched] {
            matched + 1
        } else if b == HEADERS_END[0] {
            1
        } else {
            0
        };
        if matched == HEADERS_END.len() {
            return (matched, true);
        }
    }
    (matched, false)
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(deadline) = self.header_deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request headers did not arrive in time",
                )));
            }
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.header_deadline.is_some() {
            let (matched, done) = advance(self.matched, &buf.filled()[before..]);
            self.matched = matched;
            if done {
                self.header_deadline = None;
            }
        }
        result
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::advance;

    /// The end of headers is found however the bytes are split, and not
    /// before it arrives.
    #[test]
    fn headers_end_is_found_across_reads() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in 0..request.len() {
            let (matched, done) = advance(0, &request[..split]);
            assert!(!done || split == request.len(), "early at {split}");
            let (_, done) = advance(matched, &request[split..]);
            assert!(done, "split at {split}");
        }
        assert!(!advance(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r").1);
        assert!(!advance(0, b"\r\r\n\n").1);
    }
}
