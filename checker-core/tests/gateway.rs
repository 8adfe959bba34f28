//! The gateway's own view on recorded Istio documents: a gateway `/config_dump` and a
//! `:15090/stats/prometheus` scrape (written from Istio's documented formats: its
//! cluster names, stats tags and standard TCP metric labels), mapped to versions through
//! the deploy/kustomize manifests (the 2-canary-10 render kept under manifests' fixtures,
//! which a manifests test keeps current), and the bad inputs of issue 20.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::PathBuf;

use checker_core::gateway::config_dump::{self, ChainChoice, ConfigDumpError};
use checker_core::gateway::counters::{Snapshot, by_version, delta};
use checker_core::gateway::exposition;
use checker_core::gateway::input::{InputError, MAX_CONFIG_DUMP_BYTES};
use checker_core::gateway::layers;
use checker_core::gateway::mapping::{self, MapError};

const STABLE: &str = "outbound|9000|stable|tcp-echo.default.svc.cluster.local";
const CANARY: &str = "outbound|9000|canary|tcp-echo.default.svc.cluster.local";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gateway")
        .join(name)
}

fn canary_10() -> manifests::Derivation {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/tests/fixtures/manifests/kustomize-2-canary-10.yaml");
    let set = manifests::read(&[path.to_string_lossy()]).unwrap();
    let options = manifests::DeriveOptions {
        route_port: Some(31400),
        ..Default::default()
    };
    manifests::derive(&set, &options).unwrap()
}

fn recorded_dump() -> config_dump::ConfigDump {
    let file = std::fs::File::open(fixture("istio-gateway-config-dump.json")).unwrap();
    config_dump::read(file, "the recorded dump").unwrap()
}

#[test]
fn a_recorded_istio_gateway_dump_maps_to_the_manifests_versions() {
    let dump = recorded_dump();
    assert_eq!(dump.ports(), [8080, 15443, 31400]);
    let route = dump.route(31400, &ChainChoice::PlainTcp).unwrap();
    assert_eq!(route.listener, "0.0.0.0_31400");
    assert_eq!(
        route.version_info.as_deref(),
        Some("2024-05-14T09:12:03Z/87")
    );
    let weights: Vec<(&str, u64)> = route
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(weights, [(STABLE, 90), (CANARY, 10)]);

    let derivation = canary_10();
    let names: Vec<&str> = route.clusters.iter().map(|c| c.name.as_str()).collect();
    let map = mapping::map_clusters(names, Some(&derivation), &BTreeMap::new()).unwrap();
    assert_eq!(map.version_of(STABLE), Some("one"));
    assert_eq!(map.version_of(CANARY), Some("two"));
    assert_eq!(
        layers::programmed_split(&route, &map).unwrap(),
        [("one".to_owned(), 90.0), ("two".to_owned(), 10.0)]
    );
    let compared = layers::compare(&derivation, &route);
    assert!(compared.agrees, "{:?}", compared.differences);

    // The TLS passthrough listener: one chain per server name, never merged.
    let err = dump.route(15443, &ChainChoice::PlainTcp).unwrap_err();
    assert!(matches!(err, ConfigDumpError::NoPlainChain { .. }), "{err}");
    let db = dump
        .route(15443, &ChainChoice::ServerName("db.example.com".into()))
        .unwrap();
    assert_eq!(
        db.clusters[0].name,
        "outbound|5432||db.default.svc.cluster.local"
    );
    assert_eq!(db.chains.len(), 2);
    let mqtt = dump
        .route(
            15443,
            &ChainChoice::ServerName("eu.mqtt.example.com".into()),
        )
        .unwrap();
    assert_eq!(
        mqtt.clusters[0].name,
        "outbound|8883||mqtt.default.svc.cluster.local"
    );
}

