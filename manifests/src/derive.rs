//! The expected split, derived from the manifests: route weights → destinations →
//! subsets or Services → workloads → the version each answers with, every share with
//! the resources and fields it came from.
//!
//! Weights are normalised by their total as Istio does; destinations that answer with
//! the same version are summed. A destination whose pods belong to several workloads
//! answering different versions splits its weight by replica counts (a replica-ratio
//! canary). When the manifests cannot say, the error names the resource and the field.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::{GatewayServer, Labels, Listener, ManifestSet, Resource, Workload, short_host};
use crate::version;

/// The most replicas a workload may declare: Kubernetes' `spec.replicas` is an int32.
pub const MAX_REPLICAS: u64 = i32::MAX as u64;

/// The largest route weight: Istio's and Gateway API's `weight` is an int32.
pub const MAX_WEIGHT: i64 = i32::MAX as i64;

/// What the derivation may be told beyond the manifests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeriveOptions {
    /// The gateway port whose `tcp` route to use (`--route-port`); `None`: the only one.
    pub route_port: Option<u32>,
    /// The server name a TLS client sends (SNI): it chooses among the `tls` routes of
    /// the port; `None`: the only `tls` route, or the `tcp` route when there is none.
    pub sni: Option<String>,
    /// `--version-of NAME=VERSION`: a subset, Service or workload name and its version.
    pub version_of: BTreeMap<String, String>,
    /// How messages and provenance name the two options above.
    pub names: OptionNames,
}

/// How the caller names the derivation's options in what it shows its users: the
/// checker its flags (`--route-port`, `--version-of`), a rollout plan its keys. The
/// library names no command line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionNames {
    /// The name of [`DeriveOptions::route_port`].
    pub route_port: String,
    /// The name of [`DeriveOptions::version_of`].
    pub version_of: String,
    /// The name of [`DeriveOptions::sni`].
    pub sni: String,
}

impl Default for OptionNames {
    /// The options' own names: `route_port`, `version_of`, `sni`.
    fn default() -> Self {
        Self {
            route_port: "route_port".to_owned(),
            version_of: "version_of".to_owned(),
            sni: "sni".to_owned(),
        }
    }
}

/// The derived split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Derivation {
    /// The route used: `VirtualService/tcp-echo spec.tcp[0]` (or `spec.tls[0]`, a
    /// `TCPRoute` or `TLSRoute` rule).
    pub route: String,
    /// For a TLS passthrough route, how it was chosen: the server name and the route's
    /// names it matched (absent for a `tcp` route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsChoice>,
    /// The route's resource, `VirtualService/tcp-echo` (not part of the JSON report).
    #[serde(skip)]
    pub route_resource: String,
    /// The route's field path, `spec.tcp[0]` (not part of the JSON report).
    #[serde(skip)]
    pub route_field: String,
    /// The gateway ports the route matches (a VirtualService's `match[].port`, a
    /// TCPRoute's parent listener), where the manifests say (not part of the JSON report).
    #[serde(skip)]
    pub route_ports: Vec<u32>,
    /// Each version, with its weight, share and provenance, in route order.
    pub versions: Vec<DerivedVersion>,
    /// Remarks (replica-ratio splits, defaults applied).
    pub notes: Vec<String>,
    /// Kinds the model does not read (`apiVersion kind`) and how many were skipped.
    pub skipped_kinds: BTreeMap<String, usize>,
    /// The route's destinations in order, each with the workloads behind it: the
    /// topology a rehearsal deploys (not part of the JSON report).
    #[serde(skip)]
    pub destinations: Vec<DerivedDestination>,
}

/// How a TLS passthrough route was chosen: by the server name the client sends (SNI),
/// or as the only `tls` route of its port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsChoice {
    /// The server name given ([`DeriveOptions::sni`]); `None` when the route is the
    /// only `tls` route of its port.
    pub sni: Option<String>,
    /// The route's server names on the port: `sniHosts`, or a TLSRoute's hostnames
    /// within its listener's (`*`: any).
    pub server_names: Vec<String>,
    /// The one of them the server name matched (the most specific, as Envoy picks a
    /// filter chain), when one was given.
    pub matched: Option<String>,
    /// Where the names are written: `spec.tls[0].match[0].sniHosts`, `spec.hostnames`.
    pub field: String,
}

impl fmt::Display for TlsChoice {
    /// `server name a.example.com (matches sniHosts *.example.com)`, or `the only tls
    /// route (sniHosts a.example.com)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.field.rsplit('.').next().unwrap_or("server names");
        match (&self.sni, &self.matched) {
            (Some(sni), Some(matched)) => {
                write!(f, "server name {sni} (matches {what} {matched})")
            }
            _ => write!(
                f,
                "the only tls route of its port ({what} {})",
                self.server_names.join(", ")
            ),
        }
    }
}

/// One destination of the chosen route and the workloads that answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedDestination {
    /// A name for it, unique within the route: the subset, else the Service (host) name,
    /// with `-2`, `-3`, ... appended to repeats.
    pub name: String,
    /// The destination's field path: `spec.tcp[0].route[1]`.
    pub field: String,
    /// Its host as written (`tcp-echo`, `tcp-echo.default.svc.cluster.local`), or the
    /// backend Service's name.
    pub host: String,
    /// Its subset, when it names one.
    pub subset: Option<String>,
    /// Its weight as written (Istio's defaults applied).
    pub weight: u64,
    /// The workloads its subset or Service selects, in manifest order.
    pub members: Vec<DestinationMember>,
}

