//! `lint`: every finding has a broken manifest that triggers it (with the resource and
//! field it names) and the fixed one (tests/fixtures/manifests/lint-clean.yaml, and
//! lint-clean-argo.yaml for Argo Rollouts and the ingress gateway's Service) that does not.

use std::path::Path;

use manifests::lint::{self, Finding, LintOptions, RULES};
use manifests::{DeriveOptions, ManifestSet, load};

fn fixture_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests")
        .join(name);
    std::fs::read_to_string(path).expect("fixture")
}

fn clean_text() -> String {
    fixture_text("lint-clean.yaml")
}

fn argo_text() -> String {
    fixture_text("lint-clean-argo.yaml")
}

fn tls_text() -> String {
    fixture_text("lint-clean-tls.yaml")
}

/// What the Flagger Canary's webhook reads mid-analysis (deploy/flagger/generated).
fn flagger_text() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/flagger/generated/canary-20.yaml");
    std::fs::read_to_string(path).expect("deploy/flagger example")
}

fn set_of(text: &str) -> ManifestSet {
    ManifestSet::from_documents(load::parse_text(text, "t.yaml").expect("parses")).expect("typed")
}

fn findings_with(text: &str, options: &LintOptions) -> Vec<Finding> {
    lint::lint(&set_of(text), options).findings
}

fn findings(text: &str) -> Vec<Finding> {
    findings_with(text, &LintOptions::default())
}

/// Replaces `from` (which must occur) with `to` in `text`.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the fixture has no {from:?}");
    text.replacen(from, to, 1)
}

/// Replaces `from` (which must occur) with `to` in the clean set.
fn broken(from: &str, to: &str) -> String {
    replaced(&clean_text(), from, to)
}

/// Replaces `from` (which must occur) with `to` in the clean Argo Rollouts set.
fn broken_argo(from: &str, to: &str) -> String {
    replaced(&argo_text(), from, to)
}

/// Replaces `from` (which must occur) with `to` in the clean TLS passthrough set.
fn broken_tls(from: &str, to: &str) -> String {
    replaced(&tls_text(), from, to)
}

/// `--route-port 443 --sni SNI`.
fn on_443(sni: &str) -> LintOptions {
    LintOptions {
        derive: DeriveOptions {
            route_port: Some(443),
            sni: Some(sni.to_owned()),
            ..DeriveOptions::default()
        },
        expect: None,
    }
}

/// `--route-port 31400`, and `--expect` when given.
fn on_31400(expect: Option<&[(&str, f64)]>) -> LintOptions {
    LintOptions {
        derive: DeriveOptions {
            route_port: Some(31400),
            ..DeriveOptions::default()
        },
        expect: expect.map(|e| e.iter().map(|(n, w)| ((*n).to_owned(), *w)).collect()),
    }
}

#[test]
fn the_fixed_set_lints_clean() {
    assert_eq!(findings(&clean_text()), Vec::<Finding>::new());
    // Two routes: the split needs a port, which is not a finding.
    let linted = lint::lint(&set_of(&clean_text()), &LintOptions::default());
    assert!(linted.split.is_err());
    let expected: &[(&str, f64)] = &[("one", 4.0), ("two", 1.0)];
    assert_eq!(
        findings_with(&clean_text(), &on_31400(Some(expected))),
        Vec::<Finding>::new()
    );
}

#[test]
fn the_fixed_argo_set_lints_clean_and_derives_its_split() {
    let linted = lint::lint(&set_of(&argo_text()), &LintOptions::default());
    assert_eq!(linted.findings, Vec::<Finding>::new());
    let split = linted.split.expect("derives");
    assert_eq!(split.expect_text(), "one=100");
}

