//! Configuration: the library's [`Config`] and the command line ([`Cli`]) that fills it.
//!
//! The command line accepts Istio's positional form (`echo-server 9000,9001 one`) and
//! named flags, each with an environment variable as fallback.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

use crate::admin::{self, AdminLimits};
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

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No echo port was given.
    #[error("no echo port given: pass them as the first argument (9000,9001) or with --ports")]
    NoPorts,
    /// Ports were given both positionally and with `--ports`.
    #[error(
        "echo ports given twice: use either the positional form or --ports (or ECHO_SERVER_PORTS), not both"
    )]
    PortsTwice,
    /// The version was given both positionally and with `--version`.
    #[error(
        "version given twice: use either the positional form or --version (or ECHO_SERVER_VERSION), not both"
    )]
    VersionTwice,
    /// No version was given.
    #[error("no version given: pass it as the second argument or with --version")]
    NoVersion,
    /// A port appears twice.
    #[error("port {0} is listed twice")]
    DuplicatePort(u16),
    /// The admin port is also an echo port.
    #[error(
        "port {0} is both an echo port and the admin port: pick another --admin-port (or --no-admin)"
    )]
    AdminPortIsEchoPort(u16),
    /// A port list element is not a port number.
    #[error("{0:?} is not a port number (1-65535, or 0 for any free port)")]
    BadPort(String),
    /// The version cannot prefix replies.
    #[error("bad version: {0}")]
    Version(#[from] protocol::VersionError),
    /// `--max-line 0`.
    #[error("--max-line must be at least 1 byte")]
    ZeroMaxLine,
    /// `--max-connections 0`.
    #[error("--max-connections must be at least 1")]
    ZeroMaxConnections,
    /// The shutdown deadline falls before the end of the drain delay.
    #[error(
        "--shutdown-timeout must not be shorter than --drain-delay (both count from the signal)"
    )]
    TimeoutBeforeDrain,
    /// `--admin-max-connections 0`.
    #[error("--admin-max-connections must be at least 1")]
    ZeroAdminConnections,
    /// `--admin-max-request` below what the HTTP library accepts.
    #[error("--admin-max-request must be at least 8192 bytes, not {0}")]
    AdminRequestTooSmall(usize),
    /// A zero admin header or idle timeout.
    #[error("--admin-header-timeout and --admin-idle-timeout must be longer than 0")]
    ZeroAdminTimeout,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The command line of `echo-server`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "echo-server",
    disable_version_flag = true,
    about = "A hardened, versioned TCP echo server: a drop-in for Istio's tcp-echo sample",
    long_about = "A hardened, versioned TCP echo server: a drop-in for Istio's tcp-echo sample.\n\n\
For every line ending in \\n it replies `<version> <line>` (one space, the line's bytes \
unchanged, its \\n kept), pipelined lines in order, until the client closes.\n\n\
One difference from Istio's sample: a final line without \\n before the client closes \
its side is answered too (without a \\n), where the sample drops it silently.\n\n\
Istio's positional form works unchanged: `echo-server 9000,9001 one`.",
    after_help = "Logs go to stdout (RUST_LOG filters them, default info). At start-up the soft \
descriptor limit is raised (up to the hard limit) to what --max-connections and the admin port \
need; if the hard limit is lower, one warning says so (--strict-limits: exit 2 instead). Boolean \
variables take 1/0, true/false, yes/no, on/off. Exit codes: 0 after a clean shutdown, 1 when a \
port cannot be bound or serving fails, 2 for bad arguments."
)]
pub struct Cli {
    /// Istio's form: the echo ports, comma-separated (e.g. 9000,9001).
    #[arg(value_name = "PORTS")]
    pub positional_ports: Option<String>,

    /// Istio's form: the version that prefixes replies (e.g. one).
    #[arg(value_name = "VERSION")]
    pub positional_version: Option<String>,

    /// The echo ports, comma-separated; 0 picks a free port.
    #[arg(long, env = "ECHO_SERVER_PORTS", value_name = "PORTS")]
    pub ports: Option<String>,

    /// The version that prefixes every reply.
    #[arg(long = "version", env = "ECHO_SERVER_VERSION", value_name = "VERSION")]
    pub version: Option<String>,

    /// The address every listener (echo and admin) binds to.
    #[arg(long, env = "ECHO_SERVER_LISTEN", default_value_t = DEFAULT_LISTEN)]
    pub listen: IpAddr,

