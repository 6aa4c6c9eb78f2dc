//! The HTTP server's own accept loop, so that no client can hold the service with connections:
//!
//! - a client gets `http.header_read_timeout` to send a request's headers (slow-header clients
//!   are cut off),
//! - a connection on which nothing was read or written for `http.idle_timeout` is closed once
//!   its request in flight, if any, is answered,
//! - at most `http.max_connections` connections are served at once. When a new connection
//!   arrives at the limit, the connection idle the longest (no request in flight: a kept-alive
//!   one, or one still sending its headers) is closed to make room, so idle or slow sockets can
//!   never lock out a real request such as a liveness probe. When every connection is busy with
//!   a request, the new one is answered in overflow mode: `/healthz` as usual, every other path
//!   503 with `Retry-After`, then closed; at most 64 such at once, more are closed at accept.
//!   A warning is logged when the limit is reached (at most every 10 s, with counts).
//!
//! The client's address is put in each request's extensions as `ConnectInfo<SocketAddr>`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// Overflow connections (past `max_connections`) served at once; more are closed at accept.
const MAX_OVERFLOW: usize = 64;
/// Time an overflow connection gets to send its one request.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a connection closed to make room gets to finish before it is dropped.
const EVICTED_GRACE: Duration = Duration::from_millis(500);
/// Limit warnings are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the accept loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Connections open now, and a way to wait until none is.
#[derive(Default)]
struct Open {
    count: AtomicUsize,
    drained: Notify,
}

/// Counts a connection while it lives.
struct OpenGuard(Arc<Open>);

