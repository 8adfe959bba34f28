//! Canary against stable, from the same run: is the canary's error rate or latency
//! worse than the stable's by more than a margin? The health gate's verdict per metric
//! and overall, for a fixed sample count; [`super::compare_sequence`] judges the same
//! metrics with confidence sequences while sampling goes on.
//!
//! * Errors: only errors a reply attributes to a version can be compared (a reply with
//!   the version's prefix but a wrong or truncated echo). A connection that fails
//!   before any reply names no version at L4: those stay in the overall error budget
//!   and are reported here as unattributed. The rates are compared by their difference
//!   with Newcombe's hybrid score interval (Newcombe 1998, method 10: built from the two
//!   Wilson intervals; well behaved at rates near zero and small counts, where the plain
//!   normal interval is not).
//! * Latency: the margin is a relative change of a percentile (`p99=20%`), so the
//!   effect is the ratio of the canary's to the stable's percentile, minus one. Each
//!   percentile's interval is the exact distribution-free order-statistic interval
//!   ([`super::quantile::exact_ranks`]), read straight off the HdrHistograms, and the
//!   ratio's interval comes from their ends (Bonferroni over the two arms: each arm's
//!   interval at half the metric's error). Chosen over Mann-Whitney U (Kayenta's test)
//!   because U asks "is one stochastically larger at all" rather than "is its p99 more
//!   than 20% higher": at the sample counts of a split check it flags shifts too small
//!   to matter, it says nothing about the tail the margin is written for, and the
//!   quantile interval needs only the histograms, so `checker merge` recomputes it exactly.
//! * The rule per metric ([`super::margin`]): PASS only when the whole interval lies
//!   within the margin, FAIL when it lies wholly beyond it, otherwise INCONCLUSIVE with
//!   about how many more connections would decide it. Each metric has a [`Direction`]
//!   (`increase` by default: only worse is bad).
//! * Overall: the worst verdict among the metrics that count: the critical ones (every
//!   metric when none is named critical), and the others too when the rule is strict.
//!   A non-critical metric's FAIL is reported without failing the gate.
//! * Confidence: the family-wide error `1 - confidence` is split evenly over the
//!   metrics (Bonferroni), and each metric's interval is two-sided at its share. So
//!   with probability at least `confidence` no interval misses its true effect, and
//!   then no verdict is wrong: an identical canary FAILs, and a canary beyond a margin
//!   PASSes, with probability at most `1 - confidence` over all metrics together.

use std::cell::RefCell;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::Outcome;
use super::figures::{LatencyKind, parse_percentile};
use super::margin::{self, Scale};
pub use super::margin::{Direction, Finding, Range};
use super::quantile::{self, OrderRanks};
use super::wilson::{wilson, z_for};
use super::{planner, rate_sequence};
use crate::tally::Tally;

/// Default latency margin: the canary's p99 at most 20% above the stable's.
pub const DEFAULT_MAX_LATENCY_INCREASE: &str = "p99=20%";
/// Default error margin: at most half a percentage point more attributed errors.
pub const DEFAULT_MAX_ERROR_INCREASE: f64 = 0.005;
/// The name of the error-rate metric.
pub const ERROR_RATE: &str = "error_rate";

/// How much a canary's latency percentile may change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyMargin {
    /// The percentile, in (0, 100].
    pub percentile: f64,
    /// Largest relative change that passes (0.2 = 20%).
    pub max_increase: f64,
    /// Which way a change is bad (`increase` unless said otherwise).
    #[serde(default, skip_serializing_if = "Direction::is_increase")]
    pub direction: Direction,
}

