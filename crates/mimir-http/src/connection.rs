//! One client connection's state, as the accept loop and the timers see it:
//! whether a request is in progress, since when it has been idle, whether a
//! request's first bytes have arrived.

use axum::body::Body;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// What the connection's timer should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// A request is in progress: no timeout applies.
    Busy,
    /// Close the connection at this instant unless something happens.
    At(Instant, Why),
}

/// Why a connection is closed at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// No complete request header in time.
    HeaderRead,
    /// Idle between requests for too long.
    Idle,
}

/// Shared between the connection's task, its I/O, its requests and the
/// accept loop (which closes the longest-idle connection at the cap).
#[derive(Debug)]
pub(crate) struct Conn {
    in_flight: AtomicUsize,
    served: AtomicU64,
    /// Milliseconds since [`epoch`] at which the connection last went idle
    /// (comparable across connections, to find the longest idle).
    idle_since: AtomicU64,
    /// Milliseconds since [`epoch`] (plus one, so 0 means none) at which the
    /// first byte of a request head arrived while idle.
    head_since: AtomicU64,
    /// Cancelled to close the connection (at the cap, the longest idle).
    pub(crate) evict: CancellationToken,
}

/// The instant connection times count from, shared by all connections.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Conn {
    pub(crate) fn new() -> Arc<Conn> {
        let conn = Conn {
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            evict: CancellationToken::new(),
        };
        conn.idle_since.store(conn.now_ms(), Ordering::Release);
        Arc::new(conn)
    }

    fn now_ms(&self) -> u64 {
        epoch().elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        epoch() + Duration::from_millis(ms)
    }

    /// Bytes arrived from the client.
    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
        {
            self.head_since.store(self.now_ms() + 1, Ordering::Release);
        }
    }

    /// A request's headers were read; it is being answered until the guard drops.
    pub(crate) fn begin(self: &Arc<Conn>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        RequestGuard(self.clone())
    }

    /// True while no request is in progress.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When it went idle (for choosing the longest-idle connection).
    pub(crate) fn idle_since(&self) -> u64 {
        self.idle_since.load(Ordering::Acquire)
    }

    /// When the timer should next look at this connection.
    pub(crate) fn deadline(&self, header_read: Duration, idle: Duration) -> Deadline {
        if !self.is_idle() {
            return Deadline::Busy;
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != 0 {
            return Deadline::At(self.at(head - 1) + header_read, Why::HeaderRead);
        }
        let since = self.at(self.idle_since.load(Ordering::Acquire));
        if self.served.load(Ordering::Acquire) == 0 {
            // A client that connects must send a request without delay.
            Deadline::At(since + header_read, Why::HeaderRead)
        } else {
            Deadline::At(since + idle, Why::Idle)
        }
    }
}

/// Held while a request is answered, its response body included (so a
/// stream of server-sent events keeps its connection busy).
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.served.fetch_add(1, Ordering::AcqRel);
        conn.idle_since.store(conn.now_ms(), Ordering::Release);
        conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that releases its request's guard when done or dropped.
pub(crate) struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl GuardedBody {
    pub(crate) fn new(inner: Body, guard: RequestGuard) -> GuardedBody {
        GuardedBody {
            inner,
            _guard: guard,
        }
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A client stream that tells its [`Conn`] when bytes arrive.
pub(crate) struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, conn: Arc<Conn>) -> Tracked<S> {
        Tracked { inner, conn }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    #[test]
    fn a_fresh_connection_must_send_its_headers_in_time_then_may_idle_longer() {
        let conn = Conn::new();
        assert!(matches!(
            conn.deadline(HEADER, IDLE),
            Deadline::At(_, Why::HeaderRead)
        ));
        let guard = conn.begin();
        assert_eq!(conn.deadline(HEADER, IDLE), Deadline::Busy);
        drop(guard);
        assert!(matches!(
            conn.deadline(HEADER, IDLE),
            Deadline::At(_, Why::Idle)
        ));
        conn.read_some();
        assert!(matches!(
            conn.deadline(HEADER, IDLE),
            Deadline::At(_, Why::HeaderRead)
        ));
    }

    #[test]
    fn idle_times_compare_across_connections() {
        let older = Conn::new();
        std::thread::sleep(Duration::from_millis(5));
        let newer = Conn::new();
        assert!(older.idle_since() < newer.idle_since());
        drop(older.begin());
        assert!(older.idle_since() >= newer.idle_since());
    }
}
