//! The report reader and the histogram decoder against generated hostile input (the
//! fuzzing of issue 19, as property tests: cargo-fuzz needs a nightly toolchain this
//! project does not use). Structure-aware: the generators start from real reports and
//! histograms the checker writes and lie in their fields (counts of any size, names of
//! any text, missing and extra entries), in their histograms (truncated, bit-flipped,
//! lengths rewritten, deflate bombs, random bytes) and in their sums (consistent counts
//! up to 2^64 and past it). The properties: nothing panics (the test profile checks
//! integer overflow), a report read back is consistent (each count is its histograms'),
//! and merging and showing what was read never panics either.
//!
//! Bounded by case count: 128 cases per property, or PROPTEST_CASES.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use checker_core::sampler::{ErrorClass, Sample, StopReason};
use checker_core::snapshot::{self, TallySnapshot};
use checker_core::tally::{
    MAX_LATENCY_US, Tally, TallyParts, VersionTally, WINDOWS, Window, Windowing, new_histogram,
};
use checker_core::verdict::local::LocalReadings;
use checker_core::verify::{RecordedRun, Times, Verification, VerifyConfig};

fn config() -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 128;
    }
    c
}

/// A real report of 300 samples (`one`, `two`, a few refused and malformed), as JSON.
fn real_report() -> Value {
    let mut config = VerifyConfig::new("127.0.0.1:9", "one=90,two=10".parse().unwrap());
    config.samples = Some(300);
    config.health.thresholds = vec!["two.p99_reply<5ms".parse().unwrap()];
    let mut tally = Tally::new(Windowing::ById { total: 300 });
    for id in 0..300u64 {
        let result = match id % 30 {
            0 => Err(ErrorClass::Refused),
            1 => Err(ErrorClass::MalformedReply),
            2..=4 => Ok("two".to_owned()),
            _ => Ok("one".to_owned()),
        };
        tally.record(&Sample {
            id,
            addr: "127.0.0.1:9".parse().unwrap(),
            started_at: SystemTime::UNIX_EPOCH,
            offset: Duration::ZERO,
            reply_head: (result == Err(ErrorClass::MalformedReply)).then(|| "two x\\n".into()),
            connect_us: result.is_ok().then_some(40 + id % 300),
            reply_us: result.is_ok().then_some(90 + id * 31 % 4000),
            lag_us: None,
            handshake_us: None,
            reason: None,
            result,
        });
    }
    let v = Verification::build(
        &config,
        &["127.0.0.1:9".parse().unwrap()],
        None,
        tally,
        StopReason::Samples,
        LocalReadings::default(),
        Times {
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:02Z".into(),
            elapsed_s: 2.0,
        },
    );
    serde_json::from_str(&report::json::to_string(&v)).unwrap()
}

/// Reads `doc` back; when it is read, the tally is consistent, and merging it with
/// itself (as two runs) and showing the result never panics.
fn read_merge_show(doc: &Value) -> Result<RecordedRun, String> {
    let text = serde_json::to_string(doc).unwrap();
    let run = report::read_back::parse(Path::new("h.json"), &text).map_err(|e| e.to_string())?;
    for (name, v) in run.tally.versions() {
        assert_eq!(v.connect_us.len(), v.count, "{name}");
        assert_eq!(v.reply_us.len(), v.count, "{name}");
        assert!(v.connect_us.high() == MAX_LATENCY_US, "{name}");
    }
    assert!(run.tally.checked_attempted().is_some());
    assert!(run.tally.versions().len() <= checker_core::tally::MAX_TRACKED_VERSIONS + 1);
    for runs in [vec![run.clone()], vec![run.clone(), run.clone()]] {
        if let Ok(merged) = checker_core::merge::merge(&runs) {
            let _ = report::text::render(&merged);
            let _ = report::json::to_string(&merged);
        }
    }
    Ok(run)
}

/// A count of any size, the edges often.
fn count() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX / 2 + 1),
        Just(1 << 32),
        Just(1_000_000_000_000),
        any::<u64>(),
        0u64..1000,
    ]
}

/// A name of any text: control characters, bidi, quotes, empty, long.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("one".to_owned()),
        Just("two".to_owned()),
        Just("other versions".to_owned()),
        Just(String::new()),
        Just("\u{1b}[2J".to_owned()),
        Just("a\"b\\c".to_owned()),
        Just("x".repeat(65)),
        any::<String>(),
    ]
}

