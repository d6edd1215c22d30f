//! The server's connections: at most N at once (a permit each), writes that stall or outlive the connection's age cut off, and answers that close a connection once it is older than its maximum age.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, Response};
use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::ConnectionCounts;

/// An acceptor that holds at most N connections: one semaphore permit per connection, kept
/// by its stream; a connection accepted past the limit is closed at once. A connection whose
/// peer takes nothing of an answer for `write_stall` (it reads nothing, its window stays shut)
/// is closed too: hyper's own timer covers only the reading of request heads, and a client
/// that pipelines requests and never reads the answers would hold its permit for ever. With a
/// maximum age ([`Limited::retired_after`]), a connection older than it is closed after its next
/// answer (`Connection: close`), and its writes stop one write stall after the later of its age
/// and its newest answer ([`Lifetime`]), never while a request is being answered: a peer that
/// takes each answer a segment at a time, just within the stall, holds its permit no longer than
/// that, while an answer made at any time gets a whole write stall to be written.
#[derive(Debug, Clone)]
pub(crate) struct Limited<A> {
    inner: A,
    connections: Arc<Semaphore>,
    write_stall: Duration,
    /// The age after which a connection answers `Connection: close` (none: no age limit).
    max_age: Option<Duration>,
    /// Where the connections held and refused are counted, if anywhere (the witness exports no
    /// metrics).
    counts: Option<ConnectionCounts>,
}

impl<A> Limited<A> {
    pub(crate) fn new(inner: A, connections: Arc<Semaphore>, write_stall: Duration) -> Self {
        Self {
            inner,
            connections,
            write_stall,
            max_age: None,
            counts: None,
        }
    }

    /// Closes each connection after its first answer once it is older than `age`, and stops its
    /// writes one write stall after the later of that age and its newest answer.
    pub(crate) fn retired_after(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Counts the connections held and refused in `counts` (`parmana_connections_open`,
    /// `parmana_connections_refused_total`).
    pub(crate) fn counted_in(mut self, counts: ConnectionCounts) -> Self {
        self.counts = Some(counts);
        self
    }
}

/// A connection's slot: its semaphore permit, counted open in the gauge until dropped (the
/// slot is counted from the accept, through a TLS handshake, to the close); dropped before any
/// request of the connection reached its service, counted as a connection without a request.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
    counts: Option<ConnectionCounts>,
    /// Set by the connection's service ([`Retiring`]) at its first request.
    routed: Arc<AtomicBool>,
}

impl Slot {
    fn taken(permit: OwnedSemaphorePermit, counts: Option<&ConnectionCounts>) -> Self {
        if let Some(counts) = counts {
            counts.open.inc();
        }
        Self {
            _permit: permit,
            counts: counts.cloned(),
            routed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(counts) = &self.counts {
            counts.open.dec();
            if !self.routed.load(Ordering::Relaxed) {
                counts.without_request.inc();
            }
        }
    }
}

/// How often at most a failure to accept is logged (each is counted): the accept loop retries
/// every 50 ms, and a line each time would flood the log while the cause lasts.
const ACCEPT_FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// The listener's failures to accept a connection for want of a resource (`accept(2)` refused:
/// out of open files, memory or buffers), which axum-server's accept loop retries every 50 ms:
/// while they last, no connection is taken (clients wait in the listen backlog, or time out).
/// Each is counted in `parmana_accept_failures_total` (the exact count); the first is logged at
/// `error`, and then at most one line per [`ACCEPT_FAILURE_LOG_EVERY`] with how many there were
/// since the line before. A failure that concerns one connection only (aborted before it was
/// taken) is logged at `debug`, not counted: nothing is wrong with the server.
#[derive(Debug)]
pub(crate) struct AcceptFailures {
    counted: prometheus_client::metrics::counter::Counter,
    /// Failures counted since the last line, which the next line reports.
    unlogged: AtomicU64,
    /// When the last line was logged.
    last_line: std::sync::Mutex<Option<std::time::Instant>>,
}

impl AcceptFailures {
    /// Failures counted in `counted` (`parmana_accept_failures_total` for `parmana serve`).
    pub(crate) fn new(counted: prometheus_client::metrics::counter::Counter) -> Self {
        Self {
            counted,
            unlogged: AtomicU64::new(0),
            last_line: std::sync::Mutex::new(None),
        }
    }

