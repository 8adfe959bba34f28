//! The gateway's own view in the verify report: the three layers side by side (intent,
//! programmed, observed) with what the gateway counted, the sentence naming the layer a
//! wrong split comes from, and the `gateway` section of the JSON document.
//!
//! Everything read from a gateway (listener and cluster names, versions, times) is
//! input: escaped before it reaches a terminal.

use std::fmt::Write;

use serde::Serialize;

use checker_core::gateway::view::{
    GatewayCounters, GatewayView, Intent, IntentSource, ProgrammedLayer, ProgrammedSettle,
    ProgrammedSettleEnd,
};
use checker_core::verdict::judgement::{GatewayJudgement, Layer};
use checker_core::verdict::{Interval, Outcome, SplitVerdict};
use checker_core::verify::Verification;

use crate::table::{mark, table};

/// A share as people write it: `90%`, `77.3%`.
fn share_text(share: f64) -> String {
    let p = share * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{}%", p.round())
    } else {
        format!("{p:.1}%")
    }
}

/// `one 90% / two 10%`.
pub fn split_text<'a>(shares: impl IntoIterator<Item = (&'a str, f64)>) -> String {
    let parts: Vec<String> = shares
        .into_iter()
        .map(|(name, share)| format!("{name} {}", share_text(share)))
        .collect();
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(" / ")
    }
}

fn intent_split(intent: &Intent) -> String {
    split_text(intent.versions.iter().map(|v| (v.name.as_str(), v.share)))
}

fn programmed_split(layer: &ProgrammedLayer) -> String {
    split_text(layer.versions.iter().map(|v| (v.name.as_str(), v.share)))
}

fn observed_split(split: &SplitVerdict) -> String {
    split_text(
        split
            .versions
            .iter()
            .filter(|v| v.count > 0 || v.was_expected)
            .map(|v| (v.name.as_str(), v.share)),
    )
}

/// `listener 0.0.0.0_31400, version 2024-..., updated 2024-...` (escaped).
pub fn listener_text(layer: &ProgrammedLayer) -> String {
    let mut out = format!("listener {}", protocol::escape(&layer.listener));
    if let Some(v) = &layer.version_info {
        let _ = write!(out, ", version {}", protocol::escape(v));
    }
    if let Some(t) = &layer.last_updated {
        let _ = write!(out, ", updated {}", protocol::escape(t));
    }
    out
}

/// Where the intent comes from: `the manifests (VirtualService/tcp-echo spec.tcp[0])`.
fn intent_where(intent: &Intent) -> String {
    match (&intent.from, &intent.route) {
        (IntentSource::Manifests, Some(route)) => {
            format!("the manifests ({})", protocol::escape(route))
        }
        (IntentSource::Manifests, None) => "the manifests".to_owned(),
        (IntentSource::Expectation, _) => "the expectation given".to_owned(),
    }
}

/// The lines printed before sampling: the intent and what each gateway was told.
pub fn layers_note(intent: &Intent, programmed: &[ProgrammedLayer], settling: bool) -> String {
    let mut out = format!(
        "intent:     {} from {}\n",
        intent_split(intent),
        intent_where(intent)
    );
    for layer in programmed {
        let verdict = match (layer.agrees, settling) {
            (true, _) => "as intended",
            (false, true) => "not as intended yet: waiting for the control plane",
            (false, false) => "NOT as intended",
        };
        let _ = writeln!(
            out,
            "programmed: {} at {} ({}): {verdict}",
            programmed_split(layer),
            protocol::escape(&layer.source),
            listener_text(layer)
        );
    }
    out
}

/// The settle line: how long the control plane took.
pub fn settle_line(s: &ProgrammedSettle) -> String {
    let polls = format!(
        "{} look{} at the admin",
        s.polls,
        if s.polls == 1 { "" } else { "s" }
    );
    match s.end {
        ProgrammedSettleEnd::Programmed => format!(
            "settle: the gateway was programmed as intended after {:.1}s ({polls})",
            s.elapsed_s
        ),
        ProgrammedSettleEnd::TimedOut => format!(
            "settle: the gateway was still not programmed as intended after {:.1}s ({polls})",
            s.elapsed_s
        ),
        ProgrammedSettleEnd::Interrupted => {
            format!("settle: interrupted after {:.1}s ({polls})", s.elapsed_s)
        }
    }
}

