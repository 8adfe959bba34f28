//! `checker verify --gateway-admin / --config-dump`: the gateway's own view beside the
//! samples. Against a real Envoy (ignored, "needs envoy"): a listener programmed 80/20
//! while the manifests say 90/10 is a FAIL naming the control plane; programmed 70/30
//! with 70/30 expected PASSes with the three layers shown and the gateway's counters
//! equal to the checker's, in fixed and sequential runs; `--settle` waits for the
//! listener update. Without Envoy: every bad input gets one sentence and its exit code,
//! and two fake gateway pods (`--gateway-admin` twice) add up in the cross-check.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::envoy::{Envoy, cluster};
use support::{BOUND, FakeAdmin, Guard, RANDOM_PICK_CONFIDENCE, assert_schema_valid, run_checker};

/// The kustomize overlay's render with the route at 90/10 (stable one, canary two).
fn manifests_90_10() -> String {
    format!(
        "{}/../manifests/tests/fixtures/manifests/kustomize-2-canary-10.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn port(envoy: &Envoy) -> String {
    envoy.listener_port.to_string()
}

#[test]
#[ignore = "needs envoy: .ci/run installs it"]
fn programmed_otherwise_than_the_manifests_is_a_control_plane_fail() {
    let envoy = Envoy::start(&[("stable", "one", 80), ("canary", "two", 20)]);
    let target = envoy.addr().to_string();
    let manifests = manifests_90_10();
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect-from",
        &manifests,
        "--gateway-admin",
        &envoy.admin,
        "--listener-port",
        &port(&envoy),
        // Enough that 80/20 traffic passes against what Envoy was told (a deviation of
        // five standard errors would be needed to leave it undecided).
        "--samples",
        "4000",
    ]);
    eprintln!("{run:?}");
    assert_eq!(run.code, 1, "{run:?}");
    let verdict = run.stdout.lines().last().unwrap();
    assert!(
        verdict.contains(
            "FAIL on the control plane: the manifests route one 90% / two 10% but the gateway is programmed one 80% / two 20%: the control plane has not applied them (listener 0.0.0.0_"
        ),
        "{verdict}"
    );
    assert!(verdict.contains("version 1, updated "), "{verdict}");
    assert!(
        verdict.contains("; traffic follows the gateway's configuration (one "),
        "traffic follows what Envoy was told: {verdict}"
    );
    // The three layers, and the destination that differs, before the verdict.
    assert!(
        run.stdout
            .contains("intent:     one 90% / two 10% from the manifests")
    );
    assert!(
        run.stdout
            .contains("tcp-echo subset canary: the manifests say 10.0% (weight 10 of 100), the gateway was told 20.0% (weight 20 of 100)")
    );
}

