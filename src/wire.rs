//! Wire clocks: per-connection timestamps of bytes crossing a socket, the window of the
//! `parapet_overhead_seconds` histogram.
//!
//! A [`Clocked`] stream wraps a connection (the accepted client connection in
//! `server.rs`, each upstream TCP connection through [`ClockedConnector`]) and notes in its
//! [`WireClock`] when data was last read and when the current outgoing message's first byte
//! was written. An HTTP/1 connection carries one exchange at a time, so these instants
//! belong to the exchange in progress:
//!
//! - client side: the request's **arrival** is the last read before hyper handed the request
//!   to the service (the read that completed its head: hyper's parsing and dispatch count as
//!   Parapet's time, a slowly uploading client does not);
//! - upstream side: the exchange runs from the first byte of the request written to the last
//!   byte of the answer read. Its [`Exchange`] mark (taken at the response head) carries a
//!   generation number: a later request on the same pooled connection starts a new
//!   generation, and the old mark then reads nothing instead of a wrong instant.
//!
//! HTTP/2 multiplexes calls on one connection, so its socket instants belong to no single
//! call: the proxy uses neither side's clock for an h2 connection (see `proxy::handle`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Request extension set by the server for an HTTP/1 request: when its head's last byte
/// was read.
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

#[derive(Debug, Default)]
struct State {
    /// Incremented whenever a write follows a read (a new outgoing message).
    generation: u64,
    /// The last I/O was a write (the outgoing message is still being written).
    writing: bool,
    /// First byte written of the current outgoing message.
    first_write: Option<Instant>,
    /// Last byte written.
    last_write: Option<Instant>,
    /// Last byte read.
    last_read: Option<Instant>,
}

/// The instants of one connection, shared by its [`Clocked`] stream and whoever reads them.
#[derive(Debug, Default)]
pub struct WireClock(Mutex<State>);

impl WireClock {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data updated in single statements: a poisoned lock still holds
        // consistent instants.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_read(&self, at: Instant) {
        let mut s = self.state();
        s.writing = false;
        s.last_read = Some(at);
    }

    fn on_write(&self, at: Instant) {
        let mut s = self.state();
        if !s.writing {
            s.writing = true;
            s.generation += 1;
            s.first_write = Some(at);
        }
        s.last_write = Some(at);
    }

    /// Server side: when the request now being dispatched arrived — the last read, unless a
    /// write came after it (the bytes were read ahead, e.g. a pipelined request, before the
    /// previous response went out: then its arrival is unknown).
    pub fn arrival(&self) -> Option<Instant> {
        let s = self.state();
        match (s.last_read, s.last_write) {
            (Some(r), Some(w)) if w > r => None,
            (r, _) => r,
        }
    }

    /// Upstream side, at the response head: the exchange now in progress.
    pub fn exchange(self: &Arc<Self>) -> Option<Exchange> {
        let s = self.state();
        s.first_write.map(|sent| Exchange {
            clock: self.clone(),
            generation: s.generation,
            sent,
        })
    }
}

/// One upstream exchange: when its request's first byte was written; [`Exchange::took`]
/// adds when its answer's last byte was read.
#[derive(Debug, Clone)]
pub struct Exchange {
    clock: Arc<WireClock>,
    generation: u64,
    sent: Instant,
}

impl Exchange {
    /// First request byte written → last answer byte read so far. `None` once the pooled
    /// connection has started another exchange.
    pub fn took(&self) -> Option<std::time::Duration> {
        let s = self.clock.state();
        if s.generation != self.generation {
            return None;
        }
        s.last_read.map(|r| r.saturating_duration_since(self.sent))
    }
}

/// A stream that notes its reads and writes in a [`WireClock`]. Adds two clock reads and
/// an uncontended lock per read or write call that moved data.
#[derive(Debug)]
pub struct Clocked<S> {
    inner: S,
    clock: Arc<WireClock>,
}

