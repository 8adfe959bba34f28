//! The health gate, sequentially: the canary against the stable judged after every
//! batch, with time-uniform confidence sequences, so that sampling can stop as soon as
//! every health metric is decided without inflating the error rates.
//!
//! The rule and the metrics are [`super::compare`]'s; only the intervals differ:
//!
//! * Latency quantiles: each arm's quantile gets the fixed-quantile confidence sequence
//!   of Howard and Ramdas, *Sequential estimation of quantiles with applications to
//!   A/B-testing and best-arm identification*, Bernoulli 28(3), 2022, Theorem 1: order
//!   statistics at ranks from a uniform boundary for the Binomial(t, q) count of
//!   samples below the quantile, here the beta-binomial mixture of [`super::sequential`]
//!   (see [`super::quantile::sequence_ranks`]). The two arms' sequences combine into
//!   one for the ratio of their quantiles as the fixed intervals do, `[canary low /
//!   stable high, canary high / stable low]`, each arm at half the metric's error.
//! * Error rates: each arm's rate gets the beta-binomial mixture confidence sequence
//!   (Robbins 1970; Howard, Ramdas, McAuliffe and Sekhon, *Time-uniform, nonparametric,
//!   nonasymptotic confidence sequences*, Annals of Statistics 49(2), 2021, section 3),
//!   each at half the metric's error, and the difference's sequence is `[canary low -
//!   stable high, canary high - stable low]`.
//! * Errors split (Bonferroni): the family-wide `1 - confidence` evenly over the
//!   metrics, each metric's share evenly over its two arms. By Ville's inequality each
//!   arm's sequence holds its true value at every sample count at once with
//!   probability at least `1 - alpha_arm`, so with probability at least `confidence`
//!   every metric's interval holds its true effect at every look, whenever the run stops.
//!
//! Each look judges the current intervals afresh (no state carried between looks), so
//! the verdict is a pure function of the tally and a canary whose estimate lies beyond
//! a margin is never PASSed at any look. The sequential state does not merge: `checker
//! merge` judges merged tallies with the fixed intervals.

use super::Outcome;
use super::compare::{self, Arms, CompareRule, Comparison, Method, Ranker};
use super::margin;
use super::planner;
pub use super::rate_sequence::{RATE_PRIOR_MEANS, RATE_PRIOR_SIZE, rate_difference, rate_prior};
use crate::tally::Tally;

/// The method's name, as shown in reports.
pub const METHOD: &str = "confidence sequences: order statistics at beta-binomial mixture ranks \
(quantiles), beta-binomial mixtures (error rates)";

/// Where the method is described.
pub const REFERENCE: &str = "Howard and Ramdas (2022), Sequential estimation of quantiles with \
applications to A/B-testing and best-arm identification, Bernoulli 28(3):1704-1728, Theorem 1; \
Howard, Ramdas, McAuliffe and Sekhon (2021), Time-uniform, nonparametric, nonasymptotic \
confidence sequences, Annals of Statistics 49(2):1055-1080, section 3";

/// The full comparison on the tally so far, with confidence-sequence intervals.
pub fn judge(tally: &Tally, rule: &CompareRule, confidence: f64) -> Comparison {
    compare::compare_arms(&Arms::of(tally, rule), rule, confidence, Method::Sequential)
}

/// The overall outcome on the tally so far, quickly: what the sampling loop asks after
/// every batch (PASS or FAIL: decided, stop; INCONCLUSIVE: go on). Same result as
/// [`judge`]'s outcome; stops at the first metric that counts and FAILs.
pub fn decide(tally: &Tally, rule: &CompareRule, confidence: f64) -> Outcome {
    decide_arms(&Arms::of(tally, rule), rule, confidence)
}

/// [`decide`] on the two arms' data.
pub fn decide_arms(arms: &Arms, rule: &CompareRule, confidence: f64) -> Outcome {
    let specs = rule.metrics();
    let alpha = 1.0 - compare::per_metric_confidence(confidence, specs.len());
    let ranker = Ranker::new(Method::Sequential);
    let mut overall = Outcome::Pass;
    for spec in specs.iter().filter(|s| s.critical || rule.strict) {
        let outcome = compare::interval(spec, arms, alpha, &ranker)
            .map_or(Outcome::Inconclusive, |i| {
                margin::verdict(i, spec.margin, spec.direction)
            });
        if outcome == Outcome::Fail {
            return Outcome::Fail;
        }
        overall = overall.max(outcome);
    }
    overall
}

