//! The split derived from real manifests: our deploy/ renders (kept as fixtures, and
//! rendered afresh with `kubectl kustomize` where kubectl is installed), a replica-ratio
//! canary, Flagger's generated routing, `--version-of`, and the impossible cases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use manifests::version::Place;
use manifests::{
    self, Derivation, DeriveOptions, ManifestSet, OptionNames, Remedy, SelectedBy, VersionSource,
    derive,
};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests")
        .join(name)
        .display()
        .to_string()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn set_of(source: &str) -> ManifestSet {
    manifests::read(&[source]).unwrap_or_else(|e| panic!("{source}: {e}"))
}

fn split(d: &Derivation) -> Vec<(String, f64)> {
    d.versions
        .iter()
        .map(|v| (v.name.clone(), (v.share * 1000.0).round() / 10.0))
        .collect()
}

/// The option names as the checker's flags.
fn flags() -> OptionNames {
    OptionNames {
        route_port: "--route-port".to_owned(),
        version_of: "--version-of".to_owned(),
        sni: "--sni".to_owned(),
    }
}

fn pairs(list: &[(&str, f64)]) -> Vec<(String, f64)> {
    list.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
}

#[test]
fn the_kustomize_canary_step_derives_90_10_with_provenance() {
    let d = derive(
        &set_of(&fixture("kustomize-2-canary-10.yaml")),
        &DeriveOptions::default(),
    )
    .expect("derives");
    assert_eq!(split(&d), pairs(&[("one", 90.0), ("two", 10.0)]));
    assert_eq!(d.route, "VirtualService/tcp-echo spec.tcp[0]");
    let one = &d.versions[0].provenance[0];
    assert_eq!(one.field, "spec.tcp[0].route[0]");
    assert_eq!(
        one.selected_by,
        SelectedBy::Subset {
            rule: "DestinationRule/tcp-echo".to_owned(),
            subset: "stable".to_owned()
        }
    );
    assert_eq!(
        one.selected_by.to_string(),
        "DestinationRule/tcp-echo subset stable"
    );
    assert_eq!(one.workload.as_deref(), Some("Deployment/tcp-echo-stable"));
    assert_eq!(one.replicas, Some(2));
    assert_eq!(
        one.version_from,
        VersionSource::Container {
            container: "echo-server".to_owned(),
            place: Place::Positional {
                field: "args[1]".to_owned()
            }
        }
    );
    assert_eq!(
        one.version_from.to_string(),
        "args[1] of container echo-server"
    );
    // The JSON documents carry provenance as text, as they always have.
    let json = serde_json::to_value(one).expect("serialises");
    assert_eq!(
        json["selected_by"],
        "DestinationRule/tcp-echo subset stable"
    );
    assert_eq!(json["version_from"], "args[1] of container echo-server");
    let two = &d.versions[1].provenance[0];
    assert_eq!(two.workload.as_deref(), Some("Deployment/tcp-echo-canary"));
    let text = d.to_string();
    assert!(
        text.contains("expected split from VirtualService/tcp-echo spec.tcp[0]: one=90,two=10"),
        "{text}"
    );
}

#[test]
fn after_promotion_both_destinations_answering_two_are_summed() {
    let d = derive(
        &set_of(&fixture("kustomize-4-promote.yaml")),
        &DeriveOptions::default(),
    )
    .expect("derives");
    assert_eq!(split(&d), pairs(&[("two", 100.0)]));
    assert_eq!(d.versions[0].provenance.len(), 2);
    assert_eq!(d.versions[0].weight, 100.0);
}

#[test]
fn gateway_api_backends_resolve_through_their_services() {
    let d = derive(
        &set_of(&fixture("gateway-api-v1.yaml")),
        &DeriveOptions::default(),
    )
    .expect("derives");
    assert_eq!(split(&d), pairs(&[("one", 90.0), ("two", 10.0)]));
    assert_eq!(d.route, "TCPRoute/tcp-echo spec.rules[0]");
    assert_eq!(
        d.versions[1].provenance[0].selected_by.to_string(),
        "Service/tcp-echo-canary"
    );
}

