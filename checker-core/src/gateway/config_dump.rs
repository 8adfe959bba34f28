//! What the gateway was told: the listeners of an Envoy `/config_dump`
//! (`ListenersConfigDump`: `static_listeners[].listener` and
//! `dynamic_listeners[].active_state.listener` with its `version_info` and
//! `last_updated`; also the `?resource=dynamic_listeners` form) or the JSON array
//! `istioctl proxy-config listener POD -o json` prints (protobuf JSON: camelCase names,
//! accepted alike), and from the listener on a port, the `tcp_proxy` of each filter
//! chain: its `cluster` or `weighted_clusters`.
//!
//! Several filter chains (SNI matches of a TLS passthrough gateway) are never merged:
//! each is returned with its match, and the plain-TCP chain is picked unless a server
//! name or an index is asked for. Only the fields read here are kept in memory; the
//! rest of the dump is skipped while parsing, and the whole input is bounded
//! ([`super::input::MAX_CONFIG_DUMP_BYTES`]).

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::input::{InputError, MAX_CONFIG_DUMP_BYTES, read_bounded};

/// The filter name Istio and Envoy give the TCP proxy.
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";

/// The type URL of the TCP proxy's typed config.
pub const TCP_PROXY_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

/// Every listener of a config dump.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigDump {
    /// Listeners in the dump's order (static ones first, as Envoy prints them).
    pub listeners: Vec<ProgrammedListener>,
}

/// Where a listener came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerOrigin {
    /// The bootstrap's `static_resources`.
    Static,
    /// Delivered by LDS (Istio's way): `dynamic_listeners`.
    Dynamic,
    /// An element of `istioctl proxy-config listener -o json` (no version shown).
    Istioctl,
}

/// A listener update Envoy rejected (`error_state`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// When the rejected update arrived.
    pub last_update_attempt: Option<String>,
    /// Envoy's reason.
    pub details: Option<String>,
}

/// One listener as the gateway has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgrammedListener {
    /// Its name (`0.0.0.0_31400` in an Istio gateway).
    pub name: String,
    /// The address it binds, when a socket address.
    pub address: Option<String>,
    /// The port it binds, when a socket address.
    pub port: Option<u32>,
    /// Static, dynamic or from istioctl.
    pub origin: ListenerOrigin,
    /// Whether it serves: static, istioctl, or a dynamic listener with an `active_state`.
    pub active: bool,
    /// The control plane's version of the active configuration (`version_info`).
    pub version_info: Option<String>,
    /// When the active configuration was applied (`last_updated`).
    pub last_updated: Option<String>,
    /// The version of a newer configuration still warming, if any.
    pub warming_version: Option<String>,
    /// The last update Envoy rejected, if any.
    pub rejected: Option<Rejected>,
    /// Its filter chains in order, then its `default_filter_chain` if it has one.
    pub chains: Vec<FilterChain>,
}

/// The conditions of a `filter_chain_match`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainMatch {
    /// SNI names (TLS passthrough: one chain per host).
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls`.
    pub transport_protocol: Option<String>,
    /// ALPN protocols.
    pub application_protocols: Vec<String>,
    /// The original destination port.
    pub destination_port: Option<u32>,
    /// How many address or source conditions (prefix ranges, source ports, source type).
    pub source_conditions: usize,
}

impl ChainMatch {
    /// Whether a plain TCP connection (no TLS, no SNI) to `port` reaches this chain.
    pub fn is_plain_tcp(&self, port: u32) -> bool {
        self.server_names.is_empty()
            && self.application_protocols.is_empty()
            && self
                .transport_protocol
                .as_deref()
                .is_none_or(|t| t == "raw_buffer")
            && self.destination_port.is_none_or(|p| p == port)
    }

    /// `any connection`, or the conditions: `server names a.example, b.example; transport tls`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.server_names.is_empty() {
            parts.push(format!("server names {}", self.server_names.join(", ")));
        }
        if let Some(t) = &self.transport_protocol {
            parts.push(format!("transport {t}"));
        }
        if !self.application_protocols.is_empty() {
            parts.push(format!("ALPN {}", self.application_protocols.join(", ")));
        }
        if let Some(p) = self.destination_port {
            parts.push(format!("destination port {p}"));
        }
        if self.source_conditions > 0 {
            parts.push(format!("{} address conditions", self.source_conditions));
        }
        if parts.is_empty() {
            "any connection".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// One cluster of a `tcp_proxy` and its weight (1 for a lone `cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightedCluster {
    /// The cluster name (`outbound|9000|v1|tcp-echo.default.svc.cluster.local`).
    pub name: String,
    /// Its weight as programmed.
    pub weight: u64,
}

