//! `checker plot` and `checker rehearse --plot` end to end: real runs of the checker
//! binary (verify through the in-process echo server and the fault server, watch with a
//! change of expectation, a whole rehearsal) write samples, the checker draws them, and
//! the SVG is parsed as XML: it must be well-formed and carry every series, told apart by
//! the legend's text (an entry is drawn only for a series with something drawn) and by
//! the series' own elements in the version's colour.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{EchoServer, Guard, run_checker, wait_output};
use test_support::fault::{Behaviour, FaultServer};

/// The colour of the first version in the picture (the palette's first).
const FIRST: &str = "#1F77B4";
/// The colour of the second version.
const SECOND: &str = "#FF7F0E";
/// The colour of the error marks.
const ERRORS: &str = "#D62728";

/// What a test reads from a picture.
struct Svg {
    /// Every `<text>`'s text, trimmed, in document order.
    texts: Vec<String>,
    /// `(element name, stroke, fill)` of every drawn element.
    shapes: Vec<(String, String, String)>,
}

impl Svg {
    fn parse(text: &str) -> Svg {
        let doc = roxmltree::Document::parse(text)
            .unwrap_or_else(|e| panic!("the SVG is not well-formed XML: {e}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        let texts = root
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().trim().to_owned())
            .collect();
        let shapes = root
            .descendants()
            .filter(|n| n.is_element() && !n.has_tag_name("text") && !n.has_tag_name("svg"))
            .map(|n| {
                (
                    n.tag_name().name().to_owned(),
                    n.attribute("stroke").unwrap_or_default().to_owned(),
                    n.attribute("fill").unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Svg { texts, shapes }
    }

    fn read(path: &Path) -> Svg {
        Self::parse(&std::fs::read_to_string(path).expect("read the picture"))
    }

    fn has(&self, text: &str) -> bool {
        self.texts.iter().any(|t| t == text)
    }

    fn assert_has(&self, texts: &[&str]) {
        for t in texts {
            assert!(
                self.has(t),
                "no {t:?} in the picture's texts: {:?}",
                self.texts
            );
        }
    }

    fn assert_lacks(&self, texts: &[&str]) {
        for t in texts {
            assert!(
                !self.has(t),
                "{t:?} is drawn but should not be: {:?}",
                self.texts
            );
        }
    }

    /// Elements named `tag` stroked in `colour`.
    fn stroked(&self, tag: &str, colour: &str) -> usize {
        self.shapes
            .iter()
            .filter(|(t, s, _)| t == tag && s == colour)
            .count()
    }

    /// Elements named `tag` filled with `colour`.
    fn filled(&self, tag: &str, colour: &str) -> usize {
        self.shapes
            .iter()
            .filter(|(t, _, f)| t == tag && f == colour)
            .count()
    }
}

/// Validates every line of the samples file at `path` against
/// report/schema/samples.schema.json; returns the lines.
fn assert_samples_valid(path: &Path) -> Vec<Value> {
    let schema: Value =
        serde_json::from_str(report::samples::SCHEMA).expect("the samples schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the samples schema compiles");
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in &lines {
        let errors: Vec<String> = validator.iter_errors(line).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{line} does not follow the schema: {errors:?}"
        );
    }
    assert!(!lines.is_empty());
    lines
}

fn plot(args: &[&str]) -> support::Run {
    let mut all = vec!["plot"];
    all.extend_from_slice(args);
    run_checker(&all)
}

/// The legend of one version's latency series.
fn latency_legend(v: &str) -> Vec<String> {
    ["connect p50", "connect p99", "reply p50", "reply p99"]
        .iter()
        .map(|s| format!("{v} {s}"))
        .collect()
}

#[test]
fn a_verify_run_through_the_echo_server_is_drawn_with_its_expected_steps() {
    let server = EchoServer::start("one", 1);
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let report = dir.path().join("report.json");
    // Only `one` answers while 90/10 is expected: a real FAIL, drawn as such.
    let run = run_checker(&[
        "verify",
        "--target",
        &server.addr().to_string(),
        "--expect",
        "one=90,two=10",
        "--samples",
        "600",
        "--samples-out",
        samples.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(assert_samples_valid(&samples).len(), 600);
    let out = dir.path().join("verify.svg");
    let drawn = plot(&[
        samples.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(drawn.code, 0, "{drawn:?}");
    assert!(drawn.stdout.starts_with("plot: wrote "), "{drawn:?}");
    let svg = Svg::read(&out);
    // Two versions expected: the per-version confidence is 99.5% (Bonferroni of 99%).
    svg.assert_has(&[
        "one share",
        "one 99.5% interval",
        "one expected",
        "two expected",
        "1 one=90,two=10",
    ]);
    let latency = latency_legend("one");
    svg.assert_has(&latency.iter().map(String::as_str).collect::<Vec<_>>());
    // `two` never answered: its share is drawn (at 0%, the FAIL), its latency is not; and
    // nothing failed, so there are no error marks.
    svg.assert_has(&["two share", "two 99.5% interval"]);
    svg.assert_lacks(&["errors (% of the window)"]);
    svg.assert_lacks(
        &latency_legend("two")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    // Beyond the legend's own glyphs, the series are drawn: the share line and four
    // latency lines of `one`, its band, and the dashed expected steps (many dashes).
    assert!(svg.stroked("polyline", FIRST) > 10, "{:?}", svg.shapes);
    assert!(svg.filled("polygon", FIRST) >= 1, "the band of one");
    assert!(
        svg.stroked("polyline", SECOND) > 5,
        "the expected steps of two"
    );
    assert!(svg.texts.iter().any(|t| t.starts_with("seconds since ")));
    assert!(svg.has("share of connections (%)"));
    assert!(svg.has("connect latency (ms, log scale)"));
    assert!(svg.has("reply latency (ms, log scale)"));
    assert!(
        svg.has("600 samples, 0 failed")
            || svg
                .texts
                .iter()
                .any(|t| t.starts_with("600 samples, 0 failed;"))
    );
}

#[test]
fn two_versions_with_errors_are_drawn_with_error_marks_as_svg_and_html() {
    let server = FaultServer::start(vec![
        Behaviour::healthy("one", 3),
        Behaviour::healthy("two", 1).corrupting(10),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.jsonl");
    let run = run_checker(&[
        "verify",
        "--target",
        &server.target(),
        "--expect",
        "one=75,two=25",
        "--samples",
        "1200",
        "--max-error-rate",
        "10%",
        "--samples-out",
        samples.to_str().unwrap(),
    ]);
    assert!(run.code == 0 || run.code == 3, "{run:?}");
    let failed = assert_samples_valid(&samples)
        .iter()
        .filter(|l| l["error"] == "malformed_reply")
        .count();
    assert!(
        failed > 0,
        "the fault server corrupts every tenth reply of two"
    );
    let svg_path = dir.path().join("faults.svg");
    let drawn = plot(&[
        samples.to_str().unwrap(),
        "--out",
        svg_path.to_str().unwrap(),
        "--window",
        "50ms",
    ]);
    assert_eq!(drawn.code, 0, "{drawn:?}");
    let svg = Svg::read(&svg_path);
    let mut every = vec![
        "one share".to_owned(),
        "one 99.5% interval".to_owned(),
        "two share".to_owned(),
        "two 99.5% interval".to_owned(),
        "errors (% of the window)".to_owned(),
    ];
    every.extend(latency_legend("one"));
    every.extend(latency_legend("two"));
    svg.assert_has(&every.iter().map(String::as_str).collect::<Vec<_>>());
    // No report and no expectation lines: no expected steps.
    svg.assert_lacks(&["one expected", "two expected"]);
    assert!(svg.stroked("polyline", SECOND) > 5, "{:?}", svg.shapes);
    assert!(svg.filled("polygon", SECOND) >= 1);
    // Each mark is a cross of two lines; the legend's is one of them.
    assert!(
        svg.stroked("polyline", ERRORS) + svg.stroked("line", ERRORS) > 2,
        "{:?}",
        svg.shapes
    );

    // The same as an HTML page: the SVG inline, well-formed on its own.
    let html_path = dir.path().join("faults.html");
    let drawn = plot(&[
        samples.to_str().unwrap(),
        "--out",
        html_path.to_str().unwrap(),
        "--title",
        "faults <&> all",
    ]);
    assert_eq!(drawn.code, 0, "{drawn:?}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html:.200}");
    assert!(
        html.contains("<title>faults &lt;&amp;&gt; all</title>"),
        "{html:.400}"
    );
    let start = html.find("<svg").expect("an inline svg");
    let end = html.rfind("</svg>").expect("the svg's end") + "</svg>".len();
    let svg = Svg::parse(&html[start..end]);
    svg.assert_has(&["faults <&> all", "errors (% of the window)", "two share"]);
}

#[test]
fn a_watch_with_a_change_of_expectation_is_drawn_as_two_steps() {
    let server = EchoServer::start("one", 1);
    let dir = tempfile::tempdir().unwrap();
    let expect_file = dir.path().join("expect");
    let samples = dir.path().join("watch.jsonl");
    std::fs::write(&expect_file, "one=50,two=50\n").unwrap();
    let child = Command::new(support::checker())
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
    let mut next = || -> Value {
        let line = lines.next().expect("a line before the end").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    // A few intervals on 50/50 (bounded by the watch's own 60 s), then the change.
    for _ in 0..5 {
        next();
    }
    std::fs::write(&expect_file, "one=100\n").unwrap();
    // Then until the watch agrees with the new expectation (only `one` answers).
    let mut changed = false;
    loop {
        let t = next();
        changed |= t["event"] == "expectation now one=100";
        if changed && t["state"] == "agrees" {
            break;
        }
    }
    let pid = guard.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let run = wait_output(guard);
    assert_eq!(run.code, 0, "{run:?}");
    // The samples file records both expectations.
    let mut expects: Vec<String> = assert_samples_valid(&samples)
        .iter()
        .filter_map(|v| v["expect"].as_str().map(str::to_owned))
        .collect();
    // A rewrite may be seen twice (truncated, then written), each time with the new text.
    expects.dedup();
    assert_eq!(expects, ["one=50,two=50", "one=100"]);
    let out = dir.path().join("watch.svg");
    let drawn = plot(&[samples.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(drawn.code, 0, "{drawn:?}");
    let svg = Svg::read(&out);
    let mut every = vec![
        "one share".to_owned(),
        "one 99.5% interval".to_owned(),
        "one expected".to_owned(),
        "two expected".to_owned(),
        "expectations (numbered above):".to_owned(),
        "1 one=50,two=50".to_owned(),
        "2 one=100".to_owned(),
    ];
    every.extend(latency_legend("one"));
    svg.assert_has(&every.iter().map(String::as_str).collect::<Vec<_>>());
    // The boundary is numbered on the chart too.
    assert!(svg.has("1") && svg.has("2"), "{:?}", svg.texts);
}

#[cfg(feature = "rehearse")]
#[test]
fn rehearse_plot_draws_the_whole_walk_with_its_steps_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("walk.svg");
    let run = run_checker(&["rehearse", "--plot", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("plot: wrote "), "{run:?}");
    let svg = Svg::read(&out);
    let mut every = vec![
        "tcp-canary rehearsal: 6 steps through the builtin gateway".to_owned(),
        "one share".to_owned(),
        "one 99.5% interval".to_owned(),
        "one expected".to_owned(),
        "two share".to_owned(),
        "two 99.5% interval".to_owned(),
        "two expected".to_owned(),
        "1 canary 0% (one=100,two=0)".to_owned(),
        "2 canary 10% (one=90,two=10)".to_owned(),
        "3 canary 20% (one=80,two=20)".to_owned(),
        "4 primary rolling update (one=0,two=100)".to_owned(),
        "5 back to stable (one=0,two=100)".to_owned(),
        "6 canary delete (one=0,two=100)".to_owned(),
    ];
    every.extend(latency_legend("one"));
    every.extend(latency_legend("two"));
    svg.assert_has(&every.iter().map(String::as_str).collect::<Vec<_>>());
    // Step numbers mark the boundaries on the chart.
    for n in 1..=6 {
        assert!(svg.has(&n.to_string()), "step {n}: {:?}", svg.texts);
    }
    // With --samples-dir the samples stay there, and the picture is drawn from them.
    let samples = dir.path().join("samples");
    let out2 = dir.path().join("walk.html");
    let run = run_checker(&[
        "rehearse",
        "--steps",
        "50",
        "--hold",
        "0",
        "--samples-dir",
        samples.to_str().unwrap(),
        "--plot",
        out2.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    run.json();
    for step in 1..=4 {
        assert_samples_valid(&samples.join(format!("step-{step}.jsonl")));
    }
    let html = std::fs::read_to_string(&out2).unwrap();
    assert!(html.contains("1 canary 50% (one=50,two=50)"), "{html:.300}");
}

#[cfg(feature = "rehearse")]
#[test]
#[ignore = "needs kubectl (kubectl kustomize renders the plan's steps)"]
fn rehearse_plan_plot_names_the_plans_steps() {
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kustomize/steps.yaml");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.svg");
    let run = run_checker(&[
        "rehearse",
        "--plan",
        plan.to_str().unwrap(),
        "--plot",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let svg = Svg::read(&out);
    svg.assert_has(&[
        "1 first deploy (one=100,two=0)",
        "3 canary at 10 (one=90,two=10)",
        "4 canary at 20 (one=80,two=20)",
        "two share",
        "two expected",
    ]);
}

#[cfg(feature = "rehearse")]
#[test]
fn rehearse_refuses_a_plot_name_it_cannot_write_before_walking() {
    let run = run_checker(&["rehearse", "--plot", "walk.png"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr.trim(),
        "checker: walk.png: the picture is written as .svg or .html; name the output file so"
    );
    assert!(!run.stdout.contains("rehearsal:"), "no walk ran: {run:?}");
}

#[test]
fn unreadable_empty_or_malformed_input_and_unknown_extensions_exit_2_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.svg");
    let out = out.to_str().unwrap();
    let one_line = |run: &support::Run| {
        assert_eq!(run.code, 2, "{run:?}");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        run.stderr.trim().to_owned()
    };
    let missing = dir.path().join("missing.jsonl");
    let e = one_line(&plot(&[missing.to_str().unwrap(), "--out", out]));
    assert!(
        e.starts_with(&format!("checker: cannot read {}", missing.display())),
        "{e}"
    );

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    let e = one_line(&plot(&[empty.to_str().unwrap(), "--out", out]));
    assert!(
        e.contains("no sample in ") && e.contains(": nothing to draw"),
        "{e}"
    );

    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(
        &garbage,
        "{\"timestamp\":\"2026-11-30T00:00:00Z\",\"version\":\"one\"}\nhello\n",
    )
    .unwrap();
    let e = one_line(&plot(&[garbage.to_str().unwrap(), "--out", out]));
    assert_eq!(
        e,
        format!(
            "checker: {} line 2 is not a samples line: it is not a JSON object of a sample (expected value at line 1 column 1)",
            garbage.display()
        )
    );

    let binary = dir.path().join("binary.jsonl");
    std::fs::write(&binary, [0xff, 0xfe, b'\n']).unwrap();
    let e = one_line(&plot(&[binary.to_str().unwrap(), "--out", out]));
    assert!(
        e.ends_with("line 1 is not a samples line: it is not UTF-8 text"),
        "{e}"
    );

    let no_jsonl = dir.path().join("nothing");
    std::fs::create_dir(&no_jsonl).unwrap();
    let e = one_line(&plot(&[no_jsonl.to_str().unwrap(), "--out", out]));
    assert!(e.ends_with("holds no .jsonl samples file"), "{e}");

    let sample = dir.path().join("one.jsonl");
    std::fs::write(&sample, "{\"timestamp\":\"2026-11-30T00:00:00Z\",\"version\":\"one\",\"connect_us\":5,\"reply_us\":9}\n").unwrap();
    let e = one_line(&plot(&[sample.to_str().unwrap(), "--out", "picture.png"]));
    assert_eq!(
        e,
        "checker: picture.png: the picture is written as .svg or .html; name the output file so"
    );
    let e = one_line(&plot(&[
        sample.to_str().unwrap(),
        "--report",
        missing.to_str().unwrap(),
        "--out",
        out,
    ]));
    assert!(e.starts_with("checker: cannot read the report"), "{e}");
    let unwritable = dir.path().join("no/such/dir/p.svg");
    let e = one_line(&plot(&[
        sample.to_str().unwrap(),
        "--out",
        unwritable.to_str().unwrap(),
    ]));
    assert!(e.starts_with("checker: cannot write the picture"), "{e}");
    // The one good sample draws: a single window.
    let ok = plot(&[sample.to_str().unwrap(), "--out", out]);
    assert_eq!(ok.code, 0, "{ok:?}");
    Svg::read(Path::new(out)).assert_has(&["one share", "one connect p50"]);
}

#[test]
fn help_explains_the_panels_and_the_exit_codes() {
    let run = run_checker(&["plot", "--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    for needle in [
        "--report <REPORT.json>",
        "--out <FILE>",
        "--window <D>",
        "Wilson interval",
        "p50 (thick) and p99 (thin)",
        "Exit codes: 0 written; 2 unreadable",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} not in {}",
            run.stdout
        );
    }
}

/// Peak resident memory of a process, KiB (VmHWM), while it runs.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Writes `n` sample lines (two versions 80/20, one in 200 failed, latency varying) over
/// an hour, out of time order within each second as a concurrent sampler writes them.
fn write_samples(path: &Path, n: u64) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let start = 1_796_000_000u64;
    for i in 0..n {
        let at = start * 1_000_000 + i * 3_600_000_000 / n + (i % 7) * 1000;
        let (secs, micros) = (at / 1_000_000, at % 1_000_000);
        let t = humantime::format_rfc3339_micros(
            std::time::UNIX_EPOCH + std::time::Duration::new(secs, (micros * 1000) as u32),
        );
        if i % 200 == 199 {
            writeln!(out, "{{\"id\":{i},\"timestamp\":\"{t}\",\"address\":\"127.0.0.1:9000\",\"version\":null,\"connect_us\":null,\"reply_us\":null,\"error\":\"reset\"}}").unwrap();
        } else {
            let v = if i % 5 == 0 { "two" } else { "one" };
            let us = 100 + (i * 7919) % 5000;
            writeln!(out, "{{\"id\":{i},\"timestamp\":\"{t}\",\"address\":\"127.0.0.1:9000\",\"version\":\"{v}\",\"connect_us\":{us},\"reply_us\":{},\"error\":null}}", us * 2).unwrap();
        }
    }
    out.flush().unwrap();
}

/// Plots `n` samples, polling the checker's peak memory; returns it (KiB).
fn peak_of_plot(n: u64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("big.jsonl");
    write_samples(&samples, n);
    let out = dir.path().join("big.svg");
    let child = Command::new(support::checker())
        .args([
            "plot",
            samples.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let pid = guard.0.id();
    let deadline = std::time::Instant::now() + support::BOUND * 5;
    let mut peak = 0;
    while guard.0.try_wait().unwrap().is_none() {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = peak.max(kib);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "plot ran past its bound"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = wait_output(guard);
    assert_eq!(run.code, 0, "{run:?}");
    let svg = Svg::read(&out);
    svg.assert_has(&["one share", "two share", "errors (% of the window)"]);
    assert!(
        svg.texts
            .iter()
            .any(|t| t.starts_with(&format!("{n} samples, {} failed;", n / 200))),
        "{:?}",
        svg.texts
    );
    // Decimated into windows: the picture stays small whatever the input.
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size < 400 * 1024, "{size} bytes");
    eprintln!("plot of {n} samples: peak resident memory {peak} KiB, picture {size} bytes");
    peak
}

/// The memory ceiling of a plot, KiB: bins and histograms, never the samples.
const PLOT_LIMIT_KIB: u64 = 32 * 1024;

#[test]
fn a_large_samples_file_plots_in_bounded_memory() {
    let peak = peak_of_plot(200_000);
    assert!(peak < PLOT_LIMIT_KIB, "peak {peak} KiB");
}

#[test]
#[ignore = "needs a minute in a debug build: a million samples (a 170 MB file)"]
fn a_million_samples_plot_in_bounded_memory() {
    let peak = peak_of_plot(1_000_000);
    assert!(peak < PLOT_LIMIT_KIB, "peak {peak} KiB");
}
