//! `checker verify` end to end without a proxy: the real checker binary against the real
//! echo-server binary and small fault servers, over loopback sockets.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{BOUND, EchoServer, Fault, FaultServer, Guard, run_checker, wait_output};

fn verify(target: &str, expect: &str, extra: &[&str]) -> support::Run {
    let mut args = vec!["verify", "--target", target, "--expect", expect];
    args.extend_from_slice(extra);
    run_checker(&args)
}

fn version<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["versions"]
        .as_array()
        .expect("versions array")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no version {name} in {doc:#}"))
}

fn error_count(doc: &Value, class: &str) -> u64 {
    doc["errors"]["by_class"][class]
        .as_u64()
        .expect("error count")
}

#[test]
fn one_version_straight_without_a_proxy_passes() {
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let run = verify(
        &target,
        "one=100,two=0",
        &["--samples", "400", "--output", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["outcome"], "PASS");
    assert_eq!(doc["counts"]["attempted"], 400);
    assert_eq!(doc["counts"]["errors"], 0);
    assert_eq!(version(&doc, "one")["count"], 400);
    assert_eq!(version(&doc, "two")["count"], 0);
    assert!(version(&doc, "one")["latency_us"]["reply"]["count"].as_u64() == Some(400));
    // This machine's readings are reported; without errors nothing local is blamed.
    let local = &doc["errors"]["local_readings"];
    if std::path::Path::new("/proc/sys/net/ipv4/ip_local_port_range").exists() {
        assert!(
            local["local_ports"].as_u64().is_some_and(|n| n > 0),
            "{local}"
        );
    }
    if std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists() {
        assert!(local["conntrack_max"].as_u64().is_some(), "{local}");
    }
    assert!(doc["errors"]["local_cause"].is_null(), "{doc:#}");
    let windows: u64 = doc["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|w| w["counts"]["one"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(windows, 400);
}

#[test]
fn the_text_report_shows_the_plan_a_table_and_a_verdict_line() {
    let server = EchoServer::start("one", 1);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let target = server.addr().to_string();
    let run = verify(
        &target,
        "one=100,two=0",
        &["--json", json.to_str().unwrap(), "--no-sequential"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("plan: "), "{run:?}");
    assert!(run.stdout.contains("VERSION"), "{run:?}");
    assert!(run.stdout.contains("✔ PASS"), "{run:?}");
    assert!(
        run.stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("✔ PASS:"),
        "{run:?}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    support::assert_schema_valid(&doc);
    let planned = doc["plan"]["samples"]
        .as_u64()
        .expect("a plan without --samples");
    assert_eq!(doc["counts"]["attempted"].as_u64(), Some(planned));
    assert!(
        run.stdout.contains(&format!("plan: {planned} connections")),
        "{run:?}"
    );
}

#[test]
fn sequential_is_the_default_and_stops_as_soon_as_the_evidence_decides() {
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let run = verify(&target, "one=100,two=0", &["--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["mode"], "sequential");
    assert_eq!(doc["stop_reason"], "decided");
    let seq = &doc["sequential"];
    assert_eq!(seq["method"], "beta-binomial mixture confidence sequence");
    assert!(
        seq["reference"].as_str().unwrap().contains("Howard"),
        "{seq}"
    );
    let planned = doc["plan"]["samples"].as_u64().expect("the fixed plan");
    let used = seq["samples_used"].as_u64().unwrap();
    let batch = seq["batch"].as_u64().unwrap();
    // Decided at a batch boundary, before the fixed plan, and no sample counted after it.
    assert_eq!(used % batch, 0, "{seq}");
    assert_eq!(seq["deciding_batch"].as_u64(), Some(used / batch), "{seq}");
    assert!(
        used < planned,
        "{used} samples against the fixed plan's {planned}"
    );
    assert_eq!(doc["counts"]["attempted"].as_u64(), Some(used));
    assert_eq!(seq["max_samples"].as_u64(), Some(3 * planned));
    // The samples the other 31 connections carried when the verdict came are not counted:
    // a window about the `used`-th id says so (windows follow the fixed plan's ids), and
    // the drift check leaves it out.
    let window_of = |id: u64| (id * 10 / planned).min(9);
    let around = window_of(used.saturating_sub(32))..=window_of(used + 32);
    let left_out: Vec<u64> = doc["windows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["left_out"].as_u64().is_some_and(|n| n > 0))
        .map(|w| w["index"].as_u64().unwrap())
        .collect();
    assert!(
        left_out.iter().any(|i| around.contains(i)),
        "windows {around:?} hold the samples in flight at the verdict; with some left out: {left_out:?}"
    );

    // The text report says so too.
    let run = verify(&target, "one=100,two=0", &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("plan: sequential"), "{run:?}");
    assert!(
        run.stdout.contains("sequential: decided at look"),
        "{run:?}"
    );
}

#[test]
fn sequential_fails_a_swapped_split_at_the_first_look() {
    // Only `two` answers while one=90,two=10 is expected: the weights are upside down.
    let server = EchoServer::start("two", 1);
    let run = verify(
        &server.addr().to_string(),
        "one=90,two=10",
        &["--output", "json"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["outcome"], "FAIL");
    assert_eq!(doc["stop_reason"], "decided");
    assert_eq!(doc["sequential"]["deciding_batch"], 1, "{doc:#}");
    assert_eq!(doc["counts"]["attempted"], doc["sequential"]["batch"]);
}

#[test]
fn sequential_stops_inconclusive_at_max_samples_and_says_how_many_more() {
    let server = EchoServer::start("one", 1);
    let run = verify(
        &server.addr().to_string(),
        "one=100,two=0",
        &["--output", "json", "--max-samples", "20"],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["stop_reason"], "samples");
    assert_eq!(doc["counts"]["attempted"], 20);
    assert!(doc["sequential"]["deciding_batch"].is_null(), "{doc:#}");
    let reason = doc["reason"].as_str().unwrap();
    assert!(reason.contains("more connections would"), "{reason}");
    assert!(version(&doc, "one")["more_samples"].as_u64().unwrap() > 0);
}

#[test]
fn no_sequential_and_a_fixed_count_keep_the_fixed_plan() {
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let run = verify(
        &target,
        "one=100,two=0",
        &["--output", "json", "--no-sequential"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["mode"], "fixed");
    assert!(doc["sequential"].is_null());
    assert_eq!(doc["counts"]["attempted"], doc["plan"]["samples"]);
    let run = verify(
        &target,
        "one=100,two=0",
        &["--output", "json", "--samples", "77"],
    );
    let doc = run.json();
    assert_eq!(doc["mode"], "fixed");
    assert_eq!(doc["counts"]["attempted"], 77);
    // --max-samples belongs to sequential runs only.
    let run = verify(
        &target,
        "one=100",
        &["--samples", "77", "--max-samples", "100"],
    );
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn a_zero_weight_version_answering_fails_the_split() {
    let server = EchoServer::start("two", 1);
    let run = verify(
        &server.addr().to_string(),
        "one=100,two=0",
        &["--samples", "50", "--output", "json"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(version(&doc, "two")["outcome"], "FAIL");
    assert_eq!(doc["split"]["outcome"], "FAIL");
    assert!(doc["reason"].as_str().unwrap().contains("two"), "{doc:#}");
}

#[test]
fn an_unexpected_version_fails_the_split() {
    let server = EchoServer::start("three", 1);
    let run = verify(
        &server.addr().to_string(),
        "one=50,two=50",
        &["--samples", "30", "--output", "json"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    let three = version(&doc, "three");
    assert_eq!(three["was_expected"], false);
    assert_eq!(three["outcome"], "FAIL");
    assert_eq!(three["count"], 30);
}

#[test]
/// At 99.99% the intervals' confidence has two decimals, which one decimal would round
/// to 100.0%.
fn the_table_header_shows_the_confidence_with_enough_digits() {
    let server = EchoServer::start("one", 1);
    let run = verify(
        &server.addr().to_string(),
        "one=100,two=0",
        &["--samples", "50", "--confidence", "99.99%"],
    );
    assert!(run.stdout.contains("INTERVAL (99.99%)"), "{run:?}");
    assert!(!run.stdout.contains("INTERVAL (100.0%)"), "{run:?}");
}

#[test]
/// `--flag -1` gets the flag's own sentence, as `--flag=-1` does, not "unexpected
/// argument '-1'".
fn a_negative_number_as_a_separate_argument_gets_the_flags_own_sentence() {
    let verify_args = ["verify", "--target", "127.0.0.1:9", "--expect", "one=1"];
    for (args, flag) in [
        (&verify_args[..], "--hold"),
        (&verify_args[..], "--samples"),
        (&verify_args[..], "--concurrency"),
        (&["rehearse"][..], "--replicas"),
    ] {
        for form in [
            vec![flag.to_owned(), "-1".to_owned()],
            vec![format!("{flag}=-1")],
        ] {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(form.iter().map(String::as_str));
            let run = run_checker(&all);
            assert_eq!(run.code, 2, "{all:?}: {run:?}");
            assert!(
                run.stderr.contains(&format!("\"-1\" for {flag}")),
                "{all:?}: {run:?}"
            );
            assert!(!run.stderr.contains("unexpected argument"), "{run:?}");
        }
    }
}

#[test]
/// A duration too long for a duration is told so, with the limit, not "must be longer
/// than zero".
fn a_duration_too_long_is_told_so_with_the_limit() {
    let run = support::run_checker_env(
        &["verify", "--target", "127.0.0.1:9", "--expect", "one=1"],
        &[("CHECKER_DURATION", std::ffi::OsStr::new("1e99"))],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "invalid value \"1e99\" in the environment variable CHECKER_DURATION (for --duration): is too long: a duration must be shorter than 2^64 seconds"
        ),
        "{run:?}"
    );
    assert!(!run.stderr.contains("longer than zero"), "{run:?}");
}

#[test]
/// `--hold` opens every connection at once before sampling: capped, with the cap said.
fn hold_is_capped_with_a_clear_sentence() {
    let run = run_checker(&[
        "verify",
        "--target",
        &support::closed_port().to_string(),
        "--expect",
        "one=1",
        "--samples",
        "5",
        "--hold",
        "100000",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("invalid value \"100000\" for --hold: must be a whole number from 1 to 1000"),
        "{run:?}"
    );
}

#[test]
fn a_refusing_target_is_unreachable_exit_4() {
    let addr = support::closed_port();
    let run = verify(
        &addr.to_string(),
        "one=90,two=10",
        &["--samples", "20", "--output", "json"],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(error_count(&doc, "refused"), 20);
    assert_eq!(doc["errors"]["unreachable"], true);
    assert_eq!(doc["outcome"], "FAIL");
    assert!(doc["reason"].as_str().unwrap().contains("unreachable"));
}

fn fault_gives(fault: Fault, class: &str, extra: &[&str]) {
    let server = FaultServer::start(fault);
    let mut args = vec!["--samples", "12", "--output", "json"];
    args.extend_from_slice(extra);
    let run = verify(&server.addr.to_string(), "one=50,two=50", &args);
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(error_count(&doc, class), 12, "{doc:#}");
    assert_eq!(doc["counts"]["errors"], 12);
    let text = verify(
        &server.addr.to_string(),
        "one=50,two=50",
        &["--samples", "3"],
    );
    assert_eq!(text.code, 4, "{text:?}");
    assert!(text.stdout.contains(class), "{text:?}");
}

#[test]
fn a_garbage_reply_is_malformed() {
    fault_gives(Fault::Garbage, "malformed_reply", &[]);
}

#[test]
fn closing_before_the_reply_is_classified() {
    fault_gives(Fault::CloseEarly, "closed_before_reply", &[]);
}

#[test]
fn a_reply_that_never_comes_times_out() {
    fault_gives(
        Fault::Silent,
        "reply_timeout",
        &["--reply-timeout", "200ms"],
    );
}

#[test]
fn a_reset_is_classified() {
    fault_gives(Fault::Reset, "reset", &[]);
}

#[test]
fn the_error_budget_decides_whether_errors_alone_fail() {
    let server = FaultServer::start(Fault::EveryThirdGarbage);
    let target = server.addr.to_string();
    let over = verify(
        &target,
        "one=100,two=0",
        &["--samples", "300", "--output", "json"],
    );
    assert_eq!(over.code, 4, "{over:?}");
    let doc = over.json();
    assert_eq!(error_count(&doc, "malformed_reply"), 100);
    assert_eq!(doc["errors"]["unreachable"], false);
    assert_eq!(doc["errors"]["outcome"], "FAIL");
    let within = verify(
        &target,
        "one=100,two=0",
        &[
            "--samples",
            "300",
            "--max-error-rate",
            "50%",
            "--output",
            "json",
        ],
    );
    assert_eq!(within.code, 0, "{within:?}");
    assert_eq!(within.json()["errors"]["outcome"], "PASS");
}

#[test]
fn samples_out_writes_one_parseable_line_per_sample() {
    let server = EchoServer::start("one", 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    let run = verify(
        &server.addr().to_string(),
        "one=100,two=0",
        &["--samples", "200", "--samples-out", path.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut ids: Vec<u64> = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            v["schema_version"],
            report::samples::SCHEMA_VERSION,
            "{line}"
        );
        assert_eq!(v["version"], "one", "{line}");
        assert!(v["error"].is_null(), "{line}");
        assert!(v["connect_us"].is_u64() && v["reply_us"].is_u64(), "{line}");
        let ts = v["timestamp"].as_str().unwrap();
        assert!(
            humantime::parse_rfc3339(ts).is_ok() && ts.ends_with('Z'),
            "{line}"
        );
        ids.push(v["id"].as_u64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..200).collect::<Vec<_>>());
}

#[test]
fn samples_out_records_error_classes() {
    let addr = support::closed_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    let run = verify(
        &addr.to_string(),
        "one=1,two=1",
        &["--samples", "5", "--samples-out", path.to_str().unwrap()],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 5);
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["error"], "refused");
        assert!(v["version"].is_null() && v["connect_us"].is_null());
    }
}

#[test]
fn ipv6_targets_work() {
    let server = EchoServer::start_on("::1", "one", 1);
    let target = server.addr().to_string();
    assert!(target.starts_with("[::1]:"), "{target}");
    let run = verify(
        &target,
        "one=100,two=0",
        &["--samples", "200", "--output", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["inputs"]["addresses"][0], target);
}

#[test]
fn names_are_resolved() {
    let server = EchoServer::start("one", 1);
    let target = format!("localhost:{}", server.addr().port());
    let run = verify(
        &target,
        "one=100,two=0",
        &["--samples", "200", "--output", "json"],
    );
    // localhost may also resolve to ::1 where nothing listens: then those samples are refused.
    let doc = run.json();
    assert!(
        doc["inputs"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == &Value::from(server.addr().to_string()))
    );
    assert!(
        version(&doc, "one")["count"].as_u64().unwrap() > 0,
        "{run:?}"
    );
}

#[test]
fn a_duration_bounds_the_run() {
    let server = EchoServer::start("one", 1);
    let run = verify(
        &server.addr().to_string(),
        "one=100,two=0",
        &["--duration", "1s", "--concurrency", "4", "--output", "json"],
    );
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["stop_reason"], "duration", "{run:?}");
    assert!(doc["counts"]["attempted"].as_u64().unwrap() > 0);
    assert!(doc["plan"].is_object());
}

#[test]
fn a_rate_paces_samples_and_reports_the_schedule() {
    let server = EchoServer::start("one", 1);
    let run = verify(
        &server.addr().to_string(),
        "one=100,two=0",
        &["--samples", "100", "--rate", "500", "--output", "json"],
    );
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["counts"]["attempted"], 100, "{run:?}");
    assert_eq!(doc["schedule"]["rate"], 500.0);
    assert_eq!(doc["schedule"]["lag_us"]["count"], 100);
    // 100 samples at 500/s cannot finish before the 99th is due (198 ms after the start).
    assert!(doc["elapsed_s"].as_f64().unwrap() >= 0.198, "{doc:#}");
}

/// Starts the checker with `args`, waits until `ready` (its `Err` says what is still
/// missing; bounded by [`BOUND`]), interrupts it with SIGINT and returns what it printed
/// and its JSON report, checked against the schema and stopped as interrupted.
fn interrupted_when(
    args: &[&str],
    mut ready: impl FnMut() -> Result<(), String>,
) -> (support::Run, Value) {
    let child = std::process::Command::new(support::checker())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the checker");
    let guard = Guard(child);
    let deadline = Instant::now() + BOUND;
    while let Err(missing) = ready() {
        assert!(
            Instant::now() < deadline,
            "not ready within {BOUND:?}: {missing}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &guard.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let run = wait_output(guard);
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["stop_reason"], "interrupted", "{run:?}");
    (run, doc)
}

#[test]
fn samples_still_in_flight_at_the_stop_are_no_drift() {
    // 1,000 connections, one and two in turn; from the 900th on, two's replies never come.
    // When everything else is done the run is interrupted: the last window has the 50
    // `one` samples and none of the 50 `two` ones (abandoned in flight). Counted as they
    // stand, the split "moved" 50 points; the window says what it lacks and the drift
    // check leaves it out.
    let server = FaultServer::start(Fault::SilentTwoFrom(900));
    let target = server.addr.to_string();
    let args = [
        "verify",
        "--target",
        &target,
        "--expect",
        "one=50,two=50",
        "--samples",
        "1000",
        "--concurrency",
        "64",
        "--reply-timeout",
        "10m",
        "--no-progress",
        "--output",
        "json",
    ];
    let (run, doc) = interrupted_when(&args, || {
        // The 50 `two`s from the 900th on are held open; the 950 others are done.
        let (accepted, finished) = (server.accepted(), server.finished());
        if accepted == 1000 && finished == 950 {
            Ok(())
        } else {
            Err(format!("accepted {accepted}, finished {finished}"))
        }
    });
    assert_eq!(doc["counts"]["attempted"], 950, "{run:?}");
    let windows = doc["windows"].as_array().unwrap();
    let left_out: u64 = windows
        .iter()
        .map(|w| w["left_out"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(left_out, 50, "{windows:?}");
    let last = &windows[9];
    assert!(last["left_out"].as_u64().unwrap() > 40, "{last}");
    assert!(last["counts"]["two"].as_u64().unwrap_or(0) < 5, "{last}");
    assert!(
        doc["drift"]["windows_left_out"].as_u64().unwrap() >= 1,
        "{:#}",
        doc["drift"]
    );
    assert_eq!(doc["drift"]["moved"], false, "{:#}", doc["drift"]);
    assert!(
        doc["drift"]["max_shift"].as_f64().unwrap() < 0.05,
        "{:#}",
        doc["drift"]
    );
    assert!(
        !doc["reason"].as_str().unwrap().contains("moved"),
        "{}",
        doc["reason"]
    );
}

#[test]
fn ctrl_c_stops_sampling_and_still_reports() {
    let server = EchoServer::start("one", 1);
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let target = server.addr().to_string();
    let args = [
        "verify",
        "--target",
        &target,
        "--expect",
        "one=100,two=0",
        "--duration",
        "10m",
        "--rate",
        "200",
        "--output",
        "json",
        "--samples-out",
        samples.to_str().unwrap(),
    ];
    let (run, doc) = interrupted_when(&args, || {
        match std::fs::metadata(&samples).map_or(0, |m| m.len()) {
            0 => Err("no sample written".to_owned()),
            _ => Ok(()),
        }
    });
    assert!(doc["counts"]["attempted"].as_u64().unwrap() > 0);
    let lines = std::fs::read_to_string(&samples).unwrap().lines().count() as u64;
    assert_eq!(Some(lines), doc["counts"]["attempted"].as_u64());
    // The warning about the stop is logged, without colour codes in a pipe.
    assert!(run.stderr.contains("Ctrl-C"), "{run:?}");
    assert!(
        !run.stderr.contains('\x1b'),
        "colour codes in a pipe: {run:?}"
    );
}

#[test]
fn usage_errors_exit_2_with_one_sentence() {
    for args in [
        &[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "one=0,two=0",
        ][..],
        &["verify", "--target", "127.0.0.1:0", "--expect", "one=1"],
        &[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "a=1,b=1",
            "--rate",
            "0.0002",
        ],
        &[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "a=1,b=1",
            "--samples",
            "-3",
        ],
        &["verify", "--target", "nope", "--expect", "one=1,two=1"],
        &["verify", "--expect", "one=1,two=1"],
        &[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "a=1,b=1",
            "--samples",
            "5",
            "--duration",
            "1s",
        ],
        &[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "a=1,b=1",
            "--concurrency",
            "0",
        ],
        &[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "a=1,b=1",
            "--confidence",
            "100%",
        ],
        &[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "a=1,b=1",
            "--samples",
            "1",
            "--samples-out",
            "/nonexistent-directory/samples.jsonl",
        ],
        // Without --samples the plan line goes to stdout once sampling is about to start:
        // an unwritable --json must stop the run before that.
        &[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "a=1,b=1",
            "--json",
            "/nonexistent-directory/report.json",
        ],
    ] {
        let run = run_checker(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
        assert!(!run.stderr.trim().is_empty(), "{args:?}: {run:?}");
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let run = run_checker(&["verify", "--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    for code in [
        "0  PASS",
        "1  FAIL",
        "2  usage",
        "3  INCONCLUSIVE",
        "4  FAIL on errors",
    ] {
        assert!(run.stdout.contains(code), "{code}: {run:?}");
    }
    assert!(run.stdout.contains("CHECKER_TARGET"), "{run:?}");
}

#[test]
fn flags_fall_back_to_the_environment() {
    let server = EchoServer::start("one", 1);
    let child = std::process::Command::new(support::checker())
        .arg("verify")
        .env("CHECKER_TARGET", server.addr().to_string())
        .env("CHECKER_EXPECT", "one=100,two=0")
        .env("CHECKER_SAMPLES", "77")
        .env("CHECKER_OUTPUT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = wait_output(Guard(child));
    assert_eq!(run.json()["counts"]["attempted"], 77, "{run:?}");
}

#[test]
fn a_closed_stdout_does_not_panic_and_the_exit_code_keeps_the_verdict() {
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let mut child = std::process::Command::new(support::checker())
        .args(["verify", "--target", &target, "--expect", "one=100,two=0"])
        .args(["--samples", "200"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start checker");
    // Like `checker verify ... | head -0`: the reader is gone before anything is printed.
    drop(child.stdout.take());
    let run = wait_output(Guard(child));
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    assert_eq!(run.code, 0, "{run:?}");
}

/// Exit code, stdout and stderr of the checker run with extra environment variables.
fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> support::Run {
    let mut command = std::process::Command::new(support::checker());
    command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    wait_output(Guard(command.spawn().expect("start checker")))
}

#[test]
/// A target that accepts every connection is reachable: what went wrong after the
/// accept is said (no reply, a reset, a close), in the verdict sentence and the text.
fn a_target_that_accepts_then_never_answers_or_resets_is_not_called_unreachable() {
    for (fault, says) in [
        (
            Fault::Silent,
            "accepted every connection, then no reply came",
        ),
        (Fault::Reset, "accepted every connection, then reset it"),
        (
            Fault::CloseEarly,
            "accepted every connection, then closed it without a reply",
        ),
    ] {
        let server = FaultServer::start(fault);
        let target = server.addr.to_string();
        let extra = ["--samples", "20", "--reply-timeout", "200ms"];
        let mut json = extra.to_vec();
        json.extend(["--output", "json"]);
        let run = verify(&target, "one=90,two=10", &json);
        assert_eq!(run.code, 4, "{fault:?}: {run:?}");
        let reason = run.json()["reason"].as_str().unwrap().to_owned();
        assert!(reason.contains(says), "{fault:?}: {reason}");
        assert!(!reason.contains("unreachable"), "{fault:?}: {reason}");
        let text = verify(&target, "one=90,two=10", &extra);
        assert!(text.stdout.contains(says), "{fault:?}: {text:?}");
        assert!(!text.stdout.contains("unreachable"), "{fault:?}: {text:?}");
    }
}

#[test]
fn a_reply_in_another_format_is_named_not_called_unreachable() {
    let server = FaultServer::start(Fault::TabSeparated);
    let target = server.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let run = verify(
        &target,
        "one=90,two=10",
        &[
            "--samples",
            "30",
            "--output",
            "json",
            "--samples-out",
            samples.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    let reason = doc["reason"].as_str().unwrap();
    assert!(
        reason.contains("answered but not with the protocol"),
        "{reason}"
    );
    assert!(!reason.contains("unreachable"), "{reason}");
    assert_eq!(
        doc["errors"]["malformed_replies"],
        serde_json::json!([{"reply": "one\\t<line sent>\\n", "count": 30}])
    );
    let lines = std::fs::read_to_string(&samples).unwrap();
    assert_eq!(lines.lines().count(), 30);
    for line in lines.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["error"], "malformed_reply", "{line}");
        assert_eq!(v["reply"], "one\\t<line sent>\\n", "{line}");
    }
    let text = verify(&target, "one=90,two=10", &["--samples", "3"]);
    assert_eq!(text.code, 4, "{text:?}");
    assert!(
        text.stdout
            .contains(r#"malformed reply (3x): "one\t<line sent>\n""#),
        "{text:?}"
    );
    assert!(
        text.stdout.contains("answered but not with the protocol"),
        "{text:?}"
    );
}

#[test]
fn a_failed_json_write_still_prints_the_report_then_exits_2() {
    let server = EchoServer::start("one", 1);
    let run = verify(
        &server.addr().to_string(),
        "one=100,two=0",
        &["--samples", "200", "--json", "/dev/full"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.contains("✔ PASS:"), "{run:?}");
    assert!(run.stderr.contains("/dev/full"), "{run:?}");
    assert!(run.stderr.contains("exit code would be 0"), "{run:?}");
}

#[test]
/// The same file by any name: the same path, a `.` or `..` detour, or a symbolic link
/// (dangling until the checker creates its target). Compared by device and inode after
/// opening, not by spelling.
fn json_and_samples_out_may_not_name_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("out3.json"), dir.path().join("link3.json"))
        .unwrap();
    let cases = [
        (format!("{d}/out0.json"), format!("{d}/out0.json")),
        (format!("{d}/out1.json"), format!("{d}/./out1.json")),
        (format!("{d}/sub/../out2.json"), format!("{d}/out2.json")),
        (format!("{d}/link3.json"), format!("{d}/out3.json")),
    ];
    for (json, samples) in &cases {
        let run = run_checker(&[
            "verify",
            "--target",
            "127.0.0.1:1",
            "--expect",
            "a=1,b=1",
            "--samples",
            "1",
            "--json",
            json,
            "--samples-out",
            samples,
        ]);
        assert_eq!(run.code, 2, "{json} {samples}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert!(run.stderr.contains("--samples-out"), "{run:?}");
    }
}

#[test]
fn a_target_that_refuses_everything_ends_a_duration_run_early() {
    let addr = support::closed_port();
    // Ten minutes asked: only giving up ends this within the test's bound.
    let run = verify(
        &addr.to_string(),
        "one=90,two=10",
        &["--duration", "10m", "--output", "json"],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(doc["stop_reason"], "unreachable");
    let attempted = doc["counts"]["attempted"].as_u64().unwrap();
    // At least the give-up count; with backoff (10 ms doubling to 1 s per worker) a few
    // hundred over the 3 s span, not the hundreds of thousands of back-to-back refusals.
    assert!((100..10_000).contains(&attempted), "{attempted}");
    assert_eq!(error_count(&doc, "refused"), attempted);
    assert!(doc["reason"].as_str().unwrap().contains("unreachable"));
}

#[test]
fn one_expected_version_means_only_it_may_answer() {
    let one = EchoServer::start("one", 1);
    let run = verify(
        &one.addr().to_string(),
        "one=100",
        &["--samples", "200", "--output", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    assert_eq!(version(&doc, "one")["count"], 200);
    let two = EchoServer::start("two", 1);
    let run = verify(
        &two.addr().to_string(),
        "one=100",
        &["--samples", "20", "--output", "json"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(version(&run.json(), "two")["was_expected"], false);
}

#[test]
fn negative_numbers_get_the_out_of_range_sentence() {
    let base = ["verify", "--target", "127.0.0.1:1", "--expect", "a=1,b=1"];
    for (flag, negative, out_of_range) in [
        ("--samples", "-3", "0"),
        ("--concurrency", "-1", "0"),
        ("--rate", "-5", "0.0001"),
        ("--duration", "-1", "0"),
        ("--tolerance", "-0.1", "1.5"),
    ] {
        let sentence = |value: &str| {
            let mut args = base.to_vec();
            args.extend([flag, value]);
            let run = run_checker(&args);
            assert_eq!(run.code, 2, "{args:?}: {run:?}");
            assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {run:?}");
            run.stderr.replace(&format!("\"{value}\""), "\"N\"")
        };
        assert_eq!(sentence(negative), sentence(out_of_range), "{flag}");
    }
}

#[test]
fn environment_errors_name_the_variable_and_booleans_take_the_usual_spellings() {
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let args = [
        "verify",
        "--target",
        &target,
        "--expect",
        "one=100,two=0",
        "--samples",
        "200",
    ];
    for word in ["1", "0", "true", "false", "yes", "no", "on", "off", "YES"] {
        let run = run_with_env(&args, &[("CHECKER_NO_PROGRESS", word)]);
        assert_eq!(run.code, 0, "{word}: {run:?}");
    }
    let run = run_with_env(&args, &[("CHECKER_NO_PROGRESS", "maybe")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("CHECKER_NO_PROGRESS"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    let run = run_with_env(&args[..5], &[("CHECKER_SAMPLES", "-3")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("CHECKER_SAMPLES"), "{run:?}");
    // Values that parse but are out of range name the variable too.
    let no_target = ["verify", "--expect", "one=1", "--samples", "1"];
    for (var, value, args) in [
        ("CHECKER_CONFIDENCE", "100%", &args[..]),
        ("CHECKER_TOLERANCE", "0.9", &args[..]),
        ("CHECKER_TARGET", "127.0.0.1:0", &no_target[..]),
    ] {
        let run = run_with_env(args, &[(var, value)]);
        assert_eq!(run.code, 2, "{var}: {run:?}");
        assert!(run.stderr.contains(var), "{var}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{var}: {run:?}");
    }
    // The flag wins over the variable, and then the flag is named.
    let run = run_with_env(
        &[&args[..5], &["--samples", "x"][..]].concat(),
        &[("CHECKER_SAMPLES", "5")],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("--samples") && !run.stderr.contains("CHECKER_SAMPLES"),
        "{run:?}"
    );
}

#[test]
fn sigterm_stops_sampling_and_reports_with_plain_logs() {
    let server = EchoServer::start("one", 1);
    let child = std::process::Command::new(support::checker())
        .args([
            "verify",
            "--target",
            &server.addr().to_string(),
            "--expect",
            "one=100,two=0",
            "--duration",
            "10m",
            "--rate",
            "200",
        ])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    // The plan line is printed when sampling starts.
    let mut stdout = std::io::BufReader::new(guard.0.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with("plan: sampling for 10m"), "{first}");
    assert!(!first.contains("plan: 1"), "{first}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = wait_output(guard);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    // Interrupted early, a one-version server gives PASS or INCONCLUSIVE, never a kill.
    assert!(matches!(run.code, 0 | 3), "{run:?}\n{rest}");
    assert!(rest.contains("interrupted: the report covers"), "{rest}");
    assert!(run.stderr.contains("SIGTERM"), "{run:?}");
    assert!(
        !run.stderr.contains('\x1b'),
        "colour codes in a pipe: {run:?}"
    );
}
