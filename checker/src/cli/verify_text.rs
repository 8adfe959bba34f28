//! `checker verify`'s own words for what the library says without them: the exit
//! section of its `--help`, and the flag (and environment variable) of each setting a
//! [`VerifyError`] is about.

use checker_core::target::TargetError;
use checker_core::verify::{Field, VerifyError};

/// The exit codes as shown at the end of `checker verify --help`.
pub const EXIT_HELP: &str = "Exit codes:
  0  PASS: every version's share is inside its tolerance band
  1  FAIL: the split is wrong (a share outside its band, a zero-weight or unexpected version answered)
  2  usage error (bad flags or values, a report file that cannot be written: the report
     is still printed on stdout first)
  3  INCONCLUSIVE: not enough samples to decide; the report says how many more would
  4  FAIL on errors: the target is unreachable (or its name does not resolve) or the error
     rate exceeds --max-error-rate; decided before the split
  5  FAIL on health: the canary is worse than the stable beyond a margin (--compare), a
     --threshold does not hold, or the run regressed against --baseline; a failed split
     (1) or error budget (4) still wins
Ctrl-C or SIGTERM stops sampling and prints the report of what was collected; a second
signal quits at once (130 after Ctrl-C, 143 after SIGTERM).";

/// The flag of `checker verify` that sets `field`.
pub fn flag(field: Field) -> &'static str {
    match field {
        Field::Samples => "--samples",
        Field::Duration => "--duration",
        Field::Concurrency => "--concurrency",
        Field::Rate => "--rate",
        Field::Confidence => "--confidence",
        Field::Tolerance => "--tolerance",
        Field::MaxErrorRate => "--max-error-rate",
        Field::ConnectTimeout => "--connect-timeout",
        Field::ReplyTimeout => "--reply-timeout",
        Field::MaxSamples => "--max-samples",
        Field::Settle => "--settle",
        Field::Compare => "--compare",
    }
}

/// The error's sentence in the command line's words: the flag in place of the setting,
/// and the environment variable when the value came from one (`--confidence must be ...
/// (set by the environment variable CHECKER_CONFIDENCE)`). `command` is the checker's
/// (`Cli::command()`), where the flags' variables are looked up.
pub fn error_sentence(error: &VerifyError, command: &clap::Command) -> String {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    sentence(error, command, &argv)
}

/// [`error_sentence`] for the command line `argv` (program name first).
fn sentence(error: &VerifyError, command: &clap::Command, argv: &[String]) -> String {
    let (text, flag) = match error {
        VerifyError::Invalid { field, reason } => {
            let flag = flag(*field);
            (format!("{flag} {reason}"), Some(flag))
        }
        VerifyError::Target(TargetError::Syntax(_) | TargetError::PortZero(_)) => {
            (error.to_string(), Some("--target"))
        }
        _ => (error.to_string(), None),
    };
    match flag.and_then(|f| cli_support::bad_value::env_source(command, f, argv)) {
        Some(name) => format!("{text} (set by the environment variable {name})"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker_core::exit;

    #[test]
    fn help_lists_every_code() {
        for code in [
            exit::PASS,
            exit::FAIL,
            exit::USAGE,
            exit::INCONCLUSIVE,
            exit::ERRORS,
            exit::HEALTH,
        ] {
            assert!(
                EXIT_HELP.contains(&format!("\n  {code}  ")),
                "{code} missing"
            );
        }
    }

    #[test]
    fn every_setting_is_a_flag_of_verify() {
        use clap::CommandFactory;
        let command = super::super::Cli::command();
        let verify = command.find_subcommand("verify").expect("verify");
        for field in Field::ALL {
            let long = flag(field).strip_prefix("--").expect("a long flag");
            assert!(
                verify.get_arguments().any(|a| a.get_long() == Some(long)),
                "{field}: verify has no {}",
                flag(field)
            );
        }
    }

    #[test]
    fn an_invalid_setting_is_named_by_its_flag() {
        let error = VerifyError::Invalid {
            field: Field::Samples,
            reason: "must be at least 1".to_owned(),
        };
        let argv = ["checker", "verify", "--samples", "0"].map(str::to_owned);
        let command = <super::super::Cli as clap::CommandFactory>::command();
        assert_eq!(
            sentence(&error, &command, &argv),
            "--samples must be at least 1"
        );
    }
}
