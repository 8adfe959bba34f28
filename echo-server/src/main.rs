//! `echo-server`: see the library documentation. Parses arguments ([`cli`]), sets up
//! logging and signals, and turns errors into one sentence on stderr and an exit code.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use cli::{Cli, LogFormat, argument_error, config_error};
use cli_support::signals::{Signals, Stop};
use echo_server::{Config, EXIT_FAILURE, EXIT_USAGE, Server, ServerHandle, descriptors};

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
    if cli.print_config {
        return print_config(&cli, &config);
    }
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
    let signals = Signals::watch(&[Stop::Terminate, Stop::Interrupt]).map_err(|e| e.to_string())?;
    let server = Server::bind(config).await.map_err(|e| e.to_string())?;
    let handle = server.handle();
    tokio::spawn(watch_signals(handle, signals));
    server.run().await.map(|_| ()).map_err(|e| e.to_string())
}

/// The first SIGTERM/SIGINT starts the graceful shutdown; a second one aborts.
async fn watch_signals(handle: ServerHandle, mut signals: Signals) {
    let Some(first) = signals.recv().await else {
        return;
    };
    tracing::info!(
        signal = first.name(),
        "signal received: shutting down gracefully"
    );
    handle.shutdown();
    let Some(second) = signals.recv().await else {
        return;
    };
    tracing::warn!(
        signal = second.name(),
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

/// `--print-config`: the resolved configuration as one JSON line on stdout, exit 0.
fn print_config(cli: &Cli, config: &Config) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", cli.resolved(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => failure(&format!("cannot write the configuration to stdout: {err}")),
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
