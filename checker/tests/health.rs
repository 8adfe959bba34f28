//! Health checks end to end: the real checker binary against the in-process fault
//! server of test-support (versions in turn, one slowed or corrupting on purpose):
//! `--compare`, `--threshold`, `--baseline` (exit 5) and `checker merge`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::run_checker;
use test_support::fault::{Behaviour, FaultServer};

fn verify(target: &str, expect: &str, extra: &[&str]) -> support::Run {
    let mut args = vec!["verify", "--target", target, "--expect", expect];
    args.extend_from_slice(extra);
    run_checker(&args)
}

fn metric<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["health"]["comparison"]["metrics"]
        .as_array()
        .expect("comparison metrics")
        .iter()
        .find(|m| m["metric"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {doc:#}"))
}

#[test]
/// Every reply of the canary comes 2 ms later. On a quiet machine the loopback p99 is
/// well under a millisecond and p99 alone catches it (as the pure comparison's test
/// shows); on a loaded shared machine the p99 of both versions is tens of milliseconds
/// of scheduling noise, so this end-to-end test holds the median to a margin too and
/// asserts on that, which the delay moves under any load.
fn a_canary_2ms_slower_fails_the_comparison_with_exit_5() {
    let server = FaultServer::start(vec![
        Behaviour::healthy("one", 1),
        Behaviour::healthy("two", 1).slowed(Duration::from_millis(2)),
    ]);
    let run = verify(
        &server.target(),
        "one=50,two=50",
        &[
            "--samples",
            "2000",
            "--concurrency",
            "4",
            "--compare",
            "two=one",
            "--max-latency-increase",
            "p50=20%,p99=20%",
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 5, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["split"]["outcome"], "PASS");
    assert_eq!(doc["health"]["outcome"], "FAIL");
    let p50 = metric(&doc, "p50_reply");
    assert_eq!(p50["outcome"], "FAIL", "{p50:#}");
    assert!(p50["interval"]["low"].as_f64().unwrap() > 0.2, "{p50:#}");
    assert!(p50["canary"].as_f64().unwrap() >= 2000.0, "{p50:#}");
    let p99 = metric(&doc, "p99_reply");
    assert!(p99["canary"].as_f64().unwrap() >= 2000.0, "{p99:#}");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap()
            .starts_with("FAIL on health"),
        "{doc:#}"
    );
}

#[test]
/// 2,000 connections cannot prove a p99 within 20% or an error rate within half a
/// point: an identical canary is INCONCLUSIVE there (exit 3), never PASSed unproven
/// and never FAILed. With margins those samples can prove it PASSes (exit 0).
fn an_identical_canary_passes_only_what_its_samples_prove() {
    let server = FaultServer::start(vec![
        Behaviour::healthy("one", 1),
        Behaviour::healthy("two", 1),
    ]);
    let unproven = verify(
        &server.target(),
        "one=50,two=50",
        &[
            "--samples",
            "2000",
            "--compare",
            "two=one",
            "--output",
            "json",
        ],
    );
    assert_eq!(unproven.code, 3, "{unproven:?}");
    let doc = unproven.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["split"]["outcome"], "PASS");
    assert_eq!(doc["health"]["outcome"], "INCONCLUSIVE");
    for m in doc["health"]["comparison"]["metrics"].as_array().unwrap() {
        assert_ne!(m["outcome"], "FAIL", "{m:#}");
        if m["outcome"] == "INCONCLUSIVE" {
            assert!(m["more_samples"].as_u64().unwrap() > 0, "{m:#}");
        }
    }
    let error_rate = metric(&doc, "error_rate");
    assert_eq!(error_rate["finding"], "not_proven_within", "{error_rate:#}");

    let proven = verify(
        &server.target(),
        "one=50,two=50",
        &[
            "--samples",
            "2000",
            "--compare",
            "two=one",
            "--max-latency-increase",
            "p50=100%",
            "--max-error-increase",
            "2pp",
        ],
    );
    assert_eq!(proven.code, 0, "{proven:?}");
    assert!(
        proven.stdout.contains("✔ canary two against stable one"),
        "{proven:?}"
    );
    assert!(proven.stdout.contains("p50_reply"), "{proven:?}");
}

#[test]
fn a_canary_corrupting_replies_fails_on_attributed_errors() {
    let server = FaultServer::start(vec![
        Behaviour::healthy("one", 1),
        Behaviour::healthy("two", 1).corrupting(10),
    ]);
    let run = verify(
        &server.target(),
        "one=50,two=50",
        &[
            "--samples",
            "2000",
            "--compare",
            "two=one",
            "--max-error-rate",
            "20%",
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 5, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    let errors = metric(&doc, "error_rate");
    assert_eq!(errors["outcome"], "FAIL", "{errors:#}");
    assert!((errors["canary"].as_f64().unwrap() - 0.1).abs() < 0.01);
    assert_eq!(errors["stable"].as_f64().unwrap(), 0.0);
    assert_eq!(doc["health"]["comparison"]["unattributed_errors"], 0);
    assert_eq!(doc["tally"]["version_errors"]["two"], 100);
}

#[test]
fn thresholds_are_listed_and_a_failed_one_exits_5() {
    let server = FaultServer::start(vec![Behaviour::healthy("one", 1)]);
    let target = server.target();
    let base = ["--samples", "300", "--threshold", "p99_reply<10s"];
    let pass = verify(
        &target,
        "one=100",
        &[&base[..], &["--threshold", "one.error_rate<0.1%"]].concat(),
    );
    assert_eq!(pass.code, 0, "{pass:?}");
    assert!(pass.stdout.contains("✔ p99_reply<10s"), "{pass:?}");
    assert!(
        pass.stdout.contains("✔ one.error_rate<0.1% (0.00%)"),
        "{pass:?}"
    );
    let fail = verify(
        &target,
        "one=100",
        &[
            &base[..],
            &[
                "--threshold",
                "samples_per_s>1000000000",
                "--output",
                "json",
            ],
        ]
        .concat(),
    );
    assert_eq!(fail.code, 5, "{fail:?}");
    let doc = fail.json();
    support::assert_schema_valid(&doc);
    let list = doc["health"]["thresholds"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["outcome"], "PASS");
    assert_eq!(list[1]["outcome"], "FAIL");
    assert!(list[1]["actual"].as_f64().unwrap() > 0.0);
    let bad = verify(&target, "one=100", &["--threshold", "p99_rtt<1ms"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("p99_rtt"), "{bad:?}");
}

#[test]
fn a_regression_against_the_baseline_exits_5_and_lists_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let base = base.to_str().unwrap();
    let server = FaultServer::start(vec![Behaviour::healthy("one", 1)]);
    let target = server.target();
    let run = verify(&target, "one=100", &["--samples", "300", "--json", base]);
    assert_eq!(run.code, 0, "{run:?}");
    // A report of another target is no baseline.
    let other = FaultServer::start(vec![Behaviour::healthy("one", 1)]);
    let refused = verify(
        &other.target(),
        "one=100",
        &["--samples", "10", "--baseline", base],
    );
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("is a report of"), "{refused:?}");
    // The same target, now 30 ms slower: far beyond what load alone adds to a median.
    server.set_delay("one", Duration::from_millis(30));
    let run = verify(
        &target,
        "one=100",
        &[
            "--samples",
            "300",
            "--baseline",
            base,
            "--max-regression",
            "p50=20%",
            "--output",
            "json",
        ],
    );
    assert_eq!(run.code, 5, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    let figures = doc["health"]["baseline"]["figures"].as_array().unwrap();
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["figure"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "p50_connect",
            "one.p50_connect",
            "p50_reply",
            "one.p50_reply"
        ]
    );
    let reply = &figures[3];
    assert_eq!(reply["outcome"], "FAIL", "{reply:#}");
    assert!(reply["change"].as_f64().unwrap() > 0.2, "{reply:#}");
}

/// Counts per version in a samples file (one JSON line per sample).
fn count_samples(path: &std::path::Path, into: &mut BTreeMap<String, u64>) -> u64 {
    let text = std::fs::read_to_string(path).expect("read the samples file");
    let mut lines = 0;
    for line in text.lines() {
        let sample: Value = serde_json::from_str(line).expect("a JSON sample line");
        let key = sample["version"].as_str().unwrap_or("(error)").to_owned();
        *into.entry(key).or_default() += 1;
        lines += 1;
    }
    lines
}

#[test]
fn four_runs_merge_into_the_verdict_of_their_samples_taken_together() {
    let server = FaultServer::start(vec![
        Behaviour::healthy("one", 9),
        Behaviour::healthy("two", 1).corrupting(25),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    let mut together = BTreeMap::new();
    for i in 0..4 {
        let json = dir.path().join(format!("run{i}.json"));
        let samples = dir.path().join(format!("run{i}.jsonl"));
        let run = verify(
            &server.target(),
            "one=90,two=10",
            &[
                "--samples",
                "300",
                "--compare",
                "two=one",
                "--threshold",
                "two.p99_reply<10s",
                "--json",
                json.to_str().unwrap(),
                "--samples-out",
                samples.to_str().unwrap(),
            ],
        );
        assert!([0, 3, 5].contains(&run.code), "{run:?}");
        assert_eq!(count_samples(&samples, &mut together), 300);
        reports.push(json.to_str().unwrap().to_owned());
    }
    let mut args = vec!["merge", "--output", "json"];
    args.extend(reports.iter().map(String::as_str));
    let merged = run_checker(&args);
    let doc = merged.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["counts"]["attempted"], 1200);
    // The counts are those of the samples taken together...
    for v in doc["versions"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        assert_eq!(v["count"].as_u64(), together.get(name).copied(), "{name}");
    }
    assert_eq!(
        doc["counts"]["errors"].as_u64(),
        together.get("(error)").copied().or(Some(0))
    );
    // ...and so is the verdict: the split judged on those counts, the comparison and
    // the threshold recomputed on the merged histograms.
    let expect: checker_core::expect::Expectation = "one=90,two=10".parse().unwrap();
    let counts: Vec<(String, u64)> = together
        .iter()
        .filter(|(k, _)| *k != "(error)")
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let split = checker_core::verdict::judge(&expect, &counts, &Default::default());
    let outcome = serde_json::to_value(split.outcome).unwrap();
    assert_eq!(doc["split"]["outcome"], outcome);
    for (v, judged) in doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&split.versions)
    {
        assert_eq!(v["interval"]["low"].as_f64(), Some(judged.interval.low));
        assert_eq!(v["interval"]["high"].as_f64(), Some(judged.interval.high));
    }
    assert_eq!(
        doc["tally"]["version_errors"]["two"].as_u64(),
        together.get("(error)").copied()
    );
    assert_eq!(metric(&doc, "error_rate")["outcome"], "FAIL");
    assert_eq!(doc["health"]["thresholds"][0]["outcome"], "PASS");
    assert_eq!(
        merged.code as i64,
        doc["exit_code"].as_i64().unwrap(),
        "{merged:?}"
    );
}

#[test]
fn merge_refuses_reports_of_different_checks_in_one_sentence() {
    let a = FaultServer::start(vec![Behaviour::healthy("one", 1)]);
    let b = FaultServer::start(vec![Behaviour::healthy("one", 1)]);
    let dir = tempfile::tempdir().unwrap();
    let (ja, jb) = (dir.path().join("a.json"), dir.path().join("b.json"));
    for (server, json) in [(&a, &ja), (&b, &jb)] {
        let run = verify(
            &server.target(),
            "one=100",
            &["--samples", "300", "--json", json.to_str().unwrap()],
        );
        assert_eq!(run.code, 0, "{run:?}");
    }
    // A share of a parallel run exits 0 with --report-only; its report keeps the code.
    let share = verify(
        &a.target(),
        "one=100",
        &["--samples", "5", "--report-only", "--output", "json"],
    );
    assert_eq!(share.code, 0, "{share:?}");
    assert_eq!(share.json()["exit_code"], 3);
    let run = run_checker(&["merge", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("their targets differ"), "{run:?}");
    let run = run_checker(&["merge", ja.to_str().unwrap(), jb.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("their targets differ"), "{run:?}");
    let run = run_checker(&["merge", dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cannot read the report"), "{run:?}");
}
