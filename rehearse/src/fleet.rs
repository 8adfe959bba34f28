//! The rehearsal's "Deployments": in-process echo servers, one per replica.
//!
//! A replica is started on a free loopback port, drained like a Kubernetes pod on
//! SIGTERM ([`Fleet::drain`]: it keeps serving its open connections until they close
//! or the grace period ends), or killed like a crashed pod ([`Fleet::kill`]). Dropping
//! the fleet aborts every replica still running, so nothing outlives the rehearsal.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use echo_server::{Config, Server, ServerHandle, ShutdownReport};
use serde::Serialize;
use tokio::task::JoinHandle;

/// How long a draining replica keeps accepting after its shutdown starts; the walk
/// takes it out of the gateway first, so no new connection arrives anyway.
pub const DRAIN_DELAY: Duration = Duration::from_millis(50);

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start a {version:?} replica: {source}")]
pub struct FleetError {
    /// The version of the replica.
    pub version: String,
    /// The echo server's reason.
    pub source: echo_server::Error,
}

/// One running replica.
#[derive(Debug, Clone)]
pub struct Replica {
    /// A stable name for reports, e.g. `one-2`.
    pub name: String,
    /// The version it answers with.
    pub version: String,
    /// The gateway group it belongs to (`stable` or `canary`).
    pub group: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// What happened to the replicas that were stopped, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DrainTotals {
    /// Replicas stopped gracefully.
    pub replicas: u64,
    /// Connections that finished on their own during the drains.
    pub drained: u64,
    /// Connections cut at a drain deadline: lost.
    pub cut: u64,
}

struct Running {
    replica: Replica,
    handle: ServerHandle,
    task: JoinHandle<Result<ShutdownReport, echo_server::Error>>,
}

/// Every replica of the rehearsal, running or draining.
pub struct Fleet {
    grace: Duration,
    running: Vec<Running>,
    draining: Vec<Running>,
    per_version: std::collections::BTreeMap<String, u64>,
    /// When replicas ended connections themselves (killed, or a drain's deadline), by version.
    ends: Vec<(String, tokio::time::Instant)>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("running", &self.running.len())
            .field("draining", &self.draining.len())
            .finish()
    }
}

impl Fleet {
    /// An empty fleet whose drains cut open connections after `grace`.
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            running: Vec::new(),
            draining: Vec::new(),
            per_version: std::collections::BTreeMap::new(),
            ends: Vec::new(),
        }
    }

    /// Starts one replica of `version` for `group` on a free loopback port.
    pub async fn start(&mut self, version: &str, group: &str) -> Result<Replica, FleetError> {
        let mut config = Config::new(vec![0], version.to_owned());
        config.listen = Ipv4Addr::LOCALHOST.into();
        config.admin_port = None;
        config.drain_delay = DRAIN_DELAY;
        config.shutdown_timeout = self.grace;
        let server = Server::bind(config).await.map_err(|source| FleetError {
            version: version.to_owned(),
            source,
        })?;
        let Some(addr) = server.local_addrs().first().copied() else {
            return Err(FleetError {
                version: version.to_owned(),
                source: echo_server::Error::Bind {
                    addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    source: std::io::Error::other("the server reported no address"),
                },
            });
        };
        let index = {
            let n = self.per_version.entry(version.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        let replica = Replica {
            name: format!("{version}-{index}"),
            version: version.to_owned(),
            group: group.to_owned(),
            addr,
        };
        let handle = server.handle();
        let task = tokio::spawn(server.run());
        self.running.push(Running {
            replica: replica.clone(),
            handle,
            task,
        });
        Ok(replica)
    }

    /// The running replicas of one group.
    pub fn group(&self, group: &str) -> Vec<Replica> {
        self.running
            .iter()
            .filter(|r| r.replica.group == group)
            .map(|r| r.replica.clone())
            .collect()
    }

    /// Starts a graceful stop: the replica serves its open connections until they close
    /// or the grace period ends. Take it out of the gateway first.
    pub fn drain(&mut self, addr: SocketAddr) {
        if let Some(pos) = self.running.iter().position(|r| r.replica.addr == addr) {
            let r = self.running.remove(pos);
            r.handle.shutdown();
            let deadline = tokio::time::Instant::now() + DRAIN_DELAY + self.grace;
            self.ends.push((r.replica.version.clone(), deadline));
            self.draining.push(r);
        }
    }

    /// Kills a replica at once, cutting its connections (a crashed pod).
    pub fn kill(&mut self, addr: SocketAddr) -> Option<Replica> {
        let pos = self.running.iter().position(|r| r.replica.addr == addr)?;
        let r = self.running.remove(pos);
        r.handle.abort();
        let replica = r.replica.clone();
        self.ends
            .push((replica.version.clone(), tokio::time::Instant::now()));
        // Its report says "aborted"; nobody waits for it, Drop reaps nothing left.
        r.task.abort();
        Some(replica)
    }

    /// Whether a replica of `version` ended connections itself (killed, or cut at its
    /// drain deadline) within `window` of `at`: a held connection of that version lost
    /// then is a loss at the servers, not a cut by the gateway.
    pub fn ended_near(&self, version: &str, at: tokio::time::Instant, window: Duration) -> bool {
        self.ends
            .iter()
            .any(|(v, t)| v == version && *t <= at + window && at <= *t + window)
    }

    /// Open connections on the replicas that are draining now.
    pub fn draining_connections(&self) -> u64 {
        self.draining
            .iter()
            .map(|r| r.handle.active_connections())
            .sum()
    }

    /// Waits for every draining replica to finish and sums what their drains did.
    pub async fn finish_drains(&mut self) -> DrainTotals {
        let mut totals = DrainTotals::default();
        for r in self.draining.drain(..) {
            totals.replicas += 1;
            match r.task.await {
                Ok(Ok(report)) => {
                    totals.drained += report.drained;
                    totals.cut += report.cut;
                }
                // A replica whose task failed lost whatever it held.
                _ => totals.cut += r.handle.active_connections(),
            }
        }
        totals
    }

    /// Drains every running replica and waits for all drains (the end of a rehearsal).
    pub async fn stop_all(&mut self) -> DrainTotals {
        let addrs: Vec<SocketAddr> = self.running.iter().map(|r| r.replica.addr).collect();
        for addr in addrs {
            self.drain(addr);
        }
        self.finish_drains().await
    }

    /// Kills every replica at once (an interrupted rehearsal) and waits until they are gone.
    pub async fn abort_all(&mut self) {
        for r in self.running.drain(..).chain(self.draining.drain(..)) {
            r.handle.abort();
            let _ = r.task.await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for r in self.running.iter().chain(self.draining.iter()) {
            r.handle.abort();
            r.task.abort();
        }
    }
}
