//! The rollout walk: deploy, shift the weights step by step, promote, return, delete,
//! with a full verification through the ingress after every step.
//!
//! Steps, for `--steps 0,10,20`:
//! 1-3. `canary W%`: gateway stable=100-W canary=W, expect one=100-W,two=W.
//! 4. `primary rolling update`: each stable replica (`one`) is replaced by a `two`
//!    replica, one at a time: the new one joins the gateway, the old one leaves it and
//!    drains (serves its open connections until they close). Expect one=0,two=100.
//! 5. `back to stable`: canary weight 0. Expect one=0,two=100.
//! 6. `canary delete`: the canary group leaves the gateway, its replicas drain.
//!
//! With a plan of manifests (`--plan`, [`crate::steps::file`]) nothing is deployed up
//! front: every step makes the fleets and the gateway what its manifests describe (one
//! gateway group per route destination, see `apply_manifests`) and expects the split
//! derived from them. Everything else (held connections, drains, verification,
//! interruption, teardown) is the same walk.
//!
//! A set of long-lived connections ("holders") is opened at the start of every step,
//! before its change, and closed at the end of the NEXT step, so every change happens
//! under open connections, including those on the replicas being replaced or deleted;
//! each holder checks every reply and that its connection never moves.
//!
//! Through Envoy a weight step is a listener update, after which Envoy closes the
//! connections of the old listener when its drain time runs out; so a set is kept
//! open until the drain time after the change it was opened before has passed
//! ([`WalkConfig::hold_span`]), its losses are sorted into cuts by the gateway and
//! losses at the servers ([`sort_losses`]), and the cuts are timed from that change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::faults::{chaos_canary, inject_faults};
use super::fleet::{DRAIN_DELAY, DrainTotals, Fleet, FleetError, Replica};
use super::holders::{EXCHANGE_EVERY, HeldSummary, Holders, Loss};
use super::ingress::builtin::Gateway;
use super::ingress::envoy::{Envoy, EnvoyError, EnvoyOptions};
use super::ingress::haproxy::{Haproxy, HaproxyError};
use super::ingress::{GatewayKind, Ingress, IngressError};
use super::steps::builtin::{self, CANARY_GROUP, CANARY_VERSION, STABLE_GROUP, STABLE_VERSION};
use super::steps::file::{ManifestStep, StepsFile};
use super::steps::{self, Step, StepKind};
use super::summary::{EnvoyRun, StepManifests, StepOutcome, StepReport, Teardown, WalkReport};
use checker_core::expect::ExpectError;
use checker_core::verdict::{self, Settings};
use checker_core::verify::{self, VerifyConfig};

/// Pause between replacing two replicas in the rolling update.
const ROLL_PAUSE: Duration = Duration::from_millis(100);
/// How many extra batches of held connections may be opened to reach every group.
const HOLD_TOP_UPS: usize = 4;
/// How long the gateway may drain at the end before cutting.
const GATEWAY_DRAIN: Duration = Duration::from_secs(5);

/// Everything the walk needs.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkConfig {
    /// The canary weights of the weight steps, in percent, e.g. `[0, 10, 20]`.
    pub steps: Vec<u32>,
    /// Replicas per version.
    pub replicas: usize,
    /// Seed of the built-in gateway's random choice.
    pub seed: u64,
    /// Samples per verification (`None` = planned).
    pub samples: Option<u64>,
    /// Samples in flight.
    pub concurrency: usize,
    /// Confidence and tolerance of the verdicts.
    pub settings: Settings,
    /// Error budget of each verification.
    pub max_error_rate: f64,
    /// Which ingress to route through.
    pub gateway: GatewayKind,
    /// The HAProxy binary, for `GatewayKind::Haproxy`.
    pub haproxy_bin: String,
    /// Long-lived connections opened per step.
    pub hold: usize,
    /// Grace period of a draining replica before it cuts its connections.
    pub grace: Duration,
    /// Step whose gateway weight is deliberately wrong.
    pub chaos: Option<usize>,
    /// Step during whose sampling a canary replica dies.
    pub kill_replica: Option<usize>,
    /// Step during whose sampling the weights change.
    pub shift_during: Option<usize>,
    /// Directory for one samples file per step (`step-N.jsonl`).
    pub samples_dir: Option<PathBuf>,
    /// How to run Envoy, for `GatewayKind::Envoy`.
    pub envoy: EnvoyOptions,
    /// Whether held connections cut by the gateway fail their step (exit 1).
    pub fail_on_cut: bool,
    /// A user's steps file (`--plan`), walked instead of the built-in steps.
    pub steps_file: Option<StepsFile>,
}

