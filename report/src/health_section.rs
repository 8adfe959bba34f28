//! The human report's health section: the canary against the stable, the thresholds
//! and the baseline, each line with a check or a cross.

use std::fmt::Write;

use checker_core::verdict::compare::{Comparison, Method, MetricComparison};
use checker_core::verdict::figures::{duration_us, parse_key};
use checker_core::verify::Verification;

use crate::explain;
use crate::table::{mark, outcome_word as word, table};
use protocol::escape;

/// A metric's value: a rate as a percentage, a latency shortened.
fn value(m: &MetricComparison, v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if m.effect_kind == "difference" => format!("{:.2}%", v * 100.0),
        Some(v) => duration_us(v.round() as u64),
    }
}

/// An effect: points for a rate difference, a percentage for a latency ratio
/// (`unbounded` where the order statistic did not exist, as in the sentences).
fn effect(m: &MetricComparison, v: f64) -> String {
    if m.effect_kind == "difference" {
        format!("{:+.2}pp", v * 100.0)
    } else if v >= explain::UNBOUNDED {
        "unbounded".to_owned()
    } else {
        format!("{:+.1}%", v * 100.0)
    }
}

/// How the intervals were made, in a few words.
fn method(c: &Comparison) -> &'static str {
    match c.method {
        Method::Fixed => "fixed intervals for the samples taken",
        Method::Sequential => "confidence sequences, valid at every look",
    }
}

