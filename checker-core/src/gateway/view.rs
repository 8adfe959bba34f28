//! The gateway's view of one check, as `verify --gateway-admin` / `--config-dump` and
//! `observe` take it: what each gateway was told for the route's port (its admin's
//! `/config_dump`, or a saved dump), each cluster mapped to a version and the weights set
//! against the intent exactly; waiting until the gateways are programmed as expected
//! (`--settle`); and their counters read around the counted samples, set against the
//! checker's own tally.
//!
//! Plain data in and out; the judgement is [`crate::verdict::judgement::judge_gateway`],
//! the words are the report crate's.

use std::collections::BTreeMap;
use std::time::Duration;

use manifests::Derivation;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config_dump::{self, ChainChoice, ConfigDump, ConfigDumpError, ProgrammedRoute};
use super::counters::{Delta, Reset, SourceDelta};
use super::fetch::{self, FetchError, Limits};
use super::input::MAX_CONFIG_DUMP_BYTES;
use super::layers::{self, CrossCheck, IntentVsProgrammed};
use super::mapping::{self, MapError, VersionMap};
use super::observe::{CounterSource, Look, ObserveError, Observer, Sources};
use crate::exit;
use crate::expect::Expectation;

/// How often `--settle` asks the admins what they were told.
pub const SETTLE_POLL: Duration = Duration::from_millis(500);

/// A config dump read from a file or standard input.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedDump {
    /// Where it was read (`-` for standard input).
    pub name: String,
    /// Its listeners.
    pub dump: ConfigDump,
}

/// Where the gateway's view comes from, and how to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Envoy admin URLs, one per gateway pod: their `/config_dump` and `/stats`.
    pub admins: Vec<String>,
    /// A saved config dump (`--config-dump`), read already.
    pub dump: Option<SavedDump>,
    /// The listener's port.
    pub port: u32,
    /// Which filter chain of the listener.
    pub chain: ChainChoice,
    /// `CLUSTER_OR_SUBSET=VERSION` mappings given by hand.
    pub overrides: BTreeMap<String, String>,
    /// The manifests' derivation (`--expect-from`): the intent, and the cluster mapping.
    pub derivation: Option<Derivation>,
    /// The bounds of each admin request.
    pub limits: Limits,
}

/// Why the gateway's view could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// An admin did not answer (or not usably).
    #[error("cannot read what the gateway was told: {0}")]
    Fetch(#[from] FetchError),
    /// A config dump holds no usable route for the port.
    #[error("{source_name}: {error}")]
    Dump {
        /// The admin URL or file.
        source_name: String,
        /// Why.
        error: ConfigDumpError,
    },
    /// A programmed cluster has no version.
    #[error("{source_name}: {error}")]
    Map {
        /// The admin URL or file.
        source_name: String,
        /// Why.
        error: MapError,
    },
    /// The counters could not be read.
    #[error("cannot read the gateway's counters: {0}")]
    Counters(#[from] ObserveError),
}

impl ViewError {
    /// The exit code: 4 when a gateway did not answer (as an unreachable target), 2 when
    /// the input (a dump, a mapping, a URL) is not usable.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Fetch(FetchError::InvalidUrl { .. }) => exit::USAGE,
            Self::Fetch(_) => exit::ERRORS,
            Self::Counters(e) => observe_exit_code(e),
            Self::Dump { .. } | Self::Map { .. } => exit::USAGE,
        }
    }
}

/// The exit code of an observation that could not be made: 4 when a source did not
/// answer or answered unusably, 2 for what was given (a URL, a mapping).
pub fn observe_exit_code(e: &ObserveError) -> i32 {
    match e {
        ObserveError::Fetch(FetchError::InvalidUrl { .. })
        | ObserveError::NoSource
        | ObserveError::NoClusters { .. }
        | ObserveError::Map(_) => exit::USAGE,
        ObserveError::Prometheus(super::prometheus::PrometheusError::Fetch(
            FetchError::InvalidUrl { .. },
        )) => exit::USAGE,
        _ => exit::ERRORS,
    }
}

