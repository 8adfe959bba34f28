//! What a sample count can decide, before the run: the health gate's plan figures.
//!
//! "2,000 connections: p99 increases beyond about +X% would FAIL; an identical canary
//! PASSes only if its p99 interval is narrower than the margin, which needs about M."
//! Both figures follow from the interval rule ([`super::compare`], or
//! [`super::compare_sequence`] for the sequential cap) at the expected data:
//!
//! * Latency: an arm of `n` samples bounds its `q`-quantile by the order statistics at
//!   ranks `l` and `u`, that is by the latency distribution's quantiles at the levels
//!   `l / n` and `u / n`, and the sample quantiles themselves wander by about
//!   `sqrt(q (1 - q) / n)` in level. So the figures need the distribution's shape
//!   around the quantile ([`Shape`]): the run's own histogram when there is one, or
//!   [`REFERENCE_SHAPE`] (a lognormal of spread 0.5, typical of a service's latency)
//!   before any data. A canary slower by a factor `1 + x` FAILs in about 95% of runs
//!   when `(1 + x) Q(l_c / n_c - e_c) / Q(u_s / n_s + e_s) > 1 + margin`, the levels
//!   moved by their share `e` of 1.645 standard deviations of the estimate's noise; an
//!   identical canary PASSes in about 95% of runs when `Q(u_c / n_c + e_c) / Q(l_s /
//!   n_s - e_s) <= 1 + margin`. How many samples that takes grows with the square of
//!   `d ln Q / dq` at the quantile: a p99 inside a broad slow tail needs many more
//!   samples than a p99 of a smooth distribution.
//! * Error rates: the interval of the difference at the expected counts, with the
//!   estimate's noise (1.645 standard deviations) added, at the stable's error rate
//!   (the run's own, or [`REFERENCE_ERROR_RATE`] before any data).
//!
//! Approximations for planning ("about"), not guarantees: the seeded Monte Carlo in
//! `checker-core/tests/health_calibration.rs` measures the real rates.

use hdrhistogram::Histogram;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use super::compare::{self, CompareRule, Measure, Method, MetricSpec, Ranker};
use super::compare_sequence;
use super::margin::Direction;
use super::planner::MAX_PLANNED_SAMPLES;
use super::quantile::OrderRanks;
use super::wilson::z_for;

/// The one-sided normal quantile of the 95% the figures are written for.
const Z95: f64 = 1.644_853_626_951_472_2;

/// The spread of [`REFERENCE_SHAPE`].
pub const REFERENCE_SIGMA: f64 = 0.5;

/// The latency shape assumed before any data: lognormal with spread 0.5 (its p99 is
/// 3.2 times its median, its p50 to p90 a factor 1.9).
pub const REFERENCE_SHAPE: LogNormal = LogNormal {
    sigma: REFERENCE_SIGMA,
};

/// The error rate assumed before any data: one connection in a thousand.
pub const REFERENCE_ERROR_RATE: f64 = 0.001;

/// The default sequential cap, as a multiple of the connections the health gate needs
/// under the reference assumptions to decide, in about 95% of runs, both an identical
/// canary (PASS) and one worse by twice the margin (FAIL): room for latency shapes
/// whose quantile is harder to pin down (a p99 inside a slow tail needs two to three
/// times as many; see the calibration).
pub const CAP_FACTOR: f64 = 2.0;

/// A latency distribution's shape: its quantile function (any scale: the figures use
/// ratios only).
pub trait Shape {
    /// The value at `level` in (0, 1) (levels outside are clamped by the caller).
    fn quantile(&self, level: f64) -> f64;
}

/// A lognormal shape of median 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    /// The standard deviation of the logarithm.
    pub sigma: f64,
}

impl Shape for LogNormal {
    fn quantile(&self, level: f64) -> f64 {
        (self.sigma * Normal::standard().inverse_cdf(level)).exp()
    }
}

impl Shape for Histogram<u64> {
    fn quantile(&self, level: f64) -> f64 {
        self.value_at_quantile(level) as f64
    }
}

