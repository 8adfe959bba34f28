//! The judgement of a finished run, made once: the split (by the fixed or the sequential
//! rule), the error budget, drift and the health checks, then the outcome and the exit
//! code. Numbers in, numbers out: the run's [`Tally`] and the rules it was judged by.

use std::collections::BTreeMap;

use serde::Serialize;

use super::health::{self, HealthRules, HealthVerdict};
use super::local::{self, LocalCause, LocalReadings};
use super::{Drift, Outcome, Settings, SplitVerdict, drift, judge, sequential};
use crate::exit;
use crate::expect::Expectation;
use crate::sampler::ErrorClass;
use crate::tally::{MalformedReply, Tally};

/// Which rule a run followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A fixed count (planned or `--samples`) or a duration, judged once at the end.
    Fixed,
    /// Batches judged as they come, stopped when decided.
    Sequential,
}

/// What a run is judged by.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The expected split.
    pub expect: &'a Expectation,
    /// Confidence and tolerance.
    pub settings: Settings,
    /// Share of failed samples (0..=1) above which errors alone fail the run.
    pub max_error_rate: f64,
    /// The fixed rule (Wilson intervals) or the sequential one (confidence sequences).
    pub mode: Mode,
    /// Health checks beyond the split.
    pub health: &'a HealthRules,
}

/// The errors of a run and whether they alone fail it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorVerdict {
    /// Failed samples.
    pub total: u64,
    /// Failed over finished samples (0 when none finished).
    pub rate: f64,
    /// The budget (`--max-error-rate`).
    pub max_rate: f64,
    /// Failed samples per class, every class present.
    pub by_class: BTreeMap<ErrorClass, u64>,
    /// Every finished sample failed: the target is unreachable.
    pub unreachable: bool,
    /// FAIL when unreachable or over budget, else PASS.
    pub outcome: Outcome,
    /// The first few distinct malformed replies (escaped, cut), with counts.
    pub malformed_replies: Vec<MalformedReply>,
    /// The conntrack table, port range and sockets seen on this machine during the run.
    pub local_readings: LocalReadings,
    /// A likely cause of the errors on this machine rather than at the target.
    pub local_cause: Option<LocalCause>,
}

/// Everything judged about a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The verdict on the split, by the run's rule.
    pub split: SplitVerdict,
    /// The error budget's verdict.
    pub errors: ErrorVerdict,
    /// Whether the split moved between windows (information; it decides nothing).
    pub drift: Drift,
    /// Health checks beyond the split (canary against stable, thresholds, baseline).
    pub health: HealthVerdict,
    /// FAIL if the error budget, the split or a health check fails, else INCONCLUSIVE if
    /// the split or the comparison is, else PASS.
    pub outcome: Outcome,
    /// The process exit code ([`crate::exit`]): errors decide first (4), then a failed
    /// split (1), then a failed health check (5), then an undecided split or comparison
    /// (3), else 0.
    pub exit_code: i32,
}

/// Judges the run whose samples are in `tally` (it lasted `elapsed_s` seconds; this
/// machine's limits read `readings`) by `rules`.
pub fn judge_run(
    tally: &Tally,
    rules: &Rules<'_>,
    elapsed_s: f64,
    readings: LocalReadings,
) -> Judgement {
    let counts = tally.counts();
    let split = match rules.mode {
        Mode::Fixed => judge(rules.expect, &counts, &rules.settings),
        Mode::Sequential => sequential::judge(rules.expect, &counts, &rules.settings),
    };
    let health = health::judge(tally, elapsed_s, rules.health, rules.settings.confidence);
    let window_counts: Vec<Vec<(String, u64)>> = tally
        .windows()
        .iter()
        .map(|w| w.counts.iter().map(|(n, c)| (n.clone(), *c)).collect())
        .collect();
    let drift = drift(&window_counts, &rules.settings);
    let errors = judge_errors(tally, rules.max_error_rate, readings);
    let outcome = outcome(errors.outcome, split.outcome, health.outcome);
    let exit_code = exit_code(errors.outcome, split.outcome, health.outcome);
    Judgement {
        split,
        errors,
        drift,
        health,
        outcome,
        exit_code,
    }
}

