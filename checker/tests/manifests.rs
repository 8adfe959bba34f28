//! `checker verify --expect-from` and `checker lint` end to end: the real binary, in-process
//! echo servers on loopback, the manifests of deploy/ (committed renders, or rendered with
//! `kubectl kustomize` where kubectl is installed), and the JSON documents validated
//! against their schemas.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{
    EchoServer, Guard, Run, assert_schema_valid, checker, run_checker, run_checker_env, wait_output,
};

fn fixture(name: &str) -> String {
    repo()
        .join("manifests/tests/fixtures/manifests")
        .join(name)
        .display()
        .to_string()
}

/// What the Flagger Canary's rollout webhook reads at canary weight 20 (a `kind: List`).
fn flagger_example() -> String {
    repo()
        .join("deploy/flagger/generated/canary-20.yaml")
        .display()
        .to_string()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the checker with `input` on its stdin.
fn run_with_stdin(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(checker())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start checker");
    let mut stdin = child.stdin.take().expect("stdin piped");
    let guard = Guard(child);
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    wait_output(guard)
}

fn kubectl_kustomize(dir: &str) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn assert_lint_schema_valid(document: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(report::lint::SCHEMA).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "schema errors: {errors:#?}\n{document:#}"
    );
}

#[test]
fn expect_from_the_promote_step_passes_against_the_version_it_derives() {
    // After promotion both destinations answer `two`: the derived split is two=100.
    let server = EchoServer::start("two", 1);
    let target = server.addr().to_string();
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect-from",
        &fixture("kustomize-4-promote.yaml"),
        "--output",
        "json",
        "--no-progress",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_schema_valid(&doc);
    let from = &doc["expected_from"];
    assert_eq!(from["route"], "VirtualService/tcp-echo spec.tcp[0]");
    assert_eq!(from["versions"][0]["name"], "two");
    assert_eq!(from["versions"][0]["share"], 1.0);
    let provenance = from["versions"][0]["provenance"]
        .as_array()
        .expect("provenance");
    let workloads: Vec<&str> = provenance
        .iter()
        .filter_map(|p| p["workload"].as_str())
        .collect();
    assert_eq!(
        workloads,
        ["Deployment/tcp-echo-stable", "Deployment/tcp-echo-canary"]
    );
    assert_eq!(doc["inputs"]["expect"][0]["name"], "two");
    // The split and its provenance are printed before sampling (on stderr with JSON output).
    assert!(
        run.stderr
            .contains("expected split from VirtualService/tcp-echo spec.tcp[0]: two=100"),
        "{run:?}"
    );
}

#[test]
fn expect_from_the_canary_step_fails_when_only_stable_answers() {
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect-from",
        &fixture("kustomize-2-canary-10.yaml"),
        "--no-progress",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let derived = run
        .stdout
        .find("expected split from VirtualService/tcp-echo spec.tcp[0]: one=90,two=10")
        .expect("derivation printed");
    let plan = run.stdout.find("plan: ").expect("plan printed");
    assert!(
        derived < plan,
        "the derivation comes before sampling: {run:?}"
    );
    assert!(
        run.stdout.contains(
            "Deployment/tcp-echo-canary (1 replica) answers two (args[1] of container echo-server)"
        ),
        "{run:?}"
    );
}

