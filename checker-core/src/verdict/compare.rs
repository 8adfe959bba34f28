//! Canary against stable, from the same run: is the canary's error rate or latency
//! worse than the stable's by more than a margin?
//!
//! * Errors: only errors a reply attributes to a version can be compared (a reply with
//!   the version's prefix but a wrong or truncated echo). A connection that fails
//!   before any reply names no version at L4: those stay in the overall error budget
//!   and are reported here as unattributed. The rates are compared by their difference
//!   with Newcombe's hybrid score interval (built from the two Wilson intervals; well
//!   behaved at rates near zero and small counts, where the plain normal interval is not).
//! * Latency: the margin is a relative increase of a percentile (`p99=20%`), so the
//!   test is a distribution-free confidence interval on the ratio of the canary's to
//!   the stable's percentile: each percentile's interval comes from order statistics
//!   (the ranks `n q +- z sqrt(n q (1 - q))`), read straight off the HdrHistograms, and
//!   the ratio's interval from their ends (Bonferroni over the two sides). Chosen over
//!   Mann-Whitney U (Kayenta's test) because U asks "is one stochastically larger at
//!   all" rather than "is its p99 more than 20% higher": at the sample counts of a
//!   split check it flags shifts too small to matter, it says nothing about the tail the
//!   margin is written for, and the quantile interval needs only the histograms, so
//!   `checker merge` recomputes it exactly.
//! * Rule per metric: FAIL when the whole interval lies above the margin (the canary is
//!   worse by more than the margin at the confidence); INCONCLUSIVE when the canary is
//!   surely worse (the interval lies above zero) and the estimate is beyond the margin
//!   but the interval is not, or when a side has no samples; PASS otherwise. Noise alone
//!   (an interval around zero) never makes a run INCONCLUSIVE. The family-wide confidence is split over the metrics (Bonferroni), so
//!   an identical canary fails with probability at most `(1 - confidence) / 2`.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::Outcome;
use super::figures::{LatencyKind, parse_percentile};
use super::wilson::{wilson, z_for};
use crate::tally::Tally;

/// Default latency margin: the canary's p99 at most 20% above the stable's.
pub const DEFAULT_MAX_LATENCY_INCREASE: &str = "p99=20%";
/// Default error margin: at most half a percentage point more attributed errors.
pub const DEFAULT_MAX_ERROR_INCREASE: f64 = 0.005;

/// How much higher a canary's latency percentile may be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyMargin {
    /// The percentile, in (0, 100].
    pub percentile: f64,
    /// Largest relative increase that passes (0.2 = 20%).
    pub max_increase: f64,
}

/// Parses `p99=20%,p50=10%` (a list of percentile margins).
pub fn parse_latency_margins(s: &str) -> Result<Vec<LatencyMargin>, String> {
    s.split(',')
        .map(|part| {
            let (p, m) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not PERCENTILE=INCREASE such as p99=20%"))?;
            Ok(LatencyMargin {
                percentile: parse_percentile(p.trim())?,
                max_increase: parse_relative(m.trim())?,
            })
        })
        .collect()
}

/// Parses a relative change: `20%` or `0.2` (at least zero).
pub fn parse_relative(s: &str) -> Result<f64, String> {
    let (number, scale) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (s, 1.0),
    };
    match number.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x / scale),
        _ => Err(format!("{s:?} is not a relative change such as 20% or 0.2")),
    }
}

/// Parses a difference of rates in percentage points: `0.5pp` (or a fraction `0.005`).
pub fn parse_points(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let value = match s.strip_suffix("pp") {
        Some(n) => n.trim().parse::<f64>().map(|x| x / 100.0),
        None => s.parse::<f64>(),
    };
    match value {
        Ok(x) if x.is_finite() && (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "{s:?} is not a difference in percentage points such as 0.5pp"
        )),
    }
}

/// What `--compare CANARY=STABLE` and its margins ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRule {
    /// The version judged.
    pub canary: String,
    /// The version it is judged against.
    pub stable: String,
    /// Percentile margins, applied to connect and reply latency.
    pub max_latency_increase: Vec<LatencyMargin>,
    /// Largest increase of the attributed error rate that passes, as a fraction (0.005 = 0.5 points).
    pub max_error_increase: f64,
}

