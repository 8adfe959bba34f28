//! `checker`: see the library documentation.

use std::io::IsTerminal;
use std::process::ExitCode;

mod cli;
mod metrics_http;

use clap::Parser;
use cli::{Cli, LogFormat};

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal: a log file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match cli::parse_error(&e, &argv) {
            Some(message) => {
                eprintln!("checker: {message}");
                return ExitCode::from(checker_core::exit::USAGE as u8);
            }
            None => e.exit(),
        },
    };
    init_logs(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("checker: cannot start the async runtime: {e}");
            return ExitCode::from(checker_core::exit::ERRORS as u8);
        }
    };
    let code = runtime.block_on(cli::command::run(cli.command));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
