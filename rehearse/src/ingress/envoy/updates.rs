//! Changes to a running Envoy: each one written as a resource file (LDS, CDS or one
//! cluster's EDS) and waited for in the admin stats until it is applied (or refused),
//! with how long that took recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::config::{self, ROLLOUT_CLUSTER};
use super::error::EnvoyError;
use super::{Applied, Envoy, WeightsVia};
use crate::ingress::weights::server_weights;

/// How long Envoy may take to apply one configuration file.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two polls of the admin stats while waiting for an update.
const POLL_EVERY: Duration = Duration::from_millis(2);

/// What to watch in the admin stats for one update to be applied.
struct Watch<'a> {
    /// The update's name in reports.
    what: String,
    /// The stats filter (a regular expression) that covers the names below.
    filter: &'a str,
    /// The text readout that shows the applied version.
    readout: &'a str,
    /// Counters that go up when the update is refused.
    rejected: &'a [&'a str],
    /// A gauge that must be 0 once it is applied.
    warming: Option<&'a str>,
}

impl Envoy {
    /// Declares cluster `name` (CDS) with its endpoints (EDS), if it is not there yet.
    pub(super) async fn ensure_cluster(&mut self, name: &str) -> Result<(), EnvoyError> {
        if self.clusters.iter().any(|c| c == name) {
            return Ok(());
        }
        self.clusters.push(name.to_owned());
        self.publish_endpoints(name).await?;
        let filter =
            "^cluster_manager\\.(cds\\.version_text|cds\\.update_rejected|warming_clusters)$";
        let before = self.admin.stats_matching(filter).await?;
        self.version += 1;
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|c| config::cluster_json(self.process.dir(), c))
            .collect();
        let doc = json!({"version_info": self.version.to_string(), "resources": clusters});
        let since = Instant::now();
        config::publish(self.process.dir(), "cds", &doc)?;
        let watch = Watch {
            what: "clusters".to_owned(),
            filter,
            readout: "cluster_manager.cds.version_text",
            rejected: &["cluster_manager.cds.update_rejected"],
            warming: Some("cluster_manager.warming_clusters"),
        };
        self.wait_applied(watch, since, &before).await
    }

    /// The endpoints of cluster `name` with their weights, as they should be now.
    fn endpoints_of(&self, name: &str) -> Vec<(SocketAddr, Option<u64>)> {
        let live = self.endpoints.iter().filter(|e| e.active);
        match self.via {
            WeightsVia::Listener => live
                .filter(|e| e.group == name)
                .map(|e| (e.addr, None))
                .collect(),
            WeightsVia::Endpoints => {
                let mut replicas: BTreeMap<&str, u64> = BTreeMap::new();
                for e in self.endpoints.iter().filter(|e| e.active) {
                    *replicas.entry(e.group.as_str()).or_insert(0) += 1;
                }
                let per = server_weights(&self.weights, &replicas);
                live.filter_map(|e| {
                    let w = per.get(&e.group).copied().unwrap_or(0);
                    (w > 0).then_some((e.addr, Some(w)))
                })
                .collect()
            }
        }
    }

    /// Writes the endpoints of cluster `name` (EDS) and waits until Envoy applied them.
    pub(super) async fn publish_endpoints(&mut self, name: &str) -> Result<(), EnvoyError> {
        let readout = format!("cluster.{name}.version_text");
        let rejected = format!("cluster.{name}.update_rejected");
        let filter = format!("^cluster\\.{name}\\.(version_text|update_rejected)$");
        let known = self.admin.stats_matching(&filter).await?;
        self.version += 1;
        let doc = json!({
            "version_info": self.version.to_string(),
            "resources": [config::endpoints_json(name, &self.endpoints_of(name))],
        });
        let since = Instant::now();
        config::publish(self.process.dir(), &format!("eds-{name}"), &doc)?;
        if !known.contains_key(&readout) {
            // A new cluster reads its endpoints when the clusters update adds it.
            return Ok(());
        }
        let watch = Watch {
            what: format!("endpoints of {name}"),
            filter: &filter,
            readout: &readout,
            rejected: &[&rejected],
            warming: None,
        };
        self.wait_applied(watch, since, &known).await
    }

    /// Writes the listener (LDS) for the current weights and waits until it is applied.
    pub(super) async fn publish_listener(&mut self) -> Result<(), EnvoyError> {
        let route = match self.via {
            WeightsVia::Endpoints => json!({"cluster": ROLLOUT_CLUSTER}),
            WeightsVia::Listener => {
                // Istio leaves zero-weight destinations out; one left is a plain cluster.
                let live: Vec<(&String, &u32)> =
                    self.weights.iter().filter(|(_, w)| **w > 0).collect();
                match live.as_slice() {
                    [] => return Ok(()),
                    [(name, _)] => json!({"cluster": name}),
                    many => json!({"weighted_clusters": {"clusters": many
                        .iter()
                        .map(|(n, w)| json!({"name": n, "weight": w}))
                        .collect::<Vec<_>>()}}),
                }
            }
        };
        let filter = "^listener_manager\\.(lds\\.version_text|lds\\.update_rejected|listener_create_failure|total_listeners_warming)$";
        let before = self.admin.stats_matching(filter).await?;
        self.version += 1;
        let doc = json!({
            "version_info": self.version.to_string(),
            "resources": [config::listener_json(self.addr, route)],
        });
        let since = Instant::now();
        config::publish(self.process.dir(), "lds", &doc)?;
        self.listener_written = true;
        let watch = Watch {
            what: "listener".to_owned(),
            filter,
            readout: "listener_manager.lds.version_text",
            rejected: &[
                "listener_manager.lds.update_rejected",
                "listener_manager.listener_create_failure",
            ],
            warming: Some("listener_manager.total_listeners_warming"),
        };
        self.wait_applied(watch, since, &before).await
    }

    /// Publishes the weights when they changed from `before` (or no listener exists yet).
    pub(super) async fn apply_weights(
        &mut self,
        before: BTreeMap<String, u32>,
    ) -> Result<(), EnvoyError> {
        // An unchanged listener is no update at all in Envoy: write only real changes.
        if before == self.weights && self.listener_written {
            return Ok(());
        }
        match self.via {
            WeightsVia::Listener => self.publish_listener().await,
            WeightsVia::Endpoints => {
                self.publish_endpoints(ROLLOUT_CLUSTER).await?;
                if !self.listener_written {
                    self.publish_listener().await?;
                }
                Ok(())
            }
        }
    }

    /// Waits until the stats show the current version in `w.readout` (and nothing
    /// warming), or a rejection counter moved from `before`; records how long it took.
    async fn wait_applied(
        &mut self,
        w: Watch<'_>,
        since: Instant,
        before: &BTreeMap<String, String>,
    ) -> Result<(), EnvoyError> {
        let Watch {
            what,
            filter,
            readout,
            rejected,
            warming,
        } = w;
        let want = self.version.to_string();
        loop {
            let stats = self.admin.stats_matching(filter).await?;
            for r in rejected {
                if stats.get(*r) != before.get(*r) && stats.contains_key(*r) {
                    return Err(EnvoyError::Apply {
                        what,
                        why: format!("{r} went up{}", self.process.last_words()),
                    });
                }
            }
            let done = stats.get(readout) == Some(&want)
                && warming.is_none_or(|w| stats.get(w).is_none_or(|v| v == "0"));
            if done {
                self.applied.push(Applied {
                    what,
                    seconds: since.elapsed().as_secs_f64(),
                });
                return Ok(());
            }
            if since.elapsed() > APPLY_TIMEOUT {
                return Err(EnvoyError::Apply {
                    what,
                    why: format!(
                        "not applied after {APPLY_TIMEOUT:?}{}",
                        self.process.last_words()
                    ),
                });
            }
            if let Some(status) = self.process.exited() {
                return Err(EnvoyError::Apply {
                    what,
                    why: format!("envoy exited ({status}){}", self.process.last_words()),
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}
