//! The HTTP listener of `--metrics-listen` (`checker watch` and `checker observe`):
//! `GET /metrics` (the run's metrics as OpenMetrics text, [`report::metrics`]) and
//! `GET /healthz` (for the pod's probes), nothing else.
//!
//! Bounded like the echo server's admin port ([`Limits`]): at most `max_connections`
//! connections (at the limit, the oldest is closed to make room, so a flood of stalled
//! clients cannot lock the scraper out for long), a request head must arrive within
//! `header_timeout` and fit in `max_request` bytes (else 431), and no connection lives
//! longer than `lifetime` (a scraper that keeps its connection alive simply opens a new
//! one). Each connection costs at most about `max_request` bytes of buffer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use checker_core::sync::lock;
use report::metrics::{CONTENT_TYPE as METRICS_TYPE, ObserveMetrics, WatchMetrics};

/// Metrics the listener can serve: rendered afresh for every scrape.
pub trait Render: Clone + Send + Sync + 'static {
    /// The metrics now, as OpenMetrics text.
    fn render(&self) -> String;
}

impl Render for WatchMetrics {
    fn render(&self) -> String {
        WatchMetrics::render(self)
    }
}

impl Render for ObserveMetrics {
    fn render(&self) -> String {
        ObserveMetrics::render(self)
    }
}

/// The bounds of the metrics listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; at the limit the oldest is closed.
    pub max_connections: usize,
    /// A request head must be complete this long after the listener starts waiting for it.
    pub header_timeout: Duration,
    /// The longest request head in bytes (hyper's smallest buffer, 8 KiB, at least).
    pub max_request: usize,
    /// The longest a connection stays open.
    pub lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 16,
            header_timeout: Duration::from_secs(5),
            max_request: 8 * 1024,
            lifetime: Duration::from_secs(60),
        }
    }
}

/// The connections open now, oldest first; each closes when its token is cancelled.
type Open = Arc<Mutex<BTreeMap<u64, CancellationToken>>>;

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `metrics` on `listener` within `limits` until `stop` is cancelled; then every
/// connection is closed.
pub async fn serve<M: Render>(
    listener: TcpListener,
    metrics: M,
    limits: Limits,
    stop: CancellationToken,
) {
    let open: Open = Arc::default();
    let mut connections = JoinSet::new();
    let mut next_id = 0u64;
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
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "metrics listener: accept failed");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let id = next_id;
        next_id += 1;
        let close = stop.child_token();
        {
            let mut open = lock(&open);
            while open.len() >= limits.max_connections.max(1) {
                match open.pop_first() {
                    Some((_, oldest)) => oldest.cancel(),
                    None => break,
                }
            }
            open.insert(id, close.clone());
        }
        let metrics = metrics.clone();
        let open = Arc::clone(&open);
        connections.spawn(async move {
            serve_connection(stream, metrics, limits, close).await;
            lock(&open).remove(&id);
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves one connection until it ends, is closed to make room, outlives its lifetime
/// or the listener stops.
async fn serve_connection<M: Render>(
    stream: TcpStream,
    metrics: M,
    limits: Limits,
    close: CancellationToken,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(request.method(), request.uri().path(), &metrics);
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_request.max(8 * 1024));
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
            return;
        }
        () = close.cancelled() => return,
        () = tokio::time::sleep(limits.lifetime) => conn.as_mut().graceful_shutdown(),
    }
    // A response in flight may finish; a silent connection may not linger.
    let _ = tokio::time::timeout(limits.header_timeout, conn).await;
}

/// The answer to `method path`.
fn respond<M: Render>(method: &Method, path: &str, metrics: &M) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            (StatusCode::OK, METRICS_TYPE, metrics.render())
        }
        (&Method::GET | &Method::HEAD, "/healthz") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok\n".to_owned(),
        ),
        (_, "/metrics" | "/healthz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: /metrics and /healthz are served\n".to_owned(),
        ),
    };
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}
