//! The verdict's plain types: the rule's settings, the outcome, intervals, the plan and
//! the split's verdict. A leaf: every file of `verdict/` and the folder's root use it,
//! it uses none of them.

use serde::Serialize;

/// The rule's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    /// Family-wide confidence, e.g. 0.99; Bonferroni-corrected over the versions.
    pub confidence: f64,
    /// Half-width of the tolerance band around each expected share, as a fraction (0.05 = 5 points).
    pub tolerance: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            confidence: 0.99,
            tolerance: 0.05,
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// The observed share is inside the band with the required confidence.
    Pass,
    /// Not enough data to decide either way.
    Inconclusive,
    /// The observed share is outside the band with the required confidence.
    Fail,
}

/// A closed interval of shares, both ends in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The lower end.
    pub low: f64,
    /// The upper end.
    pub high: f64,
}

/// The planned sample count and what it guarantees.
///
/// Both probabilities are computed exactly from the rule (lower bounds beyond two
/// versions, see [`planner`](super::planner)). Should no count up to
/// [`MAX_PLANNED_SAMPLES`](super::planner::MAX_PLANNED_SAMPLES) meet both goals, `samples` is
/// that maximum and the probabilities show the shortfall.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// How many connections to make.
    pub samples: u64,
    /// Probability that a correctly routed split PASSes at this count.
    pub pass_probability: f64,
    /// Probability that a split with one version off by twice the tolerance FAILs.
    pub detect_probability: f64,
}

/// The verdict for one version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionVerdict {
    /// The version name.
    pub name: String,
    /// Expected share in 0..=1 (0 for a version that was not expected).
    pub expected: f64,
    /// Whether the version was in the expectation at all.
    pub was_expected: bool,
    /// How many samples it answered.
    pub count: u64,
    /// Its observed share of the attributed samples.
    pub share: f64,
    /// The Wilson score interval of its share at the corrected confidence.
    pub interval: Interval,
    /// The tolerance band `expected +- tolerance`, clamped to 0..=1.
    pub band: Interval,
    /// PASS, FAIL or INCONCLUSIVE for this version.
    pub outcome: Outcome,
    /// Why, in a few words (e.g. "interval inside the band", "zero-weight version answered").
    pub reason: String,
    /// For INCONCLUSIVE: an estimate of how many more connections would decide it at the
    /// current share (`None` when none would: the share sits on a band edge).
    pub more_samples: Option<u64>,
}

/// Pearson's chi-square goodness of fit of the counts to the expected shares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChiSquare {
    /// The statistic.
    pub statistic: f64,
    /// Degrees of freedom (versions with non-zero expected share, minus one).
    pub degrees_of_freedom: u64,
    /// The p-value; `None` when it is undefined (no samples, or one version).
    pub p_value: Option<f64>,
}

/// The verdict on the split as a whole (errors are judged elsewhere).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitVerdict {
    /// Expected versions in the expectation's order, then unexpected ones by name.
    pub versions: Vec<VersionVerdict>,
    /// FAIL if any version fails, else INCONCLUSIVE if any is, else PASS.
    pub outcome: Outcome,
    /// The per-version confidence after the Bonferroni correction.
    pub per_version_confidence: f64,
    /// Total attributed samples.
    pub total: u64,
    /// Information only: goodness of fit.
    pub chi_square: ChiSquare,
}

/// Why the settings cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// The confidence is not strictly between 0 and 1.
    #[error("the confidence must be strictly between 0 and 1 (e.g. 0.99), got {0}")]
    Confidence(f64),
    /// The tolerance is not in (0, 0.5].
    #[error("the tolerance must be more than 0 and at most 0.5 (e.g. 0.05 for 5 points), got {0}")]
    Tolerance(f64),
}

impl Settings {
    /// Checks that confidence lies in (0, 1) and tolerance in (0, 0.5].
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(SettingsError::Confidence(self.confidence));
        }
        if !(self.tolerance > 0.0 && self.tolerance <= 0.5) {
            return Err(SettingsError::Tolerance(self.tolerance));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated() {
        assert_eq!(Settings::default().validate(), Ok(()));
        let bad = |confidence, tolerance| {
            Settings {
                confidence,
                tolerance,
            }
            .validate()
        };
        assert_eq!(bad(1.0, 0.05), Err(SettingsError::Confidence(1.0)));
        assert_eq!(bad(0.0, 0.05), Err(SettingsError::Confidence(0.0)));
        assert!(matches!(
            bad(f64::NAN, 0.05),
            Err(SettingsError::Confidence(_))
        ));
        assert_eq!(bad(0.99, 0.0), Err(SettingsError::Tolerance(0.0)));
        assert_eq!(bad(0.99, 0.6), Err(SettingsError::Tolerance(0.6)));
        assert_eq!(bad(0.99, 0.5), Ok(()));
        assert!(
            bad(0.99, 0.6)
                .unwrap_err()
                .to_string()
                .contains("tolerance")
        );
    }
}
