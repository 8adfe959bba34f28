//! The rollout walk: deploy, shift the weights step by step, promote, return, delete,
//! with a full verification through the ingress after every step.
//!
//! Steps, for `--steps 0,10,20` ([`crate::steps::builtin`]):
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

//!
//! Its parts: `config` (what is asked, checked), `stage` (the moving parts while it
//! runs), `change` (each step's change), [`faults`] (faults injected on purpose), `held`
//! (the held connections) and `verify` (each step's verification); this module runs
//! them in order and tears everything down.

use std::time::Duration;

use checker_core::hold::{HeldSummary, Holders};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod change;
mod config;
mod error;
pub mod faults;
mod held;
mod stage;
mod verify;

use super::fleet::{DrainTotals, Fleet};
use super::ingress::builtin::Gateway;
use super::ingress::envoy::Envoy;
use super::ingress::haproxy::Haproxy;
use super::ingress::{GatewayKind, Ingress, IngressError};
use super::steps::builtin::{CANARY_GROUP, CANARY_VERSION, STABLE_GROUP, STABLE_VERSION};
use super::steps::{Step, StepKind};
use super::summary::{EnvoyRun, StepManifests, StepOutcome, StepReport, Teardown, WalkReport};
use change::{applied_events, apply_change};
pub use config::WalkConfig;
pub use error::WalkError;
use held::{close_after_span, open_holders, sort_losses};
use stage::Stage;
use verify::verify_step;

/// How long the gateway may drain at the end before cutting.
const GATEWAY_DRAIN: Duration = Duration::from_secs(5);

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

/// Runs the whole walk; `stop` (Ctrl-C) ends it early with a partial report.
///
/// Every replica and the ingress are stopped before this returns, whatever happened.
pub async fn walk(
    config: &WalkConfig,
    stop: CancellationToken,
    on_event: &mut (dyn FnMut(WalkEvent<'_>) + Send),
) -> Result<WalkReport, WalkError> {
    let steps = config.validate()?;
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
        &steps,
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
    steps: &[Step],
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
        steps: steps.len(),
    });

    let mut previous: Option<Holders> = None;
    for step in steps {
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
        let last = step.number == steps.len();
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
        on_event(WalkEvent::StepDone(&s, steps.len()));
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
