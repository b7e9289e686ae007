//! The mock's response body: one buffered chunk, or a queue of pre-rendered SSE events with an optional gap.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The error a mock body fails with to simulate a connection cut mid-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockCut;

impl std::fmt::Display for MockCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mock fault: stream cut")
    }
}

impl std::error::Error for MockCut {}

/// Response body produced by the mock (`Unpin`; fails only when a `cut` fault was asked for).
#[derive(Debug)]
pub struct MockBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Events {
        frames: VecDeque<Bytes>,
        gap: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
        started: bool,
        /// Frames still to send before failing with [`MockCut`] (`None`: never).
        cut_after: Option<usize>,
    },
}

impl MockBody {
    /// A complete body sent in one frame (with an exact `content-length`).
    pub fn full(bytes: impl Into<Bytes>) -> MockBody {
        let bytes = bytes.into();
        MockBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// An empty body.
    pub fn empty() -> MockBody {
        MockBody {
            kind: Kind::Full(None),
        }
    }

    /// One frame per event; `gap` is waited between consecutive frames (not before the first).
    pub fn events(frames: Vec<Bytes>, gap: Duration) -> MockBody {
        MockBody {
            kind: Kind::Events {
                frames: frames.into(),
                gap,
                sleep: None,
                started: false,
                cut_after: None,
            },
        }
    }

    /// Like [`MockBody::events`], but the body fails (connection cut) after `after` frames.
    pub fn cut_events(frames: Vec<Bytes>, gap: Duration, after: usize) -> MockBody {
        let mut body = MockBody::events(frames, gap);
        if let Kind::Events { cut_after, .. } = &mut body.kind {
            *cut_after = Some(after);
        }
        body
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = MockCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, MockCut>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Events {
                frames,
                gap,
                sleep,
                started,
                cut_after,
            } => {
                if *cut_after == Some(0) {
                    // Pause first so the events already written are flushed to the client
                    // (hyper discards buffered output when a body fails).
                    let timer = sleep.get_or_insert_with(|| {
                        Box::pin(tokio::time::sleep(Duration::from_millis(20)))
                    });
                    ready!(timer.as_mut().poll(cx));
                    return Poll::Ready(Some(Err(MockCut)));
                }
                if frames.is_empty() {
                    return Poll::Ready(None);
                }
                if *started && !gap.is_zero() {
                    let timer = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(*gap)));
                    ready!(timer.as_mut().poll(cx));
                    *sleep = None;
                }
                *started = true;
                if let Some(n) = cut_after {
                    *n -= 1;
                }
                Poll::Ready(frames.pop_front().map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Events {
                frames, cut_after, ..
            } => frames.is_empty() && cut_after.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Events { .. } => SizeHint::default(),
        }
    }
}
