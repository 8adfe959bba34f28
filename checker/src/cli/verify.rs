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
use super::{expect_from, gateway_flags, health_flags, probe_flags};
use checker_core::exit;
use checker_core::expect::Expectation;
use checker_core::target::TargetError;
use checker_core::verify::{self, Field, VerifyConfig, VerifyError};
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
    /// How --output junit shows INCONCLUSIVE.
    #[command(flatten)]
    pub junit: output::JunitArgs,
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
    /// Sequential runs stop INCONCLUSIVE after this many connections [default: three times the fixed plan; with --compare, at least twice what the health gate needs to decide, in 95% of runs, both an identical canary and one worse by twice the margins, for latency like a lognormal of spread 0.5 and 0.1% errors: 99,092 at 50/50 with the default margins, since a p99 rests on the slowest 1% of the connections and proving it within 20% takes many of them. The plan line says the cap].
    #[arg(
        long,
        env = "CHECKER_MAX_SAMPLES",
        value_name = "N",
        conflicts_with_all = ["samples", "duration", "no_sequential"],
        allow_negative_numbers = true,
        value_parser = parse_count_u64
    )]
    pub max_samples: Option<u64>,
    /// Before counting, sample short windows for up to this long until the split matches the expectation (or stops moving), e.g. 30s: for a check run right after a weight change. With --gateway-admin, ask the admins instead until every gateway is programmed as expected, and report how long the control plane took.
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
    /// At most 1000.
    #[arg(long, env = "CHECKER_HOLD", value_name = "K", value_parser = parse_hold)]
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
    /// The gateway's own view: what it was told, what it counted.
    #[command(flatten)]
    pub gateway: gateway_flags::GatewayArgs,
    /// What each connection sends and reads (your own service's protocol), and TLS.
    #[command(flatten)]
    pub probe: probe_flags::ProbeArgs,
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
            // Completed by run_verify, which reads the saved config dump.
            gateway: None,
            probe: Default::default(),
        }
    }
}

/// Parses `--hold`: a whole number from 1 to [`checker_core::hold::MAX_HELD`].
fn parse_hold(s: &str) -> Result<usize, String> {
    let max = checker_core::hold::MAX_HELD;
    match parse_count_usize(s) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "must be a whole number from 1 to {max}: each held connection is a socket kept open through the gateway for the whole run, all opened at once"
        )),
    }
}

/// The exit codes as shown at the end of `checker verify --help`.
pub const EXIT_HELP: &str = "Exit codes:
  0  PASS: every version's share is inside its tolerance band
  1  FAIL: the split is wrong (a share outside its band, a zero-weight or unexpected version answered),
     or a gateway was programmed otherwise than the intent (--gateway-admin, --config-dump)
  2  usage error (bad flags or values, a report file that cannot be written: the report
     is still printed on stdout first)
  3  INCONCLUSIVE: not enough samples to decide; the report says how many more would
  4  FAIL on errors: the target is unreachable (or its name does not resolve), a gateway
     admin does not answer, or the error rate exceeds --max-error-rate; decided before the split
  5  FAIL on health: the canary is worse than the stable beyond a margin (--compare), a
     --threshold does not hold, or the run regressed against --baseline; a failed split
     (1) or error budget (4) still wins
Ctrl-C or SIGTERM stops sampling and prints the report of what was collected; a second
signal quits at once (130 after Ctrl-C, 143 after SIGTERM).";

/// The flag of `checker verify` that sets `field` (the library names settings, not flags).
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
        Field::Critical => "--critical",
    }
}

/// The error's sentence in the command line's words: the flag in place of the setting,
/// and the environment variable when the value came from one (`--confidence must be ...
/// (set by the environment variable CHECKER_CONFIDENCE)`).
fn error_sentence(error: &VerifyError) -> String {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    sentence(error, &argv)
}

