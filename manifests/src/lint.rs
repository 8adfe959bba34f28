//! The routing mistakes of a TCP canary found in its manifests, all of them at once:
//! each finding has a stable code, the resource and field path, one sentence, and the
//! matching `istioctl analyze` code where there is one. Istio (Gateway, VirtualService,
//! DestinationRule, Service), Gateway API (Gateway, TCPRoute), Argo Rollouts' traffic
//! routing and Flagger's Canary are read; the split the set routes is derived too, and a
//! split that cannot be derived, or differs from the one expected, is a finding.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::derive::{
    Derivation, DeriveError, DeriveOptions, Remedy, Route, RouteDestination, derive,
    flagger_workload, parent_listeners, quoted, routes, sni_intersection, tls_route_names,
    workload_version,
};
use crate::model::{GatewayServer, Kind, Labels, ManifestSet, Resource, selects, short_host};

/// One kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// The stable code, e.g. `TC101`.
    pub code: &'static str,
    /// A short name, e.g. `subset-not-found`.
    pub name: &'static str,
    /// The `istioctl analyze` code for the same mistake, if there is one.
    pub istio_code: Option<&'static str>,
}

macro_rules! rules {
    ($($id:ident = $code:literal, $name:literal, $istio:expr;)*) => {
        $(
            #[doc = concat!("`", $code, "` ", $name, ".")]
            pub const $id: Rule = Rule { code: $code, name: $name, istio_code: $istio };
        )*
        /// Every rule, in code order.
        pub const RULES: &[Rule] = &[$($id),*];
    };
}

rules! {
    SUBSET_NOT_FOUND = "TC101", "subset-not-found", Some("IST0101");
    HOST_NOT_FOUND = "TC102", "host-not-found", Some("IST0101");
    SUBSET_SELECTS_NOTHING = "TC103", "subset-selects-no-workload", Some("IST0173");
    SERVICE_SELECTS_NOTHING = "TC104", "service-selects-no-workload", None;
    PORT_NOT_TCP = "TC105", "port-not-tcp", Some("IST0118");
    PORT_REQUIRED = "TC106", "destination-port-required", Some("IST0112");
    GATEWAY_NOT_FOUND = "TC107", "gateway-not-found", Some("IST0101");
    MATCH_PORT_NOT_ON_GATEWAY = "TC108", "match-port-not-on-gateway", None;
    NEGATIVE_WEIGHT = "TC109", "negative-weight", Some("IST0106");
    ALL_WEIGHTS_ZERO = "TC110", "all-weights-zero", Some("IST0106");
    ONLY_DESTINATION_ZERO = "TC111", "only-destination-weight-zero", None;
    VERSIONS_INDISTINGUISHABLE = "TC112", "versions-indistinguishable", None;
    LISTENER_NOT_TCP = "TC113", "listener-not-tcp", None;
    BACKEND_NOT_FOUND = "TC114", "backend-service-not-found", None;
    VERSION_UNKNOWN = "TC115", "version-unknown", None;
    DUPLICATE_RESOURCE = "TC116", "duplicate-resource", None;
    CANARY_NOT_TCP = "TC117", "flagger-canary-not-tcp", None;
    SPLIT_NOT_DERIVED = "TC118", "split-not-derived", None;
    GATEWAY_PORT_NOT_ON_SERVICE = "TC119", "gateway-port-not-on-gateway-service", Some("IST0162");
    DESTINATION_RULE_HOST_NOT_FOUND = "TC120", "destination-rule-host-not-found", None;
    HTTP_ROUTE_TO_TCP_PORT = "TC121", "http-route-to-tcp-port", None;
    LISTENER_DISALLOWS_TCPROUTE = "TC122", "listener-disallows-tcproute", None;
    BACKEND_PORT_NOT_ON_SERVICE = "TC123", "backend-port-not-on-service", None;
    ROLLOUT_REFERENCE_NOT_FOUND = "TC124", "rollout-reference-not-found", None;
    ROLLOUT_TCP_ROUTE_NOT_MATCHED = "TC125", "rollout-tcp-route-not-matched", None;
    ROLLOUT_SUBSET_NOT_FOUND = "TC126", "rollout-subset-not-found", None;
    SPLIT_NOT_EXPECTED = "TC127", "split-not-expected", None;
    TLS_ROUTE_NOT_PASSTHROUGH = "TC128", "tls-route-not-passthrough", None;
    SNI_MATCHES_NO_ROUTE = "TC129", "sni-matches-no-route", None;
    SNI_HOSTS_OVERLAP = "TC130", "sni-hosts-overlap", None;
    TCP_ROUTE_SHADOWED_BY_TLS = "TC131", "tcp-route-shadowed-by-tls", None;
    TLSROUTE_HOSTNAME_NOT_ON_LISTENER = "TC132", "tlsroute-hostname-not-on-listener", None;
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The stable code, e.g. `TC101`.
    pub code: &'static str,
    /// The rule's short name.
    pub name: &'static str,
    /// The matching `istioctl analyze` code, if any.
    pub istio_code: Option<&'static str>,
    /// `Kind/name`.
    pub resource: String,
    /// The field path, e.g. `spec.tcp[0].route[1].destination.subset`.
    pub field: String,
    /// One sentence.
    pub message: String,
    /// The file and document.
    pub origin: String,
}

/// What [`lint`] is told beyond the manifests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LintOptions {
    /// How the split is derived: the route's port, versions given by hand.
    pub derive: DeriveOptions,
    /// The split the caller expects, as version names and weights (`checker lint
    /// --expect`): a derived split with other shares is a finding
    /// ([`SPLIT_NOT_EXPECTED`]).
    pub expect: Option<Vec<(String, f64)>>,
}

