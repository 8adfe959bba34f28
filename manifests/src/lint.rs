//! The routing mistakes of a TCP canary found in its manifests, all of them at once:
//! each finding has a stable code, the resource and field path, one sentence, and the
//! matching `istioctl analyze` code where there is one.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::derive::{DeriveOptions, RouteDestination, flagger_workload, routes, workload_version};
use crate::model::{Kind, ManifestSet, Resource, short_host};

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

struct Findings(Vec<Finding>);

impl Findings {
    fn add(
        &mut self,
        rule: Rule,
        r: &Resource,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let f = Finding {
            code: rule.code,
            name: rule.name,
            istio_code: rule.istio_code,
            resource: r.id(),
            field: field.into(),
            message: message.into(),
            origin: r.origin.clone(),
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

/// Every finding in `set`, in reading order of the routes and resources.
pub fn lint(set: &ManifestSet, options: &DeriveOptions) -> Vec<Finding> {
    let mut out = Findings(Vec::new());
    duplicates(set, &mut out);
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
            for (version, workload, images) in destination(set, d, options, &mut out) {
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
                            "{} and {} run different images ({} and {}) but both answer with the version {version:?}: the checker could not tell them apart",
                            other.id(),
                            workload.id(),
                            other_images.join(","),
                            images.join(",")
                        ),
                    );
                }
                versions.push((version, workload, images, key));
            }
        }
    }
    for (r, vs) in set.virtual_services() {
        gateways(set, r, vs, &mut out);
    }
    canaries(set, &mut out);
    for (r, route) in set.tcp_routes() {
        for (i, p) in route.parent_refs.iter().enumerate() {
            let gateway = set
                .each(|k| match k {
                    Kind::ApiGateway(g) => Some(g),
                    _ => None,
                })
                .find(|(g, _)| g.meta.name == p.name);
            let Some((_, g)) = gateway else {
                out.add(
                    GATEWAY_NOT_FOUND,
                    r,
                    format!("spec.parentRefs[{i}].name"),
                    format!("the parent Gateway {} is not in the manifests", p.name),
                );
                continue;
            };
            let listeners: Vec<_> = g
                .listeners
                .iter()
                .filter(|l| {
                    p.section_name.as_ref().is_none_or(|s| &l.name == s)
                        && p.port.is_none_or(|port| l.port == Some(port))
                })
                .collect();
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
                    format!("the parent listener {} of Gateway {} has protocol {:?}, not TCP: a TCPRoute does not attach to it", l.name, p.name, l.protocol),
                );
            }
        }
    }
    out.0
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
                .map_or_else(|| "absent".to_owned(), |p| format!("{p:?}"));
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
                    out.add(SUBSET_NOT_FOUND, d.resource, format!("{}.destination.subset", d.field), format!("the subset {subset:?} is defined in no DestinationRule for host {short}"));
                    return Vec::new();
                };
                selector.extend(s.labels.clone());
                if set.selected(&selector).is_empty() {
                    out.add(SUBSET_SELECTS_NOTHING, dr, format!("spec.subsets[{i}].labels"), format!("the subset {subset:?} (with Service {short}'s selector) selects no workload in the manifests"));
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
        } else if let Some(p) = svc.ports.first().filter(|p| !p.is_tcp_for_istio()) {
            out.add(PORT_NOT_TCP, svc_r, "spec.ports[0].name", not_tcp(p));
        }
        return;
    };
    match svc.ports.iter().position(|p| p.port == Some(number)) {
        Some(i) if !svc.ports[i].is_tcp_for_istio() => out.add(
            PORT_NOT_TCP,
            svc_r,
            format!("spec.ports[{i}].name"),
            not_tcp(&svc.ports[i]),
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

fn not_tcp(p: &crate::model::ServicePort) -> String {
    format!(
        "the port {:?} ({}) is not named tcp or tcp-* and has no appProtocol: tcp, so Istio does not treat it as TCP",
        p.name,
        p.port
            .map_or_else(|| "no number".to_owned(), |n| n.to_string())
    )
}

fn gateways(
    set: &ManifestSet,
    r: &Resource,
    vs: &crate::model::VirtualService,
    out: &mut Findings,
) {
    let mut servers = Vec::new();
    for (i, g) in vs.gateways.iter().enumerate() {
        let name = g.rsplit('/').next().unwrap_or(g);
        if name == "mesh" {
            continue;
        }
        let found = set
            .each(|k| match k {
                Kind::IstioGateway(g) => Some(g),
                _ => None,
            })
            .find(|(gr, _)| gr.meta.name == name);
        match found {
            Some((_, gw)) => servers.extend(gw.servers.iter()),
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
            let tcp = servers.iter().any(|s| {
                s.port.number == Some(port)
                    && matches!(
                        s.port.protocol.to_ascii_uppercase().as_str(),
                        "TCP" | "TLS" | "MONGO"
                    )
            });
            if !tcp {
                out.add(MATCH_PORT_NOT_ON_GATEWAY, r, format!("spec.tcp[{i}].match[{j}].port"), format!("port {port} is not a TCP server port of the VirtualService's Gateway: no connection on it reaches this route"));
            }
        }
    }
}