#[test]
fn a_replica_ratio_canary_splits_by_replicas_and_says_so() {
    let set = set_of(&fixture("replica-ratio.yaml"));
    assert_eq!(set.skipped.get("v1 ConfigMap"), Some(&1));
    let d = derive(&set, &DeriveOptions::default()).expect("derives");
    assert_eq!(split(&d), pairs(&[("one", 75.0), ("two", 25.0)]));
    assert!(
        d.notes.iter().any(|n| n.contains("replica-ratio")),
        "{:?}",
        d.notes
    );
    assert_eq!(
        d.versions[1].provenance[0].version_from.to_string(),
        "env ECHO_SERVER_VERSION of container echo"
    );
    assert_eq!(
        d.versions[0].provenance[0].workload.as_deref(),
        Some("Deployment/echo-v1")
    );
}

#[test]
fn flaggers_generated_routing_resolves_primary_and_canary() {
    let d = derive(
        &set_of(&fixture("flagger-generated.yaml")),
        &DeriveOptions::default(),
    )
    .expect("derives");
    assert_eq!(split(&d), pairs(&[("one", 70.0), ("two", 30.0)]));
    assert_eq!(
        d.versions[0].provenance[0].workload.as_deref(),
        Some("Deployment/tcp-echo-primary")
    );
    assert_eq!(
        d.versions[1].provenance[0].selected_by.to_string(),
        "Canary/tcp-echo targetRef tcp-echo"
    );
}

#[test]
fn version_of_fills_in_what_the_manifests_do_not_show() {
    let text = std::fs::read_to_string(fixture("replica-ratio.yaml")).expect("fixture");
    let text = text.replace("args: [\"9000,9001,9002\", \"one\"]", "args: []");
    let set =
        ManifestSet::from_documents(manifests::load::parse_text(&text, "t.yaml").expect("parses"))
            .expect("typed");
    let err = derive(&set, &DeriveOptions::default()).expect_err("no version for echo-v1");
    assert_eq!(err.resource, "Deployment/echo-v1");
    assert_eq!(err.field, "spec.template.spec.containers");
    assert_eq!(
        err.remedy,
        Some(Remedy::VersionOf {
            name: Some("echo-v1".to_owned())
        })
    );
    // The library names its options by their own names; a caller by its own words.
    assert!(
        err.to_string().contains("give version_of echo-v1=VERSION"),
        "{err}"
    );
    let flags = flags();
    let err = derive(
        &set,
        &DeriveOptions {
            names: flags.clone(),
            ..DeriveOptions::default()
        },
    )
    .expect_err("no version for echo-v1");
    assert!(
        err.to_string()
            .contains("give --version-of echo-v1=VERSION"),
        "{err}"
    );
    let options = DeriveOptions {
        version_of: BTreeMap::from([("echo-v1".to_owned(), "one".to_owned())]),
        names: flags,
        ..DeriveOptions::default()
    };
    let d = derive(&set, &options).expect("derives");
    assert_eq!(split(&d), pairs(&[("one", 75.0), ("two", 25.0)]));
    let given = &d.versions[0].provenance[0];
    assert_eq!(
        given.version_from,
        VersionSource::Override {
            name: "echo-v1".to_owned(),
            option: "--version-of".to_owned()
        }
    );
    assert_eq!(given.version_from.to_string(), "--version-of echo-v1");
}

#[test]
fn impossible_derivations_name_the_resource_and_field() {
    let text = std::fs::read_to_string(fixture("kustomize-2-canary-10.yaml")).expect("fixture");
    let cases = [
        (
            text.replace("subset: canary", "subset: canery"),
            "spec.tcp[0].route[1].destination.subset",
            "canery",
        ),
        (
            text.replace(
                "  - labels:\n      track: canary\n",
                "  - labels:\n      track: nowhere\n",
            ),
            "spec.tcp[0].route[1].destination.host",
            "selects no workload",
        ),
        (
            text.replace(
                "- destination:\n        host: tcp-echo\n",
                "- destination:\n        host: tcp-ecko\n",
            ),
            "spec.tcp[0].route[0].destination",
            "tcp-ecko",
        ),
        (
            text.replace("weight: 90", "weight: -90"),
            "spec.tcp[0].route[0].weight",
            "negative",
        ),
        (
            text.replace("weight: 90", "weight: 0")
                .replace("weight: 10", "weight: 0"),
            "spec.tcp[0]",
            "zero",
        ),
    ];
    for (broken, field, words) in cases {
        let set = ManifestSet::from_documents(
            manifests::load::parse_text(&broken, "b.yaml").expect("parses"),
        )
        .expect("typed");
        let err = derive(&set, &DeriveOptions::default()).expect_err(field);
        assert!(err.field.starts_with(field), "{field}: {err}");
        assert!(err.to_string().contains(words), "{words}: {err}");
    }
}