/// Parses `p99=20%,p50=10%` (a list of percentile margins, each an increase).
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
                direction: Direction::Increase,
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

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whether `critical` (`p99_reply`, or a percentile `p99`) names the metric `metric`.
fn names(critical: &str, metric: &str) -> bool {
    critical == metric
        || metric
            .strip_prefix(critical)
            .is_some_and(|rest| rest.starts_with('_'))
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
    /// Largest change of the attributed error rate that passes, as a fraction (0.005 = 0.5 points).
    pub max_error_increase: f64,
    /// Which way a change of the error rate is bad (`increase` unless said otherwise).
    #[serde(default, skip_serializing_if = "Direction::is_increase")]
    pub error_direction: Direction,
    /// The critical metrics, by name (`error_rate`, `p99_reply`) or by percentile
    /// (`p99`: connect and reply); empty: every metric is critical.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical: Vec<String>,
    /// Whether a non-critical metric's FAIL fails the gate too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict: bool,
    /// Whether the TLS handshake latency is compared too (the run shakes hands).
    #[serde(default, skip_serializing_if = "is_false")]
    pub handshake: bool,
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
            error_direction: Direction::Increase,
            critical: Vec::new(),
            strict: false,
            handshake: false,
        })
    }

    /// Whether the metric `name` is critical (every one when none is named).
    pub fn is_critical(&self, name: &str) -> bool {
        self.critical.is_empty() || self.critical.iter().any(|c| names(c, name))
    }

    /// Checks that every critical name matches a compared metric.
    pub fn validate(&self) -> Result<(), String> {
        let metrics: Vec<String> = self.metrics().into_iter().map(|m| m.name).collect();
        for c in &self.critical {
            if !metrics.iter().any(|m| names(c, m)) {
                return Err(format!(
                    "{c:?} is not a compared metric: use one of {} (or a percentile such as p99 for both)",
                    metrics.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Sets which way a change of `metric` is bad: `error_rate`, or a percentile of the
    /// latency margins (`p99`: its connect and reply latency together, which share a margin).
    pub fn set_direction(&mut self, metric: &str, direction: Direction) -> Result<(), String> {
        if metric == ERROR_RATE {
            self.error_direction = direction;
            return Ok(());
        }
        let percentiles: Vec<String> = self
            .max_latency_increase
            .iter()
            .map(|m| format!("p{}", m.percentile))
            .collect();
        let unknown = || {
            format!(
                "{metric:?} is not a compared metric: use {ERROR_RATE} or a percentile with a latency margin ({})",
                percentiles.join(", ")
            )
        };
        // `p99_reply` names a metric, but its direction is its percentile's.
        let percentile = metric
            .strip_suffix("_reply")
            .or_else(|| metric.strip_suffix("_connect"))
            .map_or(Ok(metric), |p| {
                Err(format!(
                    "{metric:?}: a direction applies to a percentile's connect and reply latency together, give {p}"
                ))
            })?;
        let p = parse_percentile(percentile).map_err(|_| unknown())?;
        let margin = self
            .max_latency_increase
            .iter_mut()
            .find(|m| m.percentile == p)
            .ok_or_else(unknown)?;
        margin.direction = direction;
        Ok(())
    }

    /// Every metric the rule compares: the error rate first, then connect and reply
    /// latency for each percentile margin.
    pub fn metrics(&self) -> Vec<MetricSpec> {
        let mut out = vec![MetricSpec {
            name: ERROR_RATE.to_owned(),
            measure: Measure::ErrorRate,
            margin: self.max_error_increase,
            direction: self.error_direction,
            critical: self.is_critical(ERROR_RATE),
        }];
        let kinds: &[LatencyKind] = if self.handshake {
            &[
                LatencyKind::Connect,
                LatencyKind::Handshake,
                LatencyKind::Reply,
            ]
        } else {
            &LatencyKind::ALL
        };
        for m in &self.max_latency_increase {
            for &kind in kinds {
                let name = format!("p{}_{}", m.percentile, kind.as_str());
                out.push(MetricSpec {
                    critical: self.is_critical(&name),
                    name,
                    measure: Measure::Latency {
                        kind,
                        quantile: m.percentile / 100.0,
                    },
                    margin: m.max_increase,
                    direction: m.direction,
                });
            }
        }
        out
    }
}

/// What a metric measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// The attributed error rate; the effect is the difference canary minus stable.
    ErrorRate,
    /// A latency quantile; the effect is the ratio canary / stable minus one.
    Latency {
        /// Connect or reply.
        kind: LatencyKind,
        /// The quantile, in (0, 1].
        quantile: f64,
    },
}

/// One metric of a comparison, with its margin.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// `error_rate`, or `pNN_connect` / `pNN_reply`.
    pub name: String,
    /// What it measures.
    pub measure: Measure,
    /// The margin the effect is held to.
    pub margin: f64,
    /// Which way a change is bad.
    pub direction: Direction,
    /// Whether its FAIL fails the gate without `strict`.
    pub critical: bool,
}

/// How the intervals were made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Confidence intervals for the samples taken (a fixed count, or merged reports).
    #[default]
    Fixed,
    /// Time-uniform confidence sequences, valid at every look of a sequential run.
    Sequential,
}

/// The comparison of one metric: the plain data of its verdict and why.
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
    /// The effect size: the rate difference or the relative latency change (the estimate).
    pub effect: Option<f64>,
    /// The effect's interval at the per-metric confidence.
    pub interval: Option<Range>,
    /// The margin the effect is held to.
    pub margin: f64,
    /// Which way a change is bad.
    pub direction: Direction,
    /// Whether its FAIL fails the gate without `strict`.
    pub critical: bool,
    /// PASS within the margin, FAIL wholly beyond it, else INCONCLUSIVE.
    pub outcome: Outcome,
    /// Why, as data (the report words it).
    pub finding: Finding,
    /// For INCONCLUSIVE: about how many more connections (all versions) would decide
    /// it if the estimate stayed; `None` when none would or too many.
    pub more_samples: Option<u64>,
}

