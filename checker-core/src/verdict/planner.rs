//! The sample-size planner, computed from the binomial distribution of the exact rule.
//!
//! For a candidate N, each version's rule is turned into integer sets: which counts out
//! of N PASS (a range `[a, b]`, since both Wilson ends grow with the count) and which
//! FAIL (counts up to `c` and from `d` on). Probabilities are then sums of binomial
//! pmfs over those sets (through the regularised incomplete beta function, so there is
//! no normal approximation anywhere in the guarantee):
//!
//! * **pass probability** at the expected split: with two versions the counts are
//!   complementary, so the joint event is one range of the first version's count and
//!   the probability is exact. With more versions the per-version marginals are
//!   combined with a union bound, `P(all pass) >= 1 - sum(1 - P(version i passes))`,
//!   a lower bound (so the plan errs on the safe side).
//! * **detection probability** when one version `i` is off by twice the tolerance
//!   (`e_i +- 2 * tolerance`, each direction that stays within 0..=1; the other versions
//!   absorb the difference in proportion to their expected shares): the split FAILs if
//!   any version fails, so `max_j P(version j fails)` is a lower bound. The plan takes
//!   the worst (smallest) over every version and direction. When no version can move by
//!   twice the tolerance (huge tolerances), each is moved as far as 0..=1 allows, and
//!   shifts that stay inside the band are not required to fail (they are not wrong).
//!   With a single expected version, the share it loses goes to unexpected versions,
//!   which FAIL on their first answer: `1 - (1 - lost)^N` counts as detection too.
//!
//! N is searched from a normal-approximation guess: gallop (halve or double) to
//! bracket the smallest N meeting both goals, binary search the bracket, then a short
//! linear scan below the result, because the exact probabilities step up and down a
//! little as N grows (the integer thresholds move one count at a time).

use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

use super::search::first_true;
use super::types::{Plan, Settings};
use super::wilson::{band, wilson, z_for};
use crate::expect::Expectation;

/// The largest sample count the planner (and the "more samples" estimate) will propose.
pub const MAX_PLANNED_SAMPLES: u64 = 100_000_000;

/// The probability with which a split off by twice the tolerance must FAIL.
pub const DETECT_PROBABILITY: f64 = 0.95;

/// Shares closer than this to 0 or 1 are treated as exactly 0 or 1.
const SHARE_EPSILON: f64 = 1e-12;

/// Which counts out of N pass and fail for one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CountRule {
    /// Counts in `a..=b` PASS; `None` when no count passes.
    pub(crate) pass: Option<(u64, u64)>,
    /// Counts `0..=c` FAIL (interval wholly below the band).
    pub(crate) fail_up_to: Option<u64>,
    /// Counts `d..=N` FAIL (interval wholly above the band, or a zero-weight version answering).
    pub(crate) fail_from: Option<u64>,
}

/// Turns the rule for a version with expected share `expected` into count sets at `n`.
pub(crate) fn count_rule(n: u64, z: f64, expected: f64, tolerance: f64) -> CountRule {
    if expected <= 0.0 {
        // A zero-weight version passes only when it never answers.
        return CountRule {
            pass: Some((0, 0)),
            fail_up_to: None,
            fail_from: (n >= 1).then_some(1),
        };
    }
    let b = band(expected, tolerance);
    let nf = n as f64;
    let low = |k: u64| wilson(k as f64, nf, z).low;
    let high = |k: u64| wilson(k as f64, nf, z).high;
    let a = first_true(n, |k| low(k) >= b.low);
    let above = first_true(n, |k| high(k) > b.high);
    let pass = (a < above && a <= n).then(|| (a, above - 1));
    let reaches = first_true(n, |k| high(k) >= b.low);
    let fail_up_to = reaches.checked_sub(1);
    let d = first_true(n, |k| low(k) > b.high);
    let fail_from = (d <= n).then_some(d);
    CountRule {
        pass,
        fail_up_to,
        fail_from,
    }
}

