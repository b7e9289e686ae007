//! Response body types: the boxed body every handler returns, and the upstream relay body
//! that enforces the endpoint's total timeout while passing frames through as they arrive.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use tokio::time::{Instant, Sleep};

use crate::redact::stream::StreamGuard;

/// Boxed error carried by response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response Parapet produces.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete in-memory body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The error a relayed body ends with when the endpoint's total timeout passes mid-body.
#[derive(Debug, thiserror::Error)]
#[error("upstream body exceeded the total timeout of {0:?}")]
pub struct TotalTimeout(pub Duration);

/// Relays an upstream body frame by frame (no buffering) and fails it at `deadline`.
/// Dropping it (client gone) drops the upstream body, which cancels the upstream request.
pub struct RelayBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    total: Duration,
    done: bool,
}

impl<B> RelayBody<B> {
    /// Wrap `inner`, ending it with an error once `deadline` passes.
    pub fn new(inner: B, deadline: Instant, total: Duration) -> Self {
        RelayBody {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            total,
            done: false,
        }
    }
}

impl<B> Body for RelayBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    let total = self.total;
                    Poll::Ready(Some(Err(Box::new(TotalTimeout(total)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Called once when a guarded stream ends (normally, by deny, or when dropped), with the
/// guard's final state — used to log violations.
pub type OnStreamEnd = Box<dyn FnOnce(&StreamGuard) + Send>;

/// Runs a streamed upstream body through a [`StreamGuard`]: the client receives the guard's
/// output (held back by at most the window, redacted, or cleanly terminated on deny).
pub struct GuardedBody<B> {
    inner: B,
    guard: StreamGuard,
    queue: VecDeque<Bytes>,
    inner_done: bool,
    on_end: Option<OnStreamEnd>,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, guard: StreamGuard, on_end: OnStreamEnd) -> Self {
        GuardedBody {
            inner,
            guard,
            queue: VecDeque::new(),
            inner_done: false,
            on_end: Some(on_end),
        }
    }

    fn end(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(&self.guard);
        }
    }
}

impl<B> Drop for GuardedBody<B> {
    fn drop(&mut self) {
        self.end();
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Some(b) = self.queue.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if self.inner_done || self.guard.is_closed() {
                self.end();
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let out = self.guard.push(&data);
                        self.queue.extend(out);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.inner_done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    self.inner_done = true;
                    let out = self.guard.finish();
                    self.queue.extend(out);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
