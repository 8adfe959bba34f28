//! Reports are input too: `checker merge`, `verify --baseline` and `plot --report` read
//! JSON reports, and a report can be hostile. These tests hand the real checker binary
//! reports that lie (histograms that claim gigabytes, deflate bombs, counts that wrap,
//! thousands of versions), files that are no reports (devices, FIFOs, symbolic-link
//! loops, files past the size cap) and reports counted twice, and expect one sentence
//! naming the file (and the field), exit 2, in small memory.
//!
//! The reports are written by the checker's own code (a run judged in process and
//! rendered by `report::json`), then edited as JSON where a test needs a lie.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};
use support::{Run, run_checker, run_checker_measured};

use checker_core::sampler::{ErrorClass, Sample, StopReason};
use checker_core::tally::{Tally, Windowing};
use checker_core::verdict::local::LocalReadings;
use checker_core::verify::{Times, Verification, VerifyConfig};

/// What a refused report may cost: a debug checker reading a small file.
const SMALL_KIB: u64 = 64 * 1024;
/// Where a run is stopped as a failure, so that an unbounded read cannot exhaust the
/// shared machine (the issue saw 1 to 4.8 GB).
const CEILING_KIB: u64 = 512 * 1024;

/// The report of a run of `samples` connections (`one` 90%, `two` 10%, one in fifty
/// refused) started at `started_at`, as `checker verify --json` writes it.
fn report(samples: u64, started_at: &str) -> Value {
    let mut config = VerifyConfig::new("127.0.0.1:9", "one=90,two=10".parse().unwrap());
    config.samples = Some(samples);
    let mut tally = Tally::new(Windowing::ById { total: samples });
    for id in 0..samples {
        let result = match id % 50 {
            0 => Err(ErrorClass::Refused),
            1..=5 => Ok("two".to_owned()),
            _ => Ok("one".to_owned()),
        };
        tally.record(&Sample {
            id,
            addr: "127.0.0.1:9".parse().unwrap(),
            started_at: SystemTime::UNIX_EPOCH,
            offset: Duration::ZERO,
            connect_us: result.is_ok().then_some(40 + id % 300),
            reply_us: result.is_ok().then_some(90 + id * 31 % 4000),
            lag_us: None,
            handshake_us: None,
            reason: None,
            reply_head: None,
            result,
        });
    }
    let times = Times {
        started_at: started_at.to_owned(),
        finished_at: "2026-01-01T00:00:02Z".into(),
        elapsed_s: 2.0,
    };
    let v = Verification::build(
        &config,
        &["127.0.0.1:9".parse().unwrap()],
        None,
        tally,
        StopReason::Samples,
        LocalReadings::default(),
        times,
    );
    serde_json::from_str(&report::json::to_string(&v)).unwrap()
}