/// A workload behind a destination.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationMember {
    /// The workload (`Deployment/tcp-echo-stable`), or `None` when `--version-of` named
    /// the version without one.
    pub workload: Option<String>,
    /// The version it answers with.
    pub version: String,
    /// Its replica count (1 when no workload is known).
    pub replicas: u64,
}

/// One version of the derived split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DerivedVersion {
    /// The version string the replies start with.
    pub name: String,
    /// Its weight (sum of its destinations' parts, as in the route).
    pub weight: f64,
    /// Weight over the route's total, in 0..=1.
    pub share: f64,
    /// Where every part of the weight came from.
    pub provenance: Vec<Provenance>,
}

/// Where one part of a version's weight came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    /// The route resource: `VirtualService/tcp-echo` or `TCPRoute/tcp-echo`.
    pub resource: String,
    /// The destination's field path: `spec.tcp[0].route[1]`.
    pub field: String,
    /// The destination: `tcp-echo subset canary` or the backend Service.
    pub destination: String,
    /// The part of the destination's weight that goes to this version.
    pub weight: f64,
    /// What selects the pods: `DestinationRule/tcp-echo subset canary`, `Service/x`, or `--version-of`.
    #[serde(serialize_with = "as_text")]
    pub selected_by: SelectedBy,
    /// The workload answering, when read from the manifests.
    pub workload: Option<String>,
    /// Its replica count (replica-ratio splits use it).
    pub replicas: Option<u64>,
    /// Where the version was read: `args[1] of container echo-server`, `--version-of NAME`.
    #[serde(serialize_with = "as_text")]
    pub version_from: VersionSource,
}

/// What selects a destination's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectedBy {
    /// A DestinationRule's subset (with its host's Service selector):
    /// `DestinationRule/tcp-echo subset canary`.
    Subset {
        /// The rule, `DestinationRule/name`.
        rule: String,
        /// The subset's name.
        subset: String,
    },
    /// A Service's selector: `Service/tcp-echo`.
    Service {
        /// The Service, `Service/name`.
        service: String,
    },
    /// A Flagger Canary's target, when the Services Flagger generates are not in the
    /// manifests: `Canary/tcp-echo targetRef tcp-echo-primary`.
    CanaryTarget {
        /// The Canary, `Canary/name`.
        canary: String,
        /// The workload's name.
        target: String,
    },
    /// Nothing read: the caller gave the subset's or Service's version; shown as the
    /// option's name (the checker's `--version-of`).
    Override {
        /// The subset or Service name given.
        name: String,
        /// The option's name, from [`OptionNames::version_of`].
        option: String,
    },
}

impl fmt::Display for SelectedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectedBy::Subset { rule, subset } => write!(f, "{rule} subset {subset}"),
            SelectedBy::Service { service } => f.write_str(service),
            SelectedBy::CanaryTarget { canary, target } => write!(f, "{canary} targetRef {target}"),
            SelectedBy::Override { option, .. } => f.write_str(option),
        }
    }
}

/// Where a version was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// A container's command line or environment: `args[1] of container echo-server`.
    Container {
        /// The container's name (`containers[N]` when it has none).
        container: String,
        /// Where in it.
        place: version::Place,
    },
    /// The caller's: `--version-of NAME`.
    Override {
        /// The subset, Service or workload name given.
        name: String,
        /// The option's name, from [`OptionNames::version_of`].
        option: String,
    },
}

impl fmt::Display for VersionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSource::Container { container, place } => {
                write!(f, "{place} of container {container}")
            }
            VersionSource::Override { name, option } => write!(f, "{option} {name}"),
        }
    }
}

/// Serialises a value as its text, as the report and lint documents carry provenance.
fn as_text<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Why no split can be derived: the resource and field, and one sentence.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{resource} {field}: {message}")]
pub struct DeriveError {
    /// `Kind/name`, or `the manifests` when no resource is to blame.
    pub resource: String,
    /// The field path.
    pub field: String,
    /// What is missing or wrong, and the way out (naming the options as
    /// [`DeriveOptions::names`] says).
    pub message: String,
    /// The way out the message names, for callers that add words of their own.
    #[serde(skip)]
    pub remedy: Option<Remedy>,
}

/// What the caller can tell the derivation to get past a [`DeriveError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Choose the route by its gateway port ([`DeriveOptions::route_port`]).
    RoutePort,
    /// Choose the `tls` route by the server name ([`DeriveOptions::sni`]): several
    /// match (`given: None`), or the name given matches none of them (`given: Some`).
    Sni {
        /// The server name given that matched no `tls` route, if one was given.
        given: Option<String>,
    },
    /// Give the version of a subset, Service or workload ([`DeriveOptions::version_of`]):
    /// of `name`, or of whichever fits when `None`.
    VersionOf {
        /// The name whose version is missing, when one is.
        name: Option<String>,
    },
}

impl DeriveError {
    /// Whether the manifests do not show a version that a given one (`version_of`) would
    /// supply: the error asks for it.
    pub fn wants_version(&self) -> bool {
        matches!(self.remedy, Some(Remedy::VersionOf { .. }))
    }
}

impl Provenance {
    /// The subset, Service or workload name whose given version (`version_of`) this
    /// part's version is, if it came from one.
    pub fn version_given_for(&self) -> Option<&str> {
        match &self.version_from {
            VersionSource::Override { name, .. } => Some(name),
            VersionSource::Container { .. } => None,
        }
    }
}

