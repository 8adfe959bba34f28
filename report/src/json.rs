//! The JSON report: one stable document, described by `report/schema/report.schema.json`.
//!
//! The document is a set of serde types borrowing from the result
//! ([`Verification`]) and reusing its serialisable parts (inputs, plan, intervals,
//! errors, drift), the same parts the rehearsal's document embeds
//! (`rehearse/schema/rehearsal.schema.json`): one model, two documents.
//!
//! Field names and meanings only change together with [`SCHEMA_VERSION`]. Shares and
//! rates are fractions in 0..=1, latencies are microseconds, times are RFC 3339.

use std::collections::BTreeMap;

use serde::Serialize;

use checker_core::sampler::{ErrorClass, StopReason};
use checker_core::snapshot::TallySnapshot;
use checker_core::tally::{FailureReason, MalformedReply, Window};
use checker_core::verdict::baseline::BaselineVerdict;
use checker_core::verdict::compare::{Comparison, Method, MetricComparison};
use checker_core::verdict::health::HealthRules;
use checker_core::verdict::judgement::Mode;
use checker_core::verdict::local::{LocalCause, LocalReadings};
use checker_core::verdict::thresholds::ThresholdResult;
use checker_core::verdict::{ChiSquare, Drift, Outcome, Plan, VersionVerdict};
use checker_core::verify::{
    Inputs, LatencySummary, ScheduleSummary, SequentialSummary, SettleSummary, Verification,
};

/// The version of the document's layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

/// The schema the document follows, as kept in the repository.
pub const SCHEMA: &str = include_str!("../schema/report.schema.json");

/// The `checker verify` JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct Document<'a> {
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The program that wrote it.
    pub tool: Tool,
    /// Overall outcome (errors decide first).
    pub outcome: Outcome,
    /// The process exit code.
    pub exit_code: i32,
    /// One sentence saying why.
    pub reason: String,
    /// What was asked.
    pub inputs: &'a Inputs,
    /// The plan, when no count was given.
    pub plan: Option<&'a Plan>,
    /// RFC 3339 start.
    pub started_at: &'a str,
    /// RFC 3339 end.
    pub finished_at: &'a str,
    /// Seconds from start to end.
    pub elapsed_s: f64,
    /// Why sampling stopped.
    pub stop_reason: StopReason,
    /// Finished, attributed and failed samples.
    pub counts: Counts,
    /// The split's verdict without its versions.
    pub split: Split<'a>,
    /// Every version, with its latency.
    pub versions: Vec<VersionEntry<'a>>,
    /// Errors and the error budget's verdict.
    pub errors: Errors<'a>,
    /// Schedule keeping with `--rate`.
    pub schedule: Option<&'a ScheduleSummary>,
    /// Counts per consecutive window, oldest first.
    pub windows: Vec<WindowEntry<'a>>,
    /// Whether the split moved between windows.
    pub drift: &'a Drift,
    /// `fixed` or `sequential`.
    pub mode: Mode,
    /// What sequential sampling did; null in fixed mode.
    pub sequential: Option<&'a SequentialSummary>,
    /// What `--settle` saw before the counted samples; null without it.
    pub settle: Option<&'a SettleSummary>,
    /// Health checks beyond the split: their rules and results.
    pub health: Health<'a>,
    /// Everything counted, histograms included, so that `checker merge` can add reports.
    pub tally: TallySnapshot,
    /// The long-lived connections of `--hold` (absent without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<&'a checker_core::hold::HeldReport>,
    /// The split derived from manifests (`--expect-from`), with its provenance; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_from: Option<&'a manifests::Derivation>,
    /// The gateway's own view (`--gateway-admin`, `--config-dump`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<crate::gateway::GatewaySection<'a>>,
}

/// The health checks of a run: what was asked and what came out.
#[derive(Debug, Clone, Serialize)]
pub struct Health<'a> {
    /// FAIL if any check fails, else INCONCLUSIVE if the comparison is, else PASS
    /// (PASS when nothing was asked).
    pub outcome: Outcome,
    /// The rules (`--compare`, `--threshold`, `--baseline`), for `checker merge`.
    pub rules: &'a HealthRules,
    /// The canary against the stable.
    pub comparison: Option<ComparisonEntry<'a>>,
    /// Every threshold with its outcome.
    pub thresholds: &'a [ThresholdResult],
    /// This run against the baseline.
    pub baseline: Option<&'a BaselineVerdict>,
}

