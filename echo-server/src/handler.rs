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
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
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
    tracing::debug!(peer = ?stream.peer_addr().ok(), "connection opened");
    let end = converse(&mut stream, &ctx).await;
    metrics.connections_active.dec();
    let peer = || stream.peer_addr().ok();
    match &end {
        End::Idle => {
            metrics.connections_idle_closed.inc();
        }
        End::TooLong => {
            metrics.lines_too_long.inc();
            let due = ctx
                .too_long_log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record();
            if let Some(count) = due {
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

/// Reads lines and writes replies until the connection ends.
async fn converse(stream: &mut TcpStream, ctx: &HandlerContext) -> End {
    let metrics = &ctx.shared.metrics;
    let cut = pin!(ctx.shared.cut.cancelled());
    let idle = pin!(ctx.idle_timeout.map(tokio::time::sleep));
    let mut stops = Stops {
        cut,
        idle,
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
            // No buffer until the socket has something to read.
            if let Err(e) = ready!(stream.poll_read_ready(cx)) {
                return Poll::Ready(Err(End::Failed(e)));
            }
            if input.capacity() == input.len() {
                input.reserve(framer.read_hint(input.len()).min(READ_CHUNK));
            }
            // A short read marks the socket drained, saving a `read` that would block.
            tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, &mut input)
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
            if input.is_empty() {
                return End::Closed;
            }
            encode_reply(&ctx.version, &input, &mut output);
            metrics.lines_echoed.inc();
            return match write_all(stream, &output, &mut stops, ctx).await {
                Ok(()) => End::Closed,
                Err(end) => end,
            };
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

/// Writes all of `bytes`, giving up on the idle timeout or a cut.
async fn write_all(
    stream: &TcpStream,
    bytes: &[u8],
    stops: &mut Stops<'_, '_>,
    ctx: &HandlerContext,
) -> Result<(), End> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.try_write(&bytes[written..]) {
            Ok(n) => {
                written += n;
                ctx.shared.metrics.bytes_sent.inc_by(n as u64);
                stops.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                poll_fn(|cx| {
                    if let Poll::Ready(end) = stops.poll_stop(cx) {
                        return Poll::Ready(Err(end));
                    }
                    stream.poll_write_ready(cx).map_err(End::Failed)
                })
                .await?;
            }
            Err(e) => return Err(End::Failed(e)),
        }
    }
    Ok(())
}

/// `now + after`, saturating at about 30 years for absurdly long durations.
pub(crate) fn deadline_after(after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    let now = Instant::now();
    now.checked_add(after.min(FAR)).unwrap_or(now)
}