/// What [`lint`] found: every finding, and the split the set routes.
#[derive(Debug, Clone, PartialEq)]
pub struct Linted {
    /// Every finding, in reading order of the routes and resources.
    pub findings: Vec<Finding>,
    /// The split derived as `verify --expect-from` derives it, or why there is none.
    pub split: Result<Derivation, DeriveError>,
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(
        &mut self,
        rule: Rule,
        r: &Resource,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(rule, r.id(), field.into(), message.into(), r.origin.clone());
    }

    fn push(
        &mut self,
        rule: Rule,
        resource: String,
        field: String,
        message: String,
        origin: String,
    ) {
        let f = Finding {
            code: rule.code,
            name: rule.name,
            istio_code: rule.istio_code,
            resource,
            field,
            message,
            origin,
        };
        if !self
            .0
            .iter()
            .any(|g| g.code == f.code && g.resource == f.resource && g.field == f.field)
        {
            self.0.push(f);
        }
    }
}

/// Every finding in `set` and the split it routes.
pub fn lint(set: &ManifestSet, options: &LintOptions) -> Linted {
    let mut out = Findings(Vec::new());
    routing(set, &options.derive, &mut out);
    let split = derive(set, &options.derive);
    split_findings(set, &split, options.expect.as_deref(), &mut out);
    Linted {
        findings: out.0,
        split,
    }
}

/// The findings about how connections are routed, every rule but the split's.
fn routing(set: &ManifestSet, options: &DeriveOptions, out: &mut Findings) {
    duplicates(set, out);
    for route in routes(set) {
        let weights: Vec<i64> = route.destinations.iter().map(|d| d.weight).collect();
        for d in &route.destinations {
            if d.weight < 0 {
                out.add(
                    NEGATIVE_WEIGHT,
                    d.resource,
                    format!("{}.weight", d.field),
                    format!(
                        "the weight {} is negative; weights are zero or more",
                        d.weight
                    ),
                );
            }
        }
        if weights.len() == 1 && weights[0] == 0 {
            out.add(
                ONLY_DESTINATION_ZERO,
                route.resource,
                format!("{}.weight", route.destinations[0].field),
                "the route's only destination has weight 0: no connection would be routed",
            );
        } else if weights.len() > 1 && weights.iter().all(|w| *w == 0) {
            out.add(
                ALL_WEIGHTS_ZERO,
                route.resource,
                route.field.clone(),
                "every weight of the route is zero: no connection would be routed",
            );
        }
        let mut versions: Vec<(String, &Resource, Vec<String>, String)> = Vec::new();
        for d in &route.destinations {
            for (version, workload, images) in destination(set, d, options, out) {
                let key = d.subset.clone().unwrap_or_else(|| d.host.clone());
                if let Some((_, other, other_images, _)) =
                    versions.iter().find(|(v, w, imgs, k)| {
                        *v == version && w.id() != workload.id() && *imgs != images && *k != key
                    })
                {
                    out.add(
                        VERSIONS_INDISTINGUISHABLE,
                        workload,
                        "spec.template.spec.containers",
                        format!(
                            "{} and {} run different images ({} and {}) but both answer with the version {}: the checker could not tell them apart",
                            other.id(),
                            workload.id(),
                            other_images.join(","),
                            images.join(","),
                            quoted(&version)
                        ),
                    );
                }
                versions.push((version, workload, images, key));
            }
        }
    }
    for (r, vs) in set.virtual_services() {
        gateways(set, r, vs, out);
        mesh_shadows(set, r, vs, out);
        http_routes(set, r, vs, out);
    }
    tls_route_parents(set, out);
    sni_overlaps(set, out);
    gateway_services(set, out);
    destination_rules(set, out);
    canaries(set, out);
    rollouts(set, out);
    for (r, route) in set.tcp_routes() {
        for (i, p, listeners) in parents(set, r, &route.parent_refs, "TCPRoute", out) {
            if listeners.is_empty() {
                out.add(
                    LISTENER_NOT_TCP,
                    r,
                    format!("spec.parentRefs[{i}]"),
                    format!(
                        "Gateway {} has no listener {}",
                        p.name,
                        p.section_name.as_deref().unwrap_or("on that port")
                    ),
                );
            } else if let Some(l) = listeners
                .iter()
                .find(|l| !l.protocol.eq_ignore_ascii_case("TCP"))
            {
                out.add(
                    LISTENER_NOT_TCP,
                    r,
                    format!("spec.parentRefs[{i}].sectionName"),
                    format!("the parent listener {} of Gateway {} has protocol {}, not TCP: a TCPRoute does not attach to it", l.name, p.name, quoted(&l.protocol)),
                );
            }
        }
    }
}

/// A derived split, or why there is none, as findings: a split that cannot be derived
/// when nothing else explains it ([`SPLIT_NOT_DERIVED`]), one that differs from the
/// expected split ([`SPLIT_NOT_EXPECTED`]).
fn split_findings(
    set: &ManifestSet,
    split: &Result<Derivation, DeriveError>,
    expect: Option<&[(String, f64)]>,
    out: &mut Findings,
) {
    let origin_of = |resource: &str| {
        set.resources
            .iter()
            .find(|r| r.id() == resource)
            .map_or_else(|| "the manifests".to_owned(), |r| r.origin.clone())
    };
    match split {
        Err(e) => {
            // A server name that no tls route of the port names: a mistake of its own.
            if let Some(Remedy::Sni { given: Some(_) }) = &e.remedy {
                out.push(
                    SNI_MATCHES_NO_ROUTE,
                    e.resource.clone(),
                    e.field.clone(),
                    e.message.clone(),
                    origin_of(&e.resource),
                );
                return;
            }
            // Several routes: not a mistake, the caller chooses one by its port or server
            // name. No route beside a Flagger Canary: Flagger writes it. Other findings:
            // they say why.
            let chosen_by_port = matches!(
                e.remedy,
                Some(Remedy::RoutePort | Remedy::Sni { given: None })
            );
            let flagger_writes_it = routes(set).is_empty() && set.canaries().next().is_some();
            if chosen_by_port || flagger_writes_it || !out.0.is_empty() {
                return;
            }
            out.push(
                SPLIT_NOT_DERIVED,
                e.resource.clone(),
                e.field.clone(),
                format!(
                    "the split these manifests route cannot be derived: {}",
                    e.message
                ),
                origin_of(&e.resource),
            );
        }
        Ok(d) => {
            let Some(expect) = expect else { return };
            let derived: Vec<(&str, f64)> = d.weights().collect();
            let expected: Vec<(&str, f64)> = expect.iter().map(|(n, w)| (n.as_str(), *w)).collect();
            if shares_agree(&derived, &expected) {
                return;
            }
            out.push(
                SPLIT_NOT_EXPECTED,
                d.route_resource.clone(),
                d.route_field.clone(),
                format!(
                    "the route sends {}, not the expected {}",
                    split_text(&derived),
                    split_text(&expected)
                ),
                origin_of(&d.route_resource),
            );
        }
    }
}