/// The error budget's verdict on `tally`.
fn judge_errors(tally: &Tally, max_error_rate: f64, readings: LocalReadings) -> ErrorVerdict {
    let attempted = tally.attempted();
    let total = tally.errors();
    let rate = if attempted == 0 {
        0.0
    } else {
        total as f64 / attempted as f64
    };
    let unreachable = attempted > 0 && tally.attributed() == 0;
    ErrorVerdict {
        total,
        rate,
        max_rate: max_error_rate,
        by_class: ErrorClass::ALL
            .iter()
            .map(|&c| (c, tally.errors_of(c)))
            .collect(),
        unreachable,
        outcome: if unreachable || rate > max_error_rate {
            Outcome::Fail
        } else {
            Outcome::Pass
        },
        malformed_replies: tally.malformed().to_vec(),
        local_readings: readings,
        local_cause: local::likely_cause(
            &readings,
            total,
            tally.errors_of(ErrorClass::LocalAddressExhausted),
        ),
    }
}

/// The overall outcome: FAIL if the errors, the split or the health checks fail, else
/// INCONCLUSIVE if the split or the health checks are, else PASS.
fn outcome(errors: Outcome, split: Outcome, health: Outcome) -> Outcome {
    if errors == Outcome::Fail {
        Outcome::Fail
    } else {
        split.max(health)
    }
}

/// The exit code: errors decide first, then the split, then the health checks.
fn exit_code(errors: Outcome, split: Outcome, health: Outcome) -> i32 {
    if errors == Outcome::Fail {
        return exit::ERRORS;
    }
    match (split, health) {
        (Outcome::Fail, _) => exit::FAIL,
        (_, Outcome::Fail) => exit::HEALTH,
        (Outcome::Inconclusive, _) | (_, Outcome::Inconclusive) => exit::INCONCLUSIVE,
        (Outcome::Pass, Outcome::Pass) => exit::PASS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Sample;
    use crate::tally::Windowing;
    use std::time::{Duration, SystemTime};

    fn tally(answers: &[(&str, u64)], failed: u64) -> Tally {
        let mut tally = Tally::new(Windowing::ById { total: 1000 });
        let mut id = 0;
        let mut sample = |result: Result<String, ErrorClass>| {
            id += 1;
            tally.record(&Sample {
                id,
                addr: "127.0.0.1:1".parse().unwrap(),
                started_at: SystemTime::UNIX_EPOCH,
                offset: Duration::ZERO,
                result,
                connect_us: Some(10),
                reply_us: Some(10),
                lag_us: None,
                reply_head: None,
            });
        };
        for (name, n) in answers {
            for _ in 0..*n {
                sample(Ok((*name).to_owned()));
            }
        }
        for _ in 0..failed {
            sample(Err(ErrorClass::Refused));
        }
        tally
    }

    fn judged(t: &Tally, mode: Mode) -> Judgement {
        let expect: Expectation = "one=90,two=10".parse().unwrap();
        let rules = Rules {
            expect: &expect,
            settings: Settings::default(),
            max_error_rate: 0.01,
            mode,
            health: &HealthRules::default(),
        };
        judge_run(t, &rules, 1.0, LocalReadings::default())
    }

    #[test]
    fn errors_decide_before_the_split() {
        let j = judged(&tally(&[("one", 900), ("two", 100)], 50), Mode::Fixed);
        assert_eq!(j.errors.outcome, Outcome::Fail);
        assert_eq!((j.outcome, j.exit_code), (Outcome::Fail, exit::ERRORS));
        let j = judged(&tally(&[], 10), Mode::Fixed);
        assert!(j.errors.unreachable);
        assert_eq!(j.exit_code, exit::ERRORS);
    }

    #[test]
    fn the_split_is_judged_by_the_runs_rule() {
        let t = tally(&[("one", 2700), ("two", 300)], 0);
        let fixed = judged(&t, Mode::Fixed);
        assert_eq!(
            (fixed.outcome, fixed.exit_code),
            (Outcome::Pass, exit::PASS)
        );
        let sequential = judged(&t, Mode::Sequential);
        let expect: Expectation = "one=90,two=10".parse().unwrap();
        let want = sequential::judge(&expect, &t.counts(), &Settings::default());
        assert_eq!(sequential.split, want);
        assert_ne!(
            sequential.split, fixed.split,
            "confidence sequences are wider"
        );
        let swapped = judged(&tally(&[("one", 100), ("two", 900)], 0), Mode::Sequential);
        assert_eq!(swapped.exit_code, exit::FAIL);
        let few = judged(&tally(&[("one", 9), ("two", 1)], 0), Mode::Fixed);
        assert_eq!(
            (few.outcome, few.exit_code),
            (Outcome::Inconclusive, exit::INCONCLUSIVE)
        );
    }
}
