//! What `checker observe` shows: a line per look (with `--interval`), then the split of
//! every connection the gateway opened in the window, judged, as a table and one
//! sentence for people, or one JSON document (`report/schema/observe.schema.json`).
//!
//! Cluster names, URLs and label values come from the gateway: escaped for terminals.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use checker_core::gateway::counters::{Delta, Reset, SourceDelta};
use checker_core::gateway::mapping::ClusterVersion;
use checker_core::gateway::observe::{
    CounterSource, GatewayErrors, LookSummary, ObserveConfig, ObserveResult, Schedule,
};
use checker_core::gateway::view::ProgrammedLayer;
use checker_core::verdict::{Outcome, VersionVerdict};

use crate::gateway::{listener_text, reset_text, split_text};
use crate::table::{mark, outcome_word, pct, table};

/// The version of the document's layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The schema the document follows, as kept in the repository.
pub const SCHEMA: &str = include_str!("../schema/observe.schema.json");

/// An observation to show: what was asked, what was read, what came out.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// What was asked.
    pub config: &'a ObserveConfig,
    /// What came out.
    pub result: &'a ObserveResult,
    /// When the window started, RFC 3339.
    pub started_at: &'a str,
    /// What each gateway was told, when an admin or a dump was given.
    pub programmed: &'a [ProgrammedLayer],
}

/// One source, as the inputs name it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInput<'a> {
    /// `envoy_admin`, `envoy_scrape`, `istio_scrape` or `prometheus`.
    pub kind: &'static str,
    /// Its URL.
    pub url: &'a str,
    /// The label matchers of Istio's metric (empty otherwise).
    pub matchers: BTreeMap<&'a str, &'a str>,
}

fn source_input(s: &CounterSource) -> SourceInput<'_> {
    use checker_core::gateway::prometheus::CounterQuery;
    let (kind, matchers): (&'static str, &[(String, String)]) = match s {
        CounterSource::EnvoyAdmin { .. } => ("envoy_admin", &[]),
        CounterSource::EnvoyScrape { .. } => ("envoy_scrape", &[]),
        CounterSource::IstioScrape { matchers, .. } => ("istio_scrape", matchers),
        CounterSource::Prometheus {
            query: CounterQuery::IstioVersions { matchers },
            ..
        } => ("prometheus", matchers),
        CounterSource::Prometheus { .. } => ("prometheus", &[]),
    };
    SourceInput {
        kind,
        url: s.url(),
        matchers: matchers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    }
}

/// What was asked.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs<'a> {
    /// Every source, added up.
    pub sources: Vec<SourceInput<'a>>,
    /// The expected versions.
    pub expect: Vec<Expected<'a>>,
    /// Family-wide confidence.
    pub confidence: f64,
    /// Tolerance, as a fraction.
    pub tolerance: f64,
    /// The error budget on failed upstream connects.
    pub max_error_rate: f64,
    /// The longest window, seconds.
    pub duration_s: f64,
    /// Between looks, seconds; null for one look at the end.
    pub interval_s: Option<f64>,
    /// With an interval: whether the first decision ends the window.
    pub stop_when_decided: bool,
}

/// One expected version.
#[derive(Debug, Clone, Serialize)]
pub struct Expected<'a> {
    /// The version.
    pub name: &'a str,
    /// Its weight as given.
    pub weight: f64,
    /// Over the total.
    pub share: f64,
}

/// The `checker observe` JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct Document<'a> {
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The program that wrote it.
    pub tool: crate::json::Tool,
    /// Overall outcome (errors decide first).
    pub outcome: Outcome,
    /// The process exit code.
    pub exit_code: i32,
    /// One sentence saying why.
    pub reason: String,
    /// What was asked.
    pub inputs: Inputs<'a>,
    /// `fixed` (one look, Wilson) or the anytime-valid sequence's method.
    pub method: &'a str,
    /// RFC 3339 start of the window.
    pub started_at: &'a str,
    /// Seconds the window lasted.
    pub elapsed_s: f64,
    /// How many looks were taken.
    pub looks: usize,
    /// Whether the stop signal ended the window early.
    pub interrupted: bool,
    /// Connections opened per version, every source added up.
    pub counts: &'a BTreeMap<String, Delta>,
    /// The split's verdict.
    pub split: crate::json::Split<'a>,
    /// Every version's verdict.
    pub versions: &'a [VersionVerdict],
    /// Failed upstream connects against the budget.
    pub errors: &'a GatewayErrors,
    /// Per source, per cluster or version label.
    pub sources: &'a [SourceDelta],
    /// Counters that went down (a gateway restarted): counted from 0 after, never negative.
    pub resets: &'a [Reset],
    /// The `increase()` queries of Prometheus sources, to paste into Grafana.
    pub queries: &'a [String],
    /// The clusters read and their versions (empty for Istio's metric).
    pub clusters: Vec<&'a ClusterVersion>,
    /// What each gateway was told (with an admin or a dump).
    pub programmed: &'a [ProgrammedLayer],
    /// Every look in brief, oldest first.
    pub history: &'a [LookSummary],
    /// What the counts stand for, and the resets in words.
    pub notes: &'a [String],
}

