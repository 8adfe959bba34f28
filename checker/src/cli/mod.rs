//! The command line: subcommands and their flags (clap derive), every flag with an
//! environment fallback.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use checker_core::exit;
use checker_core::expect::Expectation;
use checker_core::verdict::Settings;
use checker_core::verify::{self, MIN_RATE, VerifyConfig};

pub mod command;
pub mod expect_from;
pub mod health;
pub mod lint;
pub mod merge;
pub mod plot;
#[cfg(feature = "rehearse")]
pub mod rehearse;
pub mod watch;

/// Verifies that live TCP traffic follows the expected canary weights.
#[derive(Debug, Parser)]
#[command(name = "checker", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr (the level comes from RUST_LOG, default warn).
    #[arg(long, env = "CHECKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sample fresh connections through a gateway and judge the split against the weights.
    #[command(after_help = format!("Durations (D): {}.\n\n{}", duration_arg::RULE, exit::HELP))]
    Verify(Box<VerifyArgs>),
    /// Walk a whole canary rollout on this machine (echo servers, a weighted gateway) with a verdict per step.
    #[cfg(feature = "rehearse")]
    #[command(after_help = rehearse::HELP)]
    Rehearse(rehearse::RehearseArgs),
    /// Sample continuously at a modest rate and show the split over time, with when it stops and starts agreeing.
    #[command(after_help = format!("Durations (D): {}.\n\nExit: 0 when the split agreed at the end, 1 when it disagreed, 3 when undecided, 2 usage, 4 unresolvable target.", duration_arg::RULE))]
    Watch(watch::WatchArgs),
    /// Merge JSON reports of one check taken by many processes into one report and verdict.
    #[command(after_help = merge::HELP)]
    Merge(merge::MergeArgs),
    /// Draw a rollout from samples files: shares with intervals, expected steps, latency, errors (SVG or HTML).
    #[command(after_help = plot::HELP)]
    Plot(plot::PlotArgs),
    /// Find the routing mistakes of a TCP canary in its manifests (Istio, Gateway API, Argo Rollouts, Flagger).
    #[command(after_help = lint::help())]
    Lint(lint::LintArgs),
}

/// Report format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The plan, a table per version and a verdict line.
    Text,
    /// The JSON document (checker/schema/report.schema.json).
    Json,
}

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
    #[arg(long, env = "CHECKER_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
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
    pub health: health::HealthArgs,
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
}

/// The per-connection timeouts, shared by `verify` and `watch`.
#[derive(Debug, Clone, Args)]
pub struct TimeoutArgs {
    /// Longest wait for a connection, e.g. 3s, 500ms.
    #[arg(long, env = "CHECKER_CONNECT_TIMEOUT", value_name = "D", default_value = "3s", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub connect_timeout: Duration,
    /// Longest wait for the reply line after sending the probe.
    #[arg(long, env = "CHECKER_REPLY_TIMEOUT", value_name = "D", default_value = "5s", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub reply_timeout: Duration,
}

impl TimeoutArgs {
    /// The sampler's timeouts.
    pub fn timeouts(&self) -> checker_core::sampler::Timeouts {
        checker_core::sampler::Timeouts {
            connect: self.connect_timeout,
            reply: self.reply_timeout,
        }
    }
}

/// The flags of the verdict rule, shared by `verify` and `rehearse`.
#[derive(Debug, Clone, Args)]
pub struct RuleArgs {
    /// Family-wide confidence, as a percentage (99%) or a fraction (0.99).
    #[arg(long, env = "CHECKER_CONFIDENCE", value_name = "P", default_value = "99%", value_parser = parse_fraction, allow_negative_numbers = true)]
    pub confidence: f64,
    /// Half-width of the band around each weight, in points (5%) or as a fraction (0.05).
    #[arg(long, env = "CHECKER_TOLERANCE", value_name = "T", default_value = "5%", value_parser = parse_fraction, allow_negative_numbers = true)]
    pub tolerance: f64,
    /// Largest share of failed connections that still passes (per check), 1% or 0.01.
    #[arg(long, env = "CHECKER_MAX_ERROR_RATE", value_name = "E", default_value = "1%", value_parser = parse_fraction, allow_negative_numbers = true)]
    pub max_error_rate: f64,
}

