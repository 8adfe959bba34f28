//! What a rehearsal reports: one record per step, the walk's outcome and exit code,
//! and their text rendering (the per-step header and notes, the final summary table).
//!
//! [`WalkReport`] is the JSON document of `checker rehearse --output json`, described
//! by `checker/schema/rehearsal.schema.json` ([`SCHEMA`]); each step's `verify` is the
//! verification's report model ([`VerifyReport`]), whose parts also make up the
//! `checker verify` document (`checker_core::report::json`).
//!
//! Exit code of a walk: 0 when every step passed; otherwise the worst step's code,
//! worst first: FAIL 1 (the split is wrong) > ERRORS 4 (error budget exceeded, or a
//! held connection was lost) > INCONCLUSIVE 3. An interrupted walk exits 130.

use std::fmt::Write as _;

use serde::Serialize;

use super::fleet::DrainTotals;
use super::ingress::envoy::WeightsVia;
use super::ingress::{GatewayKind, GatewayShutdown};
use super::steps::file::ManifestStep;
use checker_core::exit;
use checker_core::hold::HeldSummary;
use checker_core::verdict::{Drift, Outcome};
use checker_core::verify::VerifyReport;

/// The schema of the rehearsal's JSON document, as kept in the repository.
pub const SCHEMA: &str = include_str!("../../checker/schema/rehearsal.schema.json");

/// Exit code of an interrupted rehearsal (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

/// A step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepOutcome {
    /// The split is right and errors stayed in budget, no held connection lost.
    Pass,
    /// Not enough samples to decide the split.
    Inconclusive,
    /// Errors decided: over budget, the target unreachable, or a held connection lost.
    Errors,
    /// The split is wrong.
    Fail,
    /// The walk was interrupted during this step.
    Interrupted,
}

impl StepOutcome {
    /// The exit code this outcome stands for.
    pub fn exit_code(self) -> i32 {
        match self {
            StepOutcome::Pass => exit::PASS,
            StepOutcome::Inconclusive => exit::INCONCLUSIVE,
            StepOutcome::Errors => exit::ERRORS,
            StepOutcome::Fail => exit::FAIL,
            StepOutcome::Interrupted => INTERRUPTED,
        }
    }

    /// How bad it is, for picking the worst step (FAIL > ERRORS > INCONCLUSIVE > PASS).
    fn rank(self) -> u8 {
        match self {
            StepOutcome::Pass => 0,
            StepOutcome::Inconclusive => 1,
            StepOutcome::Errors => 2,
            StepOutcome::Fail => 3,
            StepOutcome::Interrupted => 4,
        }
    }

    /// The word shown in tables.
    pub fn word(self) -> &'static str {
        match self {
            StepOutcome::Pass => "PASS",
            StepOutcome::Inconclusive => "INCONCLUSIVE",
            StepOutcome::Errors => "FAIL (errors)",
            StepOutcome::Fail => "FAIL",
            StepOutcome::Interrupted => "INTERRUPTED",
        }
    }
}

/// Everything about one step of the walk.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// 1-based position in the walk.
    pub number: usize,
    /// What the step does, e.g. `canary 20%` or `primary rolling update`.
    pub name: String,
    /// The gateway weights per group while the step was verified.
    pub gateway_weights: Vec<(String, u32)>,
    /// The expected split, e.g. `one=80,two=20`.
    pub expect: String,
    /// The verification after the step (absent when it could not run).
    pub verify: Option<VerifyReport>,
    /// Why the verification could not run.
    pub verify_error: Option<String>,
    /// Whether the split moved during sampling (windowed counts, chi-square + tolerance).
    pub drift: Option<Drift>,
    /// Long-lived connections that were open across this step and closed at its end.
    pub held: HeldSummary,
    /// Of the held connections lost, those lost in a step with an injected replica crash:
    /// shown, but they do not decide the step (no gateway keeps a connection whose server died).
    pub lost_to_crash: u64,
    /// Replicas whose drain finished during this step.
    pub drains: DrainTotals,
    /// Faults injected and other events, in order.
    pub events: Vec<String>,
    /// Versions outside their band: which one and by how much.
    pub off: Vec<String>,
    /// The step's outcome.
    pub outcome: StepOutcome,
    /// The exit code it stands for.
    pub exit_code: i32,
    /// Seconds the ingress took to apply this step's change, its slowest update (Envoy:
    /// until its admin stats showed the new version); absent for the other ingresses.
    pub gateway_update_s: Option<f64>,
    /// Whether held connections cut by the gateway fail this step (`--fail-on-cut`).
    #[serde(skip)]
    pub fail_on_cut: bool,
    /// Where a plan's step came from and what its manifests say; absent in the built-in walk.
    pub manifests: Option<StepManifests>,
}