    /// Counts and logs `error` as above.
    pub(crate) fn record(&self, error: &io::Error) {
        if !for_want_of_a_resource(error) {
            tracing::debug!(target: "parmana::server", %error, "a connection could not be accepted");
            return;
        }
        self.counted.inc();
        self.unlogged.fetch_add(1, Ordering::SeqCst);
        let now = std::time::Instant::now();
        let mut last_line = self
            .last_line
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last_line.is_some_and(|at| now.duration_since(at) < ACCEPT_FAILURE_LOG_EVERY) {
            return;
        }
        *last_line = Some(now);
        let failures = self.unlogged.swap(0, Ordering::SeqCst);
        drop(last_line);
        tracing::error!(
            target: "parmana::server",
            %error,
            failures,
            "cannot accept connections: none is taken until this passes (retried every 50 ms; \
             out of open files: raise the limit or lower max_connections)"
        );
    }
}

/// Whether `error` of `accept(2)` is the process or the system out of a resource (open files,
/// memory, buffers) — the server's condition, which lasts — rather than one connection's.
#[cfg(unix)]
fn for_want_of_a_resource(error: &io::Error) -> bool {
    use rustix::io::Errno;
    error.raw_os_error().is_some_and(|code| {
        [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
            .iter()
            .any(|errno| errno.raw_os_error() == code)
    })
}

#[cfg(not(unix))]
fn for_want_of_a_resource(_error: &io::Error) -> bool {
    true
}

/// A stream that knows its peer's address (for the log line of a failed TLS handshake).
pub(crate) trait Peer {
    fn peer(&self) -> Option<std::net::SocketAddr>;
}

impl Peer for tokio::net::TcpStream {
    fn peer(&self) -> Option<std::net::SocketAddr> {
        self.peer_addr().ok()
    }
}

/// How many refused TLS handshakes are logged at `info` in one second; the rest of that second's
/// at `debug` (each is counted in `parmana_connections_without_request_total` anyway): a scanner
/// or a client speaking plain HTTP to the TLS port cannot flood the log.
const LOGGED_HANDSHAKE_REFUSALS_PER_SECOND: u64 = 10;

/// The second (since the Unix epoch) and the count of refused handshakes logged at `info` in it.
static HANDSHAKE_REFUSALS_LOGGED: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));

/// Whether one more refused handshake may be logged at `info` this second.
fn handshake_refusal_loggable() -> bool {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    loggable_in(&HANDSHAKE_REFUSALS_LOGGED, second)
}

/// Counts one more refusal in `second` in `logged`; whether it is within the rate.
fn loggable_in(logged: &std::sync::Mutex<(u64, u64)>, second: u64) -> bool {
    let Ok(mut logged) = logged.lock() else {
        return false;
    };
    if logged.0 != second {
        *logged = (second, 0);
    }
    logged.1 = logged.1.saturating_add(1);
    logged.1 <= LOGGED_HANDSHAKE_REFUSALS_PER_SECOND
}

/// Logs a connection the inner acceptor (a TLS handshake) refused: a client the TLS
/// configuration turned away (no client certificate or one no named CA issued, no common
/// protocol version, a certificate it does not trust) at `info` — at most
/// [`LOGGED_HANDSHAKE_REFUSALS_PER_SECOND`] a second — so that an operator can see why a client
/// cannot connect; one that closed, reset or stayed silent until the handshake timeout (port
/// scans, TCP health checks), and refusals past that rate, at `debug` only. Each is also counted
/// in `parmana_connections_without_request_total`.
fn log_refused_handshake(peer: Option<std::net::SocketAddr>, error: &io::Error) {
    let peer = peer.map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
    if error.kind() == io::ErrorKind::InvalidData && handshake_refusal_loggable() {
        tracing::info!(
            target: "parmana::server",
            peer = %peer,
            error = %error,
            "a TLS handshake failed; the connection is closed"
        );
    } else {
        tracing::debug!(
            target: "parmana::server",
            peer = %peer,
            error = %error,
            "a connection ended in its TLS handshake"
        );
    }
}

impl<A, I, S> Accept<I, S> for Limited<A>
where
    A: Accept<I, S> + Clone + Send + 'static,
    A::Future: Send + 'static,
    I: Peer + Send + 'static,
    S: Send + 'static,
{
    type Stream = Counted<A::Stream>;
    type Service = Retiring<A::Service>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let slot = match Arc::clone(&self.connections).try_acquire_owned() {
            Ok(permit) => Ok(Slot::taken(permit, self.counts.as_ref())),
            Err(_) => {
                if let Some(counts) = &self.counts {
                    counts.refused.inc();
                }
                Err(io::Error::other("too many connections"))
            }
        };
        let inner = self.inner.clone();
        let write_stall = self.write_stall;
        // Counted from the accept (a TLS handshake included).
        let lifetime = self
            .max_age
            .map(|max_age| Arc::new(Lifetime::new(tokio::time::Instant::now(), max_age)));
        let peer = stream.peer();
        Box::pin(async move {
            let slot = slot?;
            let routed = Arc::clone(&slot.routed);
            let (stream, service) = inner
                .accept(stream, service)
                .await
                .inspect_err(|error| log_refused_handshake(peer, error))?;
            Ok((
                Counted {
                    inner: stream,
                    _slot: slot,
                    write_stall,
                    stalled: None,
                    lifetime: lifetime.clone(),
                },
                Retiring {
                    inner: service,
                    lifetime,
                    routed,
                },
            ))
        })
    }
}