/// Whether two splits give every version the same share (absent: 0).
pub fn shares_agree(a: &[(&str, f64)], b: &[(&str, f64)]) -> bool {
    let total = |s: &[(&str, f64)]| s.iter().map(|(_, w)| w).sum::<f64>();
    let (ta, tb) = (total(a), total(b));
    let share = |s: &[(&str, f64)], t: f64, name: &str| {
        if t > 0.0 {
            s.iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, w)| w)
                .sum::<f64>()
                / t
        } else {
            0.0
        }
    };
    a.iter()
        .chain(b)
        .all(|(name, _)| (share(a, ta, name) - share(b, tb, name)).abs() < 1e-9)
}

/// `one=90,two=10`.
fn split_text(split: &[(&str, f64)]) -> String {
    split
        .iter()
        .map(|(n, w)| format!("{n}={w}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A Flagger Canary on Istio writes a `tcp` route only when `spec.service.appProtocol`
/// is TCP; otherwise it writes an `http` route, which TCP connections never take.
fn canaries(set: &ManifestSet, out: &mut Findings) {
    for (r, c) in set.canaries() {
        let istio = c
            .provider
            .as_deref()
            .is_none_or(|p| p.eq_ignore_ascii_case("istio"));
        let tcp = c
            .service
            .app_protocol
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("tcp"));
        if istio && !tcp {
            let found = c
                .service
                .app_protocol
                .as_deref()
                .map_or_else(|| "absent".to_owned(), quoted);
            out.add(
                CANARY_NOT_TCP,
                r,
                "spec.service.appProtocol",
                format!(
                    "spec.service.appProtocol is {found}, not TCP: Flagger generates an http route, which TCP connections never take, so the canary weights do not apply to them"
                ),
            );
        }
    }
}

fn duplicates(set: &ManifestSet, out: &mut Findings) {
    let mut seen: BTreeMap<(String, Option<String>), &Resource> = BTreeMap::new();
    for r in &set.resources {
        let key = (
            format!(
                "{} {}",
                r.api_version.split('/').next().unwrap_or(""),
                r.id()
            ),
            r.meta.namespace.clone(),
        );
        match seen.get(&key) {
            Some(first) => out.add(
                DUPLICATE_RESOURCE,
                r,
                "metadata.name",
                format!(
                    "{} is defined twice (first in {}): the later one replaces it when applied",
                    r.id(),
                    first.origin
                ),
            ),
            None => {
                seen.insert(key, r);
            }
        }
    }
}

/// Checks one destination; returns (version, workload, images) of the workloads it reaches.
fn destination<'a>(
    set: &'a ManifestSet,
    d: &RouteDestination<'a>,
    options: &DeriveOptions,
    out: &mut Findings,
) -> Vec<(String, &'a Resource, Vec<String>)> {
    let short = short_host(&d.host);
    let service = set.service(&d.host);
    let selector = if d.backend {
        let Some((svc_r, svc)) = service else {
            out.add(
                BACKEND_NOT_FOUND,
                d.resource,
                format!("{}.name", d.field),
                format!("the backend Service {short} is not in the manifests"),
            );
            return Vec::new();
        };
        backend_port(d, svc_r, svc, out);
        if set.selected(&svc.selector).is_empty() {
            out.add(
                SERVICE_SELECTS_NOTHING,
                svc_r,
                "spec.selector",
                format!("the selector of Service {short} selects no workload in the manifests"),
            );
            return Vec::new();
        }
        svc.selector.clone()
    } else {
        let mut selector = match (service, flagger_workload(set, short)) {
            (Some((_, svc)), _) => svc.selector.clone(),
            (None, Some((labels, _))) => labels,
            (None, None) => {
                out.add(
                    HOST_NOT_FOUND,
                    d.resource,
                    format!("{}.destination.host", d.field),
                    format!("the host {} matches no Service in the manifests", d.host),
                );
                return Vec::new();
            }
        };
        if let Some((svc_r, svc)) = service {
            ports(d, svc_r, svc, out);
        }
        match &d.subset {
            Some(subset) => {
                let Some((dr, s, i)) = set.subset(&d.host, subset) else {
                    out.add(
                        SUBSET_NOT_FOUND,
                        d.resource,
                        format!("{}.destination.subset", d.field),
                        format!(
                            "the subset {} is defined in no DestinationRule for host {short}",
                            quoted(subset)
                        ),
                    );
                    return Vec::new();
                };
                selector.extend(s.labels.clone());
                if set.selected(&selector).is_empty() {
                    out.add(SUBSET_SELECTS_NOTHING, dr, format!("spec.subsets[{i}].labels"), format!("the subset {} (with Service {short}'s selector) selects no workload in the manifests", quoted(subset)));
                    return Vec::new();
                }
            }
            None => {
                if set.selected(&selector).is_empty() {
                    match service {
                        Some((svc_r, _)) => out.add(SERVICE_SELECTS_NOTHING, svc_r, "spec.selector", format!("the selector of Service {short} selects no workload in the manifests")),
                        None => out.add(HOST_NOT_FOUND, d.resource, format!("{}.destination.host", d.field), format!("the host {} matches no workload in the manifests", d.host)),
                    }
                    return Vec::new();
                }
            }
        }
        selector
    };
    if options.version_of.contains_key(short)
        || d.subset
            .as_ref()
            .is_some_and(|s| options.version_of.contains_key(s))
    {
        return Vec::new();
    }
    let mut reached = Vec::new();
    for (r, w) in set.selected(&selector) {
        match workload_version(r, w, options) {
            Ok((version, _)) => {
                let images = w
                    .spec
                    .template
                    .spec
                    .containers
                    .iter()
                    .map(|c| c.image.clone())
                    .collect();
                reached.push((version, r, images));
            }
            Err(e) => out.add(VERSION_UNKNOWN, r, e.field, e.message),
        }
    }
    reached
}

/// The Service port a destination uses must be TCP for Istio, and named when there are several.
fn ports(d: &RouteDestination, svc_r: &Resource, svc: &crate::model::Service, out: &mut Findings) {
    let Some(number) = d.port else {
        if svc.ports.len() > 1 {
            out.add(
                PORT_REQUIRED,
                d.resource,
                format!("{}.destination.port", d.field),
                format!(
                    "Service {} has {} ports: the destination must name one (port.number)",
                    svc_r.meta.name,
                    svc.ports.len()
                ),
            );
        } else if let Some(p) = svc.ports.first().filter(|p| !opaque(d, p)) {
            out.add(PORT_NOT_TCP, svc_r, "spec.ports[0].name", not_tcp(d, p));
        }
        return;
    };
    match svc.ports.iter().position(|p| p.port == Some(number)) {
        Some(i) if !opaque(d, &svc.ports[i]) => out.add(
            PORT_NOT_TCP,
            svc_r,
            format!("spec.ports[{i}].name"),
            not_tcp(d, &svc.ports[i]),
        ),
        Some(_) => {}
        None => out.add(
            PORT_REQUIRED,
            d.resource,
            format!("{}.destination.port.number", d.field),
            format!("port {number} is not a port of Service {}", svc_r.meta.name),
        ),
    }
}

/// Whether Istio carries a destination's Service port as opaque bytes: TCP, or for a
/// `tls` route's destination also TLS or HTTPS (the pod terminates the TLS).
fn opaque(d: &RouteDestination, p: &crate::model::ServicePort) -> bool {
    p.is_tcp_for_istio() || (d.tls && p.is_tls_for_istio())
}

fn not_tcp(d: &RouteDestination, p: &crate::model::ServicePort) -> String {
    let number = p
        .port
        .map_or_else(|| "no number".to_owned(), |n| n.to_string());
    if d.tls {
        format!(
            "the port {} ({number}) is not named tcp, tls or https (or tcp-*, tls-*, https-*) and has no such appProtocol, so Istio does not carry the TLS stream through it untouched",
            quoted(&p.name)
        )
    } else {
        format!(
            "the port {} ({number}) is not named tcp or tcp-* and has no appProtocol: tcp, so Istio does not treat it as TCP",
            quoted(&p.name)
        )
    }
}

fn gateways(
    set: &ManifestSet,
    r: &Resource,
    vs: &crate::model::VirtualService,
    out: &mut Findings,
) {
    let mut servers: Vec<(&Resource, &GatewayServer)> = Vec::new();
    for (i, g) in vs.gateways.iter().enumerate() {
        let name = g.rsplit('/').next().unwrap_or(g);
        if name == "mesh" {
            continue;
        }
        let found = set.istio_gateways().find(|(gr, _)| gr.meta.name == name);
        match found {
            Some((gr, gw)) => servers.extend(gw.servers.iter().map(|s| (gr, s))),
            None => out.add(
                GATEWAY_NOT_FOUND,
                r,
                format!("spec.gateways[{i}]"),
                format!("the Gateway {g} is not in the manifests"),
            ),
        }
    }
    let bound_to_gateway = vs.gateways.iter().any(|g| g != "mesh");
    if !bound_to_gateway || servers.is_empty() {
        return;
    }
    for (i, rule) in vs.tcp.iter().enumerate() {
        for (j, m) in rule.matches.iter().enumerate() {
            let Some(port) = m.port else { continue };
            let tcp = servers.iter().any(|(_, s)| {
                s.port.number == Some(port)
                    && matches!(
                        s.port.protocol.to_ascii_uppercase().as_str(),
                        "TCP" | "TLS" | "MONGO"
                    )
            });
            if !tcp {
                out.add(MATCH_PORT_NOT_ON_GATEWAY, r, format!("spec.tcp[{i}].match[{j}].port"), format!("port {port} is not a TCP server port of the VirtualService's Gateway: no connection on it reaches this route"));
            }
            // On a PASSTHROUGH server Istio reads the tls routes only.
            if let Some((g, _)) = servers
                .iter()
                .find(|(_, s)| s.port.number == Some(port) && s.is_passthrough())
            {
                out.add(
                    TCP_ROUTE_SHADOWED_BY_TLS,
                    r,
                    format!("spec.tcp[{i}].match[{j}].port"),
                    format!(
                        "port {port} of Gateway {} is tls.mode PASSTHROUGH: Istio builds that listener from tls routes only, one filter chain per server name ({}), so this tcp route carries no connection; a plain TCP connection, or a TLS one whose server name no tls route names, matches no filter chain and is closed",
                        g.meta.name,
                        tls_routes_on(set, port, None)
                    ),
                );
            }
        }
    }
    for (i, rule) in vs.tls.iter().enumerate() {
        for (j, m) in rule.matches.iter().enumerate() {
            let on_port: Vec<&(&Resource, &GatewayServer)> = servers
                .iter()
                .filter(|(_, s)| m.port.is_none_or(|p| s.port.number == Some(p)))
                .collect();
            if on_port.iter().any(|(_, s)| s.is_passthrough()) {
                continue;
            }
            match (m.port, on_port.first()) {
                (Some(port), None) => out.add(
                    MATCH_PORT_NOT_ON_GATEWAY,
                    r,
                    format!("spec.tls[{i}].match[{j}].port"),
                    format!("port {port} is not a server port of the VirtualService's Gateway: no connection on it reaches this route"),
                ),
                (Some(port), Some((g, server))) => out.add(
                    TLS_ROUTE_NOT_PASSTHROUGH,
                    r,
                    format!("spec.tls[{i}].match[{j}].port"),
                    format!(
                        "the server on port {port} of Gateway {} is {}, not tls.mode PASSTHROUGH: Istio routes its connections by tcp or http routes there, never by this tls route",
                        g.meta.name,
                        server_text(server)
                    ),
                ),
                (None, _) => out.add(
                    TLS_ROUTE_NOT_PASSTHROUGH,
                    r,
                    format!("spec.tls[{i}].match[{j}]"),
                    "no server of the VirtualService's Gateway is tls.mode PASSTHROUGH: Istio routes no connection by this tls route",
                ),
            }
        }
    }
}

/// `protocol TLS with tls.mode SIMPLE`, `protocol TCP without tls`.
fn server_text(server: &GatewayServer) -> String {
    match server.tls_mode() {
        Some(mode) => format!("protocol {} with tls.mode {mode}", server.port.protocol),
        None => format!("protocol {} without tls", server.port.protocol),
    }
}

/// The tls routes of the set on `port` with their server names, for messages:
/// `VirtualService/x spec.tls[0] (sniHosts a.example.com)`, or `none`. `only`: of one
/// resource.
fn tls_routes_on(set: &ManifestSet, port: u32, only: Option<&Resource>) -> String {
    let all = routes(set);
    let described: Vec<String> = all
        .iter()
        .filter(|route| route.tls.is_some() && route.ports.contains(&port))
        .filter(|route| only.is_none_or(|o| o.id() == route.resource.id()))
        .map(|route| {
            format!(
                "{} {} ({})",
                route.resource.id(),
                route.field,
                names_on(route, port)
            )
        })
        .collect();
    if described.is_empty() {
        "none".to_owned()
    } else {
        described.join(", ")
    }
}

/// `sniHosts a.example.com, b.example.com`: a tls route's server names on a port.
fn names_on(route: &Route, port: u32) -> String {
    let matches: Vec<_> = route.sni_on(Some(port)).collect();
    let what = matches
        .first()
        .and_then(|m| m.field.rsplit('.').next())
        .unwrap_or("server names");
    let names: Vec<&str> = matches
        .iter()
        .flat_map(|m| m.hosts.iter().map(String::as_str))
        .collect();
    format!("{what} {}", names.join(", "))
}

/// In the mesh (a VirtualService without gateways, or with `mesh`), a tcp and a tls
/// route on one port share the sidecar's listener: Istio builds a filter chain per server
/// name from the tls routes plus a plain one from the tcp route.
fn mesh_shadows(
    set: &ManifestSet,
    r: &Resource,
    vs: &crate::model::VirtualService,
    out: &mut Findings,
) {
    let in_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    if !in_mesh || vs.tls.is_empty() {
        return;
    }
    let tls_ports: Vec<Option<u32>> = vs
        .tls
        .iter()
        .flat_map(|rule| rule.matches.iter().map(|m| m.port))
        .collect();
    for (i, rule) in vs.tcp.iter().enumerate() {
        let ports: Vec<Option<u32>> = if rule.matches.is_empty() {
            vec![None]
        } else {
            rule.matches.iter().map(|m| m.port).collect()
        };
        let shared = ports.iter().find_map(|p| {
            tls_ports
                .iter()
                .find(|t| p.is_none() || t.is_none() || *t == p)
                .map(|t| t.or(*p))
        });
        let Some(port) = shared else { continue };
        let tls_text = match port {
            Some(port) => tls_routes_on(set, port, Some(r)),
            None => "spec.tls".to_owned(),
        };
        let on = port.map(|p| format!(" on port {p}")).unwrap_or_default();
        out.add(
            TCP_ROUTE_SHADOWED_BY_TLS,
            r,
            format!("spec.tcp[{i}]"),
            format!(
                "the tls routes{on} ({tls_text}) take the TLS connections whose server name they name: Istio builds a filter chain per server name plus a plain one from this tcp route, so only plain TCP connections, and TLS ones with another server name, hit this route"
            ),
        );
    }
}

/// The parents of a Gateway API route of `kind`, each with the listeners it names: a
/// parent Gateway not in the set is a finding (and left out), and so is a listener
/// whose `allowedRoutes.kinds` leave `kind` out (it does not attach there).
fn parents<'a>(
    set: &'a ManifestSet,
    r: &Resource,
    refs: &'a [crate::model::ParentRef],
    kind: &str,
    out: &mut Findings,
) -> Vec<(
    usize,
    &'a crate::model::ParentRef,
    Vec<&'a crate::model::Listener>,
)> {
    let mut found = Vec::new();
    for (i, p) in refs.iter().enumerate() {
        let Some(listeners) = parent_listeners(set, p) else {
            out.add(
                GATEWAY_NOT_FOUND,
                r,
                format!("spec.parentRefs[{i}].name"),
                format!("the parent Gateway {} is not in the manifests", p.name),
            );
            continue;
        };
        disallowed(r, i, p, &listeners, kind, out);
        found.push((i, p, listeners));
    }
    found
}