/// A plan step's manifests: the source, the split derived from it and the plan's own.
#[derive(Debug, Clone, Serialize)]
pub struct StepManifests {
    /// The source as the plan names it.
    pub source: String,
    /// Whether it was rendered with `kubectl kustomize`.
    pub kustomize: bool,
    /// The route the split was derived from: `VirtualService/tcp-echo spec.tcp[0]`.
    pub route: String,
    /// The derived split, e.g. `one=90,two=10`.
    pub derived: String,
    /// The split the plan gives (`expect`), if any.
    pub given: Option<String>,
    /// When the plan's split disagrees with the derived one: a sentence naming both.
    pub mismatch: Option<String>,
    /// The derivation's remarks (replica-ratio splits).
    pub notes: Vec<String>,
}

impl StepManifests {
    /// The report of a plan step.
    pub fn of(step: &ManifestStep) -> Self {
        Self {
            source: step.source.clone(),
            kustomize: step.kustomize,
            route: step.derivation.route.clone(),
            derived: step.derivation.expect_text(),
            given: step.given.as_ref().map(ToString::to_string),
            mismatch: step.mismatch.clone(),
            notes: step.derivation.notes.clone(),
        }
    }

    fn mismatch(step: &StepReport) -> Option<&str> {
        step.manifests.as_ref().and_then(|m| m.mismatch.as_deref())
    }
}

impl StepReport {
    /// Decides the outcome from the verification, the held connections and the drains.
    pub fn decide(&mut self, interrupted: bool) {
        let lost = self.held.lost.saturating_sub(self.lost_to_crash) + self.drains.cut;
        self.outcome = match (&self.verify, interrupted) {
            (_, true) => StepOutcome::Interrupted,
            (None, false) => StepOutcome::Errors,
            (Some(r), false) => match r.exit_code() {
                exit::FAIL => StepOutcome::Fail,
                _ if StepManifests::mismatch(self).is_some() => StepOutcome::Fail,
                _ if self.fail_on_cut && self.held.cut > 0 => StepOutcome::Fail,
                exit::ERRORS => StepOutcome::Errors,
                _ if lost > 0 => StepOutcome::Errors,
                exit::INCONCLUSIVE => StepOutcome::Inconclusive,
                _ => StepOutcome::Pass,
            },
        };
        self.exit_code = self.outcome.exit_code();
        self.off = self
            .verify
            .iter()
            .flat_map(|r| &r.split.versions)
            .filter(|v| v.outcome == Outcome::Fail)
            .map(|v| {
                format!(
                    "{} is off by {:+.1} points ({:.1}% observed, {:.1}% expected)",
                    v.name,
                    (v.share - v.expected) * 100.0,
                    v.share * 100.0,
                    v.expected * 100.0
                )
            })
            .collect();
    }
}

/// The connections of the walk's last moments, when everything is stopped.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Teardown {
    /// The replicas drained at the end.
    pub drains: DrainTotals,
    /// How the gateway's open connections ended.
    pub gateway: GatewayShutdown,
}

