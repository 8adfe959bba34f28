//! The rehearsal's ingress: the built-in gateway, a real HAProxy or a real Envoy, behind one interface.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::envoy::{Applied, Envoy, EnvoyError};
use super::gateway::{Gateway, GatewayError};
use super::haproxy::{Haproxy, HaproxyError};

/// Which ingress the rehearsal routes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// The built-in gateway: Envoy-like weighted random choice per new connection.
    Builtin,
    /// A real HAProxy child process (`balance random(1)`, weights set over its runtime API).
    Haproxy,
    /// A real Envoy child process, programmed by files as Istio programs its gateway.
    Envoy,
}

impl GatewayKind {
    /// The name shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Builtin => "builtin",
            GatewayKind::Haproxy => "haproxy",
            GatewayKind::Envoy => "envoy",
        }
    }
}

/// What happened to the connections routed to one replica, counted since it was first used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackendStats {
    /// The group (version) the replica was added to.
    pub group: String,
    /// The replica's address.
    pub addr: Option<SocketAddr>,
    /// Connections spliced to it.
    pub opened: u64,
    /// Spliced connections that ended cleanly (both sides closed).
    pub closed: u64,
    /// Spliced connections whose replica side failed (e.g. a reset): lost.
    pub errored: u64,
    /// Spliced connections the client aborted (reset); the gateway resets the replica
    /// side too. The rehearsal's sampler ends every connection this way.
    pub reset_by_client: u64,
    /// Spliced connections cut by the gateway's shutdown deadline: lost.
    pub cut: u64,
    /// Connects to it that failed or timed out.
    pub connect_failed: u64,
    /// Spliced connections open right now.
    pub active: u64,
}

/// A snapshot of the gateway's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GatewayStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Accepted connections whose drawn group had no replica.
    pub no_replica: u64,
    /// Accepted connections that arrived while every weight was zero.
    pub unroutable: u64,
    /// Per replica, ordered by group then address.
    pub backends: Vec<BackendStats>,
}

impl GatewayStats {
    /// Connections accepted per group, i.e. the gateway's own record of its draws.
    pub fn opened_by_group(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for b in &self.backends {
            *out.entry(b.group.clone()).or_insert(0) += b.opened + b.connect_failed;
        }
        out
    }

    /// Spliced connections that ended badly (errored or cut), over all replicas.
    pub fn lost(&self) -> u64 {
        self.backends.iter().map(|b| b.errored + b.cut).sum()
    }

    /// Spliced connections open right now, over all replicas.
    pub fn active(&self) -> u64 {
        self.backends.iter().map(|b| b.active).sum()
    }
}

/// How the open connections ended when the gateway shut down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GatewayShutdown {
    /// Connections that finished by themselves before the deadline.
    pub drained: u64,
    /// Connections still open at the deadline, cut by the gateway.
    pub cut: u64,
}

/// Why the ingress failed.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The built-in gateway failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// HAProxy failed.
    #[error(transparent)]
    Haproxy(#[from] HaproxyError),
    /// Envoy failed.
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
}

/// A running ingress.
#[derive(Debug)]
pub enum Ingress {
    /// The built-in gateway.
    Builtin(Gateway),
    /// HAProxy.
    Haproxy(Haproxy),
    /// Envoy.
    Envoy(Envoy),
}

impl Ingress {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Ingress::Builtin(g) => g.local_addr(),
            Ingress::Haproxy(h) => h.local_addr(),
            Ingress::Envoy(e) => e.local_addr(),
        }
    }

    /// Which kind this is.
    pub fn kind(&self) -> GatewayKind {
        match self {
            Ingress::Builtin(_) => GatewayKind::Builtin,
            Ingress::Haproxy(_) => GatewayKind::Haproxy,
            Ingress::Envoy(_) => GatewayKind::Envoy,
        }
    }

    /// Puts a replica into rotation in `group`.
    pub async fn add_replica(&mut self, group: &str, addr: SocketAddr) -> Result<(), IngressError> {
        match self {
            Ingress::Builtin(g) => g.add_replica(group, addr),
            Ingress::Haproxy(h) => h.add_replica(group, addr).await?,
            Ingress::Envoy(e) => e.add_replica(group, addr).await?,
        }
        Ok(())
    }

    /// Takes a replica out of rotation; its open connections go on.
    pub async fn remove_replica(
        &mut self,
        group: &str,
        addr: SocketAddr,
    ) -> Result<(), IngressError> {
        match self {
            Ingress::Builtin(g) => g.remove_replica(group, addr),
            Ingress::Haproxy(h) => h.remove_replica(group, addr).await?,
            Ingress::Envoy(e) => e.remove_replica(group, addr).await?,
        }
        Ok(())
    }

    /// Sets the groups' weights.
    pub async fn set_weights(&mut self, weights: &[(&str, u32)]) -> Result<(), IngressError> {
        match self {
            Ingress::Builtin(g) => g.set_weights(weights)?,
            Ingress::Haproxy(h) => h.set_weights(weights).await?,
            Ingress::Envoy(e) => e.set_weights(weights).await?,
        }
        Ok(())
    }

    /// Removes a whole group; its open connections go on.
    pub async fn remove_group(&mut self, group: &str) -> Result<(), IngressError> {
        match self {
            Ingress::Builtin(g) => g.remove_group(group),
            Ingress::Haproxy(h) => h.remove_group(group).await?,
            Ingress::Envoy(e) => e.remove_group(group).await?,
        }
        Ok(())
    }

    /// Connections accepted so far.
    pub async fn accepted(&self) -> Result<u64, IngressError> {
        match self {
            Ingress::Builtin(g) => Ok(g.stats().accepted),
            Ingress::Haproxy(h) => Ok(h.stats().await?.accepted),
            Ingress::Envoy(e) => Ok(e.accepted().await?),
        }
    }

    /// The ingress's counters.
    pub async fn stats(&self) -> Result<GatewayStats, IngressError> {
        match self {
            Ingress::Builtin(g) => Ok(g.stats()),
            Ingress::Haproxy(h) => Ok(h.stats().await?),
            Ingress::Envoy(e) => Ok(e.stats().await?),
        }
    }

    /// Stops accepting, lets open connections finish for up to `deadline`, then stops.
    pub async fn shutdown(self, deadline: Duration) -> GatewayShutdown {
        match self {
            Ingress::Builtin(g) => g.shutdown(deadline).await,
            Ingress::Haproxy(h) => h.shutdown(deadline).await,
            Ingress::Envoy(e) => e.shutdown(deadline).await,
        }
    }

    /// The child proxy's process id (HAProxy, Envoy), while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        match self {
            Ingress::Builtin(_) => None,
            Ingress::Haproxy(h) => h.pid(),
            Ingress::Envoy(e) => e.pid(),
        }
    }

    /// The configuration updates the ingress applied since the last call, with how long
    /// each took to take effect (Envoy's; the others apply changes synchronously).
    pub fn take_applied(&mut self) -> Vec<Applied> {
        match self {
            Ingress::Envoy(e) => e.take_applied(),
            _ => Vec::new(),
        }
    }
}