/// A route of `kind` attaches to no listener whose `allowedRoutes.kinds` leave it out.
fn disallowed(
    r: &Resource,
    i: usize,
    p: &crate::model::ParentRef,
    listeners: &[&crate::model::Listener],
    kind: &str,
    out: &mut Findings,
) {
    if let Some(l) = listeners.iter().find(|l| !allows(l, kind)) {
        let kinds: Vec<&str> = l
            .allowed_routes
            .kinds
            .iter()
            .map(|k| k.kind.as_str())
            .collect();
        out.add(
            LISTENER_DISALLOWS_TCPROUTE,
            r,
            format!("spec.parentRefs[{i}]"),
            format!(
                "the listener {} of Gateway {} allows only {} routes (allowedRoutes.kinds): the {kind} does not attach to it",
                l.name,
                p.name,
                kinds.join(", ")
            ),
        );
    }
}

/// Whether a Gateway API listener lets a route of `kind` attach (`allowedRoutes.kinds`;
/// none given: those of its protocol).
fn allows(l: &crate::model::Listener, kind: &str) -> bool {
    l.allowed_routes.kinds.is_empty()
        || l.allowed_routes.kinds.iter().any(|k| {
            k.kind == kind
                && k.group
                    .as_deref()
                    .is_none_or(|g| g == "gateway.networking.k8s.io")
        })
}