impl OpenGuard {
    fn new(open: &Arc<Open>) -> Self {
        open.count.fetch_add(1, Ordering::SeqCst);
        OpenGuard(open.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// What the accept loop knows of one open connection.
struct Tracked {
    /// Milliseconds since the server started at which bytes last moved.
    last_active: Arc<AtomicU64>,
    /// Requests being answered now.
    in_flight: Arc<AtomicUsize>,
    /// Asked to close to make room.
    evicted: Arc<std::sync::atomic::AtomicBool>,
    evict: Arc<Notify>,
}

/// Serves `router` on `listener` until `stop` turns true, then lets every connection finish the
/// request it is answering and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let epoch = Instant::now();
    let open = Arc::new(Open::default());
    let overflow = Arc::new(Open::default());
    let tracked: Arc<dashmap::DashMap<u64, Tracked>> = Arc::new(dashmap::DashMap::new());
    let (closing_tx, closing) = watch::channel(false);
    let mut next_id: u64 = 0;
    let mut last_warning: Option<Instant> = None;
    let (mut made_room, mut overflowed, mut refused) = (0u64, 0u64, 0u64);
    let overflow_router = overflow_router();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors and the like: keep serving what is open
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = until_true(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let at_limit = open.count.load(Ordering::SeqCst) >= limits.max_connections;
        let room = !at_limit || evict_longest_idle(&tracked);
        if at_limit {
            metrics::counter!("http_connections_over_limit_total").increment(1);
            if room {
                made_room += 1;
            } else if overflow.count.load(Ordering::SeqCst) < MAX_OVERFLOW {
                overflowed += 1;
            } else {
                refused += 1;
            }
            if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    closed_idle = made_room,
                    health_only = overflowed,
                    refused,
                    "connection limit reached: idle connections are closed to make room; \
                     when all are busy, new ones get /healthz only"
                );
                last_warning = Some(Instant::now());
                (made_room, overflowed, refused) = (0, 0, 0);
            }
        }
        if room {
            next_id += 1;
            let id = next_id;
            let conn = Tracked {
                last_active: Arc::new(AtomicU64::new(elapsed_ms(epoch))),
                in_flight: Arc::new(AtomicUsize::new(0)),
                evicted: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                evict: Arc::new(Notify::new()),
            };
            let ctx = ConnContext {
                epoch,
                last_active: conn.last_active.clone(),
                in_flight: conn.in_flight.clone(),
                evict: Some(conn.evict.clone()),
                limits,
                keep_alive: true,
            };
            tracked.insert(id, conn);
            let guard = OpenGuard::new(&open);
            metrics::gauge!("http_connections_active").increment(1.0);
            let router = router.clone();
            let closing = closing.clone();
            let tracked = tracked.clone();
            tokio::spawn(async move {
                connection(stream, peer, router, ctx, closing).await;
                tracked.remove(&id);
                metrics::gauge!("http_connections_active").decrement(1.0);
                drop(guard);
            });
            continue;
        }
        if overflow.count.load(Ordering::SeqCst) >= MAX_OVERFLOW {
            drop(stream);
            continue;
        }
        let guard = OpenGuard::new(&overflow);
        let ctx = ConnContext {
            epoch,
            last_active: Arc::new(AtomicU64::new(elapsed_ms(epoch))),
            in_flight: Arc::new(AtomicUsize::new(0)),
            evict: None,
            limits: Limits {
                max_connections: 0,
                header_read_timeout: OVERFLOW_HEADER_TIMEOUT,
                idle_timeout: OVERFLOW_HEADER_TIMEOUT,
            },
            keep_alive: false,
        };
        let router = overflow_router.clone();
        let closing = closing.clone();
        tokio::spawn(async move {
            connection(stream, peer, router, ctx, closing).await;
            drop(guard);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    for set in [&open, &overflow] {
        loop {
            let drained = set.drained.notified();
            if set.count.load(Ordering::SeqCst) == 0 {
                break;
            }
            drained.await;
        }
    }
}

/// Asks the connection idle the longest (no request in flight, not asked already) to close;
/// false when every connection is answering a request.
fn evict_longest_idle(tracked: &dashmap::DashMap<u64, Tracked>) -> bool {
    let victim = tracked
        .iter()
        .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0 && !c.evicted.load(Ordering::SeqCst))
        .min_by_key(|c| c.last_active.load(Ordering::Relaxed))
        .map(|c| (c.evicted.clone(), c.evict.clone()));
    match victim {
        Some((evicted, evict)) => {
            evicted.store(true, Ordering::SeqCst);
            evict.notify_one();
            true
        }
        None => false,
    }
}

/// How one connection is served.
struct ConnContext {
    epoch: Instant,
    last_active: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    evict: Option<Arc<Notify>>,
    limits: Limits,
    keep_alive: bool,
}

/// Counts a request while its handler runs.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection, HTTP/1.1, until the client closes it, a timeout ends it or the server stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    ctx: ConnContext,
    mut closing: watch::Receiver<bool>,
) {
    let io = Activity {
        inner: stream,
        epoch: ctx.epoch,
        last_active: ctx.last_active.clone(),
    };
    let in_flight = ctx.in_flight.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        in_flight.fetch_add(1, Ordering::SeqCst);
        let counted = InFlight(in_flight.clone());
        let answer = router.clone().oneshot(request);
        async move {
            let response = answer.await;
            drop(counted);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.limits.header_read_timeout)
        .keep_alive(ctx.keep_alive);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let evict = ctx.evict.unwrap_or_default();
    let idle_limit_ms = u64::try_from(ctx.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let check_every =
        (ctx.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut shutting_down = false;
    let mut evicted_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = until_true(&mut closing), if !shutting_down => {
                conn.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            () = evict.notified(), if !shutting_down => {
                conn.as_mut().graceful_shutdown();
                shutting_down = true;
                // one still sending its headers does not close by itself: it gets a moment
                evicted_at = Some(tokio::time::Instant::now());
            }
            () = async {
                match evicted_at {
                    Some(at) => tokio::time::sleep_until(at + EVICTED_GRACE).await,
                    None => std::future::pending().await,
                }
            } => {
                if ctx.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                // a request arrived meanwhile: it is answered, then the connection closes
                evicted_at = None;
            }
            () = tokio::time::sleep(check_every), if !shutting_down => {
                let idle_ms = elapsed_ms(ctx.epoch)
                    .saturating_sub(ctx.last_active.load(Ordering::Relaxed));
                if idle_ms >= idle_limit_ms {
                    // closes at once when idle, or after the response in flight
                    conn.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
            }
        }
    }
}

/// Resolves once the flag is true (or its sender is gone).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What an overflow connection is answered.
fn overflow_router() -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(super::health::healthz))
        .fallback(|| async {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"error": {
                    "code": "busy",
                    "message": "too many open connections; try again shortly",
                    "field": null,
                }})),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        })
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                r
            },
        ))
}

/// A stream that records when bytes last moved, in milliseconds since the server started.
struct Activity {
    inner: TcpStream,
    epoch: Instant,
    last_active: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        self.last_active
            .store(elapsed_ms(self.epoch), Ordering::Relaxed);
    }
}

impl AsyncRead for Activity {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Activity {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
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
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