/// The canary against the stable: the comparison's plain data, every metric with its
/// verdict in a sentence.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonEntry<'a> {
    /// The canary's name.
    pub canary: &'a str,
    /// The stable's name.
    pub stable: &'a str,
    /// `fixed` or `sequential`: how the intervals were made.
    pub method: Method,
    /// Confidence of each metric's interval (Bonferroni over the metrics).
    pub per_metric_confidence: f64,
    /// Every compared metric with its reason.
    pub metrics: Vec<MetricEntry<'a>>,
    /// Failed samples no reply attributes to a version.
    pub unattributed_errors: u64,
    /// Whether non-critical metrics count too.
    pub strict: bool,
    /// The worst verdict among the metrics that count.
    pub outcome: Outcome,
}

/// One compared metric (its fields inline: estimate, interval, margin, direction,
/// critical, outcome, finding, more_samples) and its verdict in a sentence.
#[derive(Debug, Clone, Serialize)]
pub struct MetricEntry<'a> {
    /// The metric's plain data, serialised inline.
    #[serde(flatten)]
    pub metric: &'a MetricComparison,
    /// Why, in a sentence ([`crate::explain::metric_sentence`]).
    pub reason: String,
}

impl<'a> ComparisonEntry<'a> {
    /// The entry of `c`.
    pub fn of(c: &'a Comparison) -> Self {
        Self {
            canary: &c.canary,
            stable: &c.stable,
            method: c.method,
            per_metric_confidence: c.per_metric_confidence,
            metrics: c
                .metrics
                .iter()
                .map(|m| MetricEntry {
                    metric: m,
                    reason: crate::explain::metric_sentence(m),
                })
                .collect(),
            unattributed_errors: c.unattributed_errors,
            strict: c.strict,
            outcome: c.outcome,
        }
    }
}

/// The program that wrote the document.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tool {
    /// Always `checker`.
    pub name: &'static str,
    /// The crate version.
    pub version: &'static str,
}

/// Sample counts: `attempted` = `attributed` + `errors`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counts {
    /// Finished samples.
    pub attempted: u64,
    /// Samples attributed to a version.
    pub attributed: u64,
    /// Failed samples.
    pub errors: u64,
}

/// The split's verdict (its versions are listed apart, with latency).
#[derive(Debug, Clone, Serialize)]
pub struct Split<'a> {
    /// The split's outcome.
    pub outcome: Outcome,
    /// Confidence of each version's interval (Bonferroni).
    pub per_version_confidence: f64,
    /// Attributed samples.
    pub total: u64,
    /// Pearson's goodness of fit, information only.
    pub chi_square: &'a ChiSquare,
}

/// One version's verdict (its fields inline: name, expected, share, interval, band,
/// outcome, reason, ...) and latency.
#[derive(Debug, Clone, Serialize)]
pub struct VersionEntry<'a> {
    /// The version's verdict, serialised inline.
    #[serde(flatten)]
    pub verdict: &'a VersionVerdict,
    /// Connect and reply latency, microseconds.
    pub latency_us: LatencyEntry,
}

/// Connect, handshake and reply latency of one version (all zero when it never answered).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyEntry {
    /// Time to establish the connection.
    pub connect: LatencySummary,
    /// With TLS: time from the connection to the completed handshake (absent without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<LatencySummary>,
    /// Time from sending the probe to the complete reply.
    pub reply: LatencySummary,
}

/// The errors of a run, every class named.
#[derive(Debug, Clone, Serialize)]
pub struct Errors<'a> {
    /// Failed samples.
    pub total: u64,
    /// Failed over finished samples.
    pub rate: f64,
    /// The budget.
    pub max_rate: f64,
    /// Every finished sample failed.
    pub unreachable: bool,
    /// FAIL when unreachable or over budget, else PASS.
    pub outcome: Outcome,
    /// Failed samples per class, every class present.
    pub by_class: &'a BTreeMap<ErrorClass, u64>,
    /// The first few distinct malformed replies.
    pub malformed_replies: &'a [MalformedReply],
    /// The first few distinct failure reasons (TLS, captured values); absent when none.
    #[serde(skip_serializing_if = "<[FailureReason]>::is_empty")]
    pub failure_reasons: &'a [FailureReason],
    /// This machine's conntrack table, port range and sockets.
    pub local_readings: &'a LocalReadings,
    /// A likely cause of the errors on this machine.
    pub local_cause: Option<&'a LocalCause>,
}

