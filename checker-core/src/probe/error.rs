//! Why a probe cannot be used (found before any connection is made).

use crate::tls::TlsError;

/// Why a probe cannot be used (found before any connection is made).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The text to send has a bad escape.
    #[error(
        "the text to send, {0:?}, has an unknown escape: use \\n, \\r, \\t, \\0, \\\\ or \\xNN"
    )]
    Escape(String),
    /// The text to send is too long.
    #[error("the text to send is {len} bytes long, the limit is {max}")]
    SendTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A version pattern cannot be used.
    #[error("the version pattern {pattern:?} cannot be used: {reason}")]
    Pattern {
        /// The pattern (escaped, cut).
        pattern: String,
        /// Why.
        reason: String,
    },
    /// The reply limit is out of range.
    #[error("the reply limit must be 1 to {max} bytes, got {got}")]
    MaxReply {
        /// The limit asked for.
        got: usize,
        /// The highest accepted.
        max: usize,
    },
    /// An HTTP path that would not make a request line.
    #[error("the HTTP path {0:?} must start with / and hold no spaces or control characters")]
    Path(String),
    /// An HTTP host that would not make a header.
    #[error("the HTTP host {0:?} must be printable without spaces")]
    Host(String),
    /// An HTTP header name that is not a token.
    #[error("{0:?} is not an HTTP header name")]
    Header(String),
    /// Only a TLS handshake with attribution by certificate has nothing to exchange.
    #[error("a probe that exchanges nothing needs TLS with the version read from the certificate")]
    NothingToRead,
    /// The TLS client cannot be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
}
