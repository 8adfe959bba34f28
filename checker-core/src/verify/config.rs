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
        let bad = |field, reason: &str| {
            Err(VerifyError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.samples == Some(0) {
            return bad(Field::Samples, "must be at least 1");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return bad(Field::Duration, "must be longer than zero");
        }
        if self.concurrency == 0 {
            return bad(Field::Concurrency, "must be at least 1");
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r >= MIN_RATE)) {
            return bad(
                Field::Rate,
                "must be at least one connection per hour (0.000278 per second)",
            );
        }
        // The rule is Settings::validate's; the words speak of percentages, as people give them.
        match self.settings.validate() {
            Ok(()) => {}
            Err(SettingsError::Confidence(_)) => {
                return bad(Field::Confidence, "must be between 0% and 100% (exclusive)");
            }
            Err(SettingsError::Tolerance(_)) => {
                return bad(
                    Field::Tolerance,
                    "must be more than 0 and at most 50 percentage points",
                );
            }
        }
        if !(self.max_error_rate.is_finite() && (0.0..=1.0).contains(&self.max_error_rate)) {
            return bad(Field::MaxErrorRate, "must be between 0% and 100%");
        }
        if self.connect_timeout.is_zero() {
            return bad(Field::ConnectTimeout, "must be longer than zero");
        }
        if self.reply_timeout.is_zero() {
            return bad(Field::ReplyTimeout, "must be longer than zero");
        }
        if let Some(s) = self.sequential {
            if self.samples.is_some() || self.duration.is_some() {
                return bad(
                    Field::MaxSamples,
                    "is for sequential runs, not with a fixed number of samples or a sampling duration",
                );
            }
            if s.max_samples == Some(0) || s.batch == 0 {
                return bad(Field::MaxSamples, "must be at least 1");
            }
        }
        if self.settle.is_some_and(|d| d.is_zero()) {
            return bad(Field::Settle, "must be longer than zero");
        }
        target::check_syntax(&self.target)?;
        if let Some(rule) = &self.health.compare {
            for name in [&rule.canary, &rule.stable] {
                if self.expect.share_of(name).is_none() {
                    return bad(
                        Field::Compare,
                        &format!("names {name}, which the expected split does not list"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// A setting of [`VerifyConfig`] that [`VerifyError::Invalid`] is about. Its `Display`
/// speaks of the setting; a command line names its own flag for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// [`VerifyConfig::samples`].
    Samples,
    /// [`VerifyConfig::duration`].
    Duration,
    /// [`VerifyConfig::concurrency`].
    Concurrency,
    /// [`VerifyConfig::rate`].
    Rate,
    /// The confidence of [`VerifyConfig::settings`].
    Confidence,
    /// The tolerance of [`VerifyConfig::settings`].
    Tolerance,
    /// [`VerifyConfig::max_error_rate`].
    MaxErrorRate,
    /// [`VerifyConfig::connect_timeout`].
    ConnectTimeout,
    /// [`VerifyConfig::reply_timeout`].
    ReplyTimeout,
    /// The sequential runs' largest count ([`super::SequentialConfig::max_samples`]).
    MaxSamples,
    /// [`VerifyConfig::settle`].
    Settle,
    /// The versions compared by the health rules ([`HealthRules::compare`]).
    Compare,
}

impl Field {
    /// Every field, for callers that map each to a name of their own.
    pub const ALL: [Field; 12] = [
        Field::Samples,
        Field::Duration,
        Field::Concurrency,
        Field::Rate,
        Field::Confidence,
        Field::Tolerance,
        Field::MaxErrorRate,
        Field::ConnectTimeout,
        Field::ReplyTimeout,
        Field::MaxSamples,
        Field::Settle,
        Field::Compare,
    ];
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Samples => "the number of samples",
            Field::Duration => "the sampling duration",
            Field::Concurrency => "the number of connections in flight",
            Field::Rate => "the connection rate",
            Field::Confidence => "the confidence",
            Field::Tolerance => "the tolerance",
            Field::MaxErrorRate => "the largest error rate",
            Field::ConnectTimeout => "the connect timeout",
            Field::ReplyTimeout => "the reply timeout",
            Field::MaxSamples => "the sequential runs' largest number of samples",
            Field::Settle => "the settling time",
            Field::Compare => "the comparison of canary and stable",
        })
    }
}

/// Why a verification could not run (a finished run that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A configuration value is out of range.
    #[error("{field} {reason}")]
    Invalid {
        /// The setting.
        field: Field,
        /// What is wrong with it, the end of a sentence that starts with the setting
        /// (`must be at least 1`).
        reason: String,
    },
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
        assert!(matches!(
            c.validate(),
            Err(VerifyError::Invalid {
                field: Field::Samples,
                ..
            })
        ));
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
        // Confidence and tolerance follow Settings::validate, each named as its field.
        for (confidence, tolerance, field) in [
            (1.0, 0.05, Field::Confidence),
            (f64::NAN, 0.05, Field::Confidence),
            (0.99, 0.0, Field::Tolerance),
            (0.99, 0.6, Field::Tolerance),
            (0.99, f64::INFINITY, Field::Tolerance),
        ] {
            let mut c = config();
            c.settings = Settings {
                confidence,
                tolerance,
            };
            match c.validate() {
                Err(e @ VerifyError::Invalid { field: f, .. }) if f == field => {
                    assert!(e.to_string().starts_with(&field.to_string()), "{e}");
                }
                other => panic!("{confidence} {tolerance}: {other:?}"),
            }
        }
        let mut c = config();
        c.settings.tolerance = 0.5;
        assert!(c.validate().is_ok(), "50 points is the widest band");
        let mut c = config();
        c.target = "nohost".into();
        assert_eq!(c.validate().unwrap_err().exit_code(), exit::USAGE);
    }

    #[test]
    fn every_field_is_in_all_once() {
        // The match is exhaustive: a new field fails to compile here until ALL has it.
        let position = |field: Field| match field {
            Field::Samples => 0,
            Field::Duration => 1,
            Field::Concurrency => 2,
            Field::Rate => 3,
            Field::Confidence => 4,
            Field::Tolerance => 5,
            Field::MaxErrorRate => 6,
            Field::ConnectTimeout => 7,
            Field::ReplyTimeout => 8,
            Field::MaxSamples => 9,
            Field::Settle => 10,
            Field::Compare => 11,
        };
        for (i, field) in Field::ALL.into_iter().enumerate() {
            assert_eq!(position(field), i, "{field}");
        }
    }
}