/// `P(lo <= K <= hi)` for `K ~ Binomial(n, p)`.
fn prob_between(n: u64, p: f64, lo: u64, hi: u64) -> f64 {
    let hi = hi.min(n);
    if lo > hi {
        return 0.0;
    }
    if p <= SHARE_EPSILON {
        return if lo == 0 { 1.0 } else { 0.0 };
    }
    if p >= 1.0 - SHARE_EPSILON {
        return if hi == n { 1.0 } else { 0.0 };
    }
    let Ok(dist) = Binomial::new(p, n) else {
        return 0.0;
    };
    let below = if lo == 0 { 0.0 } else { dist.cdf(lo - 1) };
    let above = dist.sf(hi);
    (1.0 - below - above).clamp(0.0, 1.0)
}

/// `P(K <= c)` for `K ~ Binomial(n, p)`.
fn prob_at_most(n: u64, p: f64, c: u64) -> f64 {
    if c >= n {
        return 1.0;
    }
    if p <= SHARE_EPSILON {
        return 1.0;
    }
    if p >= 1.0 - SHARE_EPSILON {
        return 0.0;
    }
    Binomial::new(p, n).map_or(0.0, |d| d.cdf(c))
}

/// `P(K >= d)` for `K ~ Binomial(n, p)`.
fn prob_at_least(n: u64, p: f64, d: u64) -> f64 {
    if d == 0 {
        return 1.0;
    }
    if d > n {
        return 0.0;
    }
    if p <= SHARE_EPSILON {
        return 0.0;
    }
    if p >= 1.0 - SHARE_EPSILON {
        return 1.0;
    }
    Binomial::new(p, n).map_or(0.0, |dist| dist.sf(d - 1))
}

/// The probability that a version with true share `p` FAILs under `rule` at `n`.
fn fail_probability(n: u64, p: f64, rule: &CountRule) -> f64 {
    let low = rule.fail_up_to.map_or(0.0, |c| prob_at_most(n, p, c));
    let high = rule.fail_from.map_or(0.0, |d| prob_at_least(n, p, d));
    (low + high).min(1.0)
}

/// The split with version `i` moved to `target`, the others absorbing the difference
/// in proportion to their expected shares (equally when they all expect zero).
fn shifted(shares: &[f64], i: usize, target: f64) -> Vec<f64> {
    let rest = 1.0 - target;
    let others: f64 = shares
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, s)| s)
        .sum();
    let m = shares.len();
    shares
        .iter()
        .enumerate()
        .map(|(j, &s)| {
            if j == i {
                target
            } else if others > SHARE_EPSILON {
                s * rest / others
            } else {
                rest / (m as f64 - 1.0).max(1.0)
            }
        })
        .collect()
}

/// The wrong splits the plan must detect: one version off by twice the tolerance.
pub(crate) fn wrong_splits(shares: &[f64], tolerance: f64) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for (i, &e) in shares.iter().enumerate() {
        for target in [e + 2.0 * tolerance, e - 2.0 * tolerance] {
            if (-SHARE_EPSILON..=1.0 + SHARE_EPSILON).contains(&target) {
                out.push(shifted(shares, i, target.clamp(0.0, 1.0)));
            }
        }
    }
    if out.is_empty() {
        for (i, &e) in shares.iter().enumerate() {
            for target in [1.0, 0.0] {
                if (target - e).abs() > tolerance {
                    out.push(shifted(shares, i, target));
                }
            }
        }
    }
    out
}

/// Everything the planner needs that does not depend on N.
struct Problem {
    shares: Vec<f64>,
    wrong: Vec<Vec<f64>>,
    z: f64,
    tolerance: f64,
    confidence: f64,
}

