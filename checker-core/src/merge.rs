//! `checker merge`: reports from many checker processes (say, the pods of an Indexed
//! Job) become one report with one verdict. Counts add, latency histograms merge
//! exactly, and every interval, comparison, threshold and verdict is recomputed from
//! the merged tally, as if one process had taken all the samples.

use std::net::SocketAddr;

use crate::expect::{ExpectError, Expectation};
use crate::sampler::StopReason;
use crate::verdict::local::LocalReadings;
use crate::verdict::{self, Settings};
use crate::verify::{RecordedRun, Times, Verification, VerifyConfig};

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("give at least one report to merge")]
    Empty,
    /// Two reports were not runs of the same check.
    #[error("cannot merge {path} with {first}: {what} differ ({theirs} against {ours})")]
    Mismatch {
        /// The report that differs.
        path: String,
        /// The first report.
        first: String,
        /// What differs, plural ("their targets").
        what: &'static str,
        /// Its value.
        theirs: String,
        /// The first report's value.
        ours: String,
    },
    /// The expectation in a report is not valid.
    #[error("the expectation in {path} is not valid: {source}")]
    Expectation {
        /// The report.
        path: String,
        /// Why.
        source: ExpectError,
    },
}

fn expect_text(r: &RecordedRun) -> String {
    let parts: Vec<String> = r
        .inputs
        .expect
        .iter()
        .map(|e| format!("{}={}", e.name, e.weight))
        .collect();
    parts.join(",")
}

fn rule_text(r: &RecordedRun) -> String {
    let i = &r.inputs;
    format!(
        "confidence {}, tolerance {}, error budget {}",
        i.confidence, i.tolerance, i.max_error_rate
    )
}

fn health_text(r: &RecordedRun) -> String {
    serde_json::to_string(&r.health_rules).unwrap_or_default()
}

