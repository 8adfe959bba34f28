//! A real Envoy as the rehearsal's ingress, programmed the way Istio programs its gateway.
//!
//! Envoy runs as a child process (under [`crate::supervisor`], so it dies with the
//! checker however the checker ends) with a bootstrap written to a private temporary
//! directory: the admin interface on a loopback port, the listener delivered by
//! file-based LDS, clusters by file-based CDS and their endpoints by file-based EDS.
//! Each resource file sits alone in a watched directory and is replaced by an atomic
//! rename (Envoy ignores a file rewritten in place); after every change the driver
//! polls the admin stats until the new version is applied and records how long that took.
//!
//! Two ways to carry the weights ([`WeightsVia`]):
//! - `listener` (Istio's way for a TCP route): one cluster per group and a `tcp_proxy`
//!   with `weighted_clusters` in the listener, so each weight step is a listener update.
//!   Envoy then drains the connections of the old filter chain and closes every one of
//!   them when `--drain-time-s` runs out.
//! - `endpoints` (a replica-ratio canary): one cluster holding every replica, the
//!   weights carried by the endpoints' `load_balancing_weight`; the listener never
//!   changes, so open connections stay.
//!
//! Envoy's log goes to `envoy.log` in the directory; when Envoy fails, the error carries
//! its last lines.
//!
//! The driver's parts, one job each: `config` writes the files (their JSON and atomic
//! replacement), `admin` asks the admin interface, `process` runs Envoy and reads its
//! log, and `updates` turns a change into files and waits until it is applied; this
//! module holds the driver's operations.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

mod admin;
mod config;
mod error;
mod process;
mod updates;

use super::stats::{BackendStats, GatewayShutdown, GatewayStats};
use admin::Admin;
use config::ROLLOUT_CLUSTER;
pub use error::EnvoyError;
use error::io;
pub use process::LOG_LINES;
use process::Process;

/// The default drain time: Istio starts its proxies with `--drain-time-s 45`.
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(45);

/// Where the rehearsal puts the weights in Envoy's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightsVia {
    /// `tcp_proxy.weighted_clusters` in the listener, as Istio programs a TCP route.
    Listener,
    /// Endpoint `load_balancing_weight`s in one cluster: a replica-ratio canary.
    Endpoints,
}

impl WeightsVia {
    /// The name shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightsVia::Listener => "listener",
            WeightsVia::Endpoints => "endpoints",
        }
    }
}

/// How to run Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyOptions {
    /// The Envoy binary.
    pub binary: String,
    /// `--drain-time-s` (whole seconds, rounded up).
    pub drain_time: Duration,
    /// Where the weights go.
    pub weights_via: WeightsVia,
    /// The admin port (0: a free one).
    pub admin_port: u16,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        Self {
            binary: "envoy".to_owned(),
            drain_time: DEFAULT_DRAIN_TIME,
            weights_via: WeightsVia::Listener,
            admin_port: 0,
        }
    }
}

impl EnvoyOptions {
    /// The drain time Envoy is given: whole seconds, rounded up.
    pub fn drain_secs(&self) -> u64 {
        self.drain_time.as_secs() + u64::from(self.drain_time.subsec_nanos() > 0)
    }
}

/// One configuration update, and how long Envoy took to apply it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    /// Which resource changed: `listener`, `clusters` or `endpoints of NAME`.
    pub what: String,
    /// Seconds from the rename of the file to the admin stats showing the new version.
    pub seconds: f64,
}

/// One replica as Envoy knows it: its group, its address, and whether it is in rotation.
#[derive(Debug, Clone)]
struct Endpoint {
    group: String,
    addr: SocketAddr,
    active: bool,
}

/// A running Envoy child; dropping it stops the process and removes its directory.
#[derive(Debug)]
pub struct Envoy {
    process: Process,
    admin: Admin,
    addr: SocketAddr,
    via: WeightsVia,
    version: u64,
    endpoints: Vec<Endpoint>,
    weights: BTreeMap<String, u32>,
    clusters: Vec<String>,
    listener_written: bool,
    applied: Vec<Applied>,
}

