//! Configuration: the library's [`Config`], its defaults and bounds, and its validation.
//!
//! The command line (clap, Istio's positional form, environment fallbacks, the value
//! parsers and the sentences that name flags) lives in the binary (`src/cli.rs`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::admin::{self, AdminLimits};
use crate::tls::TlsFiles;
use protocol::DEFAULT_MAX_LINE;

/// The default admin HTTP port.
pub const DEFAULT_ADMIN_PORT: u16 = 9901;
/// The default connection limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The default idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The default time to keep accepting after a shutdown signal.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);
/// The default deadline, counted from the shutdown signal, after which open connections are cut.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(25);
/// The default address the listeners bind to (all IPv4 interfaces, like Istio's sample).
pub const DEFAULT_LISTEN: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// The largest `--max-connections` (one descriptor each; Linux's default `nr_open`).
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;
/// The largest `--max-line` (1 GiB).
pub const MAX_MAX_LINE: usize = 1 << 30;
/// The largest `--threads`: more event loops than this never helps an echo server.
pub const MAX_THREADS: usize = 1024;
/// The default `SO_SNDBUF`/`SO_RCVBUF` of echo connections, in bytes (the kernel doubles it).
pub const DEFAULT_SOCKET_BUFFER: usize = 16 * 1024;
/// The largest `--socket-buffer` (4 MiB, Linux's default `net.core.wmem_max`).
pub const MAX_SOCKET_BUFFER: usize = 4 << 20;
/// The largest `--admin-max-connections`.
pub const MAX_ADMIN_CONNECTIONS: usize = 10_000;
/// The largest `--admin-max-request` (1 MiB).
pub const MAX_ADMIN_REQUEST: usize = 1 << 20;

/// Everything a [`crate::Server`] needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The echo ports, one listener each; 0 asks the kernel for a free port.
    pub ports: Vec<u16>,
    /// The version that prefixes every reply.
    pub version: String,
    /// The address every listener (echo and admin) binds to.
    pub listen: IpAddr,
    /// The longest line in bytes, `\n` included; a longer one ends the connection.
    pub max_line: usize,
    /// Open connections beyond this number are closed at once and counted.
    pub max_connections: usize,
    /// `SO_SNDBUF` and `SO_RCVBUF` of echo connections; `None` leaves them to the kernel.
    pub socket_buffer: Option<usize>,
    /// Connections silent for this long are closed; `None` never closes them.
    pub idle_timeout: Option<Duration>,
    /// The admin HTTP port; `None` runs no admin server, `Some(0)` a free port.
    pub admin_port: Option<u16>,
    /// How long to keep accepting after a shutdown starts (while endpoints update).
    pub drain_delay: Duration,
    /// Deadline, counted from the start of the shutdown, after which open connections are cut.
    pub shutdown_timeout: Duration,
    /// The bounds of the admin HTTP server.
    pub admin_limits: AdminLimits,
    /// TLS on every echo port: the certificate and key files, read when the server is
    /// bound (see [`crate::tls`]); `None` serves plain TCP.
    pub tls: Option<TlsFiles>,
}

impl Config {
    /// A configuration with the documented defaults for everything but ports and version.
    ///
    /// The defaults are the binary's: listeners on `0.0.0.0` and the admin server on
    /// port 9901. Servers run in-process side by side should set `listen` to a loopback
    /// address and `admin_port` to `None` or `Some(0)`.
    pub fn new(ports: Vec<u16>, version: String) -> Self {
        Self {
            ports,
            version,
            listen: DEFAULT_LISTEN,
            max_line: DEFAULT_MAX_LINE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            socket_buffer: Some(DEFAULT_SOCKET_BUFFER),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            admin_port: Some(DEFAULT_ADMIN_PORT),
            drain_delay: DEFAULT_DRAIN_DELAY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            admin_limits: AdminLimits::default(),
            tls: None,
        }
    }

