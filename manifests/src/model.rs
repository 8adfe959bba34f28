//! The typed resources the checker reads, and the set they form.
//!
//! Only the fields that routing depends on are read; everything else is ignored. Kinds
//! outside [`Kind`] are skipped and counted, never an error. A field of the wrong type is
//! an error naming the document, the resource and the field path.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::load::RawDocument;

/// Labels or a label selector's `matchLabels`.
pub type Labels = BTreeMap<String, String>;

/// `metadata`: name, namespace, labels and annotations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, when given.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: Labels,
    /// `metadata.annotations`.
    pub annotations: Labels,
}

/// One resource of a known kind, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The file and document it was read from.
    pub origin: String,
    /// `apiVersion`.
    pub api_version: String,
    /// `metadata`.
    pub meta: Meta,
    /// The kind and its typed spec.
    pub kind: Kind,
}

impl Resource {
    /// `Kind/name`, the way messages name a resource.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind.name(), self.meta.name)
    }
}

/// The kinds the checker understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Istio `VirtualService`.
    VirtualService(VirtualService),
    /// Istio `DestinationRule`.
    DestinationRule(DestinationRule),
    /// Istio `Gateway` (networking.istio.io).
    IstioGateway(IstioGateway),
    /// Kubernetes `Service`.
    Service(Service),
    /// `Deployment`, `StatefulSet` or Argo `Rollout`.
    Workload(Workload),
    /// Gateway API `Gateway` (gateway.networking.k8s.io).
    ApiGateway(ApiGateway),
    /// Gateway API `TCPRoute`.
    TcpRoute(TcpRoute),
    /// Gateway API `TLSRoute` (v1alpha2, v1alpha3 or v1).
    TlsRoute(TlsRoute),
    /// Flagger `Canary`.
    Canary(Canary),
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::VirtualService(_) => "VirtualService",
            Kind::DestinationRule(_) => "DestinationRule",
            Kind::IstioGateway(_) | Kind::ApiGateway(_) => "Gateway",
            Kind::Service(_) => "Service",
            Kind::Workload(w) => w.kind.name(),
            Kind::TcpRoute(_) => "TCPRoute",
            Kind::TlsRoute(_) => "TLSRoute",
            Kind::Canary(_) => "Canary",
        }
    }
}

/// Istio `VirtualService` spec (the parts TCP routing uses).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VirtualService {
    /// `spec.hosts`.
    pub hosts: Vec<String>,
    /// `spec.gateways`.
    pub gateways: Vec<String>,
    /// `spec.tcp`.
    pub tcp: Vec<TcpRouteRule>,
    /// `spec.tls`: routes chosen by the TLS server name (SNI) without terminating TLS.
    pub tls: Vec<TlsRouteRule>,
    /// `spec.http`: only where its destinations go (an http route never carries a TCP
    /// connection).
    pub http: Vec<HttpRouteRule>,
}

/// One `spec.http[]` entry: its destinations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HttpRouteRule {
    /// `route`.
    pub route: Vec<RouteDestination>,
}

/// One `spec.tcp[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TcpRouteRule {
    /// `match`.
    #[serde(rename = "match")]
    pub matches: Vec<TcpMatch>,
    /// `route`.
    pub route: Vec<RouteDestination>,
}

/// One `match[]` entry of a tcp route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TcpMatch {
    /// `port`.
    pub port: Option<u32>,
    /// `gateways`.
    pub gateways: Vec<String>,
}

/// One `spec.tls[]` entry of a VirtualService.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TlsRouteRule {
    /// `match`.
    #[serde(rename = "match")]
    pub matches: Vec<TlsMatch>,
    /// `route`.
    pub route: Vec<RouteDestination>,
}

/// One `match[]` entry of a tls route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsMatch {
    /// `sniHosts`: the server names it matches (`*.example.com` for a suffix).
    pub sni_hosts: Vec<String>,
    /// `port`.
    pub port: Option<u32>,
    /// `gateways`.
    pub gateways: Vec<String>,
}

