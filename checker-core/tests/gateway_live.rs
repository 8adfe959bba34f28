//! The gateway's own view against the real parts: Envoy (a static bootstrap with a
//! `tcp_proxy` listener weighted 80/20 over two in-process echo servers, clusters named
//! the way Istio names them and Istio's `cluster_name` stats tag, admin on loopback),
//! and Prometheus scraping Envoy's `/stats/prometheus` every second. Connections are
//! made by a plain loop in the test, never by the checker.
//!
//! `ENVOY` names the Envoy binary (default `envoy` on PATH); Prometheus is Debian's
//! `prometheus` on PATH. Every process is killed when its guard drops, also on failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use checker_core::expect::Expectation;
use checker_core::gateway::config_dump::{self, ChainChoice};
use checker_core::gateway::fetch::{self, Limits};
use checker_core::gateway::layers;
use checker_core::gateway::mapping::{self, VersionMap};
use checker_core::gateway::observe::{self, CounterSource, Observer, Schedule, Sources};
use checker_core::gateway::prometheus::CounterQuery;
use checker_core::verdict::{Outcome, Settings};
use test_support::ChildGuard;
use test_support::fault::{Behaviour, FaultServer};
use test_support::servers;

const STABLE: &str = "outbound|9000|stable|tcp-echo.default.svc.cluster.local";
const CANARY: &str = "outbound|9000|canary|tcp-echo.default.svc.cluster.local";
const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(10),
    max_bytes: 32 << 20,
};
/// Connections per run: at 80/20 the default rule's 99.5% Wilson interval is then
/// about ±2 points wide, so a correct split fails about once in 10^4 runs.
const CONNECTIONS: usize = 3000;

struct Envoy {
    _child: ChildGuard,
    _dir: tempfile::TempDir,
    _one: FaultServer,
    _two: FaultServer,
    listener_port: u16,
    admin: String,
}

fn cluster(name: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "name": name, "type": "STATIC", "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}
    })
}

/// Envoy with a listener weighted `stable`/`canary` over the versions one and two.
fn start_envoy(stable: u32, canary: u32) -> Envoy {
    let one = FaultServer::start(vec![Behaviour::healthy("one", 1)]);
    let two = FaultServer::start(vec![Behaviour::healthy("two", 1)]);
    let listener_port = test_support::free_port();
    let admin_port = test_support::free_port();
    let bootstrap = serde_json::json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        // Istio's bootstrap rule: keep whole cluster names (with their dots) in the tag.
        "stats_config": {"use_all_default_tags": false, "stats_tags": [
            {"tag_name": "cluster_name", "regex": "^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)"}]},
        "static_resources": {
            "listeners": [{"name": format!("0.0.0.0_{listener_port}"),
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": "tcp-echo",
                    "weighted_clusters": {"clusters": [{"name": STABLE, "weight": stable}, {"name": CANARY, "weight": canary}]}}}]}]}],
            "clusters": [cluster(STABLE, one.addr.port()), cluster(CANARY, two.addr.port())]
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.json");
    std::fs::write(&path, bootstrap.to_string()).unwrap();
    let binary = std::env::var("ENVOY").unwrap_or_else(|_| "envoy".to_owned());
    let child = Command::new(&binary)
        .arg("-c")
        .arg(&path)
        .args(["--disable-hot-restart", "-l", "warning", "--log-path"])
        .arg(dir.path().join("envoy.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary} (set ENVOY): {e}"));
    let child = ChildGuard(child);
    let admin = format!("http://127.0.0.1:{admin_port}");
    wait_for(
        &format!("{admin}/ready"),
        |body| body.starts_with(b"LIVE"),
        &dir.path().join("envoy.log"),
    );
    Envoy {
        _child: child,
        _dir: dir,
        _one: one,
        _two: two,
        listener_port,
        admin,
    }
}