/// The gateway section of the text report (empty without the gateway's view).
pub fn render(report: &Verification) -> String {
    let (Some(view), Some(judged)) = (&report.gateway, &report.judgement.gateway) else {
        return String::new();
    };
    let split = &report.judgement.split;
    let mut out = format!("\ngateway view (listener port {}):\n", view.port);
    // One column per version: the intent's, then any other the gateways or traffic show.
    let mut names: Vec<&str> = view
        .intent
        .versions
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    let extra = view
        .programmed
        .iter()
        .flat_map(|l| l.versions.iter().map(|v| v.name.as_str()))
        .chain(
            split
                .versions
                .iter()
                .filter(|v| v.count > 0)
                .map(|v| v.name.as_str()),
        );
    for name in extra {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let cell = |share: Option<f64>| share.map_or("-".to_owned(), share_text);
    let mut header = vec!["LAYER".to_owned()];
    header.extend(names.iter().map(|n| (*n).to_owned()));
    header.push("WHERE".to_owned());
    let mut rows = vec![header];
    let mut row = |layer: String, values: Vec<String>, at: String| {
        let mut r = vec![layer];
        r.extend(values);
        r.push(at);
        rows.push(r);
    };
    row(
        "intent".to_owned(),
        names
            .iter()
            .map(|n| {
                cell(Some(
                    view.intent
                        .versions
                        .iter()
                        .find(|v| v.name == *n)
                        .map_or(0.0, |v| v.share),
                ))
            })
            .collect(),
        intent_where(&view.intent),
    );
    for layer in &view.programmed {
        row(
            format!(
                "{} programmed",
                mark(if layer.agrees {
                    Outcome::Pass
                } else {
                    Outcome::Fail
                })
            ),
            names
                .iter()
                .map(|n| {
                    cell(Some(
                        layer
                            .versions
                            .iter()
                            .find(|v| v.name == *n)
                            .map_or(0.0, |v| v.share),
                    ))
                })
                .collect(),
            format!(
                "{} ({})",
                protocol::escape(&layer.source),
                listener_text(layer)
            ),
        );
    }
    row(
        format!("{} observed", mark(split.outcome)),
        names
            .iter()
            .map(|n| {
                let share = split
                    .versions
                    .iter()
                    .find(|v| v.name == *n)
                    .map(|v| v.share);
                if split.total == 0 {
                    "-".to_owned()
                } else {
                    cell(Some(share.unwrap_or(0.0)))
                }
            })
            .collect(),
        format!("{} connections the checker judged", split.total),
    );
    if let Some(c) = &view.counters {
        row(
            "counted".to_owned(),
            names
                .iter()
                .map(|n| c.versions.get(*n).map_or(0, |d| d.opened).to_string())
                .collect(),
            counted_where(c),
        );
    }
    out.push_str(&indent(&table(&rows)));
    if let Some(s) = &view.settle {
        let _ = writeln!(out, "  {}", settle_line(s));
    }
    for layer in view.programmed.iter().filter(|l| !l.agrees) {
        let differences = layer
            .destinations
            .as_ref()
            .map(|d| d.differences.clone())
            .unwrap_or_default();
        for d in differences {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                mark(Outcome::Fail),
                protocol::escape(&layer.source),
                protocol::escape(d)
            );
        }
    }
    if let Some(v) = &judged.observed_vs_programmed {
        let _ = writeln!(
            out,
            "  {} against what the gateway was told: {}",
            mark(v.outcome),
            follows_told(v)
        );
    }
    if let Some(c) = &view.counters {
        out.push_str(&counters_lines(c));
    }
    if let Some(e) = &view.counters_error {
        let _ = writeln!(
            out,
            "  ? the gateway's counters could not be read after sampling: {}",
            protocol::escape(e)
        );
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn counted_where(c: &GatewayCounters) -> String {
    let fails: Option<u64> = c
        .versions
        .values()
        .filter_map(|d| d.connect_fail)
        .reduce(u64::saturating_add);
    let sources = c.sources.len();
    let mut out = format!(
        "upstream_cx_total at {} gateway{}",
        sources,
        if sources == 1 { "" } else { "s" }
    );
    if let Some(f) = fails {
        let _ = write!(out, ", {f} failed to connect upstream");
    }
    out
}

/// The cross-check and resets, one line each.
fn counters_lines(c: &GatewayCounters) -> String {
    let x = &c.cross_check;
    let mut out = String::new();
    let in_flight = if x.in_flight > 0 {
        format!(" (and up to {} abandoned in flight)", x.in_flight)
    } else {
        String::new()
    };
    match &x.disagreement {
        None => {
            let _ = writeln!(
                out,
                "  {} cross-check: the gateway opened {} connections: {} judged by the checker + {} opened but not judged{in_flight}",
                mark(Outcome::Pass),
                x.gateway_total,
                x.checker_judged,
                x.opened_not_judged
            );
        }
        Some(why) => {
            let _ = writeln!(out, "  ? cross-check: {}", protocol::escape(why));
        }
    }
    for r in &c.resets {
        let _ = writeln!(out, "  ? {}", reset_text(r));
    }
    out
}

/// A counter that went down, in words (escaped).
pub fn reset_text(r: &checker_core::gateway::counters::Reset) -> String {
    protocol::escape(format!(
        "{} {} of {} went down from {} to {} (the gateway restarted?): counted from 0 after it",
        r.source, r.counter, r.key, r.before, r.after
    ))
}

/// `traffic follows the gateway's configuration (one 79.9% / two 20.1%)`, or neither.
fn follows_told(v: &SplitVerdict) -> String {
    match v.outcome {
        Outcome::Pass => format!(
            "traffic follows the gateway's configuration ({})",
            observed_split(v)
        ),
        Outcome::Fail => format!(
            "traffic follows neither the intent nor what the gateway was told ({})",
            observed_split(v)
        ),
        Outcome::Inconclusive => format!(
            "too few connections to tell whether traffic follows the gateway's configuration ({})",
            observed_split(v)
        ),
    }
}

/// The verdict sentence when the gateway's view names the layer, `None` otherwise.
pub fn reason(report: &Verification) -> Option<String> {
    let view = report.gateway.as_ref()?;
    let judged = report.judgement.gateway.as_ref()?;
    if report.judgement.errors.outcome == Outcome::Fail {
        return None;
    }
    match judged.layer? {
        Layer::ControlPlane => {
            let layer = view.first_disagreeing()?;
            let (says, them) = match view.intent.from {
                IntentSource::Manifests => ("the manifests route", "them"),
                IntentSource::Expectation => ("the expectation is", "it"),
            };
            let at = if view.programmed.len() > 1 {
                format!(" at {}", protocol::escape(&layer.source))
            } else {
                String::new()
            };
            let waited = match &view.settle {
                Some(s) if s.end == ProgrammedSettleEnd::TimedOut => {
                    format!(", not even after {:.1}s of waiting", s.elapsed_s)
                }
                _ => String::new(),
            };
            let mut out = format!(
                "FAIL on the control plane: {says} {} but the gateway{at} is programmed {}: the control plane has not applied {them}{waited} ({})",
                intent_split(&view.intent),
                programmed_split(layer),
                listener_text(layer)
            );
            if let Some(v) = &judged.observed_vs_programmed {
                let _ = write!(out, "; {}", follows_told(v));
            }
            Some(out)
        }
        Layer::DataPlane => {
            let layer = view.programmed.first()?;
            let split = &report.judgement.split;
            let why: Vec<String> = split
                .versions
                .iter()
                .filter(|v| v.outcome == Outcome::Fail)
                .map(|v| {
                    format!(
                        "{} {} of {}, interval {}..{}, band {}..{}",
                        v.name,
                        v.count,
                        split.total,
                        share_text(v.interval.low),
                        share_text(v.interval.high),
                        share_text(v.band.low),
                        share_text(v.band.high)
                    )
                })
                .collect();
            Some(format!(
                "FAIL on the data plane: the gateway is programmed {} and traffic follows {}: the data plane does not follow its own configuration ({})",
                programmed_split(layer),
                observed_split(split),
                why.join("; ")
            ))
        }
    }
}

/// A note for the verdict line when the gateway's counts disagree with the checker's.
pub fn cross_check_note(report: &Verification) -> Option<String> {
    let why = report
        .gateway
        .as_ref()?
        .counters
        .as_ref()?
        .cross_check
        .disagreement
        .as_ref()?;
    Some(format!(
        "; note: the gateway's counters disagree: {}",
        protocol::escape(why)
    ))
}

/// One version of the observed split judged against what the gateway was told.
#[derive(Debug, Clone, Serialize)]
pub struct ToldVersion<'a> {
    /// The version.
    pub name: &'a str,
    /// Its programmed share.
    pub expected: f64,
    /// Connections it answered.
    pub count: u64,
    /// Its observed share.
    pub share: f64,
    /// Its interval.
    pub interval: &'a Interval,
    /// Its verdict against the programmed share.
    pub outcome: Outcome,
}

/// The observed split judged against what the gateway was told.
#[derive(Debug, Clone, Serialize)]
pub struct ObservedVsProgrammed<'a> {
    /// FAIL if traffic does not follow the gateway's configuration either.
    pub outcome: Outcome,
    /// Every version.
    pub versions: Vec<ToldVersion<'a>>,
}

