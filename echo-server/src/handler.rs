//! One connection: bounded line framing, batched replies, idle timeout, cut on shutdown.
//!
//! The handler holds no buffer while the connection is idle: it waits for the socket
//! to become readable, reads what is there, answers every complete line in one write,
//! and frees its buffers again once no partial line is left. A partial line never
//! grows past the line limit (see [`LineFramer`]), so a client streaming without a
//! newline costs at most `max_line` bytes before it is disconnected.
//!
//! Waiting is written with `poll_fn` over the socket's readiness, one idle timer per
//! connection and one cancellation future, so that an idle connection's task stays
//! small (see the idle-memory benchmark in `benches/`).

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::tls::Acceptor;
use tokio_util::sync::WaitForCancellationFuture;

use crate::rate_limit::RateLimitedLog;
use crate::shutdown::Shared;
use protocol::{LineFramer, encode_reply};

/// The most a single read asks for, in bytes.
const READ_CHUNK: usize = 16 * 1024;

/// What every handler of one server shares.
#[derive(Debug)]
pub(crate) struct HandlerContext {
    /// The reply prefix.
    pub(crate) version: Box<[u8]>,
    /// The line limit, `\n` included.
    pub(crate) max_line: usize,
    /// Close connections silent for this long.
    pub(crate) idle_timeout: Option<Duration>,
    /// Counters and shutdown state.
    pub(crate) shared: Arc<Shared>,
    /// Over-long lines seen since the last warning about them (one warning a second).
    pub(crate) too_long_log: Mutex<RateLimitedLog>,
    /// TLS on every connection, when the server has a certificate.
    pub(crate) tls: Option<Acceptor>,
    /// Failed TLS handshakes since the last warning about them (one warning a second).
    pub(crate) tls_failure_log: Mutex<RateLimitedLog>,
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client closed its side and every line was answered.
    Closed,
    /// The client was silent (or did not read) longer than the idle timeout.
    Idle,
    /// A line exceeded the limit.
    TooLong,
    /// The server cut the connection (shutdown deadline or abort).
    Cut,
    /// Reading or writing failed (reset by the peer and the like).
    Failed(io::Error),
    /// The TLS handshake failed (not TLS, no common cipher, an alert, a close).
    Handshake(io::Error),
    /// The TLS handshake did not finish within the idle timeout.
    HandshakeStalled,
}

/// What the handler needs of a connection: plain TCP, or TLS over it.
trait Conn: AsyncWrite + Unpin {
    /// Whether to send TLS's close_notify when the client has closed its side.
    const TLS: bool;

    /// Reads what is there into `input`, reserving up to `hint` bytes when it is full.
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        input: &mut BytesMut,
        hint: usize,
    ) -> Poll<io::Result<usize>>;
}

impl Conn for TcpStream {
    const TLS: bool = false;

    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        input: &mut BytesMut,
        hint: usize,
    ) -> Poll<io::Result<usize>> {
        // No buffer until the socket has something to read.
        ready!(self.poll_read_ready(cx))?;
        if input.capacity() == input.len() {
            input.reserve(hint);
        }
        // A short read marks the socket drained, saving a `read` that would block.
        tokio_util::io::poll_read_buf(Pin::new(self), cx, input)
    }
}

impl Conn for TlsStream<TcpStream> {
    const TLS: bool = true;

    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        input: &mut BytesMut,
        hint: usize,
    ) -> Poll<io::Result<usize>> {
        // rustls may hold decrypted bytes while the socket has none: no readiness
        // shortcut, so an idle TLS connection keeps its read buffer (and rustls' own).
        if input.capacity() == input.len() {
            input.reserve(hint);
        }
        tokio_util::io::poll_read_buf(Pin::new(self), cx, input)
    }
}

/// Serves one connection until it ends; `_permit` holds its place under the connection limit.
pub(crate) async fn serve(
    mut stream: TcpStream,
    ctx: Arc<HandlerContext>,
    _permit: OwnedSemaphorePermit,
) {
    let metrics = &ctx.shared.metrics;
    metrics.connections_accepted.inc();
    metrics.connections_active.inc();
    match &ctx.tls {
        None => {
            tracing::debug!(peer = ?stream.peer_addr().ok(), "connection opened");
            let end = converse(&mut stream, &ctx).await;
            metrics.connections_active.dec();
            ended(&end, &ctx, || stream.peer_addr().ok());
        }
        // Boxed: a TLS session is large, and a plain connection's task keeps its size.
        Some(Acceptor(acceptor)) => Box::pin(serve_tls(stream, acceptor, &ctx)).await,
    }
}