impl MetricComparison {
    /// How the interval shrinks with more samples.
    fn scale(&self) -> Scale {
        if self.effect_kind == "ratio" {
            Scale::Log
        } else {
            Scale::Linear
        }
    }

    /// The growth of the sample count that would likely decide it (see [`margin::growth_to_decide`]).
    pub fn growth_to_decide(&self) -> Option<f64> {
        margin::growth_to_decide(
            self.effect?,
            self.interval?,
            self.margin,
            self.direction,
            self.scale(),
        )
    }
}

/// The comparison of a canary with the stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The canary's name.
    pub canary: String,
    /// The stable's name.
    pub stable: String,
    /// How the intervals were made.
    pub method: Method,
    /// Confidence of each metric's interval (Bonferroni over the metrics).
    pub per_metric_confidence: f64,
    /// Every compared metric: the error rate first, then latency.
    pub metrics: Vec<MetricComparison>,
    /// Failed samples no reply attributes to a version (they count in the error budget only).
    pub unattributed_errors: u64,
    /// Whether non-critical metrics count too.
    pub strict: bool,
    /// The worst verdict among the metrics that count (critical ones, or all when strict).
    pub outcome: Outcome,
}

/// One version's data for the comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arm<'a> {
    /// Samples it answered.
    pub answered: u64,
    /// Replies with its prefix but a wrong or truncated echo.
    pub errors: u64,
    /// Its connect latency.
    pub connect_us: Option<&'a Histogram<u64>>,
    /// Its reply latency.
    pub reply_us: Option<&'a Histogram<u64>>,
    /// Its TLS handshake latency.
    pub handshake_us: Option<&'a Histogram<u64>>,
}

impl<'a> Arm<'a> {
    /// The samples its error rate is over.
    pub fn trials(&self) -> u64 {
        self.answered.saturating_add(self.errors)
    }

    /// Its latency of `kind`, when any was recorded.
    pub fn latency(&self, kind: LatencyKind) -> Option<&'a Histogram<u64>> {
        match kind {
            LatencyKind::Connect => self.connect_us,
            LatencyKind::Reply => self.reply_us,
            LatencyKind::Handshake => self.handshake_us,
        }
        .filter(|h| !h.is_empty())
    }
}

