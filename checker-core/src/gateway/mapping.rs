//! Which version each cluster is: from explicit overrides (`CLUSTER_OR_SUBSET=VERSION`),
//! else from the manifests' derivation (Istio's `outbound|PORT|SUBSET|HOST` → the
//! route destination with that host and subset → the workloads its DestinationRule
//! subset selects → the version they answer with, as the expected split is derived).
//! A cluster that cannot be mapped to exactly one version is an error naming it.

use std::collections::BTreeMap;

use manifests::{Derivation, DerivedDestination};
use serde::Serialize;

use super::cluster::IstioCluster;

/// Istio's value of `destination_version` when the pod carries no version label.
pub const UNKNOWN_VERSION: &str = "unknown";

/// One cluster's version and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterVersion {
    /// The cluster name.
    pub cluster: String,
    /// The version its workloads answer with.
    pub version: String,
    /// Where the version came from: `given for subset canary`, or the route destination
    /// and workload (`VirtualService/tcp-echo spec.tcp[0].route[1] -> Deployment/tcp-echo-canary`).
    pub from: String,
}

/// Cluster name → version, for the clusters asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VersionMap {
    /// The clusters, by name.
    pub clusters: BTreeMap<String, ClusterVersion>,
}

impl VersionMap {
    /// The version of `cluster`, if mapped.
    pub fn version_of(&self, cluster: &str) -> Option<&str> {
        self.clusters.get(cluster).map(|c| c.version.as_str())
    }

    /// The mapped cluster names.
    pub fn cluster_names(&self) -> impl Iterator<Item = &str> {
        self.clusters.keys().map(String::as_str)
    }
}

/// Why a cluster (or a version label) has no version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Nothing says which version the cluster is.
    #[error("the cluster {cluster} cannot be mapped to a version: {why}")]
    Unmapped {
        /// The cluster.
        cluster: String,
        /// Why, in a few words, and what would help.
        why: String,
    },
    /// The cluster's workloads answer different versions: its counts cannot be split.
    #[error("the cluster {cluster} sends to workloads of several versions ({}): its connections cannot be told apart by version (a replica-ratio canary); name one version for it explicitly", versions.join(", "))]
    SeveralVersions {
        /// The cluster.
        cluster: String,
        /// The versions behind it.
        versions: Vec<String>,
    },
    /// A version given or read is not usable as a version name.
    #[error("the version {version:?} given for {key} is not usable: {reason}")]
    BadVersion {
        /// The cluster, subset or label value it was given for.
        key: String,
        /// The version.
        version: String,
        /// Why not.
        reason: String,
    },
    /// Istio reported connections to pods without a version label.
    #[error(
        "Istio counted connections with destination_version=\"unknown\" (pods without a version label): give the workloads a `version` label, or name a version for \"unknown\" explicitly"
    )]
    UnknownVersionLabel,
}