/// What the figures assume about the data.
#[derive(Clone, Copy)]
pub struct Assumptions<'a> {
    /// The latency shape (both arms alike).
    pub shape: &'a dyn Shape,
    /// The stable's error rate.
    pub error_rate: f64,
}

impl Assumptions<'static> {
    /// Before any data: [`REFERENCE_SHAPE`] and [`REFERENCE_ERROR_RATE`].
    pub fn reference() -> Self {
        Self {
            shape: &REFERENCE_SHAPE,
            error_rate: REFERENCE_ERROR_RATE,
        }
    }
}

/// What `samples` connections can decide for one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPlan {
    /// `error_rate`, or `pNN_connect` / `pNN_reply`.
    pub metric: String,
    /// `difference` or `ratio`, as in the comparison.
    pub effect_kind: &'static str,
    /// The margin.
    pub margin: f64,
    /// Which way a change is bad.
    pub direction: Direction,
    /// The connections planned (all versions).
    pub samples: u64,
    /// The smallest change the bad way that FAILs in about 95% of runs at `samples`
    /// (an increase, or a decrease as a negative change); `None` when none would.
    pub fail_beyond: Option<f64>,
    /// Whether an identical canary PASSes in about 95% of runs at `samples`.
    pub identical_passes: bool,
    /// The connections an identical canary needs to PASS in about 95% of runs; `None`
    /// beyond the planner's limit.
    pub pass_needs: Option<u64>,
    /// The connections a canary worse by twice the margin needs to FAIL in about 95%
    /// of runs; `None` beyond the planner's limit.
    pub fail_needs: Option<u64>,
}

/// The arms' sizes at `samples` connections.
#[derive(Debug, Clone, Copy)]
struct Arms {
    canary: f64,
    stable: f64,
}

impl Arms {
    fn at(samples: u64, shares: (f64, f64)) -> Self {
        let n = samples as f64;
        Self {
            canary: (n * shares.0).floor(),
            stable: (n * shares.1).floor(),
        }
    }
}

/// One metric's interval machinery at the metric's error `alpha`.
struct Judge<'a> {
    spec: &'a MetricSpec,
    alpha: f64,
    ranker: Ranker,
    method: Method,
    assume: Assumptions<'a>,
}

/// The quantile levels of an arm's interval ends, `(low, high)`, moved outwards by
/// `noise`: a bounded end stays between the levels of the smallest and the largest
/// sample (`0.5 / n` and `1 - 0.5 / n`), an unbounded one is at 0 or 1.
fn levels(ranks: OrderRanks, n: f64, noise: f64) -> (f64, f64) {
    let (first, last) = (0.5 / n, 1.0 - 0.5 / n);
    (
        ranks
            .lower
            .map_or(0.0, |l| (l as f64 / n - noise).clamp(first, last)),
        ranks
            .upper
            .map_or(1.0, |u| (u as f64 / n + noise).clamp(first, last)),
    )
}