/// One window's counts, with its position.
#[derive(Debug, Clone, Serialize)]
pub struct WindowEntry<'a> {
    /// 0-based position, oldest first.
    pub index: usize,
    /// Counts per version.
    pub counts: &'a BTreeMap<String, u64>,
    /// Failed samples.
    pub errors: u64,
    /// Samples of the window not counted (see [`Window::left_out`]); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub left_out: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl<'a> Document<'a> {
    /// The document of `report`.
    pub fn of(report: &'a Verification) -> Self {
        let judged = &report.judgement;
        let versions = judged
            .split
            .versions
            .iter()
            .map(|v| {
                let lat = report.latency.get(&v.name);
                VersionEntry {
                    verdict: v,
                    latency_us: LatencyEntry {
                        connect: lat.map_or(LatencySummary::EMPTY, |l| l.connect),
                        handshake: lat.and_then(|l| l.handshake),
                        reply: lat.map_or(LatencySummary::EMPTY, |l| l.reply),
                    },
                }
            })
            .collect();
        let windows = report
            .windows
            .iter()
            .enumerate()
            .map(|(index, w): (usize, &Window)| WindowEntry {
                index,
                counts: &w.counts,
                errors: w.errors,
                left_out: w.left_out,
            })
            .collect();
        let e = &judged.errors;
        Self {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "checker",
                version: env!("CARGO_PKG_VERSION"),
            },
            outcome: judged.outcome,
            exit_code: judged.exit_code,
            reason: crate::reason::reason(report),
            inputs: &report.inputs,
            plan: report.plan.as_ref(),
            started_at: &report.times.started_at,
            finished_at: &report.times.finished_at,
            elapsed_s: report.times.elapsed_s,
            stop_reason: report.stop_reason,
            counts: Counts {
                attempted: report.attempted,
                attributed: report.attributed,
                errors: e.total,
            },
            split: Split {
                outcome: judged.split.outcome,
                per_version_confidence: judged.split.per_version_confidence,
                total: judged.split.total,
                chi_square: &judged.split.chi_square,
            },
            versions,
            errors: Errors {
                total: e.total,
                rate: e.rate,
                max_rate: e.max_rate,
                unreachable: e.unreachable,
                outcome: e.outcome,
                by_class: &e.by_class,
                malformed_replies: &e.malformed_replies,
                failure_reasons: &e.failure_reasons,
                local_readings: &e.local_readings,
                local_cause: e.local_cause.as_ref(),
            },
            schedule: report.schedule.as_ref(),
            windows,
            drift: &judged.drift,
            mode: report.mode,
            sequential: report.sequential.as_ref(),
            settle: report.settle.as_ref(),
            health: Health {
                outcome: judged.health.outcome,
                rules: &report.health_rules,
                comparison: judged.health.comparison.as_ref().map(ComparisonEntry::of),
                thresholds: &judged.health.thresholds,
                baseline: judged.health.baseline.as_ref(),
            },
            tally: TallySnapshot::of(&report.tally),
            held: report.held.as_ref(),
            expected_from: report.expected_from.as_ref(),
            gateway: crate::gateway::GatewaySection::of(report),
        }
    }
}

/// The document of `report`, pretty-printed with a final newline.
pub fn to_string(report: &Verification) -> String {
    serde_json::to_string_pretty(&Document::of(report)).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health_section::tests::compared;

    #[test]
    fn the_comparison_follows_the_schema_with_a_sentence_per_metric() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for sequential in [false, true] {
            let v = compared(3000, 2, 20, sequential);
            let doc = serde_json::to_value(Document::of(&v)).unwrap();
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:#?}");
            let c = &doc["health"]["comparison"];
            let method = if sequential { "sequential" } else { "fixed" };
            assert_eq!(c["method"], method);
            let judged = v.judgement.health.comparison.as_ref().unwrap();
            for (m, j) in c["metrics"].as_array().unwrap().iter().zip(&judged.metrics) {
                assert_eq!(m["metric"], j.metric.as_str());
                assert_eq!(m["reason"], crate::explain::metric_sentence(j).as_str());
                for key in [
                    "effect",
                    "interval",
                    "margin",
                    "direction",
                    "critical",
                    "outcome",
                    "finding",
                    "more_samples",
                ] {
                    assert!(m.get(key).is_some(), "{key}: {m:#}");
                }
            }
            // The rule as given, for checker merge.
            assert_eq!(
                doc["health"]["rules"]["compare"]["critical"],
                serde_json::json!(["p50"])
            );
        }
    }
}
