//! `checker lint`: the routing mistakes of a TCP canary found in its manifests.

use clap::Args;

use checker_core::exit;
use checker_core::expect::Expectation;
use manifests::lint::LintOptions;
use manifests::{self, lint};
use report::lint::LintReport;

use super::expect_from::{DeriveArgs, KustomizeArgs, SniArgs, render_hint};
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
        "Findings:\n{}\n\nExit codes:\n  0  clean: no finding\n  1  findings (each: code, resource, field path, one sentence)\n  2  usage error, manifests that cannot be read or rendered, or no resource to lint",
        rules.join("\n")
    )
}

/// Flags of `checker lint`.
#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Kubernetes manifests: YAML or JSON files, directories of them, kustomize
    /// directories (rendered with `kubectl kustomize`), or - (stdin).
    #[arg(value_name = "SOURCE", required = true)]
    pub sources: Vec<String>,
    /// Report format on stdout.
    #[arg(long, env = "CHECKER_OUTPUT", value_enum, default_value_t = OutputMode::Text)]
    pub output: OutputMode,
    /// How --output junit shows INCONCLUSIVE (lint has no INCONCLUSIVE: for symmetry).
    #[command(flatten)]
    pub junit: output::JunitArgs,
    /// The split the manifests must route, e.g. one=90,two=10 (as verify --expect reads
    /// it): another split, or none, is a finding (TC127, TC118).
    #[arg(long, env = "CHECKER_EXPECT", value_name = "NAME=WEIGHT,...")]
    pub expect: Option<Expectation>,
    /// What the manifests do not show.
    #[command(flatten)]
    pub derive: DeriveArgs,
    /// The server name TLS clients send: it picks the tls route.
    #[command(flatten)]
    pub sni: SniArgs,
    /// How a kustomize directory is rendered.
    #[command(flatten)]
    pub kustomize: KustomizeArgs,
}

/// What was read when no resource of a kind the checker reads was: the sources, the
/// documents skipped, and where a directory's files come from.
fn nothing_read(args: &LintArgs, set: &manifests::ManifestSet) -> String {
    let sources = args.sources.join(", ");
    let skipped: usize = set.skipped.values().sum();
    let what = if skipped == 0 {
        format!("{sources} held no Kubernetes object")
    } else {
        let kinds: Vec<String> = set
            .skipped
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        format!(
            "{sources} held {skipped} Kubernetes object(s), none of a kind that routes TCP ({})",
            kinds.join(", ")
        )
    };
    let directory = args
        .sources
        .iter()
        .any(|s| s != "-" && std::path::Path::new(s).is_dir());
    let hint = if directory {
        "; a directory is read for its .yaml, .yml and .json files (not its subdirectories), a kustomize directory rendered"
    } else {
        ""
    };
    format!(
        "{what}{hint}; the checker reads VirtualService, DestinationRule, Gateway, TCPRoute, TLSRoute, Service, Deployment, StatefulSet, Rollout and Canary"
    )
}

/// Runs `checker lint`; returns the exit code.
pub fn run(args: &LintArgs) -> i32 {
    let set = match manifests::read_rendering(&args.sources, &args.kustomize.kustomize()) {
        Ok(set) => set,
        Err(e) => {
            let why = format!(
                "cannot read the manifests: {}{}",
                protocol::escape(e.to_string()),
                render_hint(&e)
            );
            return fail(&why, exit::USAGE);
        }
    };
    if set.resources.is_empty() {
        let why = format!(
            "nothing to lint: {}",
            protocol::escape(nothing_read(args, &set))
        );
        return fail(&why, exit::USAGE);
    }
    let options = LintOptions {
        derive: args.derive.options_with(args.sni.sni.as_deref()),
        expect: args.expect.as_ref().map(|e| {
            e.versions()
                .iter()
                .map(|v| (v.name.clone(), v.weight))
                .collect()
        }),
    };
    let report = LintReport::of(&args.sources, &set, &options);
    output::print_as(args.output, &args.junit, &Shown::Lint(&report));
    if report.findings.is_empty() {
        exit::PASS
    } else {
        exit::FAIL
    }
}