#[test]
fn expect_and_expect_from_together_are_a_usage_error() {
    let run = run_checker(&[
        "verify",
        "--target",
        "127.0.0.1:9",
        "--expect",
        "one=1",
        "--expect-from",
        &fixture("kustomize-4-promote.yaml"),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cannot be used with"), "{run:?}");
}

#[test]
fn an_impossible_derivation_exits_2_with_one_sentence_naming_resource_and_field() {
    let text = std::fs::read_to_string(fixture("kustomize-2-canary-10.yaml"))
        .expect("fixture")
        .replace("subset: canary", "subset: canery");
    let run = run_with_stdin(
        &["verify", "--target", "127.0.0.1:9", "--expect-from", "-"],
        &text,
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr
            .contains("VirtualService/tcp-echo spec.tcp[0].route[1].destination.subset"),
        "{run:?}"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
}

#[test]
fn unreadable_manifests_exit_2() {
    let run = run_checker(&[
        "verify",
        "--target",
        "127.0.0.1:9",
        "--expect-from",
        "/nonexistent/manifests.yaml",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot read /nonexistent/manifests.yaml"),
        "{run:?}"
    );
    let run = run_with_stdin(&["lint", "-"], "kind: [unclosed\n");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("-, document 1"), "{run:?}");
}

/// A FIFO (no writer: opening it for reading the usual way waits forever), an endless
/// device and a loop of symbolic links, given as manifests to `lint` and `--expect-from`
/// and as the rehearsal's plan: each is refused in one sentence naming it, exit 2,
/// without waiting for a writer or reading the device. Every run is bounded by the
/// support's wait (the checker is killed and the test fails past it) and its memory by
/// a ceiling.
#[test]
fn manifest_sources_that_are_no_files_are_refused_not_waited_on_or_read() {
    let dir = tempfile::tempdir().unwrap();
    for (path, says) in support::no_files(dir.path(), "yaml") {
        let path = path.as_str();
        let mut commands = vec![
            vec!["lint", path],
            vec!["verify", "--target", "127.0.0.1:9", "--expect-from", path],
        ];
        if cfg!(feature = "rehearse") {
            commands.push(vec!["rehearse", "--plan", path]);
        }
        for args in commands {
            // Nothing of /dev/zero was read: far below the 16 MiB a source may hold.
            support::assert_refused_unread(&args, path, says);
        }
    }
}

#[test]
fn lint_exits_0_clean_and_1_with_findings_in_a_schema_valid_document() {
    let run = run_checker(&["lint", &fixture("lint-clean.yaml"), "--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert_eq!(doc["outcome"], "clean");
    let text = std::fs::read_to_string(fixture("lint-clean.yaml"))
        .expect("fixture")
        .replace("subset: canary}", "subset: canery}");
    let run = run_with_stdin(&["lint", "--output", "json", "-"], &text);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert_eq!(doc["findings"][0]["code"], "TC101");
    assert_eq!(doc["findings"][0]["istio_code"], "IST0101");
    assert_eq!(
        doc["findings"][0]["field"],
        "spec.tcp[0].route[1].destination.subset"
    );
    let run = run_with_stdin(&["lint", "-"], &text);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.starts_with("VirtualService/echo spec.tcp[0].route[1].destination.subset: TC101 (subset-not-found, istioctl IST0101)"), "{run:?}");
}

#[test]
fn lint_refuses_to_call_nothing_clean() {
    // Nothing on stdin.
    let run = run_with_stdin(&["lint", "-"], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with("checker: nothing to lint: - held no Kubernetes object"),
        "{run:?}"
    );
    // Objects, none of a kind that routes: what was skipped is named.
    let run = run_with_stdin(
        &["lint", "--output", "json", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    assert!(
        run.stderr.contains(
            "- held 1 Kubernetes object(s), none of a kind that routes TCP (1 v1 ConfigMap)"
        ),
        "{run:?}"
    );
    // A directory with no manifest file in it.
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().display().to_string();
    let run = run_checker(&["lint", &dir]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("held no Kubernetes object")
            && run.stderr.contains("a directory is read for its .yaml"),
        "{run:?}"
    );
}

/// A kustomize directory, and a `kubectl` script (`{TMP}` stands for the folder) in a
/// folder of its own, for PATH.
fn fake_kubectl(script: &str) -> (tempfile::TempDir, String, std::ffi::OsString) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join("overlay");
    std::fs::create_dir(&dir).expect("overlay");
    std::fs::write(dir.join("kustomization.yaml"), "resources: [all.yaml]\n").expect("write");
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let script = script.replace("{TMP}", &tmp.path().display().to_string());
    std::fs::write(bin.join("kubectl"), script).expect("write");
    std::fs::set_permissions(bin.join("kubectl"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let path = std::env::join_paths([bin.as_path(), Path::new("/usr/bin"), Path::new("/bin")])
        .expect("PATH");
    (tmp, dir.display().to_string(), path)
}

#[test]
fn lint_renders_a_kustomize_directory_with_kubectl() {
    // kubectl here prints the clean set, as `kubectl kustomize` prints a render.
    let (_tmp, dir, path) = fake_kubectl(&format!(
        "#!/bin/sh\n[ \"$1\" = kustomize ] || exit 3\ncat '{}'\n",
        fixture("lint-clean.yaml")
    ));
    let run = run_checker_env(&["lint", "--output", "json", &dir], &[("PATH", &path)]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert_eq!(doc["outcome"], "clean");
    assert!(doc["resources"].as_u64().is_some_and(|n| n > 5), "{doc:#}");
}

#[test]
fn a_kustomize_render_that_hangs_is_stopped_and_a_failing_one_named() {
    // A remote base on a server that never answers: kubectl never finishes.
    let (_tmp, dir, path) = fake_kubectl("#!/bin/sh\nsleep 300 &\nwait\n");
    let run = run_checker_env(
        &["lint", "--kustomize-timeout", "1s", &dir],
        &[("PATH", &path)],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr.contains("kubectl kustomize")
            && run.stderr.contains("did not finish within 1 s")
            && run.stderr.contains("--kustomize-timeout raises the limit"),
        "{run:?}"
    );
    let run = run_checker_env(
        &["lint", &dir],
        &[
            ("PATH", &path),
            ("CHECKER_KUSTOMIZE_TIMEOUT", std::ffi::OsStr::new("0.5")),
        ],
    );
    assert!(
        run.stderr.contains("did not finish within 0.5 s"),
        "{run:?}"
    );

    // kubectl failing: its whole message, without klog's header.
    let (_tmp, dir, path) = fake_kubectl(&format!(
        "#!/bin/sh\ncat '{}' >&2\nexit 1\n",
        repo()
            .join("manifests/tests/fixtures/kubectl/duplicate-key.stderr")
            .display()
    ));
    let run = run_checker_env(&["lint", &dir], &[("PATH", &path)]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr.contains("failed (exit status: 1): map[string]interface {}(nil): yaml: unmarshal errors: line 5: mapping key \"name\" already defined at line 4"),
        "{run:?}"
    );
}

#[test]
fn lint_escapes_what_the_manifests_hold_and_keeps_json_raw() {
    // A name and a subset carrying terminal control sequences (clear screen, red, a
    // one-byte CSI, a right-to-left override).
    let text = std::fs::read_to_string(fixture("lint-clean.yaml"))
        .expect("fixture")
        .replace("subset: canary}", "subset: \"can\\e[2J\\u009bary\"}")
        .replace(
            "metadata: {name: echo-canary}\nspec:\n  replicas",
            "metadata: {name: \"echo-\\e[31mcanary\\u202e\"}\nspec:\n  replicas",
        );
    let run = run_with_stdin(&["lint", "-", "--route-port", "31400"], &text);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        !run.stdout
            .chars()
            .any(|c| c.is_control() && c != '\n' || c == '\u{202e}'),
        "{:?}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("the subset \"can\\x1b[2J\\u{009b}ary\""),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("split: none: "), "{}", run.stdout);
    let run = run_with_stdin(&["lint", "-", "--output", "json"], &text);
    let doc = run.json();
    assert!(
        doc["findings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"can\u{1b}[2J\u{9b}ary\"")),
        "{doc:#}"
    );
    // The first print of `verify --expect-from`: its error quotes the subset, escaped.
    let run = run_with_stdin(
        &[
            "verify",
            "--target",
            "127.0.0.1:9",
            "--expect-from",
            "-",
            "--route-port",
            "31400",
        ],
        &text,
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        !run.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        run.stderr
    );
    assert!(run.stderr.contains("can\\x1b[2J"), "{}", run.stderr);
}

#[test]
fn lint_checks_the_split_against_expect() {
    let clean = fixture("lint-clean.yaml");
    let lint = |expect: &str| {
        run_checker(&[
            "lint",
            &clean,
            "--route-port",
            "31400",
            "--expect",
            expect,
            "--output",
            "json",
        ])
    };
    assert_eq!(lint("one=80,two=20").code, 0);
    assert_eq!(lint("one=4,two=1").code, 0, "shares, not numbers");
    let run = lint("one=90,two=10");
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert_eq!(doc["findings"][0]["code"], "TC127");
    assert_eq!(
        doc["findings"][0]["message"],
        "the route sends one=80,two=20, not the expected one=90,two=10"
    );
    let run = run_checker(&["lint", &clean, "--expect", "one=90,two=10=3"]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn expect_from_the_tls_passthrough_example_derives_the_split_for_its_server_name() {
    // deploy/tls-passthrough/istio as rendered (kept as a fixture): 90/10 by server name.
    let server = EchoServer::start_tls("one", &["tcp-echo.example.com"]);
    let target = server.addr().to_string();
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect-from",
        &fixture("tls-passthrough-istio.yaml"),
        "--tls",
        "--insecure",
        "--sni",
        "tcp-echo.example.com",
        "--no-progress",
    ]);
    assert_eq!(run.code, 1, "only one answers: {run:?}");
    let derived = run
        .stdout
        .find("expected split from VirtualService/tcp-echo spec.tls[0], server name tcp-echo.example.com (matches sniHosts tcp-echo.example.com): one=90,two=10")
        .expect("derivation printed");
    let plan = run.stdout.find("plan: ").expect("plan printed");
    assert!(derived < plan, "{run:?}");
    // A name the gateway has no route for: exit 2, one sentence, before any sample.
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect-from",
        &fixture("tls-passthrough-istio.yaml"),
        "--tls",
        "--insecure",
        "--sni",
        "other.example.com",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("no tls route has a server name matching \"other.example.com\""),
        "{run:?}"
    );
}

#[cfg(feature = "rehearse")]
#[test]
#[ignore = "needs kubectl and haproxy (Debian packages); .ci/run installs them"]
fn expect_from_the_tls_passthrough_overlay_passes_through_a_gateway_at_its_weights() {
    // The overlay directory, rendered by the checker with kubectl; HAProxy at 90/10 in the
    // gateway's place (TCP mode: the TLS passes through to the echo servers, as through a
    // PASSTHROUGH gateway; the derivation by server name is what is tested).
    let one = EchoServer::start_tls("one", &["tcp-echo.example.com"]);
    let two = EchoServer::start_tls("two", &["tcp-echo.example.com"]);
    let proxy = support::HaProxy::start(&[(one.addr(), 90), (two.addr(), 10)]);
    let overlay = repo().join("deploy/tls-passthrough/istio");
    let run = run_checker(&[
        "verify",
        "--target",
        &proxy.addr.to_string(),
        "--expect-from",
        &overlay.display().to_string(),
        "--tls",
        "--insecure",
        "--sni",
        "tcp-echo.example.com",
        "--no-progress",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("expected split from VirtualService/tcp-echo spec.tls[0], server name tcp-echo.example.com"),
        "{run:?}"
    );
    assert!(run.stdout.contains("✔ PASS"), "{run:?}");
}

#[test]
fn lint_picks_the_tls_route_by_the_server_name_given() {
    let tls = fixture("lint-clean-tls.yaml");
    let run = run_checker(&[
        "lint",
        &tls,
        "--route-port",
        "443",
        "--sni",
        "echo.example.com",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert_eq!(doc["split"]["route"], "VirtualService/echo spec.tls[0]");
    assert_eq!(doc["split"]["tls"]["sni"], "echo.example.com");
    assert_eq!(doc["split"]["tls"]["matched"], "echo.example.com");
    // The variable, and a name no tls route of the port has: TC129, exit 1.
    let run = run_checker_env(
        &["lint", &tls, "--route-port", "443", "--output", "json"],
        &[("CHECKER_SNI", std::ffi::OsStr::new("echo.example.org"))],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert_eq!(doc["findings"][0]["code"], "TC129", "{doc:#}");
    assert_eq!(doc["split_error"]["resource"], "VirtualService/echo");
    // Two tls routes on the port and no name: not a finding, the split line asks for one.
    let run = run_checker(&["lint", &tls, "--route-port", "443"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("--sni NAME"), "{run:?}");
    // An address is no server name.
    let run = run_checker(&["lint", &tls, "--sni", "10.0.0.1"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--sni"), "{run:?}");
}

#[test]
fn expect_from_a_tls_route_chosen_by_its_server_name_passes() {
    // Names under *.canary.example.com go to the canary's tls route: two=100.
    let server = EchoServer::start_tls("two", &["a.canary.example.com"]);
    let target = server.addr().to_string();
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect-from",
        &fixture("lint-clean-tls.yaml"),
        "--route-port",
        "443",
        "--tls",
        "--insecure",
        "--sni",
        "a.canary.example.com",
        "--output",
        "json",
        "--no-progress",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_schema_valid(&doc);
    let from = &doc["expected_from"];
    assert_eq!(from["route"], "VirtualService/echo spec.tls[1]");
    assert_eq!(from["tls"]["matched"], "*.canary.example.com");
    assert_eq!(from["versions"][0]["name"], "two");
    assert!(
        run.stderr.contains(
            "expected split from VirtualService/echo spec.tls[1], server name a.canary.example.com (matches sniHosts *.canary.example.com): two=100"
        ),
        "{run:?}"
    );
}

#[test]
#[ignore = "needs kubectl (kubectl kustomize renders the manifest sets)"]
fn every_manifest_set_under_deploy_lints_clean() {
    let mut sets: Vec<String> = vec!["deploy/kustomize/base".to_owned()];
    for parent in [
        "deploy/kustomize/overlays",
        "deploy/gateway-api",
        "deploy/argo-rollouts",
        "deploy/flagger",
        "deploy/tls-passthrough",
    ] {
        let mut dirs: Vec<String> = std::fs::read_dir(repo().join(parent))
            .expect("deploy/ folder")
            .filter_map(Result::ok)
            .filter(|e| e.path().join("kustomization.yaml").is_file())
            // The part v1/ and v1alpha2/ share: applied alone it routes nothing (TC118).
            .filter(|e| !(parent == "deploy/gateway-api" && e.file_name() == "common"))
            .map(|e| format!("{parent}/{}", e.file_name().to_string_lossy()))
            .collect();
        dirs.sort();
        sets.extend(dirs);
    }
    assert!(sets.len() >= 15, "{sets:?}");
    assert!(
        sets.contains(&"deploy/tls-passthrough/gateway-api".to_owned()),
        "{sets:?}"
    );
    assert!(
        sets.contains(&"deploy/flagger/release-two".to_owned()),
        "{sets:?}"
    );
    for set in &sets {
        let run = run_with_stdin(&["lint", "-"], &kubectl_kustomize(set));
        assert_eq!(run.code, 0, "{set}: {run:?}");
    }
    // Flagger's generated routing is not a kustomization: the example, read as it is.
    let run = run_checker(&["lint", &flagger_example()]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn expect_from_flaggers_generated_routing_derives_primary_and_canary() {
    // The webhook's view at canary weight 20: tcp-echo-primary (Flagger's copy, still
    // `one`) 80, tcp-echo-canary (the target Deployment, now `two`) 20, no subsets. Only
    // `one` answers here, so the check fails: the derived 20% of `two` is missing.
    let server = EchoServer::start("one", 1);
    let target = server.addr().to_string();
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect-from",
        &flagger_example(),
        "--output",
        "json",
        "--no-progress",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_schema_valid(&doc);
    let from = &doc["expected_from"];
    assert_eq!(from["route"], "VirtualService/tcp-echo spec.tcp[0]");
    let versions = from["versions"].as_array().expect("versions");
    let got: Vec<(&str, f64, &str, &str)> = versions
        .iter()
        .map(|v| {
            let p = &v["provenance"][0];
            (
                v["name"].as_str().expect("name"),
                v["share"].as_f64().expect("share"),
                p["selected_by"].as_str().expect("selected_by"),
                p["workload"].as_str().expect("workload"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "one",
                0.8,
                "Service/tcp-echo-primary",
                "Deployment/tcp-echo-primary"
            ),
            ("two", 0.2, "Service/tcp-echo-canary", "Deployment/tcp-echo"),
        ]
    );
    assert!(
        run.stderr
            .contains("expected split from VirtualService/tcp-echo spec.tcp[0]: one=80,two=20"),
        "{run:?}"
    );
}

#[cfg(feature = "rehearse")]
#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn expect_from_flaggers_generated_routing_passes_through_a_gateway_at_its_weights() {
    // HAProxy stands in for the ingress gateway at the example's weights (round robin by
    // weight splits exactly): the split derived from Flagger's routing passes.
    let one = EchoServer::start("one", 1);
    let two = EchoServer::start("two", 1);
    let proxy = support::HaProxy::start(&[(one.addr(), 80), (two.addr(), 20)]);
    let run = run_checker(&[
        "verify",
        "--target",
        &proxy.addr.to_string(),
        "--expect-from",
        &flagger_example(),
        "--no-progress",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("expected split from VirtualService/tcp-echo spec.tcp[0]: one=80,two=20"),
        "{run:?}"
    );
    assert!(run.stdout.contains("✔ PASS"), "{run:?}");
}

#[test]
fn lint_json_carries_the_split_it_derives_or_why_there_is_none() {
    let run = run_checker(&["lint", "--output", "json", &flagger_example()]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert_eq!(doc["split"]["route"], "VirtualService/tcp-echo spec.tcp[0]");
    let split: Vec<(&str, f64)> = doc["split"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().expect("name"),
                v["weight"].as_f64().expect("weight"),
            )
        })
        .collect();
    assert_eq!(split, [("one", 80.0), ("two", 20.0)]);
    assert!(doc["split_error"].is_null(), "{doc:#}");
    let run = run_checker(&["lint", &flagger_example()]);
    assert!(
        run.stdout
            .contains("split: one=80,two=20 (VirtualService/tcp-echo spec.tcp[0])"),
        "{run:?}"
    );

    // A Canary without appProtocol: TCP makes Flagger write an http route (TC117); the
    // routing already generated still derives its split.
    let text = std::fs::read_to_string(flagger_example())
        .expect("example")
        .replacen(
            "    service:\n      appProtocol: TCP\n",
            "    service:\n",
            1,
        );
    let run = run_with_stdin(&["lint", "--output", "json", "-"], &text);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert_eq!(doc["findings"][0]["code"], "TC117");
    assert_eq!(doc["findings"][0]["resource"], "Canary/tcp-echo");
    assert_eq!(doc["split"]["versions"][1]["name"], "two");

    // No tcp route: no split, and the reason names the field.
    let run = run_with_stdin(
        &["lint", "--output", "json", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {app: x}, ports: [{name: tcp, port: 9000}]}\n",
    );
    let doc = run.json();
    assert_lint_schema_valid(&doc);
    assert!(doc["split"].is_null(), "{doc:#}");
    assert_eq!(doc["split_error"]["field"], "spec.tcp");
    assert!(
        doc["split_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no tcp route")),
        "{doc:#}"
    );
}

#[test]
#[ignore = "needs kubectl (kubectl kustomize renders the overlay)"]
fn expect_from_a_fresh_kustomize_render_on_stdin() {
    let server = EchoServer::start("two", 1);
    let target = server.addr().to_string();
    let run = run_with_stdin(
        &[
            "verify",
            "--target",
            &target,
            "--expect-from",
            "-",
            "--output",
            "json",
            "--no-progress",
        ],
        &kubectl_kustomize("deploy/kustomize/overlays/6-canary-deleted"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_schema_valid(&doc);
    assert_eq!(doc["expected_from"]["versions"][0]["name"], "two");
}