impl<'a> Document<'a> {
    /// The document of `o`.
    pub fn of(o: &Observation<'a>) -> Self {
        let (c, r) = (o.config, o.result);
        let (duration, interval, stop_when_decided) = match c.schedule {
            Schedule::Once { duration } => (duration, None, false),
            Schedule::Every {
                interval,
                duration,
                stop_when_decided,
            } => (duration, Some(interval.as_secs_f64()), stop_when_decided),
        };
        Self {
            schema_version: SCHEMA_VERSION,
            tool: crate::json::Tool {
                name: "checker",
                version: env!("CARGO_PKG_VERSION"),
            },
            outcome: r.outcome,
            exit_code: r.exit_code,
            reason: reason(o),
            inputs: Inputs {
                sources: c.sources.sources.iter().map(source_input).collect(),
                expect: c
                    .expect
                    .versions()
                    .iter()
                    .map(|v| Expected {
                        name: &v.name,
                        weight: v.weight,
                        share: v.share,
                    })
                    .collect(),
                confidence: c.settings.confidence,
                tolerance: c.settings.tolerance,
                max_error_rate: c.max_error_rate,
                duration_s: duration.as_secs_f64(),
                interval_s: interval,
                stop_when_decided,
            },
            method: &r.method,
            started_at: o.started_at,
            elapsed_s: r.last.elapsed.as_secs_f64(),
            looks: r.looks,
            interrupted: r.interrupted,
            counts: &r.last.counts.versions,
            split: crate::json::Split {
                outcome: r.verdict.outcome,
                per_version_confidence: r.verdict.per_version_confidence,
                total: r.verdict.total,
                chi_square: &r.verdict.chi_square,
            },
            versions: &r.verdict.versions,
            errors: &r.errors,
            sources: &r.last.sources,
            resets: &r.last.counts.resets,
            queries: &r.last.queries,
            clusters: c.sources.clusters.clusters.values().collect(),
            programmed: o.programmed,
            history: &r.history,
            notes: &r.notes,
        }
    }
}

/// The document of `o`, pretty-printed with a final newline.
pub fn to_json(o: &Observation<'_>) -> String {
    serde_json::to_string_pretty(&Document::of(o)).unwrap_or_default() + "\n"
}

/// The JUnit suite of an observation: a case per version's share, the error budget
/// (when a source shows failed connects) and the verdict.
pub fn junit_suite(o: &Observation<'_>) -> crate::junit::Suite {
    use crate::junit::{Case, Suite, Verdict, kind};
    let r = o.result;
    let v = &r.verdict;
    let mut cases: Vec<Case> = v
        .versions
        .iter()
        .map(|x| Case {
            name: format!("share of {}", x.name),
            classname: "checker.observe.split".to_owned(),
            time_s: 0.0,
            verdict: Verdict::of(
                x.outcome,
                kind::FAIL,
                format!(
                    "{} got {} of {} connections the gateway opened ({}, interval {}..{}, band {}..{}): {}",
                    x.name,
                    x.count,
                    v.total,
                    pct(x.share),
                    pct(x.interval.low),
                    pct(x.interval.high),
                    pct(x.band.low),
                    pct(x.band.high),
                    x.reason
                ),
            ),
        })
        .collect();
    if let (Some(failed), Some(rate)) = (r.errors.connect_fail, r.errors.rate) {
        cases.push(Case {
            name: "error budget".to_owned(),
            classname: "checker.observe.errors".to_owned(),
            time_s: 0.0,
            verdict: Verdict::of(
                r.errors.outcome,
                kind::ERRORS,
                format!(
                    "{failed} of {} connections failed to connect upstream ({}, budget {})",
                    r.errors.opened,
                    pct(rate),
                    pct(r.errors.max_rate)
                ),
            ),
        });
    }
    let elapsed = r.last.elapsed.as_secs_f64();
    cases.push(Case {
        name: "verdict".to_owned(),
        classname: "checker.observe".to_owned(),
        time_s: elapsed,
        verdict: Verdict::of(r.outcome, kind::FAIL, reason(o)),
    });
    let sources: Vec<&str> = o.config.sources.sources.iter().map(|s| s.url()).collect();
    Suite {
        name: format!("checker observe {}", sources.join(" ")),
        package: "checker.observe".to_owned(),
        timestamp: o.started_at.to_owned(),
        time_s: elapsed,
        properties: vec![
            ("expect".to_owned(), o.config.expect.to_string()),
            (
                "confidence".to_owned(),
                o.config.settings.confidence.to_string(),
            ),
            (
                "tolerance".to_owned(),
                o.config.settings.tolerance.to_string(),
            ),
            ("exit_code".to_owned(), r.exit_code.to_string()),
        ],
        cases,
        system_out: render(o),
    }
}