/// A TLSRoute attaches to a listener of its parent Gateway with `protocol: TLS` and
/// `tls.mode: Passthrough` that allows TLSRoutes, and its hostnames must lie within the
/// listener's hostname.
fn tls_route_parents(set: &ManifestSet, out: &mut Findings) {
    for (r, route) in set.tls_routes() {
        for (i, p, listeners) in parents(set, r, &route.parent_refs, "TLSRoute", out) {
            if listeners.is_empty() {
                out.add(
                    TLS_ROUTE_NOT_PASSTHROUGH,
                    r,
                    format!("spec.parentRefs[{i}]"),
                    format!(
                        "Gateway {} has no listener {}: the TLSRoute passes nothing through",
                        p.name,
                        p.section_name.as_deref().unwrap_or("on that port")
                    ),
                );
                continue;
            }
            if let Some(l) = listeners.iter().find(|l| !l.is_passthrough()) {
                let mode = l
                    .tls
                    .as_ref()
                    .map(|t| t.mode.as_deref().unwrap_or("Terminate"))
                    .map_or_else(|| "no tls".to_owned(), |m| format!("tls.mode {m}"));
                out.add(
                    TLS_ROUTE_NOT_PASSTHROUGH,
                    r,
                    format!("spec.parentRefs[{i}].sectionName"),
                    format!(
                        "the parent listener {} of Gateway {} has protocol {} and {mode}, not protocol TLS with tls.mode Passthrough: the gateway passes no TLS through to the pods there",
                        l.name,
                        p.name,
                        quoted(&l.protocol)
                    ),
                );
            }
            if route.hostnames.is_empty() {
                continue;
            }
            for l in &listeners {
                let Some(hostname) = &l.hostname else {
                    continue;
                };
                if route
                    .hostnames
                    .iter()
                    .all(|h| sni_intersection(hostname, h).is_none())
                {
                    out.add(
                        TLSROUTE_HOSTNAME_NOT_ON_LISTENER,
                        r,
                        "spec.hostnames",
                        format!(
                            "none of the hostnames {} lies within {} of listener {} of Gateway {}: the TLSRoute does not attach there and routes no connection",
                            route.hostnames.join(", "),
                            hostname,
                            l.name,
                            p.name
                        ),
                    );
                }
            }
        }
    }
}

