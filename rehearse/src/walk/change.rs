//! Each step's change to the fleets and the gateway: the built-in walk's weights, rolling
//! update, return and deletion, or whatever a steps file's manifests describe.

use std::time::Duration;

use checker_core::verdict;
use tokio::time::Instant;

use super::config::WalkConfig;
use super::error::WalkError;
use super::faults::chaos_canary;
use super::stage::{Deployed, Stage, retire, start_replicas};
use crate::steps::builtin::{CANARY_GROUP, CANARY_VERSION, STABLE_GROUP};
use crate::steps::file::ManifestStep;
use crate::steps::{Step, StepKind};

/// Pause between replacing two replicas in the rolling update.
const ROLL_PAUSE: Duration = Duration::from_millis(100);

/// Makes the step's change: its weights (moved by `--chaos` when asked), the rolling
/// update, the return to stable, the canary's deletion, or a steps file's manifests.
pub(super) async fn apply_change(
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

/// Turns the ingress's applied updates into events; the slowest one's seconds.
pub(super) fn applied_events(stage: &mut Stage, events: &mut Vec<String>) -> Option<f64> {
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
                .unwrap_or_else(|| format!("{} (version_of)", d.name));
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
