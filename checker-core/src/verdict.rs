//! The statistics: Wilson intervals, the sample-size planner, PASS / FAIL /
//! INCONCLUSIVE per version and overall, Pearson's chi-square as information, and the
//! drift check (did the split move during the run).
//!
//! Pure and deterministic: numbers in, numbers out, no sockets, no clocks.
//!
//! The rule, per version, over the attributed samples:
//! * the Wilson score interval of its share, at the per-version confidence
//!   `1 - (1 - confidence) / k` (Bonferroni). `k` counts every version in the verdict:
//!   all expected versions (zero-weight ones included) plus the unexpected versions
//!   that answered. The planner uses `k` = the number of expected versions, which is
//!   the `k` of any run in which no unexpected version answers.
//! * the band `expected +- tolerance`, clamped to 0..=1.
//! * PASS when the whole interval lies inside the band; FAIL when it lies wholly
//!   outside, when a zero-weight version answers even once, or when a version answers
//!   that was not expected at all; otherwise INCONCLUSIVE, with an estimate of how
//!   many more connections would decide it if the share stayed where it is. A
//!   zero-weight version that never answered PASSes (the other versions' intervals
//!   carry the evidence). With no samples at all every version is INCONCLUSIVE and
//!   the estimate is the planned N.
//! * Overall: FAIL if any version fails, else INCONCLUSIVE if any is, else PASS.
//!
//! See [`planner`] for how the sample count is planned.

pub mod baseline;
pub mod chi_square;
pub mod compare;
pub mod compare_plan;
pub mod compare_sequence;
pub mod explain;
pub mod figures;
pub mod health;
pub mod local;
pub mod margin;
pub mod planner;
pub mod quantile;
mod search;
pub mod sequential;
pub mod thresholds;
pub mod wilson;

use std::collections::BTreeMap;

use serde::Serialize;

pub use chi_square::{Drift, drift};
pub use planner::plan;

use crate::expect::Expectation;
use wilson::{band, classify, wilson, z_for};

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
/// versions, see [`planner`]). Should no count up to [`planner::MAX_PLANNED_SAMPLES`]
/// meet both goals, `samples` is that maximum and the probabilities show the shortfall.
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

/// Judges observed counts per version (`(name, count)`, any order, unexpected names
/// allowed, repeated names summed; unexpected names with a zero count are dropped).
pub fn judge(expect: &Expectation, counts: &[(String, u64)], settings: &Settings) -> SplitVerdict {
    let mut observed: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, count) in counts {
        let entry = observed.entry(name.as_str()).or_insert(0);
        *entry = entry.saturating_add(*count);
    }
    let total = observed.values().fold(0u64, |a, &c| a.saturating_add(c));
    let unexpected: Vec<(&str, u64)> = observed
        .iter()
        .filter(|&(name, &count)| count > 0 && expect.share_of(name).is_none())
        .map(|(&name, &count)| (name, count))
        .collect();
    let k = expect.versions().len() + unexpected.len();
    let per_version_confidence = planner::per_version_confidence(settings.confidence, k);
    let z = z_for(per_version_confidence);
    let planned = (total == 0).then(|| plan(expect, settings).samples);
    let n = total as f64;

    let mut versions = Vec::with_capacity(k);
    for v in expect.versions() {
        let count = observed.get(v.name.as_str()).copied().unwrap_or(0);
        let interval = wilson(count as f64, n, z);
        let band = band(v.share, settings.tolerance);
        let (outcome, reason, more_samples) = if let Some(planned) = planned {
            (Outcome::Inconclusive, "no samples yet", Some(planned))
        } else if v.share <= 0.0 {
            if count > 0 {
                (Outcome::Fail, "zero-weight version answered", None)
            } else {
                (Outcome::Pass, "zero-weight version never answered", None)
            }
        } else {
            match classify(interval, band) {
                Outcome::Pass => (Outcome::Pass, "interval inside the band", None),
                Outcome::Fail => (Outcome::Fail, "interval outside the band", None),
                Outcome::Inconclusive => (
                    Outcome::Inconclusive,
                    "interval overlaps the band edge",
                    more_to_decide(count, total, z, band),
                ),
            }
        };
        versions.push(VersionVerdict {
            name: v.name.clone(),
            expected: v.share,
            was_expected: true,
            count,
            share: if total == 0 { 0.0 } else { count as f64 / n },
            interval,
            band,
            outcome,
            reason: reason.to_owned(),
            more_samples,
        });
    }
    for (name, count) in unexpected {
        versions.push(VersionVerdict {
            name: name.to_owned(),
            expected: 0.0,
            was_expected: false,
            count,
            share: count as f64 / n,
            interval: wilson(count as f64, n, z),
            band: band(0.0, settings.tolerance),
            outcome: Outcome::Fail,
            reason: "not an expected version".to_owned(),
            more_samples: None,
        });
    }
    let outcome = versions
        .iter()
        .map(|v| v.outcome)
        .max()
        .unwrap_or(Outcome::Inconclusive);
    SplitVerdict {
        versions,
        outcome,
        per_version_confidence,
        total,
        chi_square: chi_square::goodness_of_fit(expect, &observed),
    }
}

