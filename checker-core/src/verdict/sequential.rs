//! Anytime-valid sequential verdicts: a time-uniform confidence sequence per share, so
//! that the split can be judged after every batch of samples and sampling can stop as
//! soon as every version is decided, without inflating the error rate.
//!
//! The method is the beta-binomial mixture martingale (Robbins 1970; Howard, Ramdas,
//! McAuliffe and Sekhon 2021, section 3, "conjugate mixtures"). For one version with
//! `k` answers out of `n` attributed samples and a Beta(a, b) mixing distribution,
//!
//! ```text
//! M_n(p) = B(a + k, b + n - k) / B(a, b) / (p^k (1 - p)^(n - k))
//! ```
//!
//! is a nonnegative martingale with mean 1 when the true share is `p`, so by Ville's
//! inequality `P(exists n: M_n(p) >= 1/alpha) <= alpha`. The confidence sequence is
//! `{p : M_n(p) < 1/alpha}`: an interval (`ln M_n` is convex in `p`) that contains the
//! observed share and covers the true share at every `n` at once with probability at
//! least `1 - alpha`. `alpha` is the same Bonferroni share of `1 - confidence` per
//! version as the fixed rule's, and the interval meets the band with the same rule
//! (PASS inside, FAIL wholly outside, a zero-weight version answering or an unexpected
//! version FAILs at once). With several Beta components (see [`Prior`]) the martingale
//! is the same mixture of each component's martingale, and Ville's inequality holds alike.
//!
//! Pure and deterministic: counts in, verdicts out.

use statrs::function::gamma::ln_gamma;

use super::split::{judge as judge_fixed, more_until};
use super::wilson::{band, wilson};
use super::{Interval, Outcome, Settings, SplitVerdict, planner};
use crate::expect::Expectation;

/// The method's name, as shown in reports.
pub const METHOD: &str = "beta-binomial mixture confidence sequence";

/// Where the method is described.
pub const REFERENCE: &str = "Howard, Ramdas, McAuliffe and Sekhon (2021), Time-uniform, nonparametric, \
nonasymptotic confidence sequences, Annals of Statistics 49(2):1055-1080, section 3 (conjugate \
beta-binomial mixture, after Robbins 1970)";

/// Attributed samples between two looks at the evidence.
pub const DEFAULT_BATCH: u64 = 20;

/// The default `--max-samples`, as a multiple of the fixed plan.
pub const MAX_SAMPLES_FACTOR: u64 = 3;

/// The spread (standard deviation) of each mixing component, in tolerances.
/// Half a tolerance: tuned by the seeded calibration (`checker/tests/calibration.rs`);
/// wider components decided later at 99/1, narrower ones would suit only exact splits.
pub const PRIOR_SPREAD: f64 = 0.5;

/// The mixing distribution's mean is kept this far from 0 and 1.
const MEAN_MARGIN: f64 = 0.005;

/// The smallest total of the mixing distribution's parameters.
const MIN_CONCENTRATION: f64 = 1.0;

/// Newton steps for an interval end, at most (a few reach full precision).
const NEWTON_STEPS: u32 = 100;

/// One Beta(a, b) component of a mixing distribution, with its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Component {
    /// Its weight in the mixture (the weights sum to 1).
    pub weight: f64,
    /// First shape parameter.
    pub a: f64,
    /// Second shape parameter.
    pub b: f64,
}

impl Component {
    /// A component of weight `weight` with mean `mean` (kept off 0 and 1) and standard
    /// deviation `spread` (or as wide as a Beta with that mean allows).
    fn around(weight: f64, mean: f64, spread: f64) -> Self {
        let mean = mean.clamp(MEAN_MARGIN, 1.0 - MEAN_MARGIN);
        let total = (mean * (1.0 - mean) / (spread * spread) - 1.0).max(MIN_CONCENTRATION);
        Self {
            weight,
            a: mean * total,
            b: (1.0 - mean) * total,
        }
    }

    /// A component of weight `weight` with mean `mean` (kept off 0 and 1) and the
    /// weight of `size` prior samples: Beta(mean size, (1 - mean) size).
    pub fn with_size(weight: f64, mean: f64, size: f64) -> Self {
        let mean = mean.clamp(MEAN_MARGIN, 1.0 - MEAN_MARGIN);
        let size = size.max(MIN_CONCENTRATION);
        Self {
            weight,
            a: mean * size,
            b: (1.0 - mean) * size,
        }
    }
}

