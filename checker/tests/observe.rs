//! `checker observe`: the split of every connection the gateway opened, from its own
//! counters, with no load of the checker's. The traffic is made by a plain client loop in
//! the test. Against a real Envoy (ignored, "needs envoy"): the true split PASSes and a
//! wrong expectation FAILs, through the admin's /stats and its /stats/prometheus alike,
//! every count equal to the loop's own tally; against a real Prometheus scraping Envoy
//! (ignored, "needs envoy and prometheus"): the API's counts are the admin's within one
//! scrape interval. Without either: a recorded Istio scrape through the manifests, a
//! counter that went down, an admin that does not answer, two fake gateway pods whose
//! counts add.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::envoy::{Envoy, cluster, connect_loop, http_get};
use support::{
    BOUND, FakeAdmin, Guard, Run, assert_valid_against, metric_value as metric, run_checker,
};
use test_support::servers;

fn assert_observe_schema_valid(doc: &Value) {
    let schema: Value = serde_json::from_str(report::observe::SCHEMA).unwrap();
    assert_valid_against(&schema, doc);
}

/// A checker started in the background whose output is read as it comes, so that a
/// test can wait for the window to open (the note is on stdout in text mode, on stderr
/// in JSON mode) before it makes traffic.
struct Background {
    child: Guard,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(pipe: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let into = Arc::clone(&text);
    let reader = std::thread::spawn(move || {
        let mut pipe = BufReader::new(pipe);
        let mut line = String::new();
        while matches!(pipe.read_line(&mut line), Ok(n) if n > 0) {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    (text, reader)
}

impl Background {
    fn start(args: &[&str]) -> Background {
        let mut child: Child = Command::new(support::checker())
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, out_reader) = collect(child.stdout.take().unwrap());
        let (stderr, err_reader) = collect(child.stderr.take().unwrap());
        Background {
            child: Guard(child),
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// Waits until the checker says the window is open (its first reading is taken).
    fn wait_open(&mut self) {
        let deadline = Instant::now() + BOUND;
        let open = |b: &Background| {
            b.stdout.lock().unwrap().contains("observing for")
                || b.stderr.lock().unwrap().contains("observing for")
        };
        while !open(self) {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                panic!(
                    "observe ended ({status}) before its window opened: {}",
                    self.stderr.lock().unwrap()
                );
            }
            assert!(Instant::now() < deadline, "the window never opened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C: the last look is taken at once; the report and the exit code.
    fn interrupt(mut self) -> Run {
        let status = Command::new("kill")
            .args(["-INT", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + BOUND;
        let code = loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                break s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "observe did not end");
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let text = |t: &Arc<Mutex<String>>| t.lock().unwrap().clone();
        Run {
            code,
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

fn pairs(tally: &BTreeMap<String, u64>) -> Value {
    Value::Object(
        tally
            .iter()
            .map(|(v, n)| (v.clone(), Value::from(*n)))
            .collect(),
    )
}

fn opened(doc: &Value) -> Value {
    Value::Object(
        doc["counts"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(v, d)| (v.clone(), d["opened"].clone()))
            .collect(),
    )
}

/// The admin's /config_dump, saved to a file (what `istioctl proxy-config` users have).
fn save_dump(envoy: &Envoy, dir: &tempfile::TempDir) -> String {
    let (_, body) = http_get(&format!("{}/config_dump", envoy.admin)).unwrap();
    let path = dir.path().join("config_dump.json");
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

/// `observe` of the Envoy helper's listener on `port` (subsets stable and canary as
/// versions one and two) against `expect`, in a ten-minute window a test ends with
/// Ctrl-C, reporting JSON.
fn long_window(expect: &str, port: &str) -> Vec<String> {
    [
        "observe",
        "--expect",
        expect,
        "--version-of",
        "stable=one,canary=two",
        "--listener-port",
        port,
        "--duration",
        "10m",
        "--output",
        "json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

#[test]
#[ignore = "needs envoy: .ci/run installs it"]
fn observe_judges_real_traffic_from_the_admin_and_the_prometheus_text() {
    let envoy = Envoy::start(&[("stable", "one", 80), ("canary", "two", 20)]);
    let dir = tempfile::tempdir().unwrap();
    let dump = save_dump(&envoy, &dir);
    let port = envoy.listener_port.to_string();
    let scrape = format!("{}/stats/prometheus", envoy.admin);
    let common = |expect: &str| long_window(expect, &port);
    let start = |mut args: Vec<String>, extra: &[&str]| {
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Background::start(&refs)
    };
    let right = start(common("one=80,two=20"), &["--gateway-admin", &envoy.admin]);
    let wrong = start(common("one=90,two=10"), &["--gateway-admin", &envoy.admin]);
    let scraped = start(
        common("one=80,two=20"),
        &["--scrape", &scrape, "--config-dump", &dump],
    );
    let running = Background::start(&[
        "observe",
        "--expect",
        "one=80,two=20",
        "--version-of",
        "stable=one,canary=two",
        "--gateway-admin",
        &envoy.admin,
        "--listener-port",
        &port,
        "--duration",
        "10m",
        "--interval",
        "300ms",
        "--full-window",
    ]);
    let (mut right, mut wrong, mut scraped, mut running) = (right, wrong, scraped, running);
    for b in [&mut right, &mut wrong, &mut scraped, &mut running] {
        b.wait_open();
    }
    // 5,000 connections: a correct 80/20 leaves the running (sequential) interval's band
    // only after a deviation of about five standard errors.
    let tally = connect_loop(envoy.addr(), 5000);
    eprintln!("the loop's own tally: {tally:?}");

    let run = right.interrupt();
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(opened(&doc), pairs(&tally), "{doc:#}");
    assert_eq!(doc["interrupted"], true);
    assert_eq!(doc["errors"]["connect_fail"], 0);
    assert_eq!(doc["clusters"][0]["cluster"], cluster("canary"));
    assert_eq!(doc["programmed"][0]["agrees"], true);
    assert!(
        doc["notes"][0]
            .as_str()
            .unwrap()
            .contains("real users' included"),
        "{doc:#}"
    );
    println!("observe --gateway-admin (JSON reason): {}", doc["reason"]);

    let run = wrong.interrupt();
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(opened(&doc), pairs(&tally));
    assert!(
        doc["reason"].as_str().unwrap().starts_with("FAIL: "),
        "{doc:#}"
    );
    assert_eq!(doc["programmed"][0]["agrees"], false);

    let run = scraped.interrupt();
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(doc["inputs"]["sources"][0]["kind"], "envoy_scrape");
    assert_eq!(
        opened(&doc),
        pairs(&tally),
        "/stats/prometheus counts the same"
    );

    let run = running.interrupt();
    println!("{}", run.stdout);
    assert_eq!(run.code, 0, "{run:?}");
    let looks = run
        .stdout
        .lines()
        .filter(|l| l.contains("connections") && l.trim_start().starts_with(char::is_numeric))
        .count();
    assert!(looks >= 1, "a line per look: {run:?}");
    assert!(
        run.stdout
            .contains("✔ PASS: every version within 5.0 points"),
        "{run:?}"
    );
}

#[test]
#[ignore = "needs envoy and prometheus: .ci/run installs them"]
fn observe_prometheus_counts_what_the_admin_counts_within_one_scrape_interval() {
    let envoy = Envoy::start(&[("stable", "one", 70), ("canary", "two", 30)]);
    let dir = tempfile::tempdir().unwrap();
    let dump = save_dump(&envoy, &dir);
    let prometheus = servers::prometheus_over_envoy(dir.path(), &envoy.admin);
    let base = format!("http://{}", prometheus.addr);
    let listener = envoy.listener_port.to_string();
    let args = |source: &[&str]| {
        let mut a = vec![
            "observe",
            "--expect",
            "one=70,two=30",
            "--version-of",
            "stable=one,canary=two",
            "--listener-port",
            &listener,
            "--duration",
            "10m",
            "--output",
            "json",
        ];
        a.extend_from_slice(source);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let start = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        Background::start(&refs)
    };
    let mut by_admin = start(args(&["--gateway-admin", &envoy.admin]));
    let mut by_api = start(args(&["--prometheus", &base, "--config-dump", &dump]));
    by_admin.wait_open();
    by_api.wait_open();
    // A scrape inside the window before the traffic, and two after it; the traffic spread
    // over a few scrape intervals, so that one interval's worth is a real bound.
    std::thread::sleep(Duration::from_millis(1500));
    let mut starts = Vec::new();
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..1000 {
        starts.push(Instant::now());
        for (v, n) in connect_loop(envoy.addr(), 1) {
            *tally.entry(v).or_default() += n;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    std::thread::sleep(Duration::from_millis(2500));
    let admin = by_admin.interrupt();
    let api = by_api.interrupt();
    // 1,000 connections may not decide 70/30 at 5 points: the counts are the point here.
    assert!([0, 3].contains(&admin.code), "{admin:?}");
    assert_eq!(admin.code, api.code, "{api:?}");
    let (admin, api) = (admin.json(), api.json());
    assert_observe_schema_valid(&admin);
    assert_observe_schema_valid(&api);
    assert_eq!(opened(&admin), pairs(&tally));
    let per_interval = starts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            starts[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0) as u64;
    eprintln!(
        "admin {}, Prometheus {}, one interval's worth {per_interval}",
        opened(&admin),
        opened(&api)
    );
    for (v, a) in opened(&admin).as_object().unwrap() {
        let (a, p) = (
            a.as_u64().unwrap(),
            api["counts"][v]["opened"].as_u64().unwrap(),
        );
        assert!(
            p <= a && a - p <= per_interval,
            "{v}: admin {a}, Prometheus {p}, one interval {per_interval}"
        );
    }
    let query = api["queries"][0].as_str().unwrap();
    assert!(
        query.starts_with(
            "sum by (cluster_name) (increase(envoy_cluster_upstream_cx_total{cluster_name=~"
        ),
        "{query}"
    );
    assert_eq!(api["inputs"]["sources"][0]["kind"], "prometheus");
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../checker-core/tests/fixtures/gateway/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A recorded Istio gateway's scrape with the stable and canary counts raised, in
/// Istio's metric and in Envoy's per-cluster one alike.
fn istio_scrape(extra_one: u64, extra_two: u64) -> String {
    let stable = [
        "destination_workload=\"tcp-echo-stable\"".to_owned(),
        format!("cluster_name=\"{}\"", cluster("stable")),
    ];
    let canary = [
        "destination_workload=\"tcp-echo-canary\"".to_owned(),
        format!("cluster_name=\"{}\"", cluster("canary")),
    ];
    fixture("istio-gateway-stats-prometheus.txt")
        .lines()
        .map(|l| {
            let counter = l.starts_with("istio_tcp_connections_opened_total")
                || l.starts_with("envoy_cluster_upstream_cx_total");
            let raise = if counter && stable.iter().any(|s| l.contains(s.as_str())) {
                extra_one
            } else if counter && canary.iter().any(|s| l.contains(s.as_str())) {
                extra_two
            } else {
                0
            };
            match l.rsplit_once(' ') {
                Some((series, value)) if raise > 0 => {
                    format!("{series} {}\n", value.parse::<u64>().unwrap() + raise)
                }
                _ => format!("{l}\n"),
            }
        })
        .collect()
}

#[test]
fn istio_metric_through_the_manifests_counts_only_the_routes_service() {
    // Two reads: the start, and the end with 900 more to stable and 100 to canary (the
    // recorded scrape also holds a `db` Service with destination_version="unknown", which
    // the default matcher leaves out).
    let served = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&served);
    let fake = FakeAdmin::start(move |path, n| {
        assert_eq!(path, "/stats/prometheus");
        seen.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            istio_scrape(0, 0)
        } else {
            istio_scrape(900, 100)
        }
    });
    let manifests = format!(
        "{}/../deploy/kustomize/overlays/2-canary-10",
        env!("CARGO_MANIFEST_DIR")
    );
    let rendered = format!(
        "{}/../manifests/tests/fixtures/manifests/kustomize-2-canary-10.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let source = if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok()
    {
        manifests
    } else {
        rendered
    };
    let scrape = format!("{}/stats/prometheus", fake.url);
    let run = run_checker(&[
        "observe",
        "--expect-from",
        &source,
        "--scrape",
        &scrape,
        "--duration",
        "200ms",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(doc["inputs"]["sources"][0]["kind"], "istio_scrape");
    assert_eq!(
        doc["inputs"]["sources"][0]["matchers"]["destination_service_name"],
        "tcp-echo"
    );
    assert_eq!(doc["counts"]["one"]["opened"], 900);
    assert_eq!(doc["counts"]["two"]["opened"], 100);
    assert_eq!(doc["errors"]["connect_fail"], Value::Null);
    assert_eq!(served.load(Ordering::SeqCst), 2);

    // Without the matcher the unlabelled `db` pods make the counts unattributable.
    let run = run_checker(&[
        "observe",
        "--expect",
        "one=90,two=10",
        "--scrape",
        &scrape,
        "--duration",
        "200ms",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("destination_version=\"unknown\""),
        "{run:?}"
    );
}

#[test]
fn a_recorded_istio_dump_and_scrape_map_through_the_kustomize_manifests() {
    // The gateway's recorded /config_dump (listeners on 8080, 31400 and 15443) and its
    // :15090 scrape: the clusters of the route's port, mapped to versions through the
    // manifests, counted by envoy_cluster_upstream_cx_total (cluster_name, as Istio tags it).
    let fake = FakeAdmin::start(|_, n| {
        if n == 0 {
            istio_scrape(0, 0)
        } else {
            istio_scrape(1800, 200)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("config_dump.json");
    std::fs::write(&dump, fixture("istio-gateway-config-dump.json")).unwrap();
    let rendered = format!(
        "{}/../manifests/tests/fixtures/manifests/kustomize-2-canary-10.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let run = run_checker(&[
        "observe",
        "--expect-from",
        &rendered,
        "--config-dump",
        &dump.to_string_lossy(),
        "--scrape",
        &format!("{}/stats/prometheus", fake.url),
        "--duration",
        "200ms",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(doc["inputs"]["sources"][0]["kind"], "envoy_scrape");
    assert_eq!(doc["programmed"][0]["listener"], "0.0.0.0_31400");
    assert_eq!(doc["programmed"][0]["agrees"], true, "{doc:#}");
    assert_eq!(doc["clusters"][1]["cluster"], cluster("stable"));
    assert!(
        doc["clusters"][1]["from"]
            .as_str()
            .unwrap()
            .contains("Deployment/tcp-echo-stable"),
        "{doc:#}"
    );
    assert_eq!(doc["counts"]["one"]["opened"], 1800);
    assert_eq!(doc["counts"]["two"]["opened"], 200);
}

/// A config dump with the listener on 31400 over the Istio clusters of stable and canary.
fn dump_json() -> String {
    serde_json::json!({"configs": [{
        "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        "static_listeners": [{"listener": {
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "0.0.0.0_31400",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 31400}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "tcp-echo",
                "weighted_clusters": {"clusters": [
                    {"name": cluster("stable"), "weight": 90}, {"name": cluster("canary"), "weight": 10}]}}}]}]},
            "last_updated": "2025-06-01T10:00:01.123Z"}]
    }]})
    .to_string()
}

#[test]
fn a_counter_that_went_down_is_a_reset_never_a_negative_count() {
    // The stable cluster's counter falls from 5000 to 40 between the reads (the gateway
    // restarted): 40 counted after it, the reset said, nothing negative.
    let fake = FakeAdmin::start(|path, n| match path {
        "/config_dump" => dump_json(),
        "/stats" => {
            // Every run reads twice: its start, then its end.
            let (one, two) = if n % 2 == 0 { (5000, 600) } else { (40, 610) };
            format!(
                "cluster.{}.upstream_cx_total: {one}\ncluster.{}.upstream_cx_total: {two}\n",
                cluster("stable"),
                cluster("canary")
            )
        }
        _ => String::new(),
    });
    let run = run_checker(&[
        "observe",
        "--expect",
        "one=90,two=10",
        "--version-of",
        "stable=one,canary=two",
        "--gateway-admin",
        &fake.url,
        "--route-port",
        "31400",
        "--duration",
        "200ms",
        "--output",
        "json",
    ]);
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(doc["counts"]["one"]["opened"], 40, "{doc:#}");
    assert_eq!(doc["counts"]["two"]["opened"], 10);
    let reset = &doc["resets"][0];
    assert_eq!(
        (reset["before"].as_u64(), reset["after"].as_u64()),
        (Some(5000), Some(40))
    );
    assert_eq!(reset["key"], cluster("stable"));
    assert!(
        doc["notes"][1]
            .as_str()
            .unwrap()
            .contains("went down from 5000 to 40")
    );
    assert_eq!(run.code, 3, "50 connections cannot decide: {run:?}");

    // The same as text: the reset on its own line.
    let run = run_checker(&[
        "observe",
        "--expect",
        "one=90,two=10",
        "--version-of",
        "stable=one,canary=two",
        "--gateway-admin",
        &fake.url,
        "--route-port",
        "31400",
        "--duration",
        "200ms",
    ]);
    assert!(run.stdout.contains("went down from"), "{run:?}");
}

/// A fake gateway pod: the listener of [`dump_json`], and `/stats` whose stable and
/// canary counters read `start` on every even request and `end` on every odd one (each
/// run reads a pod twice: its start, then its end).
fn pod(start: (u64, u64), end: (u64, u64)) -> FakeAdmin {
    FakeAdmin::start(move |path, n| match path {
        "/config_dump" => dump_json(),
        "/stats" => {
            let (one, two) = if n % 2 == 0 { start } else { end };
            format!(
                "cluster.{}.upstream_cx_total: {one}\ncluster.{}.upstream_cx_total: {two}\n",
                cluster("stable"),
                cluster("canary")
            )
        }
        _ => String::new(),
    })
}

#[test]
fn several_gateway_pods_repeat_the_flag_and_their_counts_add() {
    // Two pods whose counters move differently: the first opens 900 to stable and 100
    // to canary (90/10), the second 100 and 900 (10/90). Together 1,000 and 1,000: 50/50,
    // which neither pod alone shows. Each run gets pods of its own (their reads alternate).
    let observe = |expect: &str, admins: &[&str]| {
        let mut args = vec![
            "observe",
            "--expect",
            expect,
            "--version-of",
            "stable=one,canary=two",
            "--route-port",
            "31400",
            "--duration",
            "200ms",
            "--output",
            "json",
        ];
        for a in admins {
            args.extend_from_slice(&["--gateway-admin", a]);
        }
        run_checker(&args)
    };
    let (a, b) = (pod((1000, 50), (1900, 150)), pod((7, 3), (107, 903)));
    let run = observe("one=50,two=50", &[&a.url, &b.url]);
    assert_eq!(run.code, 0, "the sum is 50/50: {run:?}");
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(doc["counts"]["one"]["opened"], 1000, "{doc:#}");
    assert_eq!(doc["counts"]["two"]["opened"], 1000, "{doc:#}");
    let sources = doc["inputs"]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{doc:#}");
    assert!(
        sources.iter().all(|s| s["kind"] == "envoy_admin"),
        "{doc:#}"
    );

    // The same pods' sum against the first pod's own split: a FAIL.
    let (a, b) = (pod((1000, 50), (1900, 150)), pod((7, 3), (107, 903)));
    let run = observe("one=90,two=10", &[&a.url, &b.url]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["counts"]["one"]["opened"], 1000, "{doc:#}");
    assert!(
        doc["reason"].as_str().unwrap().starts_with("FAIL: "),
        "{doc:#}"
    );

    // One pod alone is its own split: the flag given once reads only that pod.
    let a = pod((1000, 50), (1900, 150));
    let run = observe("one=90,two=10", &[&a.url]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["counts"]["one"]["opened"], 900);

    // The comma form (CHECKER_GATEWAY_ADMIN's) adds the same way.
    let (a, b) = (pod((1000, 50), (1900, 150)), pod((7, 3), (107, 903)));
    let both = format!("{},{}", a.url, b.url);
    let run = observe("one=50,two=50", &[&both]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["counts"]["two"]["opened"], 1000);
}

#[test]
#[ignore = "needs envoy: .ci/run installs it"]
fn two_real_gateway_pods_port_forwarded_add_their_counts() {
    // Two Envoys as two gateway pods: the same listener port (one on 127.0.0.1, one on
    // 127.0.0.2), each over its own echo servers at 80/20. A plain client loop makes
    // traffic through each; observe with both admins counts the loops' tallies added,
    // with the first admin alone only the first loop's.
    let a = Envoy::start(&[("stable", "one", 80), ("canary", "two", 20)]);
    let b = Envoy::start_on(
        std::net::Ipv4Addr::new(127, 0, 0, 2),
        a.listener_port,
        &[("stable", "one", 80), ("canary", "two", 20)],
    );
    let port = a.listener_port.to_string();
    let start = |admins: &[&str]| {
        let mut args = long_window("one=80,two=20", &port);
        for admin in admins {
            args.extend(["--gateway-admin".to_owned(), (*admin).to_owned()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Background::start(&refs)
    };
    let mut both = start(&[&a.admin, &b.admin]);
    let mut first = start(&[&a.admin]);
    both.wait_open();
    first.wait_open();
    let through_a = connect_loop(a.addr(), 1500);
    let through_b = connect_loop(b.addr(), 2500);
    let mut sum = through_a.clone();
    for (v, n) in &through_b {
        *sum.entry(v.clone()).or_insert(0) += n;
    }
    eprintln!("through a: {through_a:?}, through b: {through_b:?}");

    let run = both.interrupt();
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(opened(&doc), pairs(&sum), "{doc:#}");
    assert_eq!(doc["inputs"]["sources"].as_array().unwrap().len(), 2);
    println!("both pods: {}", doc["reason"]);

    let run = first.interrupt();
    let doc = run.json();
    assert_observe_schema_valid(&doc);
    assert_eq!(opened(&doc), pairs(&through_a), "{doc:#}");
}

#[test]
fn observe_bad_inputs_get_one_sentence_and_their_exit_code() {
    let closed = format!("http://{}", support::closed_port());
    let base = ["observe", "--expect", "one=90,two=10", "--duration", "1s"];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        run_checker(&a)
    };
    let one_line = |run: &Run| {
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{run:?}");
        lines[0].to_owned()
    };
    // An admin that does not answer: 4.
    let run = with(&["--gateway-admin", &closed, "--route-port", "31400"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(one_line(&run).contains("does not answer"), "{run:?}");
    // A scrape that does not answer: 4.
    let run = with(&["--scrape", &format!("{closed}/stats/prometheus")]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(one_line(&run).contains("does not answer"), "{run:?}");
    // Nothing to observe, a bad URL, the envoy metric without clusters: 2.
    let run = with(&[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(one_line(&run).contains("nothing to observe"), "{run:?}");
    let run = with(&["--prometheus", "prometheus:9090"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_line(&run).starts_with("checker: --prometheus: the URL prometheus:9090 cannot be used"),
        "{run:?}"
    );
    let run = with(&["--scrape", &closed, "--metric", "envoy"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_line(&run).contains("--metric envoy counts per cluster"),
        "{run:?}"
    );
    // An admin with no port to read: the sentence names the ports its listeners bind.
    let fake = FakeAdmin::start(|path, _| match path {
        "/config_dump" => dump_json(),
        _ => String::new(),
    });
    let run = with(&["--gateway-admin", &fake.url]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_line(&run).contains("name the gateway listener's port with --listener-port or --route-port (the gateway's listeners are on port 31400)"),
        "{run:?}"
    );
    // A cluster with no version.
    let run = with(&["--gateway-admin", &fake.url, "--route-port", "31400"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        one_line(&run).contains("cannot be mapped to a version"),
        "{run:?}"
    );
}

/// `GET path` on the metrics listener at `addr`, over a plain socket: the whole answer.
fn scrape_listener(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Scrapes `addr` until `agreement` is shown (bounded by BOUND), returning that scrape.
fn scrape_until(addr: std::net::SocketAddr, agreement: f64, observe: &mut Background) -> String {
    let deadline = Instant::now() + BOUND;
    loop {
        let answer = scrape_listener(addr, "/metrics");
        if metric(&answer, "tcp_canary_agreement") == Some(agreement) {
            return answer;
        }
        if let Some(status) = observe.child.0.try_wait().unwrap() {
            panic!(
                "observe ended ({status}): {}",
                observe.stderr.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the agreement never reached {agreement}: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn observe_serves_the_gateways_split_as_the_watchs_metrics() {
    // A gateway scrape whose counters grow by 800 (stable, `one`) and 200 (canary, `two`)
    // at every read, until the test moves it to 60000/40000 per read.
    let moved = Arc::new(AtomicBool::new(false));
    let wrong = Arc::clone(&moved);
    let grown = Arc::new(Mutex::new((0u64, 0u64)));
    let tally = Arc::clone(&grown);
    let fake = FakeAdmin::start(move |path, n| {
        assert_eq!(path, "/stats/prometheus");
        let mut t = tally.lock().unwrap();
        if n > 0 {
            let (one, two) = if wrong.load(Ordering::SeqCst) {
                (60_000, 40_000)
            } else {
                (800, 200)
            };
            *t = (t.0 + one, t.1 + two);
        }
        istio_scrape(t.0, t.1)
    });
    let port = support::free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let scrape = format!("{}/stats/prometheus", fake.url);
    let mut observe = Background::start(&[
        "observe",
        "--expect",
        "one=80,two=20",
        "--scrape",
        &scrape,
        "--match",
        "destination_service_name=tcp-echo",
        "--duration",
        "10m",
        "--interval",
        "100ms",
        "--full-window",
        "--metrics-listen",
        &port.to_string(),
    ]);
    observe.wait_open();
    assert!(
        observe
            .stderr
            .lock()
            .unwrap()
            .contains(&format!("checker: metrics on http://{addr}/metrics")),
        "{}",
        observe.stderr.lock().unwrap()
    );

    // 80/20 at every look: the split agrees.
    let text = scrape_until(addr, 1.0, &mut observe);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("content-type: application/openmetrics-text"),
        "{text}"
    );
    let one = metric(&text, r#"tcp_canary_connections_total{version="one"}"#).unwrap();
    let two = metric(&text, r#"tcp_canary_connections_total{version="two"}"#).unwrap();
    assert!(one >= 800.0 && one % 800.0 == 0.0, "{text}");
    assert_eq!(one, 4.0 * two, "{text}");
    assert_eq!(
        metric(&text, "tcp_canary_evidence_connections"),
        Some(one + two)
    );
    assert_eq!(
        metric(&text, r#"tcp_canary_share{version="one"}"#),
        Some(0.8)
    );
    assert_eq!(
        metric(&text, r#"tcp_canary_expected_share{version="two"}"#),
        Some(0.2)
    );
    let low = metric(&text, r#"tcp_canary_share_lower{version="one"}"#).unwrap();
    let high = metric(&text, r#"tcp_canary_share_upper{version="one"}"#).unwrap();
    assert!(
        low < 0.8 && 0.8 < high && 0.75 <= low && high <= 0.85,
        "{text}"
    );
    assert!(metric(&text, "tcp_canary_observe_looks_total").unwrap() >= 1.0);
    // The gateway's counters give no latency and no error classes.
    assert!(!text.contains("duration_seconds"), "{text}");
    assert!(!text.contains("connection_errors"), "{text}");
    assert!(scrape_listener(addr, "/healthz").ends_with("\r\n\r\nok\n"));
    assert!(scrape_listener(addr, "/").starts_with("HTTP/1.1 404"));

    // 60/40 from now on: the running evidence turns and the split disagrees.
    moved.store(true, Ordering::SeqCst);
    let text = scrape_until(addr, -1.0, &mut observe);
    assert_eq!(
        metric(&text, r#"tcp_canary_share{version="one"}"#),
        Some(0.6),
        "{text}"
    );
    let one_now = metric(&text, r#"tcp_canary_connections_total{version="one"}"#).unwrap();
    assert!(one_now > one, "{text}");
    let (tally_one, _) = *grown.lock().unwrap();
    assert!(one_now <= tally_one as f64, "{one_now} > {tally_one}");

    // Ctrl-C: the last look is judged, FAIL as the metrics said.
    let run = observe.interrupt();
    assert_eq!(run.code, 1, "{run:?}");
}

#[test]
fn observe_metrics_need_a_look_every_interval() {
    let with = |extra: &[&str]| {
        let mut args = vec![
            "observe",
            "--expect",
            "one=80,two=20",
            "--scrape",
            "http://127.0.0.1:1/stats/prometheus",
            "--duration",
            "1s",
        ];
        args.extend_from_slice(extra);
        run_checker(&args)
    };
    let port = support::free_port().to_string();
    let run = with(&["--metrics-listen", &port]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("--metrics-listen needs --interval"),
        "{run:?}"
    );
    let run = with(&[
        "--interval",
        "1s",
        "--metrics-listen",
        "metrics.example:9464",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("a host name is refused"), "{run:?}");
}

#[test]
#[ignore = "needs envoy: .ci/run installs it"]
fn observe_metrics_count_what_a_real_envoy_opened() {
    let envoy = Envoy::start(&[("stable", "one", 80), ("canary", "two", 20)]);
    let port = support::free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let listener_port = envoy.listener_port.to_string();
    let mut observe = Background::start(&[
        "observe",
        "--expect",
        "one=80,two=20",
        "--version-of",
        "stable=one,canary=two",
        "--gateway-admin",
        &envoy.admin,
        "--listener-port",
        &listener_port,
        "--duration",
        "10m",
        "--interval",
        "200ms",
        "--full-window",
        "--metrics-listen",
        &port.to_string(),
    ]);
    observe.wait_open();
    let tally = connect_loop(envoy.addr(), 5000);
    let total: u64 = tally.values().sum();
    // Bounded by BOUND: a look after the loop counts every connection it made.
    let deadline = Instant::now() + BOUND;
    let text = loop {
        let answer = scrape_listener(addr, "/metrics");
        if metric(&answer, "tcp_canary_evidence_connections") == Some(total as f64) {
            break answer;
        }
        assert!(Instant::now() < deadline, "never counted {total}: {answer}");
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("{text}");
    for (version, n) in &tally {
        let series = format!(r#"tcp_canary_connections_total{{version="{version}"}}"#);
        assert_eq!(metric(&text, &series), Some(*n as f64), "{series}: {text}");
    }
    // 5,000 connections at 80/20 decide the split (as the admin's own test shows).
    assert_eq!(metric(&text, "tcp_canary_agreement"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, r#"tcp_canary_expected_share{version="one"}"#),
        Some(0.8)
    );
    let run = observe.interrupt();
    assert_eq!(run.code, 0, "{run:?}");
}
