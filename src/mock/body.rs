//! The mock's response body: one buffered chunk, or a queue of pre-rendered SSE events with an optional gap.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// Response body produced by the mock (`Unpin`, never fails).
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
            },
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Events {
                frames,
                gap,
                sleep,
                started,
            } => {
                if frames.is_empty() {
                    return Poll::Ready(None);
                }
                if *started && !gap.is_zero() {
                    let timer = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(*gap)));
                    ready!(timer.as_mut().poll(cx));
                    *sleep = None;
                }
                *started = true;
                Poll::Ready(frames.pop_front().map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Events { frames, .. } => frames.is_empty(),
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