/// The mixing distribution of one version's martingale: Beta components centred on the
/// shares each decision is about. Half its weight sits on the expected share (where a
/// correct split lies, to exclude the band's edges soon: PASS), the other half on the
/// shares twice the tolerance away that lie within 0..=1 (where a wrong split lies, to
/// exclude the near edge soon: FAIL). Each has a standard deviation of [`PRIOR_SPREAD`] tolerances. It is fixed
/// before any data, so it affects how soon a verdict comes, never its validity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    /// The components.
    pub components: [Component; 3],
}

impl Prior {
    /// The mixing distribution for a version expected at `expected`.
    pub fn for_share(expected: f64, tolerance: f64) -> Self {
        let spread = PRIOR_SPREAD * tolerance;
        // Only wrong shares that exist: a split cannot be off below 0 or above 1.
        let below = f64::from(u8::from(expected - 2.0 * tolerance >= 0.0));
        let above = f64::from(u8::from(expected + 2.0 * tolerance <= 1.0));
        let wrong = 0.5 / (below + above).max(1.0);
        Self {
            components: [
                Component::around(0.5, expected, spread),
                Component::around(below * wrong, expected - 2.0 * tolerance, spread),
                Component::around(above * wrong, expected + 2.0 * tolerance, spread),
            ],
        }
    }

    /// `ln` of the mixture's marginal likelihood of `k` answers in `n`.
    pub(crate) fn ln_marginal(&self, k: f64, n: f64) -> f64 {
        self.at(n).ln(k)
    }

    /// The mixture's marginal at `n` trials, ready for many counts.
    pub(crate) fn at(&self, n: f64) -> Marginal {
        Marginal {
            n,
            terms: self.components.map(|c| {
                let constant = c.weight.ln() - ln_beta(c.a, c.b) - ln_gamma(c.a + c.b + n);
                (c.a, c.b, constant)
            }),
        }
    }
}

/// The mixture's marginal likelihood ratio numerator at a fixed number of trials `n`,
/// `sum_j w_j B(a_j + k, b_j + n - k) / B(a_j, b_j)`, with everything that does not
/// depend on the count `k` computed once (the rank search asks it for many counts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Marginal {
    n: f64,
    /// Per component: `a`, `b` and `ln w - ln B(a, b) - ln Gamma(a + b + n)`.
    terms: [(f64, f64, f64); 3],
}

impl Marginal {
    /// `ln` of the marginal at `k` successes (log-sum-exp over the components).
    pub(crate) fn ln(&self, k: f64) -> f64 {
        let terms = self
            .terms
            .map(|(a, b, constant)| constant + ln_gamma(a + k) + ln_gamma(b + self.n - k));
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
    }
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// `ln M_n(p)` for `count` answers out of `n` (infinite where `p` is impossible).
pub fn log_martingale(count: u64, n: u64, p: f64, prior: Prior) -> f64 {
    prior.ln_marginal(count as f64, n as f64) - log_likelihood(count, n, p)
}

/// `ln p^count (1 - p)^(n - count)` (minus infinity where `p` is impossible).
fn log_likelihood(count: u64, n: u64, p: f64) -> f64 {
    let (k, n) = (count as f64, n as f64);
    if p <= 0.0 {
        if count > 0 { f64::NEG_INFINITY } else { 0.0 }
    } else if p >= 1.0 {
        if k < n { f64::NEG_INFINITY } else { 0.0 }
    } else {
        k * p.ln() + (n - k) * (1.0 - p).ln()
    }
}

/// The confidence sequence `{p : M_n(p) < 1/alpha}` of a share with `count` answers
/// out of `n`, closed at its ends (the whole 0..=1 without samples). The mixture's
/// marginal does not depend on `p`, so it is computed once.
pub(crate) fn share_interval(count: u64, n: u64, prior: Prior, alpha: f64) -> Interval {
    share_interval_at(count, n, prior, (1.0 / alpha).ln())
}

fn share_interval_at(count: u64, n: u64, prior: Prior, threshold: f64) -> Interval {
    if n == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    // `p` is excluded where `ln L(p) <= ln m - threshold` (the mixture's marginal `m`
    // does not depend on `p`): the ends are where the concave log-likelihood falls to
    // that level.
    let level = prior.ln_marginal(count as f64, n as f64) - threshold;
    let (k, rest) = (count as f64, (n - count) as f64);
    let gap = |p: f64| log_likelihood(count, n, p) - level;
    let slope = |p: f64| k / p - rest / (1.0 - p);
    let share = k / n as f64;
    // Start near the ends: the Wilson interval at the z of the likelihood drop to the
    // level (the normal approximation of the same set), a little wider.
    let drop = (log_likelihood(count, n, share) - level).max(0.0);
    let guess = wilson(k, n as f64, 1.05 * (2.0 * drop).sqrt());
    let low = if gap(0.0) > 0.0 {
        0.0
    } else {
        // Halve towards 0 until excluded, then Newton's method from there.
        let mut p = if guess.low > 0.0 {
            guess.low
        } else {
            share / 2.0
        };
        while gap(p) > 0.0 && p > f64::MIN_POSITIVE {
            p /= 2.0;
        }
        // An end below the smallest double is 0.
        if gap(p) > 0.0 {
            0.0
        } else {
            newton_from_outside(p, gap, slope)
        }
    };
    let high = if gap(1.0) > 0.0 {
        1.0
    } else {
        let mut p = if guess.high < 1.0 {
            guess.high
        } else {
            share + (1.0 - share) / 2.0
        };
        while gap(p) > 0.0 && p < 1.0 {
            p = 0.5 * (p + 1.0);
        }
        if gap(p) > 0.0 {
            1.0
        } else {
            newton_from_outside(p, gap, slope)
        }
    };
    Interval { low, high }
}

/// Newton's method for a root of the concave `gap`, started at an excluded `p`
/// (`gap(p) <= 0`): each tangent lies above the function, so the steps move towards
/// the root without passing it and every iterate stays excluded; the result is the
/// interval's end up to rounding, never inside it.
fn newton_from_outside(mut p: f64, gap: impl Fn(f64) -> f64, slope: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..NEWTON_STEPS {
        let mut step = -gap(p) / slope(p);
        let mut next = p + step;
        // At the root, rounding can put a full step a hair inside: back off.
        for _ in 0..NEWTON_STEPS {
            if !next.is_finite() || gap(next) <= 0.0 {
                break;
            }
            step *= 0.5;
            next = p + step;
        }
        if !next.is_finite() || gap(next) > 0.0 || (next - p).abs() <= f64::EPSILON * p.abs() {
            break;
        }
        p = next;
    }
    p
}

/// One version's sequence at the per-version error `alpha`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sequence {
    count: u64,
    n: u64,
    prior: Prior,
    threshold: f64,
}

