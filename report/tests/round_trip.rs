//! Reading our own output: every document the checker writes and reads back keeps a
//! version name intact, for every byte the protocol allows in one (printable ASCII,
//! `"` and `\` included, which JSON escapes): the samples file (`--samples-out`, read by
//! `checker plot`) and the JSON report (`--json`, read by `checker merge`, `--baseline`
//! and `plot --report`). The rehearsal's document is tested in the rehearse crate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, SystemTime};

use checker_core::expect::Expectation;
use checker_core::sampler::{ErrorClass, Sample, StopReason};
use checker_core::tally::{Tally, Windowing};
use checker_core::verdict::local::LocalReadings;
use checker_core::verify::{Times, Verification, VerifyConfig};
use report::plot::input::{Record, parse_line};
use report::samples::{ExpectLine, SampleLine};

/// Version names that hold every byte the protocol allows, the awkward ones alone too.
fn awkward_versions() -> Vec<String> {
    let every: String = (0x21u8..=0x7e).map(char::from).collect();
    let mut names: Vec<String> = every
        .as_bytes()
        .chunks(protocol::MAX_VERSION_LEN)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    names.extend(
        [
            "\"",
            "\\",
            "\\\"",
            "a\"b\\c",
            "\\u0041",
            "\\n",
            "'",
            "{\"x\":1}",
        ]
        .map(str::to_owned),
    );
    for name in &names {
        protocol::validate_version(name).unwrap();
    }
    names
}

fn sample(id: u64, version: &str) -> Sample {
    Sample {
        id,
        addr: "127.0.0.1:9".parse().unwrap(),
        started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + id),
        offset: Duration::from_millis(id),
        result: Ok(version.to_owned()),
        connect_us: Some(40 + id),
        reply_us: Some(90 + id),
        lag_us: None,
        handshake_us: None,
        reason: None,
        reply_head: None,
    }
}

#[test]
fn a_samples_line_reads_back_with_every_byte_a_version_may_hold() {
    let names = awkward_versions();
    for (id, name) in names.iter().enumerate() {
        let s = sample(id as u64, name);
        let line = serde_json::to_string(&SampleLine::of(&s)).unwrap();
        let record = parse_line(Path::new("s.jsonl"), 1, &line)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{line}"));
        let Record::Sample(back) = record else {
            panic!("{name}: {record:?}")
        };
        assert_eq!(back.version.as_deref(), Some(name.as_str()), "{line}");
        assert_eq!(back.reply_us, s.reply_us);
    }
    // The expectation lines of `checker watch` name versions too (those --expect can write).
    let expect = "a\"b\\c=1,\\=2,\"=3".to_owned();
    let expect_line = ExpectLine {
        schema_version: report::samples::SCHEMA_VERSION,
        timestamp: "2026-01-01T00:00:00Z".into(),
        expect: &expect,
    };
    let line = serde_json::to_string(&expect_line).unwrap();
    let Record::Expect { expect: back, .. } = parse_line(Path::new("s.jsonl"), 1, &line).unwrap()
    else {
        panic!("{line}")
    };
    assert_eq!(back.to_string(), expect);
}

#[test]
fn a_report_reads_back_with_every_byte_a_version_may_hold() {
    let names = awkward_versions();
    // Built from pairs: `,` and `=` (allowed in a version) cannot be written in --expect.
    let expect = Expectation::new(names.iter().map(|n| (n.clone(), 1.0))).unwrap();
    let mut config = VerifyConfig::new("127.0.0.1:9", expect);
    let total = names.len() as u64 * 10 + 1;
    config.samples = Some(total);
    let mut tally = Tally::new(Windowing::ById { total });
    for id in 0..total - 1 {
        tally.record(&sample(id, &names[id as usize % names.len()]));
    }
    let mut refused = sample(total - 1, "x");
    refused.result = Err(ErrorClass::MalformedReply);
    refused.reply_head = Some(checker_core::sampler::reply_head(b"\"\\\x1b[2J\n", b""));
    refused.connect_us = None;
    refused.reply_us = None;
    tally.record(&refused);
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
    let text = report::json::to_string(&v);
    let run = report::read_back::parse(Path::new("r.json"), &text).unwrap();
    assert_eq!(run.inputs, v.inputs);
    assert_eq!(run.tally.counts(), v.tally.counts());
    assert_eq!(run.tally.malformed(), v.tally.malformed());
    let read: Vec<&String> = run.tally.versions().keys().collect();
    let mut written: Vec<&String> = names.iter().collect();
    written.sort();
    assert_eq!(read, written);
    assert!(run.folded.is_empty());
}