impl CompareRule {
    /// Parses `CANARY=STABLE` with the default margins.
    pub fn parse_pair(s: &str) -> Result<Self, String> {
        let (canary, stable) = s
            .split_once('=')
            .map(|(c, s)| (c.trim(), s.trim()))
            .filter(|(c, s)| !c.is_empty() && !s.is_empty() && c != s)
            .ok_or_else(|| {
                format!("{s:?} is not CANARY=STABLE with two different versions, e.g. two=one")
            })?;
        Ok(Self {
            canary: canary.to_owned(),
            stable: stable.to_owned(),
            max_latency_increase: parse_latency_margins(DEFAULT_MAX_LATENCY_INCREASE)?,
            max_error_increase: DEFAULT_MAX_ERROR_INCREASE,
        })
    }
}

/// A signed interval (differences and relative changes can be negative).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// The lower end.
    pub low: f64,
    /// The upper end.
    pub high: f64,
}

/// The comparison of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    /// `error_rate`, or `pNN_connect` / `pNN_reply`.
    pub metric: String,
    /// `difference` (error rates, in fraction points) or `ratio` (latency: canary / stable - 1).
    pub effect_kind: &'static str,
    /// The canary's value (a rate, or microseconds); `None` without samples.
    pub canary: Option<f64>,
    /// The stable's value.
    pub stable: Option<f64>,
    /// The effect size: the rate difference or the relative latency increase.
    pub effect: Option<f64>,
    /// The effect's interval at the per-metric confidence.
    pub interval: Option<Range>,
    /// The margin the effect is held to.
    pub margin: f64,
    /// FAIL when the whole interval lies above the margin.
    pub outcome: Outcome,
    /// Why, in a few words.
    pub reason: String,
}

/// The comparison of a canary with the stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The canary's name.
    pub canary: String,
    /// The stable's name.
    pub stable: String,
    /// Confidence of each metric's interval (Bonferroni over the metrics).
    pub per_metric_confidence: f64,
    /// Every compared metric: the error rate first, then latency.
    pub metrics: Vec<MetricComparison>,
    /// Failed samples no reply attributes to a version (they count in the error budget only).
    pub unattributed_errors: u64,
    /// FAIL if any metric fails, else INCONCLUSIVE if any is, else PASS.
    pub outcome: Outcome,
}

/// Newcombe's hybrid score interval for `x1/n1 - x2/n2` at the two-sided `z`.
pub fn rate_difference(x1: u64, n1: u64, x2: u64, n2: u64, z: f64) -> Range {
    let (p1, p2) = (share(x1, n1), share(x2, n2));
    let w1 = wilson(x1 as f64, n1 as f64, z);
    let w2 = wilson(x2 as f64, n2 as f64, z);
    let d = p1 - p2;
    Range {
        low: d - ((p1 - w1.low).powi(2) + (w2.high - p2).powi(2)).sqrt(),
        high: d + ((w1.high - p1).powi(2) + (p2 - w2.low).powi(2)).sqrt(),
    }
}

fn share(x: u64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { x as f64 / n as f64 }
}

/// The value of rank `rank` (1-based) in `h`.
fn value_at_rank(h: &Histogram<u64>, rank: u64) -> u64 {
    let mut seen = 0;
    for v in h.iter_recorded() {
        seen += v.count_since_last_iteration();
        if seen >= rank {
            return h.highest_equivalent(v.value_iterated_to());
        }
    }
    h.max()
}

/// The percentile `q` (fraction) of `h` with its distribution-free interval at the
/// two-sided `z`: `(estimate, low, high)` in microseconds; `None` when empty.
pub fn quantile_interval(h: &Histogram<u64>, q: f64, z: f64) -> Option<(f64, f64, f64)> {
    let n = h.len();
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let spread = z * (nf * q * (1.0 - q)).sqrt();
    let clamp = |r: f64| (r.max(1.0).min(nf)) as u64;
    let low = clamp((nf * q - spread).floor());
    let high = clamp((nf * q + spread).ceil() + 1.0);
    let at = |r| value_at_rank(h, r) as f64;
    Some((h.value_at_quantile(q) as f64, at(low), at(high)))
}