impl RuleArgs {
    /// The verdict settings these flags describe.
    pub fn settings(&self) -> Settings {
        Settings {
            confidence: self.confidence,
            tolerance: self.tolerance,
        }
    }
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
            samples_out: self.samples_out.clone(),
            progress: !self.no_progress,
            reset_on_close: false,
            sequential: (!self.no_sequential && self.samples.is_none() && self.duration.is_none())
                .then_some(verify::SequentialConfig {
                    batch: checker_core::verdict::sequential::DEFAULT_BATCH,
                    max_samples: self.max_samples,
                }),
            settle: self.settle,
            // Completed by run_verify, which reads the baseline report.
            health: Default::default(),
            probe: Default::default(),
        }
    }
}

/// Parses `99%` (a percentage) or `0.99` (a fraction) into a fraction.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (number, scale) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (s, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| "must be a percentage (99%) or a fraction (0.99)".to_owned())?;
    let value = value / scale;
    if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
        return Err("must be between 0% and 100%".to_owned());
    }
    Ok(value)
}

/// Parses a whole number of at least 1 (sample counts).
pub fn parse_count_u64(s: &str) -> Result<u64, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 => u64::try_from(n).map_err(|_| "is too large".to_owned()),
        _ => Err("must be a whole number of at least 1".to_owned()),
    }
}

/// Parses a whole number of at least 1 (connections in flight).
pub fn parse_count_usize(s: &str) -> Result<usize, String> {
    let n = parse_count_u64(s)?;
    usize::try_from(n).map_err(|_| "is too large".to_owned())
}

/// Parses `--rate`: connections per second, at least one per hour.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= MIN_RATE => Ok(r),
        _ => Err(format!(
            "must be a number of connections per second of at least one per hour ({MIN_RATE:.6})"
        )),
    }
}

/// Parses a yes/no value in the usual spellings: 1/0, true/false, yes/no, on/off (any case).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err("must be 1/0, true/false, yes/no or on/off".to_owned()),
    }
}

/// Parses a duration by the rule both binaries share: see [`duration_arg`].
pub use duration_arg::parse_positive as parse_positive_duration;

/// Turns a command-line parse error into the message and exit code the user sees.
///
/// Help and version requests and structural errors keep clap's own output. A value
/// that does not parse becomes one sentence naming the flag, or the environment
/// variable it came from when the flag was not given.
pub fn parse_error(error: &clap::Error, argv: &[String]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let text = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let arg = text(ContextKind::InvalidArg)?;
    let value = text(ContextKind::InvalidValue).unwrap_or_default();
    let flag = arg.split_whitespace().next().unwrap_or(&arg).to_owned();
    let why = match (error.kind(), error.get(ContextKind::ValidValue)) {
        (ErrorKind::InvalidValue, Some(ContextValue::Strings(valid))) => {
            format!("must be one of {}", valid.join(", "))
        }
        _ => std::error::Error::source(error)
            .map_or_else(|| "is not valid".to_owned(), ToString::to_string),
    };
    Some(match env_source(&flag, argv) {
        Some(name) => format!(
            "invalid value {value:?} in the environment variable {name} (for {flag}): {why}"
        ),
        None => format!("invalid value {value:?} for {flag}: {why}"),
    })
}

/// The environment variable that set `flag` (e.g. `--samples`), when the flag is not on
/// the command line `argv` and its variable is set.
pub fn env_source(flag: &str, argv: &[String]) -> Option<String> {
    let on_command_line = argv
        .iter()
        .take_while(|a| a.as_str() != "--")
        .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if on_command_line {
        return None;
    }
    env_of(flag).filter(|name| std::env::var_os(name).is_some())
}

/// The environment variable behind a long flag such as `--samples`, in any subcommand.
fn env_of(flag: &str) -> Option<String> {
    use clap::CommandFactory;
    let long = flag.strip_prefix("--")?;
    let command = Cli::command();
    let mut commands = vec![&command];
    commands.extend(command.get_subcommands());
    commands
        .iter()
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_and_percentages() {
        assert_eq!(parse_fraction("99%"), Ok(0.99));
        assert_eq!(parse_fraction("0.05"), Ok(0.05));
        assert_eq!(parse_fraction(" 1 %"), Ok(0.01));
        assert!(parse_fraction("150%").is_err());
        assert!(parse_fraction("2").is_err());
        assert!(parse_fraction("x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_arg::parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration_arg::parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration_arg::parse("1.5"), Ok(Duration::from_millis(1500)));
        assert!(duration_arg::parse("-1").is_err());
        assert!(duration_arg::parse("soon").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn samples_and_duration_exclude_each_other() {
        let r = Cli::try_parse_from([
            "checker",
            "verify",
            "--target",
            "h:1",
            "--expect",
            "a=1,b=1",
            "--samples",
            "5",
            "--duration",
            "1s",
        ]);
        assert!(r.is_err());
    }
}