/// How many more samples would decide a straddling interval if the share stayed at
/// `count / total`; `None` when it never would (the share sits exactly on a band edge)
/// or would take more than [`planner::MAX_PLANNED_SAMPLES`] in all.
fn more_to_decide(count: u64, total: u64, z: f64, band: Interval) -> Option<u64> {
    let share = count as f64 / total as f64;
    more_until(total, |n: u64| {
        let n = n as f64;
        classify(wilson(share * n, n, z), band) != Outcome::Inconclusive
    })
}

/// How many samples beyond `total` until `decided(n)` first holds (gallop, then bisect);
/// `None` beyond [`planner::MAX_PLANNED_SAMPLES`].
pub(crate) fn more_until(total: u64, decided: impl Fn(u64) -> bool) -> Option<u64> {
    let mut lo = total;
    let mut hi = total.saturating_mul(2).max(total + 1);
    while !decided(hi) {
        if hi >= planner::MAX_PLANNED_SAMPLES {
            return None;
        }
        lo = hi;
        hi = hi.saturating_mul(2).min(planner::MAX_PLANNED_SAMPLES);
    }
    Some(search::narrow(lo, hi, decided) - total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|&(n, c)| (n.to_owned(), c)).collect()
    }

    fn judged(spec: &str, pairs: &[(&str, u64)]) -> SplitVerdict {
        let e: Expectation = spec.parse().unwrap();
        judge(&e, &counts(pairs), &Settings::default())
    }

    fn version<'a>(v: &'a SplitVerdict, name: &str) -> &'a VersionVerdict {
        v.versions.iter().find(|x| x.name == name).unwrap()
    }

    #[test]
    fn a_correct_split_at_the_planned_n_passes() {
        let v = judged("one=90,two=10", &[("one", 1053), ("two", 117)]);
        assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
        assert_eq!(v.total, 1170);
        assert!((v.per_version_confidence - 0.995).abs() < 1e-12);
        let two = version(&v, "two");
        assert_eq!(two.reason, "interval inside the band");
        assert!((two.share - 0.1).abs() < 1e-12);
        assert!(two.interval.low >= 0.05 && two.interval.high <= 0.15);
        assert!((two.band.low - 0.05).abs() < 1e-12 && (two.band.high - 0.15).abs() < 1e-12);
        assert_eq!(two.more_samples, None);
        assert!(v.chi_square.p_value.unwrap() > 0.9);
    }

    #[test]
    fn a_clearly_wrong_split_fails() {
        let v = judged("one=90,two=10", &[("one", 800), ("two", 200)]);
        assert_eq!(v.outcome, Outcome::Fail);
        assert_eq!(version(&v, "two").reason, "interval outside the band");
        assert_eq!(version(&v, "one").outcome, Outcome::Fail);
        assert!(v.chi_square.p_value.unwrap() < 1e-10);
    }

    #[test]
    fn a_small_sample_is_inconclusive_with_an_estimate() {
        let v = judged("one=50,two=50", &[("one", 10), ("two", 10)]);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        let one = version(&v, "one");
        assert_eq!(one.reason, "interval overlaps the band edge");
        let more = one.more_samples.unwrap();
        // At a share of exactly 0.5 the 99.5% Wilson interval fits in 0.45..0.55 from
        // about (2.807 / 0.1)^2 = 788 samples on.
        assert!((700..850).contains(&(20 + more)), "{more}");
        let half = (20 + more).div_ceil(2);
        let then = judged("one=50,two=50", &[("one", half), ("two", half)]);
        assert_eq!(then.outcome, Outcome::Pass);
    }

    #[test]
    fn a_share_on_the_band_edge_never_decides() {
        let v = judged("one=50,two=50", &[("one", 55), ("two", 45)]);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert_eq!(version(&v, "one").more_samples, None);
    }

    #[test]
    fn a_zero_weight_version_that_answers_fails() {
        let v = judged("one=100,two=0", &[("one", 10_000), ("two", 1)]);
        assert_eq!(v.outcome, Outcome::Fail);
        let two = version(&v, "two");
        assert_eq!(
            (two.outcome, two.reason.as_str()),
            (Outcome::Fail, "zero-weight version answered")
        );
        assert_eq!(version(&v, "one").outcome, Outcome::Pass);
        // Not answering is a pass for it; the other version still needs enough samples.
        let v = judged("one=100,two=0", &[("one", 10_000)]);
        assert_eq!(v.outcome, Outcome::Pass);
        assert_eq!(
            version(&v, "two").reason,
            "zero-weight version never answered"
        );
        let v = judged("one=100,two=0", &[("one", 20)]);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert_eq!(version(&v, "two").outcome, Outcome::Pass);
    }

    #[test]
    fn an_unexpected_version_fails_and_counts_in_the_correction() {
        let v = judged(
            "one=50,two=50",
            &[
                ("one", 5000),
                ("zeta", 1),
                ("two", 5000),
                ("alpha", 2),
                ("ghost", 0),
            ],
        );
        assert_eq!(v.outcome, Outcome::Fail);
        let names: Vec<&str> = v.versions.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "alpha", "zeta"]);
        let zeta = version(&v, "zeta");
        assert!(!zeta.was_expected);
        assert_eq!(
            (zeta.outcome, zeta.reason.as_str()),
            (Outcome::Fail, "not an expected version")
        );
        assert_eq!(v.total, 10_003);
        assert!((v.per_version_confidence - (1.0 - 0.01 / 4.0)).abs() < 1e-12);
        assert_eq!(version(&v, "one").outcome, Outcome::Pass);
    }

    #[test]
    fn no_samples_is_inconclusive_everywhere_with_the_plan() {
        let e: Expectation = "one=90,two=10,three=0".parse().unwrap();
        let s = Settings::default();
        let v = judge(&e, &[], &s);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert_eq!(v.total, 0);
        let planned = plan(&e, &s).samples;
        for x in &v.versions {
            assert_eq!(x.outcome, Outcome::Inconclusive);
            assert_eq!(x.more_samples, Some(planned));
            assert_eq!((x.interval.low, x.interval.high), (0.0, 1.0));
            assert_eq!(x.share, 0.0);
        }
        assert_eq!(v.chi_square.p_value, None);
        assert_eq!(v.chi_square.degrees_of_freedom, 1);
    }

    #[test]
    fn repeated_names_are_summed() {
        let a = judged(
            "one=50,two=50",
            &[("one", 400), ("two", 1000), ("one", 600)],
        );
        let b = judged("one=50,two=50", &[("two", 1000), ("one", 1000)]);
        assert_eq!(a, b);
    }

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

    #[test]
    fn the_verdict_serialises_with_screaming_outcomes() {
        let v = judged("one=90,two=10", &[("one", 90), ("two", 10)]);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["outcome"], "INCONCLUSIVE");
        assert_eq!(json["versions"][0]["name"], "one");
        assert!(json["chi_square"]["p_value"].is_number());
    }
}