/// One `route[]` entry: a destination and its weight.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RouteDestination {
    /// `destination`.
    pub destination: Destination,
    /// `weight` (absent: 100 for a lone destination, else 0, as Istio reads it).
    pub weight: Option<i64>,
}

/// A route's `destination`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Destination {
    /// `host`: a Service name, short or fully qualified.
    pub host: String,
    /// `subset`.
    pub subset: Option<String>,
    /// `port`.
    pub port: Option<PortSelector>,
}

/// `destination.port`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PortSelector {
    /// `number`.
    pub number: Option<u32>,
}

/// Istio `DestinationRule` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DestinationRule {
    /// `spec.host`.
    pub host: String,
    /// `spec.subsets`.
    pub subsets: Vec<Subset>,
}

/// One subset of a DestinationRule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Subset {
    /// `name`.
    pub name: String,
    /// `labels`.
    pub labels: Labels,
}

/// Istio `Gateway` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct IstioGateway {
    /// `spec.selector`.
    pub selector: Labels,
    /// `spec.servers`.
    pub servers: Vec<GatewayServer>,
}

/// One server of an Istio Gateway.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct GatewayServer {
    /// `port`.
    pub port: GatewayPort,
    /// `hosts`.
    pub hosts: Vec<String>,
    /// `tls`: absent for plain TCP (and HTTP).
    pub tls: Option<ServerTls>,
}

impl GatewayServer {
    /// Whether the server passes TLS through by SNI (`tls.mode: PASSTHROUGH`), the one
    /// mode in which Istio routes its connections by a VirtualService's `tls` routes.
    pub fn is_passthrough(&self) -> bool {
        self.tls_mode()
            .is_some_and(|m| m.eq_ignore_ascii_case("PASSTHROUGH"))
    }

    /// The server's `tls.mode` as written (`PASSTHROUGH`, the API's default, when `tls`
    /// names none), or `None` without `tls`.
    pub fn tls_mode(&self) -> Option<&str> {
        self.tls
            .as_ref()
            .map(|t| t.mode.as_deref().unwrap_or("PASSTHROUGH"))
    }
}

/// An Istio Gateway server's `tls`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServerTls {
    /// `mode`: `PASSTHROUGH`, `SIMPLE`, `MUTUAL`, `AUTO_PASSTHROUGH`, `ISTIO_MUTUAL`, ...
    pub mode: Option<String>,
}

/// An Istio Gateway server's port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct GatewayPort {
    /// `number`.
    pub number: Option<u32>,
    /// `name`.
    pub name: String,
    /// `protocol`.
    pub protocol: String,
}

/// Kubernetes `Service` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Service {
    /// `spec.selector`.
    pub selector: Labels,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
}

/// One Service port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServicePort {
    /// `name`.
    pub name: String,
    /// `port`.
    pub port: Option<u32>,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
}

impl ServicePort {
    /// Whether Istio treats this port as TCP: named `tcp`/`tcp-*` or `appProtocol: tcp` (IST0118).
    pub fn is_tcp_for_istio(&self) -> bool {
        let name = self.name.to_ascii_lowercase();
        name == "tcp"
            || name.starts_with("tcp-")
            || self
                .app_protocol
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
    }

    /// Whether Istio treats this port as TLS or HTTPS, carried opaque to a pod that
    /// terminates the TLS: named `tls`/`tls-*`/`https`/`https-*`, or such an `appProtocol`.
    pub fn is_tls_for_istio(&self) -> bool {
        let name = self.name.to_ascii_lowercase();
        let named = ["tls", "https"]
            .iter()
            .any(|p| name == *p || name.starts_with(&format!("{p}-")));
        named
            || self
                .app_protocol
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("tls") || p.eq_ignore_ascii_case("https"))
    }
}

/// Which workload kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `apps/v1 Deployment`.
    Deployment,
    /// `apps/v1 StatefulSet`.
    StatefulSet,
    /// Argo Rollouts `Rollout`.
    Rollout,
}

