//! The judgement of a finished run, made once: the split (by the fixed or the sequential
//! rule), the error budget, drift and the health checks, then the outcome and the exit
//! code. Numbers in, numbers out: the run's [`Tally`] and the rules it was judged by.

use std::collections::BTreeMap;

use serde::Serialize;

use super::compare::Method;
use super::health::{self, HealthRules, HealthVerdict};
use super::local::{self, LocalCause, LocalReadings};
use super::{Drift, Outcome, Settings, SplitVerdict, drift, judge, sequential};
use crate::exit;
use crate::expect::Expectation;
use crate::sampler::ErrorClass;
use crate::tally::{FailureReason, MalformedReply, Tally, Window};

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
    /// The first few distinct reasons of failures (TLS, captured values), with counts;
    /// absent from the rehearsal's document when none (its schema predates them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failure_reasons: Vec<FailureReason>,
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
    /// The gateway's view judged (with `--gateway-admin` or `--config-dump`): a gateway
    /// programmed otherwise than the intent fails the run (1) after the errors.
    pub gateway: Option<GatewayJudgement>,
}

/// Which layer a wrong split comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// A gateway was programmed otherwise than the intent: the control plane did not
    /// apply it (not bound, rejected, stale).
    ControlPlane,
    /// The gateways were programmed as intended, yet traffic does not follow: the data
    /// plane does not follow its own configuration.
    DataPlane,
}

/// The gateway's view judged: intent against programmed (exact), and programmed against
/// observed (the run's own split verdict, or one against what the gateway was told).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayJudgement {
    /// FAIL when a gateway was programmed otherwise than the intent, else PASS.
    pub control_plane: Outcome,
    /// Where a wrong split comes from; `None` when nothing is wrong or undecided.
    pub layer: Option<Layer>,
    /// When a gateway was programmed otherwise: the observed split judged against what
    /// it was told (does traffic at least follow the gateway's configuration?).
    pub observed_vs_programmed: Option<SplitVerdict>,
}

/// What the gateways were told, for [`judge_run`].
#[derive(Debug, Clone, Copy)]
pub struct Programmed<'a> {
    /// Whether every gateway was told exactly the intent.
    pub as_intended: bool,
    /// The split of the first gateway told otherwise (`None` when all agree, or when its
    /// weights are all zero).
    pub split: Option<&'a Expectation>,
}