/// One server name on one gateway port: where it is written, first come first served.
type NameSeen = BTreeMap<(String, u32, String), (String, String)>;

/// The same server name twice on one gateway port: Istio keeps the first match naming it
/// (by the VirtualServices' age) and skips the later one with a warning in istiod's log;
/// Gateway API gives it to the oldest TLSRoute. A wildcard beside an exact name is not
/// an overlap: Envoy takes the most specific name.
fn sni_overlaps(set: &ManifestSet, out: &mut Findings) {
    let mut seen: NameSeen = BTreeMap::new();
    let mut check = |scope: String,
                     port: u32,
                     host: &str,
                     r: &Resource,
                     field: String,
                     out: &mut Findings| {
        let key = (scope, port, host.trim_end_matches('.').to_ascii_lowercase());
        match seen.get(&key) {
            Some((first, first_field)) if *first != r.id() || *first_field != field => {
                out.add(
                    SNI_HOSTS_OVERLAP,
                    r,
                    field,
                    format!(
                        "the server name {host} on port {port} is also named by {first} {first_field}: the gateway gives it to the first (the older resource; here the one read first) and this one routes no connection for it"
                    ),
                );
            }
            Some(_) => {}
            None => {
                seen.insert(key, (r.id(), field));
            }
        }
    };
    for (r, vs) in set.virtual_services() {
        let gateways: Vec<&str> = vs
            .gateways
            .iter()
            .map(|g| g.rsplit('/').next().unwrap_or(g))
            .filter(|g| *g != "mesh")
            .collect();
        for g in gateways {
            let passthrough: Vec<u32> = set
                .istio_gateways()
                .filter(|(gr, _)| gr.meta.name == g)
                .flat_map(|(_, gw)| gw.servers.iter())
                .filter(|s| s.is_passthrough())
                .filter_map(|s| s.port.number)
                .collect();
            for (i, rule) in vs.tls.iter().enumerate() {
                for (j, m) in rule.matches.iter().enumerate() {
                    let ports = m.port.map_or_else(|| passthrough.clone(), |p| vec![p]);
                    for port in ports {
                        for host in &m.sni_hosts {
                            check(
                                format!("Istio Gateway {g}"),
                                port,
                                host,
                                r,
                                format!("spec.tls[{i}].match[{j}].sniHosts"),
                                out,
                            );
                        }
                    }
                }
            }
        }
    }
    for (r, route) in set.tls_routes() {
        for m in tls_route_names(set, route) {
            let (Some(gateway), Some(port)) = (&m.gateway, m.port) else {
                continue;
            };
            for host in &m.hosts {
                check(
                    format!("Gateway API Gateway {gateway}"),
                    port,
                    host,
                    r,
                    m.field.clone(),
                    out,
                );
            }
        }
    }
}