impl WorkloadKind {
    /// The Kubernetes kind name.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Rollout => "Rollout",
        }
    }
}

/// A Deployment, StatefulSet or Rollout: replicas and pod template.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Which kind.
    pub kind: WorkloadKind,
    /// The spec.
    pub spec: WorkloadSpec,
}

/// The workload spec fields read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkloadSpec {
    /// `spec.replicas` (absent: 1).
    pub replicas: Option<i64>,
    /// `spec.template`.
    pub template: PodTemplate,
    /// `spec.strategy`: an Argo Rollout's canary traffic routing (a Deployment's
    /// `type`/`rollingUpdate` are not read).
    pub strategy: Strategy,
}

/// `spec.strategy` of a workload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Strategy {
    /// `canary` (Argo Rollouts).
    pub canary: Option<CanaryStrategy>,
}

/// An Argo Rollout's `spec.strategy.canary`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// `trafficRouting`.
    pub traffic_routing: Option<TrafficRouting>,
}

/// An Argo Rollout's `trafficRouting`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TrafficRouting {
    /// `istio`.
    pub istio: Option<IstioTrafficRouting>,
}

/// An Argo Rollout's `trafficRouting.istio`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IstioTrafficRouting {
    /// `virtualService`.
    pub virtual_service: Option<RolloutVirtualService>,
    /// `virtualServices`.
    pub virtual_services: Vec<RolloutVirtualService>,
    /// `destinationRule`.
    pub destination_rule: Option<RolloutDestinationRule>,
}

/// A VirtualService whose weights an Argo Rollout sets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutVirtualService {
    /// `name`.
    pub name: String,
    /// `routes`: the http routes, by name.
    pub routes: Vec<String>,
    /// `tcpRoutes`: the tcp routes, by match port.
    pub tcp_routes: Vec<RolloutTcpRoute>,
}

/// One of a Rollout's `tcpRoutes`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RolloutTcpRoute {
    /// `port`: the tcp route whose match has this port.
    pub port: Option<u32>,
}

/// The DestinationRule whose subsets an Argo Rollout points at its ReplicaSets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutDestinationRule {
    /// `name`.
    pub name: String,
    /// `canarySubsetName`.
    pub canary_subset_name: String,
    /// `stableSubsetName`.
    pub stable_subset_name: String,
}

impl WorkloadSpec {
    /// The replica count (Kubernetes' default 1 when absent; negative counts as 0).
    pub fn replica_count(&self) -> u64 {
        self.replicas.map_or(1, |r| u64::try_from(r).unwrap_or(0))
    }
}

/// A pod template.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PodTemplate {
    /// `metadata`.
    pub metadata: Meta,
    /// `spec`.
    pub spec: PodSpec,
}

/// A pod spec: its containers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PodSpec {
    /// `containers`.
    pub containers: Vec<Container>,
}

/// A container: what it runs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Container {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: String,
    /// `command`.
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `env`.
    pub env: Vec<EnvVar>,
}

/// One `env[]` entry (`valueFrom` cannot be resolved without a cluster).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EnvVar {
    /// `name`.
    pub name: String,
    /// `value`.
    pub value: Option<String>,
}

/// Gateway API `Gateway` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ApiGateway {
    /// `spec.listeners`.
    pub listeners: Vec<Listener>,
}

/// One Gateway API listener.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Listener {
    /// `name`.
    pub name: String,
    /// `port`.
    pub port: Option<u32>,
    /// `protocol`.
    pub protocol: String,
    /// `hostname`: the server names the listener accepts (absent: any).
    pub hostname: Option<String>,
    /// `tls`.
    pub tls: Option<ListenerTls>,
    /// `allowedRoutes`.
    #[serde(rename = "allowedRoutes")]
    pub allowed_routes: AllowedRoutes,
}

impl Listener {
    /// Whether the listener passes TLS through: `protocol: TLS` with `tls.mode:
    /// Passthrough` (Gateway API's default mode is `Terminate`).
    pub fn is_passthrough(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("TLS")
            && self
                .tls
                .as_ref()
                .and_then(|t| t.mode.as_deref())
                .is_some_and(|m| m.eq_ignore_ascii_case("Passthrough"))
    }
}

