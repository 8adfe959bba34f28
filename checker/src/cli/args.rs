//! The flags and value parsers several subcommands share: the verdict's rule, the
//! per-connection timeouts, fractions, counts, rates, yes/no values and durations, and
//! the reading back of a report file named on the command line.

use std::path::Path;
use std::time::Duration;

use clap::Args;

use checker_core::verdict::Settings;
use checker_core::verify::{MIN_RATE, RecordedRun};
use report::read_back::{self, LoadError};

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

/// Reads back a verify report named on the command line (`--baseline`, `plot --report`,
/// `merge`'s files); a file that is not one says which of verify's flags write one.
pub fn load_report(path: &Path) -> Result<RecordedRun, String> {
    read_back::load(path).map_err(|e| match e {
        LoadError::Json { path, source } => format!(
            "{} is not a checker JSON report with histograms (written by `checker verify --output json` or --json): {source}",
            path.display()
        ),
        e => e.to_string(),
    })
}

/// Parses a yes/no value by the rule both binaries share: see [`cli_support::boolean`].
pub use cli_support::boolean::parse as parse_bool;

/// Parses a duration by the rule both binaries share: see [`cli_support::duration`].
pub use cli_support::duration::parse_positive as parse_positive_duration;

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
}
