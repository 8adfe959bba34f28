//! Calibration of the verdict rule by a seeded Monte Carlo over `judge()` (no sockets).
//!
//! For each split, at the planned N (default settings: confidence 0.99, tolerance 5
//! points): draw multinomial counts from the true split many times and judge each draw.
//! * True split = expected: FAIL in at most 1% and PASS in at least 97% of runs.
//! * One version off by twice the tolerance (every version, both directions that stay
//!   within 0..=1, the others absorbing the difference in proportion): FAIL in at least
//!   95% of runs. The planner makes the exact FAIL probability at least 95% for the
//!   worst such split, so where it sits right at 95% (99/1) the simulated rate is
//!   allowed three standard errors of Monte Carlo noise below 95%.
//! * The simulated rates agree with the planner's exact binomial figures (within four
//!   standard errors), which checks the planner's arithmetic against brute force.
//!
//! The sequential rule ([`checker_core::verdict::sequential`]) is calibrated the same way,
//! looking after every batch and stopping when decided (or at its cap, three times the
//! fixed plan): the same FAIL and PASS rates, the mean and 95th percentile of samples
//! used against the fixed plan (mean at most 0.75 times it, for the true split and for
//! each split off by twice the tolerance), and grossly wrong splits (weights swapped, a
//! zero-weight or unexpected version answering) FAILed within 200 connections every time.
//!
//! Run with `cargo test -p checker-core --test calibration -- --nocapture` to see the table
//! (columns of the sequential rows: split, true split, PASS, FAIL, mean samples, p95, max, fixed plan).

use std::time::Instant;

use checker_core::expect::Expectation;
use checker_core::verdict::sequential::{self, DEFAULT_BATCH};
use checker_core::verdict::{Outcome, Plan, Settings, judge, plan};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution};

/// Runs per case: a standard error of at most 0.36 points (0.15 near 95%) on any rate.
const RUNS: u32 = 20_000;

/// One multinomial draw of `n` samples over `shares`, by successive binomials.
fn draw(rng: &mut StdRng, n: u64, shares: &[f64]) -> Vec<u64> {
    let mut left = n;
    let mut mass = 1.0;
    let mut out = Vec::with_capacity(shares.len());
    for (i, &s) in shares.iter().enumerate() {
        let k = if i + 1 == shares.len() || left == 0 {
            left
        } else {
            let p = if mass > 0.0 {
                (s / mass).clamp(0.0, 1.0)
            } else {
                0.0
            };
            Binomial::new(left, p).expect("valid binomial").sample(rng)
        };
        out.push(k);
        left -= k;
        mass -= s;
    }
    out
}

/// Outcome rates over `RUNS` draws of the `truth` split judged against `expect`.
struct Rates {
    pass: f64,
    fail: f64,
}

fn simulate(expect: &Expectation, truth: &[f64], n: u64, seed: u64) -> Rates {
    let settings = Settings::default();
    let names: Vec<String> = expect.versions().iter().map(|v| v.name.clone()).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut pass, mut fail) = (0u32, 0u32);
    for _ in 0..RUNS {
        let counts: Vec<(String, u64)> = names
            .iter()
            .cloned()
            .zip(draw(&mut rng, n, truth))
            .collect();
        match judge(expect, &counts, &settings).outcome {
            Outcome::Pass => pass += 1,
            Outcome::Fail => fail += 1,
            Outcome::Inconclusive => {}
        }
    }
    Rates {
        pass: f64::from(pass) / f64::from(RUNS),
        fail: f64::from(fail) / f64::from(RUNS),
    }
}

/// The standard error of a rate near `p` over `RUNS` runs.
fn se(p: f64) -> f64 {
    (p * (1.0 - p) / f64::from(RUNS)).sqrt().max(1e-3)
}