/// A connection's age, shared by its stream and its service: when it was accepted, how old it
/// may grow, when its newest answer was ready, and how many of its requests are being answered.
#[derive(Debug)]
pub(crate) struct Lifetime {
    born: tokio::time::Instant,
    max_age: Duration,
    /// When the newest answer was ready, in nanoseconds after `born` (a u64 holds 584 years).
    newest_answer_ns: AtomicU64,
    /// Requests handed to the service and not answered yet. While one is, hyper still flushes
    /// and may write `100 Continue`: the write deadline waits (`request_timeout_ms` bounds the
    /// request), so a request is never cut off between its head and its answer.
    unanswered: AtomicUsize,
}

impl Lifetime {
    fn new(born: tokio::time::Instant, max_age: Duration) -> Self {
        Self {
            born,
            max_age,
            newest_answer_ns: AtomicU64::new(0),
            unanswered: AtomicUsize::new(0),
        }
    }

    /// Whether the connection is past its maximum age at `now`.
    fn retired(&self, now: tokio::time::Instant) -> bool {
        now.saturating_duration_since(self.born) >= self.max_age
    }

    /// Notes that an answer was ready at `now`.
    fn answered(&self, now: tokio::time::Instant) {
        let at =
            u64::try_from(now.saturating_duration_since(self.born).as_nanos()).unwrap_or(u64::MAX);
        self.newest_answer_ns.fetch_max(at, Ordering::Relaxed);
    }

    /// When the connection's writes stop: `stall` after the later of its maximum age and its
    /// newest answer (so every answer gets a whole stall to be written, and none is written for
    /// ever once the age has passed); none while a request is being answered.
    fn write_deadline(&self, stall: Duration) -> Option<tokio::time::Instant> {
        if self.unanswered.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let newest = Duration::from_nanos(self.newest_answer_ns.load(Ordering::Relaxed));
        self.born
            .checked_add(self.max_age.max(newest))?
            .checked_add(stall)
    }
}

/// A connection's stream with its connection permit; a write that makes no progress for
/// `write_stall` fails (`TimedOut`), and so does one past the connection's write deadline
/// ([`Lifetime::write_deadline`]); hyper then closes the connection.
#[derive(Debug)]
pub(crate) struct Counted<T> {
    inner: T,
    _slot: Slot,
    write_stall: Duration,
    /// Armed when a write first waits (when that was, and a timer until the stall or the write
    /// deadline, whichever comes first, moved whenever the deadline does), disarmed when one
    /// makes progress.
    stalled: Option<(tokio::time::Instant, Pin<Box<tokio::time::Sleep>>)>,
    /// The connection's age limit (none: no limit).
    lifetime: Option<Arc<Lifetime>>,
}