fn fail<T>(
    resource: impl Into<String>,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Result<T, DeriveError> {
    Err(DeriveError {
        resource: resource.into(),
        field: field.into(),
        message: message.into(),
        remedy: None,
    })
}

/// [`fail`] with the way out the message names.
fn fail_with<T>(
    resource: impl Into<String>,
    field: impl Into<String>,
    message: impl Into<String>,
    remedy: Remedy,
) -> Result<T, DeriveError> {
    fail(resource, field, message).map_err(|e| DeriveError {
        remedy: Some(remedy),
        ..e
    })
}

/// One weighted destination of the chosen route.
#[derive(Debug, Clone)]
pub(crate) struct RouteDestination<'a> {
    pub resource: &'a Resource,
    pub field: String,
    pub host: String,
    pub subset: Option<String>,
    pub weight: i64,
    /// The destination's port number, when given.
    pub port: Option<u32>,
    /// Gateway API backends name a Service; Istio destinations a host.
    pub backend: bool,
    /// Whether it is a destination of a `tls` route (the pods get the TLS stream).
    pub tls: bool,
}

/// A `tcp` or `tls` route (VirtualService rule, TCPRoute or TLSRoute rule) and its
/// weighted destinations.
#[derive(Debug, Clone)]
pub(crate) struct Route<'a> {
    pub resource: &'a Resource,
    pub field: String,
    pub ports: Vec<u32>,
    pub destinations: Vec<RouteDestination<'a>>,
    /// A `tls` route's server names, per match; `None` for a `tcp` route.
    pub tls: Option<Vec<SniMatch>>,
}

/// The server names a `tls` route matches on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SniMatch {
    /// The port, `None` for every port of the route.
    pub port: Option<u32>,
    /// The names (`a.example.com`, `*.example.com`, `*` for any); empty: none.
    pub hosts: Vec<String>,
    /// Where they are written: `spec.tls[0].match[1].sniHosts`, `spec.hostnames`.
    pub field: String,
    /// A TLSRoute's parent Gateway, the listener's (`None` for a VirtualService).
    pub gateway: Option<String>,
}

impl Route<'_> {
    /// The server-name matches of a `tls` route that apply on `port` (every match when
    /// `None`); none for a `tcp` route.
    pub(crate) fn sni_on(&self, port: Option<u32>) -> impl Iterator<Item = &SniMatch> {
        self.tls.iter().flatten().filter(move |m| {
            port.is_none_or(|p| m.port.is_none_or(|mp| mp == p) && self.ports.contains(&p))
        })
    }
}

/// How specifically the server-name pattern `pattern` matches the server name `name`,
/// as Envoy ranks a listener's filter chains: an exact name first, then the longest
/// `*.suffix`, then `*`; `None` when it does not match. Case does not matter.
pub(crate) fn sni_rank(pattern: &str, name: &str) -> Option<usize> {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if pattern == "*" {
        return Some(0);
    }
    if pattern == name {
        return Some(usize::MAX);
    }
    let suffix = pattern.strip_prefix('*')?;
    (suffix.starts_with('.') && name.len() > suffix.len() && name.ends_with(suffix))
        .then_some(suffix.len())
}

/// The names two server-name patterns both match (a Gateway API listener's hostname and
/// a route's), as the more specific of the two; `None` when they share none.
pub(crate) fn sni_intersection(a: &str, b: &str) -> Option<String> {
    let (la, lb) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if sni_rank(&la, &lb).is_some() {
        return Some(b.to_owned());
    }
    if sni_rank(&lb, &la).is_some() {
        return Some(a.to_owned());
    }
    // Two wildcards: the longer suffix lies within the shorter one.
    match (la.strip_prefix('*'), lb.strip_prefix('*')) {
        (Some(sa), Some(sb)) if sa.ends_with(sb) => Some(a.to_owned()),
        (Some(sa), Some(sb)) if sb.ends_with(sa) => Some(b.to_owned()),
        _ => None,
    }
}

/// Every route of the set, `tcp` then `tls`, with Istio's weight defaults applied.
pub(crate) fn routes(set: &ManifestSet) -> Vec<Route<'_>> {
    let mut out = Vec::new();
    for (r, vs) in set.virtual_services() {
        for (i, rule) in vs.tcp.iter().enumerate() {
            out.push(Route {
                resource: r,
                field: format!("spec.tcp[{i}]"),
                ports: rule.matches.iter().filter_map(|m| m.port).collect(),
                destinations: destinations(r, &format!("spec.tcp[{i}]"), &rule.route, false),
                tls: None,
            });
        }
    }
    for (r, route) in set.tcp_routes() {
        let ports = parent_ports(set, &route.parent_refs);
        for (i, rule) in route.rules.iter().enumerate() {
            out.push(Route {
                resource: r,
                field: format!("spec.rules[{i}]"),
                ports: ports.clone(),
                destinations: backends(r, i, &rule.backend_refs, false),
                tls: None,
            });
        }
    }
    for (r, vs) in set.virtual_services() {
        // A match without a port applies to every PASSTHROUGH server of the gateways.
        let passthrough: Vec<u32> = vs_servers(set, &vs.gateways)
            .filter(|s| s.is_passthrough())
            .filter_map(|s| s.port.number)
            .collect();
        for (i, rule) in vs.tls.iter().enumerate() {
            let mut ports: Vec<u32> = Vec::new();
            for m in &rule.matches {
                match m.port {
                    Some(p) => ports.push(p),
                    None => ports.extend(&passthrough),
                }
            }
            ports.dedup();
            let sni = rule
                .matches
                .iter()
                .enumerate()
                .map(|(j, m)| SniMatch {
                    port: m.port,
                    hosts: m.sni_hosts.clone(),
                    field: format!("spec.tls[{i}].match[{j}].sniHosts"),
                    gateway: None,
                })
                .collect();
            out.push(Route {
                resource: r,
                field: format!("spec.tls[{i}]"),
                ports,
                destinations: destinations(r, &format!("spec.tls[{i}]"), &rule.route, true),
                tls: Some(sni),
            });
        }
    }
    for (r, route) in set.tls_routes() {
        let ports = parent_ports(set, &route.parent_refs);
        let sni = tls_route_names(set, route);
        for (i, rule) in route.rules.iter().enumerate() {
            out.push(Route {
                resource: r,
                field: format!("spec.rules[{i}]"),
                ports: ports.clone(),
                destinations: backends(r, i, &rule.backend_refs, true),
                tls: Some(sni.clone()),
            });
        }
    }
    out
}

