//! The command line: subcommands and their flags (clap derive), every flag with an
//! environment fallback.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit;
use crate::expect::Expectation;
use crate::verdict::Settings;
use crate::verify::{self, VerifyConfig};

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
    #[command(after_help = exit::HELP)]
    Verify(VerifyArgs),
    /// Walk a whole canary rollout on this machine (echo servers, a weighted gateway) with a verdict per step.
    #[command(after_help = crate::rehearse::cli::HELP)]
    Rehearse(crate::rehearse::RehearseArgs),
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
    /// Expected versions and weights, e.g. one=90,two=10 (normalised by their total).
    #[arg(long, env = "CHECKER_EXPECT", value_name = "NAME=WEIGHT,...")]
    pub expect: Expectation,
    /// Number of connections to sample [default: planned from confidence and tolerance].
    #[arg(
        long,
        env = "CHECKER_SAMPLES",
        value_name = "N",
        conflicts_with = "duration"
    )]
    pub samples: Option<u64>,
    /// Sample for this long instead of a count, e.g. 30s, 2m.
    #[arg(long, env = "CHECKER_DURATION", value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Connections in flight at once.
    #[arg(long, env = "CHECKER_CONCURRENCY", value_name = "C", default_value_t = verify::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Start this many connections per second on a fixed schedule (open model) [default: back to back].
    #[arg(long, env = "CHECKER_RATE", value_name = "R")]
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
    /// Longest wait for a connection, e.g. 3s, 500ms.
    #[arg(long, env = "CHECKER_CONNECT_TIMEOUT", value_name = "D", default_value = "3s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Longest wait for the reply line after sending the probe.
    #[arg(long, env = "CHECKER_REPLY_TIMEOUT", value_name = "D", default_value = "5s", value_parser = parse_duration)]
    pub reply_timeout: Duration,
    /// Never draw the progress bar (it is drawn only on a terminal anyway).
    #[arg(long, env = "CHECKER_NO_PROGRESS")]
    pub no_progress: bool,
}

/// The flags of the verdict rule, shared by `verify` and `rehearse`.
#[derive(Debug, Clone, Args)]
pub struct RuleArgs {
    /// Family-wide confidence, as a percentage (99%) or a fraction (0.99).
    #[arg(long, env = "CHECKER_CONFIDENCE", value_name = "P", default_value = "99%", value_parser = parse_fraction)]
    pub confidence: f64,
    /// Half-width of the band around each weight, in points (5%) or as a fraction (0.05).
    #[arg(long, env = "CHECKER_TOLERANCE", value_name = "T", default_value = "5%", value_parser = parse_fraction)]
    pub tolerance: f64,
    /// Largest share of failed connections that still passes (per check), 1% or 0.01.
    #[arg(long, env = "CHECKER_MAX_ERROR_RATE", value_name = "E", default_value = "1%", value_parser = parse_fraction)]
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
    /// The library configuration these flags describe (values are checked by [`VerifyConfig::validate`]).
    pub fn to_config(&self) -> VerifyConfig {
        VerifyConfig {
            target: self.target.clone(),
            expect: self.expect.clone(),
            samples: self.samples,
            duration: self.duration,
            concurrency: self.concurrency,
            rate: self.rate,
            settings: self.rule.settings(),
            max_error_rate: self.rule.max_error_rate,
            connect_timeout: self.connect_timeout,
            reply_timeout: self.reply_timeout,
            samples_out: self.samples_out.clone(),
            progress: !self.no_progress,
            reset_on_close: false,
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
        .map_err(|_| format!("{s:?} is not a percentage (99%) or a fraction (0.99)"))?;
    let value = value / scale;
    if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
        return Err(format!("{s:?} is not between 0% and 100%"));
    }
    Ok(value)
}

/// Parses a duration such as `30s`, `1m30s`, `250ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(seconds) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{s:?} is not a duration of zero or more seconds"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration (e.g. 30s, 2m): {e}"))
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
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
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
