//! The counters every ingress reports in the same shape: per replica, per gateway, and
//! how open connections ended at shutdown. The drivers fill them; the walk reads them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

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

impl GatewayShutdown {
    /// Polls `open` (the gateway's open connections) every 20 ms until none is left or
    /// `deadline` has passed: how many finished, how many are left to cut.
    pub async fn wait_for<F, Fut>(deadline: Duration, mut open: F) -> Self
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = u64>,
    {
        let before = open().await;
        let end = tokio::time::Instant::now() + deadline;
        let mut left = before;
        while left > 0 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = open().await;
        }
        GatewayShutdown {
            drained: before.saturating_sub(left),
            cut: left,
        }
    }
}