/// A Gateway API listener's `tls`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ListenerTls {
    /// `mode`: `Terminate` (the default) or `Passthrough`.
    pub mode: Option<String>,
}

/// A listener's `allowedRoutes`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AllowedRoutes {
    /// `kinds`: the route kinds that may attach (empty: those of the listener's protocol).
    pub kinds: Vec<RouteKind>,
}

/// One of a listener's `allowedRoutes.kinds`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RouteKind {
    /// `group` (absent: gateway.networking.k8s.io).
    pub group: Option<String>,
    /// `kind`.
    pub kind: String,
}

/// Gateway API `TCPRoute` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpRoute {
    /// `spec.parentRefs`.
    pub parent_refs: Vec<ParentRef>,
    /// `spec.rules`.
    pub rules: Vec<TcpRouteRuleApi>,
}

/// Gateway API `TLSRoute` spec: routes chosen by the TLS server name (SNI), the TLS
/// passed through.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsRoute {
    /// `spec.hostnames`: the server names it matches (`*.example.com` for a suffix;
    /// absent: those of its listener).
    pub hostnames: Vec<String>,
    /// `spec.parentRefs`.
    pub parent_refs: Vec<ParentRef>,
    /// `spec.rules`.
    pub rules: Vec<TcpRouteRuleApi>,
}

/// A TCPRoute's or TLSRoute's parent reference.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ParentRef {
    /// `name`.
    pub name: String,
    /// `sectionName`.
    pub section_name: Option<String>,
    /// `port`.
    pub port: Option<u32>,
}

/// A TCPRoute or TLSRoute rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpRouteRuleApi {
    /// `backendRefs`.
    pub backend_refs: Vec<BackendRef>,
}

/// A TCPRoute or TLSRoute backend: a Service, its port and weight (default 1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BackendRef {
    /// `name`.
    pub name: String,
    /// `kind` (default Service).
    pub kind: Option<String>,
    /// `port`.
    pub port: Option<u32>,
    /// `weight` (absent: 1).
    pub weight: Option<i64>,
}

/// Flagger `Canary` spec (the parts the generated routing depends on).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Canary {
    /// `spec.provider` (absent: Flagger's `-mesh-provider`, `istio` by default).
    pub provider: Option<String>,
    /// `spec.targetRef`.
    pub target_ref: TargetRef,
    /// `spec.service`.
    pub service: CanaryService,
}

/// `spec.targetRef` of a Canary.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TargetRef {
    /// `kind`.
    pub kind: String,
    /// `name`.
    pub name: String,
}

/// `spec.service` of a Canary.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CanaryService {
    /// `name`: the Services' base name (default: the target's name).
    pub name: Option<String>,
    /// `port`.
    pub port: Option<u32>,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
    /// `gateways`.
    pub gateways: Vec<String>,
}

/// Every resource read, and the kinds skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestSet {
    /// The resources of known kinds, in reading order.
    pub resources: Vec<Resource>,
    /// Skipped kinds (`apiVersion kind`) and how many of each.
    pub skipped: BTreeMap<String, usize>,
}

