//! The rehearsal's ingress: the built-in gateway, a real HAProxy or a real Envoy, behind one interface.
//!
//! This module holds the interface (the [`Ingress`] enum dispatching to a driver) and
//! nothing the drivers need: they sit below it, one module each ([`builtin`],
//! [`haproxy`], [`envoy`]), and share only what lies below them too: the counters they
//! report ([`stats`]) and the split of group weights over servers (`weights`).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

pub mod builtin;
pub mod envoy;
pub mod haproxy;
pub mod stats;
mod weights;

use builtin::{Gateway, GatewayError};
use envoy::{Applied, Envoy, EnvoyError};
use haproxy::{Haproxy, HaproxyError};
pub use stats::{BackendStats, GatewayShutdown, GatewayStats};

use crate::setting::Names;

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
    /// Whether its split differs from run to run: HAProxy and Envoy draw a version at
    /// random for each connection with their own generators; the built-in gateway draws
    /// from `--seed`, the same split for the same seed.
    pub fn draws_unseeded(self) -> bool {
        matches!(self, GatewayKind::Haproxy | GatewayKind::Envoy)
    }

    /// The name shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Builtin => "builtin",
            GatewayKind::Haproxy => "haproxy",
            GatewayKind::Envoy => "envoy",
        }
    }
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

impl IngressError {
    /// The error as one sentence, naming the settings as `names` does (a binary: its flags).
    pub fn message(&self, names: Names) -> String {
        match self {
            IngressError::Gateway(e) => e.to_string(),
            IngressError::Haproxy(e) => e.message(names),
            IngressError::Envoy(e) => e.message(names),
        }
    }
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
