//! The three layers of a split, compared as data: what the manifests say (intent, a
//! [`Derivation`]), what the gateway was told (programmed, a [`ProgrammedRoute`]'s
//! weights), and what it counted against the checker's own tally. A wrong split is
//! thereby placed: the manifests, the control plane, or the data plane.
//!
//! Intent and programmed are compared exactly, share by share (integer weights
//! cross-multiplied, no rounding), destination by destination. Zero-weight
//! destinations count as absent on both sides: Istio leaves them out of Envoy's config.

use std::collections::BTreeMap;

use manifests::Derivation;
use serde::Serialize;

use super::cluster::IstioCluster;
use super::config_dump::ProgrammedRoute;
use super::mapping::{MapError, VersionMap, destination_name};

/// One destination's weight on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerShare {
    /// The destination: `tcp-echo subset canary`, or the cluster name when it matches no
    /// destination of the route.
    pub destination: String,
    /// Its weight in the manifests (0: not in the route, or at weight 0).
    pub intended: u64,
    /// Its weight in the gateway (0: no cluster for it).
    pub programmed: u64,
    /// The gateway's clusters for it.
    pub clusters: Vec<String>,
    /// Whether both sides give it the same share.
    pub same_share: bool,
}

/// Intent against programmed, destination by destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntentVsProgrammed {
    /// The route of the manifests (`VirtualService/tcp-echo spec.tcp[0]`).
    pub route: String,
    /// The gateway's listener.
    pub listener: String,
    /// The listener's `version_info`, when shown.
    pub version_info: Option<String>,
    /// Every destination of either side.
    pub shares: Vec<LayerShare>,
    /// The sum of intended weights.
    pub intended_total: u64,
    /// The sum of programmed weights.
    pub programmed_total: u64,
    /// Whether every share is the same.
    pub agrees: bool,
    /// Each difference in one sentence.
    pub differences: Vec<String>,
}

fn saturating_sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0u64, u64::saturating_add)
}

fn percent(weight: u64, total: u64) -> String {
    if total == 0 {
        "0%".to_owned()
    } else {
        format!("{:.1}%", weight as f64 * 100.0 / total as f64)
    }
}

/// The destination of a cluster: by Istio's name, else a route destination whose
/// display name (its subset, or Service) is the cluster's name, else the name itself.
fn key_of(cluster: &str, derivation: &Derivation) -> String {
    if let Some(c) = IstioCluster::parse(cluster) {
        return destination_name(&c.host, c.subset.as_deref());
    }
    derivation
        .destinations
        .iter()
        .find(|d| d.name == cluster)
        .map_or_else(
            || cluster.to_owned(),
            |d| destination_name(&d.host, d.subset.as_deref()),
        )
}

