//! The line probe: send a text (maybe nothing), read until the version pattern matches,
//! the peer closes, `max_reply` bytes have arrived or the reply timeout runs out. The
//! presets (banner, redis, http) are line probes with their own text and pattern.

use std::time::Duration;

use regex::bytes::CaptureLocations;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::error::ProbeError;
use super::pattern::{Matcher, Search};
use crate::error_class::ErrorClass;

/// The default most bytes of a reply read before giving up on finding the version.
pub const DEFAULT_MAX_REPLY: usize = 64 * 1024;
/// The highest `max_reply` accepted: one buffer of this size per sample in flight.
pub const MAX_MAX_REPLY: usize = 1024 * 1024;
/// The longest text a line probe may send, in bytes.
pub const MAX_SEND: usize = 64 * 1024;
/// The reply buffer of a sample starts this small and doubles up to `max_reply`.
const FIRST_BUFFER: usize = 4096;

/// What the user asked a line probe to do: send `send`, find the version with `version_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    /// The bytes sent once connected (after the TLS handshake); empty = send nothing.
    pub send: Vec<u8>,
    /// The pattern whose first capture group is the version, tried on complete lines.
    pub version_from: String,
    /// The most reply bytes read.
    pub max_reply: usize,
}

/// Turns `TEXT` with escapes into bytes: `\n`, `\r`, `\t`, `\0`, `\\` and `\xNN`.
pub fn parse_send(text: &str) -> Result<Vec<u8>, ProbeError> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escaped = match bytes.next() {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(b'\\') => b'\\',
            Some(b'x') => {
                let hex = [bytes.next(), bytes.next()];
                let digits = match hex {
                    [Some(h), Some(l)] => [h, l],
                    _ => return Err(ProbeError::Escape(protocol::escape(text))),
                };
                std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| u8::from_str_radix(d, 16).ok())
                    .ok_or_else(|| ProbeError::Escape(protocol::escape(text)))?
            }
            _ => return Err(ProbeError::Escape(protocol::escape(text))),
        };
        out.push(escaped);
    }
    if out.len() > MAX_SEND {
        return Err(ProbeError::SendTooLong {
            len: out.len(),
            max: MAX_SEND,
        });
    }
    Ok(out)
}

/// Checks a `max_reply` value.
pub fn check_max_reply(max_reply: usize) -> Result<(), ProbeError> {
    if (1..=MAX_MAX_REPLY).contains(&max_reply) {
        Ok(())
    } else {
        Err(ProbeError::MaxReply {
            got: max_reply,
            max: MAX_MAX_REPLY,
        })
    }
}

/// A compiled line probe (a preset or `line` itself).
#[derive(Debug, Clone)]
pub struct LineProbe {
    send: Vec<u8>,
    matcher: Matcher,
    max_reply: usize,
}

/// How a line exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// The version is `reply[range]` of the first `len` bytes read.
    Found {
        /// Bytes of the reply that hold the version.
        range: std::ops::Range<usize>,
    },
    /// No version: the class, and how many bytes had arrived.
    Failed(ErrorClass, usize),
}

impl LineProbe {
    /// A probe that sends `send` and reads the version with `matcher`.
    pub fn new(send: Vec<u8>, matcher: Matcher, max_reply: usize) -> Result<Self, ProbeError> {
        check_max_reply(max_reply)?;
        if send.len() > MAX_SEND {
            return Err(ProbeError::SendTooLong {
                len: send.len(),
                max: MAX_SEND,
            });
        }
        Ok(Self {
            send,
            matcher,
            max_reply,
        })
    }

    /// The bytes sent.
    pub fn send(&self) -> &[u8] {
        &self.send
    }

    /// How many groups the pattern has (the whole match included).
    pub fn captures_len(&self) -> usize {
        self.matcher.regex().captures_len()
    }

    /// Fresh capture slots for this probe's pattern (one set per worker, reused).
    pub fn capture_locations(&self) -> CaptureLocations {
        self.matcher.regex().capture_locations()
    }