#[test]
fn several_tcp_routes_need_route_port() {
    let mut text = std::fs::read_to_string(fixture("replica-ratio.yaml")).expect("fixture");
    text = text.replace(
        "  tcp:\n    - match: [{port: 31400}]\n",
        "  tcp:\n    - match: [{port: 31401}]\n      route:\n        - destination: {host: echo}\n    - match: [{port: 31400}]\n",
    );
    let set =
        ManifestSet::from_documents(manifests::load::parse_text(&text, "t.yaml").expect("parses"))
            .expect("typed");
    let err = derive(&set, &DeriveOptions::default()).expect_err("two routes");
    assert_eq!(err.remedy, Some(Remedy::RoutePort));
    assert!(err.to_string().contains("with route_port PORT"), "{err}");
    let d = derive(
        &set,
        &DeriveOptions {
            route_port: Some(31400),
            ..DeriveOptions::default()
        },
    )
    .expect("derives");
    assert_eq!(d.route, "VirtualService/echo spec.tcp[1]");
    let err = derive(
        &set,
        &DeriveOptions {
            route_port: Some(1),
            ..DeriveOptions::default()
        },
    )
    .expect_err("no route");
    assert!(
        err.to_string().contains("no tcp route matches port 1"),
        "{err}"
    );
}

fn kubectl_kustomize(dir: &Path) -> String {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
#[ignore = "needs kubectl (kubectl kustomize renders the overlays)"]
fn every_step_of_the_kustomize_walk_derives_its_expect() {
    let root = repo().join("deploy/kustomize");
    let steps = std::fs::read_to_string(root.join("steps.yaml")).expect("steps.yaml");
    let steps = manifests::load::parse_text(&steps, "steps.yaml").expect("parses");
    let list = steps[0].value["steps"].as_array().expect("steps").clone();
    assert_eq!(list.len(), 7);
    for step in list {
        let path = step["path"].as_str().expect("path");
        let expect = step["expect"].as_str().expect("expect");
        let rendered = kubectl_kustomize(&root.join(path));
        let set = ManifestSet::from_documents(
            manifests::load::parse_text(&rendered, path).expect("parses"),
        )
        .expect("typed");
        let d = derive(&set, &DeriveOptions::default()).unwrap_or_else(|e| panic!("{path}: {e}"));
        let want: Vec<(String, f64)> = expect
            .split(',')
            .filter_map(|p| p.split_once('='))
            .filter(|(_, w)| *w != "0")
            .map(|(n, w)| (n.to_owned(), w.parse::<f64>().expect("weight")))
            .collect();
        let got: Vec<(String, f64)> = split(&d).into_iter().filter(|(_, s)| *s > 0.0).collect();
        assert_eq!(got, want, "{path}");
    }
}

#[test]
#[ignore = "needs kubectl (kubectl kustomize renders the overlays)"]
fn the_fixtures_are_current_renders() {
    for (fixture_name, dir) in [
        (
            "kustomize-2-canary-10.yaml",
            "deploy/kustomize/overlays/2-canary-10",
        ),
        (
            "kustomize-4-promote.yaml",
            "deploy/kustomize/overlays/4-promote",
        ),
        ("gateway-api-v1.yaml", "deploy/gateway-api/v1"),
        ("tls-passthrough-istio.yaml", "deploy/tls-passthrough/istio"),
        (
            "tls-passthrough-gateway-api.yaml",
            "deploy/tls-passthrough/gateway-api",
        ),
    ] {
        let kept = std::fs::read_to_string(fixture(fixture_name)).expect("fixture");
        let body = kept.split_once('\n').map_or("", |(_, rest)| rest);
        assert_eq!(
            body,
            kubectl_kustomize(&repo().join(dir)),
            "{fixture_name} is stale: render {dir} again"
        );
    }
}

/// A destination as (name, weight, [(workload, version, replicas)]).
type Topology<'a> = (&'a str, u64, Vec<(Option<&'a str>, &'a str, u64)>);

