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

/// Scheduler passes in a row that bring no new data before held data is sent. One is not
/// enough under load: the hyper client hands over one chunk per want/send round trip (its
/// body channel holds one chunk), and with a busy run queue (Tokio stops using its LIFO
/// slot after three polls in a row) the relay is often resumed before the connection task
/// ran. Measured (load harness, 25-event streams, recording and policies off, 32
/// connections): 1 pass 4.4k streams/s with ~25 client writes per stream; 3 passes 13.7k/s
/// with ~2; 6 passes 10.6k/s. At one connection 3 passes also lowered the stream p50 (0.48
/// to 0.26 ms): fewer writes.
const EMPTY_YIELDS: u8 = 3;

/// Most bytes joined into one outgoing frame.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Relays an upstream body as it arrives and fails it at `deadline`.
///
/// Coalescing: hyper's client decodes one body chunk per poll on its connection task, so a
/// burst of SSE events already received would cost one task switch and one client write
/// per event. After a data frame, the relay yields to the scheduler; while the passes bring
/// more decoded data it yields again, and it sends the joined data (up to `COALESCE_LIMIT`)
/// once `EMPTY_YIELDS` passes in a row bring nothing. It never waits for data that has not
/// arrived: the added latency is scheduler passes, not timers.
/// Dropping it (client gone) drops the upstream body, which cancels the upstream request.
pub struct RelayBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    total: Duration,
    done: bool,
    /// Data received and not yet returned.
    held: Option<bytes::BytesMut>,
    /// Scheduler yields made while holding data since the last new data.
    yields: u8,
    /// The pending scheduler yield (`tokio::task::yield_now` defers the wake-up so the
    /// connection task really runs before this body is polled again).
    yielding: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// A non-data frame, error or end met while holding data; returned after the data.
    stashed: Option<Option<Result<Frame<Bytes>, BoxError>>>,
}

impl<B> RelayBody<B> {
    /// Wrap `inner`, ending it with an error once `deadline` passes.
    pub fn new(inner: B, deadline: Instant, total: Duration) -> Self {
        RelayBody {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            total,
            done: false,
            held: None,
            yields: 0,
            yielding: None,
            stashed: None,
        }
    }