/// The `tcp_proxy` of a filter chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcpProxy {
    /// Its `stat_prefix`.
    pub stat_prefix: Option<String>,
    /// Its clusters: the lone `cluster` at weight 1, or `weighted_clusters` in order.
    pub clusters: Vec<WeightedCluster>,
    /// Whether the clusters came from `weighted_clusters`.
    pub weighted: bool,
}

/// One filter chain of a listener.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterChain {
    /// Its position in `filter_chains`; `None` for the `default_filter_chain`.
    pub index: Option<usize>,
    /// Its name, when it has one.
    pub name: Option<String>,
    /// What connections it takes.
    pub matcher: ChainMatch,
    /// Its network filters' names, in order.
    pub filters: Vec<String>,
    /// Its TCP proxy, when it has one.
    pub tcp_proxy: Option<TcpProxy>,
}

impl FilterChain {
    /// `filter chain 1 (server names a.example)` or `the default filter chain (any connection)`.
    pub fn describe(&self) -> String {
        let which = match self.index {
            Some(i) => format!("filter chain {i}"),
            None => "the default filter chain".to_owned(),
        };
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        format!("{which}{name} ({})", self.matcher.describe())
    }
}

/// Which filter chain of the listener to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ChainChoice {
    /// The one chain a plain TCP connection reaches (the default).
    #[default]
    PlainTcp,
    /// The chain whose `server_names` hold this name (TLS passthrough).
    ServerName(String),
    /// The chain at this index of `filter_chains`.
    Index(usize),
}

/// The weights the gateway was told for one port: the listener, the chosen chain and
/// its clusters, and every chain of the listener with its own route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgrammedRoute {
    /// The listener's name.
    pub listener: String,
    /// Its port.
    pub port: u32,
    /// The control plane's version of it, when shown.
    pub version_info: Option<String>,
    /// When it was applied, when shown.
    pub last_updated: Option<String>,
    /// The chosen chain, described.
    pub chain: String,
    /// The chosen chain's `stat_prefix`.
    pub stat_prefix: Option<String>,
    /// The chosen chain's clusters and weights.
    pub clusters: Vec<WeightedCluster>,
    /// Every chain of the listener (the chosen one included), each with its match.
    pub chains: Vec<FilterChain>,
}

impl ProgrammedRoute {
    /// The clusters' weights added up.
    pub fn total_weight(&self) -> u64 {
        self.clusters
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.weight))
    }
}

/// Why no programmed route could be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDumpError {
    /// The input could not be read, or is too large.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The JSON ends before it is complete.
    #[error(
        "the config dump is truncated: the JSON ends at line {line}, column {column} before it is complete"
    )]
    Truncated {
        /// Where the text ends.
        line: usize,
        /// Where the text ends.
        column: usize,
    },
    /// The text is not JSON of the expected shape.
    #[error("the config dump is not valid: {reason} at line {line}, column {column}{at}", at = path_text(path))]
    Malformed {
        /// The JSON path of the faulty value (`configs[2].dynamic_listeners[0]...`), if known.
        path: String,
        /// The parser's reason.
        reason: String,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
    },
    /// The JSON is neither an object with `configs` nor a listener array.
    #[error(
        "the config dump is a JSON {found}: expected Envoy's /config_dump (an object with \"configs\") or the array istioctl proxy-config listener -o json prints"
    )]
    NotAConfigDump {
        /// The JSON type found.
        found: &'static str,
    },
    /// No listener at all (the dump was filtered, or is of another kind).
    #[error("the config dump holds no listener (no ListenersConfigDump in it)")]
    NoListeners,
    /// No serving listener binds the port.
    #[error("no listener on port {port}: the gateway's listeners are on {ports}", ports = ports_text(ports))]
    NoListenerOnPort {
        /// The port asked for.
        port: u32,
        /// The ports the dump's serving listeners bind.
        ports: Vec<u32>,
    },
    /// A listener on the port exists but does not serve (warming, or its update was rejected).
    #[error("the listener {listener} on port {port} is not serving yet: {state}")]
    NotActive {
        /// The port.
        port: u32,
        /// The listener's name.
        listener: String,
        /// Warming, rejected, and Envoy's reason.
        state: String,
    },
    /// Several serving listeners bind the port.
    #[error("{} listeners bind port {port} ({}): the dump is ambiguous", names.len(), names.join(", "))]
    SeveralListeners {
        /// The port.
        port: u32,
        /// Their names.
        names: Vec<String>,
    },
    /// The chosen chain has no TCP proxy (an HTTP route, or a filter chain of another kind).
    #[error("{chain} of the listener {listener} has no {TCP_PROXY_FILTER} (its filters: {filters}): it routes no TCP", filters = list_text(filters))]
    NoTcpProxy {
        /// The listener.
        listener: String,
        /// The chain, described.
        chain: String,
        /// Its filters.
        filters: Vec<String>,
    },
    /// No chain takes a plain TCP connection.
    #[error("no filter chain of the listener {listener} takes a plain TCP connection; its chains: {}; choose one by server name", chains.join("; "))]
    NoPlainChain {
        /// The listener.
        listener: String,
        /// Its chains, described.
        chains: Vec<String>,
    },
    /// Several chains take a plain TCP connection.
    #[error("several filter chains of the listener {listener} take a plain TCP connection: {}; choose one by index", chains.join("; "))]
    SeveralPlainChains {
        /// The listener.
        listener: String,
        /// Those chains, described.
        chains: Vec<String>,
    },
    /// No chain matches the server name (or index) asked for.
    #[error("no filter chain of the listener {listener} is {wanted}; its chains: {}", chains.join("; "))]
    NoSuchChain {
        /// The listener.
        listener: String,
        /// What was asked: `for server name a.example` or `at index 3`.
        wanted: String,
        /// Its chains, described.
        chains: Vec<String>,
    },
    /// The TCP proxy names no cluster, or its weights are unusable.
    #[error("the {TCP_PROXY_FILTER} of {chain} of the listener {listener} {reason}")]
    BadTcpProxy {
        /// The listener.
        listener: String,
        /// The chain, described.
        chain: String,
        /// What is wrong.
        reason: String,
    },
}

