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
comparison (--compare) is judged with the fixed rule, confidence intervals for the samples
taken, even when the runs were sequential: the state of their looks does not merge. The
exit code is the merged verdict's, as for `checker verify`.";

/// What a merge of reports with a comparison says before the report.
const FIXED_RULE: &str = "merge: the comparison is recomputed from the merged tallies with the \
fixed rule (confidence intervals for the samples taken): the sequential state of each run does \
not merge";

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
/// entries in name order (whatever they are: one that is no report, a FIFO or a loop of
/// symbolic links say, is named by the reader rather than skipped in silence).
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
            .filter(|p| !p.is_dir() && p.extension().is_some_and(|x| x == "json"))
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
    let loaded = match report::read_back::load_all(&files).map_err(super::args::report_error) {
        Ok(loaded) => loaded,
        Err(e) => return fail(&e, exit::USAGE),
    };
    let merged = match merge::merge(&loaded) {
        Ok(merged) => merged,
        Err(e) => return fail(&e, exit::USAGE),
    };
    let folded = merge::folded_versions(&loaded, &merged);
    if !folded.is_empty() {
        output::note(args.output, &report::text::folded_line(&folded));
    }
    if merged.health_rules.compare.is_some() {
        output::note(args.output, &format!("{FIXED_RULE}\n"));
    }
    output::print_as(args.output, &args.junit, &Shown::Verification(&merged));
    merged.exit_code()
}
