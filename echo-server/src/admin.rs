//! The admin HTTP server: `/healthz`, `/readyz`, `/version` and `/metrics`.
//!
//! `/readyz` answers 503 as soon as a shutdown starts, so Kubernetes takes the pod out
//! of its endpoints while the echo listeners keep accepting for the drain delay.
//!
//! The admin port is bounded ([`AdminLimits`]): at most `max_connections` connections
//! (when a new one arrives at the limit, the one that moved no byte for the longest is
//! closed and counted, so a flood of stalled requests cannot lock the probes out), a
//! request head must arrive within `header_timeout` and fit in `max_request` bytes, and
//! a connection that moves no byte for `idle_timeout` is closed. Each connection costs
//! at most about `max_request` bytes of buffer.

use std::collections::HashMap;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::listener::{MAX_BACKOFF, MIN_BACKOFF};
use crate::metrics;
use crate::rate_limit::RateLimitedLog;
use crate::shutdown::Shared;

/// The default number of admin connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// The default time a client has to send a whole request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The default longest request head (request line and headers), in bytes.
pub const DEFAULT_MAX_REQUEST: usize = 16 * 1024;
/// The smallest request-head limit the HTTP library accepts.
pub const MIN_MAX_REQUEST: usize = 8 * 1024;
/// The longest admin timeout honoured (a year); longer values mean the same.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(365 * 86_400);
/// The default time an admin connection may move no byte before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds of the admin HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections open at once; at the limit the longest-silent one makes room.
    pub max_connections: usize,
    /// A request head must be complete this long after the server starts waiting for it.
    pub header_timeout: Duration,
    /// The longest request head in bytes (at least [`MIN_MAX_REQUEST`]); longer gets 431.
    pub max_request: usize,
    /// A connection that moves no byte either way for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_request: DEFAULT_MAX_REQUEST,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The crate version this binary was built from.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision baked in at build time (`GIT_REVISION`, else `git rev-parse`, else `unknown`).
pub const GIT_REVISION: &str = env!("ECHO_SERVER_GIT_REVISION");

/// The body of `/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VersionInfo {
    /// The version that prefixes replies (`one`, `v2`, ...).
    pub version: String,
    /// The echo-server crate version.
    pub build_version: String,
    /// The git revision of the build.
    pub git_revision: String,
}

impl VersionInfo {
    /// The version information of this build serving `version`.
    pub fn new(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            build_version: BUILD_VERSION.to_owned(),
            git_revision: GIT_REVISION.to_owned(),
        }
    }
}

/// What the admin handlers read.
#[derive(Debug)]
pub(crate) struct AdminState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) registry: Registry,
    pub(crate) info: VersionInfo,
}

/// The admin routes.
pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AdminState>>) -> (StatusCode, &'static str) {
    if state.shared.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn version(State(state): State<Arc<AdminState>>) -> Json<VersionInfo> {
    Json(state.info.clone())
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&state.registry),
    )
}

/// One admin connection as the accept loop sees it.
#[derive(Debug)]
struct Slot {
    /// Milliseconds since the server's epoch at which the connection last moved a byte.
    activity: Arc<AtomicU64>,
    /// Cancelled to close the connection at once.
    evict: CancellationToken,
    /// Resolves once the connection's task has ended and its socket is closed.
    closed: tokio::sync::oneshot::Receiver<()>,
}

/// The open admin connections, by id.
#[derive(Debug, Default)]
struct Slots {
    next_id: u64,
    open: HashMap<u64, Slot>,
}

/// Serves the admin routes on `listener` within `limits` until `stop` is cancelled,
/// then lets requests in flight finish (each connection closes after its response).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: AdminLimits,
    stop: CancellationToken,
    shared: Arc<Shared>,
) -> io::Result<()> {
    let epoch = Instant::now();
    let slots = Arc::new(Mutex::new(Slots::default()));
    let mut connections = JoinSet::new();
    let mut evictions = RateLimitedLog::new();
    let mut failures = RateLimitedLog::new();
    let mut backoff = MIN_BACKOFF;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                if let Some(count) = failures.record() {
                    tracing::warn!(%error, errors = count, retry_in = ?backoff, "admin accept failed; backing off and retrying");
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        let activity = Arc::new(AtomicU64::new(millis_since(epoch)));
        let evict = CancellationToken::new();
        let (closing, closed) = tokio::sync::oneshot::channel::<()>();
        let (id, evicted) = {
            let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
            let evicted = if slots.open.len() >= limits.max_connections {
                let quietest = slots
                    .open
                    .iter()
                    .min_by_key(|(_, slot)| slot.activity.load(Ordering::Relaxed))
                    .map(|(&id, _)| id);
                quietest.and_then(|id| slots.open.remove(&id))
            } else {
                None
            };
            let id = slots.next_id;
            slots.next_id += 1;
            slots.open.insert(
                id,
                Slot {
                    activity: Arc::clone(&activity),
                    evict: evict.clone(),
                    closed,
                },
            );
            (id, evicted)
        };
        if let Some(slot) = evicted {
            slot.evict.cancel();
            // Wait for its socket to close: a burst of accepts must not outrun the
            // evictions and take the descriptors the echo port needs.
            let _ = slot.closed.await;
            shared.metrics.admin_connections_evicted.inc();
            if let Some(count) = evictions.record() {
                tracing::warn!(
                    evicted = count,
                    max_connections = limits.max_connections,
                    "admin connection limit reached: closed the longest-silent connections"
                );
            }
        }
        let router = router.clone();
        let stop = stop.clone();
        let slots = Arc::clone(&slots);
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            // Dropped last, when the socket is closed: tells an evicting accept loop.
            let _closing = closing;
            shared.metrics.admin_connections_active.inc();
            serve_connection(stream, router, limits, activity, epoch, evict, stop).await;
            shared.metrics.admin_connections_active.dec();
            slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .open
                .remove(&id);
        });
    }
    drop(listener);
    // Dropping this future (the shutdown deadline) aborts the connections still open.
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one admin connection until it closes, idles out, is evicted, or the server stops.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: AdminLimits,
    activity: Arc<AtomicU64>,
    epoch: Instant,
    evict: CancellationToken,
    stop: CancellationToken,
) {
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
        epoch,
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Capped: hyper adds it to `Instant::now()`, which would overflow on absurd values.
        .header_read_timeout(limits.header_timeout.min(LONGEST_TIMEOUT))
        .max_buf_size(limits.max_request.max(MIN_MAX_REQUEST));
    let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(router)));
    let mut stopping = false;
    loop {
        let last = epoch + Duration::from_millis(activity.load(Ordering::Relaxed));
        let idle_deadline = last
            .checked_add(limits.idle_timeout)
            .unwrap_or_else(|| crate::handler::deadline_after(limits.idle_timeout));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "admin connection ended with an error");
                }
                return;
            }
            () = evict.cancelled() => return,
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_deadline) => {
                let last = epoch + Duration::from_millis(activity.load(Ordering::Relaxed));
                if Instant::now().saturating_duration_since(last) >= limits.idle_timeout {
                    tracing::debug!("closed an idle admin connection");
                    return;
                }
            }
        }
    }
}

/// Milliseconds from `epoch` to now.
fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A socket that records when it last moved a byte, for the idle timeout and eviction.
struct Tracked {
    inner: TcpStream,
    activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        self.activity
            .store(millis_since(self.epoch), Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
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
            self.touch();
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