/// Serves one TLS connection: the handshake, then the conversation inside it.
async fn serve_tls(stream: TcpStream, acceptor: &TlsAcceptor, ctx: &HandlerContext) {
    // The handshake consumes the stream on a stall or a cut: ask once, up front.
    let peer = stream.peer_addr().ok();
    tracing::debug!(?peer, "connection opened");
    let end = match handshake(acceptor, stream, ctx).await {
        Ok(mut tls) => converse(&mut tls, ctx).await,
        Err(end) => end,
    };
    ctx.shared.metrics.connections_active.dec();
    ended(&end, ctx, || peer);
}

/// Counts and logs how a connection ended.
fn ended(end: &End, ctx: &HandlerContext, peer: impl Fn() -> Option<SocketAddr>) {
    let metrics = &ctx.shared.metrics;
    let rate_limited =
        |log: &Mutex<RateLimitedLog>| log.lock().unwrap_or_else(PoisonError::into_inner).record();
    match end {
        End::Idle => {
            metrics.connections_idle_closed.inc();
        }
        End::TooLong => {
            metrics.lines_too_long.inc();
            if let Some(count) = rate_limited(&ctx.too_long_log) {
                tracing::warn!(
                    peer = ?peer(),
                    max_line = ctx.max_line,
                    closed = count,
                    "closed connections whose line exceeded the limit (one warning a second at most)"
                );
            }
        }
        End::Cut => {
            metrics.connections_cut.inc();
        }
        End::Failed(error) => {
            tracing::debug!(peer = ?peer(), %error, "connection failed");
        }
        End::Handshake(_) | End::HandshakeStalled => {
            metrics.tls_handshakes_failed.inc();
            if matches!(end, End::HandshakeStalled) {
                metrics.connections_idle_closed.inc();
            }
            let error = match end {
                End::Handshake(error) => error.to_string(),
                _ => "no handshake within the idle timeout".to_owned(),
            };
            tracing::debug!(peer = ?peer(), %error, "TLS handshake failed");
            if let Some(count) = rate_limited(&ctx.tls_failure_log) {
                tracing::warn!(
                    peer = ?peer(),
                    %error,
                    failed = count,
                    "TLS handshakes failed (the latest shown; one warning a second at most)"
                );
            }
        }
        End::Closed => {}
    }
    if !matches!(end, End::Cut) && ctx.shared.shutting_down.load(Ordering::SeqCst) {
        metrics.connections_drained.inc();
    }
    tracing::debug!(peer = ?peer(), end = ?end, "connection closed");
}

/// The two reasons to stop waiting on the socket: the idle timer and the server's cut.
struct Stops<'a, 'b> {
    cut: Pin<&'a mut WaitForCancellationFuture<'b>>,
    idle: Pin<&'a mut Option<Sleep>>,
    idle_timeout: Option<Duration>,
}

impl Stops<'_, '_> {
    /// Ready with the reason when the connection must end now.
    fn poll_stop(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        if self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Cut);
        }
        if let Some(sleep) = self.idle.as_mut().as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            return Poll::Ready(End::Idle);
        }
        Poll::Pending
    }

    /// The connection made progress: restart the idle timer.
    fn touch(&mut self) {
        if let (Some(limit), Some(sleep)) = (self.idle_timeout, self.idle.as_mut().as_pin_mut()) {
            sleep.reset(deadline_after(limit));
        }
    }
}

/// The TLS handshake, bounded by the idle timeout and the server's cut.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    ctx: &HandlerContext,
) -> Result<TlsStream<TcpStream>, End> {
    let mut stops = Stops {
        cut: pin!(ctx.shared.cut.cancelled()),
        idle: pin!(ctx.idle_timeout.map(tokio::time::sleep)),
        idle_timeout: ctx.idle_timeout,
    };
    let mut accept = pin!(acceptor.accept(stream));
    poll_fn(|cx| match accept.as_mut().poll(cx) {
        Poll::Ready(done) => Poll::Ready(done.map_err(End::Handshake)),
        Poll::Pending => stops.poll_stop(cx).map(|end| {
            Err(match end {
                End::Idle => End::HandshakeStalled,
                other => other,
            })
        }),
    })
    .await
}

