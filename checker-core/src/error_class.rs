//! Why a sample produced no version: the error classes, their stable names, and how
//! I/O errors map to them. The sampler, the probes and TLS all classify into these.

use std::io;

use serde::Serialize;

/// Why a sample produced no version.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The connection was refused (nothing listening, or the gateway refused it).
    Refused,
    /// The connection was not established within the connect timeout.
    ConnectTimeout,
    /// The connection was reset by the peer.
    Reset,
    /// The peer closed the connection before a complete reply line arrived.
    ClosedBeforeReply,
    /// No complete reply line arrived within the reply timeout.
    ReplyTimeout,
    /// The reply was not `<version> <the line sent>`: garbage, a wrong echo or too long.
    MalformedReply,
    /// A probe's reply arrived but named no version: the pattern did not match, or what
    /// it captured is not a version name (see [`crate::sampler::Sample::reason`]).
    NoVersion,
    /// The TLS handshake failed (the peer closed or refused it, no route for the SNI
    /// name, not a TLS service, or no handshake within the connect timeout).
    TlsHandshake,
    /// The server's certificate was refused (unknown issuer, expired, wrong name).
    TlsCertificate,
    /// No local address or port was free for a new connection (EADDRNOTAVAIL).
    LocalAddressExhausted,
    /// Any other failure (unreachable network, permission, ...).
    Other,
}

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 11] = [
        ErrorClass::Refused,
        ErrorClass::ConnectTimeout,
        ErrorClass::Reset,
        ErrorClass::ClosedBeforeReply,
        ErrorClass::ReplyTimeout,
        ErrorClass::MalformedReply,
        ErrorClass::NoVersion,
        ErrorClass::TlsHandshake,
        ErrorClass::TlsCertificate,
        ErrorClass::LocalAddressExhausted,
        ErrorClass::Other,
    ];

    /// The stable name used in reports and sample files.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Refused => "refused",
            ErrorClass::ConnectTimeout => "connect_timeout",
            ErrorClass::Reset => "reset",
            ErrorClass::ClosedBeforeReply => "closed_before_reply",
            ErrorClass::ReplyTimeout => "reply_timeout",
            ErrorClass::MalformedReply => "malformed_reply",
            ErrorClass::NoVersion => "no_version",
            ErrorClass::TlsHandshake => "tls_handshake",
            ErrorClass::TlsCertificate => "tls_certificate",
            ErrorClass::LocalAddressExhausted => "local_address_exhausted",
            ErrorClass::Other => "other",
        }
    }

    /// The position of this class in [`ErrorClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Classifies an I/O error from connecting.
    pub fn from_connect_error(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionRefused => ErrorClass::Refused,
            io::ErrorKind::TimedOut => ErrorClass::ConnectTimeout,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => ErrorClass::Reset,
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => {
                ErrorClass::LocalAddressExhausted
            }
            _ => ErrorClass::Other,
        }
    }

    /// Classifies an I/O error from writing the probe or reading the reply.
    pub fn from_exchange_error(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorClass::Reset,
            io::ErrorKind::UnexpectedEof => ErrorClass::ClosedBeforeReply,
            io::ErrorKind::TimedOut => ErrorClass::ReplyTimeout,
            _ => ErrorClass::Other,
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