/// [`error_sentence`] for the command line `argv` (program name first).
fn sentence(error: &VerifyError, argv: &[String]) -> String {
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
    // verify's own flags and variables: no need of the whole command line's.
    let command = VerifyArgs::augment_args(clap::Command::new("verify"));
    match flag.and_then(|f| cli_support::bad_value::env_source(&command, f, argv)) {
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
        None => {
            match expect_from::derive(&args.expect_from, &args.derive, args.probe.sni.as_deref()) {
                Ok((expect, derivation)) => (expect, Some(derivation)),
                Err(message) => return fail(&message, exit::USAGE),
            }
        }
    };
    let mut config = args.to_config(expect);
    config.probe = match args.probe.spec() {
        Ok(spec) => spec,
        Err(message) => return fail(&message, exit::USAGE),
    };
    if args.hold.is_some() && config.probe != checker_core::probe::ProbeSpec::default() {
        return fail(
            &"--hold speaks the echo protocol over plain TCP: it cannot go with --probe or --tls",
            exit::USAGE,
        );
    }
    args.probe.warn();
    config.health = match args.health.rules(&config.target) {
        Ok(rules) => rules,
        Err(e) => return fail(&e, exit::USAGE),
    };
    // With TLS, --compare judges the handshake latency too.
    if let Some(rule) = config.health.compare.as_mut() {
        rule.handshake = config.probe.tls.is_some();
    }
    config.gateway = match args
        .gateway
        .config(
            &args.derive,
            derivation.as_ref(),
            gateway_flags::target_port(&config.target),
        )
        .await
    {
        Ok(gateway) => gateway,
        Err((message, code)) => return fail(&message, code),
    };
    let prepared = match verify::prepare(&config).await {
        Ok(prepared) => prepared,
        Err(verify::VerifyError::Gateway(e)) => {
            let (message, code) = gateway_flags::view_failure(&e);
            return fail(&message, code);
        }
        Err(e) => return fail(&error_sentence(&e), e.exit_code()),
    };
    let samples_file = match args.samples_out.as_deref().map(SamplesFile::create) {
        Some(Ok(file)) => Some(file),
        Some(Err(e)) => return fail(&e, exit::USAGE),
        None => None,
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
    // Compared once both are open: `sub/../x` or a symbolic link name the same file as
    // `x` whatever their spelling, and neither may exist before.
    if let (Some((path, json)), Some(samples)) = (&json_file, &samples_file)
        && samples.is_same_file(json)
    {
        return fail(
            &format!(
                "--json and --samples-out both name the file {}; give each its own file",
                protocol::escape(path.as_os_str().as_encoded_bytes())
            ),
            exit::USAGE,
        );
    }
    let observer = Arc::new((ProgressObserver::new(!args.no_progress), samples_file));
    let stop = stop_token();
    if let Some(derivation) = &derivation {
        note(args.output, &derivation.to_string());
        if let Some(names) = expect_from::probe_names_note(&config.probe, &config.expect) {
            note(args.output, &names);
        }
    }
    if let Some((intent, programmed)) = prepared.gateway_layers() {
        let settling = config.settle.is_some() && !args.gateway.gateway_admin.is_empty();
        note(
            args.output,
            &report::gateway::layers_note(&intent, programmed, settling),
        );
    }
    if let Some(plan) = prepared.plan() {
        let compare = config.health.compare.as_ref();
        let line = match (config.duration, prepared.max_samples(), config.sequential) {
            (Some(d), _, _) => report::text::duration_plan_line(plan, config.settings.tolerance, d),
            (None, Some(max), Some(s)) => match compare {
                Some(c) => report::text::sequential_compare_plan_line(
                    plan, s.batch, max, &c.canary, &c.stable,
                ),
                None => report::text::sequential_plan_line(plan, s.batch, max),
            },
            _ => report::text::plan_line(plan, config.settings.tolerance),
        };
        note(args.output, &format!("{line}\n"));
    }
    // What a fixed count can decide of the comparison (nothing in a sequential run).
    note(
        args.output,
        &report::text::health_plan_lines(prepared.health_plan()),
    );
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
        Ok((Err(verify::VerifyError::Gateway(e)), _)) => {
            let (message, code) = gateway_flags::view_failure(&e);
            return fail(&message, code);
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
    output::print_as(args.output, &args.junit, &shown);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(sentence(&error, &argv), "--samples must be at least 1");
    }
}