/// The comparison: a header, a table of every metric (estimate, interval, margin with
/// its direction, critical or not, verdict), then each metric's verdict in a sentence.
fn comparison(c: &Comparison) -> String {
    let mut out = String::new();
    let counted = if c.strict {
        "; strict: every metric counts"
    } else if c.metrics.iter().any(|m| !m.critical) {
        "; only critical metrics decide"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "\n{} canary {} against stable {} ({}, each metric at {:.2}% confidence{counted}; {} errors no reply attributes to a version count in the error budget only)",
        mark(c.outcome),
        escape(&c.canary),
        escape(&c.stable),
        method(c),
        c.per_metric_confidence * 100.0,
        c.unattributed_errors
    );
    let mut rows = vec![
        [
            "METRIC", "CANARY", "STABLE", "EFFECT", "INTERVAL", "MARGIN", "CRITICAL", "VERDICT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for m in &c.metrics {
        rows.push(vec![
            m.metric.clone(),
            value(m, m.canary),
            value(m, m.stable),
            m.effect.map_or("-".to_owned(), |e| effect(m, e)),
            m.interval.map_or("-".to_owned(), |i| {
                format!("{} .. {}", effect(m, i.low), effect(m, i.high))
            }),
            explain::signed_margin(m.effect_kind, m.margin, m.direction),
            if m.critical { "yes" } else { "no" }.to_owned(),
            format!("{} {}", mark(m.outcome), word(m.outcome)),
        ]);
    }
    out.push_str(&table(&rows));
    for m in &c.metrics {
        let _ = writeln!(out, "  {} {}", mark(m.outcome), explain::metric_sentence(m));
    }
    out
}

/// The health section (empty when no health check was asked for).
pub fn render(report: &Verification) -> String {
    let mut out = String::new();
    let h = &report.judgement.health;
    if let Some(c) = &h.comparison {
        out.push_str(&comparison(c));
    }
    if !h.thresholds.is_empty() {
        out.push_str("\nthresholds:\n");
        for t in &h.thresholds {
            let _ = writeln!(
                out,
                "  {} {} ({})",
                mark(t.outcome),
                escape(&t.expression),
                t.shown
            );
        }
    }
    if let Some(b) = &h.baseline {
        let _ = writeln!(
            out,
            "\n{} against the baseline {}:",
            mark(b.outcome),
            escape(&b.source)
        );
        let mut rows = vec![
            ["FIGURE", "BASELINE", "NOW", "CHANGE", "MARGIN", "VERDICT"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for f in &b.figures {
            let metric = parse_key(&f.figure).ok().map(|(_, m)| m);
            let show = |v: f64| metric.map_or_else(|| format!("{v}"), |m| m.show(v));
            rows.push(vec![
                escape(&f.figure),
                show(f.baseline),
                f.current.map_or("-".to_owned(), show),
                f.shown.clone(),
                if f.change_kind == "points" {
                    format!("{:.2}pp", f.margin * 100.0)
                } else {
                    format!("{:.0}%", f.margin * 100.0)
                },
                format!("{} {}", mark(f.outcome), word(f.outcome)),
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use checker_core::sampler::{ErrorClass, Sample, StopReason};
    use checker_core::tally::{Tally, Windowing};
    use checker_core::verdict::compare::{CompareRule, parse_latency_margins};
    use checker_core::verdict::local::LocalReadings;
    use checker_core::verify::{SequentialConfig, Times, VerifyConfig};
    use std::time::{Duration, SystemTime};

    /// A run of `n` connections per version through a 50/50 split: the canary `two`
    /// `slower` times slower and failing every `fail_every`-th reply, compared with `one`
    /// on the median within 50% (only `p50` critical unless `strict`), judged by the
    /// sequential rule or the fixed one.
    pub(crate) fn compared(n: u64, slower: u64, fail_every: u64, sequential: bool) -> Verification {
        let mut tally = Tally::new(Windowing::ById { total: 2 * n });
        let mut id = 0;
        for i in 0..n {
            for (version, scale, fails) in [
                ("one", 1, false),
                ("two", slower, (i + 1) % fail_every == 0),
            ] {
                id += 1;
                // A spread of latencies from 100 µs to about 1.1 ms.
                let us = (100 + (i * 7919) % 1000) * scale;
                tally.record(&Sample {
                    id,
                    addr: "127.0.0.1:1".parse().unwrap(),
                    started_at: SystemTime::UNIX_EPOCH,
                    offset: Duration::ZERO,
                    result: if fails {
                        Err(ErrorClass::MalformedReply)
                    } else {
                        Ok(version.to_owned())
                    },
                    connect_us: Some(us / 2),
                    reply_us: (!fails).then_some(us),
                    lag_us: None,
                    handshake_us: None,
                    reason: None,
                    reply_head: fails.then(|| format!("{version} corrupted")),
                });
            }
        }
        let mut config = VerifyConfig::new("127.0.0.1:1", "one=50,two=50".parse().unwrap());
        config.max_error_rate = 0.5;
        if sequential {
            config.sequential = Some(SequentialConfig::default());
        } else {
            config.samples = Some(2 * n);
        }
        let mut rule = CompareRule::parse_pair("two=one").unwrap();
        rule.max_latency_increase = parse_latency_margins("p50=50%").unwrap();
        rule.critical = vec!["p50".to_owned()];
        config.health.compare = Some(rule);
        let times = Times {
            started_at: String::new(),
            finished_at: String::new(),
            elapsed_s: 1.0,
        };
        let addrs = ["127.0.0.1:1".parse().unwrap()];
        Verification::build(
            &config,
            &addrs,
            None,
            tally,
            StopReason::Samples,
            LocalReadings::default(),
            times,
        )
    }

    #[test]
    fn every_metric_has_its_row_and_its_sentence() {
        // Errors 10% against a 0.5-point margin (not critical); the median the same.
        let v = compared(4000, 1, 10, false);
        let text = render(&v);
        assert!(
            text.contains("✔ canary two against stable one (fixed intervals for the samples taken, each metric at 99.67% confidence; only critical metrics decide;"),
            "{text}"
        );
        let header = text.lines().find(|l| l.starts_with("METRIC")).unwrap();
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            [
                "METRIC", "CANARY", "STABLE", "EFFECT", "INTERVAL", "MARGIN", "CRITICAL", "VERDICT"
            ]
        );
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name}: {text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        let e = row("error_rate");
        assert_eq!(
            (e[3], e[7], e[8], e[9]),
            ("+10.00pp", "0.5pp", "no", "✘"),
            "{e:?}"
        );
        let p50 = row("p50_reply");
        assert_eq!((p50[7], p50[8], p50[9]), ("50%", "yes", "✔"), "{p50:?}");
        assert!(
            text.contains("  ✘ error rate +10.00pp (interval +")
                && text.contains("is beyond the 0.5pp margin (not critical)\n"),
            "{text}"
        );
        assert!(
            text.contains("  ✔ p50 reply ") && text.contains("is within the 50% margin\n"),
            "{text}"
        );
        // The canary's non-critical failure does not fail the run.
        assert_eq!(
            v.judgement.health.outcome,
            checker_core::verdict::Outcome::Pass
        );
    }

    #[test]
    fn a_sequential_run_is_judged_with_confidence_sequences() {
        let fixed = compared(4000, 3, 1000, false);
        let sequential = compared(4000, 3, 1000, true);
        let text = render(&sequential);
        assert!(
            text.contains(
                "✘ canary two against stable one (confidence sequences, valid at every look"
            ),
            "{text}"
        );
        let (f, s) = (
            fixed.judgement.health.comparison.as_ref().unwrap(),
            sequential.judgement.health.comparison.as_ref().unwrap(),
        );
        assert_eq!((f.method, s.method), (Method::Fixed, Method::Sequential));
        // The same estimates, wider intervals.
        for (a, b) in f.metrics.iter().zip(&s.metrics) {
            assert_eq!(a.effect, b.effect);
            let (ia, ib) = (a.interval.unwrap(), b.interval.unwrap());
            assert!(ib.low <= ia.low && ib.high >= ia.high, "{a:?} {b:?}");
        }
        assert!(crate::reason::reason(&sequential).starts_with(
            "FAIL on health: the split passes, but canary two against stable one: p50 connect +20"
        ), "{}", crate::reason::reason(&sequential));
    }
}
