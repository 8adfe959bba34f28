//! `checker lint`: the routing mistakes of a TCP canary found in its manifests.

use clap::Args;

use checker_core::exit;
use manifests::{self, lint};
use report::lint::LintReport;

use super::expect_from::DeriveArgs;
use super::output::{self, OutputMode, Shown, fail};

/// The help text after the flags: the codes and the exit codes.
pub fn help() -> String {
    let rules: Vec<String> = lint::RULES
        .iter()
        .map(|r| {
            format!(
                "  {} {}{}",
                r.code,
                r.name,
                r.istio_code
                    .map(|c| format!(" (istioctl {c})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "Findings:\n{}\n\nExit codes:\n  0  clean: no finding\n  1  findings (each: code, resource, field path, one sentence)\n  2  usage error, or manifests that cannot be read",
        rules.join("\n")
    )
}

/// Flags of `checker lint`.
#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Kubernetes manifests: YAML or JSON files, directories of them, or - (stdin).
    #[arg(value_name = "SOURCE", required = true)]
    pub sources: Vec<String>,
    /// Report format on stdout.
    #[arg(long, env = "CHECKER_OUTPUT", value_enum, default_value_t = OutputMode::Text)]
    pub output: OutputMode,
    /// What the manifests do not show.
    #[command(flatten)]
    pub derive: DeriveArgs,
}

/// Runs `checker lint`; returns the exit code.
pub fn run(args: &LintArgs) -> i32 {
    let set = match manifests::read(&args.sources) {
        Ok(set) => set,
        Err(e) => return fail(&format!("cannot read the manifests: {e}"), exit::USAGE),
    };
    let report = LintReport::of(&args.sources, &set, &args.derive.options());
    output::print(args.output, &Shown::Lint(&report));
    if report.findings.is_empty() {
        exit::PASS
    } else {
        exit::FAIL
    }
}