/// The relative increase `canary / stable - 1` of percentile `q` with its interval at
/// the two-sided `z` (each side's interval at the Bonferroni-corrected level).
pub fn quantile_ratio(
    canary: &Histogram<u64>,
    stable: &Histogram<u64>,
    q: f64,
    confidence: f64,
) -> Option<(f64, Range)> {
    let z = z_for(1.0 - (1.0 - confidence) / 2.0);
    let (c, c_low, c_high) = quantile_interval(canary, q, z)?;
    let (s, s_low, s_high) = quantile_interval(stable, q, z)?;
    // Histograms record at least 1 µs, so no division by zero.
    let ratio = |a: f64, b: f64| a / b.max(1.0) - 1.0;
    Some((
        ratio(c, s),
        Range {
            low: ratio(c_low, s_high),
            high: ratio(c_high, s_low),
        },
    ))
}

/// The rule on one metric's effect and interval.
fn decide(effect: f64, interval: Range, margin: f64) -> (Outcome, &'static str) {
    if interval.low > margin {
        (Outcome::Fail, "worse than the margin allows")
    } else if interval.low > 0.0 && effect > margin {
        (
            Outcome::Inconclusive,
            "worse, and by more than the margin at a guess, but not surely",
        )
    } else {
        (Outcome::Pass, "within the margin")
    }
}