#[test]
fn the_fixed_tls_set_lints_clean_and_its_server_names_choose_the_route() {
    // Routes on two ports (Istio 443, Gateway API 8443): the split needs a port.
    let linted = lint::lint(&set_of(&tls_text()), &LintOptions::default());
    assert_eq!(linted.findings, Vec::<Finding>::new());
    assert!(linted.split.is_err());
    for (sni, split) in [
        ("echo.example.com", "one=90,two=10"),
        ("ECHO.example.com", "one=90,two=10"),
        ("a.canary.example.com", "two=100"),
    ] {
        let linted = lint::lint(&set_of(&tls_text()), &on_443(sni));
        assert_eq!(linted.findings, Vec::<Finding>::new(), "{sni}");
        assert_eq!(linted.split.expect(sni).expect_text(), split, "{sni}");
    }
    // Two tls routes on 443 and no server name: the caller chooses, not a finding.
    let options = LintOptions {
        derive: DeriveOptions {
            route_port: Some(443),
            ..DeriveOptions::default()
        },
        expect: None,
    };
    let linted = lint::lint(&set_of(&tls_text()), &options);
    assert_eq!(linted.findings, Vec::<Finding>::new());
    assert!(linted.split.is_err());
    // The Gateway API twin: one TLSRoute on its listener's port.
    let options = LintOptions {
        derive: DeriveOptions {
            route_port: Some(8443),
            ..DeriveOptions::default()
        },
        expect: Some(vec![("one".to_owned(), 80.0), ("two".to_owned(), 20.0)]),
    };
    assert_eq!(findings_with(&tls_text(), &options), Vec::<Finding>::new());
}

#[test]
fn the_flagger_example_lints_clean() {
    assert_eq!(findings(&flagger_text()), Vec::<Finding>::new());
}

