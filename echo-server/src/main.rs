//! `echo-server`: see the library documentation. Parses arguments, sets up logging and
//! signals, and turns errors into one sentence on stderr and an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};
use echo_server::{
    Cli, Config, ConfigError, EXIT_FAILURE, EXIT_USAGE, LogFormat, Server, ServerHandle,
    descriptors,
};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            // Printing help can only fail on a closed stdout, where nothing else helps.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => return usage_error(&argument_error(&err)),
    };
    let config = match cli.config() {
        Ok(config) => config,
        Err(err) => return usage_error(&config_error(&cli, &err)),
    };
    init_logging(cli.log_format);
    if let Err(message) = raise_descriptor_limit(&config, cli.strict_limits) {
        return usage_error(&message);
    }
    // One thread: a single event loop without work-stealing, like a bare epoll server.
    let mut runtime = match cli.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if cli.threads > 1 {
        runtime.worker_threads(cli.threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return failure(&format!("cannot start the async runtime: {err}")),
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => failure(&err),
    }
}

/// Installs the signal handlers, binds and serves until the shutdown completes.
///
/// The handlers go in first: a SIGTERM that arrives while the ports are being bound is
/// kept and starts the graceful sequence, instead of killing the process outright.
async fn serve(config: Config) -> Result<(), String> {
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let server = Server::bind(config).await.map_err(|e| e.to_string())?;
    let handle = server.handle();
    tokio::spawn(async move {
        watch_signals(&handle, &mut terminate, &mut interrupt).await;
    });
    server.run().await.map(|_| ()).map_err(|e| e.to_string())
}

/// The first SIGTERM/SIGINT starts the graceful shutdown; a second one aborts.
async fn watch_signals(
    handle: &ServerHandle,
    terminate: &mut tokio::signal::unix::Signal,
    interrupt: &mut tokio::signal::unix::Signal,
) {
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "signal received: shutting down gracefully");
    handle.shutdown();
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::warn!(
        signal = name,
        "second signal received: cutting every connection now"
    );
    handle.abort();
}

/// Raises the soft descriptor limit to what `config` needs. Short of it: one warning, or
/// with `strict` the sentence to refuse with.
fn raise_descriptor_limit(config: &Config, strict: bool) -> Result<(), String> {
    let needed = descriptors::needed(config);
    let limits = match descriptors::raise(needed) {
        Ok(limits) => limits,
        Err(error) if strict => {
            return Err(format!(
                "cannot read or raise the descriptor limit: {error}"
            ));
        }
        Err(error) => {
            tracing::warn!(%error, needed, "cannot read or raise the descriptor limit");
            return Ok(());
        }
    };
    if limits.soft > limits.before {
        tracing::info!(
            from = limits.before,
            to = limits.soft,
            hard = limits.hard,
            needed,
            "raised the soft descriptor limit"
        );
    }
    if limits.enough() {
        return Ok(());
    }
    let sentence = format!(
        "the descriptor limit is {} (hard limit {}) but --max-connections {} and the admin port need {needed}: \
         raise the hard limit (ulimit -Hn) or lower --max-connections",
        limits.soft, limits.hard, config.max_connections
    );
    if strict {
        return Err(sentence);
    }
    tracing::warn!(
        soft = limits.soft,
        hard = limits.hard,
        needed,
        "{sentence}; connections beyond it fail to be accepted"
    );
    Ok(())
}

/// The one sentence for a command-line error; a bad value names its flag, or its
/// environment variable when it came from there.
fn argument_error(err: &clap::Error) -> String {
    let text = err.to_string();
    if !matches!(
        err.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return text;
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        err.get(ContextKind::InvalidArg),
        err.get(ContextKind::InvalidValue),
    ) else {
        return text;
    };
    // "--max-connections <MAX_CONNECTIONS>" -> "--max-connections"
    let flag = arg.split_whitespace().next().unwrap_or(arg);
    let source = env_source(flag).unwrap_or_else(|| flag.to_owned());
    if err.kind() == ErrorKind::InvalidValue {
        let valid = match err.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => valid.join(", "),
            _ => String::new(),
        };
        return format!("{source} must be one of {valid}, not {value:?}");
    }
    match std::error::Error::source(err).map(ToString::to_string) {
        // Our parsers say "must be ..., not \"value\"".
        Some(reason) if reason.starts_with("must ") => format!("{source} {reason}"),
        Some(reason) => format!("{source}: {value:?} is not valid ({reason})"),
        None => text,
    }
}

/// The sentence for an invalid configuration; a bad port list or version that came from
/// the environment names its variable.
fn config_error(cli: &Cli, err: &ConfigError) -> String {
    let from_env = match err {
        ConfigError::BadPort(_) | ConfigError::DuplicatePort(_)
            if cli.positional_ports.is_none() =>
        {
            env_source("--ports")
        }
        ConfigError::Version(_) if cli.positional_version.is_none() => env_source("--version"),
        _ => None,
    };
    match from_env {
        Some(name) => format!("{name}: {err}"),
        None => err.to_string(),
    }
}

/// The environment variable a flag's bad value came from: the flag is absent from the
/// command line and its variable is set.
fn env_source(flag: &str) -> Option<String> {
    let long = flag.strip_prefix("--")?;
    let on_command_line = std::env::args_os().skip(1).any(|a| {
        a.to_str().is_some_and(|a| {
            a == flag
                || a.strip_prefix(flag)
                    .is_some_and(|rest| rest.starts_with('='))
        })
    });
    if on_command_line {
        return None;
    }
    let command = Cli::command();
    let name = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_str()?
        .to_owned();
    std::env::var_os(&name).is_some().then_some(name)
}

/// Logs to stdout, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Bad arguments: one sentence on stderr, exit 2.
fn usage_error(message: &str) -> ExitCode {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("bad arguments");
    let line = line.strip_prefix("error: ").unwrap_or(line);
    eprintln!("echo-server: {line} (see --help)");
    ExitCode::from(EXIT_USAGE as u8)
}

/// A failure after the arguments were accepted: one sentence on stderr, exit 1.
fn failure(message: &str) -> ExitCode {
    eprintln!("echo-server: {message}");
    ExitCode::from(EXIT_FAILURE as u8)
}