/// The two versions compared, and the run's size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arms<'a> {
    /// The canary.
    pub canary: Arm<'a>,
    /// The stable.
    pub stable: Arm<'a>,
    /// Every finished sample of the run (all versions, errors included): the unit of
    /// "more connections".
    pub attempted: u64,
    /// Failed samples no reply attributes to a version.
    pub unattributed_errors: u64,
}

impl<'a> Arms<'a> {
    /// The arms `rule` names, read from `tally`.
    pub fn of(tally: &'a Tally, rule: &CompareRule) -> Self {
        let arm = |name: &str| {
            let v = tally.versions().get(name);
            Arm {
                answered: v.map_or(0, |v| v.count),
                errors: tally.version_errors().get(name).copied().unwrap_or(0),
                connect_us: v.map(|v| &v.connect_us),
                reply_us: v.map(|v| &v.reply_us),
                handshake_us: v.map(|v| &v.handshake_us),
            }
        };
        let attributed_errors: u64 = tally.version_errors().values().sum();
        Self {
            canary: arm(&rule.canary),
            stable: arm(&rule.stable),
            attempted: tally.attempted(),
            unattributed_errors: tally.errors().saturating_sub(attributed_errors),
        }
    }
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

/// The per-metric confidence for `metrics` metrics at the family-wide `confidence`.
pub fn per_metric_confidence(confidence: f64, metrics: usize) -> f64 {
    1.0 - (1.0 - confidence) / metrics.max(1) as f64
}

/// Order-statistic ranks by one method, each computed once per (count, quantile,
/// error) within one judgement: an arm's connect and reply latency share their count.
#[derive(Debug)]
pub(crate) struct Ranker {
    method: Method,
    known: RefCell<Vec<(RankKey, OrderRanks)>>,
}

/// A sample count, a quantile's and an error's bits.
type RankKey = (u64, u64, u64);

impl Ranker {
    /// A ranker for `method`.
    pub(crate) fn new(method: Method) -> Self {
        Self {
            method,
            known: RefCell::new(Vec::new()),
        }
    }

