//! `checker`: see the library documentation.

use std::process::ExitCode;

use checker::cli::{Cli, LogFormat};
use clap::Parser;

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("checker: cannot start the async runtime: {e}");
            return ExitCode::from(checker::exit::ERRORS as u8);
        }
    };
    let code = runtime.block_on(checker::command::run(cli.command));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