/// A TCPRoute's Service backend needs a port, one of the Service's.
fn backend_port(
    d: &RouteDestination,
    svc_r: &Resource,
    svc: &crate::model::Service,
    out: &mut Findings,
) {
    let field = format!("{}.port", d.field);
    match d.port {
        None => out.add(
            BACKEND_PORT_NOT_ON_SERVICE,
            d.resource,
            field,
            format!(
                "the backend Service {} has no port given: Gateway API requires one for a Service backend",
                svc_r.meta.name
            ),
        ),
        Some(port) if !svc.ports.iter().any(|p| p.port == Some(port)) => out.add(
            BACKEND_PORT_NOT_ON_SERVICE,
            d.resource,
            field,
            format!(
                "port {port} is not a port of Service {} ({}): no connection reaches the backend",
                svc_r.meta.name,
                port_list(svc)
            ),
        ),
        Some(_) => {}
    }
}

/// `9000, 9001`: a Service's port numbers, for messages.
fn port_list(svc: &crate::model::Service) -> String {
    let ports: Vec<String> = svc
        .ports
        .iter()
        .filter_map(|p| p.port.map(|n| n.to_string()))
        .collect();
    if ports.is_empty() {
        "it has none".to_owned()
    } else {
        format!("ports {}", ports.join(", "))
    }
}

/// An http route never carries a TCP connection: one whose destination is a Service port
/// Istio treats as TCP routes nothing.
fn http_routes(
    set: &ManifestSet,
    r: &Resource,
    vs: &crate::model::VirtualService,
    out: &mut Findings,
) {
    for (i, rule) in vs.http.iter().enumerate() {
        for (j, d) in rule.route.iter().enumerate() {
            let Some((svc_r, svc)) = set.service(&d.destination.host) else {
                continue;
            };
            let number = d.destination.port.as_ref().and_then(|p| p.number);
            let port = match number {
                Some(n) => svc.ports.iter().find(|p| p.port == Some(n)),
                None if svc.ports.len() == 1 => svc.ports.first(),
                None => None,
            };
            if let Some(p) = port.filter(|p| p.is_tcp_for_istio()) {
                out.add(
                    HTTP_ROUTE_TO_TCP_PORT,
                    r,
                    format!("spec.http[{i}].route[{j}].destination"),
                    format!(
                        "the port {} of Service {} is TCP for Istio, so this http route never carries a connection to it: route it under spec.tcp",
                        quoted(&p.name),
                        svc_r.meta.name
                    ),
                );
            }
        }
    }
}

/// Every server port of an Istio Gateway must be a port of the Service in front of the
/// gateway pods it configures, when that Service is in the set (IST0162): the default
/// ingress gateway Service has only 15021, 80 and 443.
fn gateway_services(set: &ManifestSet, out: &mut Findings) {
    for (r, gw) in set.each(|k| match k {
        Kind::IstioGateway(g) => Some(g),
        _ => None,
    }) {
        if gw.selector.is_empty() {
            continue;
        }
        // The Services whose pods carry every label the Gateway selects by.
        let fronting: Vec<(&Resource, &crate::model::Service)> = set
            .services()
            .filter(|(_, svc)| !svc.selector.is_empty() && selects(&gw.selector, &svc.selector))
            .collect();
        if fronting.is_empty() {
            continue;
        }
        for (i, server) in gw.servers.iter().enumerate() {
            let Some(number) = server.port.number else {
                continue;
            };
            if fronting
                .iter()
                .any(|(_, svc)| svc.ports.iter().any(|p| p.port == Some(number)))
            {
                continue;
            }
            let names: Vec<String> = fronting
                .iter()
                .map(|(s, svc)| format!("{} ({})", s.id(), port_list(svc)))
                .collect();
            out.add(
                GATEWAY_PORT_NOT_ON_SERVICE,
                r,
                format!("spec.servers[{i}].port.number"),
                format!(
                    "port {number} is not a port of the gateway's Service {}: connections to it never reach the gateway; add it to the Service",
                    names.join(", ")
                ),
            );
        }
    }
}

/// The Service name of a host that names one in the cluster (`tcp-echo`,
/// `tcp-echo.prod.svc.cluster.local`), or `None` for an external or wildcard host.
fn cluster_service(host: &str) -> Option<&str> {
    let in_cluster = !host.contains('.') || host.split('.').nth(2) == Some("svc");
    (in_cluster && !host.contains('*')).then(|| short_host(host))
}

