//! The wire protocol, both directions: the contract between the echo server and the
//! checker, two separately deployed binaries. Frame a line, frame a reply, parse a reply.
//!
//! A request is one line of bytes ending in `\n`. The reply is the server's
//! version, one ASCII space, then the request line unchanged with its `\n` kept:
//! `world\n` answered by version `hello` is `hello world\n`. Any bytes are allowed,
//! not only UTF-8, and pipelined lines are answered in order.
//!
//! This is the protocol of Istio's `tcp-echo` sample with one difference: a final
//! line without `\n` before end of stream is answered too (without a `\n`, since the
//! line had none), where the sample drops it silently.
//!
//! The checker's probe line is `tcp-canary <sample id> <RFC 3339 timestamp>\n`; any
//! server speaking this protocol echoes it, so the checker can tell which version
//! answered and that the reply belongs to the request it sent.
//!
//! What arrives from outside is shown through [`escape`], the project's one escaping
//! function for text bound for a terminal.

use bytes::{BufMut, BytesMut};

mod escape;

pub use escape::escape;

/// The byte that ends a line.
pub const NEWLINE: u8 = b'\n';
/// The byte between the version and the echoed line.
pub const SEPARATOR: u8 = b' ';
/// The default longest line, in bytes, a server accepts before closing the connection.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
/// The longest version string, in bytes.
pub const MAX_VERSION_LEN: usize = 64;
/// The first word of every probe line the checker sends.
pub const PROBE_TAG: &str = "tcp-canary";

/// Why a version string cannot be used as a reply prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The version is empty.
    #[error("the version must not be empty")]
    Empty,
    /// The version is longer than [`MAX_VERSION_LEN`].
    #[error("the version is {0} bytes long, the limit is {MAX_VERSION_LEN}")]
    TooLong(usize),
    /// The version holds a space, a control character or a non-ASCII byte.
    #[error("the version {0:?} must be printable ASCII without spaces")]
    BadCharacter(String),
}

/// Checks that `version` can prefix replies and be parsed back unambiguously.
pub fn validate_version(version: &str) -> Result<(), VersionError> {
    if version.is_empty() {
        return Err(VersionError::Empty);
    }
    if version.len() > MAX_VERSION_LEN {
        return Err(VersionError::TooLong(version.len()));
    }
    if !version.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(VersionError::BadCharacter(version.to_owned()));
    }
    Ok(())
}

/// Appends the reply to one request line (with or without its `\n`) to `out`.
pub fn encode_reply(version: &[u8], line: &[u8], out: &mut BytesMut) {
    out.reserve(version.len() + 1 + line.len());
    out.put_slice(version);
    out.put_u8(SEPARATOR);
    out.put_slice(line);
}

/// A line longer than the limit arrived without its `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a line exceeded {limit} bytes without a newline")]
pub struct LineTooLong {
    /// The limit that was exceeded, in bytes.
    pub limit: usize,
}

/// Splits a byte stream into lines, never buffering more than `max_line` bytes of one line.
#[derive(Debug, Clone, Copy)]
pub struct LineFramer {
    max_line: usize,
    /// How far into the buffer has already been searched for a newline.
    scanned: usize,
}