/// A VirtualService rule's weighted destinations (a lone one weighs 100 when it gives none).
fn destinations<'a>(
    r: &'a Resource,
    field: &str,
    route: &[crate::model::RouteDestination],
    tls: bool,
) -> Vec<RouteDestination<'a>> {
    let lone = route.len() == 1;
    route
        .iter()
        .enumerate()
        .map(|(j, d)| RouteDestination {
            resource: r,
            field: format!("{field}.route[{j}]"),
            host: d.destination.host.clone(),
            subset: d.destination.subset.clone(),
            weight: d.weight.unwrap_or(if lone { 100 } else { 0 }),
            port: d.destination.port.as_ref().and_then(|p| p.number),
            backend: false,
            tls,
        })
        .collect()
}

/// A Gateway API rule's backends (weight 1 when absent).
fn backends<'a>(
    r: &'a Resource,
    rule: usize,
    refs: &[crate::model::BackendRef],
    tls: bool,
) -> Vec<RouteDestination<'a>> {
    refs.iter()
        .enumerate()
        .map(|(j, b)| RouteDestination {
            resource: r,
            field: format!("spec.rules[{rule}].backendRefs[{j}]"),
            host: b.name.clone(),
            subset: None,
            weight: b.weight.unwrap_or(1),
            port: b.port,
            backend: true,
            tls,
        })
        .collect()
}

/// The ports of a Gateway API route's parents: given, or their listeners'.
fn parent_ports(set: &ManifestSet, parents: &[crate::model::ParentRef]) -> Vec<u32> {
    parents
        .iter()
        .filter_map(|p| {
            p.port
                .or_else(|| listener_port(set, &p.name, p.section_name.as_deref()))
        })
        .collect()
}

/// The servers of the Istio Gateways a VirtualService names (`mesh` and Gateways not in
/// the set add none).
pub(crate) fn vs_servers<'a>(
    set: &'a ManifestSet,
    gateways: &'a [String],
) -> impl Iterator<Item = &'a GatewayServer> + 'a {
    gateways.iter().flat_map(move |g| {
        let name = g.rsplit('/').next().unwrap_or(g);
        set.istio_gateways()
            .filter(move |(r, _)| r.meta.name == name)
            .flat_map(|(_, gw)| gw.servers.iter())
    })
}

/// A Gateway API listener a route's parent reference names: its Gateway's listeners
/// with the section name and port it gives (all of them when it gives neither).
pub(crate) fn parent_listeners<'a>(
    set: &'a ManifestSet,
    parent: &'a crate::model::ParentRef,
) -> Option<Vec<&'a Listener>> {
    let (_, g) = set
        .api_gateways()
        .find(|(r, _)| r.meta.name == parent.name)?;
    Some(
        g.listeners
            .iter()
            .filter(|l| {
                parent.section_name.as_ref().is_none_or(|s| &l.name == s)
                    && parent.port.is_none_or(|port| l.port == Some(port))
            })
            .collect(),
    )
}

/// A TLSRoute's server names on each parent listener: its hostnames within the
/// listener's hostname (Gateway API's intersection), the listener's when it gives none,
/// `*` when neither does.
pub(crate) fn tls_route_names(set: &ManifestSet, route: &crate::model::TlsRoute) -> Vec<SniMatch> {
    let own = |listener: Option<&str>| -> Vec<String> {
        match (listener, route.hostnames.is_empty()) {
            (None, true) => vec!["*".to_owned()],
            (None, false) => route.hostnames.clone(),
            (Some(l), true) => vec![l.to_owned()],
            (Some(l), false) => route
                .hostnames
                .iter()
                .filter_map(|h| sni_intersection(l, h))
                .collect(),
        }
    };
    let mut out = Vec::new();
    for p in &route.parent_refs {
        match parent_listeners(set, p) {
            Some(listeners) if !listeners.is_empty() => {
                for l in listeners {
                    out.push(SniMatch {
                        port: l.port.or(p.port),
                        hosts: own(l.hostname.as_deref()),
                        field: "spec.hostnames".to_owned(),
                        gateway: Some(p.name.clone()),
                    });
                }
            }
            _ => out.push(SniMatch {
                port: p.port,
                hosts: own(None),
                field: "spec.hostnames".to_owned(),
                gateway: None,
            }),
        }
    }
    out
}

fn listener_port(set: &ManifestSet, gateway: &str, section: Option<&str>) -> Option<u32> {
    set.each(|k| match k {
        crate::model::Kind::ApiGateway(g) => Some(g),
        _ => None,
    })
    .find(|(r, _)| r.meta.name == gateway)
    .and_then(|(_, g)| {
        let mut ls = g
            .listeners
            .iter()
            .filter(|l| section.is_none_or(|s| l.name == s));
        ls.next().and_then(|l| l.port)
    })
}