/// The whole rehearsal.
#[derive(Debug, Clone, Serialize)]
pub struct WalkReport {
    /// Which ingress was used.
    pub gateway: GatewayKind,
    /// The gateway's address.
    pub gateway_addr: String,
    /// The seed of the built-in gateway's random choice; absent for HAProxy, whose
    /// draws the rehearsal does not control.
    pub seed: Option<u64>,
    /// Replicas per version at the start; with a plan, the first step's replicas in all.
    pub replicas: usize,
    /// The plan file (`--plan`); absent for the built-in walk.
    pub plan: Option<String>,
    /// Every step that ran, in order.
    pub steps: Vec<StepReport>,
    /// Whether the walk was interrupted.
    pub interrupted: bool,
    /// The end of the walk.
    pub teardown: Teardown,
    /// Seconds from the first replica to the last stop.
    pub elapsed_s: f64,
    /// The grace period of a draining replica, in seconds (`--grace`).
    pub grace_s: f64,
    /// The process exit code.
    pub exit_code: i32,
    /// How Envoy ran, when it was the ingress.
    pub envoy: Option<EnvoyRun>,
}

/// How the rehearsal ran Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EnvoyRun {
    /// Envoy's `--drain-time-s`.
    pub drain_time_s: u64,
    /// Where the weights were put: the listener (Istio's way) or the endpoints.
    pub weights_via: WeightsVia,
}

impl WalkReport {
    /// The worst step, if any step did not pass.
    pub fn worst(&self) -> Option<&StepReport> {
        self.steps
            .iter()
            .filter(|s| s.outcome != StepOutcome::Pass)
            .max_by_key(|s| (s.outcome.rank(), std::cmp::Reverse(s.number)))
    }

    /// Sets the exit code: 130 when interrupted, else the worst step's code, else 0.
    pub fn decide(&mut self) {
        self.exit_code = if self.interrupted {
            INTERRUPTED
        } else {
            self.worst().map_or(exit::PASS, |s| s.exit_code)
        };
    }
}