impl<S> Clocked<S> {
    pub fn new(inner: S) -> (Self, Arc<WireClock>) {
        let clock = Arc::new(WireClock::default());
        (
            Clocked {
                inner,
                clock: clock.clone(),
            },
            clock,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Clocked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_read(Instant::now());
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Clocked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write(Instant::now());
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write(Instant::now());
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Puts the connection's clock into every response's extensions (hyper-util's legacy
/// client copies a connection's `Connected::extra` into each response it carries).
impl<S: Connection> Connection for Clocked<S> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.clock.clone())
    }
}

/// A connector whose TCP streams are [`Clocked`]: wraps hyper-util's `HttpConnector`
/// (beneath TLS, so the instants are those of the encrypted bytes on the socket).
#[derive(Debug, Clone)]
pub struct ClockedConnector<C>(pub C);

type Tcp = hyper_util::rt::TokioIo<tokio::net::TcpStream>;

impl<C> tower_service::Service<http::Uri> for ClockedConnector<C>
where
    C: tower_service::Service<http::Uri, Response = Tcp> + Send,
    C::Future: Send + 'static,
{
    type Response = hyper_util::rt::TokioIo<Clocked<tokio::net::TcpStream>>;
    type Error = C::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            Ok(hyper_util::rt::TokioIo::new(Clocked::new(tcp).0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn exchange_runs_from_first_write_to_last_read_and_expires_with_the_next() {
        let (a, mut peer) = tokio::io::duplex(64);
        let (mut io, clock) = Clocked::new(a);
        assert!(clock.exchange().is_none(), "nothing written yet");
        let t0 = Instant::now();
        io.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        io.write_all(b"\r\n").await.unwrap();
        let first = clock.exchange().unwrap();
        assert!(first.sent >= t0);
        assert_eq!(first.took(), None, "no answer read yet");
        let mut buf = [0u8; 64];
        assert!(peer.read(&mut buf).await.unwrap() > 0);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        peer.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let n = io.read(&mut buf).await.unwrap();
        assert!(n > 0);
        let took = first.took().unwrap();
        assert!(took >= std::time::Duration::from_millis(20), "{took:?}");
        // The second write is part of the same request: same exchange.
        let same = clock.exchange().unwrap();
        assert_eq!(same.generation, first.generation);
        // The next request on the pooled connection: the old mark reads nothing.
        io.write_all(b"GET /next HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(first.took(), None);
        assert!(clock.exchange().unwrap().generation > first.generation);
    }

    #[tokio::test]
    async fn arrival_is_the_last_read_unless_a_write_followed_it() {
        let (a, mut peer) = tokio::io::duplex(64);
        let (mut io, clock) = Clocked::new(a);
        assert_eq!(clock.arrival(), None);
        let mut buf = [0u8; 64];
        peer.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let first_piece = clock.arrival().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        peer.write_all(b"\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        // A slow client's earlier bytes do not count: the arrival is the read that completed
        // the head.
        let arrival = clock.arrival().unwrap();
        assert!(arrival >= first_piece + std::time::Duration::from_millis(20));
        // After the response went out, bytes read before it are no arrival.
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert_eq!(clock.arrival(), None);
        peer.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        assert!(clock.arrival().unwrap() > arrival);
    }

    #[tokio::test]
    async fn clocked_connector_puts_the_clock_into_responses() {
        use http_body_util::{BodyExt, Full};
        use hyper_util::client::legacy::{connect::HttpConnector, Client};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            let _ = s.read(&mut buf).await;
        });
        let client: Client<_, Full<bytes::Bytes>> =
            Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(ClockedConnector(HttpConnector::new()));
        let resp = client
            .get(format!("http://{addr}/").parse().unwrap())
            .await
            .unwrap();
        let clock = resp.extensions().get::<Arc<WireClock>>().unwrap().clone();
        let exchange = clock.exchange().unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        let took = exchange.took().unwrap();
        assert!(took >= std::time::Duration::from_millis(15), "{took:?}");
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    }
}