/// The encoded histogram the real report has for `one`'s reply latency, as bytes.
fn real_histogram_bytes() -> Vec<u8> {
    let doc = real_report();
    STANDARD
        .decode(
            doc["tally"]["versions"]["one"]["reply_us"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
}

/// A histogram's text: a real one bit-flipped, truncated, its lengths rewritten, random
/// bytes, random text, or a small deflate bomb.
fn histogram_text() -> impl Strategy<Value = String> {
    let real = real_histogram_bytes();
    let len = real.len();
    prop_oneof![
        (0..len * 8).prop_map({
            let real = real.clone();
            move |bit| {
                let mut b = real.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                STANDARD.encode(b)
            }
        }),
        (0..len).prop_map({
            let real = real.clone();
            move |cut| STANDARD.encode(&real[..cut])
        }),
        any::<u32>().prop_map({
            let real = real.clone();
            move |n| {
                // The deflated length the histogram declares.
                let mut b = real.clone();
                b[4..8].copy_from_slice(&n.to_be_bytes());
                STANDARD.encode(b)
            }
        }),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| STANDARD.encode(b)),
        any::<String>(),
        (1u32..=4).prop_map(bomb),
    ]
}

/// A V2 deflate histogram whose header declares `mib` MiB of zero counts, followed by them.
fn bomb(mib: u32) -> String {
    use std::io::Write;
    let mut plain = Vec::new();
    plain.extend_from_slice(&0x1c84_9313u32.to_be_bytes());
    plain.extend_from_slice(&(mib << 20).to_be_bytes());
    plain.extend_from_slice(&0u32.to_be_bytes());
    plain.extend_from_slice(&3u32.to_be_bytes());
    plain.extend_from_slice(&1u64.to_be_bytes());
    plain.extend_from_slice(&MAX_LATENCY_US.to_be_bytes());
    plain.extend_from_slice(&1.0f64.to_be_bytes());
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&plain).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        e.write_all(&zeros).unwrap();
    }
    let zlib = e.finish().unwrap();
    let mut out = 0x1c84_9314u32.to_be_bytes().to_vec();
    out.extend_from_slice(&(zlib.len() as u32).to_be_bytes());
    out.extend_from_slice(&zlib);
    STANDARD.encode(out)
}

