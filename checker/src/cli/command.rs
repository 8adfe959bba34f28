//! Runs one parsed subcommand: glue between the CLI, the library and the terminal.

use std::io::Write;

use tokio_util::sync::CancellationToken;

use super::{Command, OutputFormat, VerifyArgs};
use checker_core::exit;
use checker_core::report;
use checker_core::verify;

/// Runs `command` and returns the process exit code.
pub async fn run(command: Command) -> i32 {
    match command {
        Command::Verify(args) => run_verify(&args).await,
        #[cfg(feature = "rehearse")]
        Command::Rehearse(args) => super::rehearse::run(&args).await,
        Command::Watch(args) => super::watch::run(&args).await,
        Command::Merge(args) => super::merge::run(&args),
        Command::Lint(args) => super::lint::run(&args),
        Command::Plot(args) => super::plot::run(&args),
    }
}

/// A token cancelled by the first Ctrl-C (SIGINT) or SIGTERM, for `verify`: either stops
/// sampling and the report of what was collected is still printed. A second signal exits
/// at once (130 after Ctrl-C, 143 after SIGTERM). The handlers are installed before this
/// returns, so a signal that arrives right after is never the default kill.
pub fn stop_token() -> CancellationToken {
    use cli_support::signals::{Signals, Stop};
    Signals::watch_or_warn(&[Stop::Interrupt, Stop::Terminate]).cancel_then_exit(|stop| {
        let name = match stop {
            Stop::Interrupt => "Ctrl-C",
            other => other.name(),
        };
        tracing::warn!(
            "{name}: stopping sampling and printing the report; a second signal quits at once"
        );
    })
}

/// Whether `a` and `b` name the same regular file (or the same path, before either exists).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => ma.is_file() && ma.dev() == mb.dev() && ma.ino() == mb.ino(),
        _ => match (std::path::absolute(a), std::path::absolute(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
    }
}

/// Writes report text to stdout. A closed stdout (`checker verify ... | head`) is not an
/// error worth a panic: the exit code still carries the verdict.
pub fn emit(text: &str) {
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
    let (expect, derivation) = match &args.expect {
        Some(expect) => (expect.clone(), None),
        None => match super::expect_from::derive(&args.expect_from, &args.derive) {
            Ok((expect, derivation)) => (expect, Some(derivation)),
            Err(message) => return fail(&message, exit::USAGE),
        },
    };
    let mut config = args.to_config(expect);
    config.health = match args.health.rules(&config.target) {
        Ok(rules) => rules,
        Err(e) => return fail(&e, exit::USAGE),
    };
    if let (Some(json), Some(samples)) = (&args.json, &args.samples_out)
        && same_file(json, samples)
    {
        return fail(
            &format!(
                "--json and --samples-out both name {}; give each its own file",
                json.display()
            ),
            exit::USAGE,
        );
    }
    let prepared = match verify::prepare(&config).await {
        Ok(prepared) => prepared,
        Err(e) => {
            let command = <super::Cli as clap::CommandFactory>::command();
            return fail(
                &super::verify_text::error_sentence(&e, &command),
                e.exit_code(),
            );
        }
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
    let stop = stop_token();
    if let Some(derivation) = &derivation {
        match args.output {
            OutputFormat::Text => emit(&derivation.to_string()),
            OutputFormat::Json => eprint!("{derivation}"),
        }
    }
    if let Some(plan) = prepared.plan() {
        let line = match (config.duration, prepared.max_samples(), config.sequential) {
            (Some(d), _, _) => report::text::duration_plan_line(plan, config.settings.tolerance, d),
            (None, Some(max), Some(s)) => report::text::sequential_plan_line(plan, s.batch, max),
            _ => report::text::plan_line(plan, config.settings.tolerance),
        };
        match args.output {
            OutputFormat::Text => emit(&format!("{line}\n")),
            OutputFormat::Json => eprintln!("{line}"),
        }
    }
    let held = checker_core::hold::hold_while(
        &config.target,
        args.hold.unwrap_or(0),
        args.hold_for,
        &stop.clone(),
        prepared.run(stop),
    )
    .await;
    let mut report = match held {
        Ok((Ok(mut report), held)) => {
            report.held = held;
            report
        }
        Ok((Err(e), _)) => return fail(&e, e.exit_code()),
        Err(e) => return fail(&e, exit::USAGE),
    };
    report.expected_from = derivation;
    let document = report::json::to_string(&report);
    // A report file that cannot be written must not hide the verdict: stdout gets the
    // report first, then the write error and exit 2.
    let json_failed = json_file.as_mut().and_then(|(path, file)| {
        file.write_all(document.as_bytes())
            .and_then(|()| file.sync_data())
            .err()
            .map(|e| json_error(path, &e))
    });
    match args.output {
        OutputFormat::Text => emit(&report::text::render(&report)),
        OutputFormat::Json => {
            emit(&document);
        }
    }
    if let Some(e) = json_failed {
        return fail(
            &format!(
                "{e}; the report above was printed, and without this error the exit code would be {}",
                report.exit_code()
            ),
            exit::USAGE,
        );
    }
    if args.report_only {
        return exit::PASS;
    }
    report.exit_code()
}