/// Compares the manifests' route with the gateway's programmed weights.
pub fn compare(derivation: &Derivation, programmed: &ProgrammedRoute) -> IntentVsProgrammed {
    let mut rows: BTreeMap<String, LayerShare> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut row = |key: String, rows: &mut BTreeMap<String, LayerShare>| {
        if !rows.contains_key(&key) {
            order.push(key.clone());
        }
        rows.entry(key.clone()).or_insert(LayerShare {
            destination: key,
            intended: 0,
            programmed: 0,
            clusters: Vec::new(),
            same_share: false,
        });
    };
    for d in &derivation.destinations {
        let key = destination_name(&d.host, d.subset.as_deref());
        row(key.clone(), &mut rows);
        if let Some(r) = rows.get_mut(&key) {
            r.intended = r.intended.saturating_add(d.weight);
        }
    }
    for c in &programmed.clusters {
        let key = key_of(&c.name, derivation);
        row(key.clone(), &mut rows);
        if let Some(r) = rows.get_mut(&key) {
            r.programmed = r.programmed.saturating_add(c.weight);
            r.clusters.push(c.name.clone());
        }
    }
    let intended_total = saturating_sum(rows.values().map(|r| r.intended));
    let programmed_total = saturating_sum(rows.values().map(|r| r.programmed));
    let mut differences = Vec::new();
    let mut shares = Vec::with_capacity(order.len());
    for key in order {
        let Some(mut r) = rows.remove(&key) else {
            continue;
        };
        r.same_share = u128::from(r.intended) * u128::from(programmed_total)
            == u128::from(r.programmed) * u128::from(intended_total);
        if !r.same_share {
            differences.push(match (r.intended, r.programmed) {
                (_, 0) => format!(
                    "{}: the manifests give it {} (weight {} of {}), but the gateway's listener {} has no cluster for it",
                    r.destination,
                    percent(r.intended, intended_total),
                    r.intended,
                    intended_total,
                    programmed.listener
                ),
                (0, _) => format!(
                    "{}: the gateway sends it {} (weight {} of {}), but it is no destination of {} in the manifests",
                    r.clusters.join(", "),
                    percent(r.programmed, programmed_total),
                    r.programmed,
                    programmed_total,
                    derivation.route
                ),
                _ => format!(
                    "{}: the manifests say {} (weight {} of {}), the gateway was told {} (weight {} of {})",
                    r.destination,
                    percent(r.intended, intended_total),
                    r.intended,
                    intended_total,
                    percent(r.programmed, programmed_total),
                    r.programmed,
                    programmed_total
                ),
            });
        }
        shares.push(r);
    }
    IntentVsProgrammed {
        route: derivation.route.clone(),
        listener: programmed.listener.clone(),
        version_info: programmed.version_info.clone(),
        agrees: differences.is_empty(),
        shares,
        intended_total,
        programmed_total,
        differences,
    }
}

/// The programmed split per version (weights of clusters of the same version summed,
/// in cluster order): what the gateway should produce, as `(version, weight)` pairs for
/// an [`crate::expect::Expectation`].
pub fn programmed_split(
    programmed: &ProgrammedRoute,
    map: &VersionMap,
) -> Result<Vec<(String, f64)>, MapError> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for c in &programmed.clusters {
        let version = map.version_of(&c.name).ok_or_else(|| MapError::Unmapped {
            cluster: c.name.clone(),
            why: "it was not mapped".to_owned(),
        })?;
        match out.iter_mut().find(|(v, _)| v == version) {
            Some((_, w)) => *w += c.weight as f64,
            None => out.push((version.to_owned(), c.weight as f64)),
        }
    }
    Ok(out)
}

/// One version's count on each side of the cross-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossVersion {
    /// The version.
    pub version: String,
    /// Connections the gateway opened to it.
    pub gateway: u64,
    /// Connections the checker judged as answered by it.
    pub checker: u64,
}

/// The gateway's counts against the checker's own tally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossCheck {
    /// Per version, expected and counted ones, sorted by name.
    pub versions: Vec<CrossVersion>,
    /// All the gateway opened.
    pub gateway_total: u64,
    /// All the checker judged.
    pub checker_judged: u64,
    /// Connections the checker opened but did not judge (in flight when the verdict
    /// was reached, or failed before a reply): the gateway counted them, no version was seen.
    pub opened_not_judged: u64,
    /// Connections abandoned in flight when sampling stopped (a sequential verdict or the
    /// stop signal): each may or may not have reached the gateway before it was dropped.
    pub in_flight: u64,
    /// Whether the two agree exactly: no version judged more often than the gateway
    /// opened it, and the gateway's surplus is the connections not judged, plus at most
    /// those abandoned in flight.
    pub agrees: bool,
    /// Why not, in one sentence.
    pub disagreement: Option<String>,
}