/// One programmed cluster: its weight and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgrammedCluster {
    /// The cluster name.
    pub name: String,
    /// Its weight as programmed.
    pub weight: u64,
    /// The version it was mapped to.
    pub version: String,
    /// Where the version came from.
    pub from: String,
}

/// One version's programmed weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgrammedVersion {
    /// The version.
    pub name: String,
    /// Its clusters' weights added up.
    pub weight: u64,
    /// Over the listener's total.
    pub share: f64,
}

/// What one gateway was told for the port: the programmed layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgrammedLayer {
    /// The admin URL, or the dump's file name.
    pub source: String,
    /// The listener's name.
    pub listener: String,
    /// The control plane's version of the listener (`version_info`), when shown.
    pub version_info: Option<String>,
    /// When the listener was applied (`last_updated`), when shown.
    pub last_updated: Option<String>,
    /// The filter chain read, described.
    pub chain: String,
    /// Every cluster of the chain's `tcp_proxy`, in order.
    pub clusters: Vec<ProgrammedCluster>,
    /// The weights per version, in cluster order.
    pub versions: Vec<ProgrammedVersion>,
    /// Whether every version's share is exactly the intent's.
    pub agrees: bool,
    /// With manifests: the comparison destination by destination, one sentence per difference.
    pub destinations: Option<IntentVsProgrammed>,
}

impl ProgrammedLayer {
    /// The programmed split as an expectation (to judge traffic against what the gateway
    /// was told); `None` when every weight is zero.
    pub fn expectation(&self) -> Option<Expectation> {
        Expectation::new(
            self.versions
                .iter()
                .map(|v| (v.name.clone(), v.weight as f64)),
        )
        .ok()
    }
}

/// One version of the intent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentVersion {
    /// The version.
    pub name: String,
    /// Its weight as given (or derived).
    pub weight: f64,
    /// Over the total.
    pub share: f64,
}

/// What the gateways should have been told: the manifests' split, or the expectation given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    /// `manifests` (`--expect-from`) or `expectation` (`--expect`).
    pub from: IntentSource,
    /// The manifests' route (`VirtualService/tcp-echo spec.tcp[0]`), with manifests.
    pub route: Option<String>,
    /// Every version, in the expectation's order.
    pub versions: Vec<IntentVersion>,
}

/// Where the intent comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentSource {
    /// The manifests (`--expect-from`).
    Manifests,
    /// The expectation typed by hand (`--expect`).
    Expectation,
}

impl Intent {
    /// The intent of `expect`, derived from `derivation` when given.
    pub fn of(expect: &Expectation, derivation: Option<&Derivation>) -> Self {
        Self {
            from: if derivation.is_some() {
                IntentSource::Manifests
            } else {
                IntentSource::Expectation
            },
            route: derivation.map(|d| d.route.clone()),
            versions: expect
                .versions()
                .iter()
                .map(|v| IntentVersion {
                    name: v.name.clone(),
                    weight: v.weight,
                    share: v.share,
                })
                .collect(),
        }
    }
}

/// Whether `programmed` gives every version exactly the share `expect` gives it (a
/// version absent on one side has share 0 there). Weights are integers on the gateway,
/// so this is a comparison, not a test: shares are equal to within rounding.
pub fn agrees(programmed: &[ProgrammedVersion], expect: &Expectation) -> bool {
    const ROUNDING: f64 = 1e-9;
    let programmed_share = |name: &str| {
        programmed
            .iter()
            .filter(|v| v.name == name)
            .map(|v| v.share)
            .sum::<f64>()
    };
    let expected = expect
        .versions()
        .iter()
        .all(|v| (v.share - programmed_share(&v.name)).abs() <= ROUNDING);
    let nothing_else = programmed
        .iter()
        .all(|v| expect.share_of(&v.name).is_some() || v.share <= ROUNDING);
    expected && nothing_else
}