#[test]
fn a_recorded_istio_scrape_counts_per_version_both_ways() {
    let text = std::fs::read_to_string(fixture("istio-gateway-stats-prometheus.txt")).unwrap();
    let matchers = vec![
        ("reporter".to_owned(), "source".to_owned()),
        (
            "destination_service".to_owned(),
            "tcp-echo.default.svc.cluster.local".to_owned(),
        ),
    ];
    let istio = exposition::istio_versions(&text, &matchers, "gw:15090").unwrap();
    assert_eq!(istio.keys.len(), 2, "{:?}", istio.keys);
    assert_eq!(
        (istio.keys["one"].opened, istio.keys["two"].opened),
        (1871, 209)
    );

    let envoy = exposition::envoy_clusters(&text, &[STABLE, CANARY], "gw:15090").unwrap();
    assert_eq!(envoy.keys[STABLE].connect_fail, Some(1));
    let derivation = canary_10();
    let map = mapping::map_clusters([STABLE, CANARY], Some(&derivation), &BTreeMap::new()).unwrap();
    let from_zero = |s: &Snapshot| {
        delta(
            &Snapshot {
                source: s.source.clone(),
                keys: BTreeMap::new(),
            },
            s,
        )
    };
    let by_cluster = by_version(&[from_zero(&envoy)], |k| {
        Ok(map.version_of(k).map(str::to_owned))
    })
    .unwrap();
    let by_label = by_version(&[from_zero(&istio)], |k| {
        mapping::map_version_label(k, &BTreeMap::new()).map(Some)
    })
    .unwrap();
    assert_eq!(by_cluster.opened(), by_label.opened());
    assert_eq!(
        by_cluster.opened(),
        [("one".to_owned(), 1871), ("two".to_owned(), 209)]
    );

    // Without the service matcher, the db's pods (no version label) are counted too.
    let all = exposition::istio_versions(&text, &[], "gw:15090").unwrap();
    let err = by_version(&[from_zero(&all)], |k| {
        mapping::map_version_label(k, &BTreeMap::new()).map(Some)
    })
    .unwrap_err();
    assert_eq!(err, MapError::UnknownVersionLabel);
}

#[test]
fn a_dump_without_a_listener_on_the_port_names_the_ports() {
    let err = recorded_dump()
        .route(31401, &ChainChoice::PlainTcp)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no listener on port 31401: the gateway's listeners are on ports 8080, 15443, 31400"
    );
}

#[test]
fn a_cluster_no_manifest_maps_is_named() {
    let derivation = canary_10();
    let err = mapping::map_clusters(
        [
            "outbound|9000|stable|tcp-echo.default.svc.cluster.local",
            "outbound|9001|stable|tcp-echo.default.svc.cluster.local",
            "outbound|9000|v3|tcp-echo.default.svc.cluster.local",
        ],
        Some(&derivation),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("the cluster outbound|9000|v3|tcp-echo.default.svc.cluster.local cannot be mapped to a version"), "{err}");
}

#[test]
fn truncated_and_oversized_dumps_are_refused_clearly() {
    let text = std::fs::read(fixture("istio-gateway-config-dump.json")).unwrap();
    let cut = &text[..text.len() * 2 / 3];
    let err = config_dump::read(cut, "the dump").unwrap_err();
    assert!(matches!(err, ConfigDumpError::Truncated { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("the config dump is truncated: the JSON ends at line "),
        "{err}"
    );

    // 100 MB of JSON from a stream: refused after reading the limit, never held whole.
    struct Endless(u64);
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(usize::try_from(self.0).unwrap_or(usize::MAX));
            buf[..n].fill(b' ');
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let err = config_dump::read(Endless(100_000_000), "standard input").unwrap_err();
    assert!(
        matches!(
            err,
            ConfigDumpError::Input(InputError::TooLarge {
                limit: MAX_CONFIG_DUMP_BYTES,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "standard input is larger than 64 MiB: refused without reading the rest"
    );
}

#[test]
fn a_counter_that_went_down_is_reported_not_negative() {
    let text = std::fs::read_to_string(fixture("istio-gateway-stats-prometheus.txt")).unwrap();
    let before = exposition::envoy_clusters(&text, &[STABLE, CANARY], "gw-a").unwrap();
    // The pod restarted: its counters start again from zero.
    let restarted = text.replace("} 1871", "} 12").replace("} 209", "} 3");
    let after = exposition::envoy_clusters(&restarted, &[STABLE, CANARY], "gw-a").unwrap();
    let d = delta(&before, &after);
    assert_eq!((d.keys[STABLE].opened, d.keys[CANARY].opened), (12, 3));
    assert_eq!(d.resets.len(), 2);
    assert_eq!((d.resets[0].before, d.resets[0].after), (209, 3));
}