impl Sequence {
    fn new(count: u64, n: u64, prior: Prior, alpha: f64) -> Self {
        Self {
            count,
            n,
            prior,
            threshold: (1.0 / alpha).ln(),
        }
    }

    /// Whether `p` lies outside the confidence sequence at this `n`.
    fn excludes(&self, p: f64) -> bool {
        log_martingale(self.count, self.n, p, self.prior) >= self.threshold
    }

    fn share(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.count as f64 / self.n as f64
        }
    }

    /// The interval `{p : M_n(p) < 1/alpha}`, closed at its ends.
    fn interval(&self) -> Interval {
        share_interval_at(self.count, self.n, self.prior, self.threshold)
    }

    /// The rule against `band`, without computing the interval's ends.
    fn classify(&self, band: Interval) -> Outcome {
        if self.n == 0 {
            return Outcome::Inconclusive;
        }
        let share = self.share();
        if share < band.low {
            return if self.excludes(band.low) {
                Outcome::Fail
            } else {
                Outcome::Inconclusive
            };
        }
        if share > band.high {
            return if self.excludes(band.high) {
                Outcome::Fail
            } else {
                Outcome::Inconclusive
            };
        }
        let low_ok = band.low <= 0.0 || self.excludes(band.low);
        let high_ok = band.high >= 1.0 || self.excludes(band.high);
        if low_ok && high_ok {
            Outcome::Pass
        } else {
            Outcome::Inconclusive
        }
    }
}

/// The per-version error for `k` judged versions (Bonferroni, as the fixed rule).
fn alpha(settings: &Settings, k: usize) -> f64 {
    1.0 - planner::per_version_confidence(settings.confidence, k)
}

/// The overall outcome of the counts so far, quickly (no interval ends): what the
/// sampling loop asks after every batch. Same result as [`judge`]'s outcome.
pub fn decide(expect: &Expectation, counts: &[(String, u64)], settings: &Settings) -> Outcome {
    let total: u64 = counts.iter().fold(0, |a, (_, c)| a.saturating_add(*c));
    if total == 0 {
        return Outcome::Inconclusive;
    }
    let count_of = |name: &str| {
        counts
            .iter()
            .filter(|(n, _)| n == name)
            .fold(0u64, |a, (_, c)| a.saturating_add(*c))
    };
    if counts
        .iter()
        .any(|(name, c)| *c > 0 && expect.share_of(name).is_none())
    {
        return Outcome::Fail;
    }
    let alpha = alpha(settings, expect.versions().len());
    let mut overall = Outcome::Pass;
    for v in expect.versions() {
        let count = count_of(&v.name);
        let outcome = if v.share <= 0.0 {
            if count > 0 {
                Outcome::Fail
            } else {
                Outcome::Pass
            }
        } else {
            let prior = Prior::for_share(v.share, settings.tolerance);
            Sequence::new(count, total, prior, alpha).classify(band(v.share, settings.tolerance))
        };
        if outcome == Outcome::Fail {
            return Outcome::Fail;
        }
        overall = overall.max(outcome);
    }
    overall
}

