//! Calibration of the health gate (issue 21, `--compare CANARY=STABLE`) by a seeded
//! Monte Carlo over the library's verdict code (no sockets), at the defaults:
//! confidence 0.99, margins `p99=20%` (connect and reply) and `0.5pp` of attributed
//! errors, a 50/50 split, looks after every batch of 20 connections, and the default
//! cap (the larger of the split's and the health gate's, see
//! `verdict::compare_plan::sequential_cap`).
//!
//! Latency is drawn from realistic shapes: connect time lognormal (median 300 µs,
//! spread 0.5); reply time either lognormal (median 1 ms, spread 0.5) or a mixture in
//! which 2% of connections take a slow path about ten times slower (median 10 ms,
//! spread [`TAIL_SIGMA`]), which puts the p99 inside the slow tail. Errors are
//! attributed errors at 0.1% per connection for a healthy version.
//!
//! Sequential runs (the default without `--samples`), asserted:
//! * an identical canary: FAIL in at most 1 - confidence of runs, PASS in at least 95%
//!   within the cap (both latency shapes);
//! * a canary whose reply p99 is twice the margin worse (+40%): FAIL in at least 95%
//!   (both shapes);
//! * a canary whose error rate is twice the margin worse (+1 point): FAIL in at least 95%;
//! * canaries beyond the margin but not by twice (+30% p99, +0.7 points): PASS in at
//!   most 1 - confidence of runs;
//! * in every run of every case: no metric whose estimate lies beyond its margin PASSes,
//!   and the loop's quick decision agrees with the full judgement.
//!
//! Fixed runs (`--samples N`) at 2,000 and 20,000 connections: an identical canary
//! FAILs in at most 1 - confidence of runs, and no metric beyond its margin PASSes.
//!
//! The mean and 95th percentile of the connections used are printed as a table (for
//! the README). Run in release mode (a few hundred thousand looks):
//! `cargo test --release -p checker-core --test health_calibration -- --nocapture`.
//! In debug builds (the workspace's plain `cargo test`) the file holds no tests: the
//! same looks take about twenty times longer there (measured: 14.6 s against 0.76 s).
//! Its code is still compiled there, so `cargo clippy --all-targets` checks it.
#![cfg_attr(debug_assertions, allow(dead_code))]

use checker_core::expect::Expectation;
use checker_core::tally::{LATENCY_SIGFIG, MAX_LATENCY_US};
use checker_core::verdict::compare::{self, Arm, Arms, CompareRule, Comparison, Direction, Method};
use checker_core::verdict::sequential::{self, DEFAULT_BATCH};
use checker_core::verdict::{Outcome, Settings, compare_plan, compare_sequence};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

/// Runs per case that decides early.
const RUNS: u32 = 400;
/// Runs per case that goes on to the cap (undecidable canaries).
const RUNS_TO_CAP: u32 = 100;
/// Runs per fixed-count case.
const FIXED_RUNS: u32 = 400;
/// The slow tail's spread.
const TAIL_SIGMA: f64 = 0.2;
/// The default confidence.
const CONFIDENCE: f64 = 0.99;

/// A latency shape: a lognormal body and an optional slow tail.
#[derive(Clone, Copy)]
struct Shape {
    body: (f64, f64),
    tail: Option<(f64, f64, f64)>,
}

const CONNECT: Shape = Shape {
    body: (300.0, 0.5),
    tail: None,
};
const LOGNORMAL: Shape = Shape {
    body: (1000.0, 0.5),
    tail: None,
};
const MIXTURE: Shape = Shape {
    body: (1000.0, 0.5),
    tail: Some((0.02, 10_000.0, TAIL_SIGMA)),
};

/// A shape ready to draw from.
struct Draw {
    body: LogNormal<f64>,
    tail: Option<(f64, LogNormal<f64>)>,
}

impl Draw {
    fn new(shape: Shape) -> Self {
        let ln = |(median, sigma): (f64, f64)| {
            LogNormal::new(f64::ln(median), sigma).expect("a valid lognormal")
        };
        Self {
            body: ln(shape.body),
            tail: shape.tail.map(|(share, m, s)| (share, ln((m, s)))),
        }
    }