fn path_text(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!(" ({path})")
    }
}

/// `port 31400`, `ports 8080, 31400`, or `no port at all`.
pub fn ports_text(ports: &[u32]) -> String {
    match ports {
        [] => "no port at all".to_owned(),
        [one] => format!("port {one}"),
        several => {
            let ports: Vec<String> = several.iter().map(u32::to_string).collect();
            format!("ports {}", ports.join(", "))
        }
    }
}

fn list_text(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// A protobuf JSON integer: a number, or a string (protobuf's 64-bit form).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Integer {
    Number(u64),
    Text(String),
}

impl Integer {
    fn value(&self) -> Option<u64> {
        match self {
            Integer::Number(n) => Some(*n),
            Integer::Text(t) => t.parse().ok(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawDump {
    #[serde(default)]
    configs: Vec<RawConfig>,
}

/// A `configs[]` entry: a `ListenersConfigDump`, a bare `DynamicListener` (the
/// `?resource=dynamic_listeners` form), or another kind of dump (skipped). The
/// elements of `dynamic_listeners` are read with the same type (only the
/// `DynamicListener` fields are set there). Not `flatten`ed: that would buffer every
/// other kind of dump whole in memory.
#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(rename = "@type", default)]
    type_url: String,
    #[serde(default, alias = "staticListeners")]
    static_listeners: Vec<RawStatic>,
    #[serde(default, alias = "dynamicListeners")]
    dynamic_listeners: Vec<RawConfig>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, alias = "activeState")]
    active_state: Option<RawState>,
    #[serde(default, alias = "warmingState")]
    warming_state: Option<RawState>,
    #[serde(default, alias = "errorState")]
    error_state: Option<RawError>,
}

#[derive(Debug, Deserialize)]
struct RawState {
    #[serde(default, alias = "versionInfo")]
    version_info: Option<String>,
    #[serde(default)]
    listener: Option<RawListener>,
    #[serde(default, alias = "lastUpdated")]
    last_updated: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawError {
    #[serde(default, alias = "lastUpdateAttempt")]
    last_update_attempt: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default, alias = "failedConfiguration")]
    _failed_configuration: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct RawStatic {
    listener: RawListener,
    #[serde(default, alias = "lastUpdated")]
    last_updated: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawListener {
    #[serde(default)]
    name: String,
    #[serde(default)]
    address: Option<RawAddress>,
    #[serde(default, alias = "filterChains")]
    filter_chains: Vec<RawChain>,
    #[serde(default, alias = "defaultFilterChain")]
    default_filter_chain: Option<RawChain>,
}

#[derive(Debug, Deserialize)]
struct RawAddress {
    #[serde(default, alias = "socketAddress")]
    socket_address: Option<RawSocket>,
}

#[derive(Debug, Deserialize)]
struct RawSocket {
    #[serde(default)]
    address: Option<String>,
    #[serde(default, alias = "portValue")]
    port_value: Option<Integer>,
}

#[derive(Debug, Deserialize)]
struct RawChain {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, alias = "filterChainMatch")]
    filter_chain_match: Option<RawMatch>,
    #[serde(default)]
    filters: Vec<RawFilter>,
}