/// The programmed layer of `route` (read from `source`), its clusters mapped by `config`.
pub fn layer_of(
    source: &str,
    route: &ProgrammedRoute,
    config: &GatewayConfig,
    expect: &Expectation,
) -> Result<ProgrammedLayer, ViewError> {
    let map = map_route(source, route, config)?;
    let mut clusters = Vec::with_capacity(route.clusters.len());
    for c in &route.clusters {
        let mapped = &map.clusters[&c.name];
        clusters.push(ProgrammedCluster {
            name: c.name.clone(),
            weight: c.weight,
            version: mapped.version.clone(),
            from: mapped.from.clone(),
        });
    }
    let total = route.total_weight();
    let mut versions: Vec<ProgrammedVersion> = Vec::new();
    for c in &clusters {
        match versions.iter_mut().find(|v| v.name == c.version) {
            Some(v) => v.weight = v.weight.saturating_add(c.weight),
            None => versions.push(ProgrammedVersion {
                name: c.version.clone(),
                weight: c.weight,
                share: 0.0,
            }),
        }
    }
    for v in &mut versions {
        v.share = if total == 0 {
            0.0
        } else {
            v.weight as f64 / total as f64
        };
    }
    Ok(ProgrammedLayer {
        source: source.to_owned(),
        listener: route.listener.clone(),
        version_info: route.version_info.clone(),
        last_updated: route.last_updated.clone(),
        chain: route.chain.clone(),
        agrees: agrees(&versions, expect),
        clusters,
        versions,
        destinations: config
            .derivation
            .as_ref()
            .map(|d| layers::compare(d, route)),
    })
}

/// The clusters of `route` mapped to versions by `config`'s overrides and manifests.
fn map_route(
    source: &str,
    route: &ProgrammedRoute,
    config: &GatewayConfig,
) -> Result<VersionMap, ViewError> {
    mapping::map_clusters(
        route.clusters.iter().map(|c| c.name.as_str()),
        config.derivation.as_ref(),
        &config.overrides,
    )
    .map_err(|error| ViewError::Map {
        source_name: source.to_owned(),
        error,
    })
}

/// The route `dump` (read from `source`) programs for `config`'s port and chain.
pub fn route_of(
    source: &str,
    dump: &ConfigDump,
    config: &GatewayConfig,
) -> Result<ProgrammedRoute, ViewError> {
    dump.route(config.port, &config.chain)
        .map_err(|error| ViewError::Dump {
            source_name: source.to_owned(),
            error,
        })
}

/// Reads an admin's `/config_dump`.
pub async fn fetch_dump(admin: &str, limits: Limits) -> Result<ConfigDump, ViewError> {
    let body = fetch::get(
        &fetch::join(admin, "/config_dump"),
        Limits {
            max_bytes: limits.max_bytes.max(MAX_CONFIG_DUMP_BYTES),
            ..limits
        },
    )
    .await?;
    config_dump::parse(&body).map_err(|error| ViewError::Dump {
        source_name: fetch::join(admin, "/config_dump"),
        error,
    })
}

/// The routes every source programs for the port: each admin's, then the saved dump's.
pub async fn read_routes(
    config: &GatewayConfig,
) -> Result<Vec<(String, ProgrammedRoute)>, ViewError> {
    let mut out = Vec::with_capacity(config.admins.len() + 1);
    for admin in &config.admins {
        let dump = fetch_dump(admin, config.limits).await?;
        out.push((admin.clone(), route_of(admin, &dump, config)?));
    }
    if let Some(saved) = &config.dump {
        out.push((
            saved.name.clone(),
            route_of(&saved.name, &saved.dump, config)?,
        ));
    }
    Ok(out)
}

