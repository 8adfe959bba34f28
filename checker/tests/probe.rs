//! `checker verify` and `checker watch` with probes and TLS, end to end: the real binary
//! against the servers users run (nginx, redis-server, sshd; HAProxy and Envoy as the
//! gateway), started by the test on loopback ports, and the flags that do not fit.
//!
//! The tests that need those servers are ignored for plain `cargo test` (`.ci/run`
//! installs them and runs them); certificates come from a CA the test makes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::Path;

use support::{assert_schema_valid, run_checker};
use test_support::servers::{self, Passthrough};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
}

/// `checker verify` of `target` against `expect`, `samples` connections, without the
/// progress bar, with `extra` flags.
fn verify(target: &str, expect: &str, samples: u32, extra: &[&str]) -> support::Run {
    let samples = samples.to_string();
    let mut args = vec![
        "verify",
        "--target",
        target,
        "--expect",
        expect,
        "--samples",
        &samples,
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    run_checker(&args)
}

#[test]
fn flags_that_do_not_fit_the_probe_are_usage_errors() {
    let base = ["verify", "--target", "127.0.0.1:9", "--expect", "one=100"];
    let cases: &[(&[&str], &str)] = &[
        (&["--send", "x"], "--send is for --probe line"),
        (&["--probe", "line"], "--probe line needs --version-from"),
        (
            &["--probe", "redis", "--path", "/"],
            "--path is for --probe http",
        ),
        (
            &["--version-from", "v(\\d+)"],
            "--version-from is for --probe",
        ),
        (
            &["--probe", "line", "--version-from", "(unclosed"],
            "the version pattern",
        ),
        (
            &["--probe", "line", "--version-from", "no group"],
            "no capture group",
        ),
        (
            &["--probe", "line", "--send", "\\q", "--version-from", "(x)"],
            "unknown escape",
        ),
        (
            &["--probe", "banner", "--hold", "2"],
            "--hold speaks the echo protocol",
        ),
        (&["--sni", "a.test"], "--tls"),
        (
            &["--tls", "--ca-file", "/nonexistent/ca.pem"],
            "cannot be opened",
        ),
        (
            &["--tls", "--tls-version-from", "cert:issuer"],
            "cert:serial, cert:subject or cert:fingerprint",
        ),
        (
            &["--probe", "redis", "--version-map", "7.0.15=a b"],
            "printable ASCII",
        ),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let run = run_checker(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(expected), "{args:?}: {run:?}");
    }
}

#[test]
fn the_help_says_what_each_probe_sends_and_reads() {
    let run = run_checker(&["verify", "--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    for text in [
        "Probe (your own service) and TLS",
        "Sends `INFO server`; reads the `redis_version` field",
        "Sends nothing; reads the server's first line",
        "Sends `GET --path HTTP/1.1` with Host --host",
        "--tls-version-from <cert:FIELD>",
        "CHECKER_VERSION_MAP",
    ] {
        assert!(
            run.stdout.contains(text),
            "{text:?} not in:\n{}",
            run.stdout
        );
    }
}

#[test]
fn expect_from_says_which_derived_names_a_probe_can_give() {
    // one=90,two=10 from the manifests; redis captures a version like 7.0.15.
    let fixture = repo().join("manifests/tests/fixtures/manifests/kustomize-2-canary-10.yaml");
    let fixture = fixture.to_str().unwrap();
    let common = [
        "verify",
        "--target",
        "127.0.0.1:9",
        "--samples",
        "3",
        "--no-progress",
        "--expect-from",
        fixture,
    ];
    let args: Vec<&str> = common
        .iter()
        .copied()
        .chain(["--probe", "redis", "--version-map", "7.0.15=one"])
        .collect();
    let run = run_checker(&args);
    assert!(
        run.stdout
            .contains("versions one are named by the probe or --version-map"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("versions two count only if --probe redis captures exactly these values"),
        "{run:?}"
    );
    let args: Vec<&str> = common
        .iter()
        .copied()
        .chain([
            "--tls",
            "--insecure",
            "--tls-version-from",
            "cert:fingerprint",
        ])
        .collect();
    let run = run_checker(&args);
    assert!(
        run.stdout
            .contains("⚠ versions one (cert:fingerprint gives 64 upper-case hex digits), two"),
        "{run:?}"
    );
    assert!(run.stderr.contains("warning: --insecure"), "{run:?}");
}

#[test]
#[ignore = "needs nginx (nginx-full) and Envoy (ENVOY): .ci/run installs them"]
fn tls_passthrough_through_envoy_passes_the_right_split_and_names_an_unknown_sni() {
    let dir = tempfile::tempdir().unwrap();
    let p = Passthrough::start(dir.path(), 80, 20);
    let ca_file = p.ca_file.display().to_string();
    let target = p.envoy.addr.to_string();
    let https = |expect: &str, sni: &str, extra: &[&str]| {
        let mut args = vec![
            "--probe",
            "http",
            "--path",
            "/version",
            "--tls",
            "--ca-file",
            &ca_file,
            "--sni",
            sni,
        ];
        args.extend_from_slice(extra);
        verify(&target, expect, 3000, &args)
    };
    let run = https("v1=80,v2=20", "canary.test", &["--output", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_schema_valid(&doc);
    for v in doc["versions"].as_array().unwrap() {
        let handshake = &v["latency_us"]["handshake"];
        assert!(handshake["count"].as_u64().unwrap() > 0, "{v:#}");
        assert!(handshake["p50"].as_u64().unwrap() > 0, "{v:#}");
    }
    assert!(doc["tally"]["versions"]["v1"]["handshake_us"].is_string());

    let samples = dir.path().join("samples.jsonl");
    let samples = samples.to_str().unwrap();
    let run = https("v1=50,v2=50", "canary.test", &["--samples-out", samples]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("HANDSHAKE p50/p90/p99/max"), "{run:?}");
    // Every sample line has its handshake time; the plot draws a handshake panel.
    let lines = std::fs::read_to_string(samples).unwrap();
    assert!(
        lines.lines().all(|l| l.contains("\"handshake_us\":")),
        "{lines}"
    );
    let svg = dir.path().join("plot.svg");
    let plot = run_checker(&["plot", samples, "--out", svg.to_str().unwrap()]);
    assert_eq!(plot.code, 0, "{plot:?}");
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.contains("TLS handshake latency"), "no handshake panel");

    // No route for the name: Envoy closes; every sample is a named handshake error (exit
    // 4: errors only, nothing attributed).
    let run = https("v1=80,v2=20", "unknown.test", &[]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout.contains("tls_handshake 3000"), "{run:?}");
    assert!(run.stdout.contains("SNI \"unknown.test\""), "{run:?}");
    assert!(run.stdout.contains("no sample was attributed"), "{run:?}");

    // The certificate alone names the version: nothing exchanged.
    let run = verify(
        &target,
        "stable=80,canary=20",
        3000,
        &[
            "--tls",
            "--insecure",
            "--sni",
            "canary.test",
            "--tls-version-from",
            "cert:subject",
            "--version-map",
            "CN=stable=stable,CN=canary=canary",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("warning: --insecure"), "{run:?}");
}

#[test]
#[ignore = "needs nginx (nginx-full) and haproxy: .ci/run installs them"]
fn http_over_tcp_behind_haproxy_and_watched() {
    let dir = tempfile::tempdir().unwrap();
    let one = servers::nginx(dir.path(), "one", "v1", None);
    let two = servers::nginx(dir.path(), "two", "v2", None);
    let proxy = servers::haproxy_tcp(dir.path(), "haproxy", &[(one.addr, 3), (two.addr, 1)]);
    let target = proxy.addr.to_string();
    let http = ["--probe", "http", "--path", "/version"];
    let args: Vec<&str> = [
        "verify",
        "--target",
        &target,
        "--expect",
        "v1=75,v2=25",
        "--samples",
        "800",
        "--no-progress",
    ]
    .into_iter()
    .chain(http)
    .collect();
    let run = run_checker(&args);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        !run.stdout.contains("HANDSHAKE"),
        "no TLS, no handshake column: {run:?}"
    );
    // By the body, the same split.
    let args: Vec<&str> = args
        .into_iter()
        .chain(["--version-from", r#""version":"([^"]+)""#])
        .collect();
    assert_eq!(run_checker(&args).code, 0);
    // watch reads the versions the same way (JSON lines when stdout is not a terminal).
    let run = run_checker(&[
        "watch",
        "--target",
        &target,
        "--expect",
        "v1=75,v2=25",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--probe",
        "http",
        "--path",
        "/version",
    ]);
    assert!(run.code == 0 || run.code == 3, "{run:?}");
    assert!(run.stdout.contains("\"v1\""), "{run:?}");
}

#[test]
#[ignore = "needs redis-server and redis-cli: .ci/run installs them"]
fn redis_through_the_cli_reads_the_running_version() {
    let dir = tempfile::tempdir().unwrap();
    let redis = servers::redis(dir.path(), "redis");
    let version = servers::redis_version(redis.addr);
    let target = redis.addr.to_string();
    let run = verify(
        &target,
        &format!("{version}=100"),
        300,
        &["--probe", "redis"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = verify(
        &target,
        "stable=100",
        300,
        &[
            "--probe",
            "redis",
            "--version-map",
            &format!("{version}=stable"),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
}

/// The version `redis-server --version` prints (`Redis server v=7.0.15 sha=...`): what
/// the installed binary is, read without asking the running server.
fn installed_redis_version() -> String {
    let out = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .expect("run redis-server --version");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .unwrap_or_else(|| panic!("no v= in redis-server --version: {text}"))
        .to_owned()
}

#[test]
#[ignore = "needs redis-server and haproxy (.ci/run installs them)"]
fn redis_one_version_behind_haproxy_passes_all_stable_and_fails_a_half_split() {
    // One redis-server behind the gateway (HAProxy, TCP mode): every connection the
    // proxy opens reaches the same version, read by the probe from INFO server.
    let dir = tempfile::tempdir().unwrap();
    let redis = servers::redis(dir.path(), "redis");
    let proxy = servers::haproxy_tcp(dir.path(), "haproxy", &[(redis.addr, 1)]);
    let target = proxy.addr.to_string();
    let version = installed_redis_version();
    let map = format!("{version}=stable");
    let probe = ["--probe", "redis", "--version-map", map.as_str()];
    let run = verify(&target, "stable=100", 300, &probe);
    assert_eq!(
        run.code, 0,
        "{version} through the proxy is stable: {run:?}"
    );
    assert!(run.stdout.contains("PASS"), "{run:?}");
    assert!(
        !run.stdout.contains("no_version"),
        "every reply carried a version: {run:?}"
    );
    // The same server cannot be half canary.
    let run = verify(&target, "stable=50,canary=50", 300, &probe);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("FAIL"), "{run:?}");
    // Unmapped, the probe's own name is the version as the server reports it.
    let run = verify(
        &target,
        &format!("{version}=100"),
        300,
        &["--probe", "redis"],
    );
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
#[ignore = "needs openssh-server (sshd) and haproxy: .ci/run installs them"]
fn the_banner_probe_splits_two_sshd_behind_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let stable = servers::sshd(dir.path(), "stable", "stable");
    let canary = servers::sshd(dir.path(), "canary", "canary");
    let proxy = servers::haproxy_tcp(dir.path(), "haproxy", &[(stable.addr, 3), (canary.addr, 1)]);
    let target = proxy.addr.to_string();
    let run = verify(
        &target,
        "stable=75,canary=25",
        1000,
        &["--probe", "banner", "--version-from", r" (\S+)$"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    // The whole greeting holds spaces: no version, the reason says so.
    let run = verify(&target, "stable=75,canary=25", 20, &["--probe", "banner"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout.contains("no_version 20"), "{run:?}");
    assert!(run.stdout.contains("is not a version name"), "{run:?}");
}

/// `verify` of `target` (`v1` and `v2` at 50/50 by `GET /version`) with `--compare
/// v2=v1`, the median reply within 50% (and the default half point of errors), in JSON.
fn compare_by_http(target: &str) -> support::Run {
    run_checker(&[
        "verify",
        "--target",
        target,
        "--expect",
        "v1=50,v2=50",
        "--probe",
        "http",
        "--path",
        "/version",
        "--compare",
        "v2=v1",
        "--max-latency-increase",
        "p50=50%",
        "--max-samples",
        "40000",
        "--no-progress",
        "--output",
        "json",
    ])
}

#[test]
#[ignore = "needs nginx (nginx-full) and haproxy: .ci/run installs them"]
/// `--compare` over a probe: two identical nginx (`v1` and `v2` by `GET /version`)
/// behind HAProxy at 50/50, the canary compared with the stable by what the http probe
/// reads. Margins a few thousand connections can prove (the median within 50%, the
/// default half point of errors): the identical canary is never FAILed on health, and
/// the comparison is of the probe's versions, each with its own latency and no errors.
fn compare_two_identical_nginx_through_haproxy_by_the_http_probe() {
    let dir = tempfile::tempdir().unwrap();
    let one = servers::nginx(dir.path(), "one", "v1", None);
    let two = servers::nginx(dir.path(), "two", "v2", None);
    let proxy = servers::haproxy_tcp(dir.path(), "haproxy", &[(one.addr, 1), (two.addr, 1)]);
    let target = proxy.addr.to_string();
    let run = compare_by_http(&target);
    let doc = run.json();
    assert_schema_valid(&doc);
    eprintln!("exit {}: {}", run.code, doc["reason"]);
    assert!(run.code == 0 || run.code == 3, "never FAIL: {run:?}");
    assert_eq!(doc["split"]["outcome"], "PASS", "{doc:#}");
    let c = &doc["health"]["comparison"];
    assert_ne!(c["outcome"], "FAIL", "{c:#}");
    assert_eq!(c["canary"], "v2", "{c:#}");
    assert_eq!(c["stable"], "v1", "{c:#}");
    let metric = |name: &str| {
        c["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .unwrap_or_else(|| panic!("no {name} in {c:#}"))
            .clone()
    };
    assert_ne!(metric("p50_reply")["finding"], "beyond", "{c:#}");
    assert_ne!(metric("error_rate")["finding"], "beyond", "{c:#}");
}

#[test]
#[ignore = "needs nginx (nginx-full) and haproxy: .ci/run installs them"]
/// The counterpart: the same nginx as canary, reached through a second HAProxy that
/// holds each request 30 ms (`tcp-request inspect-delay`): every reply the probe reads
/// from `v2` comes 30 ms later, beyond the 50% median margin (the loopback median is a
/// few milliseconds): FAIL on health, exit 5, naming the median reply.
fn compare_fails_a_slower_nginx_canary_through_haproxy_by_the_http_probe() {
    let dir = tempfile::tempdir().unwrap();
    let one = servers::nginx(dir.path(), "one", "v1", None);
    let two = servers::nginx(dir.path(), "two", "v2", None);
    let slow = servers::haproxy_tcp_delayed(
        dir.path(),
        "slow",
        &[(two.addr, 1)],
        std::time::Duration::from_millis(30),
    );
    let proxy = servers::haproxy_tcp(dir.path(), "haproxy", &[(one.addr, 1), (slow.addr, 1)]);
    let target = proxy.addr.to_string();
    let run = compare_by_http(&target);
    let doc = run.json();
    assert_schema_valid(&doc);
    eprintln!("exit {}: {}", run.code, doc["reason"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(doc["split"]["outcome"], "PASS", "{doc:#}");
    let c = &doc["health"]["comparison"];
    assert_eq!(c["outcome"], "FAIL", "{c:#}");
    let p50 = c["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "p50_reply")
        .unwrap();
    assert_eq!(p50["finding"], "beyond", "{c:#}");
}