/// Compares the gateway's per-version counts with the checker's judged counts, the
/// checker's opened-but-not-judged connections counted apart, and up to `in_flight`
/// abandoned ones allowed for.
pub fn cross_check(
    gateway: &[(String, u64)],
    judged: &[(String, u64)],
    opened_not_judged: u64,
    in_flight: u64,
) -> CrossCheck {
    let mut by: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (v, n) in gateway {
        let e = by.entry(v).or_default();
        e.0 = e.0.saturating_add(*n);
    }
    for (v, n) in judged {
        let e = by.entry(v).or_default();
        e.1 = e.1.saturating_add(*n);
    }
    let versions: Vec<CrossVersion> = by
        .iter()
        .map(|(v, &(g, c))| CrossVersion {
            version: (*v).to_owned(),
            gateway: g,
            checker: c,
        })
        .collect();
    let gateway_total = saturating_sum(versions.iter().map(|v| v.gateway));
    let checker_judged = saturating_sum(versions.iter().map(|v| v.checker));
    let over: Vec<String> = versions
        .iter()
        .filter(|v| v.checker > v.gateway)
        .map(|v| {
            format!(
                "{} (judged {}, the gateway opened {})",
                v.version, v.checker, v.gateway
            )
        })
        .collect();
    let explained = checker_judged.saturating_add(opened_not_judged);
    let disagreement = if !over.is_empty() {
        Some(format!(
            "the checker saw more answers than the gateway opened connections for {}: replies are attributed to the wrong version, or the counters are of another listener",
            over.join(", ")
        ))
    } else if gateway_total > explained.saturating_add(in_flight) {
        Some(format!(
            "the gateway opened {} connections more than the checker made ({} judged, {} not judged{}): another client used the gateway in the window",
            gateway_total - explained.saturating_add(in_flight),
            checker_judged,
            opened_not_judged,
            if in_flight > 0 {
                format!(", {in_flight} abandoned in flight")
            } else {
                String::new()
            }
        ))
    } else if gateway_total < explained {
        Some(format!(
            "the gateway opened {} connections fewer than the checker made ({} judged, {} not judged): some of the checker's connections did not pass these clusters",
            explained - gateway_total,
            checker_judged,
            opened_not_judged
        ))
    } else {
        None
    };
    CrossCheck {
        agrees: disagreement.is_none(),
        versions,
        gateway_total,
        checker_judged,
        opened_not_judged,
        in_flight,
        disagreement,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::config_dump::WeightedCluster;

    fn derivation() -> Derivation {
        let path = format!(
            "{}/../manifests/tests/fixtures/manifests/kustomize-2-canary-10.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let docs =
            manifests::load::parse_text(&std::fs::read_to_string(path).unwrap(), "t").unwrap();
        let set = manifests::ManifestSet::from_documents(docs).unwrap();
        manifests::derive(&set, &manifests::DeriveOptions::default()).unwrap()
    }

    fn route(weights: &[(&str, u64)]) -> ProgrammedRoute {
        ProgrammedRoute {
            listener: "0.0.0.0_31400".into(),
            port: 31400,
            version_info: Some("7".into()),
            last_updated: None,
            chain: "filter chain 0 (any connection)".into(),
            stat_prefix: None,
            clusters: weights
                .iter()
                .map(|&(s, w)| WeightedCluster {
                    name: format!("outbound|9000|{s}|tcp-echo.default.svc.cluster.local"),
                    weight: w,
                })
                .collect(),
            chains: vec![],
        }
    }

    #[test]
    fn the_same_shares_agree_whatever_the_scale() {
        let c = compare(&derivation(), &route(&[("stable", 9), ("canary", 1)]));
        assert!(c.agrees, "{:?}", c.differences);
        assert_eq!(c.shares.len(), 2);
        assert_eq!((c.intended_total, c.programmed_total), (100, 10));
    }

    #[test]
    fn a_different_weight_is_one_sentence_per_destination() {
        let c = compare(&derivation(), &route(&[("stable", 80), ("canary", 20)]));
        assert!(!c.agrees);
        assert_eq!(
            c.differences,
            [
                "tcp-echo subset stable: the manifests say 90.0% (weight 90 of 100), the gateway was told 80.0% (weight 80 of 100)",
                "tcp-echo subset canary: the manifests say 10.0% (weight 10 of 100), the gateway was told 20.0% (weight 20 of 100)"
            ]
        );
    }

    #[test]
    fn missing_and_extra_clusters_are_named() {
        let c = compare(&derivation(), &route(&[("stable", 90), ("v3", 10)]));
        assert!(!c.agrees);
        assert_eq!(c.differences.len(), 2);
        assert!(c.differences[0].starts_with("tcp-echo subset canary: the manifests give it 10.0% (weight 10 of 100), but the gateway's listener 0.0.0.0_31400 has no cluster for it"));
        assert!(c.differences[1].starts_with(
            "outbound|9000|v3|tcp-echo.default.svc.cluster.local: the gateway sends it 10.0%"
        ));
    }

    #[test]
    fn the_programmed_split_per_version() {
        let d = derivation();
        let r = route(&[("stable", 70), ("canary", 30)]);
        let names: Vec<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
        let map = crate::gateway::mapping::map_clusters(names, Some(&d), &BTreeMap::new()).unwrap();
        assert_eq!(
            programmed_split(&r, &map).unwrap(),
            [("one".to_owned(), 70.0), ("two".to_owned(), 30.0)]
        );
    }

    fn pairs(p: &[(&str, u64)]) -> Vec<(String, u64)> {
        p.iter().map(|&(v, n)| (v.to_owned(), n)).collect()
    }

    #[test]
    fn the_cross_check_counts_unjudged_connections_apart() {
        // Fixed run: everything judged.
        let c = cross_check(
            &pairs(&[("one", 1506), ("two", 377)]),
            &pairs(&[("one", 1506), ("two", 377)]),
            0,
            0,
        );
        assert!(c.agrees);
        // Sequential run: 31 opened, still in flight at the verdict.
        let c = cross_check(
            &pairs(&[("one", 1200), ("two", 311)]),
            &pairs(&[("one", 1180), ("two", 300)]),
            31,
            0,
        );
        assert!(c.agrees, "{:?}", c.disagreement);
        assert_eq!((c.gateway_total, c.checker_judged), (1511, 1480));
        let c = cross_check(
            &pairs(&[("one", 1300), ("two", 311)]),
            &pairs(&[("one", 1180), ("two", 300)]),
            31,
            0,
        );
        assert_eq!(
            c.disagreement.as_deref(),
            Some(
                "the gateway opened 100 connections more than the checker made (1480 judged, 31 not judged): another client used the gateway in the window"
            )
        );
        let c = cross_check(
            &pairs(&[("one", 10), ("two", 10)]),
            &pairs(&[("one", 12), ("two", 8)]),
            0,
            0,
        );
        assert!(
            c.disagreement
                .unwrap()
                .contains("attributed to the wrong version")
        );
        // Abandoned in flight: the gateway may have counted any number of them, no more.
        let c = cross_check(
            &pairs(&[("one", 1190), ("two", 302)]),
            &pairs(&[("one", 1180), ("two", 300)]),
            5,
            8,
        );
        assert!(c.agrees, "{:?}", c.disagreement);
        let c = cross_check(
            &pairs(&[("one", 1190), ("two", 303)]),
            &pairs(&[("one", 1180), ("two", 300)]),
            5,
            6,
        );
        assert_eq!(
            c.disagreement.as_deref(),
            Some(
                "the gateway opened 2 connections more than the checker made (1480 judged, 5 not judged, 6 abandoned in flight): another client used the gateway in the window"
            )
        );
        let c = cross_check(
            &pairs(&[("one", 10), ("two", 10)]),
            &pairs(&[("one", 12), ("two", 8)]),
            0,
            0,
        );
        assert!(
            c.disagreement
                .unwrap()
                .contains("attributed to the wrong version")
        );
    }
}