#[derive(Debug, Deserialize)]
struct RawMatch {
    #[serde(default, alias = "serverNames")]
    server_names: Vec<String>,
    #[serde(default, alias = "transportProtocol")]
    transport_protocol: Option<String>,
    #[serde(default, alias = "applicationProtocols")]
    application_protocols: Vec<String>,
    #[serde(default, alias = "destinationPort")]
    destination_port: Option<Integer>,
    #[serde(default, alias = "prefixRanges")]
    prefix_ranges: Vec<IgnoredAny>,
    #[serde(default, alias = "sourcePrefixRanges")]
    source_prefix_ranges: Vec<IgnoredAny>,
    #[serde(default, alias = "directSourcePrefixRanges")]
    direct_source_prefix_ranges: Vec<IgnoredAny>,
    #[serde(default, alias = "sourcePorts")]
    source_ports: Vec<IgnoredAny>,
    #[serde(default, alias = "sourceType")]
    source_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawFilter {
    #[serde(default)]
    name: String,
    #[serde(default, alias = "typedConfig")]
    typed_config: Option<RawTyped>,
}

#[derive(Debug, Deserialize)]
struct RawTyped {
    #[serde(rename = "@type", default)]
    type_url: Option<String>,
    #[serde(default, alias = "statPrefix")]
    stat_prefix: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default, alias = "weightedClusters")]
    weighted_clusters: Option<RawWeighted>,
}

#[derive(Debug, Deserialize)]
struct RawWeighted {
    #[serde(default)]
    clusters: Vec<RawWeightedCluster>,
}

#[derive(Debug, Deserialize)]
struct RawWeightedCluster {
    #[serde(default)]
    name: String,
    #[serde(default)]
    weight: Option<Integer>,
}

/// Reads and parses a config dump of at most [`MAX_CONFIG_DUMP_BYTES`] from `reader`.
pub fn read(reader: impl std::io::Read, what: &str) -> Result<ConfigDump, ConfigDumpError> {
    let bytes = read_bounded(reader, MAX_CONFIG_DUMP_BYTES, what)?;
    parse(&bytes)
}

/// Parses a config dump: Envoy's `/config_dump` object or istioctl's listener array.
pub fn parse(bytes: &[u8]) -> Result<ConfigDump, ConfigDumpError> {
    if bytes.len() as u64 > MAX_CONFIG_DUMP_BYTES {
        return Err(InputError::TooLarge {
            what: "the config dump".to_owned(),
            limit: MAX_CONFIG_DUMP_BYTES,
        }
        .into());
    }
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    let listeners = match first {
        Some(b'[') => {
            let raw: Vec<RawListener> = deserialize(bytes)?;
            raw.into_iter()
                .map(|l| listener(l, ListenerOrigin::Istioctl, true, None, None))
                .collect()
        }
        Some(b'{') => {
            let raw: RawDump = deserialize(bytes)?;
            from_configs(raw.configs)
        }
        None => {
            return Err(ConfigDumpError::Truncated { line: 1, column: 0 });
        }
        Some(_) => {
            // Let the parser name what it is (a string, a number) or where it breaks.
            let value: serde_json::Value = deserialize(bytes)?;
            return Err(ConfigDumpError::NotAConfigDump {
                found: json_type(&value),
            });
        }
    };
    if listeners.is_empty() {
        return Err(ConfigDumpError::NoListeners);
    }
    Ok(ConfigDump { listeners })
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

fn deserialize<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ConfigDumpError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(e.into_inner(), path)
    })?;
    de.end().map_err(|e| json_error(e, String::new()))?;
    Ok(value)
}

fn json_error(e: serde_json::Error, path: String) -> ConfigDumpError {
    if e.is_eof() {
        return ConfigDumpError::Truncated {
            line: e.line(),
            column: e.column(),
        };
    }
    // serde_json's message ends with " at line L column C": keep only the reason.
    let text = e.to_string();
    let reason = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(r, _)| r)
        .to_owned();
    ConfigDumpError::Malformed {
        path,
        reason,
        line: e.line(),
        column: e.column(),
    }
}

fn from_configs(configs: Vec<RawConfig>) -> Vec<ProgrammedListener> {
    let mut out = Vec::new();
    for config in configs {
        let is_listeners = config.type_url.ends_with(".ListenersConfigDump")
            || !config.static_listeners.is_empty()
            || !config.dynamic_listeners.is_empty();
        if is_listeners {
            for s in config.static_listeners {
                out.push(listener(
                    s.listener,
                    ListenerOrigin::Static,
                    true,
                    None,
                    s.last_updated,
                ));
            }
            for d in config.dynamic_listeners {
                out.push(dynamic(d));
            }
        } else if config.type_url.ends_with(".DynamicListener")
            || config.active_state.is_some()
            || config.warming_state.is_some()
        {
            out.push(dynamic(config));
        }
    }
    out
}