/// The programmed layer of every source, set against `expect`.
pub async fn read_programmed(
    config: &GatewayConfig,
    expect: &Expectation,
) -> Result<Vec<ProgrammedLayer>, ViewError> {
    read_routes(config)
        .await?
        .iter()
        .map(|(source, route)| layer_of(source, route, config, expect))
        .collect()
}

/// Every cluster of `layers` with its version: what the counters are read for.
pub fn version_map(layers: &[ProgrammedLayer]) -> VersionMap {
    let mut map = VersionMap::default();
    for c in layers.iter().flat_map(|l| &l.clusters) {
        map.clusters
            .entry(c.name.clone())
            .or_insert_with(|| mapping::ClusterVersion {
                cluster: c.name.clone(),
                version: c.version.clone(),
                from: c.from.clone(),
            });
    }
    map
}

/// How waiting for the gateways to be programmed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgrammedSettleEnd {
    /// Every gateway was programmed as expected.
    Programmed,
    /// Not before the timeout.
    TimedOut,
    /// The stop signal arrived.
    Interrupted,
}

/// What waiting for the gateways to be programmed did (`--settle` with `--gateway-admin`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgrammedSettle {
    /// The timeout, seconds.
    pub timeout_s: f64,
    /// From the first ask until every gateway was programmed as expected (or the end), seconds.
    pub elapsed_s: f64,
    /// How many times every admin was asked.
    pub polls: u32,
    /// How it ended.
    pub end: ProgrammedSettleEnd,
}

/// Asks every admin what it was told, every [`SETTLE_POLL`], until each is programmed
/// as `expect` says, `timeout` passes or `stop` fires; the last layers read and what
/// the wait did.
pub async fn settle_programmed(
    config: &GatewayConfig,
    expect: &Expectation,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(ProgrammedSettle, Vec<ProgrammedLayer>), ViewError> {
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        let layers = read_programmed(config, expect).await?;
        polls = polls.saturating_add(1);
        let end = if layers.iter().all(|l| l.agrees) {
            Some(ProgrammedSettleEnd::Programmed)
        } else if stop.is_cancelled() {
            Some(ProgrammedSettleEnd::Interrupted)
        } else if start.elapsed() >= timeout {
            Some(ProgrammedSettleEnd::TimedOut)
        } else {
            None
        };
        if let Some(end) = end {
            let settled = ProgrammedSettle {
                timeout_s: timeout.as_secs_f64(),
                elapsed_s: start.elapsed().as_secs_f64(),
                polls,
                end,
            };
            return Ok((settled, layers));
        }
        let next = SETTLE_POLL.min(timeout.saturating_sub(start.elapsed()));
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// What the gateways counted while the checker sampled, set against its tally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayCounters {
    /// Per admin: the counters' increase per cluster, and resets.
    pub sources: Vec<SourceDelta>,
    /// Per version, every admin added up.
    pub versions: BTreeMap<String, Delta>,
    /// Every counter that went down (a gateway restarted).
    pub resets: Vec<Reset>,
    /// The gateway's count per version beside the checker's.
    pub cross_check: CrossCheck,
}

/// Reads the counters of the clusters in `layers` at every admin: the start of the window.
pub async fn start_counters(
    config: &GatewayConfig,
    layers: &[ProgrammedLayer],
) -> Result<Option<Observer>, ViewError> {
    if config.admins.is_empty() {
        return Ok(None);
    }
    let sources = Sources {
        sources: config
            .admins
            .iter()
            .map(|url| CounterSource::EnvoyAdmin { url: url.clone() })
            .collect(),
        clusters: version_map(layers),
        label_overrides: BTreeMap::new(),
        limits: config.limits,
    };
    Ok(Some(Observer::start(sources).await?))
}

/// What the checker did with its connections, for the cross-check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckerConnections {
    /// Connections attributed to each version.
    pub judged: Vec<(String, u64)>,
    /// Connections established and finished without a version (failed after connecting,
    /// or finished after a sequential verdict was reached).
    pub opened_not_judged: u64,
    /// Samples abandoned in flight by the stop: each may or may not have reached the gateway.
    pub in_flight: u64,
}