/// Both probabilities at `n`.
fn evaluate(problem: &Problem, n: u64) -> (f64, f64) {
    let rules: Vec<CountRule> = problem
        .shares
        .iter()
        .map(|&e| count_rule(n, problem.z, e, problem.tolerance))
        .collect();
    let pass = pass_probability(n, &problem.shares, &rules);
    let detect = problem
        .wrong
        .iter()
        .map(|split| {
            // With a single expected version its lost share goes to versions nobody
            // expected, and the first of those to answer FAILs the split.
            let unexpected = 1.0 - split.iter().sum::<f64>();
            let unexpected_fails = if unexpected > SHARE_EPSILON {
                prob_at_least(n, unexpected, 1)
            } else {
                0.0
            };
            split
                .iter()
                .zip(&rules)
                .map(|(&p, rule)| fail_probability(n, p, rule))
                .fold(unexpected_fails, f64::max)
        })
        .fold(1.0, f64::min);
    (pass, detect)
}

/// The probability (exact for two versions, a union lower bound beyond) that the
/// expected split itself PASSes at `n`.
fn pass_probability(n: u64, shares: &[f64], rules: &[CountRule]) -> f64 {
    if let ([e1, _], [r1, r2]) = (shares, rules) {
        let (Some((a1, b1)), Some((a2, b2))) = (r1.pass, r2.pass) else {
            return 0.0;
        };
        // Version two's count is n - k1.
        let lo = a1.max(n.saturating_sub(b2));
        let Some(hi) = n.checked_sub(a2).map(|h| h.min(b1)) else {
            return 0.0;
        };
        return prob_between(n, *e1, lo, hi);
    }
    let miss: f64 = shares
        .iter()
        .zip(rules)
        .map(|(&e, rule)| 1.0 - rule.pass.map_or(0.0, |(a, b)| prob_between(n, e, a, b)))
        .sum();
    (1.0 - miss).max(0.0)
}

/// The normal-approximation guess at N (a starting point only).
fn guess(problem: &Problem) -> u64 {
    let m = problem.shares.len() as f64;
    let z_pass = Normal::standard().inverse_cdf(1.0 - (1.0 - problem.confidence) / (2.0 * m));
    let sum = problem.z + z_pass;
    let n = problem
        .shares
        .iter()
        .map(|&e| {
            let sd = (e * (1.0 - e)).sqrt();
            (sum * sd / problem.tolerance).powi(2)
        })
        .fold(1.0, f64::max);
    if n.is_finite() {
        (n.ceil() as u64).clamp(1, MAX_PLANNED_SAMPLES)
    } else {
        1
    }
}

/// The Bonferroni-corrected per-version confidence for `k` judged versions.
pub fn per_version_confidence(confidence: f64, k: usize) -> f64 {
    1.0 - (1.0 - confidence) / (k.max(1) as f64)
}

/// Plans the smallest N meeting both goals (see the module docs).
pub fn plan(expect: &Expectation, settings: &Settings) -> Plan {
    let shares: Vec<f64> = expect.versions().iter().map(|v| v.share).collect();
    let z = z_for(per_version_confidence(settings.confidence, shares.len()));
    let problem = Problem {
        wrong: wrong_splits(&shares, settings.tolerance),
        shares,
        z,
        tolerance: settings.tolerance,
        confidence: settings.confidence,
    };
    let meets =
        |(pass, detect): (f64, f64)| pass >= problem.confidence && detect >= DETECT_PROBABILITY;
    let ok = |n: u64| meets(evaluate(&problem, n));

    // Bracket: `lo` fails (or is 0), `hi` meets both goals.
    let mut hi = guess(&problem);
    let mut lo;
    if ok(hi) {
        lo = hi / 2;
        while lo >= 1 && ok(lo) {
            hi = lo;
            lo /= 2;
        }
    } else {
        lo = hi;
        loop {
            if hi >= MAX_PLANNED_SAMPLES {
                return finish(&problem, MAX_PLANNED_SAMPLES);
            }
            hi = hi.saturating_mul(2).min(MAX_PLANNED_SAMPLES);
            if ok(hi) {
                break;
            }
            lo = hi;
        }
    }
    let hi = super::search::narrow(lo, hi, ok);
    // The exact probabilities are not quite monotonic in N: look a little lower.
    // The steps come from thresholds moving one count at a time, so a few dozen N suffice.
    let window = (hi / 50).clamp(16, 64);
    let best = (hi.saturating_sub(window).max(1)..hi)
        .find(|&n| ok(n))
        .unwrap_or(hi);
    finish(&problem, best)
}