/// Compares `rule.canary` with `rule.stable` in `tally` at the family-wide `confidence`.
pub fn compare(tally: &Tally, rule: &CompareRule, confidence: f64) -> Comparison {
    let metrics_count = 1 + LatencyKind::ALL.len() * rule.max_latency_increase.len();
    let per_metric_confidence = 1.0 - (1.0 - confidence) / metrics_count as f64;
    let versions = tally.versions();
    let (canary, stable) = (versions.get(&rule.canary), versions.get(&rule.stable));
    let errors_of = |name: &str| tally.version_errors().get(name).copied().unwrap_or(0);
    let (ce, se) = (errors_of(&rule.canary), errors_of(&rule.stable));
    let (cn, sn) = (
        canary.map_or(0, |v| v.count) + ce,
        stable.map_or(0, |v| v.count) + se,
    );
    let no_samples = |who: &str| format!("{who} has no samples");
    let missing = if cn == 0 {
        Some(no_samples(&rule.canary))
    } else if sn == 0 {
        Some(no_samples(&rule.stable))
    } else {
        None
    };

    let mut metrics = Vec::with_capacity(metrics_count);
    let mut error_metric = MetricComparison {
        metric: "error_rate".to_owned(),
        effect_kind: "difference",
        canary: (cn > 0).then(|| share(ce, cn)),
        stable: (sn > 0).then(|| share(se, sn)),
        effect: None,
        interval: None,
        margin: rule.max_error_increase,
        outcome: Outcome::Inconclusive,
        reason: missing.clone().unwrap_or_default(),
    };
    if missing.is_none() {
        let interval = rate_difference(ce, cn, se, sn, z_for(per_metric_confidence));
        let effect = share(ce, cn) - share(se, sn);
        let (outcome, reason) = decide(effect, interval, rule.max_error_increase);
        error_metric.effect = Some(effect);
        error_metric.interval = Some(interval);
        error_metric.outcome = outcome;
        error_metric.reason = reason.to_owned();
    }
    metrics.push(error_metric);

    for margin in &rule.max_latency_increase {
        for kind in LatencyKind::ALL {
            let pick = |v: &crate::tally::VersionTally| match kind {
                LatencyKind::Connect => v.connect_us.clone(),
                LatencyKind::Reply => v.reply_us.clone(),
            };
            let q = margin.percentile / 100.0;
            let (c, s) = (canary.map(pick), stable.map(pick));
            let value = |h: &Option<Histogram<u64>>| {
                h.as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| h.value_at_quantile(q) as f64)
            };
            let ratio = match (&c, &s) {
                (Some(c), Some(s)) => quantile_ratio(c, s, q, per_metric_confidence),
                _ => None,
            };
            let (effect, interval, outcome, reason) = match ratio {
                Some((effect, interval)) => {
                    let (outcome, reason) = decide(effect, interval, margin.max_increase);
                    (Some(effect), Some(interval), outcome, reason.to_owned())
                }
                None => (
                    None,
                    None,
                    Outcome::Inconclusive,
                    missing
                        .clone()
                        .unwrap_or_else(|| "no latency recorded".to_owned()),
                ),
            };
            metrics.push(MetricComparison {
                metric: format!("p{}_{}", margin.percentile, kind.as_str()),
                effect_kind: "ratio",
                canary: value(&c),
                stable: value(&s),
                effect,
                interval,
                margin: margin.max_increase,
                outcome,
                reason,
            });
        }
    }
    let attributed_errors: u64 = tally.version_errors().values().sum();
    let outcome = metrics
        .iter()
        .map(|m| m.outcome)
        .max()
        .unwrap_or(Outcome::Pass);
    Comparison {
        canary: rule.canary.clone(),
        stable: rule.stable.clone(),
        per_metric_confidence,
        metrics,
        unattributed_errors: tally.errors().saturating_sub(attributed_errors),
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{ErrorClass, Sample};
    use crate::tally::Windowing;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, LogNormal};
    use std::time::{Duration, SystemTime};

    fn rule() -> CompareRule {
        CompareRule::parse_pair("two=one").unwrap()
    }

    fn record(t: &mut Tally, id: u64, version: &str, reply_us: u64, malformed: bool) {
        t.record(&Sample {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            started_at: SystemTime::now(),
            offset: Duration::ZERO,
            result: if malformed {
                Err(ErrorClass::MalformedReply)
            } else {
                Ok(version.to_owned())
            },
            connect_us: Some(reply_us / 2 + 1),
            reply_us: (!malformed).then_some(reply_us),
            lag_us: None,
            handshake_us: None,
            reason: None,
            reply_head: malformed.then(|| format!("{version} <line sent>x\\n")),
        });
    }

    /// A run of `n` samples per version: stable latency lognormal around 300 µs; the
    /// canary's scaled by `slower` and shifted by `extra_us`; error rates as given.
    fn run(
        rng: &mut StdRng,
        n: u64,
        slower: f64,
        extra_us: f64,
        stable_errors: f64,
        canary_errors: f64,
    ) -> Tally {
        let latency = LogNormal::new(300f64.ln(), 0.5).unwrap();
        let mut t = Tally::new(Windowing::ById { total: 2 * n });
        for id in 0..n {
            let s = latency.sample(rng);
            record(
                &mut t,
                2 * id,
                "one",
                s as u64 + 1,
                rng.random_bool(stable_errors),
            );
            let c = latency.sample(rng) * slower + extra_us;
            record(
                &mut t,
                2 * id + 1,
                "two",
                c as u64 + 1,
                rng.random_bool(canary_errors),
            );
        }
        t
    }

    fn metric<'a>(c: &'a Comparison, name: &str) -> &'a MetricComparison {
        c.metrics.iter().find(|m| m.metric == name).unwrap()
    }

    #[test]
    fn margins_parse() {
        let m = parse_latency_margins("p99=20%, p50=0.1").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].percentile, m[0].max_increase), (99.0, 0.2));
        assert!((m[1].max_increase - 0.1).abs() < 1e-12);
        assert!(parse_latency_margins("p99").is_err());
        assert!(parse_latency_margins("p99=-5%").is_err());
        assert_eq!(parse_points("0.5pp"), Ok(0.005));
        assert_eq!(parse_points("0.01"), Ok(0.01));
        assert!(parse_points("5%").is_err());
        assert!(CompareRule::parse_pair("two=two").is_err());
        assert!(CompareRule::parse_pair("two").is_err());
    }

    #[test]
    fn newcombe_matches_the_published_example() {
        // Newcombe (1998), example (a): 56/70 against 48/80 gives 0.0524 .. 0.3339 at 95%.
        let r = rate_difference(56, 70, 48, 80, z_for(0.95));
        assert!((r.low - 0.0524).abs() < 5e-4, "{r:?}");
        assert!((r.high - 0.3339).abs() < 5e-4, "{r:?}");
    }

    #[test]
    fn a_canary_2ms_slower_at_p99_fails_and_an_identical_one_passes() {
        let mut rng = StdRng::seed_from_u64(7);
        let slow = compare(&run(&mut rng, 2000, 1.0, 2000.0, 0.0, 0.0), &rule(), 0.99);
        assert_eq!(
            metric(&slow, "p99_reply").outcome,
            Outcome::Fail,
            "{slow:?}"
        );
        assert_eq!(slow.outcome, Outcome::Fail);
        let same = compare(&run(&mut rng, 2000, 1.0, 0.0, 0.0, 0.0), &rule(), 0.99);
        assert_eq!(same.outcome, Outcome::Pass, "{same:?}");
        let m = metric(&same, "p99_reply");
        let i = m.interval.unwrap();
        assert!(i.low < m.effect.unwrap() && m.effect.unwrap() < i.high);
    }

    #[test]
    fn attributed_errors_are_compared_and_the_rest_reported_apart() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut t = run(&mut rng, 3000, 1.0, 0.0, 0.001, 0.05);
        t.record(&Sample {
            id: 0,
            addr: "127.0.0.1:1".parse().unwrap(),
            started_at: SystemTime::now(),
            offset: Duration::ZERO,
            result: Err(ErrorClass::Refused),
            connect_us: None,
            reply_us: None,
            lag_us: None,
            handshake_us: None,
            reason: None,
            reply_head: None,
        });
        let c = compare(&t, &rule(), 0.99);
        let e = metric(&c, "error_rate");
        assert_eq!(e.outcome, Outcome::Fail, "{e:?}");
        assert!(e.effect.unwrap() > 0.04);
        assert_eq!(c.unattributed_errors, 1);
    }

    #[test]
    fn a_missing_version_is_inconclusive() {
        let mut t = Tally::new(Windowing::ById { total: 10 });
        record(&mut t, 0, "one", 100, false);
        let c = compare(&t, &rule(), 0.99);
        assert_eq!(c.outcome, Outcome::Inconclusive);
        assert_eq!(c.metrics[0].reason, "two has no samples");
    }

    /// Calibration by seeded Monte Carlo: an identical canary, and canaries exactly at
    /// the margins, fail at most (1 - confidence) / 2 of the time (with slack for the
    /// simulation's own noise); a canary well past the margins fails nearly always.
    #[test]
    fn the_comparison_is_calibrated_by_monte_carlo() {
        let mut rng = StdRng::seed_from_u64(2026);
        let trials = 100;
        let fail_rate = |rng: &mut StdRng, n, slower, stable_e, canary_e| {
            let mut fails = [0u32; 3];
            for _ in 0..trials {
                let c = compare(&run(rng, n, slower, 0.0, stable_e, canary_e), &rule(), 0.99);
                for (i, m) in ["error_rate", "p99_connect", "p99_reply"]
                    .iter()
                    .enumerate()
                {
                    fails[i] += u32::from(metric(&c, m).outcome == Outcome::Fail);
                }
            }
            let rates = fails.map(|f| f64::from(f) / f64::from(trials));
            eprintln!(
                "n={n} slower={slower} errors {stable_e}->{canary_e}: FAIL rates (errors, p99 connect, p99 reply) {rates:?}"
            );
            rates
        };
        // Identical: nothing fails beyond the 0.5% one-sided level (plus noise).
        let same = fail_rate(&mut rng, 1000, 1.0, 0.01, 0.01);
        assert!(same.iter().all(|&r| r <= 0.02), "identical: {same:?}");
        // Exactly at the margins (p99 +20%, errors +0.5 points).
        let edge = fail_rate(&mut rng, 1000, 1.2, 0.01, 0.015);
        assert!(edge.iter().all(|&r| r <= 0.03), "at the margin: {edge:?}");
        // Far beyond (latency tripled, errors +5 points): detected nearly always. (A p99
        // rests on the last 1% of the samples: the interval needs a few thousand.)
        let far = fail_rate(&mut rng, 3000, 3.0, 0.01, 0.06);
        assert!(far.iter().all(|&r| r >= 0.95), "far beyond: {far:?}");
    }
}
