//! `checker merge A.json B.json ...`: one report and one verdict from the reports of
//! many checker processes.

use std::path::PathBuf;

use clap::Args;

use super::OutputFormat;
use super::command::emit;
use checker_core::exit;
use checker_core::merge;
use checker_core::report;

/// What `checker merge --help` shows after the flags.
pub const HELP: &str =
    "The reports must be runs of one check: the same target, expected split, rule
(confidence, tolerance, error budget) and health checks; anything else is refused
(exit 2). Counts add, latency histograms merge exactly, and every interval, comparison,
threshold and verdict is recomputed, as if one process had taken every sample. The
exit code is the merged verdict's, as for `checker verify`.";

/// Flags of `checker merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// JSON reports written by `checker verify --output json` or `--json FILE`.
    #[arg(value_name = "REPORT.json", required = true)]
    pub reports: Vec<PathBuf>,
    /// Report format on stdout.
    #[arg(long, env = "CHECKER_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `checker merge`; returns the exit code.
pub fn run(args: &MergeArgs) -> i32 {
    let mut loaded = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        match report::load::load(path) {
            Ok(r) => loaded.push(r),
            Err(e) => {
                eprintln!("checker: {e}");
                return exit::USAGE;
            }
        }
    }
    let merged = match merge::merge(&loaded) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("checker: {e}");
            return exit::USAGE;
        }
    };
    match args.output {
        OutputFormat::Text => emit(&report::text::render(&merged)),
        OutputFormat::Json => emit(&report::json::to_string(&merged)),
    }
    merged.exit_code()
}
