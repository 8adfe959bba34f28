//! `checker merge A.json B.json ...`: one report and one verdict from the reports of
//! many checker processes.

use std::path::PathBuf;

use clap::Args;

use super::output::{self, OutputMode, Shown, fail};
use checker_core::exit;
use checker_core::merge;

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
    /// JSON reports written by `checker verify --output json` or `--json FILE`; a
    /// directory stands for every `*.json` file in it.
    #[arg(value_name = "REPORT.json|DIR", required = true)]
    pub reports: Vec<PathBuf>,
    /// Report format on stdout.
    #[arg(long, env = "CHECKER_OUTPUT", value_enum, default_value_t = OutputMode::Text)]
    pub output: OutputMode,
    /// How --output junit shows INCONCLUSIVE.
    #[command(flatten)]
    pub junit: output::JunitArgs,
}

/// The report files named by `paths`: files as given, directories as their `*.json`
/// files in name order.
fn report_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| format!("cannot list the directory {}: {e}", path.display()))?;
        let mut inside: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .collect();
        if inside.is_empty() {
            return Err(format!(
                "the directory {} holds no .json report",
                path.display()
            ));
        }
        inside.sort();
        files.extend(inside);
    }
    Ok(files)
}

/// Runs `checker merge`; returns the exit code.
pub fn run(args: &MergeArgs) -> i32 {
    let files = match report_files(&args.reports) {
        Ok(files) => files,
        Err(e) => return fail(&e, exit::USAGE),
    };
    let mut loaded = Vec::with_capacity(files.len());
    for path in &files {
        match super::args::load_report(path) {
            Ok(r) => loaded.push(r),
            Err(e) => return fail(&e, exit::USAGE),
        }
    }
    let merged = match merge::merge(&loaded) {
        Ok(merged) => merged,
        Err(e) => return fail(&e, exit::USAGE),
    };
    output::print_as(args.output, &args.junit, &Shown::Verification(&merged));
    merged.exit_code()
}
