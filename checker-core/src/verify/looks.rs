//! The looks of a sequential run: look at the evidence after every batch and stop
//! sampling as soon as [`crate::verdict::sequential`] (the anytime-valid math) decides
//! every version and, with `--compare`, [`crate::verdict::compare_sequence`] decides
//! the health gate: every metric that counts PASSes, or one FAILs.

use std::sync::Mutex;

use serde::Serialize;

use crate::expect::Expectation;
use crate::sync::lock;
use crate::tally::Tally;
use crate::verdict::compare::CompareRule;
use crate::verdict::sequential::{self, DEFAULT_BATCH, MAX_SAMPLES_FACTOR, METHOD, REFERENCE};
use crate::verdict::{Outcome, Plan, Settings, compare_plan, compare_sequence};

/// How a sequential run samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequentialConfig {
    /// Finished samples between two looks at the evidence.
    pub batch: u64,
    /// The most samples before stopping INCONCLUSIVE; `None` = [`default_max_samples`].
    pub max_samples: Option<u64>,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            batch: DEFAULT_BATCH,
            max_samples: None,
        }
    }
}

/// The default cap of a sequential run: three times the split's fixed `plan`, or, with a
/// comparison `compare`, the larger of that and the health gate's cap
/// ([`compare_plan::sequential_cap`]: twice the connections it needs under typical
/// latency and error rates to decide, in about 95% of runs, both an identical canary and
/// one worse by twice the margins, at the canary's and the stable's expected shares).
pub fn default_max_samples(
    expect: &Expectation,
    settings: &Settings,
    plan: Option<&Plan>,
    compare: Option<&CompareRule>,
) -> u64 {
    let split_cap = plan.map_or(0, |p| p.samples.saturating_mul(MAX_SAMPLES_FACTOR));
    let health_cap = compare.and_then(|rule| {
        let share = |name: &str| expect.share_of(name).unwrap_or(0.0);
        let shares = (share(&rule.canary), share(&rule.stable));
        compare_plan::sequential_cap(rule, settings.confidence, shares)
    });
    match compare {
        Some(_) => compare_sequence::default_max_samples(split_cap, health_cap),
        None => split_cap,
    }
}

/// What the sequential rule did, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequentialSummary {
    /// The confidence sequence's name.
    pub method: &'static str,
    /// Where it is described.
    pub reference: &'static str,
    /// Finished samples between looks.
    pub batch: u64,
    /// The cap on samples.
    pub max_samples: u64,
    /// Looks taken.
    pub looks: u64,
    /// The look (1-based) at which every version was decided; `None` when none did.
    pub deciding_batch: Option<u64>,
    /// Attributed samples the verdict used.
    pub samples_used: u64,
}

/// The state of sequential sampling, shared by the sampling tasks (through the run's sink).
#[derive(Debug)]
pub struct Monitor {
    expect: Expectation,
    settings: Settings,
    /// With `--compare`: the health gate must be decided too.
    compare: Option<CompareRule>,
    /// The error budget: errors surely above it decide the run (exit 4) whatever else.
    max_error_rate: f64,
    batch: u64,
    max_samples: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    looks: u64,
    decided_at: Option<u64>,
}

impl Monitor {
    /// A monitor judging against `expect`; `max_samples` already resolved.
    pub fn new(expect: Expectation, settings: Settings, batch: u64, max_samples: u64) -> Self {
        Self {
            expect,
            settings,
            compare: None,
            max_error_rate: 1.0,
            batch: batch.max(1),
            max_samples,
            state: Mutex::new(State::default()),
        }
    }

    /// This monitor, also waiting for the comparison `rule` to be decided.
    pub fn with_compare(mut self, rule: Option<CompareRule>) -> Self {
        self.compare = rule;
        self
    }

    /// This monitor, also stopping once the share of failed samples is surely above
    /// `max_error_rate` (the lower end of its confidence sequence is): errors then fail
    /// the run whatever the split and the health say, and a target that accepts
    /// connections only to drop them is not sampled up to the cap.
    pub fn with_error_budget(mut self, max_error_rate: f64) -> Self {
        self.max_error_rate = max_error_rate;
        self
    }

