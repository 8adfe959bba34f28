//! The human report's health section: the canary against the stable, the thresholds
//! and the baseline, each line with a check or a cross.

use std::fmt::Write;

use checker_core::verdict::compare::MetricComparison;
use checker_core::verdict::figures::{duration_us, parse_key};
use checker_core::verify::Verification;

use crate::table::{mark, outcome_word as word, table};

/// A metric's value: a rate as a percentage, a latency shortened.
fn value(m: &MetricComparison, v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if m.effect_kind == "difference" => format!("{:.2}%", v * 100.0),
        Some(v) => duration_us(v.round() as u64),
    }
}

/// An effect: points for a rate difference, a percentage for a latency ratio.
fn effect(m: &MetricComparison, v: f64) -> String {
    if m.effect_kind == "difference" {
        format!("{:+.2}pp", v * 100.0)
    } else {
        format!("{:+.1}%", v * 100.0)
    }
}

/// The health section (empty when no health check was asked for).
pub fn render(report: &Verification) -> String {
    let mut out = String::new();
    let h = &report.judgement.health;
    if let Some(c) = &h.comparison {
        let _ = writeln!(
            out,
            "\n{} canary {} against stable {} (each metric at {:.2}% confidence; {} errors no reply attributes to a version count in the error budget only)",
            mark(c.outcome),
            c.canary,
            c.stable,
            c.per_metric_confidence * 100.0,
            c.unattributed_errors
        );
        let mut rows = vec![
            [
                "METRIC", "CANARY", "STABLE", "EFFECT", "INTERVAL", "MARGIN", "VERDICT",
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
                if m.effect_kind == "difference" {
                    format!("{:.2}pp", m.margin * 100.0)
                } else {
                    format!("{:.0}%", m.margin * 100.0)
                },
                format!("{} {}", mark(m.outcome), word(m.outcome)),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if !h.thresholds.is_empty() {
        out.push_str("\nthresholds:\n");
        for t in &h.thresholds {
            let _ = writeln!(out, "  {} {} ({})", mark(t.outcome), t.expression, t.shown);
        }
    }
    if let Some(b) = &h.baseline {
        let _ = writeln!(
            out,
            "\n{} against the baseline {}:",
            mark(b.outcome),
            b.source
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
                f.figure.clone(),
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
