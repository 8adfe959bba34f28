//! What a verification needs, its defaults and its validation, and why one cannot run.

use std::time::Duration;

use crate::exit;
use crate::expect::Expectation;
use crate::target::{self, TargetError};
use crate::verdict::health::HealthRules;
use crate::verdict::{Settings, SettingsError};

/// Default number of samples in flight.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Default share of failed samples above which errors alone fail the check.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default reply timeout.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The lowest `--rate`: one connection per hour.
pub const MIN_RATE: f64 = 1.0 / 3600.0;

/// Everything a verification needs.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyConfig {
    /// `HOST:PORT`: IPv4, `[IPv6]:PORT` or a name (every address it resolves to is used).
    pub target: String,
    /// The expected split.
    pub expect: Expectation,
    /// How many samples; `None` = the planned count (or unlimited with a duration).
    pub samples: Option<u64>,
    /// Stop starting samples after this long.
    pub duration: Option<Duration>,
    /// Most samples in flight at once.
    pub concurrency: usize,
    /// Open-model pacing: start this many samples per second on a fixed schedule.
    pub rate: Option<f64>,
    /// Confidence and tolerance of the verdict.
    pub settings: Settings,
    /// Share of failed samples (0..=1) above which errors alone fail the check.
    pub max_error_rate: f64,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the reply after sending the probe.
    pub reply_timeout: Duration,
    /// Close every sample's connection with a reset (the rehearsal's loopback runs; see
    /// [`crate::sampler::SamplerConfig::reset_on_close`]); false for real targets.
    pub reset_on_close: bool,
    /// Sequential sampling: look after every batch and stop when decided (`checker
    /// verify`'s default without `--samples` or `--duration`); `None` = the fixed plan.
    pub sequential: Option<super::looks::SequentialConfig>,
    /// `--settle`: sample short windows first, up to this long, until the split is
    /// consistent with the expectation (or stopped moving); `None` = start counting at once.
    pub settle: Option<Duration>,
    /// Health checks beyond the split: canary against stable, thresholds, baseline.
    pub health: HealthRules,
}

impl VerifyConfig {
    /// A configuration with every default: planned count, 32 in flight, 99% / 5 points, 1% errors.
    pub fn new(target: impl Into<String>, expect: Expectation) -> Self {
        Self {
            target: target.into(),
            expect,
            samples: None,
            duration: None,
            concurrency: DEFAULT_CONCURRENCY,
            rate: None,
            settings: Settings::default(),
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            reset_on_close: false,
            sequential: None,
            settle: None,
            health: HealthRules::default(),
        }
    }

    /// Checks every value that the types do not already guarantee.
    pub fn validate(&self) -> Result<(), VerifyError> {
        let bad = |what: &str| Err(VerifyError::Invalid(what.to_owned()));
        if self.samples == Some(0) {
            return bad("--samples must be at least 1");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return bad("--duration must be longer than zero");
        }
        if self.concurrency == 0 {
            return bad("--concurrency must be at least 1");
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r >= MIN_RATE)) {
            return bad("--rate must be at least one connection per hour (0.000278 per second)");
        }
        // The rule is Settings::validate's; only the words are the command line's.
        match self.settings.validate() {
            Ok(()) => {}
            Err(SettingsError::Confidence(_)) => {
                return bad("--confidence must be between 0% and 100% (exclusive)");
            }
            Err(SettingsError::Tolerance(_)) => {
                return bad("--tolerance must be more than 0 and at most 50 percentage points");
            }
        }
        if !(self.max_error_rate.is_finite() && (0.0..=1.0).contains(&self.max_error_rate)) {
            return bad("--max-error-rate must be between 0% and 100%");
        }
        if self.connect_timeout.is_zero() || self.reply_timeout.is_zero() {
            return bad("timeouts must be longer than zero");
        }
        if let Some(s) = self.sequential {
            if self.samples.is_some() || self.duration.is_some() {
                return bad(
                    "--max-samples is for sequential runs; --samples and --duration run a fixed count",
                );
            }
            if s.max_samples == Some(0) || s.batch == 0 {
                return bad("--max-samples must be at least 1");
            }
        }
        if self.settle.is_some_and(|d| d.is_zero()) {
            return bad("--settle must be longer than zero");
        }
        target::check_syntax(&self.target)?;
        if let Some(rule) = &self.health.compare {
            for name in [&rule.canary, &rule.stable] {
                if self.expect.share_of(name).is_none() {
                    return Err(VerifyError::Invalid(format!(
                        "--compare names {name}, which --expect does not list"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Why a verification could not run (a finished run that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A configuration value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The target is malformed or cannot be resolved.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The run's observer failed (e.g. the samples file cannot be written); sampling stopped.
    #[error("{0}")]
    Observer(crate::observer::ObserverError),
    /// The sampler task died unexpectedly.
    #[error("the sampler stopped unexpectedly: {0}")]
    Sampler(String),
}

impl VerifyError {
    /// The exit code the CLI uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyError::Target(TargetError::Resolve { .. } | TargetError::NoAddress(_)) => {
                exit::ERRORS
            }
            VerifyError::Sampler(_) => exit::ERRORS,
            _ => exit::USAGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VerifyConfig {
        VerifyConfig::new("127.0.0.1:1", "one=90,two=10".parse().unwrap())
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.samples = Some(0);
        assert!(matches!(c.validate(), Err(VerifyError::Invalid(_))));
        let mut c = config();
        c.rate = Some(f64::NAN);
        assert!(c.validate().is_err());
        let mut c = config();
        c.rate = Some(1.0 / 7200.0);
        assert!(c.validate().is_err(), "below one connection per hour");
        c.rate = Some(1.0 / 3600.0);
        assert!(c.validate().is_ok(), "one connection per hour");
        let mut c = config();
        c.max_error_rate = 1.5;
        assert!(c.validate().is_err());
        // Confidence and tolerance follow Settings::validate, in the command line's words.
        for (confidence, tolerance, flag) in [
            (1.0, 0.05, "--confidence"),
            (f64::NAN, 0.05, "--confidence"),
            (0.99, 0.0, "--tolerance"),
            (0.99, 0.6, "--tolerance"),
            (0.99, f64::INFINITY, "--tolerance"),
        ] {
            let mut c = config();
            c.settings = Settings {
                confidence,
                tolerance,
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with(flag), "{confidence} {tolerance}: {e}");
        }
        let mut c = config();
        c.settings.tolerance = 0.5;
        assert!(c.validate().is_ok(), "50 points is the widest band");
        let mut c = config();
        c.target = "nohost".into();
        assert_eq!(c.validate().unwrap_err().exit_code(), exit::USAGE);
    }
}
