//! The command line of `echo-server`: the clap flags (Istio's positional form, named
//! flags, each with an `ECHO_SERVER_*` environment fallback) and their value parsers,
//! their resolution into the library's [`Config`], `--print-config`, and the one-sentence
//! messages for bad arguments, which name the flags (the library speaks of settings).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};
use cli_support::bad_value::{self, Why};
use echo_server::admin::{self, AdminLimits};
use echo_server::config::{
    Config, ConfigError, DEFAULT_ADMIN_PORT, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SOCKET_BUFFER, MAX_ADMIN_CONNECTIONS, MAX_ADMIN_REQUEST, MAX_MAX_CONNECTIONS,
    MAX_MAX_LINE, MAX_SOCKET_BUFFER, MAX_THREADS,
};
use echo_server::tls::TlsFiles;
use protocol::DEFAULT_MAX_LINE;

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
    after_help = format!("{} Durations: {}.", "Logs go to stdout (RUST_LOG filters them, default info). At start-up the soft \
descriptor limit is raised (up to the hard limit) to what --max-connections and the admin port \
need; if the hard limit is lower, one warning says so (--strict-limits: exit 2 instead). Boolean \
variables take 1/0, true/false, yes/no, on/off. Exit codes: 0 after a clean shutdown, 1 when a \
port cannot be bound, the TLS certificate or key cannot be served, or serving fails, 2 for bad arguments. --print-config prints the resolved \
configuration (flags, environment variables, the positional form and the defaults) as one JSON \
object and exits 0, or 2 when it is invalid.", cli_support::duration::RULE)
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

    /// TLS on every echo port (the admin port stays HTTP): the certificate chain, PEM, the
    /// server's certificate first; read at start only (restart to renew). Needs --tls-key.
    #[arg(
        long,
        env = "ECHO_SERVER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "ECHO_SERVER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

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

    /// Print the resolved configuration as one JSON object on stdout and exit (0; 2 if invalid).
    #[arg(long)]
    pub print_config: bool,
}

impl Cli {
    /// The server configuration these arguments describe, validated.
    pub fn config(&self) -> Result<Config, CliError> {
        let ports = match (&self.positional_ports, &self.ports) {
            (Some(_), Some(_)) => return Err(CliError::PortsTwice),
            (Some(list), None) | (None, Some(list)) => parse_ports(list)?,
            (None, None) => return Err(CliError::Config(ConfigError::NoPorts)),
        };
        let version = match (&self.positional_version, &self.version) {
            (Some(_), Some(_)) => return Err(CliError::VersionTwice),
            (Some(v), None) | (None, Some(v)) => v.clone(),
            (None, None) => return Err(CliError::NoVersion),
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
            tls: self
                .tls_cert
                .clone()
                .zip(self.tls_key.clone())
                .map(|(cert, key)| TlsFiles { cert, key }),
        };
        config.validate()?;
        Ok(config)
    }

    /// The resolved configuration as one JSON object: `config` (from [`Cli::config`]) and
    /// the process settings. `null` means off: no admin server, no idle timeout, kernel
    /// socket buffers. Durations are in seconds.
    pub fn resolved(&self, config: &Config) -> serde_json::Value {
        let seconds = |d: Duration| d.as_secs_f64();
        serde_json::json!({
            "ports": config.ports,
            "version": config.version,
            "listen": config.listen.to_string(),
            "max_line": config.max_line,
            "max_connections": config.max_connections,
            "socket_buffer": config.socket_buffer,
            "idle_timeout_seconds": config.idle_timeout.map(seconds),
            "admin_port": config.admin_port,
            "admin_max_connections": config.admin_limits.max_connections,
            "admin_header_timeout_seconds": seconds(config.admin_limits.header_timeout),
            "admin_max_request": config.admin_limits.max_request,
            "admin_idle_timeout_seconds": seconds(config.admin_limits.idle_timeout),
            "drain_delay_seconds": seconds(config.drain_delay),
            "shutdown_timeout_seconds": seconds(config.shutdown_timeout),
            // The files' paths only: they are read when the server starts.
            "tls_cert": config.tls.as_ref().map(|t| t.cert.display().to_string()),
            "tls_key": config.tls.as_ref().map(|t| t.key.display().to_string()),
            "log_format": match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
            "threads": self.threads,
            "strict_limits": self.strict_limits,
        })
    }
}

/// Parses the process's command line, a negative number taken as a separate argument
/// by every flag (see [`cli_support::negative_numbers`]).
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut matches = cli_support::negative_numbers::allowed(Cli::command()).try_get_matches()?;
    Cli::from_arg_matches_mut(&mut matches)
}