/// Every split with one version moved by twice the tolerance (within 0..=1).
fn wrong_splits(shares: &[f64], tolerance: f64) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for (i, &e) in shares.iter().enumerate() {
        for target in [e + 2.0 * tolerance, e - 2.0 * tolerance] {
            if !(-1e-12..=1.0 + 1e-12).contains(&target) {
                continue;
            }
            let target = target.clamp(0.0, 1.0);
            let others = 1.0 - e;
            let m = shares.len() as f64;
            let split: Vec<f64> = shares
                .iter()
                .enumerate()
                .map(|(j, &s)| match (j == i, others > 0.0) {
                    (true, _) => target,
                    (false, true) => s * (1.0 - target) / others,
                    // Every other version expected zero: they share the rest equally.
                    (false, false) => (1.0 - target) / (m - 1.0),
                })
                .collect();
            // With two versions, moving one up is moving the other down: keep one copy.
            let seen = out
                .iter()
                .any(|o: &Vec<f64>| o.iter().zip(&split).all(|(a, b)| (a - b).abs() < 1e-9));
            if !seen {
                out.push(split);
            }
        }
    }
    out
}

fn calibrate(spec: &str, seed: u64) {
    let expect: Expectation = spec.parse().expect("valid split");
    let settings = Settings::default();
    let started = Instant::now();
    let Plan {
        samples: n,
        pass_probability,
        detect_probability,
    } = plan(&expect, &settings);
    let planned_in = started.elapsed();
    let shares: Vec<f64> = expect.versions().iter().map(|v| v.share).collect();
    let two_way = shares.len() == 2;

    let right = simulate(&expect, &shares, n, seed);
    println!(
        "{spec}: N = {n} (planned in {planned_in:?}); true split: PASS {:.2}% FAIL {:.2}% (planner: PASS >= {:.2}%)",
        100.0 * right.pass,
        100.0 * right.fail,
        100.0 * pass_probability
    );
    assert!(
        right.fail <= 0.01,
        "{spec}: FAIL rate {} at the true split",
        right.fail
    );
    assert!(
        right.pass >= 0.97,
        "{spec}: PASS rate {} at the true split",
        right.pass
    );
    if two_way {
        // Exact for two versions: simulation and arithmetic must agree.
        assert!(
            (right.pass - pass_probability).abs() <= 4.0 * se(pass_probability),
            "{spec}: simulated PASS {} vs planned {pass_probability}",
            right.pass
        );
    } else {
        assert!(right.pass >= pass_probability - 4.0 * se(pass_probability));
    }

    for (i, truth) in wrong_splits(&shares, settings.tolerance).iter().enumerate() {
        let wrong = simulate(&expect, truth, n, seed ^ (0x9e37_79b9 + i as u64));
        let shown: Vec<String> = truth.iter().map(|s| format!("{:.3}", s)).collect();
        println!(
            "{spec}:   true split {}: FAIL {:.2}% (planner: worst case >= {:.2}%)",
            shown.join("/"),
            100.0 * wrong.fail,
            100.0 * detect_probability
        );
        assert!(
            wrong.fail >= 0.95 - 3.0 * se(0.95),
            "{spec}: FAIL rate {} with the split at {truth:?}",
            wrong.fail
        );
        assert!(
            wrong.fail >= detect_probability - 4.0 * se(detect_probability),
            "{spec}: FAIL rate {} below the planner's {detect_probability} at {truth:?}",
            wrong.fail
        );
    }
}

#[test]
fn fifty_fifty() {
    calibrate("one=50,two=50", 1);
}

#[test]
fn eighty_twenty() {
    calibrate("one=80,two=20", 2);
}

#[test]
fn ninety_ten() {
    calibrate("one=90,two=10", 3);
}

#[test]
fn ninety_nine_one() {
    calibrate("one=99,two=1", 4);
}

#[test]
fn three_way() {
    calibrate("a=60,b=30,c=10", 5);
}

#[test]
fn all_to_one_version() {
    // 100/0: the zero-weight version must stay silent, the other must be shown >= 95%.
    calibrate("one=100,two=0", 6);
}