/// The route a connection takes, as [`derive`] chooses it: by port, then among the
/// `tls` routes by the server name, else the `tcp` route.
fn choose<'r, 'a>(
    all: &'r [Route<'a>],
    options: &DeriveOptions,
) -> Result<(&'r Route<'a>, Option<TlsChoice>), DeriveError> {
    let on_port = |r: &&Route| options.route_port.is_none_or(|p| r.ports.contains(&p));
    let tls: Vec<&Route> = all
        .iter()
        .filter(|r| r.tls.is_some())
        .filter(on_port)
        .collect();
    if !tls.is_empty() {
        // Without a port, tcp and tls routes on several ports leave the port to choose.
        let everything: Vec<&Route> = all.iter().collect();
        if options.route_port.is_none() && distinct_ports(&everything) > 1 {
            let names: Vec<String> = everything
                .iter()
                .map(|r| format!("{} {} (ports {:?})", r.resource.id(), r.field, r.ports))
                .collect();
            return fail_with(
                "the manifests",
                "spec.tls",
                format!(
                    "{} tcp and tls routes on several ports ({}); choose one with {} PORT",
                    names.len(),
                    names.join(", "),
                    options.names.route_port
                ),
                Remedy::RoutePort,
            );
        }
        return choose_tls(&tls, options);
    }
    let chosen: Vec<&Route> = all
        .iter()
        .filter(|r| r.tls.is_none())
        .filter(on_port)
        .collect();
    match chosen.as_slice() {
        [one] => Ok((*one, None)),
        [] => {
            let message = match options.route_port {
                Some(port) if all.iter().any(|r| r.tls.is_some()) => format!("no tcp or tls route matches port {port} (VirtualService spec.tcp[].match[].port or spec.tls[].match[].port, or a TCPRoute's or TLSRoute's parent listener)"),
                Some(port) => format!("no tcp route matches port {port} (VirtualService spec.tcp[].match[].port, or a TCPRoute's parent listener)"),
                None => "no tcp route: the manifests hold no VirtualService with spec.tcp and no TCPRoute".to_owned(),
            };
            fail("the manifests", "spec.tcp", message)
        }
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|r| format!("{} {} (ports {:?})", r.resource.id(), r.field, r.ports))
                .collect();
            fail_with(
                "the manifests",
                "spec.tcp",
                format!(
                    "{} tcp routes ({}); choose one with {} PORT",
                    several.len(),
                    names.join(", "),
                    options.names.route_port
                ),
                Remedy::RoutePort,
            )
        }
    }
}

