//! One accept loop per port: connection limit, back-off on accept errors.
//!
//! A connection beyond the limit is closed at once and counted; open connections are
//! not affected. A failed `accept` (out of file descriptors and the like) is never
//! fatal: the loop backs off, doubling the pause up to [`MAX_BACKOFF`], and goes on.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::handler::{self, HandlerContext};
use crate::rate_limit::RateLimitedLog;

/// The first pause after a failed accept.
pub const MIN_BACKOFF: Duration = Duration::from_millis(5);
/// The longest pause after repeated failed accepts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`).
pub const BACKLOG: u32 = 4096;

/// Binds a listening TCP socket with `SO_REUSEADDR` and a deep backlog.
///
/// With `socket_buffer`, `SO_SNDBUF` and `SO_RCVBUF` are set to it before `listen`, so
/// every accepted connection inherits them (the kernel doubles the value for its
/// bookkeeping) instead of autotuning up to `tcp_wmem`/`tcp_rmem`'s maximum.
pub fn bind(addr: SocketAddr, socket_buffer: Option<u32>) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if let Some(size) = socket_buffer {
        socket.set_send_buffer_size(size)?;
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections on `listener` until the server stops accepting, then closes it.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    limit: Arc<Semaphore>,
    ctx: Arc<HandlerContext>,
    tracker: TaskTracker,
) {
    let shared = Arc::clone(&ctx.shared);
    let local = listener.local_addr().ok();
    let mut backoff = MIN_BACKOFF;
    let mut rejections = RateLimitedLog::new();
    let mut failures = RateLimitedLog::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff = MIN_BACKOFF;
                match Arc::clone(&limit).try_acquire_owned() {
                    Ok(permit) => {
                        tracker.spawn(handler::serve(stream, Arc::clone(&ctx), permit));
                    }
                    Err(_) => {
                        drop(stream);
                        shared.metrics.connections_rejected.inc();
                        if let Some(count) = rejections.record() {
                            tracing::warn!(
                                listener = ?local,
                                rejected = count,
                                "connection limit reached: closed new connections at once"
                            );
                        }
                    }
                }
            }
            Err(error) => {
                shared.metrics.accept_errors.inc();
                if let Some(count) = failures.record() {
                    tracing::warn!(
                        listener = ?local,
                        %error,
                        errors = count,
                        retry_in = ?backoff,
                        "accept failed; backing off and retrying"
                    );
                }
                tokio::select! {
                    biased;
                    () = shared.stop_accepting.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    drop(listener);
    tracing::debug!(listener = ?local, "stopped accepting");
}
