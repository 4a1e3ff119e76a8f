//! The HTTP listener: header-read and idle timeouts, a connection cap, and a graceful shutdown
//! that is bounded in time.
//!
//! - A client must send a request's complete headers within `header_read_timeout` (hyper's
//!   timer), so a half-sent request cannot hold a connection.
//! - A connection with no request in progress and no traffic for `idle_timeout` is closed.
//! - At most `max_connections` connections are open; further clients wait in the kernel's
//!   listen backlog until one closes (the process never runs out of file descriptors).
//! - At most `max_connections_per_address` of them come from one client address
//!   (`peers`); one more is answered 429 and closed at once, so a single address
//!   cannot hold the whole cap.
//! - On shutdown the listener closes at once, open connections finish their requests in
//!   progress and close, and whatever is still open after `shutdown_timeout` is dropped.

use super::peers::{PeerCounts, PeerSlot};
use crate::logs::Every;
use crate::metrics::Metrics;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::Service;

/// Connection limits (settings, see `config`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    /// Open connections per client address.
    pub peers: Arc<PeerCounts>,
    /// Counts the connections refused per address.
    pub metrics: Arc<Metrics>,
}

impl ServeOptions {
    pub fn new(state: &crate::state::AppState) -> Self {
        let c = &state.config;
        Self {
            header_read_timeout: c.header_read_timeout,
            idle_timeout: c.idle_timeout,
            max_connections: c.max_connections as usize,
            shutdown_timeout: c.shutdown_timeout,
            peers: PeerCounts::new(
                c.max_connections_per_address as usize,
                c.trusted_proxies.clone(),
            ),
            metrics: state.metrics.clone(),
        }
    }
}

/// The answer to a connection over its address's limit (the API's error shape, then close),
/// built once: refusals come in floods.
static OVER_LIMIT: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = serde_json::to_vec(
        &baton_core::wire::ErrorBody::new(
            baton_core::wire::ErrorCode::RateLimited,
            "too many open connections from this address",
        )
        .with_retry_after(1),
    )
    .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
});

/// Answers and closes a connection over its address's limit without waiting on the client:
/// what it already sent is read (so closing does not reset the connection before the answer
/// arrives), the answer is written if the socket takes it, and the socket is closed.
fn refuse(stream: TcpStream, peer: SocketAddr, opts: &ServeOptions, warning: &Every) {
    opts.metrics.rate_limited("connections_per_address");
    let mut sink = [0u8; 4096];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(&OVER_LIMIT);
    drop(stream);
    // One warning a minute at most: a flood must not flood the log too.
    if warning.due(crate::clock::now_ms()) {
        tracing::warn!(
            peer = %peer.ip(),
            open = opts.peers.open(peer.ip()),
            "connections from one address over BATON_MAX_CONNECTIONS_PER_ADDRESS: refused \
             (if this address is a proxy of yours, list it in BATON_TRUSTED_PROXIES)"
        );
    }
}

/// Raises the soft open-file limit to the hard limit; returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::increase_nofile_limit(u64::MAX).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then shuts down within
/// `opts.shutdown_timeout`. Returns how many connections had to be dropped at the end.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> usize {
    let max = opts.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let warning = Every::new(Duration::from_secs(60));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(peer_slot) = opts.peers.admit(peer.ip()) else {
            refuse(stream, peer, &opts, &warning);
            continue;
        };
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            (opts.header_read_timeout, opts.idle_timeout),
            stop_rx.clone(),
            (slot, peer_slot),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = max - slots.available_permits();
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish");
    }
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(opts.shutdown_timeout, slots.acquire_many(all)).await;
    match drained {
        Ok(_) => 0,
        Err(_) => {
            let dropped = max - slots.available_permits();
            tracing::warn!(
                dropped,
                "connections still open after the shutdown timeout: dropped"
            );
            dropped
        }
    }
}

/// One connection: hyper with the header-read timeout, plus the idle watchdog and the
/// shutdown signal. `_slots` free its places under the caps when the connection ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    (header_read_timeout, idle_timeout): (Duration, Duration),
    mut stop: watch::Receiver<bool>,
    _slots: (OwnedSemaphorePermit, PeerSlot),
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let seen = activity.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = seen.begin();
        let mut app = app.clone();
        async move {
            let res = app.call(req.map(axum::body::Body::new)).await;
            drop(busy);
            res
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let check = (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Once asked to close, the connection gets this long to finish before it is dropped.
    let mut closing: Option<Instant> = None;
    let mut stopping = false;
    if *stop.borrow() {
        return;
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if activity.in_flight() == 0 {
                    // Idle, or a request still being sent: nothing to finish.
                    return;
                }
                if changed.is_ok() && closing.is_none() {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
            _ = tick.tick() => {
                if stopping && activity.in_flight() == 0 {
                    return;
                }
                match closing {
                    // While stopping, the server's shutdown timeout bounds the wait instead.
                    Some(at)
                        if !stopping
                            && at.elapsed() >= idle_timeout.max(Duration::from_secs(1)) =>
                    {
                        return;
                    }
                    Some(_) => {}
                    None if activity.idle_for() >= idle_timeout => {
                        tracing::debug!(%peer, "idle connection closed");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    None => {}
                }
            }
        }
    }
}

/// When a connection last moved bytes, and how many of its requests are in progress.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has been idle: zero while a request is in progress.
    fn idle_for(&self) -> Duration {
        if self.in_flight() > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

/// A request in progress; ends (and counts as activity) when dropped.
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream that records when bytes move.
#[derive(Debug)]
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
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
