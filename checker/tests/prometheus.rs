//! The rollout controllers' queries against a real Prometheus: `checker watch
//! --metrics-listen` through HAProxy (`balance random(1)`, one draw per connection, the
//! rehearsal's driver) in front of two echo servers, scraped every second by Debian's
//! `prometheus`; the PromQL of deploy/flagger/metrics and deploy/argo-rollouts/metrics,
//! read from those manifests (never a copy), asked through Prometheus's HTTP API.
//!
//! At 80/20, as expected, both queries answer 1 and the share of `two` is inside the
//! band; after the gateway moves to 60/40 (HAProxy's runtime API), both answer -1.
//!
//! Needs `prometheus` and `haproxy` (Debian packages): ignored by a plain `cargo test`,
//! run by `.ci/run` with `--include-ignored`, where a missing binary fails the test.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rehearse::ingress::haproxy::Haproxy;
use serde_json::Value;
use support::{BOUND, EchoServer, Guard, checker, free_port};
use test_support::servers::{self, Server, http_get};

/// The repository's deploy/ directory.
fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy"))
}

/// Every YAML document of `path` under deploy/.
fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy().join(path)).expect("read the manifest");
    yaml_serde::Deserializer::from_str(&text)
        .map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).expect("a YAML document");
            v
        })
        .collect()
}

/// The query of Flagger's MetricTemplate `name` in deploy/flagger/metrics.
fn flagger_query(name: &str) -> String {
    documents("flagger/metrics/metrictemplates.yaml")
        .into_iter()
        .find(|d| d["kind"] == "MetricTemplate" && d["metadata"]["name"] == name)
        .and_then(|d| d["spec"]["query"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no MetricTemplate {name} with a query"))
}

/// The Prometheus query of metric `name` of Argo's AnalysisTemplate in deploy/argo-rollouts/metrics.
fn argo_query(name: &str) -> String {
    documents("argo-rollouts/metrics/analysistemplate.yaml")
        .into_iter()
        .filter(|d| d["kind"] == "AnalysisTemplate")
        .flat_map(|d| d["spec"]["metrics"].as_array().cloned().unwrap_or_default())
        .find(|m| m["name"] == name)
        .and_then(|m| {
            m["provider"]["prometheus"]["query"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no AnalysisTemplate metric {name} with a Prometheus query"))
}

/// `query` with each `{{ key }}` replaced as the controller would, from `values`.
fn resolve(query: &str, values: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").expect("a closed {{ }}") + start;
        let key = rest[start + 2..end].trim();
        let value = values
            .get(key)
            .unwrap_or_else(|| panic!("the test has no value for {{{{ {key} }}}}"));
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A running Prometheus scraping `target` every second as job `tcp-canary-watch`; killed on drop.
struct Prometheus {
    server: Server,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = servers::prometheus(
            dir.path(),
            "prometheus",
            "tcp-canary-watch",
            "/metrics",
            &target.to_string(),
        );
        Prometheus { server, _dir: dir }
    }

    /// The single value `query` gives now, if it gives one.
    fn value(&self, query: &str) -> Option<f64> {
        let path = format!(
            "/api/v1/query?query={}",
            utf8_percent_encode(query, NON_ALPHANUMERIC)
        );
        let (code, body) = http_get(self.server.addr, &path)?;
        assert_eq!(code, 200, "query {query} refused: {body}");
        let doc: Value = serde_json::from_str(&body).expect("the API answers JSON");
        let result = doc["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query} gave many series: {doc}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits (bounded) until `query` gives a value for which `ok` holds; returns it.
    fn wait_for(&self, what: &str, query: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + BOUND;
        let mut last = None;
        loop {
            last = self.value(query).or(last);
            if let Some(v) = last.filter(|v| ok(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: `{query}` gave {last:?} for {BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
#[ignore = "needs prometheus and haproxy (Debian packages); .ci/run installs them"]
fn the_controllers_queries_see_agreement_then_disagreement_through_prometheus() {
    let one = EchoServer::start("one", 1);
    let two = EchoServer::start("two", 1);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the HAProxy driver");
    let mut haproxy = runtime.block_on(async {
        let mut h = Haproxy::start("haproxy", 2)
            .await
            .unwrap_or_else(|e| panic!("cannot start haproxy: {e:?}"));
        h.add_replica("one", one.addr()).await.expect("add one");
        h.add_replica("two", two.addr()).await.expect("add two");
        h.set_weights(&[("one", 80), ("two", 20)])
            .await
            .expect("80/20");
        h
    });
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let watch = Command::new(checker())
        .args([
            "watch",
            "--target",
            &haproxy.local_addr().to_string(),
            "--expect",
            "one=80,two=20",
            "--rate",
            "300",
            "--interval",
            "500ms",
            "--duration",
            "110s",
            "--metrics-listen",
            &metrics.to_string(),
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start checker watch");
    let _watch = Guard(watch);
    let prometheus = Prometheus::start(metrics);

    let values = BTreeMap::from([
        // Flagger's template variables and its check interval.
        ("variables.canary_version", "two"),
        ("variables.stable_version", "one"),
        ("interval", "1m"),
        // The args Argo's Rollout passes after `setWeight: 20`.
        ("args.canary-version", "two"),
        ("args.stable-version", "one"),
        ("args.canary-weight", "20"),
        ("args.stable-weight", "80"),
    ]);
    let flagger = resolve(&flagger_query("tcp-canary-split"), &values);
    let argo = resolve(&argo_query("split-agreement"), &values);
    let share = "sum(rate(tcp_canary_connections_total{job=\"tcp-canary-watch\",version=\"two\"}[10s])) \
                 / sum(rate(tcp_canary_connections_total{job=\"tcp-canary-watch\"}[10s]))";

    // Before the watch decides, the queries answer 0 (undecided), never 1.
    let first = prometheus.wait_for("a first answer", &flagger, |_| true);
    assert!(first == 0.0 || first == 1.0, "{first}");
    prometheus.wait_for("Flagger's split check at 80/20", &flagger, |v| v == 1.0);
    prometheus.wait_for("Argo's split measurement at 80/20", &argo, |v| v == 1.0);
    let s = prometheus.wait_for("the share of two", share, |v| v.is_finite());
    assert!(
        (0.15..=0.25).contains(&s),
        "two's share {s} is outside 20% +- 5"
    );

    // The gateway moves to 60/40 while the expectation stays 80/20.
    runtime
        .block_on(haproxy.set_weights(&[("one", 60), ("two", 40)]))
        .expect("60/40");
    prometheus.wait_for("Flagger's split check at 60/40", &flagger, |v| v == -1.0);
    prometheus.wait_for("Argo's split measurement at 60/40", &argo, |v| v == -1.0);
    let s = prometheus.wait_for("the share of two at 60/40", share, |v| {
        (0.35..=0.45).contains(&v)
    });
    assert!(s > 0.3, "{s}");
    // Argo's guard: for another step's weights (canary at 10) the same watch is no verdict.
    let other_step = BTreeMap::from([("args.canary-version", "two"), ("args.canary-weight", "10")]);
    let stale = resolve(&argo_query("split-agreement"), &other_step);
    assert_eq!(prometheus.value(&stale), Some(0.0), "{stale}");
    drop(runtime);
}