fn write_json(path: &Path, doc: &Value) -> String {
    std::fs::write(path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A V2 histogram header (HdrHistogram's own layout) with the tally's bounds, declaring
/// `payload_len` bytes of counts.
fn v2_header(payload_len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0x1c84_9313u32.to_be_bytes());
    h.extend_from_slice(&payload_len.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(&3u32.to_be_bytes());
    h.extend_from_slice(&1u64.to_be_bytes());
    h.extend_from_slice(&3_600_000_000u64.to_be_bytes());
    h.extend_from_slice(&1.0f64.to_be_bytes());
    h
}

/// `zlib` wrapped as V2 deflate (cookie 0x1c849314 and its length), base64.
fn v2_deflate(zlib: &[u8]) -> String {
    let mut out = Vec::new();
    out.extend_from_slice(&0x1c84_9314u32.to_be_bytes());
    out.extend_from_slice(&(zlib.len() as u32).to_be_bytes());
    out.extend_from_slice(zlib);
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Compresses `input` as raw deflate with `flush` into `out`.
fn deflate_into(
    c: &mut flate2::Compress,
    input: &[u8],
    flush: flate2::FlushCompress,
    out: &mut Vec<u8>,
) {
    let before = c.total_in();
    loop {
        out.reserve(64 * 1024 + input.len() / 2);
        let consumed = (c.total_in() - before) as usize;
        c.compress_vec(&input[consumed..], out, flush).unwrap();
        if (c.total_in() - before) as usize == input.len() && out.len() < out.capacity() {
            return;
        }
    }
}

/// A zlib stream of `head` then `zeros` zero bytes, built from one compressed MiB of
/// zeros repeated (each block stands alone after a full flush): about 1 KB per MiB.
fn zlib_bomb(head: &[u8], zeros: u64) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    const MIB: u64 = 1 << 20;
    let mut c = Compress::new(Compression::best(), false);
    let mut out = vec![0x78, 0xda];
    deflate_into(&mut c, head, FlushCompress::Full, &mut out);
    let mut block = Vec::new();
    deflate_into(
        &mut c,
        &vec![0; MIB as usize],
        FlushCompress::Full,
        &mut block,
    );
    for _ in 0..zeros / MIB {
        out.extend_from_slice(&block);
    }
    deflate_into(&mut c, &[], FlushCompress::Finish, &mut out);
    // Adler-32 of the whole: the zeros add nothing to `a` and `a` to `b` each.
    let (mut a, mut b) = (1u64, 0u64);
    for &byte in head {
        a = (a + u64::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    b = (b + (zeros % 65521) * a) % 65521;
    out.extend_from_slice(&(((b << 16) | a) as u32).to_be_bytes());
    out
}

/// A samples file of a few lines, for `plot --report`.
fn samples_file(dir: &Path) -> String {
    let path = dir.join("s.jsonl");
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!(
            "{{\"schema_version\":1,\"id\":{i},\"timestamp\":\"2026-01-01T00:00:0{}Z\",\"address\":\"127.0.0.1:9\",\"version\":\"one\",\"connect_us\":50,\"reply_us\":90,\"error\":null}}\n",
            i % 2
        ));
    }
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The three readers of reports, each given `report`: merge, verify --baseline (read
/// before any connection is made) and plot --report.
fn every_reader(dir: &Path, report: &str) -> Vec<(&'static str, Run, u64)> {
    let samples = samples_file(dir);
    let svg = dir.join("p.svg");
    let commands: [(&str, Vec<&str>); 3] = [
        ("merge", vec!["merge", report]),
        (
            "verify --baseline",
            vec![
                "verify",
                "--target",
                "127.0.0.1:9",
                "--expect",
                "one=90,two=10",
                "--baseline",
                report,
            ],
        ),
        (
            "plot --report",
            vec![
                "plot",
                &samples,
                "--report",
                report,
                "--out",
                svg.to_str().unwrap(),
            ],
        ),
    ];
    commands
        .into_iter()
        .map(|(name, args)| {
            let (run, peak) = run_checker_measured(&args, CEILING_KIB);
            (name, run, peak)
        })
        .collect()
}

/// Asserts that `run` refused in one sentence on stderr containing every part of `says`.
fn assert_refused(what: &str, run: &Run, says: &[&str]) {
    assert_eq!(run.code, 2, "{what}: {run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{what}: {run:?}");
    for part in says {
        assert!(run.stderr.contains(part), "{what}: no {part:?} in {run:?}");
    }
    assert!(!run.stderr.contains("IoError"), "{what}: {run:?}");
}

#[test]
fn a_histogram_that_claims_4_gb_is_refused_in_one_sentence_and_small_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = report(500, "2026-01-01T00:00:00Z");
    doc["tally"]["versions"]["two"]["reply_us"] = json!(v2_deflate(&zlib(&v2_header(u32::MAX))));
    let path = write_json(&dir.path().join("claims.json"), &doc);
    assert!(std::fs::metadata(&path).unwrap().len() < 16 * 1024);
    for (what, run, peak) in every_reader(dir.path(), &path) {
        assert_refused(
            what,
            &run,
            &[&path, "tally.versions.two.reply_us", "4294967295"],
        );
        eprintln!("4 GB claim, {what}: peak {peak} KiB: {}", run.stderr.trim());
        assert!(peak < SMALL_KIB, "{what}: {peak} KiB");
    }
}

#[test]
fn a_deflate_bomb_is_refused_in_small_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 1 GiB of zero counts (about 1 MB deflated: longer than any histogram's text), and
    // 64 MiB (about 64 KB: within the text's bound, stopped by the inflation limit).
    for (mib, says) in [(1024u64, "characters long"), (64, "inflates to more than")] {
        let mut doc = report(500, "2026-01-01T00:00:00Z");
        let zeros = mib << 20;
        let bomb = zlib_bomb(&v2_header(zeros as u32), zeros);
        assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
        doc["tally"]["versions"]["two"]["connect_us"] = json!(v2_deflate(&bomb));
        let path = write_json(&dir.path().join(format!("bomb-{mib}.json")), &doc);
        for (what, run, peak) in every_reader(dir.path(), &path) {
            assert_refused(what, &run, &[&path, "tally.versions.two.connect_us", says]);
            eprintln!(
                "deflate bomb of {mib} MiB, {what}: peak {peak} KiB: {}",
                run.stderr.trim()
            );
            assert!(peak < SMALL_KIB, "{what}: {peak} KiB");
        }
    }
}

#[test]
fn histograms_that_are_not_what_the_checker_writes_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = report(500, "2026-01-01T00:00:00Z");
    let mut other_bounds = v2_header(0);
    other_bounds[12..16].copy_from_slice(&5u32.to_be_bytes());
    other_bounds[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
    let cases: [(&str, String, &str); 4] = [
        ("not base64", "@@@".to_owned(), "base64"),
        ("truncated", v2_deflate(&zlib(&v2_header(100))), "ends"),
        ("other bounds", v2_deflate(&zlib(&other_bounds)), "bounds"),
        (
            "garbage",
            v2_deflate(b"not a zlib stream at all"),
            "deflate",
        ),
    ];
    for (what, text, says) in cases {
        let mut doc = good.clone();
        doc["tally"]["versions"]["one"]["connect_us"] = json!(text);
        let path = write_json(&dir.path().join("h.json"), &doc);
        let run = run_checker(&["merge", &path]);
        assert_refused(what, &run, &[&path, "tally.versions.one.connect_us", says]);
    }
}

#[test]
fn files_that_are_no_reports_are_refused_with_a_message_not_read_or_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.json");
    test_support::mkfifo(&fifo);
    let looped = dir.path().join("loop.json");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let large = dir.path().join("large.json");
    {
        // A valid report padded with whitespace past the cap.
        let mut f = std::fs::File::create(&large).unwrap();
        f.write_all(
            serde_json::to_string(&report(50, "2026-01-01T00:00:00Z"))
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        f.write_all(&vec![b' '; 17 << 20]).unwrap();
    }
    let cases: [(&str, &str); 4] = [
        ("/dev/zero", "not a regular file"),
        (fifo.to_str().unwrap(), "FIFO"),
        (looped.to_str().unwrap(), "symbolic links"),
        (large.to_str().unwrap(), "16 MiB"),
    ];
    for (path, says) in cases {
        for (what, run, peak) in every_reader(dir.path(), path) {
            assert_refused(&format!("{what} {path}"), &run, &[path, says]);
            eprintln!("{what} {path}: peak {peak} KiB: {}", run.stderr.trim());
            assert!(peak < SMALL_KIB, "{what} {path}: {peak} KiB");
        }
    }
    // In a directory, a FIFO or a loop named *.json is named too, not skipped nor waited on.
    for (name, says) in [("fifo.json", "FIFO"), ("loop.json", "symbolic links")] {
        let only = dir.path().join(format!("only-{name}"));
        std::fs::create_dir(&only).unwrap();
        if name == "fifo.json" {
            test_support::mkfifo(&only.join(name));
        } else {
            std::os::unix::fs::symlink(name, only.join(name)).unwrap();
        }
        let run = run_checker(&["merge", only.to_str().unwrap()]);
        assert_refused(name, &run, &[name, says]);
    }
}

#[test]
fn a_report_counted_twice_is_refused_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let a = write_json(&runs.join("a.json"), &report(60, "2026-01-01T00:00:00Z"));
    let b = write_json(&runs.join("b.json"), &report(60, "2026-01-01T00:00:00.5Z"));
    // Two different runs of one check merge.
    let run = run_checker(&["merge", &a, &b]);
    assert!(![2, 101].contains(&run.code), "{run:?}");
    // The same file three times.
    let run = run_checker(&["merge", &a, &a, &a]);
    assert_refused("a a a", &run, &[&a, "twice"]);
    // A directory and a symbolic link into it.
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(runs.join("a.json"), &link).unwrap();
    let run = run_checker(&["merge", runs.to_str().unwrap(), link.to_str().unwrap()]);
    assert_refused("dir and link", &run, &[&a, link.to_str().unwrap()]);
    // A copy: the same start, target and tally.
    let copy = dir.path().join("copy.json");
    std::fs::copy(&a, &copy).unwrap();
    let run = run_checker(&["merge", &a, copy.to_str().unwrap()]);
    assert_refused("copy", &run, &[&a, copy.to_str().unwrap(), "same"]);
}

#[test]
fn counts_that_disagree_with_their_own_histograms_and_windows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = report(500, "2026-01-01T00:00:00Z");
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "a count of 2^64-1",
            |d| d["tally"]["versions"]["two"]["count"] = json!(u64::MAX),
            "tally.versions.two.count",
        ),
        (
            "10^12 over a histogram of 500",
            |d| {
                d["tally"]["versions"]["one"]["count"] = json!(1_000_000_000_000u64);
                d["tally"]["windows"][0]["counts"]["one"] = json!(1_000_000_000_000u64 - 441 + 44);
            },
            "tally.versions.one.count",
        ),
        (
            "errors of 2^64-1",
            |d| d["tally"]["errors_by_class"]["refused"] = json!(u64::MAX),
            "tally.errors_by_class",
        ),
        (
            "windows that do not add up",
            |d| d["tally"]["windows"][3]["errors"] = json!(7),
            "tally.windows",
        ),
    ];
    for (what, edit, field) in cases {
        let mut doc = good.clone();
        edit(&mut doc);
        let path = write_json(&dir.path().join("counts.json"), &doc);
        let run = run_checker(&["merge", &path]);
        assert_refused(what, &run, &[&path, field]);
    }
    // Two honest reports whose counts add past 2^64-1 are refused too, not wrapped.
    let mut big = good.clone();
    let n = u64::MAX / 2 + 1;
    big["tally"]["errors_by_class"]["refused"] = json!(n);
    big["tally"]["windows"] = json!([{"counts": {}, "errors": n}, {"counts": {}, "errors": 0}, {"counts": {}, "errors": 0}, {"counts": {}, "errors": 0}, {"counts": {}, "errors": 0}, {"counts": {}, "errors": 0}, {"counts": {}, "errors": 0}, {"counts": {}, "errors": 0}, {"counts": {}, "errors": 0}, {"counts": {}, "errors": 0}]);
    big["tally"]["versions"] = json!({});
    let x = write_json(&dir.path().join("x.json"), &big);
    big["started_at"] = json!("2026-01-01T00:00:01Z");
    let y = write_json(&dir.path().join("y.json"), &big);
    let run = run_checker(&["merge", &x, &y]);
    assert_refused("a sum past 2^64-1", &run, &[&y, "add up"]);
}