/// One version observed.
#[derive(Debug, Clone, Serialize)]
pub struct ObservedVersion<'a> {
    /// The version.
    pub name: &'a str,
    /// Connections it answered.
    pub count: u64,
    /// Its share of the judged connections.
    pub share: f64,
}

/// The observed layer, beside the others.
#[derive(Debug, Clone, Serialize)]
pub struct Observed<'a> {
    /// The split's outcome.
    pub outcome: Outcome,
    /// Connections judged.
    pub total: u64,
    /// Every version.
    pub versions: Vec<ObservedVersion<'a>>,
}

/// The `gateway` section of the verify document.
#[derive(Debug, Clone, Serialize)]
pub struct GatewaySection<'a> {
    /// `control_plane`, `data_plane`, or null: where a wrong split comes from.
    pub layer: Option<Layer>,
    /// FAIL when a gateway was programmed otherwise than the intent.
    pub control_plane: Outcome,
    /// The listener's port.
    pub port: u32,
    /// What the gateways should have been told.
    pub intent: &'a Intent,
    /// What each gateway was told.
    pub programmed: &'a [ProgrammedLayer],
    /// The sampled split.
    pub observed: Observed<'a>,
    /// The sampled split against what the first gateway told otherwise was told; null
    /// when every gateway was programmed as intended.
    pub observed_vs_programmed: Option<ObservedVsProgrammed<'a>>,
    /// Waiting for the control plane; null without `--settle`.
    pub settle: Option<&'a ProgrammedSettle>,
    /// The gateways' counters around the counted samples; null without `--gateway-admin`.
    pub counters: Option<&'a GatewayCounters>,
    /// Why the counters could not be read after sampling; null when they were (or not asked).
    pub counters_error: Option<&'a str>,
}