/// A document that is not a usable resource of a known kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin} ({resource}): field {field}: {message}")]
pub struct ModelError {
    /// The file and document.
    pub origin: String,
    /// `Kind/name`.
    pub resource: String,
    /// The field path, e.g. `spec.tcp[0].route[1].weight`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Which known kind an `apiVersion` and `kind` name, if any.
fn known(api_version: &str, kind: &str) -> Option<&'static str> {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    let istio = group == "networking.istio.io" && matches!(version, "v1" | "v1beta1" | "v1alpha3");
    let gateway_api =
        group == "gateway.networking.k8s.io" && matches!(version, "v1" | "v1beta1" | "v1alpha2");
    match kind {
        "VirtualService" if istio => Some("VirtualService"),
        "DestinationRule" if istio => Some("DestinationRule"),
        "Gateway" if istio => Some("IstioGateway"),
        "Gateway" if gateway_api => Some("ApiGateway"),
        "TCPRoute" if gateway_api => Some("TCPRoute"),
        // TLSRoute is v1alpha2 (Istio's long-standing read), v1alpha3 (Gateway API 1.3's
        // experimental channel) or v1 (its standard channel since 1.5).
        "TLSRoute"
            if group == "gateway.networking.k8s.io"
                && matches!(version, "v1" | "v1alpha2" | "v1alpha3") =>
        {
            Some("TLSRoute")
        }
        "Service" if api_version == "v1" => Some("Service"),
        "Deployment" | "StatefulSet" if group == "apps" => Some(kind_static(kind)),
        "Rollout" if group == "argoproj.io" => Some("Rollout"),
        "Canary" if group == "flagger.app" => Some("Canary"),
        _ => None,
    }
}

fn kind_static(kind: &str) -> &'static str {
    if kind == "Deployment" {
        "Deployment"
    } else {
        "StatefulSet"
    }
}