#[test]
fn every_finding_is_triggered_by_its_broken_manifest() {
    let flagger = flagger_text();
    let canary_service = "    service:\n      appProtocol: TCP\n";
    assert!(flagger.contains(canary_service), "the Canary's appProtocol");
    let service_doc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: echo-canary}\nspec:\n  selector: {app: echo, track: canary}\n  ports: [{name: tcp, port: 9000}]\n";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "TC101",
            broken("subset: canary}", "subset: canery}"),
            "VirtualService/echo",
            "spec.tcp[0].route[1].destination.subset",
        ),
        (
            "TC102",
            broken(
                "{host: echo, port: {number: 9000}, subset: stable}",
                "{host: ekho, port: {number: 9000}, subset: stable}",
            ),
            "VirtualService/echo",
            "spec.tcp[0].route[0].destination.host",
        ),
        (
            "TC103",
            broken(
                "{name: canary, labels: {track: canary}}",
                "{name: canary, labels: {track: canry}}",
            ),
            "DestinationRule/echo",
            "spec.subsets[1].labels",
        ),
        (
            "TC104",
            broken(
                "selector: {app: echo, track: canary}",
                "selector: {app: echo, track: canry}",
            ),
            "Service/echo-canary",
            "spec.selector",
        ),
        (
            "TC105",
            broken(
                "- {name: tcp, port: 9000}\n",
                "- {name: echo, port: 9000}\n",
            ),
            "Service/echo",
            "spec.ports[0].name",
        ),
        (
            "TC106",
            broken(
                "{host: echo, port: {number: 9000}, subset: stable}",
                "{host: echo, subset: stable}",
            ),
            "VirtualService/echo",
            "spec.tcp[0].route[0].destination.port",
        ),
        (
            "TC107",
            broken("gateways: [echo-gateway]", "gateways: [echo-gw]"),
            "VirtualService/echo",
            "spec.gateways[0]",
        ),
        (
            "TC108",
            broken("match: [{port: 31400}]", "match: [{port: 31499}]"),
            "VirtualService/echo",
            "spec.tcp[0].match[0].port",
        ),
        (
            "TC108",
            broken(
                "{number: 31400, name: tcp, protocol: TCP}",
                "{number: 31400, name: http, protocol: HTTP}",
            ),
            "VirtualService/echo",
            "spec.tcp[0].match[0].port",
        ),
        (
            "TC109",
            broken("weight: 20\n", "weight: -20\n"),
            "VirtualService/echo",
            "spec.tcp[0].route[1].weight",
        ),
        (
            "TC110",
            broken("weight: 80\n", "weight: 0\n").replacen("weight: 20\n", "weight: 0\n", 1),
            "VirtualService/echo",
            "spec.tcp[0]",
        ),
        (
            "TC111",
            broken(
                "          weight: 80\n        - destination: {host: echo, port: {number: 9000}, subset: canary}\n          weight: 20\n",
                "          weight: 0\n",
            ),
            "VirtualService/echo",
            "spec.tcp[0].route[0].weight",
        ),
        (
            "TC112",
            broken(
                "args: [\"9000,9001\", \"two\"]",
                "args: [\"9000,9001\", \"one\"]",
            ),
            "Deployment/echo-canary",
            "spec.template.spec.containers",
        ),
        (
            "TC113",
            broken(
                "{name: tcp, port: 31401, protocol: TCP}",
                "{name: tcp, port: 31401, protocol: HTTP}",
            ),
            "TCPRoute/echo",
            "spec.parentRefs[0].sectionName",
        ),
        (
            "TC113",
            broken(
                "{name: api-gateway, sectionName: tcp}",
                "{name: api-gateway, sectionName: tls}",
            ),
            "TCPRoute/echo",
            "spec.parentRefs[0]",
        ),
        (
            "TC107",
            broken(
                "{name: api-gateway, sectionName: tcp}",
                "{name: api-gw, sectionName: tcp}",
            ),
            "TCPRoute/echo",
            "spec.parentRefs[0].name",
        ),
        (
            "TC114",
            broken(
                "{name: echo-canary, port: 9000, weight: 20}",
                "{name: echo-canery, port: 9000, weight: 20}",
            ),
            "TCPRoute/echo",
            "spec.rules[0].backendRefs[1].name",
        ),
        (
            "TC115",
            broken("args: [\"9000,9001\", \"two\"]", "args: [\"--ports=9000\"]"),
            "Deployment/echo-canary",
            "spec.template.spec.containers",
        ),
        (
            "TC116",
            format!("{}{service_doc}", clean_text()),
            "Service/echo-canary",
            "metadata.name",
        ),
        (
            "TC117",
            flagger.replacen(canary_service, "    service:\n", 1),
            "Canary/tcp-echo",
            "spec.service.appProtocol",
        ),
    ];
    let argo = |from: &str, to: &str| broken_argo(from, to);
    let routing = "spec.strategy.canary.trafficRouting.istio";
    let more: Vec<(&str, String, &str, String)> = vec![
        (
            "TC103",
            broken(
                "    - {name: canary, labels: {track: canary}}\n",
                "    - {name: canary, labels: {track: canary}}\n    - {name: old, labels: {track: old}}\n",
            ),
            "DestinationRule/echo",
            "spec.subsets[2].labels".to_owned(),
        ),
        (
            "TC119",
            argo("- {name: tcp, port: 31400}", "- {name: tcp, port: 31401}"),
            "Gateway/echo-gateway",
            "spec.servers[0].port.number".to_owned(),
        ),
        (
            "TC120",
            broken("  host: echo\n", "  host: ekho\n"),
            "DestinationRule/echo",
            "spec.host".to_owned(),
        ),
        (
            "TC121",
            broken(
                "  tcp:\n    - match: [{port: 31400}]\n",
                "  http:\n    - route:\n        - destination: {host: echo-stable, port: {number: 9000}}\n  tcp:\n    - match: [{port: 31400}]\n",
            ),
            "VirtualService/echo",
            "spec.http[0].route[0].destination".to_owned(),
        ),
        (
            "TC122",
            broken(
                "{name: tcp, port: 31401, protocol: TCP}",
                "{name: tcp, port: 31401, protocol: TCP, allowedRoutes: {kinds: [{kind: TLSRoute}]}}",
            ),
            "TCPRoute/echo",
            "spec.parentRefs[0]".to_owned(),
        ),
        (
            "TC123",
            broken(
                "{name: echo-canary, port: 9000, weight: 20}",
                "{name: echo-canary, port: 9009, weight: 20}",
            ),
            "TCPRoute/echo",
            "spec.rules[0].backendRefs[1].port".to_owned(),
        ),
        (
            "TC123",
            broken(
                "{name: echo-canary, port: 9000, weight: 20}",
                "{name: echo-canary, weight: 20}",
            ),
            "TCPRoute/echo",
            "spec.rules[0].backendRefs[1].port".to_owned(),
        ),
        (
            "TC124",
            argo(
                "            name: echo\n            tcpRoutes",
                "            name: ekho\n            tcpRoutes",
            ),
            "Rollout/echo",
            format!("{routing}.virtualService.name"),
        ),
        (
            "TC124",
            argo(
                "destinationRule: {name: echo,",
                "destinationRule: {name: ekho,",
            ),
            "Rollout/echo",
            format!("{routing}.destinationRule.name"),
        ),
        (
            "TC125",
            argo("tcpRoutes: [{port: 31400}]", "tcpRoutes: [{port: 31499}]"),
            "Rollout/echo",
            format!("{routing}.virtualService.tcpRoutes[0].port"),
        ),
        (
            "TC125",
            argo("            tcpRoutes: [{port: 31400}]\n", ""),
            "Rollout/echo",
            format!("{routing}.virtualService.tcpRoutes"),
        ),
        (
            "TC126",
            argo("canarySubsetName: canary}", "canarySubsetName: canery}"),
            "Rollout/echo",
            format!("{routing}.destinationRule.canarySubsetName"),
        ),
    ];
    let mut cases: Vec<(&str, String, &str, String, LintOptions)> = cases
        .into_iter()
        .map(|(c, t, r, f)| (c, t, r, f.to_owned(), LintOptions::default()))
        .chain(
            more.into_iter()
                .map(|(c, t, r, f)| (c, t, r, f, LintOptions::default())),
        )
        .collect();
    // The split: beyond an int32 it cannot be derived, and nothing else is wrong.
    cases.push((
        "TC118",
        argo("          weight: 0\n", "          weight: 2147483648\n"),
        "VirtualService/echo",
        "spec.tcp[0].route[1].weight".to_owned(),
        LintOptions::default(),
    ));
    // TLS passthrough: the Istio set on 443, the Gateway API twin on 8443.
    let tls_route = "  tls:\n    - match: [{port: 443, sniHosts: [echo.example.com]}]\n";
    let tcp_beside = format!(
        "  tcp:\n    - match: [{{port: 443}}]\n      route:\n        - destination: {{host: echo, port: {{number: 9000}}, subset: stable}}\n{tls_route}"
    );
    let tls: Vec<(&str, String, &str, &str, LintOptions)> = vec![
        (
            "TC128",
            broken_tls(
                "tls: {mode: PASSTHROUGH}",
                "tls: {mode: SIMPLE, credentialName: echo}",
            ),
            "VirtualService/echo",
            "spec.tls[0].match[0].port",
            LintOptions::default(),
        ),
        (
            "TC128",
            broken_tls("tls: {mode: Passthrough}", "tls: {mode: Terminate}"),
            "TLSRoute/echo",
            "spec.parentRefs[0].sectionName",
            LintOptions::default(),
        ),
        (
            "TC108",
            broken_tls(
                "{port: 443, sniHosts: [echo.example.com]}",
                "{port: 8443, sniHosts: [echo.example.com]}",
            ),
            "VirtualService/echo",
            "spec.tls[0].match[0].port",
            LintOptions::default(),
        ),
        (
            "TC129",
            tls_text(),
            "VirtualService/echo",
            "spec.tls[0].match[0].sniHosts",
            on_443("echo.example.org"),
        ),
        (
            "TC130",
            broken_tls(
                "sniHosts: [\"*.canary.example.com\"]",
                "sniHosts: [Echo.example.com]",
            ),
            "VirtualService/echo",
            "spec.tls[1].match[0].sniHosts",
            LintOptions::default(),
        ),
        (
            "TC131",
            broken_tls(tls_route, &tcp_beside),
            "VirtualService/echo",
            "spec.tcp[0].match[0].port",
            LintOptions::default(),
        ),
        (
            "TC131",
            broken_tls(tls_route, &tcp_beside).replacen(
                "gateways: [echo-gateway]",
                "gateways: [mesh]",
                1,
            ),
            "VirtualService/echo",
            "spec.tcp[0]",
            LintOptions::default(),
        ),
        (
            "TC132",
            broken_tls(
                "hostnames: [echo.example.com]",
                "hostnames: [echo.example.org]",
            ),
            "TLSRoute/echo",
            "spec.hostnames",
            LintOptions::default(),
        ),
        (
            "TC122",
            broken_tls(
                "tls: {mode: Passthrough}}",
                "tls: {mode: Passthrough}, allowedRoutes: {kinds: [{kind: TCPRoute}]}}",
            ),
            "TLSRoute/echo",
            "spec.parentRefs[0]",
            LintOptions::default(),
        ),
    ];
    cases.extend(
        tls.into_iter()
            .map(|(c, t, r, f, o)| (c, t, r, f.to_owned(), o)),
    );
    let expected: &[(&str, f64)] = &[("one", 90.0), ("two", 10.0)];
    cases.push((
        "TC127",
        clean_text(),
        "VirtualService/echo",
        "spec.tcp[0]".to_owned(),
        on_31400(Some(expected)),
    ));
    let mut covered: Vec<&str> = Vec::new();
    for (code, text, resource, field, options) in &cases {
        let found = findings_with(text, options);
        let hit = found.iter().find(|f| f.code == *code);
        let Some(hit) = hit else {
            panic!("{code} not found; got {found:#?}")
        };
        assert_eq!(
            (hit.resource.as_str(), hit.field.as_str()),
            (*resource, field.as_str()),
            "{code}: {hit:#?}"
        );
        assert!(
            hit.message
                .ends_with(|c: char| c.is_alphanumeric() || c == ')' || c == '"')
                && !hit.message.contains('\n'),
            "{code}: one sentence: {}",
            hit.message
        );
        assert!(
            hit.origin.starts_with("t.yaml, document "),
            "{code}: {}",
            hit.origin
        );
        covered.push(code);
    }
    for rule in RULES {
        assert!(
            covered.contains(&rule.code),
            "{} has no broken manifest",
            rule.code
        );
    }
}

