//! One connection: bounded line framing, batched replies, idle timeout, cut on shutdown.
//!
//! The handler holds no buffer while the connection is idle: it waits for the socket
//! to become readable, reads what is there, answers every complete line in one write,
//! and frees its buffers again once no partial line is left. A partial line never
//! grows past the line limit (see [`LineFramer`]), so a client streaming without a
//! newline costs at most `max_line` bytes before it is disconnected.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::protocol::{LineFramer, encode_reply};
use crate::shutdown::Shared;

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
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client closed its side and every line was answered.
    Closed,
    /// The client was silent longer than the idle timeout.
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
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<HandlerContext>,
    _permit: OwnedSemaphorePermit,
) {
    let metrics = &ctx.shared.metrics;
    metrics.connections_accepted.inc();
    metrics.connections_active.inc();
    tracing::debug!(%peer, "connection opened");
    let mut stream = stream;
    let end = converse(&mut stream, &ctx).await;
    drop(stream);
    metrics.connections_active.dec();
    match &end {
        End::Idle => {
            metrics.connections_idle_closed.inc();
        }
        End::TooLong => {
            metrics.lines_too_long.inc();
            tracing::warn!(%peer, max_line = ctx.max_line, "closed a connection whose line exceeded the limit");
        }
        End::Cut => {
            metrics.connections_cut.inc();
        }
        End::Failed(error) => {
            tracing::debug!(%peer, %error, "connection failed");
        }
        End::Closed => {}
    }
    if !matches!(end, End::Cut) && ctx.shared.shutting_down.load(Ordering::SeqCst) {
        metrics.connections_drained.inc();
    }
    tracing::debug!(%peer, end = ?end, "connection closed");
}

/// Reads lines and writes replies until the connection ends.
async fn converse(stream: &mut TcpStream, ctx: &HandlerContext) -> End {
    let metrics = &ctx.shared.metrics;
    let cut = &ctx.shared.cut;
    let mut framer = LineFramer::new(ctx.max_line);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    loop {
        match wait(stream.readable(), ctx).await {
            Ok(()) => {}
            Err(end) => return end,
        }
        if input.capacity() == input.len() {
            input.reserve(framer.read_hint(input.len()).min(READ_CHUNK));
        }
        // `read_buf` (unlike `try_read_buf`) notes a short read as "drained", which
        // saves the extra `read` that would only return `WouldBlock`.
        let read = match wait(stream.read_buf(&mut input), ctx).await {
            Ok(read) => read,
            Err(end) => return end,
        };
        if read == 0 {
            // End of stream: answer a final line that had no `\n` (Istio's sample drops it).
            if input.is_empty() {
                return End::Closed;
            }
            encode_reply(&ctx.version, &input, &mut output);
            metrics.lines_echoed.inc();
            return match write_all(stream, &output, ctx).await {
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
        if lines > 0 {
            metrics.lines_echoed.inc_by(lines);
            if let Err(end) = write_all(stream, &output, ctx).await {
                return end;
            }
            // Free the buffers between requests so that idle connections cost no buffer.
            output = BytesMut::new();
        }
        if too_long {
            return End::TooLong;
        }
        if input.is_empty() {
            input = BytesMut::new();
        }
        if cut.is_cancelled() {
            return End::Cut;
        }
    }
}

/// Writes all of `bytes`, giving up on the idle timeout or a cut.
async fn write_all(stream: &TcpStream, bytes: &[u8], ctx: &HandlerContext) -> Result<(), End> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.try_write(&bytes[written..]) {
            Ok(n) => {
                written += n;
                ctx.shared.metrics.bytes_sent.inc_by(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(stream.writable(), ctx).await?,
            Err(e) => return Err(End::Failed(e)),
        }
    }
    Ok(())
}

/// Waits for `io` (readiness or a read), unless the idle timeout passes or the server cuts first.
async fn wait<T>(io: impl Future<Output = io::Result<T>>, ctx: &HandlerContext) -> Result<T, End> {
    let io = async {
        match ctx.idle_timeout {
            Some(limit) => tokio::time::timeout(limit, io).await.map_err(|_| End::Idle),
            None => Ok(io.await),
        }
    };
    tokio::select! {
        biased;
        () = ctx.shared.cut.cancelled() => Err(End::Cut),
        result = io => match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(End::Failed(e)),
            Err(end) => Err(end),
        },
    }
}