/// The route's destinations with the workloads behind them: the topology a rehearsal deploys.
#[test]
fn each_destination_lists_its_workloads_versions_and_replicas() {
    let d = derive(
        &set_of(&fixture("kustomize-2-canary-10.yaml")),
        &DeriveOptions::default(),
    )
    .expect("derives");
    let topology: Vec<Topology> = d
        .destinations
        .iter()
        .map(|x| {
            (
                x.name.as_str(),
                x.weight,
                x.members
                    .iter()
                    .map(|m| (m.workload.as_deref(), m.version.as_str(), m.replicas))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        topology,
        [
            (
                "stable",
                90,
                vec![(Some("Deployment/tcp-echo-stable"), "one", 2)]
            ),
            (
                "canary",
                10,
                vec![(Some("Deployment/tcp-echo-canary"), "two", 1)]
            ),
        ]
    );
    // One Service over two workloads: one destination, both workloads behind it.
    let d = derive(
        &set_of(&fixture("replica-ratio.yaml")),
        &DeriveOptions::default(),
    )
    .expect("derives");
    assert_eq!(d.destinations.len(), 1);
    assert_eq!(d.destinations[0].name, "echo");
    assert_eq!(d.destinations[0].weight, 100);
    let members: Vec<(&str, u64)> = d.destinations[0]
        .members
        .iter()
        .map(|m| (m.version.as_str(), m.replicas))
        .collect();
    assert_eq!(members, [("one", 3), ("two", 1)]);
    // Flagger's generated hosts name its destinations.
    let d = derive(
        &set_of(&fixture("flagger-generated.yaml")),
        &DeriveOptions::default(),
    )
    .expect("derives");
    let names: Vec<&str> = d.destinations.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["tcp-echo-primary", "tcp-echo-canary"]);
    // The same destination twice: the second gets a name of its own.
    let text = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  tcp:
    - route:
        - {destination: {host: echo}, weight: 50}
        - {destination: {host: echo}, weight: 50}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec: {selector: {app: echo}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  template:
    metadata: {labels: {app: echo}}
    spec: {containers: [{name: e, args: [\"9000\", \"one\"]}]}
";
    let docs = manifests::load::parse_text(text, "twice").unwrap();
    let set = ManifestSet::from_documents(docs).unwrap();
    let d = derive(&set, &DeriveOptions::default()).expect("derives");
    let names: Vec<&str> = d.destinations.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["echo", "echo-2"]);
}

#[test]
fn a_zero_weight_destination_selecting_nothing_is_left_out_with_a_note() {
    // After a canary delete the subset stays in the route at weight 0, selecting no pod.
    let text = std::fs::read_to_string(fixture("kustomize-2-canary-10.yaml")).expect("fixture");
    let typed = |t: &str| {
        ManifestSet::from_documents(manifests::load::parse_text(t, "b.yaml").expect("parses"))
            .expect("typed")
    };
    let deleted = text
        .replace("weight: 10\n", "weight: 0\n")
        .replace("weight: 90\n", "weight: 100\n")
        .replace(
            "  - labels:\n      track: canary\n",
            "  - labels:\n      track: nowhere\n",
        );
    let d = derive(&typed(&deleted), &DeriveOptions::default()).expect("derives");
    assert_eq!(split(&d), pairs(&[("one", 100.0)]));
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("has weight 0") && n.contains("selects no workload")),
        "{:?}",
        d.notes
    );
    assert_eq!(d.destinations.len(), 2);
    assert!(d.destinations[1].members.is_empty());

    // A route that lists no destination says so.
    let start = text.find("    route:\n").expect("a route");
    let empty = format!("{}    route: []\n", &text[..start]);
    let err = derive(&typed(&empty), &DeriveOptions::default()).expect_err("no destination");
    assert!(err.to_string().contains("lists no destination"), "{err}");
}

#[test]
fn replica_counts_beyond_kubernetes_int32_are_refused_not_summed_into_an_overflow() {
    let text = std::fs::read_to_string(fixture("replica-ratio.yaml")).expect("fixture");
    let huge = i64::MAX.to_string();
    // Three workloads of i64::MAX replicas behind one Service: their sum overflows u64.
    let start = text
        .find("apiVersion: apps/v1\nkind: StatefulSet")
        .expect("echo-v2");
    let end = start + text[start..].find("---").expect("a document after echo-v2");
    let third = text[start..end].replace("name: echo-v2", "name: echo-v3");
    let text = format!("{}---\n{third}{}", &text[..end], &text[end..])
        .replace("replicas: 3", &format!("replicas: {huge}"))
        .replace("replicas: 1", &format!("replicas: {huge}"));
    let set =
        ManifestSet::from_documents(manifests::load::parse_text(&text, "t.yaml").expect("parses"))
            .expect("typed");
    let err = derive(&set, &DeriveOptions::default()).expect_err("beyond int32");
    assert_eq!(err.field, "spec.replicas", "{err}");
    assert!(err.to_string().contains("Kubernetes' limit"), "{err}");
    let fine = text.replace(&huge, "2147483647");
    let set =
        ManifestSet::from_documents(manifests::load::parse_text(&fine, "t.yaml").expect("parses"))
            .expect("typed");
    let d = derive(&set, &DeriveOptions::default()).expect("int32 counts derive");
    let total: f64 = d.versions.iter().map(|v| v.share).sum();
    assert!((total - 1.0).abs() < 1e-9, "{:?}", split(&d));
}

/// `--route-port PORT --sni SNI`.
fn by_name(port: u32, sni: Option<&str>) -> DeriveOptions {
    DeriveOptions {
        route_port: Some(port),
        sni: sni.map(str::to_owned),
        ..DeriveOptions::default()
    }
}

#[test]
fn a_tls_route_is_chosen_by_the_server_name_and_says_so() {
    let set = set_of(&fixture("lint-clean-tls.yaml"));
    let d = derive(&set, &by_name(443, Some("echo.example.com"))).expect("derives");
    assert_eq!(split(&d), pairs(&[("one", 90.0), ("two", 10.0)]));
    assert_eq!(d.route, "VirtualService/echo spec.tls[0]");
    let tls = d.tls.clone().expect("a tls route");
    assert_eq!(tls.sni.as_deref(), Some("echo.example.com"));
    assert_eq!(tls.matched.as_deref(), Some("echo.example.com"));
    assert_eq!(tls.field, "spec.tls[0].match[0].sniHosts");
    assert_eq!(d.versions[1].provenance[0].field, "spec.tls[0].route[1]");
    let json = serde_json::to_value(&d).expect("serialises");
    assert_eq!(json["tls"]["sni"], "echo.example.com");
    assert_eq!(json["tls"]["server_names"][0], "echo.example.com");
    let text = d.to_string();
    assert!(
        text.starts_with(
            "expected split from VirtualService/echo spec.tls[0], server name echo.example.com (matches sniHosts echo.example.com): one=90,two=10\n"
        ),
        "{text}"
    );
    // A wildcard takes the names under it; the exact name is more specific than it.
    let d = derive(&set, &by_name(443, Some("x.canary.example.com"))).expect("derives");
    assert_eq!(d.route, "VirtualService/echo spec.tls[1]");
    assert_eq!(split(&d), pairs(&[("two", 100.0)]));
    assert_eq!(
        d.tls.and_then(|t| t.matched).as_deref(),
        Some("*.canary.example.com")
    );
    // A tcp route's derivation carries no tls part, in JSON as before.
    let tcp = derive(
        &set_of(&fixture("kustomize-2-canary-10.yaml")),
        &DeriveOptions::default(),
    )
    .expect("derives");
    assert_eq!(tcp.tls, None);
    let json = serde_json::to_value(&tcp).expect("serialises");
    assert!(json.get("tls").is_none(), "{json}");
}

#[test]
fn a_tlsroute_matches_its_hostnames_within_its_listeners() {
    let set = set_of(&fixture("lint-clean-tls.yaml"));
    // The only tls route on 8443: chosen without a server name.
    let d = derive(&set, &by_name(8443, None)).expect("derives");
    assert_eq!(d.route, "TLSRoute/echo spec.rules[0]");
    assert_eq!(split(&d), pairs(&[("one", 80.0), ("two", 20.0)]));
    let tls = d.tls.clone().expect("a tls route");
    assert_eq!(tls.sni, None);
    assert_eq!(tls.server_names, ["echo.example.com"]);
    assert!(
        d.to_string().starts_with(
            "expected split from TLSRoute/echo spec.rules[0], the only tls route of its port (hostnames echo.example.com): one=80,two=20"
        ),
        "{d}"
    );
    assert_eq!(
        d.versions[0].provenance[0].selected_by.to_string(),
        "Service/echo-stable"
    );
    let d = derive(&set, &by_name(8443, Some("echo.example.com"))).expect("derives");
    assert_eq!(d.route, "TLSRoute/echo spec.rules[0]");
    // Outside the route's hostnames (though inside the listener's): no route.
    let err = derive(&set, &by_name(8443, Some("other.example.com"))).expect_err("no route");
    assert_eq!(
        err.remedy,
        Some(Remedy::Sni {
            given: Some("other.example.com".to_owned())
        })
    );
    assert_eq!(
        (err.resource.as_str(), err.field.as_str()),
        ("TLSRoute/echo", "spec.hostnames")
    );
}

#[test]
fn several_tls_routes_or_ports_need_a_server_name_or_a_port() {
    let set = set_of(&fixture("lint-clean-tls.yaml"));
    // Two tls routes on 443 and no name: choose by the name, which the message names.
    let names = flags();
    let err = derive(
        &set,
        &DeriveOptions {
            names: names.clone(),
            ..by_name(443, None)
        },
    )
    .expect_err("two tls routes");
    assert_eq!(err.remedy, Some(Remedy::Sni { given: None }));
    assert!(
        err.message
            .contains("choose one by the server name its clients send with --sni NAME"),
        "{err}"
    );
    // No port: routes on 443 and 8443.
    let err = derive(
        &set,
        &DeriveOptions {
            names,
            ..DeriveOptions::default()
        },
    )
    .expect_err("two ports");
    assert_eq!(err.remedy, Some(Remedy::RoutePort));
    assert!(err.message.contains("--route-port PORT"), "{err}");
    // A name no tls route on the port has.
    let err = derive(&set, &by_name(443, Some("echo.example.org"))).expect_err("no route");
    assert_eq!(
        err.remedy,
        Some(Remedy::Sni {
            given: Some("echo.example.org".to_owned())
        })
    );
    assert!(err.message.contains("\"echo.example.org\""), "{err}");
}

#[test]
fn a_server_name_does_not_choose_among_tcp_routes() {
    // No tls route: the tcp route carries every connection, whatever its server name.
    let d = derive(
        &set_of(&fixture("kustomize-2-canary-10.yaml")),
        &DeriveOptions {
            sni: Some("tcp-echo.example.com".to_owned()),
            ..DeriveOptions::default()
        },
    )
    .expect("derives");
    assert_eq!(d.route, "VirtualService/tcp-echo spec.tcp[0]");
    assert_eq!(d.tls, None);
}

#[test]
fn the_tls_passthrough_examples_derive_their_split_for_the_server_name() {
    for (fixture_name, route) in [
        (
            "tls-passthrough-istio.yaml",
            "VirtualService/tcp-echo spec.tls[0]",
        ),
        (
            "tls-passthrough-gateway-api.yaml",
            "TLSRoute/tcp-echo spec.rules[0]",
        ),
    ] {
        let set = set_of(&fixture(fixture_name));
        for sni in [None, Some("tcp-echo.example.com")] {
            let d = derive(&set, &by_name(443, sni)).expect(fixture_name);
            assert_eq!(d.route, route);
            assert_eq!(
                split(&d),
                pairs(&[("one", 90.0), ("two", 10.0)]),
                "{fixture_name}"
            );
            assert_eq!(d.tls.expect("tls").server_names, ["tcp-echo.example.com"]);
        }
        let err = derive(&set, &by_name(443, Some("other.example.com"))).expect_err("no route");
        assert!(
            matches!(err.remedy, Some(Remedy::Sni { given: Some(_) })),
            "{err}"
        );
    }
}
