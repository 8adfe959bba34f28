//! Runs one parsed subcommand: glue between the CLI, the library and the terminal.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use crate::cli::{Command, OutputFormat, VerifyArgs};
use crate::exit;
use crate::report;
use crate::verify;

/// Runs `command` and returns the process exit code.
pub async fn run(command: Command) -> i32 {
    match command {
        Command::Verify(args) => run_verify(&args).await,
        Command::Rehearse(args) => crate::rehearse::run(&args).await,
    }
}

/// A token cancelled by the first Ctrl-C (SIGINT); a second Ctrl-C exits at once.
pub fn interrupt_token() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("interrupted: finishing the report; press Ctrl-C again to quit at once");
            token.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    stop
}

/// Writes report text to stdout. A closed stdout (`checker verify ... | head`) is not an
/// error worth a panic: the exit code still carries the verdict.
pub(crate) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn fail(error: &dyn std::fmt::Display, code: i32) -> i32 {
    eprintln!("checker: {error}");
    code
}

fn json_error(path: &std::path::Path, e: &std::io::Error) -> String {
    format!("cannot write the JSON report {}: {e}", path.display())
}

/// `checker verify`: plan, sample, judge, print; returns the exit code.
pub async fn run_verify(args: &VerifyArgs) -> i32 {
    let config = args.to_config();
    let prepared = match verify::prepare(&config).await {
        Ok(prepared) => prepared,
        Err(e) => return fail(&e, e.exit_code()),
    };
    // Opened before sampling, so that an unwritable path is a usage error at once, not
    // after a whole run whose report would then be lost.
    let mut json_file = match &args.json {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some((path, file)),
            Err(e) => return fail(&json_error(path, &e), exit::USAGE),
        },
        None => None,
    };
    if let Some(plan) = prepared.plan() {
        let mut line = report::text::plan_line(plan, config.settings.tolerance);
        if let Some(d) = config.duration {
            line.push_str(&format!(
                " (sampling for {} instead)",
                humantime::format_duration(d)
            ));
        }
        match args.output {
            OutputFormat::Text => emit(&format!("{line}\n")),
            OutputFormat::Json => eprintln!("{line}"),
        }
    }
    let stop = interrupt_token();
    let report = match prepared.run(stop).await {
        Ok(report) => report,
        Err(e) => return fail(&e, e.exit_code()),
    };
    let document = report::json::document(&report);
    if let Some((path, file)) = &mut json_file {
        let text = serde_json::to_string_pretty(&document).unwrap_or_default() + "\n";
        if let Err(e) = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
        {
            return fail(&json_error(path, &e), exit::USAGE);
        }
    }
    match args.output {
        OutputFormat::Text => emit(&report::text::render(&report)),
        OutputFormat::Json => {
            emit(&(serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"));
        }
    }
    report.exit_code()
}
