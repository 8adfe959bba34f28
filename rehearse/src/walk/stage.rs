//! The walk's moving parts while it runs: the ingress, the fleet of replicas, the
//! weights set and when they changed, and the workloads a steps file deployed.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::WalkError;
use crate::fleet::{Fleet, Replica};
use crate::ingress::Ingress;
use crate::steps::builtin::{CANARY_GROUP, STABLE_GROUP};

/// The walk's moving parts.
pub(super) struct Stage {
    pub(super) ingress: Ingress,
    pub(super) fleet: Fleet,
    pub(super) weights: Vec<(String, u32)>,
    /// When the weights changed (a listener update through Envoy), in order.
    pub(super) changes: Vec<Instant>,
    /// The workloads a plan of manifests deployed, per gateway group.
    pub(super) deployed: Vec<Deployed>,
}

/// One workload's replicas behind one gateway group (a route destination).
pub(super) struct Deployed {
    /// The gateway group: the destination's name.
    pub(super) group: String,
    /// The workload, `Deployment/tcp-echo-stable`.
    pub(super) workload: String,
    /// The version its replicas answer with.
    pub(super) version: String,
    /// Its running replicas.
    pub(super) replicas: Vec<Replica>,
}

impl Stage {
    /// Sets the stable and (while it is in the gateway) the canary group's weights.
    pub(super) async fn set_weights(&mut self, stable: u32, canary: u32) -> Result<(), WalkError> {
        let mut w = vec![(STABLE_GROUP.to_owned(), stable)];
        if self.weights.iter().any(|(g, _)| g == CANARY_GROUP) {
            w.push((CANARY_GROUP.to_owned(), canary));
        }
        self.apply_weights(w).await
    }

    /// Sets the named groups' weights, noting the time when any changed.
    pub(super) async fn apply_weights(&mut self, w: Vec<(String, u32)>) -> Result<(), WalkError> {
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
    pub(super) fn first_change_after(&self, at: Instant) -> Option<Instant> {
        self.changes.iter().copied().find(|c| *c >= at)
    }
}

/// Starts `n` replicas of `version` and puts them into `group`.
pub(super) async fn start_replicas(
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
pub(super) async fn retire(
    stage: &mut Stage,
    group: &str,
    replicas: &[Replica],
) -> Result<(), WalkError> {
    for r in replicas {
        stage.ingress.remove_replica(group, r.addr).await?;
        stage.fleet.drain(r.addr);
    }
    Ok(())
}

/// Waits (polling the ingress) until `count` connections were accepted or sampling ended.
pub(super) async fn wait_accepted(ingress: &Ingress, count: u64, done: &CancellationToken) -> bool {
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
pub(super) async fn accepted_since(ingress: &Ingress, base: u64) -> u64 {
    ingress
        .accepted()
        .await
        .unwrap_or(base)
        .saturating_sub(base)
}