/// What a source is, in words.
fn source_words(s: &CounterSource) -> String {
    let what = match s {
        CounterSource::EnvoyAdmin { .. } => "Envoy admin /stats, upstream_cx_total per cluster",
        CounterSource::EnvoyScrape { .. } => {
            "Prometheus text, envoy_cluster_upstream_cx_total per cluster"
        }
        CounterSource::IstioScrape { .. } => {
            "Prometheus text, istio_tcp_connections_opened_total by destination_version"
        }
        CounterSource::Prometheus { .. } => "Prometheus API, the counters' samples in the window",
    };
    let input = source_input(s);
    let matchers: Vec<String> = input
        .matchers
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    let mut out = format!("{} ({what}", protocol::escape(s.url()));
    if !matchers.is_empty() {
        let _ = write!(
            out,
            ", series with {}",
            protocol::escape(matchers.join(","))
        );
    }
    out.push(')');
    out
}

/// The lines printed once the window has started: what is read and what it stands for.
pub fn start_note(config: &ObserveConfig, programmed: &[ProgrammedLayer]) -> String {
    let (how, duration) = match config.schedule {
        Schedule::Once { duration } => ("one look at the end".to_owned(), duration),
        Schedule::Every {
            interval, duration, ..
        } => (
            format!("a look every {}", humantime::format_duration(interval)),
            duration,
        ),
    };
    let mut out = format!(
        "observing for up to {} ({how}), expected {}:\n",
        humantime::format_duration(duration),
        split_text(
            config
                .expect
                .versions()
                .iter()
                .map(|v| (v.name.as_str(), v.share))
        )
    );
    for s in &config.sources.sources {
        let _ = writeln!(out, "  source {}", source_words(s));
    }
    for layer in programmed {
        let _ = writeln!(
            out,
            "  programmed {} at {} ({}){}",
            split_text(layer.versions.iter().map(|v| (v.name.as_str(), v.share))),
            protocol::escape(&layer.source),
            listener_text(layer),
            if layer.agrees {
                ""
            } else {
                ": NOT the expectation"
            }
        );
    }
    for c in config.sources.clusters.clusters.values() {
        let _ = writeln!(
            out,
            "  cluster {} -> {} ({})",
            protocol::escape(&c.cluster),
            c.version,
            protocol::escape(&c.from)
        );
    }
    out
}

/// One look as a running line (without its newline).
pub fn look_line(l: &LookSummary) -> String {
    let shares = split_text(
        l.opened
            .iter()
            .map(|(n, c)| (n.as_str(), *c as f64 / l.total.max(1) as f64)),
    );
    let mut line = format!("{:>7.1}s  {} connections", l.at_s, l.total);
    if l.total > 0 {
        let _ = write!(line, "  {shares}");
    }
    if let Some(f) = l.connect_fail.filter(|f| *f > 0) {
        let _ = write!(line, "  {f} failed to connect upstream");
    }
    if l.resets > 0 {
        let _ = write!(line, "  {} reset(s)", l.resets);
    }
    let _ = write!(line, "  {} {}", mark(l.outcome), outcome_word(l.outcome));
    line
}