#[test]
fn a_correct_split_rarely_fails_at_any_sample_count() {
    // The FAIL side is controlled by the corrected confidence alone, not by the plan:
    // a correctly routed split fails in at most 1% of runs however many samples.
    for (spec, n, seed) in [
        ("one=50,two=50", 100, 7),
        ("one=50,two=50", 700, 8),
        ("one=90,two=10", 300, 9),
        ("one=99,two=1", 60, 10),
        ("a=60,b=30,c=10", 10_000, 11),
    ] {
        let expect: Expectation = spec.parse().expect("valid split");
        let shares: Vec<f64> = expect.versions().iter().map(|v| v.share).collect();
        let rates = simulate(&expect, &shares, n, seed);
        println!(
            "{spec} at N = {n}: PASS {:.2}% FAIL {:.2}%",
            100.0 * rates.pass,
            100.0 * rates.fail
        );
        assert!(
            rates.fail <= 0.01,
            "{spec} at {n}: FAIL rate {}",
            rates.fail
        );
    }
}

// ---- The sequential rule (verdict::sequential): looks after every batch, stops when decided.

/// Runs per sequential case: a standard error of at most 1.1 points on any rate (0.5 near 97%).
const SEQUENTIAL_RUNS: u32 = 2_000;

/// What the sequential rule did over [`SEQUENTIAL_RUNS`] runs of one true split.
struct Sequential {
    pass: f64,
    fail: f64,
    /// Mean attributed samples at the decision (or at the cap).
    mean: f64,
    /// 95th percentile of the same.
    p95: u64,
    /// The most any run used.
    max: u64,
}

/// Draws batches of [`DEFAULT_BATCH`] from `truth`, asking [`sequential::decide`] after
/// each, until it decides or `cap` samples were drawn; `names` may hold more names than
/// `expect` (versions nobody expected).
fn simulate_sequential(
    expect: &Expectation,
    names: &[String],
    truth: &[f64],
    cap: u64,
    seed: u64,
) -> Sequential {
    let settings = Settings::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut pass, mut fail) = (0u32, 0u32);
    let mut used = Vec::with_capacity(SEQUENTIAL_RUNS as usize);
    for _ in 0..SEQUENTIAL_RUNS {
        let mut counts: Vec<(String, u64)> = names.iter().map(|n| (n.clone(), 0)).collect();
        let mut n = 0;
        let outcome = loop {
            let batch = DEFAULT_BATCH.min(cap - n);
            for (slot, k) in counts.iter_mut().zip(draw(&mut rng, batch, truth)) {
                slot.1 += k;
            }
            n += batch;
            let outcome = sequential::decide(expect, &counts, &settings);
            if outcome != Outcome::Inconclusive || n >= cap {
                break outcome;
            }
        };
        match outcome {
            Outcome::Pass => pass += 1,
            Outcome::Fail => fail += 1,
            Outcome::Inconclusive => {}
        }
        used.push(n);
    }
    used.sort_unstable();
    let runs = f64::from(SEQUENTIAL_RUNS);
    Sequential {
        pass: f64::from(pass) / runs,
        fail: f64::from(fail) / runs,
        mean: used.iter().sum::<u64>() as f64 / runs,
        p95: used[(used.len() * 95 / 100).min(used.len() - 1)],
        max: used.last().copied().unwrap_or(0),
    }
}

/// The standard error of a rate near `p` over [`SEQUENTIAL_RUNS`] runs.
fn se_sequential(p: f64) -> f64 {
    (p * (1.0 - p) / f64::from(SEQUENTIAL_RUNS))
        .sqrt()
        .max(1e-3)
}

