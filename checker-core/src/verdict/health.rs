//! The health verdict beyond the split: the canary against the stable
//! ([`super::compare`], or [`super::compare_sequence`] in a sequential run), thresholds
//! ([`super::thresholds`]) and a baseline ([`super::baseline`]). All recomputed from a
//! tally, so a merged report gets them too (with the fixed rule: the sequential state
//! does not merge). Plain data: the report crate words what failed and why.

use serde::{Deserialize, Serialize};

use super::Outcome;
use super::baseline::{self, BaselineRule, BaselineVerdict};
use super::compare::{self, CompareRule, Comparison, Method};
use super::compare_sequence;
use super::figures::Figures;
use super::thresholds::{self, Threshold, ThresholdResult};
use crate::tally::Tally;

/// What the health checks ask (empty: nothing beyond the split and the error budget).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthRules {
    /// `--compare CANARY=STABLE` with its margins.
    pub compare: Option<CompareRule>,
    /// `--threshold` expressions.
    pub thresholds: Vec<Threshold>,
    /// `--baseline` figures with `--max-regression` margins.
    pub baseline: Option<BaselineRule>,
}

impl HealthRules {
    /// Whether any health check was asked for.
    pub fn is_empty(&self) -> bool {
        self.compare.is_none() && self.thresholds.is_empty() && self.baseline.is_none()
    }
}

/// The health checks' results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthVerdict {
    /// The canary against the stable.
    pub comparison: Option<Comparison>,
    /// Every threshold with its check or cross.
    pub thresholds: Vec<ThresholdResult>,
    /// This run against the baseline.
    pub baseline: Option<BaselineVerdict>,
    /// FAIL if any check fails (a comparison fails on its critical metrics, or on any
    /// when strict), else INCONCLUSIVE if the comparison is, else PASS.
    pub outcome: Outcome,
}

/// Runs every health check of `rules` on `tally` (a run of `elapsed_s` seconds); the
/// comparison with the intervals of `method`: confidence sequences when the run looked
/// after every batch, fixed intervals for a fixed count or merged reports.
pub fn judge(
    tally: &Tally,
    elapsed_s: f64,
    rules: &HealthRules,
    confidence: f64,
    method: Method,
) -> HealthVerdict {
    let figures = Figures { tally, elapsed_s };
    let comparison = rules.compare.as_ref().map(|rule| match method {
        Method::Fixed => compare::compare(tally, rule, confidence),
        Method::Sequential => compare_sequence::judge(tally, rule, confidence),
    });
    let thresholds = thresholds::check(&rules.thresholds, &figures);
    let baseline = rules
        .baseline
        .as_ref()
        .map(|rule| baseline::check(rule, &figures));
    let outcome = comparison
        .iter()
        .map(|c| c.outcome)
        .chain(thresholds.iter().map(|t| t.outcome))
        .chain(baseline.iter().map(|b| b.outcome))
        .max()
        .unwrap_or(Outcome::Pass);
    HealthVerdict {
        comparison,
        thresholds,
        baseline,
        outcome,
    }
}