    /// The ranks for the `q`-quantile of `n` samples, the interval at the error `alpha`.
    pub(crate) fn ranks(&self, n: u64, q: f64, alpha: f64) -> OrderRanks {
        let key = (n, q.to_bits(), alpha.to_bits());
        if let Some((_, r)) = self.known.borrow().iter().find(|(k, _)| *k == key) {
            return *r;
        }
        let r = match self.method {
            // Two-sided at `alpha`: each end at half of it.
            Method::Fixed => quantile::exact_ranks(n, q, alpha / 2.0),
            Method::Sequential => quantile::sequence_ranks(n, q, alpha),
        };
        self.known.borrow_mut().push((key, r));
        r
    }
}

/// The effect's interval of one metric at the metric's error `alpha`, by the ranker's
/// method; `None` when a side has no samples.
pub(crate) fn interval(
    spec: &MetricSpec,
    arms: &Arms,
    alpha: f64,
    ranker: &Ranker,
) -> Option<Range> {
    let (c, s) = (&arms.canary, &arms.stable);
    match spec.measure {
        Measure::ErrorRate => {
            let (cn, sn) = (c.trials(), s.trials());
            if cn == 0 || sn == 0 {
                return None;
            }
            Some(match ranker.method {
                Method::Fixed => rate_difference(c.errors, cn, s.errors, sn, z_for(1.0 - alpha)),
                Method::Sequential => {
                    rate_sequence::rate_difference(c.errors, cn, s.errors, sn, alpha)
                }
            })
        }
        Measure::Latency { kind, quantile } => {
            // Each arm at half the metric's error.
            let arm = |h: &Histogram<u64>| {
                quantile::interval(h, ranker.ranks(h.len(), quantile, alpha / 2.0))
            };
            Some(quantile::ratio_interval(
                arm(c.latency(kind)?)?,
                arm(s.latency(kind)?)?,
            ))
        }
    }
}

/// The effect of one metric (the estimate) with its [`interval`]; `None` when a side
/// has no samples.
fn effect(spec: &MetricSpec, arms: &Arms, alpha: f64, ranker: &Ranker) -> Option<(f64, Range)> {
    let (c, s) = (&arms.canary, &arms.stable);
    let estimate = match spec.measure {
        Measure::ErrorRate => share(c.errors, c.trials()) - share(s.errors, s.trials()),
        Measure::Latency { kind, quantile } => {
            let value = |h: &Histogram<u64>| h.value_at_quantile(quantile) as f64;
            quantile::change(value(c.latency(kind)?), value(s.latency(kind)?))
        }
    };
    Some((estimate, interval(spec, arms, alpha, ranker)?))
}

/// Judges one metric at its error `alpha` by the ranker's method.
pub(crate) fn judge_metric(
    spec: &MetricSpec,
    arms: &Arms,
    alpha: f64,
    ranker: &Ranker,
) -> MetricComparison {
    let (canary, stable, effect_kind) = match spec.measure {
        Measure::ErrorRate => {
            let rate = |a: &Arm| (a.trials() > 0).then(|| share(a.errors, a.trials()));
            (rate(&arms.canary), rate(&arms.stable), "difference")
        }
        Measure::Latency { kind, quantile } => {
            let value = |a: &Arm| {
                a.latency(kind)
                    .map(|h| h.value_at_quantile(quantile) as f64)
            };
            (value(&arms.canary), value(&arms.stable), "ratio")
        }
    };
    let judged = effect(spec, arms, alpha, ranker);
    let finding = judged.map_or(Finding::NoSamples, |(e, i)| {
        margin::judge(e, i, spec.margin, spec.direction)
    });
    let mut m = MetricComparison {
        metric: spec.name.clone(),
        effect_kind,
        canary,
        stable,
        effect: judged.map(|(e, _)| e),
        interval: judged.map(|(_, i)| i),
        margin: spec.margin,
        direction: spec.direction,
        critical: spec.critical,
        outcome: finding.outcome(),
        finding,
        more_samples: None,
    };
    m.more_samples = m
        .growth_to_decide()
        .map(|g| (arms.attempted as f64 * (g - 1.0)).ceil())
        .filter(|&more| more >= 1.0 && more <= planner::MAX_PLANNED_SAMPLES as f64)
        .map(|more| more as u64);
    m
}

/// Judges every metric of `rule` on `arms` at the family-wide `confidence` by `method`.
pub fn compare_arms(
    arms: &Arms,
    rule: &CompareRule,
    confidence: f64,
    method: Method,
) -> Comparison {
    let specs = rule.metrics();
    let per_metric_confidence = per_metric_confidence(confidence, specs.len());
    let alpha = 1.0 - per_metric_confidence;
    let ranker = Ranker::new(method);
    let metrics: Vec<MetricComparison> = specs
        .iter()
        .map(|spec| judge_metric(spec, arms, alpha, &ranker))
        .collect();
    let outcome = margin::overall(metrics.iter().map(|m| (m.outcome, m.critical)), rule.strict);
    Comparison {
        canary: rule.canary.clone(),
        stable: rule.stable.clone(),
        method,
        per_metric_confidence,
        metrics,
        unattributed_errors: arms.unattributed_errors,
        strict: rule.strict,
        outcome,
    }
}

/// Compares `rule.canary` with `rule.stable` in `tally` at the family-wide
/// `confidence`, with fixed-sample intervals (a run of a fixed count, or merged reports).
pub fn compare(tally: &Tally, rule: &CompareRule, confidence: f64) -> Comparison {
    compare_arms(&Arms::of(tally, rule), rule, confidence, Method::Fixed)
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
        assert_eq!(m[0].direction, Direction::Increase);
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
    fn the_rule_serialises_as_before_unless_directions_or_critical_metrics_are_set() {
        let mut r = rule();
        let plain = serde_json::to_value(&r).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({
                "canary": "two", "stable": "one", "max_error_increase": 0.005,
                "max_latency_increase": [{"percentile": 99.0, "max_increase": 0.2}]
            })
        );
        r.critical = vec!["p99".to_owned()];
        r.strict = true;
        r.error_direction = Direction::Either;
        r.max_latency_increase[0].direction = Direction::Decrease;
        let back: CompareRule = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let old: CompareRule = serde_json::from_value(plain).unwrap();
        assert_eq!(old, rule());
    }