fn weights_text(w: &[(String, u32)]) -> String {
    w.iter()
        .map(|(g, w)| format!("{g}={w}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn held_text(h: &HeldSummary, drains: &DrainTotals) -> String {
    if h.opened == 0 && drains.replicas == 0 {
        return "-".to_owned();
    }
    let cut = if h.cut > 0 {
        format!(" ({} cut)", h.cut)
    } else {
        String::new()
    };
    format!("{}/{}{cut}", h.kept, h.lost + drains.cut)
}

/// The sentence about held connections cut by the gateway, e.g. `8 held connection(s)
/// were cut by the gateway 2.0 s after the weight change; 0 lost at the servers` (timed
/// from the first weight change after their set was opened).
pub fn cut_sentence(h: &HeldSummary, lost_at_servers: u64) -> String {
    let when = match h.cut_after_s {
        Some(t) if (t.last - t.first) < 0.05 => format!(" {:.1} s after", t.first),
        Some(t) => format!(" {:.1} to {:.1} s after", t.first, t.last),
        None => " after".to_owned(),
    };
    format!(
        "{} held connection(s) were cut by the gateway{when} the weight change; {lost_at_servers} lost at the servers",
        h.cut
    )
}

/// The header printed before a step's verdict table.
pub fn step_header(step: &StepReport, total: usize) -> String {
    format!(
        "== step {}/{}: {} (gateway {}; expect {}) ==\n",
        step.number,
        total,
        step.name,
        weights_text(&step.gateway_weights),
        step.expect
    )
}

/// The lines printed after a step's verdict table: events, drift, held connections.
pub fn step_notes(step: &StepReport) -> String {
    let mut out = String::new();
    if let Some(m) = &step.manifests {
        let how = if m.kustomize {
            " (kubectl kustomize)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  manifests: {}{how}: {} routes {}",
            m.source, m.route, m.derived
        );
        for n in &m.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(x) = &m.mismatch {
            let _ = writeln!(out, "  ! {x}");
        }
    }
    for e in &step.events {
        let _ = writeln!(out, "  event: {e}");
    }
    if let Some(e) = &step.verify_error {
        let _ = writeln!(out, "  verify could not run: {e}");
    }
    if let Some(d) = step.drift.as_ref().filter(|d| d.moved) {
        let _ = writeln!(
            out,
            "  ! the split MOVED during this step's sampling (a share shifted by {:.1} points between windows): its counts mix two splits",
            d.max_shift * 100.0
        );
    }
    for o in &step.off {
        let _ = writeln!(out, "  ! {o}");
    }
    let h = &step.held;
    if h.opened > 0 || h.lost > 0 {
        let versions: Vec<String> = h
            .by_version
            .iter()
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        let by_version = if versions.is_empty() {
            String::new()
        } else {
            format!(" ({})", versions.join(", "))
        };
        let _ = write!(
            out,
            "  held connections closed this step: {} opened, {} kept{by_version}, {} cut by the gateway, {} lost, {} lines exchanged",
            h.opened, h.kept, h.cut, h.lost, h.exchanges
        );
        if step.lost_to_crash > 0 {
            let _ = write!(
                out,
                " ({} lost in the step whose replica was killed: reported, not held against the step)",
                step.lost_to_crash
            );
        }
        if !h.reasons.is_empty() {
            let reasons: Vec<String> = h.reasons.iter().map(|(r, n)| format!("{r} x{n}")).collect();
            let _ = write!(out, ": {}", reasons.join("; "));
        }
        out.push('\n');
    }
    if h.cut > 0 {
        let _ = writeln!(
            out,
            "  ! {}{}",
            cut_sentence(h, h.lost),
            if step.fail_on_cut {
                " (--fail-on-cut: the step fails)"
            } else {
                " (a finding; --fail-on-cut makes it fail the step)"
            }
        );
    }
    let d = &step.drains;
    if d.replicas > 0 {
        let _ = writeln!(
            out,
            "  drained replicas: {} stopped, {} connections finished during the drain, {} cut",
            d.replicas, d.drained, d.cut
        );
    }
    let _ = writeln!(out, "  step {}: {}", step.number, step.outcome.word());
    out
}

/// Every reason a step did not pass, one entry per cause, e.g. `FAIL: two is off by
/// +17.2 points (...)` and `lost 2 held connection(s) (reset x2)` for the same step;
/// `grace_s` is `--grace`, named when drains cut connections.
pub fn step_causes(step: &StepReport, grace_s: f64) -> Vec<String> {
    let mut causes: Vec<String> = step.off.iter().map(|o| format!("FAIL: {o}")).collect();
    if let Some(m) = StepManifests::mismatch(step) {
        causes.push(format!("FAIL: {m}"));
    }
    match &step.verify {
        None => causes.push(format!(
            "FAIL (errors): the verification could not run: {}",
            step.verify_error.as_deref().unwrap_or("no reason given")
        )),
        Some(r) => {
            if r.errors.outcome == Outcome::Fail {
                causes.push(r.reason().replacen("FAIL on errors", "FAIL (errors)", 1));
            } else if r.split.outcome == Outcome::Inconclusive {
                causes.push(r.reason());
            }
        }
    }
    if step.fail_on_cut && step.held.cut > 0 {
        causes.push(format!(
            "FAIL (--fail-on-cut): {}",
            cut_sentence(&step.held, step.held.lost)
        ));
    }
    let held = step.held.lost.saturating_sub(step.lost_to_crash);
    if held > 0 {
        let reasons: Vec<String> = step
            .held
            .reasons
            .iter()
            .map(|(r, n)| format!("{r} x{n}"))
            .collect();
        causes.push(format!(
            "FAIL (errors): {held} held connection(s) lost ({})",
            reasons.join(", ")
        ));
    }
    if step.drains.cut > 0 {
        // Held connections stay open across a whole step: a step longer than the grace
        // period (e.g. a large --samples in a debug build) outlasts the drain.
        causes.push(format!(
            "FAIL (errors): {} connection(s) cut at a replica's drain deadline (--grace {}; held connections stay open across a step, so steps longer than that need a longer --grace)",
            step.drains.cut,
            humantime::format_duration(std::time::Duration::from_secs_f64(grace_s.max(0.0)))
        ));
    }
    if causes.is_empty() && step.outcome == StepOutcome::Interrupted {
        causes.push("INTERRUPTED".to_owned());
    }
    causes
}

/// The final summary table and result line.
pub fn render_summary(walk: &WalkReport) -> String {
    let mut rows = vec![vec![
        "STEP".to_owned(),
        "NAME".to_owned(),
        "GATEWAY".to_owned(),
        "EXPECT".to_owned(),
        "SAMPLES".to_owned(),
        "OBSERVED".to_owned(),
        "ERRORS".to_owned(),
        "HELD KEPT/LOST".to_owned(),
        "VERDICT".to_owned(),
    ]];
    for s in &walk.steps {
        let (samples, observed, errors) = match &s.verify {
            Some(r) => {
                let obs: Vec<String> = r
                    .split
                    .versions
                    .iter()
                    .map(|v| format!("{}={:.1}", v.name, v.share * 100.0))
                    .collect();
                let mut errors = r.errors.total.to_string();
                if let Some(c) = r.main_error() {
                    let _ = write!(errors, " ({})", c.as_str());
                }
                (r.attempted.to_string(), obs.join(","), errors)
            }
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let mut verdict = s.outcome.word().to_owned();
        if s.drift.as_ref().is_some_and(|d| d.moved) {
            verdict.push_str(", split moved");
        }
        rows.push(vec![
            s.number.to_string(),
            s.name.clone(),
            weights_text(&s.gateway_weights),
            s.expect.clone(),
            samples,
            observed,
            errors,
            held_text(&s.held, &s.drains),
            verdict,
        ]);
    }
    // HAProxy draws with its own generator: no seed decides anything there.
    let seed = walk.seed.map_or(String::new(), |s| format!(", seed {s}"));
    let what = match &walk.plan {
        Some(plan) => format!("plan {plan}"),
        None => format!("{} replicas per version", walk.replicas),
    };
    let mut out = format!(
        "\nRehearsal summary: {} gateway at {}{seed}, {what}, {:.1}s\n",
        walk.gateway.as_str(),
        walk.gateway_addr,
        walk.elapsed_s
    );
    out.push_str(&checker_core::report::text::table(&rows));
    let held_kept: u64 = walk.steps.iter().map(|s| s.held.kept).sum();
    let held_lost: u64 = walk.steps.iter().map(|s| s.held.lost + s.drains.cut).sum();
    let held_cut: u64 = walk.steps.iter().map(|s| s.held.cut).sum();
    if let Some(e) = &walk.envoy {
        let _ = writeln!(
            out,
            "envoy: weights via the {}, --drain-time-s {}",
            e.weights_via.as_str(),
            e.drain_time_s
        );
    }
    let _ = writeln!(
        out,
        "open connections across the steps: {held_kept} kept, {held_cut} cut by the gateway, {held_lost} lost; teardown: {} drained, {} cut",
        walk.teardown.drains.drained + walk.teardown.gateway.drained,
        walk.teardown.drains.cut + walk.teardown.gateway.cut
    );
    if walk.interrupted {
        let _ = writeln!(
            out,
            "INTERRUPTED after {} step(s): every replica and the gateway were stopped (exit {})",
            walk.steps.len(),
            walk.exit_code
        );
    } else if let Some(w) = walk.worst() {
        let causes: Vec<String> = walk
            .steps
            .iter()
            .filter(|s| s.outcome != StepOutcome::Pass)
            .flat_map(|s| {
                step_causes(s, walk.grace_s)
                    .into_iter()
                    .map(move |c| format!("step {} ({}) {c}", s.number, s.name))
            })
            .collect();
        let _ = writeln!(
            out,
            "{}: step {} ({}) is the worst step (exit {}); {}",
            w.outcome.word(),
            w.number,
            w.name,
            walk.exit_code,
            causes.join("; ")
        );
    } else {
        let crashed: u64 = walk.steps.iter().map(|s| s.lost_to_crash).sum();
        let lost = if crashed > 0 {
            format!(
                "no open connection was lost but the {crashed} on the replica killed on purpose"
            )
        } else {
            "no open connection was lost".to_owned()
        };
        let cut = if held_cut > 0 {
            format!(
                "; {held_cut} held connection(s) were cut by the gateway after a weight change (a finding; --fail-on-cut fails such steps)"
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "PASS: every step's traffic followed its weights and {lost}{cut} (exit 0)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(number: usize, outcome: StepOutcome) -> StepReport {
        StepReport {
            number,
            name: format!("s{number}"),
            gateway_weights: Vec::new(),
            expect: String::new(),
            verify: None,
            verify_error: None,
            drift: None,
            held: HeldSummary::default(),
            lost_to_crash: 0,
            drains: DrainTotals::default(),
            events: Vec::new(),
            off: Vec::new(),
            outcome,
            exit_code: outcome.exit_code(),
            gateway_update_s: None,
            fail_on_cut: false,
            manifests: None,
        }
    }

    fn walk(outcomes: &[StepOutcome], interrupted: bool) -> WalkReport {
        let mut w = WalkReport {
            gateway: GatewayKind::Builtin,
            gateway_addr: String::new(),
            seed: Some(1),
            replicas: 1,
            plan: None,
            steps: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| step(i + 1, *o))
                .collect(),
            interrupted,
            teardown: Teardown::default(),
            elapsed_s: 0.0,
            grace_s: 30.0,
            exit_code: 0,
            envoy: None,
        };
        w.decide();
        w
    }

    /// The rehearsal schema's copies of the verify schema's parts stay equal to them.
    #[test]
    fn the_shared_schema_parts_are_the_verify_schemas() {
        let rehearsal: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let report: serde_json::Value =
            serde_json::from_str(checker_core::report::json::SCHEMA).unwrap();
        let defs = &rehearsal["$defs"];
        for name in ["fraction", "outcome", "interval", "latency"] {
            assert_eq!(defs[name], report["$defs"][name], "{name}");
        }
        let props = &report["properties"];
        for name in [
            "inputs",
            "plan",
            "stop_reason",
            "errors",
            "schedule",
            "drift",
        ] {
            assert_eq!(defs[name], props[name], "{name}");
        }
        assert_eq!(
            defs["chi_square"],
            props["split"]["properties"]["chi_square"]
        );
        let mut version = props["versions"]["items"].clone();
        version["properties"]
            .as_object_mut()
            .unwrap()
            .remove("latency_us");
        version["required"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k != "latency_us");
        assert_eq!(defs["version"], version);
        // The verification's health, without the rules the JSON document adds.
        let mut health = props["health"].clone();
        health["properties"]
            .as_object_mut()
            .unwrap()
            .remove("rules");
        health["required"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k != "rules");
        health.as_object_mut().unwrap().remove("description");
        let mut ours = defs["health"].clone();
        ours.as_object_mut().unwrap().remove("description");
        assert_eq!(ours, health);
    }

    #[test]
    fn the_worst_step_decides_fail_then_errors_then_inconclusive() {
        use StepOutcome::*;
        assert_eq!(walk(&[Pass, Pass], false).exit_code, 0);
        assert_eq!(walk(&[Inconclusive, Errors, Pass], false).exit_code, 4);
        assert_eq!(walk(&[Errors, Fail, Inconclusive], false).exit_code, 1);
        assert_eq!(walk(&[Pass, Inconclusive], false).exit_code, 3);
        assert_eq!(walk(&[Pass], true).exit_code, INTERRUPTED);
        // The first of equally bad steps is named.
        assert_eq!(
            walk(&[Fail, Fail], false).worst().map(|s| s.number),
            Some(1)
        );
    }

    #[test]
    fn each_cause_of_a_step_is_named_on_its_own() {
        let mut s = step(4, StepOutcome::Pass);
        s.verify_error = Some("the gateway is gone".to_owned());
        s.held
            .add_losses(vec!["closed by the other side".to_owned(); 2]);
        s.drains.cut = 2;
        s.decide(false);
        let causes = step_causes(&s, 30.0);
        assert_eq!(causes.len(), 3, "{causes:?}");
        assert!(causes[0].contains("could not run: the gateway is gone"));
        assert!(causes[1].contains("2 held connection(s) lost (closed by the other side x2)"));
        assert!(
            causes[2].contains("2 connection(s) cut at a replica's drain deadline (--grace 30s;")
        );
    }

    #[test]
    fn a_step_without_verification_or_with_lost_connections_fails_on_errors() {
        let mut s = step(1, StepOutcome::Pass);
        s.decide(false);
        assert_eq!(s.outcome, StepOutcome::Errors);
        s.decide(true);
        assert_eq!(s.outcome, StepOutcome::Interrupted);
    }
}