/// The one sentence for a command-line error; a bad value names its flag, or its
/// environment variable when it came from there.
pub fn argument_error(err: &clap::Error) -> String {
    let text = err.to_string();
    if err.kind() == clap::error::ErrorKind::MissingRequiredArgument {
        // clap lists the missing flags on lines of their own: one sentence naming them.
        let missing: Vec<&str> = text
            .lines()
            .skip(1)
            .map(str::trim)
            .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
            .collect();
        return format!("{} is missing: a flag given needs it", missing.join(", "));
    }
    let Some(bad) = bad_value::from_clap(err, &Cli::command(), &argv()) else {
        return text;
    };
    let Some(value) = bad.value else {
        return text;
    };
    let source = bad.env.unwrap_or(bad.flag);
    match bad.why {
        Why::OneOf(valid) => format!(
            "{source} must be one of {}, not {value:?}",
            valid.join(", ")
        ),
        // Our parsers say "must be ..., not \"value\"".
        Why::Parser(reason) if reason.starts_with("must ") => format!("{source} {reason}"),
        Why::Parser(reason) => format!("{source}: {value:?} is not valid ({reason})"),
        Why::Unknown => text,
    }
}

/// Why the arguments do not make a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Ports were given both positionally and with `--ports`.
    PortsTwice,
    /// The version was given both positionally and with `--version`.
    VersionTwice,
    /// No version was given.
    NoVersion,
    /// A port list element is not a port number.
    BadPort(String),
    /// The configuration the arguments describe cannot work.
    Config(ConfigError),
}

impl From<ConfigError> for CliError {
    fn from(error: ConfigError) -> Self {
        CliError::Config(error)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ConfigError as C;
        match self {
            CliError::PortsTwice => f.write_str(
                "echo ports given twice: use either the positional form or --ports (or ECHO_SERVER_PORTS), not both",
            ),
            CliError::VersionTwice => f.write_str(
                "version given twice: use either the positional form or --version (or ECHO_SERVER_VERSION), not both",
            ),
            CliError::NoVersion => {
                f.write_str("no version given: pass it as the second argument or with --version")
            }
            CliError::BadPort(p) => {
                write!(f, "{p:?} is not a port number (1-65535, or 0 for any free port)")
            }
            // The library's sentences speak of settings; these name the flags.
            CliError::Config(C::NoPorts) => f.write_str(
                "no echo port given: pass them as the first argument (9000,9001) or with --ports",
            ),
            CliError::Config(C::AdminPortIsEchoPort(port)) => write!(
                f,
                "port {port} is both an echo port and the admin port: pick another --admin-port (or --no-admin)"
            ),
            CliError::Config(C::ZeroMaxLine) => f.write_str("--max-line must be at least 1 byte"),
            CliError::Config(C::ZeroMaxConnections) => {
                f.write_str("--max-connections must be at least 1")
            }
            CliError::Config(C::TimeoutBeforeDrain) => f.write_str(
                "--shutdown-timeout must not be shorter than --drain-delay (both count from the signal)",
            ),
            CliError::Config(C::ZeroAdminConnections) => {
                f.write_str("--admin-max-connections must be at least 1")
            }
            CliError::Config(C::AdminRequestTooSmall(bytes)) => write!(
                f,
                "--admin-max-request must be at least {} bytes, not {bytes}",
                admin::MIN_MAX_REQUEST
            ),
            CliError::Config(C::ZeroAdminTimeout) => f.write_str(
                "--admin-header-timeout and --admin-idle-timeout must be longer than 0",
            ),
            CliError::Config(e @ (C::DuplicatePort(_) | C::Version(_))) => e.fmt(f),
        }
    }
}

/// The sentence for arguments that make no configuration; a bad port list or version
/// that came from the environment names its variable.
pub fn config_error(cli: &Cli, err: &CliError) -> String {
    let from_env = match err {
        CliError::BadPort(_) | CliError::Config(ConfigError::DuplicatePort(_))
            if cli.positional_ports.is_none() =>
        {
            env_source("--ports")
        }
        CliError::Config(ConfigError::Version(_)) if cli.positional_version.is_none() => {
            env_source("--version")
        }
        _ => None,
    };
    match from_env {
        Some(name) => format!("{name}: {err}"),
        None => err.to_string(),
    }
}

/// Parses a comma-separated port list such as `9000,9001`.
pub fn parse_ports(list: &str) -> Result<Vec<u16>, CliError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| CliError::BadPort(p.to_owned()))
        })
        .collect()
}

