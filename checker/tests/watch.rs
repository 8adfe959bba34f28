//! `checker watch` end to end: the real checker binary against an in-process echo server,
//! stdout a pipe (so one JSON line per interval, each following
//! report/schema/watch.schema.json), the expectation changed through `--expect-file`
//! while it runs.

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