    /// Sends the text and reads into `reply` until the version is found or not to be had.
    ///
    /// `reply` is grown (never beyond `max_reply`) and kept for the next sample;
    /// `filled` is how much of it the reply occupies, also after a failure.
    pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        timeout: Duration,
        reply: &mut Vec<u8>,
        locs: &mut CaptureLocations,
    ) -> (LineOutcome, usize) {
        let deadline = Instant::now() + timeout;
        if !self.send.is_empty() {
            let write = async {
                stream.write_all(&self.send).await?;
                stream.flush().await
            };
            match tokio::time::timeout_at(deadline, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return (
                        LineOutcome::Failed(ErrorClass::from_exchange_error(&e), 0),
                        0,
                    );
                }
                Err(_) => return (LineOutcome::Failed(ErrorClass::ReplyTimeout, 0), 0),
            }
        }
        let first = self.max_reply.min(FIRST_BUFFER);
        if reply.len() < first {
            reply.resize(first, 0);
        }
        let mut filled = 0;
        loop {
            if filled == reply.len() && reply.len() < self.max_reply {
                let grown = (reply.len() * 2).min(self.max_reply);
                reply.resize(grown, 0);
            }
            let room = self.max_reply.min(reply.len());
            let read = tokio::time::timeout_at(deadline, stream.read(&mut reply[filled..room]));
            let ended = match read.await {
                Ok(Ok(0)) => Some(ErrorClass::ClosedBeforeReply),
                Ok(Ok(n)) => {
                    filled += n;
                    (filled == self.max_reply).then_some(ErrorClass::NoVersion)
                }
                Ok(Err(e)) => Some(ErrorClass::from_exchange_error(&e)),
                Err(_) => Some(ErrorClass::ReplyTimeout),
            };
            if let Some(class) = ended
                && filled == 0
            {
                return (LineOutcome::Failed(class, 0), 0);
            }
            match self.matcher.search(&reply[..filled], ended.is_some(), locs) {
                Search::Found(range) => return (LineOutcome::Found { range }, filled),
                // Something arrived but named no version: that is the finding, whatever
                // ended the wait (a server that answers "-NOAUTH" and waits, for one),
                // unless a reset may have cut the version off.
                Search::Never => {
                    let class = match ended {
                        Some(ErrorClass::Reset) => ErrorClass::Reset,
                        _ => ErrorClass::NoVersion,
                    };
                    return (LineOutcome::Failed(class, filled), filled);
                }
                Search::NotYet => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::pattern::compile;

    #[test]
    fn send_text_escapes() {
        assert_eq!(parse_send("INFO server\\r\\n").unwrap(), b"INFO server\r\n");
        assert_eq!(parse_send("").unwrap(), b"");
        assert_eq!(
            parse_send("a\\x00\\x7f\\\\b\\t").unwrap(),
            b"a\x00\x7f\\b\t"
        );
        assert_eq!(parse_send("\\0").unwrap(), b"\0");
        for bad in ["\\", "\\q", "\\x4", "\\xzz", "tail\\"] {
            assert!(parse_send(bad).is_err(), "{bad}");
        }
        assert!(parse_send(&"a".repeat(MAX_SEND + 1)).is_err());
    }

    async fn run(probe: &LineProbe, script: &'static [&'static [u8]]) -> (LineOutcome, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move {
            for part in script {
                server.write_all(part).await.unwrap();
                tokio::task::yield_now().await;
            }
            server
        });
        let mut reply = Vec::new();
        let mut locs = probe.capture_locations();
        let (outcome, filled) = probe
            .exchange(
                &mut client,
                Duration::from_millis(200),
                &mut reply,
                &mut locs,
            )
            .await;
        drop(client);
        let _ = server.await;
        (outcome, reply[..filled].to_vec())
    }

    #[tokio::test]
    async fn a_version_split_over_reads_is_found_whole() {
        let probe = LineProbe::new(
            b"INFO\r\n".to_vec(),
            Matcher::Anywhere(compile(r"redis_version:(\S+)").unwrap()),
            DEFAULT_MAX_REPLY,
        )
        .unwrap();
        let (outcome, reply) = run(&probe, &[b"$9\r\nredis_version:7.", b"0.15\r\n"]).await;
        let LineOutcome::Found { range } = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(&reply[range], b"7.0.15");
    }

    #[tokio::test]
    async fn a_reply_without_the_version_is_no_version_even_when_the_peer_waits() {
        let probe = LineProbe::new(
            Vec::new(),
            Matcher::Anywhere(compile(r"redis_version:(\S+)").unwrap()),
            DEFAULT_MAX_REPLY,
        )
        .unwrap();
        // The duplex stays open after the script: the reply timeout ends the wait.
        let (outcome, reply) = run(&probe, &[b"-NOAUTH Authentication required.\r\n"]).await;
        assert_eq!(
            outcome,
            LineOutcome::Failed(ErrorClass::NoVersion, reply.len())
        );
        assert!(reply.starts_with(b"-NOAUTH"));
    }

    #[tokio::test]
    async fn silence_is_a_reply_timeout_and_the_limit_is_kept() {
        let probe = LineProbe::new(
            Vec::new(),
            Matcher::Anywhere(compile(r"v(\d+)").unwrap()),
            10,
        )
        .unwrap();
        let (outcome, _) = run(&probe, &[]).await;
        assert_eq!(outcome, LineOutcome::Failed(ErrorClass::ReplyTimeout, 0));
        let (outcome, reply) = run(&probe, &[b"xxxxxxxxxxxxxxxxxxxx v1\n"]).await;
        assert_eq!(outcome, LineOutcome::Failed(ErrorClass::NoVersion, 10));
        assert_eq!(reply.len(), 10);
    }
}