impl Default for WalkConfig {
    fn default() -> Self {
        Self {
            steps: vec![0, 10, 20],
            replicas: 3,
            seed: 1,
            samples: None,
            concurrency: verify::DEFAULT_CONCURRENCY,
            settings: Settings::default(),
            max_error_rate: verify::DEFAULT_MAX_ERROR_RATE,
            gateway: GatewayKind::Builtin,
            haproxy_bin: "haproxy".to_owned(),
            hold: 8,
            grace: Duration::from_secs(30),
            chaos: None,
            kill_replica: None,
            shift_during: None,
            samples_dir: None,
            envoy: EnvoyOptions::default(),
            fail_on_cut: false,
            steps_file: None,
        }
    }
}

/// Why the walk could not run at all (a step that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// A flag value is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The ingress failed to start or to take a change.
    #[error(transparent)]
    Ingress(#[from] IngressError),
    /// A replica could not start.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A step's expectation could not be built.
    #[error(transparent)]
    Expect(#[from] ExpectError),
}

impl WalkError {
    /// The exit code: 2 for bad flags and a missing HAProxy, 4 for anything that broke.
    pub fn exit_code(&self) -> i32 {
        match self {
            WalkError::Invalid(_) | WalkError::Expect(_) => checker_core::exit::USAGE,
            WalkError::Ingress(IngressError::Haproxy(HaproxyError::NotInstalled { .. })) => {
                checker_core::exit::USAGE
            }
            WalkError::Ingress(IngressError::Envoy(EnvoyError::NotInstalled { .. })) => {
                checker_core::exit::USAGE
            }
            _ => checker_core::exit::ERRORS,
        }
    }
}

impl WalkConfig {
    /// How long a set of held connections is kept open after the change it was opened
    /// before, at least: through Envoy, its drain time and one exchange more, so a cut
    /// at the end of the drain is seen; otherwise nothing beyond the steps.
    pub fn hold_span(&self) -> Duration {
        match self.gateway {
            GatewayKind::Envoy => {
                Duration::from_secs(self.envoy.drain_secs()) + EXCHANGE_EVERY + EXCHANGE_EVERY / 2
            }
            _ => Duration::ZERO,
        }
    }

    /// Checks the values and the fault steps against the plan.
    pub fn validate(&self) -> Result<Vec<Step>, WalkError> {
        let bad = |s: String| Err(WalkError::Invalid(s));
        if self.steps.is_empty() {
            return bad("--steps needs at least one canary weight, e.g. 0,10,20".into());
        }
        if let Some(w) = self.steps.iter().find(|w| **w > 100) {
            return bad(format!("--steps: {w} is not a percentage (0 to 100)"));
        }
        if self.replicas == 0 || self.replicas > 32 {
            return bad("--replicas must be between 1 and 32".into());
        }
        if self.samples == Some(0) {
            return bad("--samples must be at least 1".into());
        }
        if self.grace < DRAIN_DELAY {
            return bad(format!(
                "--grace {}: must be at least {} (a stopping replica keeps accepting that long before its grace period can end)",
                humantime::format_duration(self.grace),
                humantime::format_duration(DRAIN_DELAY)
            ));
        }
        if let Some(plan) = &self.steps_file {
            for (flag, step) in [
                ("--chaos", self.chaos),
                ("--shift-during", self.shift_during),
                ("--kill-replica", self.kill_replica),
            ] {
                if step.is_some() {
                    return bad(format!(
                        "{flag} works on the built-in walk, not on a --plan of manifests"
                    ));
                }
            }
            return Ok(steps::of_file(plan));
        }
        let plan = builtin::steps(&self.steps)?;
        let weight_steps = self.steps.len();
        for (flag, step, last) in [
            ("--chaos", self.chaos, weight_steps),
            ("--shift-during", self.shift_during, weight_steps),
            ("--kill-replica", self.kill_replica, weight_steps + 1),
        ] {
            if let Some(s) = step
                && (s == 0 || s > last)
            {
                let also = if last > weight_steps {
                    " or the rolling update"
                } else {
                    ""
                };
                return bad(format!(
                    "{flag} {s}: must name a step from 1 to {last} (the weight steps{also})"
                ));
            }
        }
        Ok(plan)
    }
}

/// Something the walk reports while it runs.
#[derive(Debug)]
pub enum WalkEvent<'a> {
    /// Replicas and ingress are up.
    Started {
        /// The ingress's address.
        gateway: std::net::SocketAddr,
        /// The child proxy's pid (HAProxy, Envoy), when it is the ingress.
        proxy_pid: Option<u32>,
        /// How many steps will run.
        steps: usize,
    },
    /// A step is about to be verified.
    Verifying(&'a Step, &'a [(String, u32)]),
    /// A step finished.
    StepDone(&'a StepReport, usize),
}

/// The walk's moving parts.
pub(crate) struct Stage {
    pub(crate) ingress: Ingress,
    pub(crate) fleet: Fleet,
    pub(crate) weights: Vec<(String, u32)>,
    /// When the weights changed (a listener update through Envoy), in order.
    pub(crate) changes: Vec<Instant>,
    /// The workloads a plan of manifests deployed, per gateway group.
    pub(crate) deployed: Vec<Deployed>,
}

/// One workload's replicas behind one gateway group (a route destination).
pub(crate) struct Deployed {
    /// The gateway group: the destination's name.
    group: String,
    /// The workload, `Deployment/tcp-echo-stable`.
    workload: String,
    /// The version its replicas answer with.
    version: String,
    /// Its running replicas.
    replicas: Vec<Replica>,
}

impl Stage {
    pub(crate) async fn set_weights(&mut self, stable: u32, canary: u32) -> Result<(), WalkError> {
        let mut w = vec![(STABLE_GROUP.to_owned(), stable)];
        if self.weights.iter().any(|(g, _)| g == CANARY_GROUP) {
            w.push((CANARY_GROUP.to_owned(), canary));
        }
        self.apply_weights(w).await
    }

    /// Sets the named groups' weights, noting the time when any changed.
    async fn apply_weights(&mut self, w: Vec<(String, u32)>) -> Result<(), WalkError> {
        let changed = w
            .iter()
            .any(|(g, v)| !self.weights.iter().any(|(h, u)| h == g && u == v));
        if changed {
            self.changes.push(Instant::now());
        }
        let named: Vec<(&str, u32)> = w.iter().map(|(g, v)| (g.as_str(), *v)).collect();
        self.ingress.set_weights(&named).await?;
        self.weights = w;
        Ok(())
    }

    /// The first weight change at or after `at`.
    fn first_change_after(&self, at: Instant) -> Option<Instant> {
        self.changes.iter().copied().find(|c| *c >= at)
    }
}

/// Runs the whole walk; `stop` (Ctrl-C) ends it early with a partial report.
///
/// Every replica and the ingress are stopped before this returns, whatever happened.
pub async fn walk(
    config: &WalkConfig,
    stop: CancellationToken,
    on_event: &mut (dyn FnMut(WalkEvent<'_>) + Send),
) -> Result<WalkReport, WalkError> {
    let plan = config.validate()?;
    let started = Instant::now();
    let ingress = match config.gateway {
        GatewayKind::Builtin => Ingress::Builtin(
            Gateway::bind(([127, 0, 0, 1], 0).into(), config.seed)
                .await
                .map_err(IngressError::from)?,
        ),
        GatewayKind::Haproxy => Ingress::Haproxy(
            Haproxy::start(&config.haproxy_bin, haproxy_slots(config))
                .await
                .map_err(IngressError::from)?,
        ),
        GatewayKind::Envoy => Ingress::Envoy(
            Envoy::start(&config.envoy)
                .await
                .map_err(IngressError::from)?,
        ),
    };
    let mut ingress = ingress;
    let proxy_pid = ingress.pid();
    let mut stage = Stage {
        ingress,
        fleet: Fleet::new(config.grace),
        weights: Vec::new(),
        changes: Vec::new(),
        deployed: Vec::new(),
    };
    let gateway_addr = stage.ingress.addr();
    let mut report = WalkReport {
        gateway: config.gateway,
        gateway_addr: gateway_addr.to_string(),
        seed: (config.gateway == GatewayKind::Builtin).then_some(config.seed),
        replicas: config.steps_file.as_ref().map_or(config.replicas, |p| {
            p.steps
                .first()
                .map_or(0, |s| usize::try_from(s.replicas()).unwrap_or(usize::MAX))
        }),
        plan: config
            .steps_file
            .as_ref()
            .map(|p| p.file.display().to_string()),
        steps: Vec::new(),
        interrupted: false,
        teardown: Teardown::default(),
        elapsed_s: 0.0,
        grace_s: config.grace.as_secs_f64(),
        exit_code: 0,
        envoy: (config.gateway == GatewayKind::Envoy).then(|| EnvoyRun {
            drain_time_s: config.envoy.drain_secs(),
            weights_via: config.envoy.weights_via,
        }),
    };
    let outcome = run_steps(
        config,
        &plan,
        &mut stage,
        &stop,
        &mut report,
        on_event,
        proxy_pid,
    )
    .await;
    // Teardown, whatever happened: graceful unless interrupted or broken.
    let Stage {
        ingress, mut fleet, ..
    } = stage;
    if stop.is_cancelled() || outcome.is_err() {
        fleet.abort_all().await;
        report.teardown.gateway = ingress.shutdown(Duration::ZERO).await;
    } else {
        report.teardown.drains = fleet.stop_all().await;
        report.teardown.gateway = ingress.shutdown(GATEWAY_DRAIN).await;
    }
    outcome?;
    report.interrupted = stop.is_cancelled();
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.decide();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn run_steps(
    config: &WalkConfig,
    plan: &[Step],
    stage: &mut Stage,
    stop: &CancellationToken,
    report: &mut WalkReport,
    on_event: &mut (dyn FnMut(WalkEvent<'_>) + Send),
    proxy_pid: Option<u32>,
) -> Result<(), WalkError> {
    // Deploy the built-in walk's stable and canary Deployments, the canary at weight 0;
    // a plan of manifests deploys in its first step.
    if config.steps_file.is_none() {
        for _ in 0..config.replicas {
            let r = stage.fleet.start(STABLE_VERSION, STABLE_GROUP).await?;
            stage.ingress.add_replica(STABLE_GROUP, r.addr).await?;
            let r = stage.fleet.start(CANARY_VERSION, CANARY_GROUP).await?;
            stage.ingress.add_replica(CANARY_GROUP, r.addr).await?;
        }
        stage.weights = vec![(STABLE_GROUP.to_owned(), 100), (CANARY_GROUP.to_owned(), 0)];
        stage.set_weights(100, 0).await?;
    }
    on_event(WalkEvent::Started {
        gateway: stage.ingress.addr(),
        proxy_pid,
        steps: plan.len(),
    });

    let mut previous: Option<Holders> = None;
    for step in plan {
        if stop.is_cancelled() {
            break;
        }
        let mut current = open_holders(config, stage, stop).await?;
        let mut events = Vec::new();
        stage.ingress.take_applied();
        apply_change(config, step, stage, &mut events).await?;
        let gateway_update_s = applied_events(stage, &mut events);
        on_event(WalkEvent::Verifying(step, &stage.weights));
        let gateway_weights = stage.weights.clone();
        let (verified, drift) = verify_step(config, step, stage, stop, &mut events).await?;
        // Losses are reported in the step where they happened, whichever set they hit;
        // a set is closed only once its span after its change has passed.
        let mut held = HeldSummary::default();
        sort_losses(&mut held, current.take_losses(), stage);
        if let Some(mut h) = previous.take() {
            sort_losses(&mut held, h.take_losses(), stage);
            held.merge(&close_after_span(config, &mut h, stage, stop).await);
            sort_losses(&mut held, h.take_losses(), stage);
        }
        let last = step.number == plan.len();
        if last {
            held.merge(&close_after_span(config, &mut current, stage, stop).await);
            sort_losses(&mut held, current.take_losses(), stage);
        } else {
            previous = Some(current);
        }
        let drains = if stage.fleet.draining_connections() == 0 || last {
            stage.fleet.finish_drains().await
        } else {
            DrainTotals::default()
        };
        let (verify, verify_error) = match verified {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let crashed = config.kill_replica == Some(step.number);
        let manifests = match &step.kind {
            StepKind::Manifests(m) => Some(StepManifests::of(m)),
            _ => None,
        };
        let mut s = StepReport {
            lost_to_crash: if crashed { held.lost } else { 0 },
            number: step.number,
            name: step.name.clone(),
            gateway_weights,
            expect: step.expect.to_string(),
            verify,
            verify_error,
            drift,
            held,
            drains,
            events,
            off: Vec::new(),
            outcome: StepOutcome::Pass,
            exit_code: 0,
            gateway_update_s,
            fail_on_cut: config.fail_on_cut,
            manifests,
        };
        s.decide(stop.is_cancelled());
        on_event(WalkEvent::StepDone(&s, plan.len()));
        report.steps.push(s);
    }
    if let Some(mut h) = previous.take() {
        let mut held = close_after_span(config, &mut h, stage, stop).await;
        sort_losses(&mut held, h.take_losses(), stage);
        if let Some(s) = report.steps.last_mut() {
            s.held.merge(&held);
            s.decide(stop.is_cancelled());
        }
    }
    Ok(())
}

/// How far apart a server's own end of connections and a held connection's loss may be
/// for the loss to be put down to the server.
const SERVER_END_WINDOW: Duration = Duration::from_secs(1);

/// Sorts lost held connections: those whose version had a replica killed or cut at its
/// drain deadline around that moment were lost at the servers; a close or a reset while
/// every replica of the version was still serving is a cut by the gateway, timed from
/// the first weight change after its set was opened; anything else (a wrong or moved
/// reply, a timeout) is a loss.
fn sort_losses(held: &mut HeldSummary, losses: Vec<Loss>, stage: &Stage) {
    for l in losses {
        let at_servers = l
            .version
            .as_deref()
            .is_some_and(|v| stage.fleet.ended_near(v, l.at, SERVER_END_WINDOW));
        let closed = ["closed by the other side", "read failed", "write failed"]
            .iter()
            .any(|p| l.reason.starts_with(p));
        if closed && !at_servers && l.version.is_some() {
            let change = stage.first_change_after(l.opened);
            held.add_cut(change.map(|c| l.at.saturating_duration_since(c)));
        } else {
            held.add_losses(vec![l.reason]);
        }
    }
}

/// Waits (unless stopped) until `holders` were open for the walk's hold span after the
/// first weight change since they were opened, then closes them.
async fn close_after_span(
    config: &WalkConfig,
    holders: &mut Holders,
    stage: &Stage,
    stop: &CancellationToken,
) -> HeldSummary {
    if let Some(change) = stage.first_change_after(holders.opened_at()) {
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep_until(change + config.hold_span()) => {}
        }
    }
    holders.close().await
}

/// Turns the ingress's applied updates into events; the slowest one's seconds.
fn applied_events(stage: &mut Stage, events: &mut Vec<String>) -> Option<f64> {
    let applied = stage.ingress.take_applied();
    for a in &applied {
        events.push(format!(
            "{} applied the {} update in {:.1} ms (its admin stats show the new version)",
            stage.ingress.kind().as_str(),
            a.what,
            a.seconds * 1000.0
        ));
    }
    applied.iter().map(|a| a.seconds).reduce(f64::max)
}

/// Active connections per group, as the ingress counts them.
async fn active_by_group(ingress: &Ingress) -> Result<BTreeMap<String, u64>, WalkError> {
    let mut out = BTreeMap::new();
    for b in ingress.stats().await?.backends {
        *out.entry(b.group).or_insert(0) += b.active;
    }
    Ok(out)
}

/// Opens the step's held connections, topping up (at most [`HOLD_TOP_UPS`] times) until
/// every group with traffic holds at least one of them, so each replica set that is
/// replaced or deleted later has open connections on it to lose or keep.
async fn open_holders(
    config: &WalkConfig,
    stage: &Stage,
    stop: &CancellationToken,
) -> Result<Holders, WalkError> {
    let before = active_by_group(&stage.ingress).await?;
    // Before a plan's first step nothing is deployed: nothing to hold.
    let hold = if stage.weights.iter().any(|(_, w)| *w > 0) {
        config.hold
    } else {
        0
    };
    let mut holders = Holders::open(stage.ingress.addr(), hold, stop).await;
    if hold == 0 {
        return Ok(holders);
    }
    for _ in 0..HOLD_TOP_UPS {
        let after = active_by_group(&stage.ingress).await?;
        let missing = stage.weights.iter().any(|(g, w)| {
            *w > 0 && after.get(g).copied().unwrap_or(0) <= before.get(g).copied().unwrap_or(0)
        });
        if !missing || stop.is_cancelled() {
            break;
        }
        holders.open_more(stage.ingress.addr(), config.hold).await;
    }
    Ok(holders)
}

async fn apply_change(
    config: &WalkConfig,
    step: &Step,
    stage: &mut Stage,
    events: &mut Vec<String>,
) -> Result<(), WalkError> {
    match &step.kind {
        StepKind::Weight(w) => {
            let w = *w;
            let mut canary = w;
            if config.chaos == Some(step.number) {
                let samples = config
                    .samples
                    .unwrap_or_else(|| verdict::plan(&step.expect, &config.settings).samples);
                let (wrong, certain) = chaos_canary(w, samples, &config.settings);
                canary = wrong;
                let how = if certain {
                    format!(
                        "{} points off, so {samples} samples FAIL it for certain",
                        w.abs_diff(wrong)
                    )
                } else {
                    format!(
                        "{} points off, as far as the weights go; {samples} samples may not be enough to FAIL it",
                        w.abs_diff(wrong)
                    )
                };
                events.push(format!(
                    "chaos: the gateway is set to stable={} canary={} while the step expects {} ({how})",
                    100 - canary,
                    canary,
                    step.expect
                ));
            }
            stage.set_weights(100 - canary, canary).await?;
        }
        StepKind::RollingUpdate => {
            let old = stage.fleet.group(STABLE_GROUP);
            for r in old {
                let new = stage.fleet.start(CANARY_VERSION, STABLE_GROUP).await?;
                stage.ingress.add_replica(STABLE_GROUP, new.addr).await?;
                stage.ingress.remove_replica(STABLE_GROUP, r.addr).await?;
                stage.fleet.drain(r.addr);
                events.push(format!(
                    "replaced {} ({}) with {} ({}); {} draining",
                    r.name, r.addr, new.name, new.addr, r.name
                ));
                tokio::time::sleep(ROLL_PAUSE).await;
            }
        }
        StepKind::BackToStable => {
            stage.set_weights(100, 0).await?;
        }
        StepKind::CanaryDelete => {
            stage.changes.push(Instant::now());
            stage.ingress.remove_group(CANARY_GROUP).await?;
            stage.weights.retain(|(g, _)| g != CANARY_GROUP);
            for r in stage.fleet.group(CANARY_GROUP) {
                stage.fleet.drain(r.addr);
                events.push(format!("deleted {} ({}): draining", r.name, r.addr));
            }
        }
        StepKind::Manifests(m) => apply_manifests(m, stage, events).await?,
    }
    Ok(())
}

/// HAProxy's server slots (never reused): every replica the walk may start, and two spare.
fn haproxy_slots(config: &WalkConfig) -> usize {
    match &config.steps_file {
        Some(plan) => plan
            .steps
            .iter()
            .map(|s| usize::try_from(s.replicas()).unwrap_or(usize::MAX))
            .fold(2usize, usize::saturating_add),
        None => 3 * config.replicas + 2,
    }
}

/// Starts `n` replicas of `version` and puts them into `group`.
async fn start_replicas(
    stage: &mut Stage,
    group: &str,
    version: &str,
    n: usize,
) -> Result<Vec<Replica>, WalkError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = stage.fleet.start(version, group).await?;
        stage.ingress.add_replica(group, r.addr).await?;
        out.push(r);
    }
    Ok(out)
}

/// Takes replicas out of `group` and drains them (they serve their open connections).
async fn retire(stage: &mut Stage, group: &str, replicas: &[Replica]) -> Result<(), WalkError> {
    for r in replicas {
        stage.ingress.remove_replica(group, r.addr).await?;
        stage.fleet.drain(r.addr);
    }
    Ok(())
}

/// Makes the fleets and the gateway what a step's manifests describe: new workloads
/// start, a workload whose version changed is replaced one replica at a time (the new
/// one joins before the old one leaves and drains), a changed replica count scales,
/// the route's weights go to the gateway, and workloads and destinations that are gone
/// leave it and drain. Workloads that did not change keep their replicas and their
/// open connections.
async fn apply_manifests(
    step: &ManifestStep,
    stage: &mut Stage,
    events: &mut Vec<String>,
) -> Result<(), WalkError> {
    let destinations = &step.derivation.destinations;
    let mut wanted: Vec<(String, String, String, usize)> = Vec::new();
    for d in destinations {
        for m in &d.members {
            let workload = m
                .workload
                .clone()
                .unwrap_or_else(|| format!("{} (--version-of)", d.name));
            let n = usize::try_from(m.replicas).unwrap_or(usize::MAX);
            wanted.push((d.name.clone(), workload, m.version.clone(), n));
        }
    }
    for (group, workload, version, n) in &wanted {
        let n = *n;
        let at = stage
            .deployed
            .iter()
            .position(|d| d.group == *group && d.workload == *workload);
        let Some(i) = at else {
            let replicas = start_replicas(stage, group, version, n).await?;
            events.push(format!(
                "started {workload} behind {group}: {n} replica(s) answering {version}"
            ));
            stage.deployed.push(Deployed {
                group: group.clone(),
                workload: workload.clone(),
                version: version.clone(),
                replicas,
            });
            continue;
        };
        let old = std::mem::take(&mut stage.deployed[i].replicas);
        if stage.deployed[i].version == *version {
            let mut kept = old;
            let had = kept.len();
            if n > had {
                let more = start_replicas(stage, group, version, n - had).await?;
                kept.extend(more);
            }
            let extra = kept.split_off(n.min(kept.len()));
            retire(stage, group, &extra).await?;
            if n != had {
                events.push(format!(
                    "scaled {workload} behind {group} from {had} to {n} replica(s) of {version}"
                ));
            }
            stage.deployed[i].replicas = kept;
            continue;
        }
        let mut new = Vec::with_capacity(n);
        for k in 0..n.max(old.len()) {
            let joined = if k < n {
                let r = start_replicas(stage, group, version, 1).await?;
                new.extend(r.iter().cloned());
                r.into_iter().next()
            } else {
                None
            };
            let left = old.get(k);
            if let Some(r) = left {
                retire(stage, group, std::slice::from_ref(r)).await?;
            }
            match (joined, left) {
                (Some(j), Some(l)) => events.push(format!(
                    "replaced {} ({}) with {} ({}); {} draining",
                    l.name, l.addr, j.name, j.addr, l.name
                )),
                (Some(j), None) => {
                    events.push(format!("started {} ({}) for {workload}", j.name, j.addr));
                }
                (None, Some(l)) => {
                    events.push(format!("stopped {} ({}): draining", l.name, l.addr));
                }
                (None, None) => {}
            }
            tokio::time::sleep(ROLL_PAUSE).await;
        }
        stage.deployed[i].version = version.clone();
        stage.deployed[i].replicas = new;
    }
    // The route's weights, for the destinations with replicas to route to.
    let mut weights = Vec::new();
    for d in destinations {
        let serving = stage
            .deployed
            .iter()
            .any(|x| x.group == d.name && !x.replicas.is_empty());
        if serving {
            weights.push((d.name.clone(), u32::try_from(d.weight).unwrap_or(u32::MAX)));
        } else {
            events.push(format!(
                "{} ({}) has no replica to route to: it is left out of the gateway",
                d.name, d.field
            ));
        }
    }
    let routable = weights.iter().any(|(_, w)| *w > 0);
    let gone: Vec<String> = stage
        .weights
        .iter()
        .map(|(g, _)| g.clone())
        .filter(|g| !routable || !weights.iter().any(|(w, _)| w == g))
        .collect();
    if routable {
        stage.apply_weights(weights).await?;
    } else {
        events.push(
            "no destination with weight has a replica: the gateway routes nothing".to_owned(),
        );
        stage.weights.clear();
    }
    for g in gone {
        stage.changes.push(Instant::now());
        stage.ingress.remove_group(&g).await?;
        events.push(format!("{g} left the route"));
    }
    // Workloads no destination selects any more leave the gateway and drain.
    let mut i = 0;
    while i < stage.deployed.len() {
        let d = &stage.deployed[i];
        if wanted
            .iter()
            .any(|(g, w, _, _)| *g == d.group && *w == d.workload)
        {
            i += 1;
            continue;
        }
        let d = stage.deployed.remove(i);
        retire(stage, &d.group, &d.replicas).await?;
        for r in &d.replicas {
            events.push(format!(
                "deleted {} ({}) of {}: draining",
                r.name, r.addr, d.workload
            ));
        }
    }
    Ok(())
}

type Verified = (
    Result<checker_core::verify::VerifyReport, verify::VerifyError>,
    Option<verdict::Drift>,
);

async fn verify_step(
    config: &WalkConfig,
    step: &Step,
    stage: &mut Stage,
    stop: &CancellationToken,
    events: &mut Vec<String>,
) -> Result<Verified, WalkError> {
    let mut vc = VerifyConfig::new(stage.ingress.addr().to_string(), step.expect.clone());
    vc.samples = config.samples;
    vc.concurrency = config.concurrency;
    vc.settings = config.settings;
    vc.max_error_rate = config.max_error_rate;
    // Thousands of short loopback connections per step: close each with a reset so the
    // rehearsal leaves no TIME_WAIT (and conntrack) entries behind.
    vc.reset_on_close = true;
    vc.samples_out = config
        .samples_dir
        .as_ref()
        .map(|d| d.join(format!("step-{}.jsonl", step.number)));
    let total = config
        .samples
        .unwrap_or_else(|| verdict::plan(&step.expect, &config.settings).samples);
    let base = stage.ingress.accepted().await?;
    let done = CancellationToken::new();
    let run = async {
        let r = verify::verify(&vc, stop.child_token()).await;
        done.cancel();
        r
    };
    let faults = inject_faults(config, step, stage, base, total, &done, events);
    let (verified, faulted) = tokio::join!(run, faults);
    faulted?;
    let drift = verified.as_ref().ok().map(|r| r.drift.clone());
    Ok((verified, drift))
}

/// Waits (polling the ingress) until `count` connections were accepted or sampling ended.
pub(crate) async fn wait_accepted(ingress: &Ingress, count: u64, done: &CancellationToken) -> bool {
    loop {
        if done.is_cancelled() {
            return false;
        }
        if ingress.accepted().await.is_ok_and(|a| a >= count) {
            return true;
        }
        tokio::select! {
            () = done.cancelled() => return false,
            () = tokio::time::sleep(Duration::from_millis(2)) => {}
        }
    }
}

/// Connections the gateway accepted since it had accepted `base` (0 if it cannot say).
pub(crate) async fn accepted_since(ingress: &Ingress, base: u64) -> u64 {
    ingress
        .accepted()
        .await
        .unwrap_or(base)
        .saturating_sub(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_steps_and_values_are_checked() {
        let ok = WalkConfig::default();
        assert_eq!(ok.validate().unwrap().len(), 6);
        let bad = |f: fn(&mut WalkConfig)| {
            let mut c = WalkConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.chaos = Some(4)).contains("--chaos 4"));
        assert!(bad(|c| c.shift_during = Some(0)).contains("--shift-during 0"));
        assert!(bad(|c| c.kill_replica = Some(5)).contains("or the rolling update"));
        assert!(bad(|c| c.steps = vec![0, 101]).contains("101"));
        assert!(bad(|c| c.steps.clear()).contains("at least one"));
        assert!(bad(|c| c.replicas = 0).contains("--replicas"));
        assert!(bad(|c| c.grace = Duration::ZERO).starts_with("--grace 0s: must be at least 50ms"));
        let c = WalkConfig {
            kill_replica: Some(4),
            ..WalkConfig::default()
        };
        assert!(
            c.validate().is_ok(),
            "the rolling update may lose a canary replica"
        );
    }
}