    #[test]
    fn critical_names_match_metrics_or_percentiles() {
        let mut r = rule();
        assert!(r.metrics().iter().all(|m| m.critical));
        r.critical = vec!["p99".to_owned()];
        let critical: Vec<String> = r
            .metrics()
            .into_iter()
            .filter(|m| m.critical)
            .map(|m| m.name)
            .collect();
        assert_eq!(critical, ["p99_connect", "p99_reply"]);
        assert!(r.validate().is_ok());
        r.critical = vec!["error_rate".to_owned(), "p99_reply".to_owned()];
        assert!(r.validate().is_ok());
        assert!(!r.is_critical("p99_connect"));
        r.critical = vec!["p9".to_owned()];
        assert!(r.validate().is_err());
        r.critical = vec!["p50".to_owned()];
        assert!(r.validate().unwrap_err().contains("p99_reply"));
    }

    #[test]
    fn directions_are_set_per_percentile_or_for_the_error_rate() {
        let mut r = rule();
        r.max_latency_increase = parse_latency_margins("p50=10%,p99=20%").unwrap();
        r.set_direction("error_rate", Direction::Either).unwrap();
        r.set_direction("p99", Direction::Decrease).unwrap();
        assert_eq!(r.error_direction, Direction::Either);
        let directions: Vec<(String, Direction)> = r
            .metrics()
            .into_iter()
            .map(|m| (m.name, m.direction))
            .collect();
        assert_eq!(
            directions[1],
            ("p50_connect".to_owned(), Direction::Increase)
        );
        assert_eq!(
            directions[3],
            ("p99_connect".to_owned(), Direction::Decrease)
        );
        assert_eq!(directions[4], ("p99_reply".to_owned(), Direction::Decrease));
        let e = r.set_direction("p90", Direction::Either).unwrap_err();
        assert!(e.contains("p50, p99"), "{e}");
        let e = r.set_direction("p99_reply", Direction::Either).unwrap_err();
        assert!(e.contains("give p99"), "{e}");
        assert!(r.set_direction("latency", Direction::Either).is_err());
    }

    #[test]
    fn newcombe_matches_the_published_example() {
        // Newcombe (1998), example (a): 56/70 against 48/80 gives 0.0524 .. 0.3339 at 95%.
        let r = rate_difference(56, 70, 48, 80, z_for(0.95));
        assert!((r.low - 0.0524).abs() < 5e-4, "{r:?}");
        assert!((r.high - 0.3339).abs() < 5e-4, "{r:?}");
    }

    #[test]
    fn a_canary_2ms_slower_at_p99_fails_and_an_identical_one_is_not_failed() {
        let mut rng = StdRng::seed_from_u64(7);
        let slow = compare(&run(&mut rng, 2000, 1.0, 2000.0, 0.0, 0.0), &rule(), 0.99);
        assert_eq!(
            metric(&slow, "p99_reply").outcome,
            Outcome::Fail,
            "{slow:?}"
        );
        assert_eq!(slow.outcome, Outcome::Fail);
        // 2,000 each cannot prove a p99 within 20%: not proven, with how many more.
        let same = compare(&run(&mut rng, 2000, 1.0, 0.0, 0.0, 0.0), &rule(), 0.99);
        assert_eq!(same.outcome, Outcome::Inconclusive, "{same:?}");
        let m = metric(&same, "p99_reply");
        assert_eq!(m.finding, Finding::NotProvenWithin, "{m:?}");
        let i = m.interval.unwrap();
        assert!(i.low < m.effect.unwrap() && m.effect.unwrap() < i.high);
        let more = m.more_samples.unwrap();
        assert!((4_000..60_000).contains(&more), "{m:?}");
        // Enough samples prove it.
        let same = compare(&run(&mut rng, 20_000, 1.0, 0.0, 0.0, 0.0), &rule(), 0.99);
        assert_eq!(same.outcome, Outcome::Pass, "{same:?}");
    }