    /// Checks the values that the types alone do not rule out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ports.is_empty() {
            return Err(ConfigError::NoPorts);
        }
        let mut seen = std::collections::HashSet::new();
        for &port in &self.ports {
            if port != 0 && !seen.insert(port) {
                return Err(ConfigError::DuplicatePort(port));
            }
        }
        if let Some(admin) = self.admin_port.filter(|&p| p != 0)
            && seen.contains(&admin)
        {
            return Err(ConfigError::AdminPortIsEchoPort(admin));
        }
        protocol::validate_version(&self.version)?;
        if self.max_line == 0 {
            return Err(ConfigError::ZeroMaxLine);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroMaxConnections);
        }
        if self.shutdown_timeout < self.drain_delay {
            return Err(ConfigError::TimeoutBeforeDrain);
        }
        let limits = &self.admin_limits;
        if limits.max_connections == 0 {
            return Err(ConfigError::ZeroAdminConnections);
        }
        if limits.max_request < admin::MIN_MAX_REQUEST {
            return Err(ConfigError::AdminRequestTooSmall(limits.max_request));
        }
        if limits.header_timeout.is_zero() || limits.idle_timeout.is_zero() {
            return Err(ConfigError::ZeroAdminTimeout);
        }
        Ok(())
    }
}

/// A configuration that cannot work. The messages speak of the settings; the binary
/// names its flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No echo port was given.
    #[error("no echo port given")]
    NoPorts,
    /// A port appears twice.
    #[error("port {0} is listed twice")]
    DuplicatePort(u16),
    /// The admin port is also an echo port.
    #[error("port {0} is both an echo port and the admin port")]
    AdminPortIsEchoPort(u16),
    /// The version cannot prefix replies.
    #[error("bad version: {0}")]
    Version(#[from] protocol::VersionError),
    /// A longest line of 0 bytes.
    #[error("the longest line must be at least 1 byte")]
    ZeroMaxLine,
    /// A connection limit of 0.
    #[error("the connection limit must be at least 1")]
    ZeroMaxConnections,
    /// The shutdown deadline falls before the end of the drain delay.
    #[error(
        "the shutdown timeout must not be shorter than the drain delay (both count from the signal)"
    )]
    TimeoutBeforeDrain,
    /// An admin connection limit of 0.
    #[error("the admin connection limit must be at least 1")]
    ZeroAdminConnections,
    /// A longest admin request below what the HTTP library accepts.
    #[error(
        "the longest admin request must be at least {} bytes, not {}",
        admin::MIN_MAX_REQUEST,
        .0
    )]
    AdminRequestTooSmall(usize),
    /// A zero admin header or idle timeout.
    #[error("the admin header and idle timeouts must be longer than 0")]
    ZeroAdminTimeout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(
            Config::new(vec![9000, 9001], "one".into()).validate(),
            Ok(())
        );
    }

    #[test]
    fn validation_names_what_cannot_work() {
        let base = Config::new(vec![9000], "one".into());
        let check = |edit: fn(&mut Config)| {
            let mut config = base.clone();
            edit(&mut config);
            config.validate()
        };
        assert_eq!(check(|c| c.ports.clear()), Err(ConfigError::NoPorts));
        assert_eq!(
            check(|c| c.ports = vec![9000, 9000]),
            Err(ConfigError::DuplicatePort(9000))
        );
        assert!(check(|c| c.ports = vec![0, 0]).is_ok());
        assert_eq!(
            check(|c| c.admin_port = Some(9000)),
            Err(ConfigError::AdminPortIsEchoPort(9000))
        );
        assert!(matches!(
            check(|c| c.version = "a b".into()),
            Err(ConfigError::Version(_))
        ));
        assert_eq!(check(|c| c.max_line = 0), Err(ConfigError::ZeroMaxLine));
        assert_eq!(
            check(|c| c.shutdown_timeout = Duration::from_secs(1)),
            Err(ConfigError::TimeoutBeforeDrain)
        );
        assert_eq!(
            check(|c| c.admin_limits.max_request = 100),
            Err(ConfigError::AdminRequestTooSmall(100))
        );
    }
}
