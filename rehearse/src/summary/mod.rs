//! What a rehearsal reports, as data: one record per step, the walk's outcome and exit
//! code. Showing it is apart: [`text`] renders the per-step header and notes and the
//! final summary table, [`json`] the JSON document of `checker rehearse --output json`
//! (the walk with its `schema_version`, described by `rehearse/schema/
//! rehearsal.schema.json`). Each step's `verify` is the verification as plain data
//! ([`Verification`]), whose parts also make up the `checker verify` document
//! (`report::json`).
//!
//! Exit code of a walk: 0 when every step passed; otherwise the worst step's code,
//! worst first: FAIL 1 (the split is wrong) > ERRORS 4 (error budget exceeded, or a
//! held connection was lost) > INCONCLUSIVE 3. An interrupted walk exits 130.

use serde::Serialize;

pub mod json;
pub mod junit;
pub mod text;

use super::fleet::DrainTotals;
use super::ingress::envoy::WeightsVia;
use super::ingress::{GatewayKind, GatewayShutdown};
use super::steps::file::ManifestStep;
use checker_core::exit;
use checker_core::hold::HeldSummary;
use checker_core::verdict::{Drift, Outcome};
use checker_core::verify::Verification;

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
    pub verify: Option<Verification>,
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

    /// The sentence naming both splits when a plan step's own disagrees with its manifests'.
    pub fn mismatch(step: &StepReport) -> Option<&str> {
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
            .flat_map(|r| &r.judgement.split.versions)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A step with `outcome` and nothing else.
    pub(crate) fn step(number: usize, outcome: StepOutcome) -> StepReport {
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

    /// A walk of steps with `outcomes`, decided.
    pub(crate) fn walk(outcomes: &[StepOutcome], interrupted: bool) -> WalkReport {
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
    fn a_step_without_verification_or_with_lost_connections_fails_on_errors() {
        let mut s = step(1, StepOutcome::Pass);
        s.decide(false);
        assert_eq!(s.outcome, StepOutcome::Errors);
        s.decide(true);
        assert_eq!(s.outcome, StepOutcome::Interrupted);
    }
}