    /// One latency in microseconds, scaled by `scale`.
    fn sample(&self, rng: &mut StdRng, scale: f64) -> u64 {
        let from = match &self.tail {
            Some((share, tail)) if rng.random_bool(*share) => tail,
            _ => &self.body,
        };
        ((from.sample(rng) * scale) as u64).max(1)
    }
}

/// What one version of a case does.
#[derive(Clone, Copy)]
struct Version {
    reply: Shape,
    /// The factor on its reply latency.
    slower: f64,
    /// Its attributed error rate.
    errors: f64,
}

const HEALTHY: Version = Version {
    reply: LOGNORMAL,
    slower: 1.0,
    errors: 0.001,
};

/// What a case must show.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// PASS in at least 95% of runs, FAIL in at most 1 - confidence.
    Pass,
    /// FAIL in at least 95% of runs.
    Fail,
    /// PASS in at most 1 - confidence of runs.
    NotPass,
}

struct Case {
    name: &'static str,
    canary: Version,
    stable: Version,
    expect: Expect,
    runs: u32,
    seed: u64,
}

/// One version's counts and histograms, as the tally keeps them.
struct ArmData {
    answered: u64,
    errors: u64,
    connect: Histogram<u64>,
    reply: Histogram<u64>,
}

impl ArmData {
    fn new() -> Self {
        let h = || {
            Histogram::new_with_bounds(1, MAX_LATENCY_US, LATENCY_SIGFIG)
                .expect("the tally's bounds")
        };
        Self {
            answered: 0,
            errors: 0,
            connect: h(),
            reply: h(),
        }
    }

    fn arm(&self) -> Arm<'_> {
        Arm {
            answered: self.answered,
            errors: self.errors,
            connect_us: Some(&self.connect),
            reply_us: Some(&self.reply),
            handshake_us: None,
        }
    }
}

/// One simulated run's data.
struct Run {
    canary: ArmData,
    stable: ArmData,
    samples: u64,
}

impl Run {
    fn new() -> Self {
        Self {
            canary: ArmData::new(),
            stable: ArmData::new(),
            samples: 0,
        }
    }

    fn arms(&self) -> Arms<'_> {
        Arms {
            canary: self.canary.arm(),
            stable: self.stable.arm(),
            attempted: self.samples,
            unattributed_errors: 0,
        }
    }

    /// `n` connections, each to the canary or the stable with even odds.
    fn sample(&mut self, rng: &mut StdRng, n: u64, draws: &Draws, case: &Case) {
        for _ in 0..n {
            let to_canary = rng.random_bool(0.5);
            let (data, version, reply) = if to_canary {
                (&mut self.canary, case.canary, &draws.canary)
            } else {
                (&mut self.stable, case.stable, &draws.stable)
            };
            if rng.random_bool(version.errors) {
                data.errors += 1;
            } else {
                data.answered += 1;
                let connect = draws.connect.sample(rng, 1.0);
                let _ = data.connect.record(connect);
                let _ = data.reply.record(reply.sample(rng, version.slower));
            }
        }
        self.samples += n;
    }
}

struct Draws {
    connect: Draw,
    canary: Draw,
    stable: Draw,
}

/// What the runs of one case came to.
struct Tallied {
    pass: u32,
    fail: u32,
    runs: u32,
    used: Vec<u64>,
    /// Metrics PASSed although their estimate lay beyond the margin.
    passed_beyond: u32,
    /// Runs where the loop's decision and the full judgement disagreed.
    disagreements: u32,
}

impl Tallied {
    fn rate(&self, n: u32) -> f64 {
        f64::from(n) / f64::from(self.runs)
    }

    fn mean(&self) -> f64 {
        self.used.iter().sum::<u64>() as f64 / self.used.len().max(1) as f64
    }

    fn p95(&self) -> u64 {
        let mut used = self.used.clone();
        used.sort_unstable();
        used.get(used.len() * 95 / 100).copied().unwrap_or(0)
    }

    fn row(&self, name: &str, mode: &str) -> String {
        format!(
            "| {name} | {mode} | {:.2}% | {:.2}% | {:.2}% | {:.0} | {} |",
            100.0 * self.rate(self.pass),
            100.0 * self.rate(self.fail),
            100.0 * self.rate(self.runs - self.pass - self.fail),
            self.mean(),
            self.p95()
        )
    }
}