    /// Whether the evidence has decided (no more samples are wanted).
    pub fn is_decided(&self) -> bool {
        lock(&self.state).decided_at.is_some()
    }

    /// Called after each sample is recorded in `tally`: at a batch boundary, looks at the
    /// counts; returns false once they decide (sampling should stop).
    pub fn look(&self, tally: &Tally) -> bool {
        let attempted = tally.attempted();
        if !attempted.is_multiple_of(self.batch) {
            return true;
        }
        let mut state = lock(&self.state);
        state.looks += 1;
        if !self.decides(tally) {
            return true;
        }
        state.decided_at = Some(state.looks);
        false
    }

    /// Whether the evidence in `tally` decides the run: the errors are surely over their
    /// budget (exit 4: the rate judged at this look is at least the sequence's lower
    /// end), the split FAILs (exit 1 whatever the health says), or the split PASSes and
    /// the health gate is decided (PASS or FAIL). Each look is judged afresh, as the
    /// final judgement judges the last one.
    fn decides(&self, tally: &Tally) -> bool {
        let errors = sequential::share_interval(
            tally.errors(),
            tally.attempted(),
            compare_sequence::rate_prior(),
            1.0 - self.settings.confidence,
        );
        if errors.low > self.max_error_rate {
            return true;
        }
        match sequential::decide(&self.expect, &tally.counts(), &self.settings) {
            Outcome::Inconclusive => false,
            Outcome::Fail => true,
            Outcome::Pass => self.compare.as_ref().is_none_or(|rule| {
                compare_sequence::decide(tally, rule, self.settings.confidence)
                    != Outcome::Inconclusive
            }),
        }
    }