    fn take_held(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        self.yields = 0;
        self.held.take().map(|b| Ok(Frame::data(b.freeze())))
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
        if let Some(y) = self.yielding.as_mut() {
            if y.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.yielding = None;
        }
        if self.held.is_none() {
            if let Some(item) = self.stashed.take() {
                if !matches!(item, Some(Ok(_))) {
                    self.done = true;
                }
                return Poll::Ready(item);
            }
        }
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) => {
                        // New data since the last yield: another pass may bring more.
                        self.yields = 0;
                        let held = self.held.get_or_insert_with(bytes::BytesMut::new);
                        held.extend_from_slice(&d);
                        if held.len() >= COALESCE_LIMIT {
                            return Poll::Ready(self.take_held());
                        }
                    }
                    Err(other) => {
                        if self.held.is_some() {
                            self.stashed = Some(Some(Ok(other)));
                            return Poll::Ready(self.take_held());
                        }
                        return Poll::Ready(Some(Ok(other)));
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    if self.held.is_some() {
                        self.stashed = Some(Some(Err(e.into())));
                        return Poll::Ready(self.take_held());
                    }
                    self.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    if self.held.is_some() {
                        self.stashed = Some(None);
                        return Poll::Ready(self.take_held());
                    }
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if self.held.is_some() {
                        if self.yields < EMPTY_YIELDS {
                            // Let the connection task decode what it already read.
                            self.yields += 1;
                            let mut y: Pin<Box<dyn Future<Output = ()> + Send>> =
                                Box::pin(tokio::task::yield_now());
                            if y.as_mut().poll(cx).is_pending() {
                                self.yielding = Some(y);
                                return Poll::Pending;
                            }
                            continue;
                        }
                        return Poll::Ready(self.take_held());
                    }
                    return match self.deadline.as_mut().poll(cx) {
                        Poll::Ready(()) => {
                            self.done = true;
                            let total = self.total;
                            Poll::Ready(Some(Err(Box::new(TotalTimeout(total)))))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.stashed.is_none() && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An upstream body with bytes already read from it (the first SSE event, read to check it
/// is not an error before committing to the endpoint) replayed first.
pub struct Prefixed<B> {
    prefix: Option<Bytes>,
    inner: B,
}

impl<B> Prefixed<B> {
    pub fn new(prefix: Option<Bytes>, inner: B) -> Self {
        Prefixed {
            prefix: prefix.filter(|p| !p.is_empty()),
            inner,
        }
    }
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        match inner.exact() {
            Some(n) => SizeHint::with_exact(n + extra),
            None => {
                let mut h = SizeHint::new();
                h.set_lower(inner.lower() + extra);
                h
            }
        }
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
            if !self.queue.is_empty() {
                let out = if self.queue.len() == 1 {
                    self.queue.pop_front().unwrap_or_default()
                } else {
                    let mut buf = bytes::BytesMut::new();
                    for b in self.queue.drain(..) {
                        buf.extend_from_slice(&b);
                    }
                    buf.freeze()
                };
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            if self.inner_done || self.guard.is_closed() {
                self.end();
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let out = self.guard.push_shared(&data);
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

/// Timing hooks of a response body, driven by [`ObservedBody`].
pub trait BodyObserver {
    /// The first data frame is being handed to the client.
    fn first_data(&mut self);
    /// A data frame is being handed to the client (after `first_data` for the first one).
    fn data(&mut self, _chunk: &Bytes) {}
    /// The body ended, exactly once. `complete`: its last frame was returned (or it was
    /// dropped already at its end, e.g. an empty body hyper never polls); `false` when it
    /// failed or was dropped before its end (client gone).
    fn end(&mut self, complete: bool);
}

/// Passes `inner` through unchanged and tells an observer when its first data frame goes
/// out and when it ends (used for per-call metrics: the observer can hold the in-flight
/// guard, which then lives as long as the stream). No allocation of its own.
pub struct ObservedBody<B: Body, O: BodyObserver> {
    /// `None` only while dropping: the inner body is dropped before the observer ends, so
    /// whatever it reports when dropped (a guarded stream's violations) is seen by `end`.
    inner: Option<B>,
    observer: Option<O>,
    seen_data: bool,
    /// Bytes left of an exactly sized body: hyper stops polling (and drops the body) once it
    /// has written `Content-Length` bytes, without waiting for the end frame.
    remaining: Option<u64>,
}

impl<B: Body, O: BodyObserver> ObservedBody<B, O> {
    pub fn new(inner: B, observer: O) -> Self {
        let remaining = inner.size_hint().exact();
        ObservedBody {
            inner: Some(inner),
            observer: Some(observer),
            seen_data: false,
            remaining,
        }
    }

    fn end(&mut self, complete: bool) {
        if let Some(mut o) = self.observer.take() {
            o.end(complete);
        }
    }
}

impl<B: Body, O: BodyObserver> Drop for ObservedBody<B, O> {
    fn drop(&mut self) {
        if self.observer.is_some() {
            let complete =
                self.inner.as_ref().map_or(true, Body::is_end_stream) || self.remaining == Some(0);
            drop(self.inner.take());
            self.end(complete);
        }
    }
}

impl<B, O> Body for ObservedBody<B, O>
where
    B: Body<Data = Bytes> + Unpin,
    O: BodyObserver + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    if let Some(left) = this.remaining.as_mut() {
                        *left = left.saturating_sub(d.len() as u64);
                    }
                    if let Some(o) = this.observer.as_mut() {
                        if !this.seen_data {
                            this.seen_data = true;
                            o.first_data();
                        }
                        o.data(d);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.end(false),
            Poll::Ready(None) => this.end(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().map_or(true, Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    type Item = Result<Frame<Bytes>, std::convert::Infallible>;

    fn relay<S>(s: S) -> RelayBody<StreamBody<S>>
    where
        S: futures_util::Stream<Item = Item>,
    {
        let far = Instant::now() + Duration::from_secs(60);
        RelayBody::new(StreamBody::new(s), far, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn ready_frames_are_joined_into_one() {
        let frames: Vec<Item> = ["a", "bc", "def"]
            .iter()
            .map(|s| Ok(Frame::data(Bytes::from(*s))))
            .collect();
        let mut b = relay(futures_util::stream::iter(frames));
        let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "abcdef");
        assert!(b.frame().await.is_none());
    }

    #[tokio::test]
    async fn data_that_has_not_arrived_is_not_waited_for() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Item>(4);
        let stream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|x| (x, rx))
        }));
        let mut b = relay(stream);
        tx.send(Ok(Frame::data(Bytes::from("first"))))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), b.frame()).await;
        let first = got
            .expect("released without the next chunk")
            .unwrap()
            .unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        tx.send(Ok(Frame::data(Bytes::from("second"))))
            .await
            .unwrap();
        drop(tx);
        let second = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "second");
        assert!(b.frame().await.is_none());
    }

    #[derive(Default)]
    struct Seen {
        first: u32,
        end: u32,
        complete: bool,
    }
    struct Obs(std::sync::Arc<std::sync::Mutex<Seen>>);
    impl BodyObserver for Obs {
        fn first_data(&mut self) {
            self.0.lock().unwrap().first += 1;
        }
        fn end(&mut self, complete: bool) {
            let mut s = self.0.lock().unwrap();
            s.end += 1;
            s.complete = complete;
        }
    }

    #[tokio::test]
    async fn observed_body_reports_first_data_and_end_once() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        let frames: Vec<Item> = ["a", "b"]
            .iter()
            .map(|s| Ok(Frame::data(Bytes::from(*s))))
            .collect();
        let mut b = ObservedBody::new(
            StreamBody::new(futures_util::stream::iter(frames)),
            Obs(seen.clone()),
        );
        assert_eq!(b.frame().await.unwrap().unwrap().into_data().unwrap(), "a");
        assert_eq!(seen.lock().unwrap().first, 1);
        assert_eq!(seen.lock().unwrap().end, 0);
        assert_eq!(b.frame().await.unwrap().unwrap().into_data().unwrap(), "b");
        assert!(b.frame().await.is_none());
        drop(b);
        let s = seen.lock().unwrap();
        assert_eq!((s.first, s.end, s.complete), (1, 1, true));
    }

    #[tokio::test]
    async fn observed_body_dropped_after_its_length_is_complete() {
        // hyper stops at Content-Length and drops the body without polling its end.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        let mut b = ObservedBody::new(full("xyz"), Obs(seen.clone()));
        assert_eq!(
            b.frame().await.unwrap().unwrap().into_data().unwrap(),
            "xyz"
        );
        drop(b);
        let s = seen.lock().unwrap();
        assert_eq!((s.first, s.end, s.complete), (1, 1, true));
    }

    #[tokio::test]
    async fn observed_body_dropped_early_ends_once() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        let b = ObservedBody::new(full("x"), Obs(seen.clone()));
        drop(b);
        let s = seen.lock().unwrap();
        assert_eq!((s.first, s.end, s.complete), (0, 1, false));
    }
}
