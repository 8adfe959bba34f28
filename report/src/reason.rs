//! The one sentence that says why a verification's outcome is what it is: the health
//! check that decided, the errors, the split's failing or undecided versions, or PASS.

use checker_core::sampler::{ErrorClass, StopReason};
use checker_core::verdict::Outcome;
use checker_core::verify::Verification;

/// The verdict line when a health check decides it (the split and the errors pass).
fn health_reason(v: &Verification) -> Option<String> {
    if v.judgement.errors.outcome == Outcome::Fail || v.judgement.split.outcome != Outcome::Pass {
        return None;
    }
    match v.judgement.health.outcome {
        Outcome::Fail => Some(format!(
            "FAIL on health: the split passes, but {}",
            v.judgement.health.failures().join("; ")
        )),
        Outcome::Inconclusive => {
            let c = v.judgement.health.comparison.as_ref()?;
            let why: Vec<String> = c
                .metrics
                .iter()
                .filter(|m| m.outcome == Outcome::Inconclusive)
                .map(|m| format!("{}: {}", m.metric, m.reason))
                .collect();
            Some(format!(
                "INCONCLUSIVE: the split passes, but the comparison of {} with {} cannot decide ({})",
                c.canary,
                c.stable,
                why.join("; ")
            ))
        }
        Outcome::Pass => None,
    }
}

/// One sentence saying why the outcome is what it is.
pub fn reason(v: &Verification) -> String {
    let mut reason = health_reason(v).unwrap_or_else(|| outcome_reason(v));
    if let Some(cause) = &v.judgement.errors.local_cause {
        reason.push_str(&format!(
            "; the errors' likely cause is on this machine, not the target: {}",
            cause.message
        ));
    }
    if v.judgement.drift.moved {
        reason.push_str(&format!(
            "; note: the split moved during sampling (a share shifted by {:.1} points between windows)",
            v.judgement.drift.max_shift * 100.0
        ));
    }
    reason
}

fn outcome_reason(r: &Verification) -> String {
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let errors = &r.judgement.errors;
    let main = r.main_error().map_or("", ErrorClass::as_str);
    let malformed = r.tally.errors_of(ErrorClass::MalformedReply);
    if errors.unreachable && malformed > 0 {
        let examples: Vec<String> = errors
            .malformed_replies
            .iter()
            .map(|m| format!("\"{}\"", m.reply))
            .collect();
        return format!(
            "FAIL on errors: the target answered but not with the protocol: {malformed} of {} \
             replies were not `<version> <the line sent>` (e.g. {}), and no sample was attributed",
            r.attempted,
            examples.join(", ")
        );
    }
    if errors.unreachable {
        let stopped = if r.stop_reason == StopReason::Unreachable {
            ", so sampling stopped early"
        } else {
            ""
        };
        return format!(
            "FAIL on errors: the target is unreachable, all {} samples failed (mostly {main}){stopped}",
            r.attempted
        );
    }
    if errors.outcome == Outcome::Fail {
        return format!(
            "FAIL on errors: {} of {} samples failed ({}, over the {} budget; mostly {main})",
            errors.total,
            r.attempted,
            pct(errors.rate),
            pct(errors.max_rate)
        );
    }
    if r.attempted == 0 {
        return "INCONCLUSIVE: no sample was taken".to_owned();
    }
    let pick = |o: Outcome| {
        r.judgement
            .split
            .versions
            .iter()
            .filter(move |v| v.outcome == o)
    };
    match r.judgement.split.outcome {
        Outcome::Fail => {
            let why: Vec<String> = pick(Outcome::Fail)
                .map(|v| {
                    format!(
                        "{} answered {} of {} ({}, interval {}..{}, band {}..{}): {}",
                        v.name,
                        v.count,
                        r.judgement.split.total,
                        pct(v.share),
                        pct(v.interval.low),
                        pct(v.interval.high),
                        pct(v.band.low),
                        pct(v.band.high),
                        v.reason
                    )
                })
                .collect();
            format!("FAIL: {}", why.join("; "))
        }
        Outcome::Inconclusive => {
            let more = pick(Outcome::Inconclusive)
                .filter_map(|v| v.more_samples)
                .max();
            let names: Vec<&str> = pick(Outcome::Inconclusive)
                .map(|v| v.name.as_str())
                .collect();
            let names = names.join(", ");
            match more {
                Some(n) => format!(
                    "INCONCLUSIVE: {} samples cannot decide {names} yet; about {n} more connections would",
                    r.judgement.split.total
                ),
                None => format!(
                    "INCONCLUSIVE: {} samples cannot decide {names} yet",
                    r.judgement.split.total
                ),
            }
        }
        Outcome::Pass => format!(
            "PASS: every version within {:.1} points of its weight at {} confidence ({} samples, {} errors)",
            r.inputs.tolerance * 100.0,
            pct(r.inputs.confidence),
            r.attempted,
            errors.total
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker_core::sampler::Sample;
    use checker_core::tally::{Tally, Windowing};
    use checker_core::verdict::local::LocalReadings;
    use checker_core::verify::{Times, VerifyConfig};
    use std::time::{Duration, SystemTime};

    fn config() -> VerifyConfig {
        VerifyConfig::new("127.0.0.1:1", "one=90,two=10".parse().unwrap())
    }

    fn refused_report(readings: LocalReadings) -> Verification {
        let mut tally = Tally::new(Windowing::ById { total: 10 });
        for id in 0..10 {
            tally.record(&Sample {
                id,
                addr: "127.0.0.1:1".parse().unwrap(),
                started_at: SystemTime::now(),
                offset: Duration::ZERO,
                result: Err(ErrorClass::ConnectTimeout),
                connect_us: None,
                reply_us: None,
                lag_us: None,
                reply_head: None,
            });
        }
        let times = Times {
            started_at: String::new(),
            finished_at: String::new(),
            elapsed_s: 0.0,
        };
        let c = config();
        let addrs = ["127.0.0.1:1".parse().unwrap()];
        Verification::build(
            &c,
            &addrs,
            None,
            tally,
            StopReason::Samples,
            readings,
            times,
        )
    }

    #[test]
    fn a_nearly_full_conntrack_table_is_named_in_the_verdict_and_the_json() {
        let full = LocalReadings {
            conntrack_count: Some(250_000),
            conntrack_max: Some(262_144),
            local_ports: Some(28_232),
            tcp_sockets: Some(10),
        };
        let report = refused_report(full);
        assert!(
            reason(&report).contains("likely cause is on this machine"),
            "{}",
            reason(&report)
        );
        assert!(crate::text::render(&report).contains("likely local cause"));
        let doc = serde_json::to_value(crate::json::Document::of(&report)).unwrap();
        assert_eq!(doc["errors"]["local_cause"]["kind"], "conntrack_full");
        let calm = LocalReadings {
            conntrack_count: Some(1_000),
            ..full
        };
        let report = refused_report(calm);
        assert!(!reason(&report).contains("machine"), "{}", reason(&report));
        let doc = serde_json::to_value(crate::json::Document::of(&report)).unwrap();
        assert!(doc["errors"]["local_cause"].is_null());
    }
}