impl Judge<'_> {
    /// `(canary low, canary high, stable low, stable high)` levels, each end moved
    /// outwards by its share of the estimate's noise (in proportion to its variance).
    fn noisy_levels(&self, q: f64, arms: Arms) -> Option<(f64, f64, f64, f64)> {
        if arms.canary < 1.0 || arms.stable < 1.0 {
            return None;
        }
        let ranks = |n: f64| self.ranker.ranks(n as u64, q, self.alpha / 2.0);
        let (vc, vs) = (q * (1.0 - q) / arms.canary, q * (1.0 - q) / arms.stable);
        let total = (vc + vs).sqrt();
        let (cl, ch) = levels(ranks(arms.canary), arms.canary, Z95 * vc / total);
        let (sl, sh) = levels(ranks(arms.stable), arms.stable, Z95 * vs / total);
        Some((cl, ch, sl, sh))
    }

    fn q(&self, level: f64) -> Option<f64> {
        (level > 0.0 && level < 1.0).then(|| self.assume.shape.quantile(level))
    }

    /// Whether an identical canary PASSes in about 95% of runs.
    fn identical_passes(&self, arms: Arms) -> bool {
        let (m, d) = (self.spec.margin, self.spec.direction);
        match self.spec.measure {
            Measure::Latency { quantile, .. } => {
                let Some((cl, ch, sl, sh)) = self.noisy_levels(quantile, arms) else {
                    return false;
                };
                // An end at level 0 or 1 is unbounded: it cannot pass.
                let up = || {
                    self.q(ch)
                        .zip(self.q(sl))
                        .is_some_and(|(c, s)| c / s <= 1.0 + m)
                };
                let down = || {
                    self.q(cl)
                        .zip(self.q(sh))
                        .is_some_and(|(c, s)| c / s >= 1.0 - m)
                };
                match d {
                    Direction::Increase => up(),
                    Direction::Decrease => down(),
                    Direction::Either => up() && down(),
                }
            }
            Measure::ErrorRate => {
                let r = self.assume.error_rate;
                let Some((range, noise)) = self.rate_interval(r, r, arms) else {
                    return false;
                };
                match d {
                    Direction::Increase => range.high + noise <= m,
                    Direction::Decrease => range.low - noise >= -m,
                    Direction::Either => range.high + noise <= m && range.low - noise >= -m,
                }
            }
        }
    }

    /// The interval of the rate difference at the expected counts and the estimate's
    /// noise (1.645 standard deviations).
    fn rate_interval(&self, canary: f64, stable: f64, arms: Arms) -> Option<(compare::Range, f64)> {
        if arms.canary < 1.0 || arms.stable < 1.0 {
            return None;
        }
        let (nc, ns) = (arms.canary as u64, arms.stable as u64);
        let (xc, xs) = (
            (canary * arms.canary).round() as u64,
            (stable * arms.stable).round() as u64,
        );
        let range = match self.method {
            Method::Fixed => compare::rate_difference(xc, nc, xs, ns, z_for(1.0 - self.alpha)),
            Method::Sequential => compare_sequence::rate_difference(xc, nc, xs, ns, self.alpha),
        };
        let noise = Z95
            * (canary * (1.0 - canary) / arms.canary + stable * (1.0 - stable) / arms.stable)
                .sqrt();
        Some((range, noise))
    }

    /// The smallest change the bad way that FAILs in about 95% of runs.
    fn fail_beyond(&self, arms: Arms) -> Option<f64> {
        let m = self.spec.margin;
        let decrease = self.spec.direction == Direction::Decrease;
        match self.spec.measure {
            Measure::Latency { quantile, .. } => {
                let (cl, ch, sl, sh) = self.noisy_levels(quantile, arms)?;
                if decrease {
                    // (1 - x) Q(ch) / Q(sl) < 1 - m.
                    Some(-(1.0 - (1.0 - m) * self.q(sl)? / self.q(ch)?).clamp(0.0, 1.0))
                } else {
                    // (1 + x) Q(cl) / Q(sh) > 1 + m.
                    Some((1.0 + m) * self.q(sh)? / self.q(cl)? - 1.0)
                }
            }
            Measure::ErrorRate => {
                let r = self.assume.error_rate;
                let fails = |x: f64| {
                    let canary = if decrease { r - x } else { r + x };
                    self.rate_interval(canary, r, arms)
                        .is_some_and(|(range, noise)| {
                            if decrease {
                                range.high + noise < -m
                            } else {
                                range.low - noise > m
                            }
                        })
                };
                let most = if decrease { r } else { 1.0 - r };
                if !fails(most) {
                    return None;
                }
                let (mut lo, mut hi) = (m, most);
                for _ in 0..50 {
                    let mid = 0.5 * (lo + hi);
                    if fails(mid) {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                Some(if decrease { -hi } else { hi })
            }
        }
    }

    /// The connections an identical canary needs to PASS in about 95% of runs.
    fn pass_needs(&self, shares: (f64, f64)) -> Option<u64> {
        smallest(|n| self.identical_passes(Arms::at(n, shares)))
    }

    /// The connections a canary worse by twice the margin needs to FAIL in about 95% of runs.
    fn fail_needs(&self, shares: (f64, f64)) -> Option<u64> {
        let twice = 2.0 * self.spec.margin;
        smallest(|n| {
            self.fail_beyond(Arms::at(n, shares))
                .is_some_and(|x| x.abs() <= twice)
        })
    }
}

/// The smallest count at which `holds` (false, then true as the count grows): gallop,
/// then bisect; `None` beyond the planner's limit.
fn smallest(holds: impl Fn(u64) -> bool) -> Option<u64> {
    let (mut lo, mut hi) = (0u64, 64u64);
    while !holds(hi) {
        if hi >= MAX_PLANNED_SAMPLES {
            return None;
        }
        lo = hi;
        hi = hi.saturating_mul(2).min(MAX_PLANNED_SAMPLES);
    }
    Some(super::search::narrow(lo, hi, holds))
}

/// The plan figures of every metric of `rule` for `samples` connections with the
/// canary and the stable at `shares` of them, by `method`, at the family-wide
/// `confidence`, under `assume`.
pub fn plan(
    rule: &CompareRule,
    confidence: f64,
    method: Method,
    samples: u64,
    shares: (f64, f64),
    assume: Assumptions,
) -> Vec<MetricPlan> {
    let specs = rule.metrics();
    let alpha = 1.0 - compare::per_metric_confidence(confidence, specs.len());
    specs
        .iter()
        .map(|spec| {
            let judge = Judge {
                spec,
                alpha,
                ranker: Ranker::new(method),
                method,
                assume,
            };
            let arms = Arms::at(samples, shares);
            MetricPlan {
                metric: spec.name.clone(),
                effect_kind: match spec.measure {
                    Measure::ErrorRate => "difference",
                    Measure::Latency { .. } => "ratio",
                },
                margin: spec.margin,
                direction: spec.direction,
                samples,
                fail_beyond: judge.fail_beyond(arms),
                identical_passes: judge.identical_passes(arms),
                pass_needs: judge.pass_needs(shares),
                fail_needs: judge.fail_needs(shares),
            }
        })
        .collect()
}

/// The connections a sequential run needs under the reference assumptions for every
/// metric that counts to decide, in about 95% of runs, both an identical canary (PASS)
/// and a canary worse by twice the margin (FAIL), times [`CAP_FACTOR`]: the default
/// cap's part for the health gate. `None` when the canary or the stable gets no share.
pub fn sequential_cap(rule: &CompareRule, confidence: f64, shares: (f64, f64)) -> Option<u64> {
    if shares.0 <= 0.0 || shares.1 <= 0.0 {
        return None;
    }
    let counted = |m: &MetricPlan| rule.strict || rule.is_critical(&m.metric);
    let needs = plan(
        rule,
        confidence,
        Method::Sequential,
        0,
        shares,
        Assumptions::reference(),
    )
    .iter()
    .filter(|m| counted(m))
    .map(|m| {
        let need = |n: Option<u64>| n.unwrap_or(MAX_PLANNED_SAMPLES);
        need(m.pass_needs).max(need(m.fail_needs))
    })
    .max()?;
    Some(((needs as f64 * CAP_FACTOR).ceil() as u64).min(MAX_PLANNED_SAMPLES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> CompareRule {
        CompareRule::parse_pair("two=one").unwrap()
    }

    fn metric<'a>(plans: &'a [MetricPlan], name: &str) -> &'a MetricPlan {
        plans.iter().find(|p| p.metric == name).unwrap()
    }

    #[test]
    fn the_lognormal_shape_is_scale_free() {
        let s = LogNormal { sigma: 0.5 };
        assert!((s.quantile(0.5) - 1.0).abs() < 1e-12);
        assert!((s.quantile(0.99) - (0.5f64 * 2.326_347_874).exp()).abs() < 1e-6);
    }

    #[test]
    fn more_samples_decide_smaller_changes() {
        let plans = |n| {
            plan(
                &rule(),
                0.99,
                Method::Fixed,
                n,
                (0.5, 0.5),
                Assumptions::reference(),
            )
        };
        let (small, large) = (plans(2_000), plans(50_000));
        let (a, b) = (metric(&small, "p99_reply"), metric(&large, "p99_reply"));
        let (fa, fb) = (a.fail_beyond.unwrap(), b.fail_beyond.unwrap());
        assert!(fb < fa && fb > 0.2, "{a:?} {b:?}");
        assert!(!a.identical_passes && b.identical_passes, "{a:?} {b:?}");
        // The need does not depend on the count planned.
        assert_eq!(a.pass_needs, b.pass_needs);
        let need = a.pass_needs.unwrap();
        assert!((2_000..50_000).contains(&need), "{a:?}");
        // Just below the need an identical canary does not pass, at it it does.
        assert!(metric(&plans(need), "p99_reply").identical_passes);
        assert!(!metric(&plans(need - 1), "p99_reply").identical_passes);
        // Error rates: the difference beyond the margin that fails.
        let e = metric(&large, "error_rate");
        assert!(
            e.fail_beyond.unwrap() > 0.005 && e.fail_beyond.unwrap() < 0.01,
            "{e:?}"
        );
    }

    #[test]
    fn a_small_canary_share_needs_more_connections_and_sequences_need_more() {
        let need = |method, shares| {
            let p = plan(
                &rule(),
                0.99,
                method,
                1_000,
                shares,
                Assumptions::reference(),
            );
            metric(&p, "p99_reply").pass_needs.unwrap()
        };
        let even = need(Method::Fixed, (0.5, 0.5));
        let small = need(Method::Fixed, (0.1, 0.9));
        assert!(small > 3 * even, "{small} vs {even}");
        assert!(need(Method::Sequential, (0.5, 0.5)) > even);
    }

    #[test]
    fn a_tail_shape_needs_more_than_a_smooth_one() {
        // The run's own histogram as the shape: a p99 inside a broad slow tail.
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        let body = LogNormal { sigma: 0.5 };
        let tail = LogNormal { sigma: 0.5 };
        for i in 1..10_000u64 {
            let level = i as f64 / 10_000.0;
            h.record((1000.0 * body.quantile(level)) as u64).unwrap();
            if i % 50 == 0 {
                h.record((10_000.0 * tail.quantile(level)) as u64).unwrap();
            }
        }
        let run = Assumptions {
            shape: &h,
            error_rate: 0.0,
        };
        let need = |assume| {
            let p = plan(&rule(), 0.99, Method::Fixed, 1_000, (0.5, 0.5), assume);
            metric(&p, "p99_reply").pass_needs.unwrap()
        };
        assert!(need(run) > 3 * need(Assumptions::reference()));
    }

    #[test]
    fn the_cap_covers_every_counted_metric() {
        let cap = sequential_cap(&rule(), 0.99, (0.5, 0.5)).unwrap();
        let p = plan(
            &rule(),
            0.99,
            Method::Sequential,
            cap,
            (0.5, 0.5),
            Assumptions::reference(),
        );
        assert!(p.iter().all(|m| m.identical_passes), "{p:#?}");
        let worst = p
            .iter()
            .flat_map(|m| [m.pass_needs.unwrap(), m.fail_needs.unwrap()])
            .max()
            .unwrap();
        assert_eq!(cap, (worst as f64 * CAP_FACTOR).ceil() as u64);
        assert_eq!(sequential_cap(&rule(), 0.99, (0.0, 1.0)), None);
        // A 50% margin on the median alone needs far fewer.
        let mut easy = rule();
        easy.max_latency_increase = compare::parse_latency_margins("p50=50%").unwrap();
        easy.max_error_increase = 0.05;
        assert!(sequential_cap(&easy, 0.99, (0.5, 0.5)).unwrap() < cap / 10);
    }
}