fn checked(key: &str, version: &str) -> Result<String, MapError> {
    protocol::validate_version(version).map_err(|e| MapError::BadVersion {
        key: key.to_owned(),
        version: version.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(version.to_owned())
}

/// Maps each of `clusters` to a version: an override by cluster name, then (for an
/// Istio name) by subset, or by host for the subset-less cluster, then the derivation.
pub fn map_clusters<'a>(
    clusters: impl IntoIterator<Item = &'a str>,
    derivation: Option<&Derivation>,
    overrides: &BTreeMap<String, String>,
) -> Result<VersionMap, MapError> {
    let mut map = VersionMap::default();
    for cluster in clusters {
        if map.clusters.contains_key(cluster) {
            continue;
        }
        let mapped = map_one(cluster, derivation, overrides)?;
        map.clusters.insert(cluster.to_owned(), mapped);
    }
    Ok(map)
}

fn map_one(
    cluster: &str,
    derivation: Option<&Derivation>,
    overrides: &BTreeMap<String, String>,
) -> Result<ClusterVersion, MapError> {
    let istio = IstioCluster::parse(cluster);
    let given = |key: &str, what: String| -> Option<Result<ClusterVersion, MapError>> {
        overrides.get(key).map(|v| {
            Ok(ClusterVersion {
                cluster: cluster.to_owned(),
                version: checked(key, v)?,
                from: what,
            })
        })
    };
    if let Some(found) = given(cluster, "given for the cluster".to_owned()) {
        return found;
    }
    if let Some(c) = &istio {
        let by_name = match &c.subset {
            Some(subset) => given(subset, format!("given for subset {subset}")),
            None => given(c.short_host(), format!("given for host {}", c.short_host())),
        };
        if let Some(found) = by_name {
            return found;
        }
    }
    let Some(derivation) = derivation else {
        return Err(MapError::Unmapped {
            cluster: cluster.to_owned(),
            why: "no manifests were given and no version was named for it".to_owned(),
        });
    };
    let matching: Vec<&DerivedDestination> = derivation
        .destinations
        .iter()
        .filter(|d| match &istio {
            Some(c) => same_destination(c, d),
            None => d.name == cluster,
        })
        .collect();
    if matching.is_empty() {
        let known: Vec<String> = derivation.destinations.iter().map(describe).collect();
        return Err(MapError::Unmapped {
            cluster: cluster.to_owned(),
            why: format!(
                "it is not a destination of {} (whose destinations are {}); name its version explicitly",
                derivation.route,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        });
    }
    let mut versions: Vec<&str> = Vec::new();
    let mut from: Vec<String> = Vec::new();
    for d in &matching {
        for m in &d.members {
            if !versions.contains(&m.version.as_str()) {
                versions.push(&m.version);
            }
            let workload = m.workload.as_deref().unwrap_or("a version given for it");
            from.push(format!(
                "{} {} -> {workload}",
                route_resource(derivation),
                d.field
            ));
        }
    }
    match versions.as_slice() {
        [one] => Ok(ClusterVersion {
            cluster: cluster.to_owned(),
            version: (*one).to_owned(),
            from: from.join(", "),
        }),
        [] => Err(MapError::Unmapped {
            cluster: cluster.to_owned(),
            why: format!(
                "its route destination ({}) selects no workload in the manifests; name its version explicitly",
                matching
                    .iter()
                    .map(|d| describe(d))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        several => Err(MapError::SeveralVersions {
            cluster: cluster.to_owned(),
            versions: several.iter().map(|v| (*v).to_owned()).collect(),
        }),
    }
}

/// Whether the route destination `d` is the Istio cluster `c`: same subset, same host
/// (compared by short name, and by namespace when both spell one out).
fn same_destination(c: &IstioCluster, d: &DerivedDestination) -> bool {
    if d.subset != c.subset || manifests::model::short_host(&d.host) != c.short_host() {
        return false;
    }
    let manifest_namespace = d.host.split('.').nth(1);
    match (manifest_namespace, c.namespace()) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn describe(d: &DerivedDestination) -> String {
    destination_name(&d.host, d.subset.as_deref())
}

/// A destination as people name it: `tcp-echo subset canary`, or `tcp-echo`.
pub fn destination_name(host: &str, subset: Option<&str>) -> String {
    let host = manifests::model::short_host(host);
    match subset {
        Some(s) => format!("{host} subset {s}"),
        None => host.to_owned(),
    }
}

/// The version an Istio `destination_version` label value stands for: an override for
/// that value, else the value itself; `unknown` (no version label on the pods) is an error.
pub fn map_version_label(
    value: &str,
    overrides: &BTreeMap<String, String>,
) -> Result<String, MapError> {
    if let Some(v) = overrides.get(value) {
        return checked(value, v);
    }
    if value == UNKNOWN_VERSION {
        return Err(MapError::UnknownVersionLabel);
    }
    checked(&format!("destination_version {value:?}"), value)
}

/// The route resource of a derivation (`VirtualService/tcp-echo` of
/// `VirtualService/tcp-echo spec.tcp[0]`).
fn route_resource(d: &Derivation) -> &str {
    d.route.split_once(' ').map_or(d.route.as_str(), |(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derivation(yaml: &str) -> Derivation {
        let docs = manifests::load::parse_text(yaml, "test").unwrap();
        let set = manifests::ManifestSet::from_documents(docs).unwrap();
        manifests::derive(&set, &manifests::DeriveOptions::default()).unwrap()
    }

    fn fixture(name: &str) -> Derivation {
        let path = format!(
            "{}/../manifests/tests/fixtures/manifests/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        derivation(&std::fs::read_to_string(path).unwrap())
    }

    const STABLE: &str = "outbound|9000|stable|tcp-echo.default.svc.cluster.local";
    const CANARY: &str = "outbound|9000|canary|tcp-echo.default.svc.cluster.local";

    #[test]
    fn istio_clusters_map_through_the_manifests() {
        let d = fixture("kustomize-2-canary-10.yaml");
        let map = map_clusters([STABLE, CANARY], Some(&d), &BTreeMap::new()).unwrap();
        assert_eq!(map.version_of(STABLE), Some("one"));
        assert_eq!(map.version_of(CANARY), Some("two"));
        assert_eq!(
            map.clusters[CANARY].from,
            "VirtualService/tcp-echo spec.tcp[0].route[1] -> Deployment/tcp-echo-canary"
        );
    }

    #[test]
    fn overrides_come_first_by_cluster_then_subset() {
        let d = fixture("kustomize-2-canary-10.yaml");
        let overrides: BTreeMap<String, String> = [
            (CANARY.to_owned(), "three".to_owned()),
            ("stable".to_owned(), "uno".to_owned()),
        ]
        .into();
        let map = map_clusters([STABLE, CANARY], Some(&d), &overrides).unwrap();
        assert_eq!(map.version_of(CANARY), Some("three"));
        assert_eq!(map.clusters[CANARY].from, "given for the cluster");
        assert_eq!(map.version_of(STABLE), Some("uno"));
        assert_eq!(map.clusters[STABLE].from, "given for subset stable");
        // Without manifests, overrides alone map plain names too.
        let plain: BTreeMap<String, String> = [("a".to_owned(), "one".to_owned())].into();
        assert_eq!(
            map_clusters(["a"], None, &plain).unwrap().version_of("a"),
            Some("one")
        );
        let bad: BTreeMap<String, String> = [("a".to_owned(), "o ne".to_owned())].into();
        assert!(matches!(
            map_clusters(["a"], None, &bad),
            Err(MapError::BadVersion { .. })
        ));
    }

    #[test]
    fn an_unmappable_cluster_is_named() {
        let d = fixture("kustomize-2-canary-10.yaml");
        let ghost = "outbound|9000|v3|tcp-echo.default.svc.cluster.local";
        let err = map_clusters([STABLE, ghost], Some(&d), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cluster outbound|9000|v3|tcp-echo.default.svc.cluster.local cannot be mapped to a version: it is not a destination of VirtualService/tcp-echo spec.tcp[0] (whose destinations are tcp-echo subset stable, tcp-echo subset canary); name its version explicitly"
        );
        let other_namespace = "outbound|9000|stable|tcp-echo.prod.svc.cluster.local";
        let fqdn = d.clone();
        let mut fqdn = fqdn;
        for dest in &mut fqdn.destinations {
            dest.host = "tcp-echo.default.svc.cluster.local".to_owned();
        }
        assert!(map_clusters([other_namespace], Some(&fqdn), &BTreeMap::new()).is_err());
        assert!(map_clusters([STABLE], Some(&fqdn), &BTreeMap::new()).is_ok());
        let err = map_clusters(["one"], None, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cluster one cannot be mapped to a version: no manifests were given and no version was named for it"
        );
    }

    #[test]
    fn a_replica_ratio_destination_cannot_be_attributed() {
        let d = fixture("replica-ratio.yaml");
        let dest = &d.destinations[0];
        assert_eq!(dest.host, "echo.prod.svc.cluster.local");
        let cluster = "outbound|9000||echo.prod.svc.cluster.local".to_owned();
        let err = map_clusters([cluster.as_str()], Some(&d), &BTreeMap::new()).unwrap_err();
        assert!(
            matches!(&err, MapError::SeveralVersions { versions, .. } if versions.len() == 2),
            "{err}"
        );
    }

    #[test]
    fn version_labels_map_to_themselves_or_an_override() {
        let none = BTreeMap::new();
        assert_eq!(map_version_label("one", &none).unwrap(), "one");
        assert_eq!(
            map_version_label("unknown", &none),
            Err(MapError::UnknownVersionLabel)
        );
        let given: BTreeMap<String, String> = [("v1".to_owned(), "one".to_owned())].into();
        assert_eq!(map_version_label("v1", &given).unwrap(), "one");
    }
}