    /// The summary for the report, with `samples_used` attributed samples judged.
    pub fn summary(&self, samples_used: u64) -> SequentialSummary {
        let state = lock(&self.state);
        SequentialSummary {
            method: METHOD,
            reference: REFERENCE,
            batch: self.batch,
            max_samples: self.max_samples,
            looks: state.looks,
            deciding_batch: state.decided_at,
            samples_used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Sample;
    use crate::tally::Windowing;
    use std::time::{Duration, SystemTime};

    fn sample(id: u64, version: &str) -> Sample {
        Sample {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            started_at: SystemTime::UNIX_EPOCH,
            offset: Duration::ZERO,
            result: Ok(version.to_owned()),
            connect_us: Some(10),
            reply_us: Some(10),
            lag_us: None,
            handshake_us: None,
            reason: None,
            reply_head: None,
        }
    }

    #[test]
    fn it_looks_per_batch_and_stops_at_the_first_decision() {
        let expect: Expectation = "one=90,two=10".parse().unwrap();
        let monitor = Monitor::new(expect, Settings::default(), 10, 1000);
        let mut tally = Tally::new(Windowing::ById { total: 1000 });
        let mut stopped_at = None;
        // Swapped weights: decided (FAIL) within a few batches.
        for id in 0..1000 {
            tally.record(&sample(id, if id % 10 == 0 { "one" } else { "two" }));
            if !monitor.look(&tally) {
                stopped_at = Some(id + 1);
                break;
            }
        }
        let n = stopped_at.unwrap();
        assert_eq!(n % 10, 0, "looks only at batch ends");
        assert!(monitor.is_decided());
        let s = monitor.summary(n);
        assert_eq!(s.deciding_batch, Some(n / 10));
        assert_eq!(s.looks, n / 10);
        assert!(n <= 200, "{n}");
    }

    /// Samples of `one` and `two` in turn, `two` `slower` times slower, until `monitor`
    /// stops (or `limit`): how many it took, and the tally.
    fn until_decided(monitor: &Monitor, slower: u64, limit: u64) -> (Option<u64>, Tally) {
        let mut tally = Tally::new(Windowing::ById { total: limit });
        for id in 0..limit {
            let (version, scale) = if id % 2 == 0 {
                ("one", 1)
            } else {
                ("two", slower)
            };
            let mut s = sample(id, version);
            // Latency spread over 100 µs to 1.1 ms, the same for both but for the scale.
            let us = (100 + (id / 2 * 7919) % 1000) * scale;
            (s.connect_us, s.reply_us) = (Some(us), Some(us));
            tally.record(&s);
            if !monitor.look(&tally) {
                return (Some(id + 1), tally);
            }
        }
        (None, tally)
    }

    #[test]
    fn with_a_comparison_it_stops_only_once_the_health_gate_is_decided_too() {
        let expect: Expectation = "one=50,two=50".parse().unwrap();
        let settings = Settings::default();
        let split_only = Monitor::new(expect.clone(), settings, 20, 100_000);
        let split = until_decided(&split_only, 1, 100_000)
            .0
            .expect("the split decides");
        let mut rule = CompareRule::parse_pair("two=one").unwrap();
        rule.max_latency_increase =
            crate::verdict::compare::parse_latency_margins("p50=10%").unwrap();
        rule.max_error_increase = 0.01;
        let gated =
            || Monitor::new(expect.clone(), settings, 20, 100_000).with_compare(Some(rule.clone()));
        // An identical canary: decided (PASS) later than the split alone.
        let same = gated();
        let (both, t) = until_decided(&same, 1, 100_000);
        let both = both.expect("decided");
        assert!(both > split, "{both} vs {split}");
        assert_eq!(compare_sequence::decide(&t, &rule, 0.99), Outcome::Pass);
        // A canary three times slower: decided (FAIL) as soon as the split is.
        let slow = gated();
        let (n, t) = until_decided(&slow, 3, 100_000);
        assert_eq!(
            n,
            Some(split),
            "the median FAILs long before the split decides"
        );
        assert_eq!(compare_sequence::decide(&t, &rule, 0.99), Outcome::Fail);
    }

    #[test]
    fn errors_surely_over_their_budget_decide_the_run() {
        let expect: Expectation = "one=50,two=50".parse().unwrap();
        let rule = CompareRule::parse_pair("two=one").unwrap();
        // A target that accepts every connection and drops it: no version ever answers.
        let dropped = |monitor: &Monitor, limit: u64| {
            let mut tally = Tally::new(Windowing::ById { total: limit });
            for id in 0..limit {
                let mut s = sample(id, "one");
                s.result = Err(crate::sampler::ErrorClass::ClosedBeforeReply);
                tally.record(&s);
                if !monitor.look(&tally) {
                    return Some(id + 1);
                }
            }
            None
        };
        let budget = Monitor::new(expect.clone(), Settings::default(), 20, 10_000)
            .with_compare(Some(rule.clone()))
            .with_error_budget(0.01);
        assert_eq!(dropped(&budget, 10_000), Some(20), "the first look decides");
        let none =
            Monitor::new(expect.clone(), Settings::default(), 20, 10_000).with_compare(Some(rule));
        assert_eq!(
            dropped(&none, 2_000),
            None,
            "without a budget nothing decides"
        );
    }

    #[test]
    fn the_default_cap_is_the_health_gates_when_it_is_larger() {
        let expect: Expectation = "one=50,two=50".parse().unwrap();
        let settings = Settings::default();
        let plan = crate::verdict::plan(&expect, &settings);
        let split = default_max_samples(&expect, &settings, Some(&plan), None);
        assert_eq!(split, plan.samples * MAX_SAMPLES_FACTOR);
        let rule = CompareRule::parse_pair("two=one").unwrap();
        let cap = default_max_samples(&expect, &settings, Some(&plan), Some(&rule));
        let health = compare_plan::sequential_cap(&rule, 0.99, (0.5, 0.5)).unwrap();
        assert_eq!(cap, health.max(split));
        assert!(cap > split, "{cap} vs {split}");
        // A wide margin needs fewer connections than the split's cap: the split's rules.
        let mut wide = rule.clone();
        wide.max_latency_increase =
            crate::verdict::compare::parse_latency_margins("p50=100%").unwrap();
        wide.max_error_increase = 0.1;
        assert_eq!(
            default_max_samples(&expect, &settings, Some(&plan), Some(&wide)),
            split
        );
    }
}