impl<'a> GatewaySection<'a> {
    /// The section of `report`, `None` without the gateway's view.
    pub fn of(report: &'a Verification) -> Option<Self> {
        let view: &GatewayView = report.gateway.as_ref()?;
        let judged: &GatewayJudgement = report.judgement.gateway.as_ref()?;
        let split = &report.judgement.split;
        Some(Self {
            layer: judged.layer,
            control_plane: judged.control_plane,
            port: view.port,
            intent: &view.intent,
            programmed: &view.programmed,
            observed: Observed {
                outcome: split.outcome,
                total: split.total,
                versions: split
                    .versions
                    .iter()
                    .map(|v| ObservedVersion {
                        name: &v.name,
                        count: v.count,
                        share: v.share,
                    })
                    .collect(),
            },
            observed_vs_programmed: judged.observed_vs_programmed.as_ref().map(|v| {
                ObservedVsProgrammed {
                    outcome: v.outcome,
                    versions: v
                        .versions
                        .iter()
                        .map(|x| ToldVersion {
                            name: &x.name,
                            expected: x.expected,
                            count: x.count,
                            share: x.share,
                            interval: &x.interval,
                            outcome: x.outcome,
                        })
                        .collect(),
                }
            }),
            settle: view.settle.as_ref(),
            counters: view.counters.as_ref(),
            counters_error: view.counters_error.as_deref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker_core::gateway::view::{IntentVersion, ProgrammedCluster, ProgrammedVersion};
    use checker_core::sampler::{Sample, StopReason};
    use checker_core::tally::{Tally, Windowing};
    use checker_core::verdict::local::LocalReadings;
    use checker_core::verify::{Times, VerifyConfig};
    use std::time::{Duration, SystemTime};

    /// A fixed run of `answers` expected 70/30, through a gateway programmed `told`.
    fn report(answers: &[(&str, u64)], told: &[(&str, u64)]) -> Verification {
        let mut config = VerifyConfig::new("127.0.0.1:1", "one=70,two=30".parse().unwrap());
        config.samples = Some(answers.iter().map(|a| a.1).sum());
        let mut tally = Tally::new(Windowing::ById { total: 10_000 });
        let mut id = 0;
        for (version, n) in answers {
            for _ in 0..*n {
                id += 1;
                tally.record(&Sample {
                    id,
                    addr: "127.0.0.1:1".parse().unwrap(),
                    started_at: SystemTime::UNIX_EPOCH,
                    offset: Duration::ZERO,
                    result: Ok((*version).to_owned()),
                    connect_us: Some(10),
                    reply_us: Some(10),
                    lag_us: None,
                    handshake_us: None,
                    reason: None,
                    reply_head: None,
                });
            }
        }
        let times = Times {
            started_at: String::new(),
            finished_at: String::new(),
            elapsed_s: 1.0,
        };
        let total: u64 = told.iter().map(|t| t.1).sum();
        let versions: Vec<ProgrammedVersion> = told
            .iter()
            .map(|&(name, weight)| ProgrammedVersion {
                name: name.to_owned(),
                weight,
                share: weight as f64 / total as f64,
            })
            .collect();
        let layer = ProgrammedLayer {
            source: "http://127.0.0.1:15000".into(),
            listener: "0.0.0.0_31400".into(),
            version_info: Some("2025-06-01T10:00:00Z/42".into()),
            last_updated: Some("2025-06-01T10:00:01Z".into()),
            chain: "filter chain 0 (any connection)".into(),
            clusters: told
                .iter()
                .map(|&(name, weight)| ProgrammedCluster {
                    name: format!("outbound|9000|{name}|tcp-echo.default.svc.cluster.local"),
                    weight,
                    version: name.to_owned(),
                    from: "given".into(),
                })
                .collect(),
            agrees: checker_core::gateway::view::agrees(&versions, &config.expect),
            versions,
            destinations: None,
        };
        let view = GatewayView {
            port: 31400,
            intent: Intent {
                from: IntentSource::Expectation,
                route: None,
                versions: vec![
                    IntentVersion {
                        name: "one".into(),
                        weight: 70.0,
                        share: 0.7,
                    },
                    IntentVersion {
                        name: "two".into(),
                        weight: 30.0,
                        share: 0.3,
                    },
                ],
            },
            programmed: vec![layer],
            settle: None,
            counters: None,
            counters_error: None,
        };
        Verification::build_with_gateway(
            &config,
            &["127.0.0.1:1".parse().unwrap()],
            None,
            tally,
            StopReason::Samples,
            LocalReadings::default(),
            times,
            Some(view),
        )
    }

    #[test]
    fn the_data_plane_is_named_when_the_gateway_was_told_right() {
        // Emissary's bug: 70/30 configured, 77/23 delivered.
        let v = report(&[("one", 3080), ("two", 920)], &[("one", 70), ("two", 30)]);
        assert_eq!(v.exit_code(), 1);
        let sentence = crate::reason::reason(&v);
        assert!(
            sentence.starts_with(
                "FAIL on the data plane: the gateway is programmed one 70% / two 30% and traffic follows one 77% / two 23%: the data plane does not follow its own configuration (one 3080 of 4000"
            ),
            "{sentence}"
        );
        let doc = serde_json::to_value(crate::json::Document::of(&v)).unwrap();
        assert_eq!(doc["gateway"]["layer"], "data_plane");
        assert_eq!(doc["gateway"]["control_plane"], "PASS");
    }

    #[test]
    fn the_control_plane_is_named_when_the_gateway_was_told_otherwise() {
        let v = report(&[("one", 4000)], &[("one", 100)]);
        let sentence = crate::reason::reason(&v);
        assert_eq!(
            sentence,
            "FAIL on the control plane: the expectation is one 70% / two 30% but the gateway is programmed one 100%: the control plane has not applied it (listener 0.0.0.0_31400, version 2025-06-01T10:00:00Z/42, updated 2025-06-01T10:00:01Z); traffic follows the gateway's configuration (one 100%)"
        );
        assert!(crate::text::render(&v).contains("✘ programmed  100%  0%"));
    }

    #[test]
    fn splits_read_as_people_write_them() {
        assert_eq!(
            split_text([("one", 0.9), ("two", 0.1)]),
            "one 90% / two 10%"
        );
        assert_eq!(
            split_text([("one", 0.773), ("two", 0.227)]),
            "one 77.3% / two 22.7%"
        );
        assert_eq!(split_text([]), "nothing");
    }
}