/// Parses a duration by the rule both binaries share (see [`cli_support::duration`]); the
/// message names the value, as every echo-server value parser's does.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    cli_support::duration::parse(text).map_err(|e| format!("{e}, not {:?}", text.trim()))
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

/// Parses a boolean by the rule both binaries share (see [`cli_support::boolean`]); the
/// message names the value, as every echo-server value parser's does.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    cli_support::boolean::parse(text).map_err(|e| format!("{e}, not {text:?}"))
}

/// The environment variable a flag's bad value came from: the flag is absent from the
/// command line and its variable is set.
fn env_source(flag: &str) -> Option<String> {
    bad_value::env_source(&Cli::command(), flag, &argv())
}

/// The process's arguments, program name first (lossy: a flag is ASCII).
fn argv() -> Vec<String> {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
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

    #[test]
    fn value_parsers_take_the_documented_spellings() {
        assert_eq!(parse_ports("9000, 9001,"), Ok(vec![9000, 9001]));
        assert_eq!(parse_ports("9000,x"), Err(CliError::BadPort("x".into())));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(whole_number::<1, 10>("10"), Ok(10));
        assert!(whole_number::<1, 10>("11").is_err());
        assert!(whole_number::<1, 10>("-1").is_err());
        assert_eq!(port_number("65535"), Ok(65535));
        assert!(port_number("65536").is_err());
        assert_eq!(parse_bool("On"), Ok(true));
        assert_eq!(parse_bool("no"), Ok(false));
        assert_eq!(
            parse_bool("maybe"),
            Err("must be 1/0, true/false, yes/no or on/off, not \"maybe\"".to_owned())
        );
    }

    #[test]
    fn configuration_errors_name_the_flags() {
        let sentence = |args: &[&str]| cli(args).unwrap_err();
        assert_eq!(
            sentence(&["9000", "one", "--drain-delay=10s", "--shutdown-timeout=5s"]),
            "--shutdown-timeout must not be shorter than --drain-delay (both count from the signal)"
        );
        assert_eq!(
            sentence(&["9000", "one", "--admin-idle-timeout=0"]),
            "--admin-header-timeout and --admin-idle-timeout must be longer than 0"
        );
        assert_eq!(
            sentence(&["9901", "one"]),
            "port 9901 is both an echo port and the admin port: pick another --admin-port (or --no-admin)"
        );
        assert_eq!(
            sentence(&["--version=one"]),
            "no echo port given: pass them as the first argument (9000,9001) or with --ports"
        );
        assert_eq!(
            sentence(&["9000"]),
            "no version given: pass it as the second argument or with --version"
        );
        // Every configuration error has a sentence of the command line's.
        for error in [
            ConfigError::ZeroMaxLine,
            ConfigError::ZeroMaxConnections,
            ConfigError::ZeroAdminConnections,
            ConfigError::AdminRequestTooSmall(1),
        ] {
            let text = CliError::Config(error.clone()).to_string();
            assert!(text.starts_with("--"), "{error}: {text}");
        }
    }

    /// The manifests crate reads a container's version out of these arguments with its
    /// own copy of what takes a value (it does not depend on the server): this keeps
    /// the copy in step with the clap command.
    #[test]
    fn the_manifest_reader_knows_every_flag_that_takes_no_value() {
        use manifests::version::{FLAGS_WITHOUT_VALUE, VERSION_ENV, VERSION_FLAG};

        let mut command = Cli::command();
        command.build();
        let mut without_value: Vec<String> = Vec::new();
        for arg in command.get_arguments() {
            if arg.is_positional() || arg.get_action().takes_values() {
                continue;
            }
            without_value.extend(arg.get_long().map(|l| format!("--{l}")));
            without_value.extend(arg.get_short().map(|s| format!("-{s}")));
        }
        without_value.sort();
        let mut copied: Vec<String> = FLAGS_WITHOUT_VALUE
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        copied.sort();
        assert_eq!(
            copied, without_value,
            "manifests::version::FLAGS_WITHOUT_VALUE differs from echo-server's flags that take no value"
        );

        let version = command
            .get_arguments()
            .find(|a| {
                a.get_long()
                    .is_some_and(|l| format!("--{l}") == VERSION_FLAG)
            })
            .expect("echo-server has the version flag manifests reads");
        assert!(
            version.get_action().takes_values(),
            "{VERSION_FLAG} takes a value"
        );
        assert_eq!(
            version.get_env().and_then(|e| e.to_str()),
            Some(VERSION_ENV),
            "the version's environment variable"
        );
    }
}