#[test]
fn istio_codes_are_the_analyzers() {
    let code = |c: &str| {
        RULES
            .iter()
            .find(|r| r.code == c)
            .and_then(|r| r.istio_code)
    };
    assert_eq!(code("TC101"), Some("IST0101"));
    assert_eq!(code("TC103"), Some("IST0173"));
    assert_eq!(code("TC105"), Some("IST0118"));
    assert_eq!(code("TC106"), Some("IST0112"));
    assert_eq!(code("TC119"), Some("IST0162"));
}

#[test]
fn a_split_that_cannot_be_derived_is_a_finding_only_when_nothing_else_says_why() {
    // Flagger writes the route: a Canary without one is not a finding.
    let mut set = set_of(&flagger_text());
    set.resources
        .retain(|r| !matches!(r.kind, manifests::model::Kind::VirtualService(_)));
    assert!(set.canaries().next().is_some());
    let linted = lint::lint(&set, &LintOptions::default());
    assert!(linted.split.is_err());
    assert!(
        !linted.findings.iter().any(|f| f.code == "TC118"),
        "{:#?}",
        linted.findings
    );
    // No route and no Canary: nothing routes a connection.
    let services_only = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {app: x}, ports: [{name: tcp, port: 9000}]}\n";
    let found = findings(services_only);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, "TC118");
    assert!(
        found[0].message.contains("no tcp route"),
        "{}",
        found[0].message
    );
    // A subset missing says it already: no second finding for the same mistake.
    let found = findings(&broken_argo("subset: canary}", "subset: canery}"));
    assert!(found.iter().any(|f| f.code == "TC101"), "{found:#?}");
    assert!(!found.iter().any(|f| f.code == "TC118"), "{found:#?}");
}
