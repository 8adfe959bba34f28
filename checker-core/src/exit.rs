//! The checker's exit codes: one constant per outcome, used by the code, `--help` and tests
//! (the words of `checker verify --help` about them are the binary's).

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