#[test]
#[ignore = "needs envoy: .ci/run installs it"]
fn programmed_as_expected_passes_with_three_layers_and_counters_that_agree() {
    let envoy = Envoy::start(&[("stable", "one", 70), ("canary", "two", 30)]);
    let target = envoy.addr().to_string();
    // The fixed plan and the sequential default: each passes a correct split with the
    // probability its plan states (99.9% here, for Envoy's random pick), and the
    // cross-check is exact in both.
    for mode in [&["--no-sequential"][..], &[][..]] {
        let mut args = vec![
            "verify",
            "--target",
            &target,
            "--expect",
            "one=70,two=30",
            "--version-of",
            "stable=one,canary=two",
            "--gateway-admin",
            &envoy.admin,
            "--confidence",
            RANDOM_PICK_CONFIDENCE,
            "--output",
            "json",
        ];
        args.extend_from_slice(mode);
        let run = run_checker(&args);
        assert_eq!(run.code, 0, "{run:?}");
        let doc = run.json();
        assert_schema_valid(&doc);
        let g = &doc["gateway"];
        assert_eq!(g["layer"], Value::Null);
        assert_eq!(g["control_plane"], "PASS");
        assert_eq!(g["port"], envoy.listener_port);
        assert_eq!(g["intent"]["from"], "expectation");
        let p = &g["programmed"][0];
        assert_eq!(p["agrees"], true);
        assert_eq!(p["clusters"][0]["name"], cluster("stable"));
        assert_eq!(p["clusters"][0]["version"], "one");
        assert_eq!(p["clusters"][1]["weight"], 30);
        // The gateway counted every connection the checker made, version by version.
        let x = &g["counters"]["cross_check"];
        assert_eq!(x["agrees"], true, "{x:#}");
        let judged: u64 = doc["split"]["total"].as_u64().unwrap();
        assert_eq!(x["checker_judged"], judged);
        let (gateway, not_judged, in_flight) = (
            x["gateway_total"].as_u64().unwrap(),
            x["opened_not_judged"].as_u64().unwrap(),
            x["in_flight"].as_u64().unwrap(),
        );
        assert!(
            gateway >= judged + not_judged && gateway <= judged + not_judged + in_flight,
            "{x:#}"
        );
        for v in x["versions"].as_array().unwrap() {
            assert!(v["gateway"].as_u64() >= v["checker"].as_u64(), "{v}");
        }
        eprintln!("{} run: cross-check {x}", doc["mode"]);
    }
    // The text report puts the layers side by side.
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect",
        "one=70,two=30",
        "--version-of",
        "stable=one,canary=two",
        "--gateway-admin",
        &envoy.admin,
        "--confidence",
        RANDOM_PICK_CONFIDENCE,
    ]);
    println!("{}", run.stdout);
    assert_eq!(run.code, 0, "{run:?}");
    for layer in [
        "LAYER",
        "intent",
        "✔ programmed",
        "✔ observed",
        "counted",
        "✔ cross-check",
    ] {
        assert!(run.stdout.contains(layer), "{layer}: {}", run.stdout);
    }
}

#[test]
#[ignore = "needs envoy: .ci/run installs it"]
fn settle_waits_until_the_gateway_is_programmed_and_says_how_long_it_took() {
    let mut envoy = Envoy::start(&[("stable", "one", 100), ("canary", "two", 0)]);
    let target = envoy.addr().to_string();
    let child = Command::new(support::checker())
        .args([
            "verify",
            "--target",
            &target,
            "--expect",
            "one=80,two=20",
            "--version-of",
            "stable=one,canary=two",
            "--gateway-admin",
            &envoy.admin,
            "--settle",
            "60s",
            "--confidence",
            RANDOM_PICK_CONFIDENCE,
            "--output",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = Guard(child);
    // The checker has seen the old weights once (its first look is in the admin's log,
    // written after the answer) before the control plane applies the new ones.
    let before = envoy.admin_requests("/config_dump");
    let deadline = Instant::now() + BOUND;
    while envoy.admin_requests("/config_dump") < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the checker never asked the admin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    envoy.set_weights(&[("stable", 80), ("canary", 20)]);
    let run = support::wait_output(guard);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_schema_valid(&doc);
    let s = &doc["gateway"]["settle"];
    assert_eq!(s["end"], "programmed", "{s}");
    assert!(s["polls"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["elapsed_s"].as_f64().unwrap() > 0.0, "{s}");
    assert_eq!(doc["gateway"]["programmed"][0]["agrees"], true);
    assert_eq!(doc["gateway"]["counters"]["cross_check"]["agrees"], true);

    // Never programmed: the wait ends at the timeout and the run FAILs on the control plane.
    let run = run_checker(&[
        "verify",
        "--target",
        &target,
        "--expect",
        "one=50,two=50",
        "--version-of",
        "stable=one,canary=two",
        "--gateway-admin",
        &envoy.admin,
        "--settle",
        "1s",
        "--samples",
        "400",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.lines().last().unwrap().contains(
            "FAIL on the control plane: the expectation is one 50% / two 50% but the gateway is programmed one 80% / two 20%: the control plane has not applied it, not even after"
        ),
        "{run:?}"
    );
}

/// A config dump with one listener on `port`, weighted `weights` over Istio clusters.
fn dump(port: u32, weights: &[(&str, u32)]) -> String {
    let clusters: Vec<Value> = weights
        .iter()
        .map(|(s, w)| serde_json::json!({"name": cluster(s), "weight": w}))
        .collect();
    serde_json::json!({"configs": [{
        "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        "version_info": "2025-06-01T10:00:00Z/42",
        "dynamic_listeners": [{"name": format!("0.0.0.0_{port}"), "active_state": {
            "version_info": "2025-06-01T10:00:00Z/42", "last_updated": "2025-06-01T10:00:01.123Z",
            "listener": {
                "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                "name": format!("0.0.0.0_{port}"),
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": "outbound|9000||tcp-echo.default.svc.cluster.local",
                    "weighted_clusters": {"clusters": clusters}}}]}]}}}]
    }]})
    .to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// `verify` against a closed target, so that a check that passed its inputs would fail