/// Polls `url` until `ready(body)`, for at most 30 s.
fn wait_for(url: &str, ready: impl Fn(&[u8]) -> bool, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let rt = runtime();
    loop {
        if let Ok(body) = rt.block_on(fetch::get(url, LIMITS))
            && ready(&body)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready within 30 s; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `n` connections through the listener, one line each, `pause` apart; the versions
/// that answered (the test's own tally) and each connection's start time.
fn connect_loop(port: u16, n: usize, pause: Duration) -> (BTreeMap<String, u64>, Vec<Instant>) {
    let mut tally = BTreeMap::new();
    let mut starts = Vec::with_capacity(n);
    for _ in 0..n {
        starts.push(Instant::now());
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"hello\n").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let version = line.split(' ').next().unwrap().to_owned();
        *tally.entry(version).or_insert(0u64) += 1;
        std::thread::sleep(pause);
    }
    (tally, starts)
}

fn mapped() -> VersionMap {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/tests/fixtures/manifests/kustomize-2-canary-10.yaml");
    let set = manifests::read(&[path.to_string_lossy()]).unwrap();
    let derivation = manifests::derive(&set, &Default::default()).unwrap();
    mapping::map_clusters([STABLE, CANARY], Some(&derivation), &BTreeMap::new()).unwrap()
}

fn sources(source: CounterSource) -> Sources {
    Sources {
        sources: vec![source],
        clusters: mapped(),
        label_overrides: BTreeMap::new(),
        limits: LIMITS,
    }
}

fn pairs(tally: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    tally.iter().map(|(v, n)| (v.clone(), *n)).collect()
}

#[test]
#[ignore = "needs envoy: .ci/run installs it"]
fn envoy_the_programmed_weights_and_the_counters_through_stats_and_prometheus_text() {
    let envoy = start_envoy(80, 20);
    let rt = runtime();

    // What the gateway was told, read through its admin.
    let body = rt
        .block_on(fetch::get(
            &fetch::join(&envoy.admin, "/config_dump"),
            LIMITS,
        ))
        .unwrap();
    let route = config_dump::parse(&body)
        .unwrap()
        .route(u32::from(envoy.listener_port), &ChainChoice::PlainTcp)
        .unwrap();
    let weights: Vec<(&str, u64)> = route
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(weights, [(STABLE, 80), (CANARY, 20)]);
    // The manifests say 90/10: the control plane is the layer to blame.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/tests/fixtures/manifests/kustomize-2-canary-10.yaml");
    let derivation = manifests::derive(
        &manifests::read(&[path.to_string_lossy()]).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let compared = layers::compare(&derivation, &route);
    assert!(!compared.agrees);
    assert_eq!(
        compared.differences[1],
        "tcp-echo subset canary: the manifests say 10.0% (weight 10 of 100), the gateway was told 20.0% (weight 20 of 100)"
    );

    // What it counted, two ways, against the test's own tally.
    let admin = rt
        .block_on(Observer::start(sources(CounterSource::EnvoyAdmin {
            url: envoy.admin.clone(),
        })))
        .unwrap();
    let scrape = rt
        .block_on(Observer::start(sources(CounterSource::EnvoyScrape {
            url: fetch::join(&envoy.admin, "/stats/prometheus"),
        })))
        .unwrap();
    let (tally, _) = connect_loop(envoy.listener_port, CONNECTIONS, Duration::ZERO);
    let by_admin = rt.block_on(admin.look()).unwrap();
    let by_scrape = rt.block_on(scrape.look()).unwrap();
    eprintln!(
        "test tally {tally:?}, /stats {:?}",
        by_admin.counts.opened()
    );
    assert_eq!(by_admin.counts.opened(), pairs(&tally));
    assert_eq!(by_scrape.counts.opened(), pairs(&tally));
    assert_eq!(by_admin.counts.versions["one"].connect_fail, Some(0));
    assert!(layers::cross_check(&by_admin.counts.opened(), &pairs(&tally), 0, 0).agrees);

    // Judged as observe judges: the true split PASSes, a wrong expectation FAILs.
    let settings = Settings::default();
    let right: Expectation = "one=80,two=20".parse().unwrap();
    let wrong: Expectation = "one=90,two=10".parse().unwrap();
    assert_eq!(
        observe::judge(&by_admin, &right, &settings, false).outcome,
        Outcome::Pass,
        "{tally:?}"
    );
    assert_eq!(
        observe::judge(&by_admin, &wrong, &settings, false).outcome,
        Outcome::Fail
    );
    assert_eq!(
        observe::judge(&by_scrape, &wrong, &settings, true).outcome,
        Outcome::Fail
    );

    // A whole (short) observation with no traffic: one look, nothing to judge yet.
    let config = observe::ObserveConfig {
        sources: sources(CounterSource::EnvoyAdmin {
            url: envoy.admin.clone(),
        }),
        expect: right,
        settings,
        max_error_rate: 0.01,
        schedule: Schedule::Once {
            duration: Duration::from_millis(300),
        },
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let result = rt
        .block_on(observe::observe(&config, &stop, |_, _| {}))
        .unwrap();
    assert_eq!(
        (result.looks, result.verdict.total, result.verdict.outcome),
        (1, 0, Outcome::Inconclusive)
    );
    assert_eq!(result.notes[0], observe::REAL_TRAFFIC_NOTE);
}

#[test]
#[ignore = "needs envoy and prometheus: .ci/run installs them"]
fn prometheus_the_api_counts_what_the_admin_counts_within_one_scrape_interval() {
    let envoy = start_envoy(70, 30);
    let dir = tempfile::tempdir().unwrap();
    let prometheus = servers::prometheus_over_envoy(dir.path(), &envoy.admin);
    let base = format!("http://{}", prometheus.addr);
    let rt = runtime();
    let admin = rt
        .block_on(Observer::start(sources(CounterSource::EnvoyAdmin {
            url: envoy.admin.clone(),
        })))
        .unwrap();
    let api = rt
        .block_on(Observer::start(sources(CounterSource::Prometheus {
            url: base.clone(),
            query: CounterQuery::envoy_clusters(&[STABLE, CANARY]),
        })))
        .unwrap();
    // A scrape inside the window before the traffic, and two after it; the traffic
    // spread over a few scrape intervals, so that one interval's worth is a real bound.
    std::thread::sleep(Duration::from_millis(1500));
    let (tally, starts) = connect_loop(envoy.listener_port, 1000, Duration::from_millis(3));
    std::thread::sleep(Duration::from_millis(2500));
    let by_admin = rt.block_on(admin.look()).unwrap();
    let by_api = rt.block_on(api.look()).unwrap();
    assert_eq!(by_admin.counts.opened(), pairs(&tally));
    // One scrape interval's worth: the most connections the loop made within any second.
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
        "admin {:?}, Prometheus {:?}, one interval's worth {per_interval}",
        by_admin.counts.opened(),
        by_api.counts.opened()
    );
    for ((v, a), (w, p)) in by_admin.counts.opened().iter().zip(by_api.counts.opened()) {
        assert_eq!(v, &w);
        assert!(
            p <= *a && a - p <= per_interval,
            "{v}: admin {a}, Prometheus {p}, one interval {per_interval}"
        );
    }
    assert_eq!(by_api.queries.len(), 1);
    assert!(
        by_api.queries[0].starts_with(
            "sum by (cluster_name) (increase(envoy_cluster_upstream_cx_total{cluster_name=~"
        ),
        "{}",
        by_api.queries[0]
    );
}
