//! `checker watch` end to end: the real checker binary against an in-process echo server,
//! stdout a pipe (so one JSON line per interval, each following
//! report/schema/watch.schema.json), the expectation changed through `--expect-file`
//! while it runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{EchoServer, Guard, assert_valid_against, checker, wait_output};

#[test]
fn watch_marks_disagreement_follows_the_expect_file_and_summarises_the_periods() {
    let server = EchoServer::start("one", 1);
    let dir = tempfile::tempdir().unwrap();
    let expect_file = dir.path().join("expect");
    let samples = dir.path().join("samples.jsonl");
    // The file says the canary takes everything, but only `one` answers: disagreement.
    std::fs::write(&expect_file, "one=0,two=100\n").unwrap();
    let child = Command::new(checker())
        .args([
            "watch",
            "--target",
            &server.addr().to_string(),
            "--expect-file",
            expect_file.to_str().unwrap(),
            "--rate",
            "200",
            "--interval",
            "100ms",
            "--duration",
            "60s",
            "--samples-out",
            samples.to_str().unwrap(),
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut ticks: Vec<Value> = Vec::new();
    let mut next = || -> Value {
        let line = lines.next().expect("a line before the end").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    // Bounded by the 60 s duration: the watch ends, and so does stdout.
    loop {
        let t = next();
        ticks.push(t.clone());
        if t["state"] == "disagrees" {
            assert_eq!(t["event"], "stopped agreeing", "{t}");
            break;
        }
        assert_eq!(t["state"], "undecided", "{t}");
    }
    // The pipeline moves the expectation to what is really routed.
    std::fs::write(&expect_file, "one=100\n").unwrap();
    let mut saw_change = false;
    loop {
        let t = next();
        ticks.push(t.clone());
        saw_change |= t["event"] == "expectation now one=100";
        if t["state"] == "agrees" {
            assert_eq!(t["event"], "agrees", "{t}");
            assert_eq!(t["expect"], "one=100");
            break;
        }
    }
    assert!(saw_change, "{ticks:#?}");
    let every: Vec<&Value> = ticks
        .iter()
        .filter(|t| t["intervals"]["one"].is_object())
        .collect();
    assert!(!every.is_empty(), "running intervals are shown: {ticks:#?}");
    // Stop it: SIGTERM ends the watch with the summary of every period.
    let pid = guard.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = Vec::new();
    for line in lines.by_ref() {
        rest.push(line.unwrap());
    }
    let run = wait_output(guard);
    let summary: Value = serde_json::from_str(rest.last().expect("a summary line")).unwrap();
    // Every line, the ticks and the summary, carries its layout version and follows the schema.
    let schema: Value = serde_json::from_str(report::watch::SCHEMA).unwrap();
    let after: Vec<Value> = rest
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in ticks.iter().chain(&after) {
        assert_eq!(
            line["schema_version"],
            report::watch::SCHEMA_VERSION,
            "{line}"
        );
        assert_valid_against(&schema, line);
    }
    assert!(
        ticks.iter().any(|t| t["event"].is_string()) && ticks.iter().any(|t| t["event"].is_null()),
        "both kinds of event are validated"
    );
    let states: Vec<&str> = summary["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert!(
        states.starts_with(&["undecided", "disagrees", "undecided"]) && states.contains(&"agrees"),
        "{summary:#}"
    );
    assert_eq!(run.code, 0, "agreeing at the end: {run:?}");
    // Every sample was recorded.
    let recorded = std::fs::read_to_string(&samples).unwrap();
    let counted: u64 = summary["summary"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["counts"].as_object().unwrap().values())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert!(recorded.lines().count() as u64 >= counted, "{counted}");
    assert!(counted > 0);
}

/// `checker watch --expect-file FILE` with `extra` arguments, stdout piped.
fn watch_with_file(target: &str, file: &std::path::Path, extra: &[&str]) -> Guard {
    let mut args = vec![
        "watch",
        "--target",
        target,
        "--expect-file",
        file.to_str().unwrap(),
        "--rate",
        "200",
        "--interval",
        "100ms",
    ];
    args.extend_from_slice(extra);
    let child = Command::new(checker())
        .args(&args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Guard(child)
}

#[test]
fn a_bad_missing_or_endless_expectation_file_at_start_is_a_usage_error_naming_it() {
    let server = EchoServer::start("one", 1);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "one=abc\n").unwrap();
    let fifo = dir.path().join("fifo");
    test_support::mkfifo(&fifo);
    let cases = [
        (bad.clone(), "\"abc\""),
        (dir.path().join("missing"), "No such file"),
        (std::path::PathBuf::from("/dev/zero"), "character device"),
        (fifo.clone(), "FIFO"),
    ];
    for (file, says) in cases {
        let guard = watch_with_file(&server.addr().to_string(), &file, &["--duration", "5s"]);
        let (run, peak) = support::wait_output_measured(guard, Some(256 * 1024));
        assert_eq!(run.code, 2, "{file:?}: {run:?}");
        assert_eq!(
            run.stdout, "",
            "no line is judged without an expectation: {run:?}"
        );
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains(file.to_str().unwrap()), "{run:?}");
        assert!(
            run.stderr.contains(says),
            "{file:?}: no {says:?} in {run:?}"
        );
        assert!(peak < 64 * 1024, "{file:?}: {peak} KiB");
    }
}

#[test]
fn a_bad_expectation_file_later_keeps_the_last_good_one_says_so_once_and_marks_each_interval() {
    let server = EchoServer::start("one", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("expect");
    std::fs::write(&file, "one=100\n").unwrap();
    let mut guard = watch_with_file(&server.addr().to_string(), &file, &["--duration", "100s"]);
    let stdout = guard.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut ticks: Vec<Value> = Vec::new();
    let mut next = || -> Value {
        let line = lines.next().expect("a line before the end").unwrap();
        let t: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        ticks.push(t.clone());
        t
    };
    while next()["state"] != "agrees" {}
    // A bad expectation: kept the last good one, every interval marked, the state kept.
    std::fs::write(&file, "one=abc\n").unwrap();
    let mut marked = 0;
    while marked < 5 {
        let t = next();
        if t["expect_file_error"].is_string() {
            marked += 1;
            assert_eq!(t["expect"], "one=100", "{t}");
            assert_eq!(t["state"], "agrees", "{t}");
            assert!(
                t["expect_file_error"].as_str().unwrap().contains("\"abc\""),
                "{t}"
            );
        }
    }
    // A FIFO in its place: refused without blocking, the intervals go on.
    std::fs::remove_file(&file).unwrap();
    test_support::mkfifo(&file);
    let mut marked = 0;
    while marked < 5 {
        let t = next();
        if t["expect_file_error"]
            .as_str()
            .is_some_and(|e| e.contains("FIFO"))
        {
            marked += 1;
        }
    }
    // Fixed: the new expectation holds, the mark goes.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "one=100,two=0\n").unwrap();
    loop {
        let t = next();
        if t["expect"] == "one=100,two=0" {
            assert!(t["expect_file_error"].is_null(), "{t}");
            assert_eq!(t["event"], "expectation now one=100,two=0", "{t}");
            break;
        }
    }
    // Broken again, as a FIFO: the first SIGTERM still ends the watch with its summary.
    std::fs::remove_file(&file).unwrap();
    test_support::mkfifo(&file);
    while !next()["expect_file_error"].is_string() {}
    let pid = guard.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = Vec::new();
    for line in lines.by_ref() {
        rest.push(line.unwrap());
    }
    let run = wait_output(guard);
    assert!(
        rest.last().is_some_and(|l| l.contains("\"summary\"")),
        "{rest:?}"
    );
    let schema: Value = serde_json::from_str(report::watch::SCHEMA).unwrap();
    for t in &ticks {
        assert_valid_against(&schema, t);
    }
    // On stderr, once per change of the file: the bad text, the FIFO, the FIFO again
    // (beside the log line of the signal).
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("checker: "))
        .collect();
    assert_eq!(said.len(), 3, "{run:?}");
    assert!(
        said[0].contains("\"abc\"") && said[0].contains("keeping one=100"),
        "{run:?}"
    );
    assert!(
        said[1].contains("FIFO") && said[1].contains("keeping one=100"),
        "{run:?}"
    );
    assert!(
        said[2].contains("FIFO") && said[2].contains("keeping one=100,two=0"),
        "{run:?}"
    );
}