/// Whether an effect lies within a margin in its direction.
fn within(effect: f64, margin: f64, direction: Direction) -> bool {
    match direction {
        Direction::Increase => effect <= margin,
        Direction::Decrease => effect >= -margin,
        Direction::Either => effect.abs() <= margin,
    }
}

/// Counts the metrics of `c` that PASSed with an estimate beyond their margin.
fn passed_beyond(c: &Comparison) -> u32 {
    c.metrics
        .iter()
        .filter(|m| m.outcome == Outcome::Pass)
        .filter(|m| m.effect.is_some_and(|e| !within(e, m.margin, m.direction)))
        .map(|_| 1)
        .sum()
}

fn rule() -> CompareRule {
    CompareRule::parse_pair("two=one").expect("a valid pair")
}

/// The default cap of a 50/50 sequential run with the default comparison.
fn default_cap() -> u64 {
    let expect: Expectation = "one=50,two=50".parse().expect("a valid split");
    let split = sequential::default_max_samples(&expect, &Settings::default());
    let health = compare_plan::sequential_cap(&rule(), CONFIDENCE, (0.5, 0.5));
    compare_sequence::default_max_samples(split, health)
}

fn draws(case: &Case) -> Draws {
    Draws {
        connect: Draw::new(CONNECT),
        canary: Draw::new(case.canary.reply),
        stable: Draw::new(case.stable.reply),
    }
}

/// Sequential runs of `case`: look after every batch, stop when decided or at `cap`.
fn sequential_runs(case: &Case, cap: u64) -> Tallied {
    let rule = rule();
    let draws = draws(case);
    let mut rng = StdRng::seed_from_u64(case.seed);
    let mut t = Tallied {
        pass: 0,
        fail: 0,
        runs: case.runs,
        used: Vec::new(),
        passed_beyond: 0,
        disagreements: 0,
    };
    for _ in 0..case.runs {
        let mut run = Run::new();
        let outcome = loop {
            let batch = DEFAULT_BATCH.min(cap - run.samples);
            run.sample(&mut rng, batch, &draws, case);
            let outcome = compare_sequence::decide_arms(&run.arms(), &rule, CONFIDENCE);
            if outcome != Outcome::Inconclusive || run.samples >= cap {
                break outcome;
            }
        };
        let full = compare::compare_arms(&run.arms(), &rule, CONFIDENCE, Method::Sequential);
        t.disagreements += u32::from(full.outcome != outcome);
        t.passed_beyond += passed_beyond(&full);
        match outcome {
            Outcome::Pass => t.pass += 1,
            Outcome::Fail => t.fail += 1,
            Outcome::Inconclusive => {}
        }
        t.used.push(run.samples);
    }
    t
}

/// Fixed runs of `case` at `samples` connections, judged once.
fn fixed_runs(case: &Case, samples: u64) -> Tallied {
    let rule = rule();
    let draws = draws(case);
    let mut rng = StdRng::seed_from_u64(case.seed ^ samples);
    let mut t = Tallied {
        pass: 0,
        fail: 0,
        runs: FIXED_RUNS,
        used: Vec::new(),
        passed_beyond: 0,
        disagreements: 0,
    };
    for _ in 0..FIXED_RUNS {
        let mut run = Run::new();
        run.sample(&mut rng, samples, &draws, case);
        let c = compare::compare_arms(&run.arms(), &rule, CONFIDENCE, Method::Fixed);
        t.passed_beyond += passed_beyond(&c);
        match c.outcome {
            Outcome::Pass => t.pass += 1,
            Outcome::Fail => t.fail += 1,
            Outcome::Inconclusive => {}
        }
        t.used.push(samples);
    }
    t
}