impl LineFramer {
    /// A framer that accepts lines up to `max_line` bytes, the `\n` included.
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line: max_line.max(1),
            scanned: 0,
        }
    }

    /// The longest accepted line, in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Takes the next complete line (with its `\n`) off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete line yet, and an error when the
    /// partial line in `buf` already exceeds the limit.
    pub fn next_line(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineTooLong> {
        match memchr::memchr(NEWLINE, &buf[self.scanned..]) {
            Some(pos) => {
                let end = self.scanned + pos + 1;
                self.scanned = 0;
                if end > self.max_line {
                    return Err(LineTooLong {
                        limit: self.max_line,
                    });
                }
                Ok(Some(buf.split_to(end)))
            }
            None => {
                self.scanned = buf.len();
                if buf.len() > self.max_line {
                    Err(LineTooLong {
                        limit: self.max_line,
                    })
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Room to read into without letting one line exceed the limit by more than one read.
    pub fn read_hint(&self, buffered: usize) -> usize {
        (self.max_line + 1)
            .saturating_sub(buffered)
            .clamp(1, 64 * 1024)
    }
}

/// Writes the probe line for one sample: `tcp-canary <id> <timestamp>\n`.
pub fn encode_probe(sample_id: u64, timestamp: &str, out: &mut BytesMut) {
    out.reserve(PROBE_TAG.len() + timestamp.len() + 24);
    out.put_slice(PROBE_TAG.as_bytes());
    out.put_u8(SEPARATOR);
    out.put_slice(sample_id.to_string().as_bytes());
    out.put_u8(SEPARATOR);
    out.put_slice(timestamp.as_bytes());
    out.put_u8(NEWLINE);
}

/// Why a reply does not attribute a request to a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The reply does not end with the line that was sent.
    #[error("the reply does not echo the line that was sent")]
    Mismatch,
    /// The reply echoes the line but carries no `<version> ` prefix before it.
    #[error("the reply has no version prefix")]
    NoVersion,
    /// The prefix is not a valid version string.
    #[error("the reply's version prefix is not a valid version")]
    BadVersion,
}

/// Parses the reply to `sent` and returns the version that answered.
///
/// The reply must be exactly `<version> <sent>`, both with their trailing `\n` when
/// `sent` had one; anything else is an error, never a version.
pub fn parse_reply<'a>(reply: &'a [u8], sent: &[u8]) -> Result<&'a str, ReplyError> {
    let prefix_len = reply
        .len()
        .checked_sub(sent.len())
        .ok_or(ReplyError::Mismatch)?;
    let (prefix, echoed) = reply.split_at(prefix_len);
    if echoed != sent {
        return Err(ReplyError::Mismatch);
    }
    let version = match prefix.split_last() {
        Some((&SEPARATOR, version)) if !version.is_empty() => version,
        _ => return Err(ReplyError::NoVersion),
    };
    let version = std::str::from_utf8(version).map_err(|_| ReplyError::BadVersion)?;
    validate_version(version).map_err(|_| ReplyError::BadVersion)?;
    Ok(version)
}

/// The longest reply a valid server can send to a request of `sent_len` bytes.
pub fn max_reply_len(sent_len: usize) -> usize {
    MAX_VERSION_LEN + 1 + sent_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(framer: &mut LineFramer, buf: &mut BytesMut) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while let Some(line) = framer.next_line(buf).unwrap() {
            lines.push(line.to_vec());
        }
        lines
    }

    #[test]
    fn reply_is_version_space_line() {
        let mut out = BytesMut::new();
        encode_reply(b"hello", b"world\n", &mut out);
        assert_eq!(&out[..], b"hello world\n");
    }

    #[test]
    fn reply_keeps_binary_bytes() {
        let mut out = BytesMut::new();
        encode_reply(b"one", b"\x00\xff \r\n", &mut out);
        assert_eq!(&out[..], b"one \x00\xff \r\n");
    }

    #[test]
    fn framer_splits_pipelined_lines_in_order() {
        let mut framer = LineFramer::new(64);
        let mut buf = BytesMut::from(&b"a\nbb\nccc"[..]);
        assert_eq!(
            frame_all(&mut framer, &mut buf),
            vec![b"a\n".to_vec(), b"bb\n".to_vec()]
        );
        assert_eq!(&buf[..], b"ccc");
        buf.extend_from_slice(b"c\n");
        assert_eq!(frame_all(&mut framer, &mut buf), vec![b"cccc\n".to_vec()]);
        assert!(buf.is_empty());
    }

    #[test]
    fn framer_accepts_a_line_of_exactly_the_limit() {
        let mut framer = LineFramer::new(4);
        let mut buf = BytesMut::from(&b"abc\n"[..]);
        assert_eq!(frame_all(&mut framer, &mut buf), vec![b"abc\n".to_vec()]);
    }

    #[test]
    fn framer_rejects_over_long_lines_with_and_without_newline() {
        let mut framer = LineFramer::new(4);
        let mut buf = BytesMut::from(&b"abcd\n"[..]);
        assert_eq!(framer.next_line(&mut buf), Err(LineTooLong { limit: 4 }));
        let mut framer = LineFramer::new(4);
        let mut buf = BytesMut::from(&b"abcde"[..]);
        assert_eq!(framer.next_line(&mut buf), Err(LineTooLong { limit: 4 }));
    }

    #[test]
    fn probe_round_trips_through_reply_parsing() {
        let mut probe = BytesMut::new();
        encode_probe(42, "2026-11-27T13:37:49.123456789Z", &mut probe);
        assert_eq!(
            &probe[..],
            b"tcp-canary 42 2026-11-27T13:37:49.123456789Z\n"
        );
        let mut reply = BytesMut::new();
        encode_reply(b"two", &probe, &mut reply);
        assert_eq!(parse_reply(&reply, &probe), Ok("two"));
    }

    #[test]
    fn parse_reply_rejects_anything_but_version_space_line() {
        let sent = b"tcp-canary 1 t\n";
        assert_eq!(
            parse_reply(b"one tcp-canary 2 t\n", sent),
            Err(ReplyError::Mismatch)
        );
        assert_eq!(
            parse_reply(b"tcp-canary 1 t\n", sent),
            Err(ReplyError::NoVersion)
        );
        assert_eq!(
            parse_reply(b" tcp-canary 1 t\n", sent),
            Err(ReplyError::NoVersion)
        );
        assert_eq!(
            parse_reply(b"onetcp-canary 1 t\n", sent),
            Err(ReplyError::NoVersion)
        );
        assert_eq!(
            parse_reply(b"o\xffe tcp-canary 1 t\n", sent),
            Err(ReplyError::BadVersion)
        );
        assert_eq!(parse_reply(b"", sent), Err(ReplyError::Mismatch));
        assert_eq!(
            parse_reply(b"one tcp-canary 1 t", sent),
            Err(ReplyError::Mismatch)
        );
    }

    #[test]
    fn versions_must_be_printable_without_spaces() {
        assert!(validate_version("one").is_ok());
        assert!(validate_version("v1.2.3-rc1").is_ok());
        assert_eq!(validate_version(""), Err(VersionError::Empty));
        assert!(matches!(
            validate_version("a b"),
            Err(VersionError::BadCharacter(_))
        ));
        assert!(matches!(
            validate_version(&"x".repeat(65)),
            Err(VersionError::TooLong(65))
        ));
    }
}
