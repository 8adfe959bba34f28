//! The health verdict beyond the split: the canary against the stable
//! ([`super::compare`]), thresholds ([`super::thresholds`]) and a baseline
//! ([`super::baseline`]). All recomputed from a tally, so a merged report gets them too.

use serde::{Deserialize, Serialize};

use super::Outcome;
use super::baseline::{self, BaselineRule, BaselineVerdict};
use super::compare::{self, CompareRule, Comparison};
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

/// Runs every health check of `rules` on `tally` (a run of `elapsed_s` seconds).
pub fn judge(tally: &Tally, elapsed_s: f64, rules: &HealthRules, confidence: f64) -> HealthVerdict {
    let figures = Figures { tally, elapsed_s };
    let comparison = rules
        .compare
        .as_ref()
        .map(|rule| compare::compare(tally, rule, confidence));
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

impl HealthVerdict {
    /// What failed, in a few words each (empty when nothing did).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let pct = |x: f64| format!("{:+.1}%", x * 100.0);
        if let Some(c) = &self.comparison {
            // Only failures that fail the gate: critical metrics, or all when strict.
            let counted = |m: &&compare::MetricComparison| m.critical || c.strict;
            for m in c
                .metrics
                .iter()
                .filter(|m| m.outcome == Outcome::Fail)
                .filter(counted)
            {
                let (effect, low, margin) = match (m.effect, m.interval) {
                    (Some(e), Some(i)) if m.effect_kind == "difference" => (
                        format!("{:+.2}pp", e * 100.0),
                        format!("{:+.2}pp", i.low * 100.0),
                        format!("{:.2}pp", m.margin * 100.0),
                    ),
                    (Some(e), Some(i)) => (pct(e), pct(i.low), format!("{:.0}%", m.margin * 100.0)),
                    _ => continue,
                };
                out.push(format!(
                    "canary {} {} is {effect} against {} (at least {low}, margin {margin})",
                    c.canary, m.metric, c.stable
                ));
            }
        }
        for t in self
            .thresholds
            .iter()
            .filter(|t| t.outcome == Outcome::Fail)
        {
            out.push(format!(
                "threshold {} does not hold ({})",
                t.expression, t.shown
            ));
        }
        if let Some(b) = &self.baseline {
            for f in b.figures.iter().filter(|f| f.outcome == Outcome::Fail) {
                out.push(format!(
                    "{} regressed {} against the baseline {}",
                    f.figure, f.shown, b.source
                ));
            }
        }
        out
    }
}