/// The gateway's view judged, for the run counted in `tally` under `rules` whose split
/// verdict is `split`: a gateway programmed otherwise than the intent FAILs the control
/// plane (in [`judge_run`] that FAILs the run, exit 1, after the errors' 4).
fn judge_gateway(
    programmed: Programmed<'_>,
    split: &SplitVerdict,
    tally: &Tally,
    rules: &Rules<'_>,
) -> GatewayJudgement {
    let counts = tally.counts();
    let observed_vs_programmed = programmed.split.map(|expect| match rules.mode {
        Mode::Fixed => judge(expect, &counts, &rules.settings),
        Mode::Sequential => sequential::judge(expect, &counts, &rules.settings),
    });
    let control_plane = if programmed.as_intended {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    let layer = if control_plane == Outcome::Fail {
        Some(Layer::ControlPlane)
    } else if split.outcome == Outcome::Fail {
        Some(Layer::DataPlane)
    } else {
        None
    };
    GatewayJudgement {
        control_plane,
        layer,
        observed_vs_programmed,
    }
}

/// Judges the run whose samples are in `tally` (it lasted `elapsed_s` seconds; this
/// machine's limits read `readings`) by `rules`, once: with the gateway's view,
/// `programmed` says what the gateways were told, and a gateway told otherwise than the
/// intent FAILs the run (exit 1) unless the errors decide it first (4).
pub fn judge_run(
    tally: &Tally,
    rules: &Rules<'_>,
    elapsed_s: f64,
    readings: LocalReadings,
    programmed: Option<Programmed<'_>>,
) -> Judgement {
    let counts = tally.counts();
    let split = match rules.mode {
        Mode::Fixed => judge(rules.expect, &counts, &rules.settings),
        Mode::Sequential => sequential::judge(rules.expect, &counts, &rules.settings),
    };
    // The comparison by the run's rule too: a sequential run looked at it after every batch.
    let method = match rules.mode {
        Mode::Fixed => Method::Fixed,
        Mode::Sequential => Method::Sequential,
    };
    let health = health::judge(
        tally,
        elapsed_s,
        rules.health,
        rules.settings.confidence,
        method,
    );
    // Not the windows whose uncounted samples (in flight when a sequential verdict or a
    // stop came: mostly the slower version's) could move a share by more than half the
    // tolerance: they would show a move that never happened.
    let skewed = |w: &&Window| w.could_skew(rules.settings.tolerance / 2.0);
    let window_counts: Vec<Vec<(String, u64)>> = tally
        .windows()
        .iter()
        .filter(|w| !skewed(w))
        .map(|w| w.counts.iter().map(|(n, c)| (n.clone(), *c)).collect())
        .collect();
    let mut drift = drift(&window_counts, &rules.settings);
    drift.windows_left_out = tally.windows().iter().filter(skewed).count() as u64;
    let errors = judge_errors(tally, rules.max_error_rate, readings);
    let gateway = programmed.map(|p| judge_gateway(p, &split, tally, rules));
    let mut outcome = outcome(errors.outcome, split.outcome, health.outcome);
    let mut exit_code = exit_code(errors.outcome, split.outcome, health.outcome);
    let told_otherwise = gateway
        .as_ref()
        .is_some_and(|g| g.control_plane == Outcome::Fail);
    if told_otherwise && errors.outcome != Outcome::Fail {
        outcome = Outcome::Fail;
        exit_code = exit::FAIL;
    }
    Judgement {
        split,
        errors,
        drift,
        health,
        outcome,
        exit_code,
        gateway,
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
        failure_reasons: tally.reasons().to_vec(),
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
    use crate::tally::{WINDOWS, Windowing};
    use std::time::{Duration, SystemTime};

    /// Sample `id` with `result`, 10 µs to connect and to reply.
    fn sample(id: u64, result: Result<String, ErrorClass>) -> Sample {
        Sample {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            started_at: SystemTime::UNIX_EPOCH,
            offset: Duration::ZERO,
            result,
            connect_us: Some(10),
            reply_us: Some(10),
            lag_us: None,
            handshake_us: None,
            reason: None,
            reply_head: None,
        }
    }

    fn tally(answers: &[(&str, u64)], failed: u64) -> Tally {
        let mut tally = Tally::new(Windowing::ById { total: 1000 });
        let mut id = 0;
        let mut sample = |result: Result<String, ErrorClass>| {
            id += 1;
            tally.record(&sample(id, result));
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
        judge_run(t, &rules, 1.0, LocalReadings::default(), None)
    }

    #[test]
    fn a_window_with_samples_left_out_is_not_judged_for_drift() {
        // 50/50 in every window, but the last one lost its `two` samples (still in flight
        // when the verdict came): counted as they stand, the split seems to have moved.
        let mut t = Tally::new(Windowing::ById { total: 1000 });
        for id in 0..1000u64 {
            let version = if id % 2 == 0 { "two" } else { "one" };
            if id >= 900 && version == "two" {
                continue;
            }
            t.record(&sample(id, Ok(version.to_owned())));
        }
        let j = judged(&t, Mode::Fixed);
        assert!(j.drift.moved, "{:?}", j.drift);
        assert_eq!(j.drift.windows_left_out, 0);
        for id in (900..1000).step_by(2) {
            t.left_out(id, Duration::ZERO);
        }
        let j = judged(&t, Mode::Fixed);
        assert!(!j.drift.moved, "{:?}", j.drift);
        assert_eq!(j.drift.max_shift, 0.0);
        assert_eq!(j.drift.degrees_of_freedom, (WINDOWS as u64 - 2));
        assert_eq!(j.drift.windows_left_out, 1);
        // A few left out of many cannot skew a window: it stays in (2 beside 101 counted
        // could move a share by 1.9 points, within half the 5-point tolerance).
        let mut t = tally(&[("one", 900), ("two", 100)], 0);
        t.left_out(999, Duration::ZERO);
        t.left_out(998, Duration::ZERO);
        let j = judged(&t, Mode::Fixed);
        assert_eq!(j.drift.windows_left_out, 0);
        assert_eq!(j.drift.degrees_of_freedom, (WINDOWS as u64 - 1));
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
    fn a_gateway_programmed_otherwise_fails_after_the_errors() {
        let expect: Expectation = "one=90,two=10".parse().unwrap();
        let told: Expectation = "one=80,two=20".parse().unwrap();
        let rules = Rules {
            expect: &expect,
            settings: Settings::default(),
            max_error_rate: 0.01,
            mode: Mode::Fixed,
            health: &HealthRules::default(),
        };
        // Traffic follows what the gateway was told, not the intent.
        let t = tally(&[("one", 2400), ("two", 600)], 0);
        let told_otherwise = Programmed {
            as_intended: false,
            split: Some(&told),
        };
        let j = judge_run(
            &t,
            &rules,
            1.0,
            LocalReadings::default(),
            Some(told_otherwise),
        );
        assert_eq!((j.outcome, j.exit_code), (Outcome::Fail, exit::FAIL));
        let g = j.gateway.unwrap();
        assert_eq!(
            (g.control_plane, g.layer),
            (Outcome::Fail, Some(Layer::ControlPlane))
        );
        assert_eq!(g.observed_vs_programmed.unwrap().outcome, Outcome::Pass);
        // Errors still decide first.
        let t = tally(&[("one", 2400), ("two", 600)], 300);
        let j = judge_run(
            &t,
            &rules,
            1.0,
            LocalReadings::default(),
            Some(told_otherwise),
        );
        assert_eq!(j.exit_code, exit::ERRORS);
        // Programmed as intended, traffic off: the data plane.
        let t = tally(&[("one", 2310), ("two", 690)], 0);
        let as_intended = Programmed {
            as_intended: true,
            split: None,
        };
        let j = judge_run(&t, &rules, 1.0, LocalReadings::default(), Some(as_intended));
        assert_eq!(j.exit_code, exit::FAIL);
        let g = j.gateway.unwrap();
        assert_eq!(g.layer, Some(Layer::DataPlane));
        assert!(g.observed_vs_programmed.is_none());
        // Programmed as intended, traffic follows: nothing to blame.
        let t = tally(&[("one", 2700), ("two", 300)], 0);
        let j = judge_run(&t, &rules, 1.0, LocalReadings::default(), Some(as_intended));
        assert_eq!((j.exit_code, j.gateway.unwrap().layer), (exit::PASS, None));
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

    #[test]
    fn the_comparison_is_judged_by_the_runs_rule_too() {
        use crate::verdict::compare::{self, CompareRule, Method};
        use crate::verdict::compare_sequence;
        let t = tally(&[("one", 2700), ("two", 300)], 0);
        let expect: Expectation = "one=90,two=10".parse().unwrap();
        let rule = CompareRule::parse_pair("two=one").unwrap();
        let health = HealthRules {
            compare: Some(rule.clone()),
            ..HealthRules::default()
        };
        for (mode, want) in [
            (Mode::Fixed, compare::compare(&t, &rule, 0.99)),
            (Mode::Sequential, compare_sequence::judge(&t, &rule, 0.99)),
        ] {
            let rules = Rules {
                expect: &expect,
                settings: Settings::default(),
                max_error_rate: 0.01,
                mode,
                health: &health,
            };
            let j = judge_run(&t, &rules, 1.0, LocalReadings::default(), None);
            let c = j.health.comparison.expect("a comparison");
            assert_eq!(c, want);
            let method = if mode == Mode::Fixed {
                Method::Fixed
            } else {
                Method::Sequential
            };
            assert_eq!(c.method, method);
        }
    }
}