/// The default `--max-samples` of a sequential run with a comparison: the larger of the
/// split's cap and [`super::compare_plan::sequential_cap`] (enough connections for an
/// identical canary to PASS the health margins in about 95% of runs with typical
/// latency and error rates, times [`super::compare_plan::CAP_FACTOR`]).
pub fn default_max_samples(split_cap: u64, health_cap: Option<u64>) -> u64 {
    health_cap
        .unwrap_or(0)
        .max(split_cap)
        .min(planner::MAX_PLANNED_SAMPLES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::compare::{Arm, MetricComparison};
    use crate::verdict::quantile::histogram;

    #[test]
    fn the_rate_sequence_is_wider_than_newcombe_and_holds_the_estimate() {
        let z = crate::verdict::wilson::z_for(0.99);
        for (x1, n1, x2, n2) in [
            (10u64, 5000u64, 5, 5000u64),
            (0, 3000, 0, 3000),
            (50, 1000, 10, 2000),
        ] {
            let fixed = compare::rate_difference(x1, n1, x2, n2, z);
            let seq = rate_difference(x1, n1, x2, n2, 0.01);
            let d = x1 as f64 / n1 as f64 - x2 as f64 / n2 as f64;
            assert!(
                seq.low <= fixed.low && seq.high >= fixed.high,
                "{seq:?} vs {fixed:?}"
            );
            assert!(seq.low <= d && d <= seq.high);
        }
    }

    fn metric<'a>(c: &'a Comparison, name: &str) -> &'a MetricComparison {
        c.metrics.iter().find(|m| m.metric == name).unwrap()
    }

    #[test]
    fn decide_agrees_with_judge_and_sequences_are_wider_than_fixed() {
        let rule = CompareRule::parse_pair("two=one").unwrap();
        let spread = |scale: f64| {
            histogram((1..=20_000).map(move |i| (f64::from(i) * scale) as u64 / 10 + 100))
        };
        let (same, slower) = (spread(1.0), spread(1.6));
        for (canary, stable, errors) in
            [(&same, &same, 0), (&slower, &same, 0), (&same, &same, 400)]
        {
            let arms = Arms {
                canary: Arm {
                    answered: 20_000,
                    errors,
                    connect_us: Some(canary),
                    reply_us: Some(canary),
                    handshake_us: None,
                },
                stable: Arm {
                    answered: 20_000,
                    errors: 0,
                    connect_us: Some(stable),
                    reply_us: Some(stable),
                    handshake_us: None,
                },
                attempted: 40_000 + errors,
                unattributed_errors: 0,
            };
            let full = compare::compare_arms(&arms, &rule, 0.99, Method::Sequential);
            assert_eq!(decide_arms(&arms, &rule, 0.99), full.outcome, "{full:#?}");
            let fixed = compare::compare_arms(&arms, &rule, 0.99, Method::Fixed);
            for (s, f) in full.metrics.iter().zip(&fixed.metrics) {
                let (si, fi) = (s.interval.unwrap(), f.interval.unwrap());
                assert!(si.low <= fi.low && si.high >= fi.high, "{s:?} vs {f:?}");
            }
        }
        // Identical arms at 20,000 each: every metric within its margin.
        let arms = Arms {
            canary: Arm {
                answered: 20_000,
                errors: 0,
                connect_us: Some(&same),
                reply_us: Some(&same),
                handshake_us: None,
            },
            stable: Arm {
                answered: 20_000,
                errors: 0,
                connect_us: Some(&same),
                reply_us: Some(&same),
                handshake_us: None,
            },
            attempted: 40_000,
            unattributed_errors: 0,
        };
        let c = compare::compare_arms(&arms, &rule, 0.99, Method::Sequential);
        assert_eq!(c.outcome, Outcome::Pass, "{c:#?}");
        assert_eq!(metric(&c, "p99_reply").outcome, Outcome::Pass);
    }
}