/// Asserts what `case` must show on `t`.
fn check(case: &Case, mode: &str, t: &Tallied) {
    let what = format!("{} ({mode})", case.name);
    assert_eq!(
        t.passed_beyond, 0,
        "{what}: a metric beyond its margin PASSed"
    );
    assert_eq!(t.disagreements, 0, "{what}: decide and judge disagreed");
    let alpha = 1.0 - CONFIDENCE;
    match case.expect {
        Expect::Pass => {
            assert!(
                t.rate(t.fail) <= alpha,
                "{what}: FAIL rate {}",
                t.rate(t.fail)
            );
            if mode == "sequential" {
                assert!(
                    t.rate(t.pass) >= 0.95,
                    "{what}: PASS rate {}",
                    t.rate(t.pass)
                );
            }
        }
        Expect::Fail => {
            assert!(
                t.rate(t.pass) <= alpha,
                "{what}: PASS rate {}",
                t.rate(t.pass)
            );
            if mode == "sequential" {
                assert!(
                    t.rate(t.fail) >= 0.95,
                    "{what}: FAIL rate {}",
                    t.rate(t.fail)
                );
            }
        }
        Expect::NotPass => {
            assert!(
                t.rate(t.pass) <= alpha,
                "{what}: PASS rate {}",
                t.rate(t.pass)
            );
        }
    }
}

fn calibrate(cases: &[Case], fixed: bool) {
    let cap = default_cap();
    let mut rows = Vec::new();
    for case in cases {
        let t = sequential_runs(case, cap);
        rows.push(t.row(case.name, &format!("sequential, cap {cap}")));
        check(case, "sequential", &t);
        if fixed {
            for samples in [2_000, 20_000] {
                let t = fixed_runs(case, samples);
                rows.push(t.row(case.name, &format!("fixed {samples}")));
                check(case, "fixed", &t);
            }
        }
    }
    for row in rows {
        println!("{row}");
    }
}

#[cfg_attr(not(debug_assertions), test)]
fn an_identical_canary_passes_and_rarely_fails() {
    calibrate(
        &[
            Case {
                name: "identical, lognormal",
                canary: HEALTHY,
                stable: HEALTHY,
                expect: Expect::Pass,
                runs: RUNS,
                seed: 1,
            },
            Case {
                name: "identical, 2% slow tail",
                canary: Version {
                    reply: MIXTURE,
                    ..HEALTHY
                },
                stable: Version {
                    reply: MIXTURE,
                    ..HEALTHY
                },
                expect: Expect::Pass,
                runs: RUNS,
                seed: 2,
            },
        ],
        true,
    );
}

#[cfg_attr(not(debug_assertions), test)]
fn a_canary_twice_the_margin_slower_fails() {
    calibrate(
        &[
            Case {
                name: "p99 +40%, lognormal",
                canary: Version {
                    slower: 1.4,
                    ..HEALTHY
                },
                stable: HEALTHY,
                expect: Expect::Fail,
                runs: RUNS,
                seed: 3,
            },
            Case {
                name: "p99 +40%, 2% slow tail",
                canary: Version {
                    reply: MIXTURE,
                    slower: 1.4,
                    ..HEALTHY
                },
                stable: Version {
                    reply: MIXTURE,
                    ..HEALTHY
                },
                expect: Expect::Fail,
                runs: RUNS,
                seed: 4,
            },
        ],
        true,
    );
}

#[cfg_attr(not(debug_assertions), test)]
fn a_canary_twice_the_margin_more_erroneous_fails() {
    calibrate(
        &[Case {
            name: "errors +1pp (0.1% -> 1.1%)",
            canary: Version {
                errors: 0.011,
                ..HEALTHY
            },
            stable: HEALTHY,
            expect: Expect::Fail,
            runs: RUNS,
            seed: 5,
        }],
        true,
    );
}

#[cfg_attr(not(debug_assertions), test)]
fn a_canary_beyond_the_margin_never_passes() {
    calibrate(
        &[
            Case {
                name: "p99 +30%, lognormal",
                canary: Version {
                    slower: 1.3,
                    ..HEALTHY
                },
                stable: HEALTHY,
                expect: Expect::NotPass,
                runs: RUNS_TO_CAP,
                seed: 6,
            },
            Case {
                name: "errors +0.7pp (0.1% -> 0.8%)",
                canary: Version {
                    errors: 0.008,
                    ..HEALTHY
                },
                stable: HEALTHY,
                expect: Expect::NotPass,
                runs: RUNS_TO_CAP,
                seed: 7,
            },
        ],
        false,
    );
}