    /// The longest line in bytes, \n included; a longer one ends the connection.
    #[arg(long, env = "ECHO_SERVER_MAX_LINE", default_value_t = DEFAULT_MAX_LINE, value_name = "BYTES",
        value_parser = whole_number::<1, MAX_MAX_LINE>, allow_negative_numbers = true)]
    pub max_line: usize,

    /// Connections beyond this number are closed at once and counted.
    #[arg(long, env = "ECHO_SERVER_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = whole_number::<1, MAX_MAX_CONNECTIONS>, allow_negative_numbers = true)]
    pub max_connections: usize,

    /// SO_SNDBUF and SO_RCVBUF of echo connections in bytes (the kernel doubles it): bounds
    /// the kernel memory a client that never reads can pin; 0 = kernel autotuning (up to MiBs).
    #[arg(long, env = "ECHO_SERVER_SOCKET_BUFFER", default_value_t = DEFAULT_SOCKET_BUFFER, value_name = "BYTES",
        value_parser = whole_number::<0, MAX_SOCKET_BUFFER>, allow_negative_numbers = true)]
    pub socket_buffer: usize,

    /// Close connections silent for this long (e.g. 300s, 5m, 500ms); 0 = never.
    #[arg(long, env = "ECHO_SERVER_IDLE_TIMEOUT", default_value = "300s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,

    /// The admin HTTP port (/healthz /readyz /version /metrics); 0 picks a free port.
    #[arg(long, env = "ECHO_SERVER_ADMIN_PORT", default_value_t = DEFAULT_ADMIN_PORT,
        value_parser = port_number, allow_negative_numbers = true)]
    pub admin_port: u16,

    /// Run no admin HTTP server.
    #[arg(long, env = "ECHO_SERVER_NO_ADMIN", action = ArgAction::SetTrue, value_parser = parse_bool)]
    pub no_admin: bool,

    /// Admin connections open at once; at the limit the longest-silent one is closed (and counted).
    #[arg(long, env = "ECHO_SERVER_ADMIN_MAX_CONNECTIONS", default_value_t = admin::DEFAULT_MAX_CONNECTIONS,
        value_parser = whole_number::<1, MAX_ADMIN_CONNECTIONS>, allow_negative_numbers = true)]
    pub admin_max_connections: usize,

    /// An admin request's head must arrive within this time (also the keep-alive idle limit).
    #[arg(long, env = "ECHO_SERVER_ADMIN_HEADER_TIMEOUT", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub admin_header_timeout: Duration,

    /// The longest admin request head (request line + headers) in bytes; longer gets 431.
    #[arg(long, env = "ECHO_SERVER_ADMIN_MAX_REQUEST", default_value_t = admin::DEFAULT_MAX_REQUEST, value_name = "BYTES",
        value_parser = whole_number::<{ admin::MIN_MAX_REQUEST }, MAX_ADMIN_REQUEST>, allow_negative_numbers = true)]
    pub admin_max_request: usize,

    /// Close an admin connection that moves no byte either way for this long.
    #[arg(long, env = "ECHO_SERVER_ADMIN_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub admin_idle_timeout: Duration,

    /// After SIGTERM/SIGINT, keep accepting this long while /readyz says 503.
    #[arg(long, env = "ECHO_SERVER_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub drain_delay: Duration,

    /// Deadline counted from SIGTERM/SIGINT after which open connections are cut.
    #[arg(long, env = "ECHO_SERVER_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_timeout: Duration,

    /// Log format.
    #[arg(long, env = "ECHO_SERVER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Worker threads: 1 = a single event loop (least CPU per request); 0 = one per CPU core.
    #[arg(long, env = "ECHO_SERVER_THREADS", default_value_t = 1,
        value_parser = whole_number::<0, MAX_THREADS>, allow_negative_numbers = true)]
    pub threads: usize,

    /// Exit 2 instead of warning when the descriptor limit cannot be raised to what the limits need.
    #[arg(long, env = "ECHO_SERVER_STRICT_LIMITS", action = ArgAction::SetTrue, value_parser = parse_bool)]
    pub strict_limits: bool,
}

