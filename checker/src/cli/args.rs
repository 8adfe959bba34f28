//! The flags and value parsers several subcommands share: the verdict's rule, the
//! per-connection timeouts, fractions, counts, rates, yes/no values and durations.

use std::time::Duration;

use clap::Args;

use checker_core::verdict::Settings;
use checker_core::verify::MIN_RATE;

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
}