/// The `tls` route of `candidates` (those on the port) the server name takes, or the
/// only one when none is given.
fn choose_tls<'r, 'a>(
    candidates: &[&'r Route<'a>],
    options: &DeriveOptions,
) -> Result<(&'r Route<'a>, Option<TlsChoice>), DeriveError> {
    let port = options.route_port;
    let names = |r: &Route| -> Vec<String> {
        r.sni_on(port)
            .flat_map(|m| m.hosts.iter().cloned())
            .collect()
    };
    let described = |rs: &[&Route]| -> String {
        rs.iter()
            .map(|r| {
                format!(
                    "{} {} (ports {:?}, server names {})",
                    r.resource.id(),
                    r.field,
                    r.ports,
                    names(r).join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let several_ports = |rs: &[&Route]| port.is_none() && distinct_ports(rs) > 1;
    let on = port.map(|p| format!(" on port {p}")).unwrap_or_default();
    let Some(sni) = &options.sni else {
        return match candidates {
            [one] => Ok((
                *one,
                Some(TlsChoice {
                    sni: None,
                    server_names: names(one),
                    matched: None,
                    field: first_field(one, port),
                }),
            )),
            several if several_ports(several) => fail_with(
                "the manifests",
                "spec.tls",
                format!(
                    "{} tls routes ({}); choose one with {} PORT and {} NAME",
                    several.len(),
                    described(several),
                    options.names.route_port,
                    options.names.sni
                ),
                Remedy::RoutePort,
            ),
            several => fail_with(
                "the manifests",
                "spec.tls",
                format!(
                    "{} tls routes{on} ({}); choose one by the server name its clients send with {} NAME",
                    several.len(),
                    described(several),
                    options.names.sni
                ),
                Remedy::Sni { given: None },
            ),
        };
    };
    // Each route's best match for the name: (rank, the pattern, where it is written).
    let ranked: Vec<(&Route, usize, String, String)> = candidates
        .iter()
        .filter_map(|r| {
            r.sni_on(port)
                .flat_map(|m| {
                    m.hosts
                        .iter()
                        .filter_map(|h| sni_rank(h, sni).map(|rank| (rank, h, &m.field)))
                })
                .max_by_key(|(rank, _, _)| *rank)
                .map(|(rank, h, field)| (*r, rank, h.clone(), field.clone()))
        })
        .collect();
    let Some(best) = ranked.iter().map(|(_, rank, _, _)| *rank).max() else {
        let first = candidates[0];
        return fail_with(
            first.resource.id(),
            first_field(first, port),
            format!(
                "no tls route{on} has a server name matching {}, so a TLS connection sending it matches no filter chain of the gateway; the tls routes: {}",
                quoted(sni),
                described(candidates)
            ),
            Remedy::Sni {
                given: Some(sni.clone()),
            },
        );
    };
    let top: Vec<&(&Route, usize, String, String)> = ranked
        .iter()
        .filter(|(_, rank, _, _)| *rank == best)
        .collect();
    let routes: Vec<&Route> = top.iter().map(|(r, _, _, _)| *r).collect();
    if several_ports(&routes) {
        return fail_with(
            "the manifests",
            "spec.tls",
            format!(
                "{} tls routes match the server name {} ({}); choose one with {} PORT",
                routes.len(),
                quoted(sni),
                described(&routes),
                options.names.route_port
            ),
            Remedy::RoutePort,
        );
    }
    // Istio keeps the first rule naming a server name on a port and skips the others
    // (a lint finding); Envoy then picks the most specific name.
    let (route, _, matched, field) = top[0];
    Ok((
        *route,
        Some(TlsChoice {
            sni: Some(sni.clone()),
            server_names: names(route),
            matched: Some(matched.clone()),
            field: field.clone(),
        }),
    ))
}

/// How many different ports the routes match.
fn distinct_ports(routes: &[&Route]) -> usize {
    let mut ports: Vec<u32> = routes
        .iter()
        .flat_map(|r| r.ports.iter().copied())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports.len()
}

/// Where a `tls` route's first server names on the port are written.
fn first_field(r: &Route, port: Option<u32>) -> String {
    r.sni_on(port)
        .next()
        .map_or_else(|| r.field.clone(), |m| m.field.clone())
}

/// Derives the expected split from `set`.
pub fn derive(set: &ManifestSet, options: &DeriveOptions) -> Result<Derivation, DeriveError> {
    let all = routes(set);
    let (route, tls) = choose(&all, options)?;
    let route_id = format!("{} {}", route.resource.id(), route.field);
    let mut notes = Vec::new();
    let mut versions: Vec<DerivedVersion> = Vec::new();
    let mut total = 0.0;
    let mut destinations: Vec<DerivedDestination> = Vec::new();
    for d in &route.destinations {
        if d.weight < 0 {
            return fail(
                d.resource.id(),
                format!("{}.weight", d.field),
                format!("the weight {} is negative", d.weight),
            );
        }
        if d.weight > MAX_WEIGHT {
            return fail(
                d.resource.id(),
                format!("{}.weight", d.field),
                format!(
                    "the weight {} is beyond the route API's limit ({MAX_WEIGHT}, an int32)",
                    d.weight
                ),
            );
        }
        total += d.weight as f64;
        let resolved = resolve(set, d, options, &mut notes)?;
        destinations.push(destination_of(d, &resolved, &destinations));
        for (name, part, provenance) in resolved {
            match versions.iter_mut().find(|v| v.name == name) {
                Some(v) => {
                    v.weight += part;
                    v.provenance.push(provenance);
                }
                None => versions.push(DerivedVersion {
                    name,
                    weight: part,
                    share: 0.0,
                    provenance: vec![provenance],
                }),
            }
        }
    }
    if route.destinations.is_empty() {
        return fail(
            route.resource.id(),
            route.field.clone(),
            "the route lists no destination: no connection would be routed",
        );
    }
    if total <= 0.0 {
        return fail(
            route.resource.id(),
            route.field.clone(),
            "every weight of the route is zero: no connection would be routed",
        );
    }
    for v in &mut versions {
        v.share = v.weight / total;
    }
    Ok(Derivation {
        route: route_id,
        tls,
        route_resource: route.resource.id(),
        route_field: route.field.clone(),
        route_ports: route.ports.clone(),
        versions,
        notes,
        skipped_kinds: set.skipped.clone(),
        destinations,
    })
}

/// The topology entry of one resolved destination, named apart from those before it.
fn destination_of(
    d: &RouteDestination,
    resolved: &[(String, f64, Provenance)],
    before: &[DerivedDestination],
) -> DerivedDestination {
    let base = d
        .subset
        .clone()
        .unwrap_or_else(|| short_host(&d.host).to_owned());
    let mut name = base.clone();
    let mut n = 1;
    while before.iter().any(|b| b.name == name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    DerivedDestination {
        name,
        field: d.field.clone(),
        host: d.host.clone(),
        subset: d.subset.clone(),
        weight: u64::try_from(d.weight).unwrap_or(0),
        members: resolved
            .iter()
            .map(|(version, _, p)| DestinationMember {
                workload: p.workload.clone(),
                version: version.clone(),
                replicas: p.replicas.unwrap_or(1),
            })
            .collect(),
    }
}

/// The versions one destination answers with: (version, part of its weight, provenance).
fn resolve(
    set: &ManifestSet,
    d: &RouteDestination,
    options: &DeriveOptions,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, f64, Provenance)>, DeriveError> {
    let weight = d.weight as f64;
    let short = short_host(&d.host).to_owned();
    let destination = match &d.subset {
        Some(s) => format!("{short} subset {s}"),
        None => short.clone(),
    };
    let provenance = |selected_by, workload, replicas, version_from| Provenance {
        resource: d.resource.id(),
        field: d.field.clone(),
        destination: destination.clone(),
        weight,
        selected_by,
        workload,
        replicas,
        version_from,
    };
    let given = d
        .subset
        .as_ref()
        .filter(|s| options.version_of.contains_key(*s))
        .or_else(|| {
            (d.subset.is_none() && options.version_of.contains_key(&short)).then_some(&short)
        });
    if let Some(name) = given {
        let version = options.version_of[name].clone();
        let option = options.names.version_of.clone();
        return Ok(vec![(
            version,
            weight,
            provenance(
                SelectedBy::Override {
                    name: name.clone(),
                    option: option.clone(),
                },
                None,
                None,
                VersionSource::Override {
                    name: name.clone(),
                    option,
                },
            ),
        )]);
    }
    let host_field = if d.backend {
        format!("{}.name", d.field)
    } else {
        format!("{}.destination.host", d.field)
    };
    let service = set.service(&d.host);
    let version_of = &options.names.version_of;
    let (selector, selected_by): (Labels, SelectedBy) = match (&d.subset, service) {
        (Some(subset), service) => {
            let Some((dr, s, _)) = set.subset(&d.host, subset) else {
                return fail_with(
                    d.resource.id(),
                    format!("{}.destination.subset", d.field),
                    format!(
                        "the subset {} is defined in no DestinationRule for host {short} in the manifests (give {version_of} {subset}=VERSION if it lives elsewhere)",
                        quoted(subset)
                    ),
                    Remedy::VersionOf {
                        name: Some(subset.clone()),
                    },
                );
            };
            let mut labels = service
                .map(|(_, svc)| svc.selector.clone())
                .unwrap_or_default();
            labels.extend(s.labels.clone());
            (
                labels,
                SelectedBy::Subset {
                    rule: dr.id(),
                    subset: subset.clone(),
                },
            )
        }
        (None, Some((r, svc))) => (
            svc.selector.clone(),
            SelectedBy::Service { service: r.id() },
        ),
        (None, None) => match flagger_workload(set, &short) {
            Some((labels, by)) => (labels, by),
            None => {
                return fail_with(
                    d.resource.id(),
                    host_field,
                    format!(
                        "no Service named {short} in the manifests (give {version_of} {short}=VERSION)"
                    ),
                    Remedy::VersionOf { name: Some(short) },
                );
            }
        },
    };
    let workloads = set.selected(&selector);
    if workloads.is_empty() && d.weight == 0 {
        // Istio sends such a destination nothing: after a canary is deleted, its subset
        // stays in the route at weight 0 selecting no pod until the next release.
        notes.push(format!(
            "{destination} ({}) has weight 0 and {selected_by} selects no workload: it gets no connection and names no version",
            d.field
        ));
        return Ok(Vec::new());
    }
    if workloads.is_empty() {
        return fail_with(
            d.resource.id(),
            host_field,
            format!(
                "{selected_by} selects no workload in the manifests (labels {}); give {version_of} NAME=VERSION",
                labels_text(&selector)
            ),
            Remedy::VersionOf { name: None },
        );
    }
    let mut by_version: Vec<(String, u64, Vec<Member>)> = Vec::new();
    for (r, w) in workloads {
        let (version, from) = workload_version(r, w, options)?;
        let replicas = w.spec.replica_count();
        if replicas > MAX_REPLICAS {
            return fail(
                r.id(),
                "spec.replicas",
                format!(
                    "{replicas} replicas is beyond Kubernetes' limit ({MAX_REPLICAS}, an int32)"
                ),
            );
        }
        match by_version.iter_mut().find(|(v, _, _)| *v == version) {
            Some(entry) => {
                entry.1 = entry.1.saturating_add(replicas);
                entry.2.push((r, from, replicas));
            }
            None => by_version.push((version, replicas, vec![(r, from, replicas)])),
        }
    }
    // Saturating: spec.replicas is any i64 in a manifest, and three of them overflow.
    let total: u64 = by_version
        .iter()
        .fold(0u64, |sum, (_, n, _)| sum.saturating_add(*n));
    if by_version.len() > 1 {
        if total == 0 {
            return fail(
                d.resource.id(),
                host_field,
                format!("{selected_by} selects workloads of several versions, all at 0 replicas"),
            );
        }
        let parts: Vec<String> = by_version
            .iter()
            .map(|(v, n, _)| format!("{v} {n}"))
            .collect();
        notes.push(format!(
            "{destination} ({}) selects workloads answering different versions: its weight is split by replicas ({}), a replica-ratio canary",
            d.field,
            parts.join(", ")
        ));
    }
    let mut out = Vec::new();
    for (version, replicas, members) in by_version {
        let fraction = if by_version_single(total, replicas) {
            1.0
        } else {
            replicas as f64 / total as f64
        };
        for (r, from, n) in &members {
            let member_fraction = if replicas == 0 {
                1.0 / members.len() as f64
            } else {
                *n as f64 / replicas as f64
            };
            out.push((
                version.clone(),
                weight * fraction * member_fraction,
                provenance(selected_by.clone(), Some(r.id()), Some(*n), from.clone()),
            ));
        }
    }
    Ok(out)
}

/// A workload behind a destination: the resource, where its version was read, its replicas.
type Member<'a> = (&'a Resource, VersionSource, u64);

/// With one version (or no replicas at all), the destination's whole weight goes to it.
fn by_version_single(total: u64, replicas: u64) -> bool {
    total == 0 || replicas == total
}

/// Flagger's generated routing names `NAME-primary` and `NAME-canary` hosts (NAME: the
/// Canary's `spec.service.name`, by default its target's name); when those Services are
/// not in the set, the Canary says which workloads they are: the target and its
/// `-primary` copy.
pub(crate) fn flagger_workload(set: &ManifestSet, host: &str) -> Option<(Labels, SelectedBy)> {
    let (base, primary) = match (host.strip_suffix("-primary"), host.strip_suffix("-canary")) {
        (Some(b), _) => (b, true),
        (_, Some(b)) => (b, false),
        _ => return None,
    };
    // The generated Services are named after spec.service.name, by default the target's name.
    let (canary, spec) = set
        .canaries()
        .find(|(_, c)| c.service.name.as_deref().unwrap_or(&c.target_ref.name) == base)?;
    let target = if primary {
        format!("{}-primary", spec.target_ref.name)
    } else {
        spec.target_ref.name.clone()
    };
    let (_, w) = set.workloads().find(|(r, _)| r.meta.name == target)?;
    Some((
        w.spec.template.metadata.labels.clone(),
        SelectedBy::CanaryTarget {
            canary: canary.id(),
            target,
        },
    ))
}

/// The version a workload answers with, and where it was read.
pub(crate) fn workload_version(
    r: &Resource,
    w: &Workload,
    options: &DeriveOptions,
) -> Result<(String, VersionSource), DeriveError> {
    let version_of = &options.names.version_of;
    if let Some(v) = options.version_of.get(&r.meta.name) {
        return Ok((
            v.clone(),
            VersionSource::Override {
                name: r.meta.name.clone(),
                option: version_of.clone(),
            },
        ));
    }
    let mut found: Vec<(String, VersionSource)> = Vec::new();
    for (i, c) in w.spec.template.spec.containers.iter().enumerate() {
        if let Some(read) = version::read(c) {
            let container = if c.name.is_empty() {
                format!("containers[{i}]")
            } else {
                c.name.clone()
            };
            found.push((
                read.version,
                VersionSource::Container {
                    container,
                    place: read.source,
                },
            ));
        }
    }
    let remedy = Remedy::VersionOf {
        name: Some(r.meta.name.clone()),
    };
    match found.as_slice() {
        [] => fail_with(
            r.id(),
            "spec.template.spec.containers",
            format!(
                "no container shows the version it answers with (echo-server arguments `PORTS VERSION`, {} or {}); give {version_of} {}=VERSION",
                version::VERSION_FLAG,
                version::VERSION_ENV,
                r.meta.name
            ),
            remedy,
        ),
        [(v, from)] => Ok((v.clone(), from.clone())),
        [(v, from), rest @ ..] if rest.iter().all(|(x, _)| x == v) => Ok((v.clone(), from.clone())),
        several => fail_with(
            r.id(),
            "spec.template.spec.containers",
            format!(
                "its containers answer with different versions ({}): the checker cannot tell them apart; give {version_of} {}=VERSION",
                several
                    .iter()
                    .map(|(v, f)| format!("{v} from {f}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.meta.name
            ),
            remedy,
        ),
    }
}

/// `"text"`: a name from the manifests quoted in a message, raw (the JSON documents carry
/// it as it is; text output escapes it, see `protocol::escape`).
pub(crate) fn quoted(text: &str) -> String {
    format!("\"{text}\"")
}

fn labels_text(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Derivation {
    /// The split as version names and weights, in route order.
    pub fn weights(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.versions.iter().map(|v| (v.name.as_str(), v.weight))
    }

    /// `one=90,two=10`: the split in `--expect` form.
    pub fn expect_text(&self) -> String {
        self.versions
            .iter()
            .map(|v| format!("{}={}", v.name, v.weight))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Derivation {
    /// The split and its provenance, a few lines for the terminal, every line escaped
    /// (`protocol::escape`): names, fields and files come from the manifests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = |text: String| writeln!(f, "{}", protocol::escape(text));
        let tls = self
            .tls
            .as_ref()
            .map(|t| format!(", {t}"))
            .unwrap_or_default();
        line(format!(
            "expected split from {}{tls}: {}",
            self.route,
            self.expect_text()
        ))?;
        for v in &self.versions {
            line(format!("  {} {:.1}%", v.name, v.share * 100.0))?;
            for p in &v.provenance {
                let workload = match (&p.workload, p.replicas) {
                    (Some(w), Some(1)) => format!(" -> {w} (1 replica)"),
                    (Some(w), Some(n)) => format!(" -> {w} ({n} replicas)"),
                    (Some(w), None) => format!(" -> {w}"),
                    _ => String::new(),
                };
                line(format!(
                    "    {} {} {} weight {} -> {}{} answers {} ({})",
                    p.resource,
                    p.field,
                    p.destination,
                    p.weight,
                    p.selected_by,
                    workload,
                    v.name,
                    p.version_from
                ))?;
            }
        }
        for note in &self.notes {
            line(format!("  note: {note}"))?;
        }
        if !self.skipped_kinds.is_empty() {
            let skipped: Vec<String> = self
                .skipped_kinds
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            line(format!("  skipped (not routing): {}", skipped.join(", ")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{sni_intersection, sni_rank};

    #[test]
    fn server_names_rank_as_envoy_picks_filter_chains() {
        let exact = sni_rank("echo.example.com", "Echo.Example.com.").expect("matches");
        let wide = sni_rank("*.example.com", "echo.example.com").expect("matches");
        let deep = sni_rank("*.example.com", "a.b.example.com").expect("any depth");
        let narrow = sni_rank("*.b.example.com", "a.b.example.com").expect("matches");
        let any = sni_rank("*", "echo.example.com").expect("matches");
        assert!(exact > narrow && narrow > deep && wide > any);
        // A wildcard needs at least one label of its own; no partial labels.
        assert_eq!(sni_rank("*.example.com", "example.com"), None);
        assert_eq!(sni_rank("*.example.com", "echoexample.com"), None);
        assert_eq!(sni_rank("*example.com", "echoexample.com"), None);
        assert_eq!(sni_rank("echo.example.com", "echo.example.org"), None);
    }

    #[test]
    fn hostnames_intersect_as_gateway_api_attaches_routes() {
        let meet = |a: &str, b: &str| sni_intersection(a, b);
        assert_eq!(
            meet("*.example.com", "echo.example.com").as_deref(),
            Some("echo.example.com")
        );
        assert_eq!(
            meet("echo.example.com", "*.example.com").as_deref(),
            Some("echo.example.com")
        );
        assert_eq!(
            meet("*.example.com", "*.a.example.com").as_deref(),
            Some("*.a.example.com")
        );
        assert_eq!(
            meet("*.a.example.com", "*.example.com").as_deref(),
            Some("*.a.example.com")
        );
        assert_eq!(
            meet("echo.example.com", "echo.example.com").as_deref(),
            Some("echo.example.com")
        );
        assert_eq!(meet("*.example.com", "example.com"), None);
        assert_eq!(meet("*.example.com", "*.example.org"), None);
        assert_eq!(meet("a.example.com", "b.example.com"), None);
    }
}