impl Envoy {
    /// Starts Envoy with `options` and waits until its admin interface answers.
    pub async fn start(options: &EnvoyOptions) -> Result<Self, EnvoyError> {
        let mut last = None;
        // Free ports are found by binding port 0 and releasing them; another process may
        // take one in between, so a failed start on ports of our choice is retried.
        let tries = if options.admin_port == 0 { 3 } else { 1 };
        for _ in 0..tries {
            match Self::start_once(options).await {
                Ok(e) => return Ok(e),
                Err(e @ EnvoyError::Start(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| EnvoyError::Start("no attempt was made".to_owned())))
    }

    async fn start_once(options: &EnvoyOptions) -> Result<Self, EnvoyError> {
        let free = || {
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(io("finding a free port"))
        };
        let admin_port = match options.admin_port {
            0 => free()?,
            p => p,
        };
        let admin = Admin {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port)),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free()?));
        let mut process = Process::spawn(&options.binary, options.drain_secs(), admin.addr)?;
        process.wait_ready(&admin, &options.binary).await?;
        let mut envoy = Self {
            process,
            admin,
            addr,
            via: options.weights_via,
            version: 0,
            endpoints: Vec::new(),
            weights: BTreeMap::new(),
            clusters: Vec::new(),
            listener_written: false,
            applied: Vec::new(),
        };
        if envoy.via == WeightsVia::Endpoints {
            envoy.ensure_cluster(ROLLOUT_CLUSTER).await?;
        }
        Ok(envoy)
    }

    /// The listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin interface's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.addr
    }

    /// Envoy's process id, while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        self.process.pid()
    }

    /// The updates applied since the last call, with how long each took.
    pub fn take_applied(&mut self) -> Vec<Applied> {
        std::mem::take(&mut self.applied)
    }

    /// Puts a replica into rotation in `group` (an endpoints update).
    pub async fn add_replica(&mut self, group: &str, addr: SocketAddr) -> Result<(), EnvoyError> {
        self.endpoints.push(Endpoint {
            group: group.to_owned(),
            addr,
            active: true,
        });
        self.weights.entry(group.to_owned()).or_insert(0);
        match self.via {
            WeightsVia::Listener => {
                if self.clusters.iter().any(|c| c == group) {
                    self.publish_endpoints(group).await
                } else {
                    self.ensure_cluster(group).await
                }
            }
            WeightsVia::Endpoints => self.publish_endpoints(ROLLOUT_CLUSTER).await,
        }
    }

    /// Takes a replica out of rotation (an endpoints update); its open connections go on.
    pub async fn remove_replica(
        &mut self,
        group: &str,
        addr: SocketAddr,
    ) -> Result<(), EnvoyError> {
        let mut changed = false;
        for e in &mut self.endpoints {
            if e.active && e.group == group && e.addr == addr {
                e.active = false;
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        match self.via {
            WeightsVia::Listener => self.publish_endpoints(group).await,
            WeightsVia::Endpoints => self.publish_endpoints(ROLLOUT_CLUSTER).await,
        }
    }

    /// Sets the weights of the named groups (a listener or an endpoints update).
    pub async fn set_weights(&mut self, weights: &[(&str, u32)]) -> Result<(), EnvoyError> {
        let before = self.weights.clone();
        for (group, w) in weights {
            self.weights.insert((*group).to_owned(), *w);
        }
        self.apply_weights(before).await
    }

    /// Takes a whole group out: its weight and its endpoints; open connections go on.
    pub async fn remove_group(&mut self, group: &str) -> Result<(), EnvoyError> {
        let before = self.weights.clone();
        self.weights.remove(group);
        for e in &mut self.endpoints {
            if e.group == group {
                e.active = false;
            }
        }
        if self.via == WeightsVia::Listener && self.clusters.iter().any(|c| c == group) {
            self.apply_weights(before).await?;
            return self.publish_endpoints(group).await;
        }
        self.apply_weights(before).await
    }

    /// Connections the listener accepted so far.
    pub async fn accepted(&self) -> Result<u64, EnvoyError> {
        self.admin
            .listener_stat(self.addr, "downstream_cx_total")
            .await
    }

    /// Per-replica counters from `/clusters` and the listener's accepted connections.
    pub async fn stats(&self) -> Result<GatewayStats, EnvoyError> {
        let body = self.admin.get("/clusters").await?;
        let mut per: BTreeMap<SocketAddr, BTreeMap<String, u64>> = BTreeMap::new();
        for line in body.lines() {
            let mut f = line.split("::");
            let (Some(_cluster), Some(addr), Some(name), Some(value)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let (Ok(addr), Ok(value)) = (addr.parse::<SocketAddr>(), value.parse::<u64>()) else {
                continue;
            };
            *per.entry(addr)
                .or_default()
                .entry(name.to_owned())
                .or_insert(0) += value;
        }
        let mut stats = GatewayStats {
            accepted: self.accepted().await?,
            ..GatewayStats::default()
        };
        for e in &self.endpoints {
            let Some(c) = per.get(&e.addr) else { continue };
            let get = |k: &str| c.get(k).copied().unwrap_or(0);
            let (opened, active, failed) =
                (get("cx_total"), get("cx_active"), get("cx_connect_fail"));
            stats.backends.push(BackendStats {
                group: e.group.clone(),
                addr: Some(e.addr),
                opened,
                closed: opened.saturating_sub(active + failed),
                errored: 0,
                reset_by_client: 0,
                cut: 0,
                connect_failed: failed,
                active,
            });
        }
        Ok(stats)
    }

    /// Waits up to `deadline` for the listener's open connections to end, then stops Envoy.
    pub async fn shutdown(self, deadline: Duration) -> GatewayShutdown {
        let this = &self;
        let open = move || async move {
            let active = this.admin.listener_stat(this.addr, "downstream_cx_active");
            active.await.unwrap_or(0)
        };
        // Envoy stops when `self` is dropped here (its supervisor, then its directory).
        GatewayShutdown::wait_for(deadline, open).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_time_rounds_up_to_whole_seconds() {
        let mut o = EnvoyOptions::default();
        assert_eq!(o.drain_secs(), 45);
        o.drain_time = Duration::from_millis(1500);
        assert_eq!(o.drain_secs(), 2);
        o.drain_time = Duration::ZERO;
        assert_eq!(o.drain_secs(), 0);
    }
}