impl<T> Counted<T> {
    /// Refuses a write past the write deadline, before anything of it is written.
    fn past_deadline(&self) -> Option<io::Error> {
        let deadline = self.lifetime.as_ref()?.write_deadline(self.write_stall)?;
        (tokio::time::Instant::now() >= deadline).then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection outlived its maximum age and a write stall",
            )
        })
    }

    /// Passes on a write's outcome, timing how long writes wait without progress.
    fn timed<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let write_stall = self.write_stall;
        let deadline = self
            .lifetime
            .as_ref()
            .and_then(|lifetime| lifetime.write_deadline(write_stall));
        let (since, timer) = self.stalled.get_or_insert_with(|| {
            let now = tokio::time::Instant::now();
            (now, Box::pin(tokio::time::sleep_until(now)))
        });
        // Judged again at each wait: an answer made meanwhile moves the deadline later, a
        // request taken meanwhile lifts it.
        let stalled = *since + write_stall;
        let until = deadline.map_or(stalled, |deadline| deadline.min(stalled));
        if timer.deadline() != until {
            timer.as_mut().reset(until);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer took nothing of the answer in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.past_deadline() {
            return Poll::Ready(Err(error));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Never refused for the deadline: hyper flushes at every turn of a connection, with
        // nothing to write too; a flush that waits is timed like a write.
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Over TLS, closing writes the close_notify record first: to a peer that reads
        // nothing, that write waits like any other, and is timed like one (a close is never
        // refused for the deadline: the connection is ending).
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.timed(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.past_deadline() {
            return Poll::Ready(Err(error));
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection's service: once the connection is older than its maximum age, each answer
/// carries `Connection: close`, so hyper closes the connection after writing it — the close a
/// client expects, never one in the middle of an exchange.
#[derive(Debug, Clone)]
pub(crate) struct Retiring<S> {
    inner: S,
    /// The connection's age limit (none: its answers never close it).
    lifetime: Option<Arc<Lifetime>>,
    /// Whether a request of the connection reached this service (its slot's flag).
    routed: Arc<AtomicBool>,
}

impl<S, B, R> tower::Service<Request<B>> for Retiring<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.routed.store(true, Ordering::Relaxed);
        let unanswered = self.lifetime.clone().map(Unanswered::taken);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if let Some(Unanswered(lifetime)) = &unanswered {
                // Judged when the answer is ready: a request that crossed the age closes too,
                // and the answer gets a whole write stall from now to be written.
                let now = tokio::time::Instant::now();
                lifetime.answered(now);
                if lifetime.retired(now) {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
            }
            // Answered (after the deadline moved): the deadline holds again.
            drop(unanswered);
            Ok(response)
        })
    }
}

/// A request being answered, counted in its connection's [`Lifetime`] until dropped (answered,
/// failed or abandoned alike).
#[derive(Debug)]
struct Unanswered(Arc<Lifetime>);

impl Unanswered {
    fn taken(lifetime: Arc<Lifetime>) -> Self {
        lifetime.unanswered.fetch_add(1, Ordering::Relaxed);
        Self(lifetime)
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.0.unanswered.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream whose writes go through at once and whose close never does (a TLS stream's
    /// close_notify waiting on a peer that reads nothing).
    struct NeverCloses;

    impl tokio::io::AsyncWrite for NeverCloses {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    #[test]
    fn a_close_that_makes_no_progress_fails_after_the_write_stall_and_frees_the_slot() {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let connections = Arc::new(Semaphore::new(1));
        let closed = tokio.block_on(async {
            let permit = Arc::clone(&connections).try_acquire_owned().unwrap();
            let mut stream = Counted {
                inner: NeverCloses,
                _slot: Slot::taken(permit, None),
                write_stall: Duration::from_millis(20),
                stalled: None,
                lifetime: None,
            };
            let closed = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::io::AsyncWriteExt::shutdown(&mut stream),
            )
            .await;
            drop(stream);
            closed
        });
        let error = closed
            .expect("the close waited past the write stall")
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(connections.available_permits(), 1);
    }

    /// Runs `test` on a current-thread runtime whose clock is paused (moved by hand).
    fn on_paused_clock<F: Future>(test: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(test)
    }

    /// A stream that counts what is written to it, and whose writes wait for ever once `shut`.
    #[derive(Default)]
    struct Counts {
        written: usize,
        shut: bool,
    }

    impl tokio::io::AsyncWrite for Counts {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.shut {
                return Poll::Pending;
            }
            self.written += buf.len();
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn aged(max_age: Duration, stall: Duration) -> (Counted<Counts>, Arc<Lifetime>) {
        let lifetime = Arc::new(Lifetime::new(tokio::time::Instant::now(), max_age));
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let stream = Counted {
            inner: Counts::default(),
            _slot: Slot::taken(permit, None),
            write_stall: stall,
            stalled: None,
            lifetime: Some(Arc::clone(&lifetime)),
        };
        (stream, lifetime)
    }

    /// Writes stop one stall after the later of the age and the newest answer — refused before
    /// any byte of them is written — while an answer made late still gets a whole stall.
    #[test]
    fn writes_stop_a_stall_after_the_age_or_the_newest_answer() {
        on_paused_clock(async {
            use tokio::io::AsyncWriteExt as _;
            let stall = Duration::from_secs(30);
            let (mut stream, lifetime) = aged(Duration::from_secs(600), stall);
            assert_eq!(stream.write(b"early").await.unwrap(), 5);
            tokio::time::advance(Duration::from_secs(629)).await;
            assert_eq!(stream.write(b"in time").await.unwrap(), 7);
            tokio::time::advance(Duration::from_secs(1)).await;
            let error = stream.write(b"late").await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            assert_eq!(
                stream.inner.written, 12,
                "nothing of the refused write went out"
            );
            // An answer ready at 650 s (a long request) is written within its own stall.
            tokio::time::advance(Duration::from_secs(20)).await;
            lifetime.answered(tokio::time::Instant::now());
            assert_eq!(stream.write(b"answer").await.unwrap(), 6);
            tokio::time::advance(Duration::from_secs(29)).await;
            assert_eq!(stream.write(b"more").await.unwrap(), 4);
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(stream.write(b"too late").await.is_err());
        });
    }

    /// A write that waits when the deadline comes fails at the deadline, not a whole stall later.
    #[test]
    fn a_waiting_write_fails_at_the_deadline() {
        on_paused_clock(async {
            use tokio::io::AsyncWriteExt as _;
            let stall = Duration::from_secs(30);
            let (mut stream, _) = aged(Duration::from_secs(600), stall);
            tokio::time::advance(Duration::from_secs(620)).await;
            stream.inner.shut = true;
            let started = tokio::time::Instant::now();
            let error = stream.write(b"waits").await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            // 630 s after the accept: 10 s of waiting, not the 30 s stall.
            assert_eq!(started.elapsed(), Duration::from_secs(10));
        });
    }

    /// A flush with nothing to write goes through past the deadline: hyper flushes at every turn
    /// of a connection, a request being read included.
    #[test]
    fn a_flush_past_the_deadline_goes_through() {
        on_paused_clock(async {
            use tokio::io::AsyncWriteExt as _;
            let (mut stream, _) = aged(Duration::from_secs(600), Duration::from_secs(30));
            tokio::time::advance(Duration::from_secs(700)).await;
            stream.flush().await.unwrap();
            assert!(stream.write(b"late").await.is_err());
        });
    }

    /// A write that waits when an answer moves the deadline later is judged by the new deadline
    /// (its timer moves with it), and a request taken while it waits lifts the deadline.
    #[test]
    fn a_waiting_write_follows_the_deadline_as_it_moves() {
        on_paused_clock(async {
            use tokio::io::AsyncWriteExt as _;
            let stall = Duration::from_secs(30);
            let (mut stream, lifetime) = aged(Duration::from_secs(600), stall);
            tokio::time::advance(Duration::from_secs(620)).await;
            stream.inner.shut = true;
            let started = tokio::time::Instant::now();
            // Waiting since 620 s, the deadline at 630 s.
            let waited = tokio::time::timeout(Duration::from_secs(5), stream.write(b"waits")).await;
            assert!(waited.is_err(), "the write was still waiting");
            // An answer at 625 s: the deadline is 655 s now, the stall (from 620 s) ends first.
            lifetime.answered(tokio::time::Instant::now());
            let error = stream.write(b"waits").await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            assert_eq!(started.elapsed(), stall);

            // A request being answered: no deadline, only the stall.
            let (mut stream, lifetime) = aged(Duration::from_secs(600), stall);
            tokio::time::advance(Duration::from_secs(620)).await;
            stream.inner.shut = true;
            let started = tokio::time::Instant::now();
            let unanswered = Unanswered::taken(Arc::clone(&lifetime));
            assert!(stream.write(b"waits").await.is_err());
            assert_eq!(started.elapsed(), stall);
            drop(unanswered);
            assert!(stream.write(b"late").await.is_err());
        });
    }

    /// A service whose answers wait until `go` is notified.
    #[derive(Clone)]
    struct Waits(Arc<tokio::sync::Notify>);

    impl tower::Service<Request<()>> for Waits {
        type Response = Response<()>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Response<()>, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            let go = Arc::clone(&self.0);
            Box::pin(async move {
                go.notified().await;
                Ok(Response::new(()))
            })
        }
    }

    /// While a request is being answered, the connection's writes go on past the deadline (a
    /// `100 Continue`, say); its answer then gets a whole stall, and once no request is being
    /// answered (answered or abandoned), the deadline holds again.
    #[test]
    fn while_a_request_is_answered_the_write_deadline_waits() {
        use tower::Service as _;
        on_paused_clock(async {
            use tokio::io::AsyncWriteExt as _;
            let stall = Duration::from_secs(30);
            let (mut stream, lifetime) = aged(Duration::from_secs(600), stall);
            let go = Arc::new(tokio::sync::Notify::new());
            let mut service = Retiring {
                inner: Waits(Arc::clone(&go)),
                lifetime: Some(Arc::clone(&lifetime)),
                routed: Arc::default(),
            };
            tokio::time::advance(Duration::from_secs(640)).await;
            let answer = service.call(Request::new(()));
            assert_eq!(stream.write(b"100 Continue").await.unwrap(), 12);
            tokio::time::advance(Duration::from_secs(60)).await;
            go.notify_one();
            let response = answer.await.unwrap();
            assert_eq!(
                response.headers().get(CONNECTION),
                Some(&HeaderValue::from_static("close"))
            );
            // Answered at 700 s: written until 730 s.
            tokio::time::advance(Duration::from_secs(29)).await;
            assert_eq!(stream.write(b"answer").await.unwrap(), 6);
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(stream.write(b"late").await.is_err());
            // A request abandoned unanswered lifts the deadline only while it is pending.
            let abandoned = service.call(Request::new(()));
            assert_eq!(stream.write(b"more").await.unwrap(), 4);
            drop(abandoned);
            assert!(stream.write(b"late").await.is_err());
            assert_eq!(lifetime.unanswered.load(Ordering::Relaxed), 0);
        });
    }

    /// A service that answers 200 with no headers.
    #[derive(Clone)]
    struct Answers;

    impl tower::Service<Request<()>> for Answers {
        type Response = Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<()>, std::convert::Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new(())))
        }
    }

    /// Before its age a connection's answers keep it open; from its age on they close it; with
    /// no age, never.
    #[test]
    fn answers_close_the_connection_from_its_maximum_age_on() {
        use tower::Service as _;
        on_paused_clock(async {
            let closes = |response: Response<()>| response.headers().get(CONNECTION).cloned();
            let lifetime = Arc::new(Lifetime::new(
                tokio::time::Instant::now(),
                Duration::from_secs(600),
            ));
            let mut aged = Retiring {
                inner: Answers,
                lifetime: Some(Arc::clone(&lifetime)),
                routed: Arc::default(),
            };
            let mut ageless = Retiring {
                inner: Answers,
                lifetime: None,
                routed: Arc::default(),
            };
            assert_eq!(closes(aged.call(Request::new(())).await.unwrap()), None);
            tokio::time::advance(Duration::from_secs(600)).await;
            // Each answer is noted: the write deadline moves with it.
            assert_eq!(lifetime.newest_answer_ns.load(Ordering::Relaxed), 0);
            assert_eq!(
                closes(aged.call(Request::new(())).await.unwrap()),
                Some(HeaderValue::from_static("close"))
            );
            assert_eq!(
                lifetime.newest_answer_ns.load(Ordering::Relaxed),
                600_000_000_000
            );
            assert_eq!(closes(ageless.call(Request::new(())).await.unwrap()), None);
        });
    }
}

#[cfg(test)]
mod handshake_log_tests {
    use super::*;

    /// At most ten refused handshakes a second are logged at `info`; the count starts again
    /// each second.
    #[test]
    fn refused_handshakes_are_logged_at_a_bounded_rate() {
        let logged = std::sync::Mutex::new((0, 0));
        let first: Vec<bool> = (0..12).map(|_| loggable_in(&logged, 7)).collect();
        assert_eq!(first.iter().filter(|loggable| **loggable).count(), 10);
        assert!(first[..10].iter().all(|loggable| *loggable));
        assert!(loggable_in(&logged, 8));
    }
}