/// The gateways' counts since [`start_counters`], set against the checker's.
pub fn counters_of(look: &Look, checker: &CheckerConnections) -> GatewayCounters {
    let gateway = look.counts.opened();
    GatewayCounters {
        sources: look.sources.clone(),
        versions: look.counts.versions.clone(),
        resets: look.counts.resets.clone(),
        cross_check: layers::cross_check(
            &gateway,
            &checker.judged,
            checker.opened_not_judged,
            checker.in_flight,
        ),
    }
}

/// The gateway's view of a verification, for the report and the judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayView {
    /// The listener's port.
    pub port: u32,
    /// What the gateways should have been told.
    pub intent: Intent,
    /// What each gateway was told (the last read: after settling, before counting).
    pub programmed: Vec<ProgrammedLayer>,
    /// Waiting for the gateways to be programmed (`--settle` with admins).
    pub settle: Option<ProgrammedSettle>,
    /// The gateways' counters around the counted samples (with admins).
    pub counters: Option<GatewayCounters>,
    /// Why the counters could not be read after sampling, if so (the verdict stands).
    pub counters_error: Option<String>,
}

impl GatewayView {
    /// Whether every gateway was told exactly the intent.
    pub fn programmed_as_intended(&self) -> bool {
        self.programmed.iter().all(|l| l.agrees)
    }

    /// The first gateway told something else, if any.
    pub fn first_disagreeing(&self) -> Option<&ProgrammedLayer> {
        self.programmed.iter().find(|l| !l.agrees)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(pairs: &[(&str, u64)]) -> Vec<ProgrammedVersion> {
        let total: u64 = pairs.iter().map(|p| p.1).sum();
        pairs
            .iter()
            .map(|&(n, w)| ProgrammedVersion {
                name: n.to_owned(),
                weight: w,
                share: w as f64 / total as f64,
            })
            .collect()
    }

    #[test]
    fn agreement_is_the_same_shares_whatever_the_scale() {
        let e: Expectation = "one=90,two=10".parse().unwrap();
        assert!(agrees(&versions(&[("one", 9), ("two", 1)]), &e));
        assert!(agrees(&versions(&[("one", 900), ("two", 100)]), &e));
        assert!(!agrees(&versions(&[("one", 80), ("two", 20)]), &e));
        assert!(!agrees(&versions(&[("one", 100)]), &e));
        assert!(!agrees(&versions(&[("one", 90), ("three", 10)]), &e));
        // Istio leaves zero-weight destinations out of Envoy's config.
        let zero: Expectation = "one=100,two=0".parse().unwrap();
        assert!(agrees(&versions(&[("one", 100)]), &zero));
        // A third of 100 is no float's exact value, yet the shares are the same.
        let thirds: Expectation = "one=1,two=2".parse().unwrap();
        assert!(agrees(&versions(&[("one", 33), ("two", 66)]), &thirds));
        assert!(!agrees(&versions(&[("one", 33), ("two", 67)]), &thirds));
    }

    #[test]
    fn exit_codes_tell_an_unanswering_admin_from_bad_input() {
        let down = ViewError::Fetch(FetchError::Timeout {
            url: "http://a".into(),
            after: Duration::from_secs(1),
        });
        assert_eq!(down.exit_code(), exit::ERRORS);
        let bad = ViewError::Fetch(FetchError::InvalidUrl {
            url: "a".into(),
            reason: "r".into(),
        });
        assert_eq!(bad.exit_code(), exit::USAGE);
        let dump = ViewError::Dump {
            source_name: "f".into(),
            error: ConfigDumpError::NoListenerOnPort {
                port: 1,
                ports: vec![2],
            },
        };
        assert_eq!(dump.exit_code(), exit::USAGE);
    }
}