/// Refuses `other` unless it ran the same check as `first`.
fn same_check(first: &RecordedRun, other: &RecordedRun) -> Result<(), MergeError> {
    type Fact = fn(&RecordedRun) -> String;
    let facts: [(&'static str, Fact); 4] = [
        ("their targets", |r| r.inputs.target.clone()),
        ("their expected splits", expect_text),
        ("their rules", rule_text),
        ("their health checks", health_text),
    ];
    for (what, fact) in facts {
        let (ours, theirs) = (fact(first), fact(other));
        if ours != theirs {
            return Err(MergeError::Mismatch {
                path: other.path.display().to_string(),
                first: first.path.display().to_string(),
                what,
                theirs,
                ours,
            });
        }
    }
    Ok(())
}

fn peak(a: LocalReadings, b: LocalReadings) -> LocalReadings {
    LocalReadings {
        conntrack_count: a.conntrack_count.max(b.conntrack_count),
        conntrack_max: a.conntrack_max.max(b.conntrack_max),
        local_ports: a.local_ports.or(b.local_ports),
        tcp_sockets: a.tcp_sockets.max(b.tcp_sockets),
    }
}

/// Sums `f` over every report, or `None` if any has none.
fn sum_all<T: std::iter::Sum<T>>(
    reports: &[RecordedRun],
    f: impl Fn(&RecordedRun) -> Option<T>,
) -> Option<T> {
    reports.iter().map(f).sum()
}

/// Merges `reports` (the runs of one check) into one report.
pub fn merge(reports: &[RecordedRun]) -> Result<Verification, MergeError> {
    let first = reports.first().ok_or(MergeError::Empty)?;
    for other in &reports[1..] {
        same_check(first, other)?;
    }
    let inputs = &first.inputs;
    let expect = Expectation::new(inputs.expect.iter().map(|e| (e.name.clone(), e.weight)))
        .map_err(|source| MergeError::Expectation {
            path: first.path.display().to_string(),
            source,
        })?;
    let mut config = VerifyConfig::new(inputs.target.clone(), expect);
    config.samples = sum_all(reports, |r| r.inputs.samples);
    config.duration = inputs
        .duration_s
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok());
    config.concurrency = reports.iter().map(|r| r.inputs.concurrency).sum();
    config.rate = sum_all(reports, |r| r.inputs.rate);
    config.settings = Settings {
        confidence: inputs.confidence,
        tolerance: inputs.tolerance,
    };
    config.max_error_rate = inputs.max_error_rate;
    config.connect_timeout = std::time::Duration::from_millis(inputs.connect_timeout_ms);
    config.reply_timeout = std::time::Duration::from_millis(inputs.reply_timeout_ms);
    config.health = first.health_rules.clone();

    let mut tally = first.tally.clone();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut readings = first.local_readings;
    for r in &reports[1..] {
        tally.merge(&r.tally);
        readings = peak(readings, r.local_readings);
    }
    for r in reports {
        for a in &r.inputs.addresses {
            if let Ok(a) = a.parse::<SocketAddr>()
                && !addrs.contains(&a)
            {
                addrs.push(a);
            }
        }
    }
    let stop_reason = [StopReason::Unreachable, StopReason::Interrupted]
        .into_iter()
        .find(|s| reports.iter().any(|r| r.stop_reason == *s))
        .unwrap_or(first.stop_reason);
    // The runs are concurrent: the merged run spans the earliest start to the latest
    // end, and lasted as long as the longest run (so samples per second add up).
    let times = Times {
        started_at: reports
            .iter()
            .map(|r| r.times.started_at.clone())
            .min()
            .unwrap_or_default(),
        finished_at: reports
            .iter()
            .map(|r| r.times.finished_at.clone())
            .max()
            .unwrap_or_default(),
        elapsed_s: reports
            .iter()
            .map(|r| r.times.elapsed_s)
            .fold(0.0, f64::max),
    };
    let plan = inputs
        .samples
        .is_none()
        .then(|| verdict::plan(&config.expect, &config.settings));
    Ok(Verification::build(
        &config,
        &addrs,
        plan,
        tally,
        stop_reason,
        readings,
        times,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{ErrorClass, Sample};
    use crate::snapshot::TallySnapshot;
    use crate::tally::{Tally, Windowing};
    use crate::verdict::compare::CompareRule;
    use std::time::{Duration, SystemTime};

    fn config(target: &str) -> VerifyConfig {
        let mut c = VerifyConfig::new(target, "one=90,two=10".parse().unwrap());
        c.samples = Some(1000);
        c.health.compare = Some(CompareRule::parse_pair("two=one").unwrap());
        c.health.thresholds = vec!["two.p99_reply<5ms".parse().unwrap()];
        c
    }

    fn sample(id: u64) -> Sample {
        let result = match id % 50 {
            0 => Err(ErrorClass::Refused),
            1 => Err(ErrorClass::MalformedReply),
            2..=6 => Ok("two".to_owned()),
            _ => Ok("one".to_owned()),
        };
        Sample {
            id,
            addr: "127.0.0.1:9".parse().unwrap(),
            started_at: SystemTime::now(),
            offset: Duration::ZERO,
            reply_head: (result == Err(ErrorClass::MalformedReply)).then(|| "two x\\n".into()),
            connect_us: result.is_ok().then_some(50 + id * 37 % 900),
            reply_us: result.is_ok().then_some(100 + id * 7919 % 9000),
            lag_us: None,
            result,
        }
    }

    fn report(c: &VerifyConfig, tally: Tally, elapsed_s: f64) -> Verification {
        Verification::build(
            c,
            &["127.0.0.1:9".parse().unwrap()],
            None,
            tally,
            StopReason::Samples,
            LocalReadings::default(),
            Times {
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: "2026-01-01T00:00:01Z".into(),
                elapsed_s,
            },
        )
    }

    /// `r` as its JSON report carries it (the tally through its snapshot, histograms included).
    fn read_back(name: &str, r: &Verification) -> RecordedRun {
        RecordedRun {
            path: name.into(),
            inputs: r.inputs.clone(),
            times: r.times.clone(),
            stop_reason: r.stop_reason,
            local_readings: r.judgement.errors.local_readings,
            health_rules: r.health_rules.clone(),
            tally: TallySnapshot::of(&r.tally).to_tally().unwrap(),
        }
    }

    #[test]
    fn four_merged_reports_equal_their_samples_taken_together() {
        let c = config("127.0.0.1:9");
        let windowing = Windowing::ById { total: 1000 };
        let mut parts: Vec<Tally> = (0..4).map(|_| Tally::new(windowing)).collect();
        let mut together = Tally::new(windowing);
        for id in 0..4000 {
            parts[(id % 4) as usize].record(&sample(id));
            together.record(&sample(id));
        }
        let loaded: Vec<RecordedRun> = parts
            .into_iter()
            .enumerate()
            .map(|(i, t)| read_back(&format!("{i}.json"), &report(&c, t, 1.0)))
            .collect();
        let merged = merge(&loaded).unwrap();
        let all = report(&c, together, 1.0);
        assert_eq!(merged.attempted, 4000);
        assert_eq!(merged.tally.counts(), all.tally.counts());
        assert_eq!(merged.judgement.errors, all.judgement.errors);
        assert_eq!(merged.judgement.split, all.judgement.split);
        assert_eq!(merged.judgement.health, all.judgement.health);
        assert_eq!(merged.latency, all.latency);
        assert_eq!(merged.exit_code(), all.exit_code());
        assert_eq!(merged.outcome(), all.outcome());
        assert_eq!(merged.tally.version_errors()["two"], 80);
    }

    #[test]
    fn reports_of_different_checks_are_refused() {
        let t = Tally::new(Windowing::ById { total: 10 });
        let a = read_back("a.json", &report(&config("127.0.0.1:9"), t.clone(), 1.0));
        let b = read_back("b.json", &report(&config("127.0.0.1:10"), t.clone(), 1.0));
        let e = merge(&[a.clone(), b]).unwrap_err().to_string();
        assert_eq!(
            e,
            "cannot merge b.json with a.json: their targets differ (127.0.0.1:10 against 127.0.0.1:9)"
        );
        let mut other = config("127.0.0.1:9");
        other.health.thresholds.clear();
        let c = read_back("c.json", &report(&other, t, 1.0));
        let e = merge(&[a, c]).unwrap_err().to_string();
        assert!(e.contains("their health checks differ"), "{e}");
        assert!(matches!(merge(&[]), Err(MergeError::Empty)));
    }
}