/// The full verdict on the counts so far, with each version's confidence-sequence
/// interval in place of the Wilson interval (everything else as [`super::split::judge`]).
pub fn judge(expect: &Expectation, counts: &[(String, u64)], settings: &Settings) -> SplitVerdict {
    let mut verdict = judge_fixed(expect, counts, settings);
    let total = verdict.total;
    if total == 0 {
        return verdict;
    }
    let alpha = 1.0 - verdict.per_version_confidence;
    for v in &mut verdict.versions {
        let prior = Prior::for_share(v.expected, settings.tolerance);
        let sequence = Sequence::new(v.count, total, prior, alpha);
        v.interval = sequence.interval();
        if !v.was_expected || v.expected <= 0.0 {
            continue;
        }
        let (outcome, reason, more) = match sequence.classify(v.band) {
            Outcome::Pass => (Outcome::Pass, "interval inside the band", None),
            Outcome::Fail => (Outcome::Fail, "interval outside the band", None),
            Outcome::Inconclusive => {
                let share = v.count as f64 / total as f64;
                let band = v.band;
                let more = more_until(total, |n| {
                    let count = (share * n as f64).round() as u64;
                    Sequence::new(count, n, prior, alpha).classify(band) != Outcome::Inconclusive
                });
                (
                    Outcome::Inconclusive,
                    "interval overlaps the band edge",
                    more,
                )
            }
        };
        v.outcome = outcome;
        v.reason = reason.to_owned();
        v.more_samples = more;
    }
    verdict.outcome = verdict
        .versions
        .iter()
        .map(|v| v.outcome)
        .max()
        .unwrap_or(Outcome::Inconclusive);
    verdict
}

