//! The JSON report: one stable document, described by `checker/schema/report.schema.json`.
//!
//! Field names and meanings only change together with [`SCHEMA_VERSION`]. Shares and
//! rates are fractions in 0..=1, latencies are microseconds, times are RFC 3339.

use serde_json::{Value, json};

use crate::sampler::ErrorClass;
use crate::verify::{LatencySummary, VerifyReport};

/// The version of the document's layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

/// The schema the document follows, as kept in the repository.
pub const SCHEMA: &str = include_str!("../../schema/report.schema.json");

fn latency(l: &LatencySummary) -> Value {
    json!({
        "count": l.count, "p50": l.p50, "p90": l.p90, "p99": l.p99, "max": l.max, "mean": l.mean,
    })
}

/// Builds the JSON document of `report`.
pub fn document(report: &VerifyReport) -> Value {
    let versions: Vec<Value> = report
        .split
        .versions
        .iter()
        .map(|v| {
            let lat = report.latency.get(&v.name);
            json!({
                "name": v.name,
                "expected": v.expected,
                "was_expected": v.was_expected,
                "count": v.count,
                "share": v.share,
                "interval": {"low": v.interval.low, "high": v.interval.high},
                "band": {"low": v.band.low, "high": v.band.high},
                "outcome": v.outcome,
                "reason": v.reason,
                "more_samples": v.more_samples,
                "latency_us": {
                    "connect": latency(&lat.map_or(LatencySummary::EMPTY, |l| l.connect)),
                    "reply": latency(&lat.map_or(LatencySummary::EMPTY, |l| l.reply)),
                },
            })
        })
        .collect();
    let by_class: serde_json::Map<String, Value> = ErrorClass::ALL
        .iter()
        .map(|c| {
            let n = report.errors.by_class.get(c).copied().unwrap_or(0);
            (c.as_str().to_owned(), json!(n))
        })
        .collect();
    let windows: Vec<Value> = report
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"index": i, "counts": w.counts, "errors": w.errors}))
        .collect();
    let i = &report.inputs;
    json!({
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "checker", "version": env!("CARGO_PKG_VERSION")},
        "outcome": report.outcome(),
        "exit_code": report.exit_code(),
        "reason": report.reason(),
        "inputs": {
            "target": i.target,
            "addresses": i.addresses,
            "expect": i.expect.iter().map(|e| json!({"name": e.name, "weight": e.weight, "share": e.share})).collect::<Vec<_>>(),
            "samples": i.samples,
            "duration_s": i.duration_s,
            "concurrency": i.concurrency,
            "rate": i.rate,
            "confidence": i.confidence,
            "tolerance": i.tolerance,
            "max_error_rate": i.max_error_rate,
            "connect_timeout_ms": i.connect_timeout_ms,
            "reply_timeout_ms": i.reply_timeout_ms,
        },
        "plan": report.plan.as_ref().map(|p| json!({
            "samples": p.samples,
            "pass_probability": p.pass_probability,
            "detect_probability": p.detect_probability,
        })),
        "started_at": report.times.started_at,
        "finished_at": report.times.finished_at,
        "elapsed_s": report.times.elapsed_s,
        "stop_reason": report.stop_reason,
        "counts": {
            "attempted": report.attempted,
            "attributed": report.attributed,
            "errors": report.errors.total,
        },
        "split": {
            "outcome": report.split.outcome,
            "per_version_confidence": report.split.per_version_confidence,
            "total": report.split.total,
            "chi_square": {
                "statistic": report.split.chi_square.statistic,
                "degrees_of_freedom": report.split.chi_square.degrees_of_freedom,
                "p_value": report.split.chi_square.p_value,
            },
        },
        "versions": versions,
        "errors": {
            "total": report.errors.total,
            "rate": report.errors.rate,
            "max_rate": report.errors.max_rate,
            "unreachable": report.errors.unreachable,
            "outcome": report.errors.outcome,
            "by_class": by_class,
            "malformed_replies": report.errors.malformed_replies,
            "local_readings": report.errors.local_readings,
            "local_cause": report.errors.local_cause,
        },
        "schedule": report.schedule.as_ref().map(|s| json!({
            "rate": s.rate,
            "late": s.late,
            "lag_us": latency(&s.lag_us),
        })),
        "windows": windows,
        "drift": {
            "moved": report.drift.moved,
            "statistic": report.drift.statistic,
            "degrees_of_freedom": report.drift.degrees_of_freedom,
            "p_value": report.drift.p_value,
            "max_shift": report.drift.max_shift,
        },
    })
}