/// A report of `versions` distinct versions, one sample each (none of them expected but `v0`).
fn report_of_many_versions(versions: usize) -> Value {
    let mut doc = report(10, "2026-01-01T00:00:00Z");
    let mut single = Tally::new(Windowing::ById { total: 1 });
    single.record(&Sample {
        id: 0,
        addr: "127.0.0.1:9".parse().unwrap(),
        started_at: SystemTime::UNIX_EPOCH,
        offset: Duration::ZERO,
        connect_us: Some(50),
        reply_us: Some(90),
        lag_us: None,
        handshake_us: None,
        reason: None,
        reply_head: None,
        result: Ok("x".to_owned()),
    });
    let snapshot = checker_core::snapshot::TallySnapshot::of(&single);
    let x = serde_json::to_value(&snapshot.versions["x"]).unwrap();
    let mut names = serde_json::Map::new();
    let mut window = serde_json::Map::new();
    for i in 0..versions {
        names.insert(format!("v{i}"), x.clone());
        window.insert(format!("v{i}"), json!(1));
    }
    doc["tally"]["versions"] = Value::Object(names);
    doc["tally"]["errors_by_class"]["refused"] = json!(0);
    let mut windows = vec![json!({"counts": {}, "errors": 0}); 10];
    windows[0] = json!({"counts": window, "errors": 0});
    doc["tally"]["windows"] = json!(windows);
    doc["tally"]["version_errors"] = json!({});
    doc["inputs"]["expect"] = json!([{"name": "v0", "weight": 1.0, "share": 1.0}]);
    doc
}