/// on errors (4): every case below must stop before sampling.
fn verify_with(args: &[&str]) -> support::Run {
    let target = support::closed_port().to_string();
    let mut all = vec!["verify", "--target", &target, "--samples", "10"];
    all.extend_from_slice(args);
    run_checker(&all)
}

fn one_sentence(run: &support::Run) -> &str {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one sentence: {run:?}");
    assert!(lines[0].starts_with("checker: "), "{run:?}");
    lines[0]
}

#[test]
fn bad_gateway_inputs_get_one_sentence_and_their_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = manifests_90_10();

    // An admin that does not answer: 4, as an unreachable target.
    let admin = format!("http://{}", support::closed_port());
    let run = verify_with(&["--expect", "one=90,two=10", "--gateway-admin", &admin]);
    assert_eq!(run.code, 4, "{run:?}");
    let s = one_sentence(&run);
    assert!(
        s.contains(&format!(
            "cannot read what the gateway was told: {admin}/config_dump does not answer"
        )),
        "{s}"
    );
    assert!(s.contains("kubectl port-forward"), "{s}");

    // Not an http URL: a usage error before anything is asked.
    let run = verify_with(&[
        "--expect",
        "one=90,two=10",
        "--gateway-admin",
        "https://gw:15000",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_sentence(&run).contains("--gateway-admin: the URL https://gw:15000 cannot be used")
    );

    // No listener on the port: the sentence names the ports the dump has.
    let file = write(
        &dir,
        "dump.json",
        &dump(31400, &[("stable", 90), ("canary", 10)]),
    );
    let run = verify_with(&[
        "--expect",
        "one=90,two=10",
        "--config-dump",
        &file,
        "--listener-port",
        "8443",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_sentence(&run)
            .contains("no listener on port 8443: the gateway's listeners are on port 31400"),
        "{run:?}"
    );

    // A cluster nothing maps: named, with the flag that would map it.
    let run = verify_with(&[
        "--expect",
        "one=90,two=10",
        "--config-dump",
        &file,
        "--listener-port",
        "31400",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    let s = one_sentence(&run);
    assert!(
        s.contains(&format!(
            "the cluster {} cannot be mapped to a version",
            cluster("stable")
        )),
        "{s}"
    );
    assert!(s.contains("--version-of CLUSTER_OR_SUBSET=VERSION"), "{s}");

    // A cluster the manifests do not route to.
    let other = write(
        &dir,
        "other.json",
        &dump(31400, &[("stable", 90), ("v3", 10)]),
    );
    let run = verify_with(&["--expect-from", &manifests, "--config-dump", &other]);
    assert_eq!(run.code, 2, "{run:?}");
    let s = one_sentence(&run);
    assert!(
        s.contains(&format!("the cluster {} cannot be mapped", cluster("v3"))),
        "{s}"
    );
    assert!(
        s.contains("it is not a destination of VirtualService/tcp-echo spec.tcp[0]"),
        "{s}"
    );

    // A truncated dump.
    let full = dump(31400, &[("stable", 90), ("canary", 10)]);
    let cut = write(&dir, "cut.json", &full[..full.len() / 2]);
    let run = verify_with(&["--expect-from", &manifests, "--config-dump", &cut]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_sentence(&run).contains("the config dump is truncated"),
        "{run:?}"
    );

    // A 100 MB dump (sparse: no disk used) is refused after the first 64 MiB.
    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let run = verify_with(&[
        "--expect-from",
        &manifests,
        "--config-dump",
        &huge.to_string_lossy(),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_sentence(&run).contains("is larger than 64 MiB: refused without reading the rest"),
        "{run:?}"
    );

    // The same 100 MB on standard input: refused without reading it all.
    let target = support::closed_port().to_string();
    let mut child = Command::new(support::checker())
        .args([
            "verify",
            "--target",
            &target,
            "--samples",
            "10",
            "--expect-from",
            &manifests,
            "--config-dump",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let block = vec![b' '; 1 << 20];
        let mut written = 0usize;
        for _ in 0..100 {
            if stdin.write_all(&block).is_err() {
                break;
            }
            written += block.len();
        }
        written
    });
    let run = support::wait_output(Guard(child));
    let written = writer.join().unwrap();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_sentence(&run).contains("standard input is larger than 64 MiB"),
        "{run:?}"
    );
    assert!(
        written < 100 << 20,
        "the checker stopped reading: {written} bytes written"
    );

    // Programmed otherwise than the manifests, read from a saved dump: the control plane
    // is blamed before a single connection is judged (the target refuses: errors decide,
    // so the exit code is 4, but the layers are named before sampling).
    let dump_80 = write(
        &dir,
        "80.json",
        &dump(31400, &[("stable", 80), ("canary", 20)]),
    );
    let run = verify_with(&["--expect-from", &manifests, "--config-dump", &dump_80]);
    assert!(
        run.stdout.contains("programmed: one 80% / two 20% at ")
            && run.stdout.contains("NOT as intended"),
        "{run:?}"
    );
}

/// A fake gateway pod: one listener on 31400 all to stable, and `/stats` whose stable
/// counter reads `start` on every even request and `end` on every odd one (verify reads
/// each pod's counters twice: before and after its samples).
fn pod(start: u64, end: u64) -> FakeAdmin {
    FakeAdmin::start(move |path, n| match path {
        "/config_dump" => dump(31400, &[("stable", 100)]),
        "/stats" => format!(
            "cluster.{}.upstream_cx_total: {}\n",
            cluster("stable"),
            if n % 2 == 0 { start } else { end }
        ),
        _ => String::new(),
    })
}

#[test]
fn several_gateway_pods_repeat_the_flag_and_their_counters_add_in_the_cross_check() {
    // 200 fixed samples straight to an echo server answering `one`; two pods whose
    // counters opened 120 and 80 in the window: together the 200 the checker judged.
    let echo = support::EchoServer::start("one", 1);
    let target = echo.addr().to_string();
    let verify = |admins: &[&str]| {
        let mut args = vec![
            "verify",
            "--target",
            &target,
            "--expect",
            "one=100",
            "--version-of",
            "stable=one",
            "--listener-port",
            "31400",
            "--samples",
            "200",
            "--no-sequential",
            "--no-progress",
            "--output",
            "json",
        ];
        for a in admins {
            args.extend_from_slice(&["--gateway-admin", a]);
        }
        run_checker(&args)
    };
    let (a, b) = (pod(1000, 1120), pod(40, 120));
    let run = verify(&[&a.url, &b.url]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_schema_valid(&doc);
    assert_eq!(doc["split"]["total"], 200, "{doc:#}");
    let x = &doc["gateway"]["counters"]["cross_check"];
    assert_eq!(x["gateway_total"], 200, "{x:#}");
    assert_eq!(x["checker_judged"], 200, "{x:#}");
    assert_eq!(x["agrees"], true, "{x:#}");
    assert_eq!(x["versions"][0]["gateway"], 200, "{x:#}");

    // The first pod alone opened 120 of the 200: the cross-check says the gateway
    // counted fewer than the checker judged.
    let a = pod(1000, 1120);
    let run = verify(&[&a.url]);
    let doc = run.json();
    let x = &doc["gateway"]["counters"]["cross_check"];
    assert_eq!(x["gateway_total"], 120, "{x:#}");
    assert_eq!(x["agrees"], false, "{x:#}");
    assert!(
        x["disagreement"]
            .as_str()
            .unwrap()
            .contains("judged 200, the gateway opened 120"),
        "{x:#}"
    );
}
