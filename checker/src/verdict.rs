//! The statistics: Wilson intervals, the sample-size planner, PASS / FAIL /
//! INCONCLUSIVE per version and overall, and Pearson's chi-square as information.
//!
//! Pure and deterministic: numbers in, numbers out, no sockets, no clocks.

// INTERFACE SKELETON (written by the lead so that the sampler and report can be built
// in parallel); the verdict work replaces every `todo!()` with the real computation and
// may add fields, but keeps these names and meanings.

use serde::Serialize;

use crate::expect::Expectation;

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
    /// For INCONCLUSIVE: an estimate of how many more connections would decide it.
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

/// Plans the smallest sample count that meets both guarantees (see the module docs).
pub fn plan(expect: &Expectation, settings: &Settings) -> Plan {
    let _ = (expect, settings);
    todo!("verdict: planner")
}

/// Judges observed counts per version (`(name, count)`, any order, unexpected names allowed).
pub fn judge(expect: &Expectation, counts: &[(String, u64)], settings: &Settings) -> SplitVerdict {
    let _ = (expect, counts, settings);
    todo!("verdict: judge")
}