/// Calibrates the sequential rule for `spec` and prints its rows of the table: the true
/// split and every split with one version off by twice the tolerance.
fn calibrate_sequential(spec: &str, seed: u64) {
    let expect: Expectation = spec.parse().expect("valid split");
    let settings = Settings::default();
    let fixed = plan(&expect, &settings).samples;
    let cap = sequential::default_max_samples(&expect, &settings);
    let shares: Vec<f64> = expect.versions().iter().map(|v| v.share).collect();
    let names: Vec<String> = expect.versions().iter().map(|v| v.name.clone()).collect();
    let row = |what: &str, r: &Sequential| {
        println!(
            "| {spec} | {what} | {:.2}% | {:.2}% | {:.0} ({:.2}x) | {} ({:.2}x) | {} | {fixed} |",
            100.0 * r.pass,
            100.0 * r.fail,
            r.mean,
            r.mean / fixed as f64,
            r.p95,
            r.p95 as f64 / fixed as f64,
            r.max,
        );
    };
    let right = simulate_sequential(&expect, &names, &shares, cap, seed);
    row("true split", &right);
    assert!(right.fail <= 0.01, "{spec}: FAIL rate {}", right.fail);
    assert!(right.pass >= 0.97, "{spec}: PASS rate {}", right.pass);
    assert!(
        right.mean <= 0.75 * fixed as f64,
        "{spec}: mean {} samples against the fixed plan's {fixed}",
        right.mean
    );
    for (i, truth) in wrong_splits(&shares, settings.tolerance).iter().enumerate() {
        let wrong = simulate_sequential(&expect, &names, truth, cap, seed ^ (0x51ed + i as u64));
        let shown: Vec<String> = truth.iter().map(|s| format!("{s:.3}")).collect();
        row(&format!("off by 2x: {}", shown.join("/")), &wrong);
        assert!(
            wrong.fail >= 0.95 - 3.0 * se_sequential(0.95),
            "{spec}: FAIL rate {} with the split at {truth:?}",
            wrong.fail
        );
        assert!(
            wrong.mean <= 0.75 * fixed as f64,
            "{spec}: mean {} samples to FAIL the split at {truth:?} against the fixed {fixed}",
            wrong.mean
        );
    }
}

#[test]
fn sequential_fifty_fifty() {
    calibrate_sequential("one=50,two=50", 21);
}

#[test]
fn sequential_eighty_twenty() {
    calibrate_sequential("one=80,two=20", 22);
}

#[test]
fn sequential_ninety_ten() {
    calibrate_sequential("one=90,two=10", 23);
}

#[test]
fn sequential_ninety_nine_one() {
    calibrate_sequential("one=99,two=1", 24);
}

#[test]
fn sequential_three_way() {
    calibrate_sequential("a=60,b=30,c=10", 25);
}

#[test]
fn sequential_grossly_wrong_splits_fail_within_200_connections() {
    for (spec, truth, extra, seed) in [
        // Weights swapped.
        ("one=80,two=20", vec![0.2, 0.8], None, 31),
        ("one=90,two=10", vec![0.1, 0.9], None, 32),
        ("one=99,two=1", vec![0.01, 0.99], None, 33),
        // A zero-weight version answering a tenth of the connections.
        ("one=100,two=0", vec![0.9, 0.1], None, 34),
        ("one=90,two=10,three=0", vec![0.8, 0.1, 0.1], None, 35),
        // A version nobody expected answering a tenth.
        ("one=90,two=10", vec![0.8, 0.1, 0.1], Some("ghost"), 36),
    ] {
        let expect: Expectation = spec.parse().expect("valid split");
        let mut names: Vec<String> = expect.versions().iter().map(|v| v.name.clone()).collect();
        names.extend(extra.map(str::to_owned));
        let r = simulate_sequential(&expect, &names, &truth, 200, seed);
        println!(
            "{spec} with the true split {truth:?}{}: FAIL {:.2}%, mean {:.0}, p95 {}, max {}",
            extra.map_or(String::new(), |n| format!(" (last: {n})")),
            100.0 * r.fail,
            r.mean,
            r.p95,
            r.max
        );
        assert_eq!(
            r.fail, 1.0,
            "{spec} at {truth:?}: not every run FAILed within 200"
        );
    }
}
