//! Every text the checker prints for people escapes what came from input (the target,
//! version names from replies or from reports read back, the names and expressions of
//! health rules, a baseline's path, the expectation file's text) through
//! `protocol::escape`: no control, bidirectional or zero-width character reaches the
//! terminal raw, whatever a library caller or a report hands in.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use checker_core::sampler::{Sample, StopReason};
use checker_core::tally::{Tally, Windowing};
use checker_core::verdict::baseline::BaselineRule;
use checker_core::verdict::compare::CompareRule;
use checker_core::verdict::local::LocalReadings;
use checker_core::verify::{Times, Verification, VerifyConfig};
use checker_core::watch::{Agreement, Period, Tick};

/// A few characters that drive or fool a terminal.
const HOSTILE: [&str; 4] = ["\x1b[2J", "\u{9b}31m", "\u{202e}", "\r"];

/// The characters `protocol::escape` never lets through (newlines end lines here).
fn raw(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            c != '\n'
                && (c.is_control()
                    || matches!(u32::from(c), 0x061c | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2069 | 0xfeff))
        })
        .collect()
}

fn hostile(base: &str, i: usize) -> String {
    format!("{base}{}", HOSTILE[i % HOSTILE.len()])
}

#[test]
fn the_verify_text_escapes_every_string_from_input() {
    let names: Vec<String> = (0..4).map(|i| hostile("v", i)).collect();
    let mut config = VerifyConfig::new(hostile("gateway", 0), "v=100".parse().unwrap());
    config.samples = Some(400);
    let mut compare = CompareRule::parse_pair("two=one").unwrap();
    compare.canary = names[0].clone();
    compare.stable = names[1].clone();
    config.health.compare = Some(compare);
    let mut threshold: checker_core::verdict::thresholds::Threshold =
        "two.p99_reply<5ms".parse().unwrap();
    threshold.expression = hostile("two.p99_reply<5ms", 2);
    config.health.thresholds = vec![threshold];
    config.health.baseline = Some(BaselineRule {
        source: hostile("old.json", 3),
        figures: BTreeMap::from([(hostile("p99_reply", 1), 10.0)]),
        max_regression: Vec::new(),
    });
    let mut tally = Tally::new(Windowing::ById { total: 400 });
    for id in 0..400u64 {
        tally.record(&Sample {
            id,
            addr: "127.0.0.1:9".parse().unwrap(),
            started_at: SystemTime::UNIX_EPOCH,
            offset: Duration::ZERO,
            result: Ok(names[id as usize % names.len()].clone()),
            connect_us: Some(50),
            reply_us: Some(90 + id),
            lag_us: None,
            handshake_us: None,
            reason: None,
            reply_head: None,
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
            finished_at: "2026-01-01T00:00:01Z".into(),
            elapsed_s: 1.0,
        },
    );
    let text = report::text::render(&v);
    assert_eq!(raw(&text), Vec::<char>::new(), "{text}");
    assert!(text.contains("gateway\\x1b[2J"), "{text}");
    assert!(text.contains("v\\u{202e}"), "{text}");
    let reason = report::reason::reason(&v);
    assert_eq!(raw(&reason), Vec::<char>::new(), "{reason}");
}

#[test]
fn the_watch_text_escapes_every_string_from_input() {
    let names: Vec<String> = (0..4).map(|i| hostile("v", i)).collect();
    let counts: BTreeMap<String, u64> = names.iter().map(|n| (n.clone(), 3)).collect();
    let tick = Tick {
        at: "2026-01-01T00:00:01Z".into(),
        elapsed_s: 1.0,
        expect: hostile("v=1", 0),
        window: counts.clone(),
        errors: 0,
        evidence: 12,
        intervals: BTreeMap::new(),
        state: Agreement::Undecided,
        event: None,
        expect_file_error: Some("kept".into()),
        expect_file_error_is_new: false,
    };
    let line = report::watch::tick_line(&tick);
    assert_eq!(raw(&line), Vec::<char>::new(), "{line}");
    let period = Period {
        from_s: 0.0,
        to_s: 1.0,
        expect: hostile("v=1", 1),
        state: Agreement::Undecided,
        counts,
        errors: 0,
    };
    let summary = report::watch::summary_text(&[period]);
    assert_eq!(raw(&summary), Vec::<char>::new(), "{summary}");
}
