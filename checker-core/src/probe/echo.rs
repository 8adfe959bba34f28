//! The echo probe (the default): `tcp-canary <id> <timestamp>\n` sent, `<version> <the
//! same line>` expected back, as the protocol crate defines. This is the sampler's hot
//! path: the buffers are the worker's, reused, and nothing here allocates.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error_class::ErrorClass;

/// Sends `line` and reads one reply line into `reply` (whose length is the limit).
///
/// Returns the reply's length; on failure the class and the bytes read so far. The
/// caller closes the stream.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    line: &[u8],
    reply: &mut [u8],
) -> Result<usize, (ErrorClass, usize)> {
    stream
        .write_all(line)
        .await
        .map_err(|e| (ErrorClass::from_exchange_error(&e), 0))?;
    // A no-op on a TCP stream; a TLS stream sends the record it buffered.
    stream
        .flush()
        .await
        .map_err(|e| (ErrorClass::from_exchange_error(&e), 0))?;
    let mut filled = 0;
    loop {
        if filled == reply.len() {
            return Err((ErrorClass::MalformedReply, filled));
        }
        let n = stream
            .read(&mut reply[filled..])
            .await
            .map_err(|e| (ErrorClass::from_exchange_error(&e), filled))?;
        if n == 0 {
            return Err((ErrorClass::ClosedBeforeReply, filled));
        }
        let fresh = &reply[filled..filled + n];
        filled += n;
        if let Some(pos) = fresh.iter().position(|&b| b == protocol::NEWLINE) {
            // Bytes after the reply line mean the peer is not answering our one line.
            return if pos + 1 == n {
                Ok(filled)
            } else {
                Err((ErrorClass::MalformedReply, filled))
            };
        }
    }
}