fn dynamic(d: RawConfig) -> ProgrammedListener {
    let warming_version = d
        .warming_state
        .as_ref()
        .and_then(|w| w.version_info.clone());
    let rejected = d.error_state.map(|e| Rejected {
        last_update_attempt: e.last_update_attempt,
        details: e.details,
    });
    let mut l = match d.active_state {
        Some(RawState {
            version_info,
            listener: raw,
            last_updated,
        }) => listener(
            raw.unwrap_or_default(),
            ListenerOrigin::Dynamic,
            true,
            version_info,
            last_updated,
        ),
        None => {
            // Not serving: keep what the warming configuration says of its address.
            let warming = d.warming_state.and_then(|w| w.listener).unwrap_or_default();
            listener(warming, ListenerOrigin::Dynamic, false, None, None)
        }
    };
    if l.name.is_empty() {
        l.name = d.name.unwrap_or_default();
    }
    l.warming_version = warming_version;
    l.rejected = rejected;
    l
}

fn listener(
    raw: RawListener,
    origin: ListenerOrigin,
    active: bool,
    version_info: Option<String>,
    last_updated: Option<String>,
) -> ProgrammedListener {
    let socket = raw.address.and_then(|a| a.socket_address);
    let (address, port) = match socket {
        Some(s) => (
            s.address,
            s.port_value
                .and_then(|p| p.value())
                .and_then(|p| u32::try_from(p).ok()),
        ),
        None => (None, None),
    };
    let mut chains: Vec<FilterChain> = raw
        .filter_chains
        .into_iter()
        .enumerate()
        .map(|(i, c)| chain(Some(i), c))
        .collect();
    if let Some(d) = raw.default_filter_chain {
        chains.push(chain(None, d));
    }
    ProgrammedListener {
        name: raw.name,
        address,
        port,
        origin,
        active,
        version_info,
        last_updated,
        warming_version: None,
        rejected: None,
        chains,
    }
}

fn chain(index: Option<usize>, raw: RawChain) -> FilterChain {
    let matcher = raw
        .filter_chain_match
        .map(|m| ChainMatch {
            server_names: m.server_names,
            transport_protocol: m.transport_protocol,
            application_protocols: m.application_protocols,
            destination_port: m
                .destination_port
                .and_then(|p| p.value())
                .and_then(|p| u32::try_from(p).ok()),
            source_conditions: m.prefix_ranges.len()
                + m.source_prefix_ranges.len()
                + m.direct_source_prefix_ranges.len()
                + m.source_ports.len()
                + usize::from(m.source_type.as_deref().is_some_and(|t| t != "ANY")),
        })
        .unwrap_or_default();
    let filters = raw.filters.iter().map(|f| f.name.clone()).collect();
    let tcp_proxy = raw
        .filters
        .into_iter()
        .find(|f| {
            f.name == TCP_PROXY_FILTER
                || f.typed_config
                    .as_ref()
                    .and_then(|t| t.type_url.as_deref())
                    .is_some_and(|t| t == TCP_PROXY_TYPE)
        })
        .map(|f| {
            let typed = f.typed_config.unwrap_or(RawTyped {
                type_url: None,
                stat_prefix: None,
                cluster: None,
                weighted_clusters: None,
            });
            match typed.weighted_clusters {
                Some(w) => TcpProxy {
                    stat_prefix: typed.stat_prefix,
                    clusters: w
                        .clusters
                        .into_iter()
                        .map(|c| WeightedCluster {
                            name: c.name,
                            // Protobuf leaves a zero weight out of its JSON.
                            weight: c.weight.and_then(|w| w.value()).unwrap_or(0),
                        })
                        .collect(),
                    weighted: true,
                },
                None => TcpProxy {
                    stat_prefix: typed.stat_prefix,
                    clusters: typed
                        .cluster
                        .into_iter()
                        .map(|name| WeightedCluster { name, weight: 1 })
                        .collect(),
                    weighted: false,
                },
            }
        });
    FilterChain {
        index,
        name: raw.name,
        matcher,
        filters,
        tcp_proxy,
    }
}