/// The plan at `n` with its probabilities.
fn finish(problem: &Problem, n: u64) -> Plan {
    let (pass_probability, detect_probability) = evaluate(problem, n);
    Plan {
        samples: n,
        pass_probability,
        detect_probability,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(spec: &str) -> Plan {
        let e: Expectation = spec.parse().unwrap();
        plan(&e, &Settings::default())
    }

    #[test]
    fn default_plans_match_the_issue_figures() {
        for (spec, low, high) in [
            ("one=50,two=50", 2_700, 3_100),
            ("one=80,two=20", 1_800, 2_200),
            ("one=90,two=10", 1_050, 1_350),
            ("one=99,two=1", 450, 650),
        ] {
            let p = planned(spec);
            assert!(
                (low..=high).contains(&p.samples),
                "{spec}: planned {} ({p:?})",
                p.samples
            );
            assert!(p.pass_probability >= 0.99, "{spec}: {p:?}");
            assert!(p.detect_probability >= DETECT_PROBABILITY, "{spec}: {p:?}");
        }
    }

    #[test]
    fn the_readme_figures_hold_exactly() {
        // README, "checker verify": the planned counts at the defaults.
        for (spec, n) in [
            ("one=50,two=50", 2_865),
            ("one=80,two=20", 1_883),
            ("one=90,two=10", 1_169),
            ("one=99,two=1", 539),
            ("one=100,two=0", 150),
        ] {
            assert_eq!(planned(spec).samples, n, "{spec}");
        }
    }

    #[test]
    fn the_plan_is_the_smallest_n_in_its_neighbourhood() {
        let e: Expectation = "one=80,two=20".parse().unwrap();
        let s = Settings::default();
        let p = plan(&e, &s);
        let shares: Vec<f64> = e.versions().iter().map(|v| v.share).collect();
        let problem = Problem {
            wrong: wrong_splits(&shares, s.tolerance),
            z: z_for(per_version_confidence(s.confidence, 2)),
            shares,
            tolerance: s.tolerance,
            confidence: s.confidence,
        };
        let (pass, detect) = evaluate(&problem, p.samples - 1);
        assert!(pass < 0.99 || detect < DETECT_PROBABILITY);
        let (pass, _) = evaluate(&problem, p.samples / 2);
        assert!(pass < 0.99);
    }

    #[test]
    fn symmetric_splits_plan_the_same() {
        let (a, b) = (planned("one=90,two=10"), planned("one=10,two=90"));
        assert_eq!(a.samples, b.samples);
        assert!((a.pass_probability - b.pass_probability).abs() < 1e-9);
    }

    #[test]
    fn three_way_and_zero_weight_splits_plan_sensibly() {
        let p = planned("a=60,b=30,c=10");
        assert!((1_000..10_000).contains(&p.samples), "{p:?}");
        assert!(p.pass_probability >= 0.99 && p.detect_probability >= 0.95);
        // 100/0: the zero-weight version must never answer; the other must be shown >= 95%.
        let p = planned("one=100,two=0");
        assert!((100..400).contains(&p.samples), "{p:?}");
        assert_eq!(p.pass_probability, 1.0);
        assert!(p.detect_probability >= 0.95);
    }

    #[test]
    fn count_rules_agree_with_the_interval_rule() {
        let z = z_for(0.995);
        for (n, e) in [(100u64, 0.5), (300, 0.9), (57, 0.01), (1000, 0.2)] {
            let rule = count_rule(n, z, e, 0.05);
            let b = band(e, 0.05);
            for k in 0..=n {
                let outcome = super::super::wilson::classify(wilson(k as f64, n as f64, z), b);
                let passes = rule.pass.is_some_and(|(a, bb)| (a..=bb).contains(&k));
                let fails = rule.fail_up_to.is_some_and(|c| k <= c)
                    || rule.fail_from.is_some_and(|d| k >= d);
                assert_eq!(
                    passes,
                    outcome == super::super::Outcome::Pass,
                    "n={n} e={e} k={k}"
                );
                assert_eq!(
                    fails,
                    outcome == super::super::Outcome::Fail,
                    "n={n} e={e} k={k}"
                );
            }
        }
    }

    #[test]
    fn extreme_settings_still_meet_both_goals() {
        for (spec, confidence, tolerance) in [
            ("a=50,b=50", 0.99, 0.5),
            ("a=30,b=70", 0.99, 0.4),
            ("a=50,b=50", 0.5, 0.05),
            ("a=50,b=50", 0.999_999, 0.005),
            ("a=50,b=50", 0.99, 0.001),
            ("a=999,b=1", 0.99, 0.0005),
            ("a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1,j=1", 0.99, 0.05),
        ] {
            let e: Expectation = spec.parse().unwrap();
            let s = Settings {
                confidence,
                tolerance,
            };
            let p = plan(&e, &s);
            assert!(
                p.samples >= 1 && p.samples < MAX_PLANNED_SAMPLES,
                "{spec}: {p:?}"
            );
            assert!(p.pass_probability >= confidence, "{spec}: {p:?}");
            assert!(p.detect_probability >= DETECT_PROBABILITY, "{spec}: {p:?}");
        }
        // A band of 0..=1 cannot fail: one sample is enough to pass.
        let e: Expectation = "a=50,b=50".parse().unwrap();
        let p = plan(
            &e,
            &Settings {
                confidence: 0.99,
                tolerance: 0.5,
            },
        );
        assert_eq!(p.samples, 1);
    }

    #[test]
    fn binomial_sums_are_right() {
        // Binomial(10, 0.5): P(K <= 2) = 56/1024, P(K >= 8) = 56/1024, P(3..=7) = 912/1024.
        assert!((prob_at_most(10, 0.5, 2) - 56.0 / 1024.0).abs() < 1e-12);
        assert!((prob_at_least(10, 0.5, 8) - 56.0 / 1024.0).abs() < 1e-12);
        assert!((prob_between(10, 0.5, 3, 7) - 912.0 / 1024.0).abs() < 1e-12);
        assert_eq!(prob_between(10, 0.0, 0, 0), 1.0);
        assert_eq!(prob_between(10, 1.0, 10, 10), 1.0);
    }

    #[test]
    fn wrong_splits_move_one_version_by_twice_the_tolerance() {
        let w = wrong_splits(&[0.99, 0.01], 0.05);
        assert_eq!(w.len(), 2, "{w:?}");
        for s in &w {
            assert!((s[0] - 0.89).abs() < 1e-9 && (s[1] - 0.11).abs() < 1e-9);
        }
        let w = wrong_splits(&[0.6, 0.3, 0.1], 0.05);
        assert_eq!(w.len(), 6);
        assert!(w.iter().all(|s| (s.iter().sum::<f64>() - 1.0).abs() < 1e-9));
        assert!(
            w.iter()
                .any(|s| (s[2] - 0.2).abs() < 1e-9 && (s[0] - 0.6 * 0.8 / 0.9).abs() < 1e-9)
        );
    }

    #[test]
    fn a_single_version_is_planned_like_its_zero_weight_twin_or_less() {
        let settings = Settings::default();
        let alone = plan(&"one=100".parse().unwrap(), &settings);
        let twin = plan(&"one=100,two=0".parse().unwrap(), &settings);
        assert!(alone.samples <= twin.samples, "{alone:?} vs {twin:?}");
        assert!(alone.pass_probability >= settings.confidence, "{alone:?}");
        assert!(alone.detect_probability >= DETECT_PROBABILITY, "{alone:?}");
    }
}