/// A DestinationRule's host must be a Service of the set, and each of its subsets
/// (with the Service's selector) must select a workload (IST0173), routed to or not.
fn destination_rules(set: &ManifestSet, out: &mut Findings) {
    for (r, dr) in set.destination_rules() {
        let Some(name) = cluster_service(&dr.host) else {
            continue;
        };
        let service = set.service(name);
        if service.is_none() && flagger_workload(set, name).is_none() {
            out.add(
                DESTINATION_RULE_HOST_NOT_FOUND,
                r,
                "spec.host",
                format!(
                    "the host {} matches no Service in the manifests: its subsets and traffic policy apply to nothing",
                    dr.host
                ),
            );
            continue;
        }
        let base: Labels = service
            .map(|(_, svc)| svc.selector.clone())
            .or_else(|| flagger_workload(set, name).map(|(labels, _)| labels))
            .unwrap_or_default();
        for (i, subset) in dr.subsets.iter().enumerate() {
            let mut selector = base.clone();
            selector.extend(subset.labels.clone());
            if set.selected(&selector).is_empty() {
                out.add(
                    SUBSET_SELECTS_NOTHING,
                    r,
                    format!("spec.subsets[{i}].labels"),
                    format!(
                        "the subset {} (with Service {name}'s selector) selects no workload in the manifests",
                        quoted(&subset.name)
                    ),
                );
            }
        }
    }
}

/// Argo Rollouts' Istio traffic routing: the VirtualService and DestinationRule it names
/// must be in the set, its `tcpRoutes` must match the VirtualService's tcp routes by
/// port (without them Argo moves only http weights, and TCP connections never reach the
/// canary), and its stable and canary subsets must be the DestinationRule's and those
/// routes' destinations.
fn rollouts(set: &ManifestSet, out: &mut Findings) {
    const AT: &str = "spec.strategy.canary.trafficRouting.istio";
    for (r, w) in set.workloads() {
        let Some(istio) = w
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.traffic_routing.as_ref())
            .and_then(|t| t.istio.as_ref())
        else {
            continue;
        };
        let subsets = istio.destination_rule.as_ref().map(|d| {
            [
                ("stableSubsetName", d.stable_subset_name.as_str()),
                ("canarySubsetName", d.canary_subset_name.as_str()),
            ]
        });
        let refs = istio
            .virtual_service
            .iter()
            .map(|v| (format!("{AT}.virtualService"), v))
            .chain(
                istio
                    .virtual_services
                    .iter()
                    .enumerate()
                    .map(|(k, v)| (format!("{AT}.virtualServices[{k}]"), v)),
            );
        for (field, reference) in refs {
            let name = reference.name.split('.').next().unwrap_or_default();
            let Some((_, vs)) = set.virtual_services().find(|(v, _)| v.meta.name == name) else {
                out.add(
                    ROLLOUT_REFERENCE_NOT_FOUND,
                    r,
                    format!("{field}.name"),
                    format!(
                        "the VirtualService {} is not in the manifests: the Rollout cannot set its weights",
                        reference.name
                    ),
                );
                continue;
            };
            if vs.tcp.is_empty() {
                continue;
            }
            if reference.tcp_routes.is_empty() {
                out.add(
                    ROLLOUT_TCP_ROUTE_NOT_MATCHED,
                    r,
                    format!("{field}.tcpRoutes"),
                    format!(
                        "VirtualService {name} has tcp routes but the Rollout lists no tcpRoutes: Argo Rollouts sets only the http routes' weights, and no TCP connection reaches the canary"
                    ),
                );
            }
            for (k, t) in reference.tcp_routes.iter().enumerate() {
                let matched: Vec<&crate::model::TcpRouteRule> = vs
                    .tcp
                    .iter()
                    .filter(|rule| {
                        rule.matches
                            .iter()
                            .any(|m| m.port.is_some() && m.port == t.port)
                    })
                    .collect();
                if matched.is_empty() {
                    let ports: Vec<String> = vs
                        .tcp
                        .iter()
                        .flat_map(|rule| rule.matches.iter().filter_map(|m| m.port))
                        .map(|p| p.to_string())
                        .collect();
                    out.add(
                        ROLLOUT_TCP_ROUTE_NOT_MATCHED,
                        r,
                        format!("{field}.tcpRoutes[{k}].port"),
                        format!(
                            "port {} matches no tcp route of VirtualService {name} (its match ports: {}): Argo Rollouts sets no TCP weight",
                            t.port.map_or_else(|| "(none)".to_owned(), |p| p.to_string()),
                            if ports.is_empty() { "none".to_owned() } else { ports.join(", ") }
                        ),
                    );
                    continue;
                }
                for (key, subset) in subsets.iter().flatten() {
                    let routed = matched.iter().any(|rule| {
                        rule.route
                            .iter()
                            .any(|d| d.destination.subset.as_deref() == Some(*subset))
                    });
                    if !routed {
                        out.add(
                            ROLLOUT_SUBSET_NOT_FOUND,
                            r,
                            format!("{AT}.destinationRule.{key}"),
                            format!(
                                "the tcp route of VirtualService {name} on port {} has no destination with the subset {}: Argo Rollouts cannot set its weight",
                                t.port.unwrap_or_default(),
                                quoted(subset)
                            ),
                        );
                    }
                }
            }
        }
        let Some(reference) = &istio.destination_rule else {
            continue;
        };
        let name = reference.name.split('.').next().unwrap_or_default();
        let Some((_, dr)) = set.destination_rules().find(|(d, _)| d.meta.name == name) else {
            out.add(
                ROLLOUT_REFERENCE_NOT_FOUND,
                r,
                format!("{AT}.destinationRule.name"),
                format!(
                    "the DestinationRule {} is not in the manifests: the Rollout cannot point its subsets at its ReplicaSets",
                    reference.name
                ),
            );
            continue;
        };
        for (key, subset) in subsets.iter().flatten() {
            if !dr.subsets.iter().any(|s| s.name == *subset) {
                out.add(
                    ROLLOUT_SUBSET_NOT_FOUND,
                    r,
                    format!("{AT}.destinationRule.{key}"),
                    format!(
                        "the subset {} is not a subset of DestinationRule {name}",
                        quoted(subset)
                    ),
                );
            }
        }
    }
}