/// One lie told in a report.
#[derive(Debug, Clone)]
enum Lie {
    VersionCount(String, u64),
    WindowCount(usize, String, u64),
    WindowErrors(usize, u64),
    ErrorClass(String, u64),
    VersionError(String, u64),
    Histogram(String, bool, String),
    LagHistogram(String),
    RenameVersion(String),
    ExtraVersions(usize),
    Windows(usize),
    Malformed(String, u64),
    DurationWindowing(f64),
    Remove(&'static str),
    ElapsedS(f64),
}

fn lie() -> impl Strategy<Value = Lie> {
    prop_oneof![
        (name(), count()).prop_map(|(n, c)| Lie::VersionCount(n, c)),
        (0usize..12, name(), count()).prop_map(|(w, n, c)| Lie::WindowCount(w, n, c)),
        (0usize..12, count()).prop_map(|(w, c)| Lie::WindowErrors(w, c)),
        (
            prop_oneof![
                Just("refused".to_owned()),
                Just("malformed_reply".to_owned()),
                name()
            ],
            count()
        )
            .prop_map(|(n, c)| Lie::ErrorClass(n, c)),
        (name(), count()).prop_map(|(n, c)| Lie::VersionError(n, c)),
        (
            prop_oneof![Just("one".to_owned()), Just("two".to_owned())],
            any::<bool>(),
            histogram_text()
        )
            .prop_map(|(n, c, t)| Lie::Histogram(n, c, t)),
        histogram_text().prop_map(Lie::LagHistogram),
        name().prop_map(Lie::RenameVersion),
        (0usize..100).prop_map(Lie::ExtraVersions),
        (0usize..30).prop_map(Lie::Windows),
        (name(), count()).prop_map(|(n, c)| Lie::Malformed(n, c)),
        prop_oneof![Just(0.0), Just(-1.0), Just(1e300), any::<f64>()]
            .prop_map(Lie::DurationWindowing),
        prop_oneof![
            Just("versions"),
            Just("windows"),
            Just("errors_by_class"),
            Just("histogram_encoding"),
            Just("malformed_replies"),
        ]
        .prop_map(Lie::Remove),
        prop_oneof![Just(-1.0), Just(1e308), any::<f64>()].prop_map(Lie::ElapsedS),
    ]
}

fn tell(doc: &mut Value, lie: &Lie) {
    let t = &mut doc["tally"];
    match lie {
        Lie::VersionCount(n, c) => {
            if let Some(v) = t["versions"].get_mut(n) {
                v["count"] = json!(c);
            }
        }
        Lie::WindowCount(w, n, c) => {
            if let Some(win) = t["windows"].get_mut(*w) {
                win["counts"][n] = json!(c);
            }
        }
        Lie::WindowErrors(w, c) => {
            if let Some(win) = t["windows"].get_mut(*w) {
                win["errors"] = json!(c);
            }
        }
        Lie::ErrorClass(n, c) => t["errors_by_class"][n] = json!(c),
        Lie::VersionError(n, c) => t["version_errors"][n] = json!(c),
        Lie::Histogram(n, connect, text) => {
            let field = if *connect { "connect_us" } else { "reply_us" };
            t["versions"][n][field] = json!(text);
        }
        Lie::LagHistogram(text) => t["lag_us"] = json!(text),
        Lie::RenameVersion(n) => {
            if let Some(map) = t["versions"].as_object_mut()
                && let Some(v) = map.remove("two")
            {
                map.insert(n.clone(), v);
            }
        }
        Lie::ExtraVersions(k) => {
            let one = t["versions"]["one"].clone();
            for i in 0..*k {
                t["versions"][format!("x{i}")] = one.clone();
            }
        }
        Lie::Windows(k) => {
            let win = t["windows"][0].clone();
            t["windows"] = Value::Array(vec![win; *k]);
        }
        Lie::Malformed(reply, c) => {
            t["malformed_replies"] = json!([{"reply": reply, "count": c}]);
        }
        Lie::DurationWindowing(d) => {
            if d.is_finite() {
                t["windowing"] = json!({"by": "time", "duration_s": d});
            }
        }
        Lie::Remove(field) => {
            if let Some(map) = t.as_object_mut() {
                map.remove(*field);
            }
        }
        Lie::ElapsedS(s) => {
            if s.is_finite() {
                doc["elapsed_s"] = json!(s);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A real report with a few lies: read back or refused with a sentence naming the
    /// field, never a panic; what is read is consistent, merges and shows.
    #[test]
    fn hostile_reports_are_refused_or_read_consistently(lies in prop::collection::vec(lie(), 1..4)) {
        let mut doc = real_report();
        for l in &lies {
            tell(&mut doc, l);
        }
        if let Err(e) = read_merge_show(&doc) {
            prop_assert!(!e.contains("IoError"), "{e}");
            prop_assert_eq!(e.lines().count(), 1, "{}", e);
        }
    }

    /// Histogram bytes of any kind: decoded within bounds or refused, never a panic.
    #[test]
    fn the_histogram_decoder_takes_anything(text in histogram_text()) {
        if let Ok(h) = snapshot::histogram::decode(&text) {
            prop_assert_eq!(h.high(), MAX_LATENCY_US);
            prop_assert!(h.distinct_values() == new_histogram().distinct_values());
        }
    }

    /// Consistent reports of any size: counts up to 2^62 per version in any number of
    /// versions, errors of any size. Read back exactly when they add up below 2^64;
    /// merged two at a time (sums past 2^64 refused), judged and shown without a panic.
    #[test]
    fn consistent_reports_of_any_size_read_back_exactly_when_they_fit(
        counts in prop::collection::vec((0u64..=(1 << 62), 1u64..=MAX_LATENCY_US), 0..40),
        errors in prop::collection::vec(count(), 0..3),
    ) {
        let doc = consistent_report(&counts, &errors);
        let total = counts
            .iter()
            .map(|c| c.0)
            .chain(errors.iter().copied())
            .try_fold(0u64, u64::checked_add);
        match read_merge_show(&doc) {
            Ok(run) => {
                prop_assert_eq!(Some(run.tally.attempted()), total);
                prop_assert_eq!(run.folded.len(), counts.len().saturating_sub(32));
            }
            Err(e) => prop_assert!(total.is_none(), "refused though it fits: {}", e),
        }
    }
}

/// A report whose tally holds `counts` (count, latency) as versions `v0`, `v1`, ...,
/// `errors` as refused, reset and reply-timeout samples, every window sum consistent.
fn consistent_report(counts: &[(u64, u64)], errors: &[u64]) -> Value {
    let mut versions = BTreeMap::new();
    let mut window = Window::default();
    for (i, (count, latency)) in counts.iter().enumerate() {
        let mut h = new_histogram();
        if *count > 0 {
            h.record_n(*latency, *count).unwrap();
        }
        let name = format!("v{i}");
        window.counts.insert(name.clone(), *count);
        versions.insert(
            name,
            VersionTally {
                count: *count,
                connect_us: h.clone(),
                handshake_us: VersionTally::default().handshake_us,
                reply_us: h,
            },
        );
    }
    let mut by_class = [0u64; ErrorClass::ALL.len()];
    let classes = [
        ErrorClass::Refused,
        ErrorClass::Reset,
        ErrorClass::ReplyTimeout,
    ];
    let mut windows = vec![Window::default(); WINDOWS];
    // Each class's errors in a window of their own: the windows add up as the classes
    // do, and each fits even when their sum does not.
    for ((class, n), w) in classes.iter().zip(errors).zip(windows.iter_mut()) {
        by_class[class.index()] = *n;
        w.errors = *n;
    }
    windows[0].counts = window.counts;
    let tally = Tally::from_parts(TallyParts {
        versions,
        errors: by_class,
        windowing: Windowing::ById { total: 1000 },
        windows,
        lag_us: None,
        malformed: Vec::new(),
        version_errors: BTreeMap::new(),
        reasons: Vec::new(),
    });
    let mut doc = real_report();
    doc["tally"] = serde_json::to_value(TallySnapshot::of(&tally)).unwrap();
    doc["inputs"]["expect"] = json!([{"name": "v0", "weight": 1.0, "share": 1.0}]);
    doc
}