    #[test]
    fn the_issue_example_is_not_a_pass() {
        // Stable about 2 ms, canary about 8 ms, 2,000 samples, p99 margin 50%: the
        // canary is slower by far more than the margin, so it must not PASS.
        let mut rng = StdRng::seed_from_u64(21);
        let mut r = rule();
        r.max_latency_increase = parse_latency_margins("p99=50%").unwrap();
        let latency = LogNormal::new(2000f64.ln(), 0.6).unwrap();
        let mut t = Tally::new(Windowing::ById { total: 2000 });
        for id in 0..1000 {
            record(
                &mut t,
                2 * id,
                "one",
                latency.sample(&mut rng) as u64 + 1,
                false,
            );
            let slow = latency.sample(&mut rng) * 4.0;
            record(&mut t, 2 * id + 1, "two", slow as u64 + 1, false);
        }
        let c = compare(&t, &r, 0.99);
        let m = metric(&c, "p99_reply");
        assert!(m.effect.unwrap() > 0.5, "{m:?}");
        assert_ne!(m.outcome, Outcome::Pass, "{m:?}");
        assert_ne!(c.outcome, Outcome::Pass);
    }

    #[test]
    fn non_critical_failures_only_fail_when_strict() {
        let mut rng = StdRng::seed_from_u64(5);
        let t = run(&mut rng, 3000, 1.0, 0.0, 0.001, 0.08);
        let mut r = rule();
        r.max_latency_increase = parse_latency_margins("p50=50%").unwrap();
        let all = compare(&t, &r, 0.99);
        assert_eq!(metric(&all, "error_rate").outcome, Outcome::Fail);
        assert_eq!(all.outcome, Outcome::Fail);
        r.critical = vec!["p50".to_owned()];
        let lenient = compare(&t, &r, 0.99);
        assert_eq!(metric(&lenient, "error_rate").outcome, Outcome::Fail);
        assert!(!metric(&lenient, "error_rate").critical);
        assert_eq!(lenient.outcome, Outcome::Pass, "{lenient:#?}");
        r.strict = true;
        assert_eq!(compare(&t, &r, 0.99).outcome, Outcome::Fail);
    }

    #[test]
    fn a_faster_canary_fails_only_where_a_decrease_is_bad() {
        let mut rng = StdRng::seed_from_u64(9);
        let t = run(&mut rng, 3000, 0.5, 0.0, 0.0, 0.0);
        let mut r = rule();
        r.max_latency_increase = parse_latency_margins("p50=20%").unwrap();
        let up = compare(&t, &r, 0.99);
        assert_eq!(metric(&up, "p50_reply").outcome, Outcome::Pass);
        for direction in [Direction::Decrease, Direction::Either] {
            r.max_latency_increase[0].direction = direction;
            let c = compare(&t, &r, 0.99);
            assert_eq!(
                metric(&c, "p50_reply").outcome,
                Outcome::Fail,
                "{direction:?}"
            );
        }
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
        assert_eq!(e.finding, Finding::Beyond);
        assert!(e.effect.unwrap() > 0.04);
        assert_eq!(c.unattributed_errors, 1);
    }

    #[test]
    fn a_missing_version_is_inconclusive() {
        let mut t = Tally::new(Windowing::ById { total: 10 });
        record(&mut t, 0, "one", 100, false);
        let c = compare(&t, &rule(), 0.99);
        assert_eq!(c.outcome, Outcome::Inconclusive);
        assert_eq!(c.metrics[0].finding, Finding::NoSamples);
        assert_eq!(
            (c.metrics[0].canary, c.metrics[0].stable),
            (None, Some(0.0))
        );
        assert_eq!(c.metrics[0].more_samples, None);
    }