/// The default most samples of a sequential run: [`MAX_SAMPLES_FACTOR`] times the fixed plan.
pub fn default_max_samples(expect: &Expectation, settings: &Settings) -> u64 {
    planner::plan(expect, settings)
        .samples
        .saturating_mul(MAX_SAMPLES_FACTOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|&(n, c)| (n.to_owned(), c)).collect()
    }

    fn both(spec: &str, pairs: &[(&str, u64)]) -> (Outcome, SplitVerdict) {
        let e: Expectation = spec.parse().unwrap();
        let s = Settings::default();
        let c = counts(pairs);
        (decide(&e, &c, &s), judge(&e, &c, &s))
    }

    #[test]
    fn the_martingale_is_a_likelihood_ratio_of_the_mixture() {
        // Beta(1, 1) mixture, 3 of 4: B(4, 2) / B(1, 1) = 1/20; p = 1/2 gives 1/16.
        let flat = Component {
            weight: 1.0 / 3.0,
            a: 1.0,
            b: 1.0,
        };
        let uniform = Prior {
            components: [flat; 3],
        };
        let m = log_martingale(3, 4, 0.5, uniform).exp();
        assert!((m - (1.0 / 20.0) / (1.0 / 16.0)).abs() < 1e-12, "{m}");
        // Impossible shares are excluded outright.
        assert_eq!(log_martingale(1, 4, 0.0, uniform), f64::INFINITY);
        assert_eq!(log_martingale(3, 4, 1.0, uniform), f64::INFINITY);
        // Never above 1 at the observed share: the interval always holds it.
        for (k, n) in [(0, 10), (5, 10), (10, 10), (123, 1000)] {
            let p = k as f64 / n as f64;
            assert!(log_martingale(k, n, p, Prior::for_share(0.3, 0.05)) <= 1e-12);
        }
    }

    #[test]
    fn the_prior_is_centred_on_the_expectation_and_the_wrong_shares() {
        let p = Prior::for_share(0.8, 0.05);
        let weights: f64 = p.components.iter().map(|c| c.weight).sum();
        assert!((weights - 1.0).abs() < 1e-12);
        for (c, mean) in p.components.iter().zip([0.8, 0.7, 0.9]) {
            let total = c.a + c.b;
            assert!((c.a / total - mean).abs() < 1e-12, "{c:?}");
            let sd = (mean * (1.0 - mean) / (total + 1.0)).sqrt();
            assert!((sd - PRIOR_SPREAD * 0.05).abs() < 1e-9, "{sd}");
        }
        let edge = Prior::for_share(1.0, 0.05);
        assert!(edge.components.iter().all(|c| c.a > 0.0 && c.b > 0.0));
    }

    #[test]
    fn the_interval_is_wider_than_wilson_and_shrinks_with_n() {
        let fixed = super::super::split::judge(
            &"one=80,two=20".parse().unwrap(),
            &counts(&[("one", 800), ("two", 200)]),
            &Settings::default(),
        );
        let (_, seq) = both("one=80,two=20", &[("one", 800), ("two", 200)]);
        let (w, s) = (fixed.versions[0].interval, seq.versions[0].interval);
        assert!(s.low < w.low && s.high > w.high, "{s:?} vs {w:?}");
        assert!(s.low < 0.8 && s.high > 0.8);
        let (_, more) = both("one=80,two=20", &[("one", 8000), ("two", 2000)]);
        let m = more.versions[0].interval;
        assert!(m.high - m.low < s.high - s.low);
    }

    #[test]
    fn interval_ends_are_the_sequence_edges_found_from_outside() {
        let prior = Prior::for_share(0.3, 0.05);
        let alpha: f64 = 0.005;
        let threshold = (1.0 / alpha).ln();
        for (k, n) in [
            (0u64, 10u64),
            (3, 10),
            (10, 10),
            (1, 5000),
            (300, 1000),
            (29_990, 100_000),
        ] {
            let i = share_interval(k, n, prior, alpha);
            let m = |p: f64| log_martingale(k, n, p, prior);
            for (end, inward) in [(i.low, 1.0), (i.high, -1.0)] {
                if end == 0.0 || end == 1.0 {
                    continue;
                }
                // The end is excluded (or on the edge), a hair inside is not.
                assert!(m(end) >= threshold - 1e-9, "{k}/{n}: {i:?}");
                let hair = end + inward * 1e-9 * end.max(1e-6);
                assert!(
                    m(hair) < threshold,
                    "{k}/{n}: {i:?} {} {} {hair}",
                    m(end) - threshold,
                    m(hair) - threshold
                );
            }
            let share = k as f64 / n as f64;
            assert!(i.low <= share && share <= i.high);
        }
    }

    #[test]
    fn decide_agrees_with_judge() {
        for (spec, pairs) in [
            ("one=80,two=20", vec![("one", 800), ("two", 200)]),
            ("one=80,two=20", vec![("one", 1600), ("two", 400)]),
            ("one=80,two=20", vec![("one", 200), ("two", 800)]),
            ("one=80,two=20", vec![("one", 20), ("two", 5)]),
            (
                "one=90,two=10",
                vec![("one", 900), ("two", 100), ("three", 1)],
            ),
            ("one=100,two=0", vec![("one", 300), ("two", 1)]),
            ("one=100,two=0", vec![("one", 300)]),
            ("a=60,b=30,c=10", vec![("a", 1200), ("b", 600), ("c", 200)]),
        ] {
            let (fast, full) = both(spec, &pairs);
            assert_eq!(fast, full.outcome, "{spec} {pairs:?}: {full:?}");
        }
    }

    #[test]
    fn a_correct_split_passes_and_a_wrong_one_fails_with_enough_evidence() {
        let (o, v) = both("one=80,two=20", &[("one", 1600), ("two", 400)]);
        assert_eq!(o, Outcome::Pass, "{v:?}");
        assert!(v.versions.iter().all(|x| x.interval.low >= x.band.low));
        let (o, v) = both("one=80,two=20", &[("one", 70), ("two", 30)]);
        assert_eq!(o, Outcome::Inconclusive);
        let more = v.versions[0].more_samples.unwrap();
        assert!(more > 0);
        let (o, _) = both("one=80,two=20", &[("one", 40), ("two", 60)]);
        assert_eq!(o, Outcome::Fail);
        let (o, v) = both("one=80,two=20", &[("one", 800), ("two", 200), ("x", 1)]);
        assert_eq!(o, Outcome::Fail);
        assert_eq!(v.versions[2].reason, "not an expected version");
    }

    #[test]
    fn no_samples_stays_inconclusive_with_the_plan() {
        let (o, v) = both("one=80,two=20", &[]);
        assert_eq!(o, Outcome::Inconclusive);
        assert_eq!(v.versions[0].more_samples, Some(1883));
    }
}
