//! `checker verify`: its flags, and the run that plans, samples, judges once, prints and
//! returns the exit code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::args::{
    RuleArgs, TimeoutArgs, parse_bool, parse_count_u64, parse_count_usize, parse_positive_duration,
    parse_rate,
};
use super::output::{self, OutputMode, Shown, fail, note};
use super::signals::stop_token;
use super::{expect_from, health_flags};
use checker_core::exit;
use checker_core::expect::Expectation;
use checker_core::verify::{self, VerifyConfig};
use report::progress::ProgressObserver;
use report::samples::SamplesFile;

/// Flags of `checker verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Where to connect: HOST:PORT, IPv4, [IPv6]:PORT or a name (every address is used).
    #[arg(long, env = "CHECKER_TARGET", value_name = "HOST:PORT")]
    pub target: String,
    /// Expected versions and weights, e.g. one=90,two=10 (normalised by their total); one=100 alone: only one may answer.
    #[arg(
        long,
        env = "CHECKER_EXPECT",
        value_name = "NAME=WEIGHT,...",
        required_unless_present = "expect_from",
        conflicts_with = "expect_from"
    )]
    pub expect: Option<Expectation>,
    /// Number of connections to sample [default: planned from confidence and tolerance].
    #[arg(
        long,
        env = "CHECKER_SAMPLES",
        value_name = "N",
        conflicts_with = "duration",
        allow_negative_numbers = true,
        value_parser = parse_count_u64
    )]
    pub samples: Option<u64>,
    /// Sample for this long instead of a count, e.g. 30s, 2m.
    #[arg(long, env = "CHECKER_DURATION", value_name = "D", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// Connections in flight at once.
    #[arg(long, env = "CHECKER_CONCURRENCY", value_name = "C", default_value_t = verify::DEFAULT_CONCURRENCY, allow_negative_numbers = true, value_parser = parse_count_usize)]
    pub concurrency: usize,
    /// Start this many connections per second on a fixed schedule (open model) [default: back to back].
    #[arg(long, env = "CHECKER_RATE", value_name = "R", allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Report format on stdout.
    #[arg(long, env = "CHECKER_OUTPUT", value_enum, default_value_t = OutputMode::Text)]
    pub output: OutputMode,
    /// Also write the JSON report to this file.
    #[arg(long, env = "CHECKER_JSON", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one JSON line per sample to this file.
    #[arg(long, env = "CHECKER_SAMPLES_OUT", value_name = "FILE")]
    pub samples_out: Option<PathBuf>,
    /// The verdict's confidence, tolerance and error budget.
    #[command(flatten)]
    pub rule: RuleArgs,
    /// How long one connection may wait for its connect and its reply.
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// Never draw the progress bar (it is drawn only on a terminal anyway); the variable takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "CHECKER_NO_PROGRESS", value_parser = parse_bool)]
    pub no_progress: bool,
    /// Sample the fixed planned count instead of stopping as soon as the evidence decides (the variable takes 1/0, true/false, yes/no, on/off).
    #[arg(long, env = "CHECKER_NO_SEQUENTIAL", value_parser = parse_bool)]
    pub no_sequential: bool,
    /// Sequential runs stop INCONCLUSIVE after this many connections [default: three times the fixed plan].
    #[arg(
        long,
        env = "CHECKER_MAX_SAMPLES",
        value_name = "N",
        conflicts_with_all = ["samples", "duration", "no_sequential"],
        allow_negative_numbers = true,
        value_parser = parse_count_u64
    )]
    pub max_samples: Option<u64>,
    /// Before counting, sample short windows for up to this long until the split matches the expectation (or stops moving), e.g. 30s: for a check run right after a weight change.
    #[arg(long, env = "CHECKER_SETTLE", value_name = "D", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub settle: Option<Duration>,
    /// Canary against stable, thresholds and a baseline.
    #[command(flatten)]
    pub health: health_flags::HealthArgs,
    /// Exit 0 once the report is out, whatever its verdict (one share of a parallel run:
    /// `checker merge` gives the verdict); the report still carries its exit_code.
    #[arg(long, env = "CHECKER_REPORT_ONLY", value_parser = parse_bool)]
    pub report_only: bool,
    /// Hold K long-lived connections open through the target, exchanging a line every
    /// second, from before sampling until --hold-for has passed; the report says how
    /// many survived and when the others ended (does the gateway cut open connections?).
    #[arg(long, env = "CHECKER_HOLD", value_name = "K", value_parser = parse_count_usize)]
    pub hold: Option<usize>,
    /// How long to hold them, e.g. 60s after a weight step [default: the sampling time].
    #[arg(long, env = "CHECKER_HOLD_FOR", value_name = "D", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub hold_for: Option<Duration>,
    /// Derive the expected split from Kubernetes manifests instead: a YAML or JSON file, a directory or - (stdin); repeatable.
    #[arg(long, env = "CHECKER_EXPECT_FROM", value_name = "SOURCE")]
    pub expect_from: Vec<String>,
    /// How the split is derived from the manifests.
    #[command(flatten)]
    pub derive: expect_from::DeriveArgs,
    /// The server name TLS clients send.
    #[command(flatten)]
    pub sni: expect_from::SniArgs,
}

