//! `lint`: every finding has a broken manifest that triggers it (with the resource and
//! field it names) and the fixed one (tests/fixtures/manifests/lint-clean.yaml) that does not.

use std::path::Path;

use manifests::lint::{self, Finding, RULES};
use manifests::{DeriveOptions, ManifestSet, load};

fn clean_text() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests/lint-clean.yaml");
    std::fs::read_to_string(path).expect("fixture")
}

/// What the Flagger Canary's webhook reads mid-analysis (deploy/flagger/generated).
fn flagger_text() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/flagger/generated/canary-20.yaml");
    std::fs::read_to_string(path).expect("deploy/flagger example")
}

fn findings(text: &str) -> Vec<Finding> {
    let set = ManifestSet::from_documents(load::parse_text(text, "t.yaml").expect("parses"))
        .expect("typed");
    lint::lint(&set, &DeriveOptions::default())
}

/// Replaces `from` (which must occur) with `to` in the clean set.
fn broken(from: &str, to: &str) -> String {
    let text = clean_text();
    assert!(text.contains(from), "the fixture has no {from:?}");
    text.replacen(from, to, 1)
}

#[test]
fn the_fixed_set_lints_clean() {
    assert_eq!(findings(&clean_text()), Vec::<Finding>::new());
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
    let mut covered: Vec<&str> = Vec::new();
    for (code, text, resource, field) in &cases {
        let found = findings(text);
        let hit = found.iter().find(|f| f.code == *code);
        let Some(hit) = hit else {
            panic!("{code} not found; got {found:#?}")
        };
        assert_eq!(
            (hit.resource.as_str(), hit.field.as_str()),
            (*resource, *field),
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
}