/// Reads lines and writes replies until the connection ends.
async fn converse<C: Conn>(stream: &mut C, ctx: &HandlerContext) -> End {
    let metrics = &ctx.shared.metrics;
    let mut stops = Stops {
        cut: pin!(ctx.shared.cut.cancelled()),
        idle: pin!(ctx.idle_timeout.map(tokio::time::sleep)),
        idle_timeout: ctx.idle_timeout,
    };
    let mut framer = LineFramer::new(ctx.max_line);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    loop {
        let read = poll_fn(|cx| {
            if let Poll::Ready(end) = stops.poll_stop(cx) {
                return Poll::Ready(Err(end));
            }
            let hint = framer.read_hint(input.len()).min(READ_CHUNK);
            stream
                .poll_read_some(cx, &mut input, hint)
                .map_err(End::Failed)
        })
        .await;
        let read = match read {
            Ok(read) => read,
            Err(end) => return end,
        };
        stops.touch();
        if read == 0 {
            // End of stream: answer a final line that had no `\n` (Istio's sample drops it).
            if !input.is_empty() {
                encode_reply(&ctx.version, &input, &mut output);
                metrics.lines_echoed.inc();
                if let Err(end) = write_all(stream, &output, &mut stops, ctx).await {
                    return end;
                }
            }
            if C::TLS {
                // The client sent close_notify (or closed): answer with ours, bounded.
                let _ = poll_fn(|cx| match Pin::new(&mut *stream).poll_shutdown(cx) {
                    Poll::Ready(_) => Poll::Ready(()),
                    Poll::Pending => stops.poll_stop(cx).map(drop),
                })
                .await;
            }
            return End::Closed;
        }
        metrics.bytes_received.inc_by(read as u64);
        let mut lines = 0u64;
        let too_long = loop {
            match framer.next_line(&mut input) {
                Ok(Some(line)) => {
                    encode_reply(&ctx.version, &line, &mut output);
                    lines += 1;
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        // Free the read buffer before a write that may wait on a client that does not
        // read: otherwise a connection pins a whole line of input besides its reply.
        if input.is_empty() {
            input = BytesMut::new();
        }
        if lines > 0 {
            metrics.lines_echoed.inc_by(lines);
            if let Err(end) = write_all(stream, &output, &mut stops, ctx).await {
                return end;
            }
            // Free the buffers between requests so that idle connections cost no buffer.
            output = BytesMut::new();
        }
        if too_long {
            return End::TooLong;
        }
    }
}

/// Writes all of `bytes` and flushes them (TLS records), giving up on the idle timeout
/// or a cut.
async fn write_all<C: Conn>(
    stream: &mut C,
    bytes: &[u8],
    stops: &mut Stops<'_, '_>,
    ctx: &HandlerContext,
) -> Result<(), End> {
    let mut written = 0;
    while written < bytes.len() {
        // Write first; wait for a stop only when the socket cannot take more.
        let n = poll_fn(
            |cx| match Pin::new(&mut *stream).poll_write(cx, &bytes[written..]) {
                Poll::Ready(done) => Poll::Ready(done.map_err(End::Failed)),
                Poll::Pending => stops.poll_stop(cx).map(Err),
            },
        )
        .await?;
        if n == 0 {
            return Err(End::Failed(io::ErrorKind::WriteZero.into()));
        }
        written += n;
        ctx.shared.metrics.bytes_sent.inc_by(n as u64);
        stops.touch();
    }
    if C::TLS {
        poll_fn(|cx| match Pin::new(&mut *stream).poll_flush(cx) {
            Poll::Ready(done) => Poll::Ready(done.map_err(End::Failed)),
            Poll::Pending => stops.poll_stop(cx).map(Err),
        })
        .await?;
    }
    Ok(())
}

/// `now + after`, saturating at about 30 years for absurdly long durations.
pub(crate) fn deadline_after(after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    let now = Instant::now();
    now.checked_add(after.min(FAR)).unwrap_or(now)
}