impl ManifestSet {
    /// Types every document; unknown kinds are counted in [`ManifestSet::skipped`].
    pub fn from_documents(documents: Vec<RawDocument>) -> Result<Self, ModelError> {
        let mut set = ManifestSet::default();
        for doc in documents {
            let text = |key: &str| {
                doc.value
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let api_version = text("apiVersion");
            let kind = text("kind");
            let Some(which) = known(&api_version, &kind) else {
                *set.skipped
                    .entry(format!("{api_version} {kind}").trim().to_owned())
                    .or_default() += 1;
                continue;
            };
            let meta: Meta = field(&doc, &kind, "metadata")?;
            let resource = format!("{kind}/{}", meta.name);
            if meta.name.is_empty() {
                return Err(ModelError {
                    origin: doc.origin.clone(),
                    resource,
                    field: "metadata.name".to_owned(),
                    message: "every resource needs a name".to_owned(),
                });
            }
            let at = |e: ModelError| ModelError {
                resource: resource.clone(),
                ..e
            };
            let kind = match which {
                "VirtualService" => Kind::VirtualService(field(&doc, &kind, "spec").map_err(at)?),
                "DestinationRule" => Kind::DestinationRule(field(&doc, &kind, "spec").map_err(at)?),
                "IstioGateway" => Kind::IstioGateway(field(&doc, &kind, "spec").map_err(at)?),
                "ApiGateway" => Kind::ApiGateway(field(&doc, &kind, "spec").map_err(at)?),
                "TCPRoute" => Kind::TcpRoute(field(&doc, &kind, "spec").map_err(at)?),
                "TLSRoute" => Kind::TlsRoute(field(&doc, &kind, "spec").map_err(at)?),
                "Service" => Kind::Service(field(&doc, &kind, "spec").map_err(at)?),
                "Canary" => Kind::Canary(field(&doc, &kind, "spec").map_err(at)?),
                workload => Kind::Workload(Workload {
                    kind: match workload {
                        "Deployment" => WorkloadKind::Deployment,
                        "StatefulSet" => WorkloadKind::StatefulSet,
                        _ => WorkloadKind::Rollout,
                    },
                    spec: field(&doc, &kind, "spec").map_err(at)?,
                }),
            };
            set.resources.push(Resource {
                origin: doc.origin,
                api_version,
                meta,
                kind,
            });
        }
        Ok(set)
    }

    /// The resources of one kind with their specs, via `pick`.
    pub fn each<'a, T: 'a>(
        &'a self,
        pick: impl Fn(&'a Kind) -> Option<&'a T> + 'a,
    ) -> impl Iterator<Item = (&'a Resource, &'a T)> + 'a {
        self.resources
            .iter()
            .filter_map(move |r| pick(&r.kind).map(|t| (r, t)))
    }

    /// The Services by name.
    pub fn services(&self) -> impl Iterator<Item = (&Resource, &Service)> {
        self.each(|k| match k {
            Kind::Service(s) => Some(s),
            _ => None,
        })
    }

    /// The Service named `host` (short name or `name.namespace.svc...`), if in the set.
    pub fn service(&self, host: &str) -> Option<(&Resource, &Service)> {
        let short = short_host(host);
        self.services().find(|(r, _)| r.meta.name == short)
    }

    /// The subset `name` of the first DestinationRule for `host` that defines it, with the
    /// rule and the subset's index in `spec.subsets`.
    pub fn subset(&self, host: &str, name: &str) -> Option<(&Resource, &Subset, usize)> {
        let short = short_host(host);
        self.destination_rules()
            .filter(|(_, dr)| short_host(&dr.host) == short)
            .find_map(|(r, dr)| {
                dr.subsets
                    .iter()
                    .position(|s| s.name == name)
                    .map(|i| (r, &dr.subsets[i], i))
            })
    }

    /// The workloads.
    pub fn workloads(&self) -> impl Iterator<Item = (&Resource, &Workload)> {
        self.each(|k| match k {
            Kind::Workload(w) => Some(w),
            _ => None,
        })
    }

    /// The DestinationRules.
    pub fn destination_rules(&self) -> impl Iterator<Item = (&Resource, &DestinationRule)> {
        self.each(|k| match k {
            Kind::DestinationRule(d) => Some(d),
            _ => None,
        })
    }

    /// The VirtualServices.
    pub fn virtual_services(&self) -> impl Iterator<Item = (&Resource, &VirtualService)> {
        self.each(|k| match k {
            Kind::VirtualService(v) => Some(v),
            _ => None,
        })
    }

    /// The TCPRoutes.
    pub fn tcp_routes(&self) -> impl Iterator<Item = (&Resource, &TcpRoute)> {
        self.each(|k| match k {
            Kind::TcpRoute(t) => Some(t),
            _ => None,
        })
    }

    /// The TLSRoutes.
    pub fn tls_routes(&self) -> impl Iterator<Item = (&Resource, &TlsRoute)> {
        self.each(|k| match k {
            Kind::TlsRoute(t) => Some(t),
            _ => None,
        })
    }

    /// The Istio Gateways.
    pub fn istio_gateways(&self) -> impl Iterator<Item = (&Resource, &IstioGateway)> {
        self.each(|k| match k {
            Kind::IstioGateway(g) => Some(g),
            _ => None,
        })
    }

    /// The Gateway API Gateways.
    pub fn api_gateways(&self) -> impl Iterator<Item = (&Resource, &ApiGateway)> {
        self.each(|k| match k {
            Kind::ApiGateway(g) => Some(g),
            _ => None,
        })
    }

    /// The Flagger Canaries.
    pub fn canaries(&self) -> impl Iterator<Item = (&Resource, &Canary)> {
        self.each(|k| match k {
            Kind::Canary(c) => Some(c),
            _ => None,
        })
    }

    /// The workloads whose pod template labels match `selector` (an empty selector matches none).
    pub fn selected(&self, selector: &Labels) -> Vec<(&Resource, &Workload)> {
        if selector.is_empty() {
            return Vec::new();
        }
        self.workloads()
            .filter(|(_, w)| selects(selector, &w.spec.template.metadata.labels))
            .collect()
    }
}

/// Whether every label of `selector` is in `labels` with the same value.
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Service name of a host: `tcp-echo.prod.svc.cluster.local` → `tcp-echo`.
pub fn short_host(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// Deserialises `doc.value[key]` (absent: the default), naming the field path on error.
fn field<T: DeserializeOwned + Default>(
    doc: &RawDocument,
    kind: &str,
    key: &str,
) -> Result<T, ModelError> {
    let Some(value) = doc.value.get(key) else {
        return Ok(T::default());
    };
    if value.is_null() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ModelError {
            origin: doc.origin.clone(),
            resource: kind.to_owned(),
            field: if path == "." {
                key.to_owned()
            } else {
                format!("{key}.{path}")
            },
            message: e.into_inner().to_string(),
        }
    })
}
