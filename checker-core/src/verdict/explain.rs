//! The health gate's verdicts in words: one sentence per metric from its plain-data
//! reason ([`MetricComparison`]), and the plan line of a fixed sample count
//! ([`MetricPlan`]). Text only; where it is shown is the report's business.

use super::Outcome;
use super::compare::{Direction, Finding, MetricComparison};
use super::compare_plan::MetricPlan;

/// Interval ends beyond this relative change (a thousandfold) are shown as unbounded:
/// the order statistic did not exist and the histogram's limit stood in.
const UNBOUNDED: f64 = 999.0;

/// `p99_reply` as `p99 reply`.
fn name(metric: &str) -> String {
    metric.replace('_', " ")
}

/// A change: points for a rate difference, a percentage for a ratio.
fn change(kind: &str, x: f64) -> String {
    if kind == "difference" {
        format!("{:+.2}pp", x * 100.0)
    } else if x >= UNBOUNDED {
        "unbounded".to_owned()
    } else if x.abs() < 0.1 {
        format!("{:+.1}%", x * 100.0)
    } else {
        format!("{:+.0}%", x * 100.0)
    }
}

/// A margin with its direction: `the 20% margin`, `the -20% margin`, `the ±20% margin`.
fn margin(kind: &str, margin: f64, direction: Direction) -> String {
    let size = if kind == "difference" {
        format!("{}pp", trim(margin * 100.0))
    } else {
        format!("{}%", trim(margin * 100.0))
    };
    match direction {
        Direction::Increase => format!("the {size} margin"),
        Direction::Decrease => format!("the -{size} margin"),
        Direction::Either => format!("the ±{size} margin"),
    }
}

