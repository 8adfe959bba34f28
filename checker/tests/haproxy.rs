//! `checker verify` through a real weighted proxy on loopback: HAProxy (Debian package,
//! `mode tcp`, `balance roundrobin` with weights, which splits exactly) in front of the
//! real echo-server binary started in Istio's positional form (`echo-server P1,P2 one`).
//!
//! Ignored by default because they need `haproxy`; `.ci/run` installs it and runs them
//! with `--include-ignored`, where a missing binary makes them fail, not skip. The HAProxy
//! configuration comes from the rehearsal's writer, hence the `rehearse` feature.

#![cfg(feature = "rehearse")]

mod support;

use std::net::SocketAddr;

use serde_json::Value;
use support::{EchoServer, HaProxy, run_checker};

/// Two Istio-style servers, `one` and `two`, each on two ports, behind HAProxy with
/// per-version weights split evenly over each version's ports.
struct Rig {
    _one: EchoServer,
    _two: EchoServer,
    proxy: HaProxy,
}

fn rig(weight_one: u32, weight_two: u32) -> Rig {
    let one = EchoServer::start("one", 2);
    let two = EchoServer::start("two", 2);
    let mut servers: Vec<(SocketAddr, u32)> = Vec::new();
    for (server, weight) in [(&one, weight_one), (&two, weight_two)] {
        for addr in &server.addrs {
            if weight > 0 {
                servers.push((*addr, weight));
            }
        }
    }
    let proxy = HaProxy::start(&servers);
    Rig {
        _one: one,
        _two: two,
        proxy,
    }
}

fn verify(rig: &Rig, expect: &str, extra: &[&str]) -> support::Run {
    let target = rig.proxy.addr.to_string();
    let mut args = vec!["verify", "--target", &target, "--expect", expect];
    args.extend_from_slice(extra);
    run_checker(&args)
}

fn count(doc: &Value, name: &str) -> u64 {
    doc["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["count"].as_u64())
        .unwrap_or_else(|| panic!("no count for {name}: {doc:#}"))
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn a_correct_split_passes_at_the_planned_count() {
    let rig = rig(90, 10);
    // The fixed plan (sequential sampling would stop as soon as the evidence decides).
    let run = verify(
        &rig,
        "one=90,two=10",
        &["--output", "json", "--no-sequential"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    support::assert_schema_valid(&doc);
    let planned = doc["plan"]["samples"].as_u64().expect("planned");
    assert_eq!(doc["counts"]["attempted"].as_u64(), Some(planned));
    assert_eq!(doc["counts"]["errors"], 0);
    // Round robin by weight is exact up to the rotation's phase.
    let two = count(&doc, "two") as f64 / planned as f64;
    assert!((two - 0.10).abs() < 0.01, "{doc:#}");
    assert_eq!(doc["drift"]["moved"], false);
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn a_three_way_split_passes_and_weights_are_proportions() {
    let one = EchoServer::start("one", 1);
    let two = EchoServer::start("two", 1);
    let three = EchoServer::start("three", 1);
    let proxy = HaProxy::start(&[(one.addr(), 5), (two.addr(), 3), (three.addr(), 2)]);
    let run = run_checker(&[
        "verify",
        "--target",
        &proxy.addr.to_string(),
        "--expect",
        "one=50,two=30,three=20",
        "--samples",
        "3000",
        "--concurrency",
        "64",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("✔ PASS"), "{run:?}");
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn a_wrong_split_fails_with_exit_1() {
    let rig = rig(50, 50);
    let run = verify(&rig, "one=90,two=10", &["--samples", "600"]);
    assert_eq!(run.code, 1, "{run:?}");
    let last = run.stdout.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("✘ FAIL:"), "{run:?}");
    assert!(run.stdout.contains("✘ FAIL"), "{run:?}");
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn a_zero_weight_version_answering_through_the_proxy_fails() {
    let rig = rig(98, 2);
    let run = verify(
        &rig,
        "one=100,two=0",
        &["--samples", "500", "--output", "json"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    let two = doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "two")
        .unwrap()
        .clone();
    assert_eq!(two["outcome"], "FAIL");
    assert!(two["count"].as_u64().unwrap() > 0);
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn the_canary_at_zero_weight_passes_the_first_step() {
    // The walk's first step: the canary runs but gets no traffic.
    let rig = rig(100, 0);
    let run = verify(
        &rig,
        "one=100,two=0",
        &["--samples", "500", "--output", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(count(&run.json(), "two"), 0);
}

#[test]
#[ignore = "needs haproxy (Debian package); .ci/run installs it"]
fn a_backend_down_behind_the_proxy_is_an_error_not_a_version() {
    // HAProxy accepts, then cannot reach the backend and closes: the checker must count
    // errors (closed before the reply), never attribute a version.
    let gone = support::closed_port();
    let proxy = HaProxy::start(&[(gone, 1)]);
    let run = run_checker(&[
        "verify",
        "--target",
        &proxy.addr.to_string(),
        "--expect",
        "one=90,two=10",
        "--samples",
        "20",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["errors"]["total"], 20);
    assert_eq!(doc["counts"]["attributed"], 0);
}
