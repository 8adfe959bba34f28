//! `--output junit` end to end: the real binary's XML for verify (PASS and INCONCLUSIVE,
//! failure or skipped), lint (clean and with a finding) and rehearse (a FAILed step),
//! parsed with a real parser (roxmltree) and, where Debian's xmllint is installed,
//! validated against the committed JUnit schemas (report/schema/junit/).

mod support;

use std::path::Path;
use std::process::Command;

use support::{EchoServer, run_checker};

/// The committed schemas: Apache Ant's (Windy Road) and Jenkins' xUnit plugin's.
const SCHEMAS: [&str; 2] = ["JUnit.xsd", "jenkins-junit-10.xsd"];

fn schema(name: &str) -> std::path::PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../report/schema/junit"
    ))
    .join(name)
}

fn deploy(path: &str) -> String {
    format!("{}/../deploy/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The structure every consumer relies on: suites, counts that match the cases, every
/// case named, failures with a message and a type.
fn check_structure(xml: &str) -> roxmltree::Document<'_> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("not XML ({e}):\n{xml}"));
    let root = doc.root_element();
    assert!(root.has_tag_name("testsuites"), "{xml}");
    for suite in root.children().filter(|n| n.is_element()) {
        assert!(suite.has_tag_name("testsuite"));
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        let count = |tag: &str| {
            cases
                .iter()
                .filter(|c| c.children().any(|n| n.has_tag_name(tag)))
                .count()
                .to_string()
        };
        assert_eq!(
            suite.attribute("tests"),
            Some(cases.len().to_string().as_str())
        );
        assert_eq!(suite.attribute("failures"), Some(count("failure").as_str()));
        assert_eq!(suite.attribute("skipped"), Some(count("skipped").as_str()));
        for case in &cases {
            assert!(case.attribute("name").is_some_and(|n| !n.is_empty()));
            for failure in case.children().filter(|n| n.has_tag_name("failure")) {
                assert!(failure.attribute("message").is_some_and(|m| !m.is_empty()));
                assert!(failure.attribute("type").is_some());
            }
        }
    }
    doc
}

/// Validates `xml` with `xmllint --schema` against every committed schema.
fn validate_with_xmllint(xml: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).expect("write the report");
    for name in SCHEMAS {
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(schema(name))
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run xmllint ({e}); install the Debian package: apt-get install -y libxml2-utils")
            });
        assert!(
            out.status.success(),
            "not valid against {name}: {}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The message of every failure of type `kind`.
fn failures<'a>(doc: &'a roxmltree::Document<'_>, kind: &str) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.has_tag_name("failure") && n.attribute("type") == Some(kind))
        .filter_map(|n| n.attribute("message"))
        .collect()
}

/// The verify and lint documents these tests check, with the exit codes.
fn outputs() -> Vec<(String, i32, String)> {
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let mut out = Vec::new();
    for (what, args) in [
        (
            "verify PASS",
            vec![
                "verify",
                "--target",
                &target,
                "--expect",
                "one=100,two=0",
                "--samples",
                "200",
            ],
        ),
        (
            "verify INCONCLUSIVE",
            vec![
                "verify",
                "--target",
                &target,
                "--expect",
                "one=50,two=50",
                "--samples",
                "4",
            ],
        ),
        (
            "verify INCONCLUSIVE skipped",
            vec![
                "verify",
                "--target",
                &target,
                "--expect",
                "one=50,two=50",
                "--samples",
                "4",
                "--junit-inconclusive",
                "skipped",
            ],
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--output", "junit", "--no-progress"]);
        let run = run_checker(&args);
        out.push((what.to_owned(), run.code, run.stdout));
    }
    let example = deploy("flagger/generated/canary-20.yaml");
    for (what, expect) in [
        ("lint clean", "one=80,two=20"),
        ("lint finding", "one=50,two=50"),
    ] {
        let run = run_checker(&["lint", &example, "--expect", expect, "--output", "junit"]);
        out.push((what.to_owned(), run.code, run.stdout));
    }
    out
}

#[test]
fn verify_and_lint_write_junit_with_a_case_per_share_and_per_finding() {
    for (what, code, xml) in outputs() {
        let doc = check_structure(&xml);
        let names: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .filter_map(|n| n.attribute("name"))
            .collect();
        match what.as_str() {
            "verify PASS" => {
                assert_eq!(code, 0, "{xml}");
                assert_eq!(
                    names,
                    ["share of one", "share of two", "error budget", "verdict"]
                );
                assert!(!xml.contains("<failure"), "{xml}");
            }
            "verify INCONCLUSIVE" => {
                assert_eq!(code, 3, "{xml}");
                let inconclusive = failures(&doc, "inconclusive");
                assert!(
                    inconclusive
                        .iter()
                        .any(|m| m.starts_with("INCONCLUSIVE: 4 samples cannot decide")),
                    "{xml}"
                );
            }
            "verify INCONCLUSIVE skipped" => {
                assert_eq!(code, 3, "{xml}");
                assert!(failures(&doc, "inconclusive").is_empty(), "{xml}");
                assert!(
                    doc.descendants().any(|n| n.has_tag_name("skipped")),
                    "{xml}"
                );
            }
            "lint clean" => {
                assert_eq!(code, 0, "{xml}");
                assert!(!xml.contains("<failure"), "{xml}");
            }
            "lint finding" => {
                assert_eq!(code, 1, "{xml}");
                let tc127 = failures(&doc, "TC127");
                assert!(!tc127.is_empty(), "{xml}");
            }
            _ => unreachable!(),
        }
    }
}

#[test]
#[ignore = "needs xmllint (Debian package libxml2-utils); .ci/run installs it"]
fn junit_output_is_valid_against_the_common_junit_schemas() {
    for (_, _, xml) in outputs() {
        validate_with_xmllint(&xml);
    }
    // A rehearsal whose third step FAILs (the chaos step sets the gateway off its weights).
    let run = run_checker(&[
        "rehearse", "--chaos", "3", "--seed", "5", "--output", "junit",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = check_structure(&run.stdout);
    let step3 = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name")
                    .is_some_and(|s| s.starts_with("step 3:"))
        })
        .expect("a case for step 3");
    let failure = step3
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("step 3 failed");
    assert_eq!(failure.attribute("type"), Some("fail"));
    assert!(
        failure
            .attribute("message")
            .is_some_and(|m| m.contains("two is off by +")),
        "{}",
        run.stdout
    );
    validate_with_xmllint(&run.stdout);
}