/// The human report of a finished observation.
pub fn render(o: &Observation<'_>) -> String {
    let r = o.result;
    let v = &r.verdict;
    let mut out = format!(
        "\nobserved {:.1}s{} ({} look{}, {}): {} connections the gateway opened\n\n",
        r.last.elapsed.as_secs_f64(),
        if r.interrupted { ", interrupted" } else { "" },
        r.looks,
        if r.looks == 1 { "" } else { "s" },
        r.method,
        v.total
    );
    let mut rows = vec![vec![
        "VERSION".to_owned(),
        "EXPECTED".to_owned(),
        "OBSERVED".to_owned(),
        format!("INTERVAL ({})", pct(v.per_version_confidence)),
        "BAND".to_owned(),
        "VERDICT".to_owned(),
        "COUNT".to_owned(),
        "CONNECT FAILED".to_owned(),
    ]];
    for x in &v.versions {
        let failed = r
            .last
            .counts
            .versions
            .get(&x.name)
            .and_then(|d| d.connect_fail)
            .map_or("-".to_owned(), |f| f.to_string());
        rows.push(vec![
            x.name.clone(),
            if x.was_expected {
                pct(x.expected)
            } else {
                "unexpected".to_owned()
            },
            pct(x.share),
            format!("{} .. {}", pct(x.interval.low), pct(x.interval.high)),
            format!("{} .. {}", pct(x.band.low), pct(x.band.high)),
            format!("{} {}", mark(x.outcome), outcome_word(x.outcome)),
            x.count.to_string(),
            failed,
        ]);
    }
    out.push_str(&table(&rows));
    for x in v.versions.iter().filter(|x| x.outcome != Outcome::Pass) {
        let _ = write!(out, "  {} {}: {}", mark(x.outcome), x.name, x.reason);
        if let Some(n) = x.more_samples {
            let _ = write!(out, " (about {n} more connections would decide)");
        }
        out.push('\n');
    }
    out.push('\n');
    let e = &r.errors;
    match (e.connect_fail, e.rate) {
        (Some(f), Some(rate)) => {
            let _ = writeln!(
                out,
                "{} errors: {f} of {} connections failed to connect upstream ({}, budget {})",
                mark(e.outcome),
                e.opened,
                pct(rate),
                pct(e.max_rate)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "  errors: no source shows upstream_cx_connect_fail (Istio's metric counts opened connections only)"
            );
        }
    }
    for s in &r.last.sources {
        let keys: Vec<String> = s
            .keys
            .iter()
            .map(|(k, d)| format!("{} {}", protocol::escape(k), d.opened))
            .collect();
        let _ = writeln!(
            out,
            "  counted at {}: {}",
            protocol::escape(&s.source),
            if keys.is_empty() {
                "nothing".to_owned()
            } else {
                keys.join(", ")
            }
        );
    }
    for reset in &r.last.counts.resets {
        let _ = writeln!(out, "  ? {}", reset_text(reset));
    }
    for q in &r.last.queries {
        let _ = writeln!(out, "  for Grafana: {}", protocol::escape(q));
    }
    if let Some(note) = r.notes.first() {
        let _ = writeln!(out, "  note: {note}");
    }
    let _ = writeln!(out, "\n{} {}", mark(r.outcome), reason(o));
    out
}

/// One sentence saying why the outcome is what it is.
pub fn reason(o: &Observation<'_>) -> String {
    let r = o.result;
    let v = &r.verdict;
    let e = &r.errors;
    if e.outcome == Outcome::Fail {
        return format!(
            "FAIL on errors: {} of {} connections the gateway opened failed to connect upstream ({}, over the {} budget)",
            e.connect_fail.unwrap_or(0),
            e.opened,
            pct(e.rate.unwrap_or(0.0)),
            pct(e.max_rate)
        );
    }
    if v.total == 0 {
        return "INCONCLUSIVE: the gateway opened no connection to these clusters in the window"
            .to_owned();
    }
    let pick = |outcome: Outcome| v.versions.iter().filter(move |x| x.outcome == outcome);
    match v.outcome {
        Outcome::Fail => format!("FAIL: {}", crate::reason::failed_versions(v)),
        Outcome::Inconclusive => {
            let names: Vec<&str> = pick(Outcome::Inconclusive)
                .map(|x| x.name.as_str())
                .collect();
            let more = pick(Outcome::Inconclusive)
                .filter_map(|x| x.more_samples)
                .max();
            let mut out = format!(
                "INCONCLUSIVE: {} connections cannot decide {} yet",
                v.total,
                names.join(", ")
            );
            if let Some(n) = more {
                let _ = write!(out, "; about {n} more would");
            }
            out
        }
        Outcome::Pass => format!(
            "PASS: every version within {:.1} points of its weight at {} confidence ({} connections the gateway opened)",
            o.config.settings.tolerance * 100.0,
            pct(o.config.settings.confidence),
            v.total
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_schema_parts_are_the_verify_schemas() {
        let observe: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let verify: serde_json::Value = serde_json::from_str(crate::json::SCHEMA).unwrap();
        let defs = observe["$defs"].as_object().unwrap();
        assert!(defs.len() >= 7);
        for (name, def) in defs {
            assert_eq!(def, &verify["$defs"][name], "$defs/{name} differs");
        }
    }
}