/// A number without trailing zeros (`0.5`, `20`).
fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A count with thousands separators: `17,680`.
fn grouped(n: u64) -> String {
    let plain = n.to_string();
    let mut out = String::new();
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && (plain.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count rounded up to two significant digits, with thousands separators: `8,712`
/// as `8,800`.
pub fn about(n: u64) -> String {
    let unit = 10u64.pow(n.checked_ilog10().unwrap_or(0).saturating_sub(1));
    grouped(n.div_ceil(unit) * unit)
}

/// One metric's verdict in a sentence, e.g. "p99 reply +70% (interval -15%..+128%)
/// could be beyond the 50% margin: not proven; about 9,000 more connections would
/// likely decide it".
pub fn metric_sentence(m: &MetricComparison) -> String {
    let kind = m.effect_kind;
    let what = name(&m.metric);
    let mut out = match (m.effect, m.interval) {
        (Some(effect), Some(interval)) if m.finding != Finding::NoSamples => {
            let shown = format!(
                "{what} {} (interval {}..{})",
                change(kind, effect),
                change(kind, interval.low),
                change(kind, interval.high)
            );
            let margin = margin(kind, m.margin, m.direction);
            match m.finding {
                Finding::Within => format!("{shown} is within {margin}"),
                Finding::Beyond => format!("{shown} is beyond {margin}"),
                Finding::NotProvenWithin => {
                    format!("{shown} could be beyond {margin}: not proven within it")
                }
                _ => format!("{shown} could be beyond {margin}: not proven"),
            }
        }
        _ => format!("{what}: {}", m.reason),
    };
    if m.outcome == Outcome::Inconclusive && m.effect.is_some() && m.interval.is_some() {
        out.push_str(&match (m.more_samples, m.growth_to_decide()) {
            (Some(more), _) => format!(
                "; about {} more connections would likely decide it",
                about(more)
            ),
            (None, Some(_)) => "; more connections than a run can make would be needed".to_owned(),
            (None, None) => {
                "; the estimate sits on the margin: no number of connections would decide it"
                    .to_owned()
            }
        });
    }
    if !m.critical {
        out.push_str(" (not critical)");
    }
    out
}

/// The plan line of one metric, e.g. "2,000 connections: p99 reply increases beyond
/// about +133% would FAIL; an identical canary PASSes only if its p99 reply interval
/// is narrower than the margin, which needs about 18,000".
pub fn plan_sentence(p: &MetricPlan) -> String {
    let what = name(&p.metric);
    let head = format!("{} connections", grouped(p.samples));
    let moves = if p.direction == Direction::Decrease {
        "decreases"
    } else {
        "increases"
    };
    let fail = match p.fail_beyond {
        Some(x) => format!(
            "{what} {moves} beyond about {} would FAIL",
            change(p.effect_kind, x)
        ),
        None => format!("no {what} change can FAIL yet"),
    };
    let pass = match (p.identical_passes, p.pass_needs) {
        (true, _) => "an identical canary PASSes".to_owned(),
        (false, Some(n)) => format!(
            "an identical canary PASSes only if its {what} interval is narrower than the margin, which needs about {}",
            about(n)
        ),
        (false, None) => format!(
            "an identical canary cannot PASS: its {what} interval would need more connections than a run can make"
        ),
    };
    format!("{head}: {fail}; {pass}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::compare::Range;

    fn issue_example() -> MetricComparison {
        MetricComparison {
            metric: "p99_reply".to_owned(),
            effect_kind: "ratio",
            canary: Some(16_750.0),
            stable: Some(9_830.0),
            effect: Some(0.704),
            interval: Some(Range {
                low: -0.153,
                high: 1.278,
            }),
            margin: 0.5,
            direction: Direction::Increase,
            critical: true,
            outcome: Outcome::Inconclusive,
            finding: Finding::NotProvenBeyond,
            reason: Finding::NotProvenBeyond.words().to_owned(),
            more_samples: Some(8_712),
        }
    }

    #[test]
    fn the_issue_sentence() {
        assert_eq!(
            metric_sentence(&issue_example()),
            "p99 reply +70% (interval -15%..+128%) could be beyond the 50% margin: not proven; \
             about 8,800 more connections would likely decide it"
        );
    }

    #[test]
    fn sentences_for_every_finding() {
        let mut m = issue_example();
        m.finding = Finding::Beyond;
        m.outcome = Outcome::Fail;
        m.interval = Some(Range {
            low: 0.52,
            high: 0.91,
        });
        m.more_samples = None;
        assert_eq!(
            metric_sentence(&m),
            "p99 reply +70% (interval +52%..+91%) is beyond the 50% margin"
        );
        m.effect_kind = "difference";
        m.metric = "error_rate".to_owned();
        m.effect = Some(0.0004);
        m.interval = Some(Range {
            low: -0.001,
            high: 0.002,
        });
        m.margin = 0.005;
        m.direction = Direction::Either;
        m.finding = Finding::Within;
        m.outcome = Outcome::Pass;
        m.critical = false;
        assert_eq!(
            metric_sentence(&m),
            "error rate +0.04pp (interval -0.10pp..+0.20pp) is within the ±0.5pp margin (not critical)"
        );
        m.finding = Finding::NoSamples;
        m.outcome = Outcome::Inconclusive;
        m.effect = None;
        m.interval = None;
        m.reason = "the canary has no samples".to_owned();
        assert_eq!(
            metric_sentence(&m),
            "error rate: the canary has no samples (not critical)"
        );
        // Unbounded ends and an estimate on the edge.
        let mut m = issue_example();
        m.effect = Some(0.5);
        m.interval = Some(Range {
            low: -0.4,
            high: 3.6e6,
        });
        m.more_samples = None;
        assert_eq!(
            metric_sentence(&m),
            "p99 reply +50% (interval -40%..unbounded) could be beyond the 50% margin: not proven; \
             the estimate sits on the margin: no number of connections would decide it"
        );
    }

    #[test]
    fn counts_are_rounded_to_two_digits() {
        assert_eq!(about(8_712), "8,800");
        assert_eq!(about(9_000), "9,000");
        assert_eq!(about(17_680), "18,000");
        assert_eq!(about(1_234_567), "1,300,000");
        assert_eq!(about(7), "7");
        assert_eq!(about(42), "42");
        assert_eq!(about(0), "0");
    }

    #[test]
    fn the_plan_line() {
        let p = MetricPlan {
            metric: "p99_reply".to_owned(),
            effect_kind: "ratio",
            margin: 0.2,
            direction: Direction::Increase,
            samples: 2_000,
            fail_beyond: Some(1.327),
            identical_passes: false,
            pass_needs: Some(17_680),
            fail_needs: Some(23_000),
        };
        assert_eq!(
            plan_sentence(&p),
            "2,000 connections: p99 reply increases beyond about +133% would FAIL; an identical \
             canary PASSes only if its p99 reply interval is narrower than the margin, which needs about 18,000"
        );
    }
}