    /// Calibration by seeded Monte Carlo: an identical canary, and canaries exactly at
    /// the margins, fail at most (1 - confidence) / 2 of the time (with slack for the
    /// simulation's own noise); a canary well past the margins fails nearly always.
    /// (checker-core/tests/health_calibration.rs does this at length, sequential too.)
    #[test]
    fn the_comparison_is_calibrated_by_monte_carlo() {
        let mut rng = StdRng::seed_from_u64(2026);
        let trials = 100;
        let rates = |rng: &mut StdRng, n, slower, stable_e, canary_e| {
            let (mut fails, mut passes) = ([0u32; 3], [0u32; 3]);
            for _ in 0..trials {
                let c = compare(&run(rng, n, slower, 0.0, stable_e, canary_e), &rule(), 0.99);
                for (i, m) in ["error_rate", "p99_connect", "p99_reply"]
                    .iter()
                    .enumerate()
                {
                    fails[i] += u32::from(metric(&c, m).outcome == Outcome::Fail);
                    passes[i] += u32::from(metric(&c, m).outcome == Outcome::Pass);
                }
            }
            let rate = |x: [u32; 3]| x.map(|f| f64::from(f) / f64::from(trials));
            eprintln!(
                "n={n} slower={slower} errors {stable_e}->{canary_e}: FAIL rates (errors, p99 connect, p99 reply) {:?}, PASS rates {:?}",
                rate(fails),
                rate(passes)
            );
            (rate(fails), rate(passes))
        };
        // Identical: nothing fails beyond the 0.5% one-sided level (plus noise).
        let (same, _) = rates(&mut rng, 1000, 1.0, 0.01, 0.01);
        assert!(same.iter().all(|&r| r <= 0.02), "identical: {same:?}");
        // Exactly at the margins (p99 +20%, errors +0.5 points): rarely FAILed, never
        // PASSed beyond the other one-sided level.
        let (fail, pass) = rates(&mut rng, 1000, 1.2, 0.01, 0.015);
        assert!(fail.iter().all(|&r| r <= 0.03), "at the margin: {fail:?}");
        assert!(pass.iter().all(|&r| r <= 0.03), "at the margin: {pass:?}");
        // Far beyond (latency tripled, errors +5 points): detected nearly always. (A p99
        // rests on the last 1% of the samples: the interval needs a few thousand.)
        let (far, _) = rates(&mut rng, 3000, 3.0, 0.01, 0.06);
        assert!(far.iter().all(|&r| r >= 0.95), "far beyond: {far:?}");
    }

    #[test]
    fn with_tls_the_handshake_percentiles_are_compared_too() {
        let mut rule = CompareRule::parse_pair("two=one").unwrap();
        let names = |r: &CompareRule| r.metrics().into_iter().map(|m| m.name).collect::<Vec<_>>();
        assert!(!names(&rule).iter().any(|n| n.ends_with("_handshake")));
        rule.handshake = true;
        let with = names(&rule);
        assert!(with.iter().any(|n| n == "p99_handshake"), "{with:?}");
        // A canary whose handshakes take twice as long fails that metric alone.
        let mut t = Tally::new(Windowing::ById { total: 4000 });
        for id in 0..4000 {
            let (version, handshake) = if id % 2 == 0 {
                ("one", 1_000)
            } else {
                ("two", 2_000)
            };
            t.record(&Sample {
                id,
                addr: "127.0.0.1:1".parse().unwrap(),
                started_at: SystemTime::UNIX_EPOCH,
                offset: Duration::ZERO,
                result: Ok(version.to_owned()),
                connect_us: Some(100 + id % 50),
                handshake_us: Some(handshake + id % 100),
                reply_us: Some(500 + id % 100),
                lag_us: None,
                reply_head: None,
                reason: None,
            });
        }
        let compared = compare(&t, &rule, 0.99);
        let outcome = |name: &str| {
            compared
                .metrics
                .iter()
                .find(|m| m.metric == name)
                .map(|m| m.outcome)
        };
        assert_eq!(
            outcome("p99_handshake"),
            Some(Outcome::Fail),
            "{compared:#?}"
        );
        assert_eq!(outcome("p99_reply"), Some(Outcome::Pass), "{compared:#?}");
    }
}