impl VerifyArgs {
    /// The library configuration these flags describe, with the expected split given
    /// by `--expect` or derived from `--expect-from` (values are checked by [`VerifyConfig::validate`]).
    pub fn to_config(&self, expect: Expectation) -> VerifyConfig {
        VerifyConfig {
            target: self.target.clone(),
            expect,
            samples: self.samples,
            duration: self.duration,
            concurrency: self.concurrency,
            rate: self.rate,
            settings: self.rule.settings(),
            max_error_rate: self.rule.max_error_rate,
            connect_timeout: self.timeouts.connect_timeout,
            reply_timeout: self.timeouts.reply_timeout,
            reset_on_close: false,
            sequential: (!self.no_sequential && self.samples.is_none() && self.duration.is_none())
                .then_some(verify::SequentialConfig {
                    batch: checker_core::verdict::sequential::DEFAULT_BATCH,
                    max_samples: self.max_samples,
                }),
            settle: self.settle,
            // Completed by run_verify, which reads the baseline report.
            health: Default::default(),
        }
    }
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

/// The error's sentence, naming the environment variable when the value it is about came
/// from one (`--confidence must be ... (set by CHECKER_CONFIDENCE)`).
fn with_env_source(error: &verify::VerifyError) -> String {
    let text = error.to_string();
    let flag = match error {
        verify::VerifyError::Invalid(message) => message
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with("--"))
            .map(str::to_owned),
        verify::VerifyError::Target(
            checker_core::target::TargetError::Syntax(_)
            | checker_core::target::TargetError::PortZero(_),
        ) => Some("--target".to_owned()),
        _ => None,
    };
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match flag.and_then(|f| super::env_source(&f, &argv)) {
        Some(name) => format!("{text} (set by the environment variable {name})"),
        None => text,
    }
}

fn json_error(path: &std::path::Path, e: &std::io::Error) -> String {
    format!("cannot write the JSON report {}: {e}", path.display())
}

/// `checker verify`: plan, sample, judge once, print; returns the exit code.
pub async fn run(args: &VerifyArgs) -> i32 {
    let (expect, derivation) = match &args.expect {
        Some(expect) => (expect.clone(), None),
        None => match expect_from::derive(&args.expect_from, &args.derive, &args.sni) {
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
        Err(e) => return fail(&with_env_source(&e), e.exit_code()),
    };
    let samples_file = match args.samples_out.as_deref().map(SamplesFile::create) {
        Some(Ok(file)) => Some(file),
        Some(Err(e)) => return fail(&e, exit::USAGE),
        None => None,
    };
    let observer = Arc::new((ProgressObserver::new(!args.no_progress), samples_file));
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
        note(args.output, &derivation.to_string());
    }
    if let Some(plan) = prepared.plan() {
        let line = match (config.duration, prepared.max_samples(), config.sequential) {
            (Some(d), _, _) => report::text::duration_plan_line(plan, config.settings.tolerance, d),
            (None, Some(max), Some(s)) => report::text::sequential_plan_line(plan, s.batch, max),
            _ => report::text::plan_line(plan, config.settings.tolerance),
        };
        note(args.output, &format!("{line}\n"));
    }
    let held = checker_core::hold::hold_while(
        &config.target,
        args.hold.unwrap_or(0),
        args.hold_for,
        &stop.clone(),
        prepared.run_observed(stop, observer),
    )
    .await;
    let mut verification = match held {
        Ok((Ok(mut verification), held)) => {
            verification.held = held;
            verification
        }
        Ok((Err(e), _)) => return fail(&e, e.exit_code()),
        Err(e) => return fail(&e, exit::USAGE),
    };
    verification.expected_from = derivation;
    let shown = Shown::Verification(&verification);
    // A report file that cannot be written must not hide the verdict: stdout gets the
    // report first, then the write error and exit 2.
    let json_failed = json_file.as_mut().and_then(|(path, file)| {
        output::write(file, OutputMode::Json, &shown)
            .and_then(|()| file.sync_data())
            .err()
            .map(|e| json_error(path, &e))
    });
    output::print(args.output, &shown);
    if let Some(e) = json_failed {
        return fail(
            &format!(
                "{e}; the report above was printed, and without this error the exit code would be {}",
                verification.exit_code()
            ),
            exit::USAGE,
        );
    }
    if args.report_only {
        return exit::PASS;
    }
    verification.exit_code()
}