impl Cli {
    /// The server configuration these arguments describe, validated.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let ports = match (&self.positional_ports, &self.ports) {
            (Some(_), Some(_)) => return Err(ConfigError::PortsTwice),
            (Some(list), None) | (None, Some(list)) => parse_ports(list)?,
            (None, None) => return Err(ConfigError::NoPorts),
        };
        let version = match (&self.positional_version, &self.version) {
            (Some(_), Some(_)) => return Err(ConfigError::VersionTwice),
            (Some(v), None) | (None, Some(v)) => v.clone(),
            (None, None) => return Err(ConfigError::NoVersion),
        };
        let config = Config {
            ports,
            version,
            listen: self.listen,
            max_line: self.max_line,
            max_connections: self.max_connections,
            socket_buffer: (self.socket_buffer != 0).then_some(self.socket_buffer),
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            admin_port: (!self.no_admin).then_some(self.admin_port),
            drain_delay: self.drain_delay,
            shutdown_timeout: self.shutdown_timeout,
            admin_limits: AdminLimits {
                max_connections: self.admin_max_connections,
                header_timeout: self.admin_header_timeout,
                max_request: self.admin_max_request,
                idle_timeout: self.admin_idle_timeout,
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// Parses a comma-separated port list such as `9000,9001`.
pub fn parse_ports(list: &str) -> Result<Vec<u16>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| ConfigError::BadPort(p.to_owned()))
        })
        .collect()
}

/// Parses a duration such as `500ms`, `5s` or `2m`; a bare number counts seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|_| format!("must be a duration like 500ms, 5s or 2m, not {text:?}"))
}

/// Parses a whole number from `MIN` to `MAX`; anything else, negative numbers and
/// overflow included, gets the same one message.
pub fn whole_number<const MIN: usize, const MAX: usize>(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (MIN..=MAX).contains(n))
        .ok_or_else(|| format!("must be a whole number from {MIN} to {MAX}, not {text:?}"))
}

/// Parses a port number (0 = any free port) with the same message as [`whole_number`].
pub fn port_number(text: &str) -> Result<u16, String> {
    let port = whole_number::<0, { u16::MAX as usize }>(text)?;
    u16::try_from(port).map_err(|_| format!("must be a whole number from 0 to 65535, not {text:?}"))
}

/// Parses a boolean in the usual spellings: 1/0, true/false, yes/no, on/off (any case).
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err(format!(
            "must be 1/0, true/false, yes/no or on/off, not {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("echo-server").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.config().map_err(|e| e.to_string())
    }

    #[test]
    fn istio_positional_form() {
        let config = cli(&["9000,9001", "one"]).unwrap();
        assert_eq!(config.ports, vec![9000, 9001]);
        assert_eq!(config.version, "one");
        assert_eq!(
            config,
            Config {
                ..Config::new(vec![9000, 9001], "one".into())
            }
        );
    }

    #[test]
    fn named_flags() {
        let config = cli(&[
            "--ports=0,0",
            "--version=v2",
            "--idle-timeout=0",
            "--drain-delay=500ms",
            "--shutdown-timeout=2s",
            "--no-admin",
            "--listen=::1",
        ])
        .unwrap();
        assert!(
            cli(&[
                "1",
                "x",
                "--idle-timeout=500000000y",
                "--shutdown-timeout=600000000y"
            ])
            .is_ok()
        );
        assert_eq!(config.ports, vec![0, 0]);
        assert_eq!(config.idle_timeout, None);
        assert_eq!(config.drain_delay, Duration::from_millis(500));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(2));
        assert_eq!(config.admin_port, None);
        assert_eq!(config.listen, "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(cli(&[]).is_err());
        assert!(cli(&["9000"]).is_err());
        assert!(cli(&["70000", "one"]).is_err());
        assert!(cli(&["9000,9000", "one"]).is_err());
        assert!(cli(&["9000", "a b"]).is_err());
        assert!(cli(&["9000", "one", "--ports=9001"]).is_err());
        assert!(cli(&["9000", "one", "--idle-timeout=soon"]).is_err());
        assert!(cli(&["9000", "one", "--drain-delay=10s", "--shutdown-timeout=5s"]).is_err());
        assert!(cli(&["9000", "one", "--max-line=0"]).is_err());
        assert!(cli(&["9901", "one"]).is_err());
        assert!(cli(&["9000", "one", "--admin-port=9000"]).is_err());
        assert!(cli(&["9901", "one", "--no-admin"]).is_ok());
        assert!(cli(&["0", "one", "--admin-port=0"]).is_ok());
    }
}
