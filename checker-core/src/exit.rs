//! The checker's exit codes: one constant per outcome, used by the code, `--help` and tests.

/// The split matches the expectation and errors stayed within budget.
pub const PASS: i32 = 0;
/// The split does not match the expectation.
pub const FAIL: i32 = 1;
/// The command line or the environment is wrong (clap also exits with 2).
pub const USAGE: i32 = 2;
/// Not enough evidence to decide; more samples would.
pub const INCONCLUSIVE: i32 = 3;
/// Errors decided the check: the target was unreachable or the error budget was exceeded.
pub const ERRORS: i32 = 4;
/// A health check failed: the canary is worse than the stable (`--compare`), a
/// `--threshold` does not hold, or the run regressed against `--baseline`.
pub const HEALTH: i32 = 5;

/// The exit codes as shown at the end of `checker verify --help`.
pub const HELP: &str = "Exit codes:
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_code() {
        for code in [PASS, FAIL, USAGE, INCONCLUSIVE, ERRORS, HEALTH] {
            assert!(HELP.contains(&format!("\n  {code}  ")), "{code} missing");
        }
    }
}