impl ConfigDump {
    /// The ports the serving listeners bind, sorted, without repeats.
    pub fn ports(&self) -> Vec<u32> {
        let mut ports: Vec<u32> = self
            .listeners
            .iter()
            .filter(|l| l.active)
            .filter_map(|l| l.port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// The one serving listener on `port`.
    pub fn listener_on(&self, port: u32) -> Result<&ProgrammedListener, ConfigDumpError> {
        let on_port: Vec<&ProgrammedListener> = self
            .listeners
            .iter()
            .filter(|l| l.port == Some(port))
            .collect();
        let serving: Vec<&ProgrammedListener> =
            on_port.iter().copied().filter(|l| l.active).collect();
        match serving.as_slice() {
            [one] => Ok(one),
            [] => match on_port.first() {
                Some(l) => Err(ConfigDumpError::NotActive {
                    port,
                    listener: l.name.clone(),
                    state: inactive_state(l),
                }),
                None => Err(ConfigDumpError::NoListenerOnPort {
                    port,
                    ports: self.ports(),
                }),
            },
            several => Err(ConfigDumpError::SeveralListeners {
                port,
                names: several.iter().map(|l| l.name.clone()).collect(),
            }),
        }
    }

    /// The weights programmed for connections to `port`, from the chain `choice` picks.
    pub fn route(
        &self,
        port: u32,
        choice: &ChainChoice,
    ) -> Result<ProgrammedRoute, ConfigDumpError> {
        let l = self.listener_on(port)?;
        let described = || {
            l.chains
                .iter()
                .map(FilterChain::describe)
                .collect::<Vec<_>>()
        };
        let chosen: &FilterChain = match choice {
            ChainChoice::PlainTcp => {
                let plain: Vec<&FilterChain> = l
                    .chains
                    .iter()
                    .filter(|c| c.index.is_some() && c.matcher.is_plain_tcp(port))
                    .collect();
                match plain.as_slice() {
                    [one] => one,
                    [] => match l.chains.iter().find(|c| c.index.is_none()) {
                        Some(default) => default,
                        None => {
                            return Err(ConfigDumpError::NoPlainChain {
                                listener: l.name.clone(),
                                chains: described(),
                            });
                        }
                    },
                    several => {
                        return Err(ConfigDumpError::SeveralPlainChains {
                            listener: l.name.clone(),
                            chains: several.iter().map(|c| c.describe()).collect(),
                        });
                    }
                }
            }
            ChainChoice::ServerName(name) => l
                .chains
                .iter()
                .find(|c| {
                    c.matcher
                        .server_names
                        .iter()
                        .any(|s| server_name_matches(s, name))
                })
                .ok_or_else(|| ConfigDumpError::NoSuchChain {
                    listener: l.name.clone(),
                    wanted: format!("for server name {name}"),
                    chains: described(),
                })?,
            ChainChoice::Index(i) => {
                l.chains
                    .iter()
                    .find(|c| c.index == Some(*i))
                    .ok_or_else(|| ConfigDumpError::NoSuchChain {
                        listener: l.name.clone(),
                        wanted: format!("at index {i}"),
                        chains: described(),
                    })?
            }
        };
        let Some(proxy) = &chosen.tcp_proxy else {
            return Err(ConfigDumpError::NoTcpProxy {
                listener: l.name.clone(),
                chain: chosen.describe(),
                filters: chosen.filters.clone(),
            });
        };
        let bad = |reason: &str| ConfigDumpError::BadTcpProxy {
            listener: l.name.clone(),
            chain: chosen.describe(),
            reason: reason.to_owned(),
        };
        if proxy.clusters.is_empty() {
            return Err(bad("names no cluster"));
        }
        if proxy.clusters.iter().any(|c| c.name.is_empty()) {
            return Err(bad("has a weighted cluster without a name"));
        }
        if proxy.clusters.iter().all(|c| c.weight == 0) {
            return Err(bad("gives every cluster weight 0"));
        }
        Ok(ProgrammedRoute {
            listener: l.name.clone(),
            port,
            version_info: l.version_info.clone(),
            last_updated: l.last_updated.clone(),
            chain: chosen.describe(),
            stat_prefix: proxy.stat_prefix.clone(),
            clusters: proxy.clusters.clone(),
            chains: l.chains.clone(),
        })
    }
}

/// Envoy's server name match: exact, or `*.example.com` for any name under it.
fn server_name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => name.len() > suffix.len() && name.ends_with(suffix),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

fn inactive_state(l: &ProgrammedListener) -> String {
    let mut parts = Vec::new();
    if let Some(v) = &l.warming_version {
        parts.push(format!("version {v} is warming"));
    }
    if let Some(r) = &l.rejected {
        let when = r
            .last_update_attempt
            .as_deref()
            .map(|t| format!(" at {t}"))
            .unwrap_or_default();
        let why = r.details.as_deref().unwrap_or("no reason given");
        parts.push(format!("an update was rejected{when}: {why}"));
    }
    if parts.is_empty() {
        "it has no active configuration".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(listeners: &str) -> String {
        format!(
            r#"{{"configs": [
                {{"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {{"node": {{"id": "x"}}}}}},
                {{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "version_info": "v7", {listeners}}}
            ]}}"#
        )
    }

    fn tcp_listener(name: &str, port: u32, chains: &str) -> String {
        format!(
            r#"{{"name": "{name}", "active_state": {{"version_info": "2024-05-01T10:00:00Z/42", "last_updated": "2024-05-01T10:00:01.5Z",
                "listener": {{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "{name}",
                  "address": {{"socket_address": {{"address": "0.0.0.0", "port_value": {port}}}}},
                  "filter_chains": [{chains}]}}}}}}"#
        )
    }

    const WEIGHTED: &str = r#"{"filters": [
        {"name": "istio.stats", "typed_config": {"@type": "type.googleapis.com/stats.PluginConfig"}},
        {"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
          "stat_prefix": "tcp-echo", "weighted_clusters": {"clusters": [
            {"name": "outbound|9000|stable|tcp-echo.default.svc.cluster.local", "weight": 80},
            {"name": "outbound|9000|canary|tcp-echo.default.svc.cluster.local", "weight": 20}]}}}]}"#;

    #[test]
    fn weighted_clusters_of_the_listener_on_the_port() {
        let text = dump(&format!(
            r#""dynamic_listeners": [{}, {}]"#,
            tcp_listener("0.0.0.0_31400", 31400, WEIGHTED),
            tcp_listener(
                "0.0.0.0_8080",
                8080,
                r#"{"filters": [{"name": "envoy.filters.network.http_connection_manager"}]}"#
            )
        ));
        let d = parse(text.as_bytes()).unwrap();
        assert_eq!(d.ports(), [8080, 31400]);
        let r = d.route(31400, &ChainChoice::PlainTcp).unwrap();
        assert_eq!(r.listener, "0.0.0.0_31400");
        assert_eq!(r.version_info.as_deref(), Some("2024-05-01T10:00:00Z/42"));
        assert_eq!(r.last_updated.as_deref(), Some("2024-05-01T10:00:01.5Z"));
        assert_eq!(r.stat_prefix.as_deref(), Some("tcp-echo"));
        let weights: Vec<(&str, u64)> = r
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight))
            .collect();
        assert_eq!(
            weights,
            [
                (
                    "outbound|9000|stable|tcp-echo.default.svc.cluster.local",
                    80
                ),
                (
                    "outbound|9000|canary|tcp-echo.default.svc.cluster.local",
                    20
                )
            ]
        );
        assert_eq!(r.total_weight(), 100);
        assert_eq!(r.chain, "filter chain 0 (any connection)");
        let http = d.route(8080, &ChainChoice::PlainTcp).unwrap_err();
        assert_eq!(
            http.to_string(),
            "filter chain 0 (any connection) of the listener 0.0.0.0_8080 has no envoy.filters.network.tcp_proxy (its filters: envoy.filters.network.http_connection_manager): it routes no TCP"
        );
    }

    #[test]
    fn a_missing_port_names_the_ports_there_are() {
        let text = dump(&format!(
            r#""dynamic_listeners": [{}]"#,
            tcp_listener("0.0.0.0_31400", 31400, WEIGHTED)
        ));
        let err = parse(text.as_bytes())
            .unwrap()
            .route(31401, &ChainChoice::PlainTcp)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no listener on port 31401: the gateway's listeners are on port 31400"
        );
    }

    #[test]
    fn a_lone_cluster_and_static_listeners_and_istioctl_camel_case() {
        let text = r#"{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "static_listeners": [{"listener": {"name": "ingress", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
              "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "s", "cluster": "one"}}]}]},
              "last_updated": "2024-05-01T10:00:00Z"}]}]}"#;
        let r = parse(text.as_bytes())
            .unwrap()
            .route(10000, &ChainChoice::default())
            .unwrap();
        assert_eq!(
            r.clusters,
            [WeightedCluster {
                name: "one".into(),
                weight: 1
            }]
        );
        assert_eq!(r.version_info, None);
        let istioctl = r#"[{"name": "0.0.0.0_31400", "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 31400}},
            "filterChains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typedConfig": {
              "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "statPrefix": "x",
              "weightedClusters": {"clusters": [{"name": "a", "weight": 7}, {"name": "b", "weight": "3"}, {"name": "c"}]}}}]}]}]"#;
        let d = parse(istioctl.as_bytes()).unwrap();
        assert_eq!(d.listeners[0].origin, ListenerOrigin::Istioctl);
        let r = d.route(31400, &ChainChoice::PlainTcp).unwrap();
        let weights: Vec<u64> = r.clusters.iter().map(|c| c.weight).collect();
        assert_eq!(weights, [7, 3, 0]);
    }

    #[test]
    fn sni_chains_are_kept_apart_and_chosen_by_name() {
        let sni = |host: &str, cluster: &str| {
            format!(
                r#"{{"filter_chain_match": {{"server_names": ["{host}"]}}, "filters": [{{"name": "envoy.filters.network.tcp_proxy",
                  "typed_config": {{"@type": "{TCP_PROXY_TYPE}", "cluster": "{cluster}"}}}}]}}"#
            )
        };
        let chains = format!(
            "{}, {}",
            sni("a.example.com", "ca"),
            sni("*.b.example.com", "cb")
        );
        let text = dump(&format!(
            r#""dynamic_listeners": [{}]"#,
            tcp_listener("0.0.0.0_443", 443, &chains)
        ));
        let d = parse(text.as_bytes()).unwrap();
        let err = d.route(443, &ChainChoice::PlainTcp).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no filter chain of the listener 0.0.0.0_443 takes a plain TCP connection; its chains: filter chain 0 (server names a.example.com); filter chain 1 (server names *.b.example.com); choose one by server name"
        );
        let r = d
            .route(443, &ChainChoice::ServerName("x.b.example.com".into()))
            .unwrap();
        assert_eq!(r.clusters[0].name, "cb");
        assert_eq!(r.chains.len(), 2);
        let r = d.route(443, &ChainChoice::Index(0)).unwrap();
        assert_eq!(r.clusters[0].name, "ca");
        assert!(matches!(
            d.route(443, &ChainChoice::ServerName("b.example.com".into())),
            Err(ConfigDumpError::NoSuchChain { .. })
        ));
        // A plain chain beside the SNI ones is the default.
        let chains = format!("{}, {WEIGHTED}", sni("a.example.com", "ca"));
        let text = dump(&format!(
            r#""dynamic_listeners": [{}]"#,
            tcp_listener("0.0.0.0_443", 443, &chains)
        ));
        let r = parse(text.as_bytes())
            .unwrap()
            .route(443, &ChainChoice::PlainTcp)
            .unwrap();
        assert_eq!(r.clusters.len(), 2);
        assert_eq!(r.chain, "filter chain 1 (any connection)");
    }

    #[test]
    fn a_rejected_or_warming_listener_is_not_serving() {
        let text = dump(
            r#""dynamic_listeners": [{"name": "0.0.0.0_31400",
                "warming_state": {"version_info": "43", "listener": {"name": "0.0.0.0_31400", "address": {"socket_address": {"port_value": 31400}}}},
                "error_state": {"failed_configuration": {"x": 1}, "last_update_attempt": "2024-05-01T10:00:00Z", "details": "duplicate cluster"}}]"#,
        );
        let err = parse(text.as_bytes())
            .unwrap()
            .route(31400, &ChainChoice::PlainTcp)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the listener 0.0.0.0_31400 on port 31400 is not serving yet: version 43 is warming; an update was rejected at 2024-05-01T10:00:00Z: duplicate cluster"
        );
    }

    #[test]
    fn the_dynamic_listeners_resource_form_is_read() {
        let text = format!(
            r#"{{"configs": [{{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump.DynamicListener", {}}}]}}"#,
            &tcp_listener("0.0.0.0_31400", 31400, WEIGHTED)
                [1..tcp_listener("0.0.0.0_31400", 31400, WEIGHTED).len() - 1]
        );
        let r = parse(text.as_bytes())
            .unwrap()
            .route(31400, &ChainChoice::PlainTcp)
            .unwrap();
        assert_eq!(r.clusters.len(), 2);
    }

    #[test]
    fn bad_json_is_named() {
        let text = dump(&format!(
            r#""dynamic_listeners": [{}]"#,
            tcp_listener("0.0.0.0_31400", 31400, WEIGHTED)
        ));
        let cut = &text.as_bytes()[..text.len() / 2];
        assert!(
            matches!(parse(cut), Err(ConfigDumpError::Truncated { .. })),
            "{:?}",
            parse(cut)
        );
        assert!(matches!(
            parse(b"  "),
            Err(ConfigDumpError::Truncated { .. })
        ));
        let err =
            parse(br#"{"configs": [{"static_listeners": [{"listener": {"filter_chains": 3}}]}]}"#)
                .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("the config dump is not valid: invalid type: integer `3`, expected a sequence at line 1"), "{text}");
        assert!(
            text.ends_with("(configs[0].static_listeners[0].listener.filter_chains)"),
            "{text}"
        );
        assert!(matches!(
            parse(br#""hello""#),
            Err(ConfigDumpError::NotAConfigDump { found: "string" })
        ));
        assert!(matches!(
            parse(br#"{"configs": []} x"#),
            Err(ConfigDumpError::Malformed { .. })
        ));
        assert!(matches!(parse(br#"{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"}]}"#), Err(ConfigDumpError::NoListeners)));
        // Nesting beyond the parser's depth limit is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(ConfigDumpError::Malformed { .. })
        ));
    }

    #[test]
    fn unusable_weights_are_refused() {
        let zero = r#"{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"weighted_clusters": {"clusters": [{"name": "a"}, {"name": "b", "weight": 0}]}}}]}"#;
        let text = dump(&format!(
            r#""dynamic_listeners": [{}]"#,
            tcp_listener("l", 1, zero)
        ));
        let err = parse(text.as_bytes())
            .unwrap()
            .route(1, &ChainChoice::PlainTcp)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the envoy.filters.network.tcp_proxy of filter chain 0 (any connection) of the listener l gives every cluster weight 0"
        );
        let none = r#"{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"stat_prefix": "x"}}]}"#;
        let text = dump(&format!(
            r#""dynamic_listeners": [{}]"#,
            tcp_listener("l", 1, none)
        ));
        let err = parse(text.as_bytes())
            .unwrap()
            .route(1, &ChainChoice::PlainTcp)
            .unwrap_err();
        assert!(err.to_string().ends_with("names no cluster"), "{err}");
    }
}