#[test]
fn a_merge_of_5000_versions_is_folded_to_32_in_small_memory_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_json(
        &dir.path().join("many.json"),
        &report_of_many_versions(5000),
    );
    let (run, peak) = run_checker_measured(&["merge", &path, "--output", "json"], CEILING_KIB);
    assert!(![2, 101].contains(&run.code), "{run:?}");
    let doc = run.json();
    let versions = doc["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 33, "32 by name and other versions");
    assert!(versions.iter().any(|v| v["name"] == "other versions"));
    assert!(
        versions.iter().any(|v| v["name"] == "v0"),
        "the expected version keeps its name"
    );
    assert_eq!(doc["counts"]["attributed"], 5000);
    assert!(run.stderr.contains("4968 versions"), "{run:?}");
    assert!(run.stderr.contains("other versions"), "{run:?}");
    eprintln!(
        "merge of 5000 versions: peak {peak} KiB; {}",
        run.stderr.trim()
    );
    assert!(peak < SMALL_KIB, "{peak} KiB");
}

#[test]
fn a_plot_of_20000_versions_is_folded_and_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("many.jsonl");
    let mut text = String::new();
    for i in 0..20_000u64 {
        text.push_str(&format!(
            "{{\"schema_version\":1,\"id\":{i},\"timestamp\":\"2026-01-01T00:{:02}:{:02}Z\",\"address\":\"127.0.0.1:9\",\"version\":\"v{i}\",\"connect_us\":50,\"reply_us\":90,\"error\":null}}\n",
            i / 600 % 60,
            i / 10 % 60
        ));
    }
    std::fs::write(&samples, text).unwrap();
    let svg = dir.path().join("many.svg");
    let (run, peak) = run_checker_measured(
        &[
            "plot",
            samples.to_str().unwrap(),
            "--out",
            svg.to_str().unwrap(),
        ],
        CEILING_KIB,
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("19968 versions"), "{run:?}");
    let size = std::fs::metadata(&svg).unwrap().len();
    eprintln!(
        "plot of 20000 versions: peak {peak} KiB, SVG {size} bytes; {}",
        run.stdout.trim()
    );
    assert!(size < 2 << 20, "{size} bytes");
    assert!(peak < SMALL_KIB, "{peak} KiB");
}

#[test]
fn what_a_report_and_a_directory_hold_reaches_the_terminal_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = report(100, "2026-01-01T00:00:00Z");
    doc["inputs"]["target"] = json!("127.0.0.1:9\u{1b}[2J\u{202e}");
    let path = write_json(&dir.path().join("target.json"), &doc);
    let run = run_checker(&["merge", &path]);
    assert!(![2, 101].contains(&run.code), "{run:?}");
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{202e}'),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("127.0.0.1:9\\x1b[2J\\u{202e}"),
        "{run:?}"
    );
    // A file name in a directory is input too.
    let named = dir.path().join("names");
    std::fs::create_dir(&named).unwrap();
    std::fs::write(named.join("bad\u{1b}[2J.json"), "{").unwrap();
    let run = run_checker(&["merge", named.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains('\u{1b}'), "{run:?}");
    assert!(run.stderr.contains("bad\\x1b[2J.json"), "{run:?}");
}
