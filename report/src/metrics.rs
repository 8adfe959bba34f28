//! `checker watch --metrics-listen`: the watch as Prometheus metrics, for the rollout
//! controllers' analysis (Flagger's `MetricTemplate`, Argo Rollouts' `AnalysisTemplate`).
//!
//! [`WatchMetrics`] follows a watch as a [`RunObserver`] (every sample: connections,
//! errors and latency) and through [`WatchMetrics::tick`] (every interval: shares, the
//! running interval bounds, the agreement) and renders the OpenMetrics text with the
//! `prometheus-client` crate. It holds plain numbers taken from `checker-core`'s watch;
//! the HTTP listener that serves them lives in the binary.
//!
//! Cardinality is bounded: one series per version (and per error class), never per
//! connection or address. Expected versions always get their own series; other
//! versions do until [`MAX_TRACKED_VERSIONS`] names are known, and the rest are counted
//! together under [`OTHER_VERSIONS`], as in the verify table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use checker_core::sync::lock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use checker_core::expect::Expectation;
use checker_core::observer::{ObserverError, RunObserver};
use checker_core::sampler::{ErrorClass, Sample};
use checker_core::tally::{MAX_TRACKED_VERSIONS, OTHER_VERSIONS};
use checker_core::verdict::compare::{CompareRule, Comparison};
use checker_core::verdict::{Interval, Outcome, SplitVerdict};
use checker_core::watch::{Agreement, Tick};

/// The prefix of every metric name.
pub const PREFIX: &str = "tcp_canary";

/// The content type of [`WatchMetrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The upper bounds of the latency histograms' buckets, in seconds (a `+Inf` bucket
/// follows): from half a millisecond (loopback) to ten seconds (a timeout).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The value of `tcp_canary_agreement` for a state: 1 agrees, 0 undecided, -1 disagrees.
pub fn agreement_value(state: Agreement) -> i64 {
    match state {
        Agreement::Agrees => 1,
        Agreement::Undecided => 0,
        Agreement::Disagrees => -1,
    }
}

/// The label of the per-version series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// The label of the error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

type Ratio = Gauge<f64, AtomicU64>;
type Latency = Family<VersionLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The version names that have a series of their own.
#[derive(Debug, Default)]
struct Names {
    /// Names of the expectations seen so far: always their own series.
    expected: BTreeSet<String>,
    /// Other names, in the order they answered, at most what the cap leaves.
    others: BTreeSet<String>,
}

impl Names {
    /// The label for `name`: its own, or [`OTHER_VERSIONS`] beyond the cap.
    fn label(&mut self, name: &str) -> VersionLabel {
        let own = self.expected.contains(name)
            || self.others.contains(name)
            || (self.expected.len() + self.others.len() < MAX_TRACKED_VERSIONS
                && self.others.insert(name.to_owned()));
        VersionLabel {
            version: if own { name } else { OTHER_VERSIONS }.to_owned(),
        }
    }

    /// Every label with a series of its own, expected first.
    fn all(&self) -> impl Iterator<Item = &String> {
        self.expected.iter().chain(self.others.iter())
    }
}

/// The series `watch` and `observe` share, under the same names and meanings: the
/// connections by version, each version's share in the last interval, the interval
/// bounds of the running evidence, the expected shares, the agreement and the evidence.
struct Split {
    names: Mutex<Names>,
    connections: Family<VersionLabel, Counter>,
    share: Family<VersionLabel, Ratio>,
    lower: Family<VersionLabel, Ratio>,
    upper: Family<VersionLabel, Ratio>,
    expected: Family<VersionLabel, Ratio>,
    agreement: Gauge<i64, AtomicI64>,
    evidence: Gauge<i64, AtomicI64>,
}

impl Split {
    fn new() -> Self {
        Self {
            names: Mutex::new(Names::default()),
            connections: Family::default(),
            share: Family::default(),
            lower: Family::default(),
            upper: Family::default(),
            expected: Family::default(),
            agreement: Gauge::default(),
            evidence: Gauge::default(),
        }
    }

    /// Registers the connections counter (described by `connections_help`).
    fn register_connections(&self, registry: &mut Registry, connections_help: &str) {
        registry.register("connections", connections_help, self.connections.clone());
    }

    /// Registers the gauges of the split.
    fn register_gauges(&self, registry: &mut Registry) {
        registry.register(
            "share",
            "Each version's share of the connections in the last interval (NaN when there was none)",
            self.share.clone(),
        );
        registry.register(
            "share_lower",
            "Lower bound of the anytime-valid interval of each version's share over the running evidence",
            self.lower.clone(),
        );
        registry.register(
            "share_upper",
            "Upper bound of the anytime-valid interval of each version's share over the running evidence",
            self.upper.clone(),
        );
        registry.register(
            "expected_share",
            "The expected share of each version: its weight over the total of the weights",
            self.expected.clone(),
        );
        registry.register(
            "agreement",
            "Whether the split agrees with the expectation: 1 agrees, 0 undecided, -1 disagrees",
            self.agreement.clone(),
        );
        registry.register(
            "evidence_connections",
            "Connections in the running evidence (watch: since the last decision or change of expectation; observe: since the window opened)",
            self.evidence.clone(),
        );
    }

    fn names(&self) -> std::sync::MutexGuard<'_, Names> {
        lock(&self.names)
    }

    /// `expect` holds from now on: its versions get series of their own and their
    /// expected shares; versions it no longer names expect 0.
    fn set_expectation(&self, expect: &Expectation) {
        let mut names = self.names();
        for v in expect.versions() {
            names.others.remove(&v.name);
            names.expected.insert(v.name.clone());
        }
        for name in names.all() {
            let share = expect
                .versions()
                .iter()
                .find(|v| &v.name == name)
                .map_or(0.0, |v| v.share);
            let label = VersionLabel {
                version: name.clone(),
            };
            self.expected.get_or_create(&label).set(share);
        }
    }

    /// One interval: the connections per version in it, the interval bounds of the
    /// running evidence, the agreement (see [`agreement_value`]) and the evidence's size.
    fn interval<'a>(
        &self,
        window: impl IntoIterator<Item = (&'a str, u64)>,
        intervals: impl IntoIterator<Item = (&'a str, Interval)>,
        agreement: i64,
        evidence: u64,
    ) {
        let mut total = 0u64;
        let mut shares = BTreeMap::<String, u64>::new();
        {
            let mut names = self.names();
            for (name, count) in window {
                total = total.saturating_add(count);
                *shares.entry(names.label(name).version).or_insert(0) += count;
            }
            for name in names.all() {
                shares.entry(name.clone()).or_insert(0);
            }
            for (name, interval) in intervals {
                let label = names.label(name);
                // Intervals of versions folded together cannot be added up.
                if label.version != OTHER_VERSIONS {
                    self.lower.get_or_create(&label).set(interval.low);
                    self.upper.get_or_create(&label).set(interval.high);
                }
            }
        }
        for (version, count) in shares {
            let share = if total == 0 {
                f64::NAN
            } else {
                count as f64 / total as f64
            };
            self.share
                .get_or_create(&VersionLabel { version })
                .set(share);
        }
        self.agreement.set(agreement);
        self.evidence
            .set(i64::try_from(evidence).unwrap_or(i64::MAX));
    }
}

/// The label of the health verdicts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabel {
    metric: String,
}

struct Inner {
    registry: Registry,
    split: Split,
    errors: Family<ClassLabel, Counter>,
    connect: Latency,
    reply: Latency,
    ticks: Counter,
    health: Family<MetricLabel, Gauge<i64, AtomicI64>>,
}

/// The metrics of one watch; clones share them (the watch records, the listener renders).
#[derive(Clone)]
pub struct WatchMetrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WatchMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchMetrics").finish_non_exhaustive()
    }
}

impl Default for WatchMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchMetrics {
    /// Fresh metrics, registered under [`PREFIX`]; the agreement starts undecided (0).
    pub fn new() -> Self {
        Self::build(None)
    }

    /// [`WatchMetrics::new`] with `tcp_canary_health_verdict` for every metric `rule`
    /// compares (`--compare`), each undecided (0) until [`WatchMetrics::health`].
    pub fn with_comparison(rule: &CompareRule) -> Self {
        Self::build(Some(rule))
    }

    fn build(rule: Option<&CompareRule>) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let inner = Inner {
            registry: Registry::default(),
            split: Split::new(),
            errors: Family::default(),
            connect: Latency::new_with_constructor(latency_histogram),
            reply: Latency::new_with_constructor(latency_histogram),
            ticks: Counter::default(),
            health: Family::default(),
        };
        let m = &inner;
        m.split.register_connections(
            &mut registry,
            "Connections answered, by the version that answered",
        );
        registry.register(
            "connection_errors",
            "Connections that gave no version, by error class",
            m.errors.clone(),
        );
        registry.register_with_unit(
            "connect_duration",
            "Time to establish a connection answered by the version",
            Unit::Seconds,
            m.connect.clone(),
        );
        registry.register_with_unit(
            "reply_duration",
            "Time from sending the probe line to the version's complete reply",
            Unit::Seconds,
            m.reply.clone(),
        );
        m.split.register_gauges(&mut registry);
        registry.register(
            "watch_intervals",
            "Intervals the watch has judged",
            m.ticks.clone(),
        );
        if let Some(rule) = rule {
            registry.register(
                "health_verdict",
                "The canary against the stable, per compared metric: 1 PASS, 0 INCONCLUSIVE, -1 FAIL",
                m.health.clone(),
            );
            for spec in rule.metrics() {
                let _ = m.health.get_or_create(&MetricLabel { metric: spec.name });
            }
        }
        Self {
            inner: Arc::new(Inner { registry, ..inner }),
        }
    }

    /// Creates the error counter of every class at 0, so that a scrape shows each before
    /// its first error (a rate over a series that appears late misses its first increase).
    pub fn with_every_error_class(self) -> Self {
        for class in ErrorClass::ALL {
            let _ = self.inner.errors.get_or_create(&ClassLabel {
                class: class.as_str(),
            });
        }
        self
    }

    /// `expect` holds from now on: its versions get series of their own and their
    /// expected shares; versions it no longer names expect 0.
    pub fn set_expectation(&self, expect: &Expectation) {
        self.inner.split.set_expectation(expect);
    }

    /// The comparison's verdict on each metric now (see [`outcome_value`]).
    pub fn health(&self, comparison: &Comparison) {
        for m in &comparison.metrics {
            let label = MetricLabel {
                metric: m.metric.clone(),
            };
            self.inner
                .health
                .get_or_create(&label)
                .set(outcome_value(m.outcome));
        }
    }

    /// One interval of the watch: the shares in it, the running interval bounds and the state.
    pub fn tick(&self, tick: &Tick) {
        self.inner.split.interval(
            tick.window.iter().map(|(n, &c)| (n.as_str(), c)),
            tick.intervals.iter().map(|(n, &i)| (n.as_str(), i)),
            agreement_value(tick.state),
            tick.evidence,
        );
        self.inner.ticks.inc();
    }

    /// The metrics as OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        render(&self.inner.registry)
    }
}

/// `registry` as OpenMetrics text ([`CONTENT_TYPE`]).
fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an error would only mean a malformed metric.
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// The value of `tcp_canary_agreement` for an observation's verdict: PASS 1,
/// INCONCLUSIVE 0, FAIL -1 (as [`agreement_value`] for the watch's states).
pub fn outcome_value(outcome: Outcome) -> i64 {
    match outcome {
        Outcome::Pass => 1,
        Outcome::Inconclusive => 0,
        Outcome::Fail => -1,
    }
}

struct ObserveInner {
    registry: Registry,
    split: Split,
    /// Each version's connections since the window opened, at the last look.
    last: Mutex<BTreeMap<String, u64>>,
    looks: Counter,
}

/// The metrics of one `checker observe --interval` (its `--metrics-listen`), from the
/// gateway's own counters: under the watch's names where the meaning is the same
/// (connections by version, share, interval bounds, expected share, agreement,
/// evidence), so that one query reads either. It has no latency and no error classes:
/// the gateway's counters give neither per connection. Clones share them.
#[derive(Clone)]
pub struct ObserveMetrics {
    inner: Arc<ObserveInner>,
}

impl std::fmt::Debug for ObserveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveMetrics").finish_non_exhaustive()
    }
}

impl ObserveMetrics {
    /// Fresh metrics for an observation of `expect`, registered under [`PREFIX`]; the
    /// agreement starts undecided (0).
    pub fn new(expect: &Expectation) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let inner = ObserveInner {
            registry: Registry::default(),
            split: Split::new(),
            last: Mutex::default(),
            looks: Counter::default(),
        };
        inner.split.register_connections(
            &mut registry,
            "Connections the gateway opened to each version since the observation started (it never goes down: after a gateway restart it holds until the new count passes it)",
        );
        inner.split.register_gauges(&mut registry);
        registry.register(
            "observe_looks",
            "Looks at the gateway's counters the observation has judged (one per interval)",
            inner.looks.clone(),
        );
        inner.split.set_expectation(expect);
        for v in expect.versions() {
            let label = VersionLabel {
                version: v.name.clone(),
            };
            let _ = inner.split.connections.get_or_create(&label);
        }
        Self {
            inner: Arc::new(ObserveInner { registry, ..inner }),
        }
    }

    /// One look: `opened` is each version's connections since the window opened (all
    /// sources added up), `verdict` its judgement over them.
    pub fn look(&self, opened: &[(String, u64)], verdict: &SplitVerdict) {
        let inner = &self.inner;
        // Held for the whole look, as `render` holds it: a scrape sees one look whole.
        let mut last = lock(&inner.last);
        let mut window = Vec::with_capacity(opened.len());
        for (name, count) in opened {
            let before = last.insert(name.clone(), *count).unwrap_or(0);
            // Counts since the start only go down when a gateway restarts (or a
            // Prometheus server's increase() wavers): nothing is counted for it.
            let in_interval = count.saturating_sub(before);
            window.push((name.as_str(), in_interval));
            let label = inner.split.names().label(name);
            let counter = inner.split.connections.get_or_create(&label);
            if label.version == OTHER_VERSIONS {
                counter.inc_by(in_interval);
            } else {
                counter.inc_by(count.saturating_sub(counter.get()));
            }
        }
        inner.split.interval(
            window,
            verdict
                .versions
                .iter()
                .map(|v| (v.name.as_str(), v.interval)),
            outcome_value(verdict.outcome),
            verdict.total,
        );
        inner.looks.inc();
    }

    /// The metrics as OpenMetrics text ([`CONTENT_TYPE`]), never halfway through a look.
    pub fn render(&self) -> String {
        let _look = lock(&self.inner.last);
        render(&self.inner.registry)
    }
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

impl RunObserver for WatchMetrics {
    fn sample(&self, sample: &Sample) -> Result<(), ObserverError> {
        let inner = &self.inner;
        match &sample.result {
            Ok(version) => {
                let label = inner.split.names().label(version);
                inner.split.connections.get_or_create(&label).inc();
                if let Some(us) = sample.connect_us {
                    inner.connect.get_or_create(&label).observe(seconds(us));
                }
                if let Some(us) = sample.reply_us {
                    inner.reply.get_or_create(&label).observe(seconds(us));
                }
            }
            Err(class) => {
                let label = ClassLabel {
                    class: class.as_str(),
                };
                inner.errors.get_or_create(&label).inc();
            }
        }
        Ok(())
    }

    fn expectation(&self, expect: &str, _at: SystemTime) -> Result<(), ObserverError> {
        // The watch hands over only expectations it parsed itself.
        if let Ok(e) = expect.parse::<Expectation>() {
            self.set_expectation(&e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn sample(id: u64, result: Result<&str, ErrorClass>) -> Sample {
        Sample {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            started_at: SystemTime::now(),
            offset: Duration::ZERO,
            result: result.map(str::to_owned),
            connect_us: Some(1_500),
            handshake_us: None,
            reply_us: Some(20_000),
            lag_us: None,
            reply_head: None,
            reason: None,
        }
    }

    fn tick(window: &[(&str, u64)], state: Agreement) -> Tick {
        Tick {
            at: String::new(),
            elapsed_s: 1.0,
            expect: String::new(),
            window: window.iter().map(|&(n, c)| (n.to_owned(), c)).collect(),
            errors: 0,
            evidence: window.iter().map(|&(_, c)| c).sum(),
            intervals: window
                .iter()
                .map(|&(n, _)| {
                    (
                        n.to_owned(),
                        Interval {
                            low: 0.25,
                            high: 0.75,
                        },
                    )
                })
                .collect(),
            state,
            event: None,
            expect_file_error: None,
            expect_file_error_is_new: false,
        }
    }

    /// The value of the sample line that starts with `series` (name and labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    #[test]
    fn a_watch_becomes_series_per_version_and_class() {
        let m = WatchMetrics::new().with_every_error_class();
        m.expectation("one=80,two=20", SystemTime::now()).unwrap();
        for id in 0..8 {
            m.sample(&sample(id, Ok("one"))).unwrap();
        }
        for id in 8..10 {
            m.sample(&sample(id, Ok("two"))).unwrap();
        }
        m.sample(&sample(10, Err(ErrorClass::Refused))).unwrap();
        m.tick(&tick(&[("one", 8), ("two", 2)], Agreement::Agrees));
        let text = m.render();
        assert_eq!(
            value(&text, r#"tcp_canary_connections_total{version="one"}"#),
            Some(8.0),
            "{text}"
        );
        assert_eq!(
            value(&text, r#"tcp_canary_connections_total{version="two"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                r#"tcp_canary_connection_errors_total{class="refused"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"tcp_canary_connection_errors_total{class="reset"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&text, r#"tcp_canary_share{version="one"}"#),
            Some(0.8)
        );
        assert_eq!(
            value(&text, r#"tcp_canary_share_lower{version="two"}"#),
            Some(0.25)
        );
        assert_eq!(
            value(&text, r#"tcp_canary_share_upper{version="two"}"#),
            Some(0.75)
        );
        assert_eq!(
            value(&text, r#"tcp_canary_expected_share{version="two"}"#),
            Some(0.2)
        );
        assert_eq!(value(&text, "tcp_canary_agreement"), Some(1.0));
        assert_eq!(value(&text, "tcp_canary_evidence_connections"), Some(10.0));
        // 1.5 ms connect falls in the 2.5 ms bucket, not the 1 ms one.
        assert_eq!(
            value(
                &text,
                r#"tcp_canary_connect_duration_seconds_bucket{le="0.001",version="one"}"#
            ),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                r#"tcp_canary_connect_duration_seconds_bucket{le="0.0025",version="one"}"#
            ),
            Some(8.0)
        );
        assert!(
            text.contains("# UNIT tcp_canary_reply_duration_seconds seconds"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        m.tick(&tick(&[("one", 3), ("two", 3)], Agreement::Disagrees));
        assert_eq!(value(&m.render(), "tcp_canary_agreement"), Some(-1.0));
        m.tick(&tick(&[], Agreement::Undecided));
        let text = m.render();
        assert_eq!(value(&text, "tcp_canary_agreement"), Some(0.0));
        assert!(value(&text, r#"tcp_canary_share{version="one"}"#).is_some_and(f64::is_nan));
    }

    #[test]
    fn versions_beyond_the_cap_share_one_series_and_expected_ones_keep_theirs() {
        let m = WatchMetrics::new();
        m.expectation("one=50,two=50", SystemTime::now()).unwrap();
        let mut window = BTreeMap::new();
        for i in 0..100u64 {
            let name = format!("v{i}");
            m.sample(&sample(i, Ok(&name))).unwrap();
            window.insert(name, 1);
        }
        m.sample(&sample(100, Ok("two"))).unwrap();
        window.insert("two".to_owned(), 1);
        let mut t = tick(&[], Agreement::Disagrees);
        t.window = window;
        m.tick(&t);
        let text = m.render();
        let versions: BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("tcp_canary_connections_total{"))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        // `two`, the first 30 others (`one` keeps its place but never answered), and the fold.
        assert_eq!(versions.len(), MAX_TRACKED_VERSIONS, "{versions:?}");
        assert!(versions.contains("two") && versions.contains(OTHER_VERSIONS));
        // 30 others fit beside the two expected versions; the other 70 are folded.
        let other = format!(r#"tcp_canary_connections_total{{version="{OTHER_VERSIONS}"}}"#);
        assert_eq!(value(&text, &other), Some(70.0));
        let share = format!(r#"tcp_canary_share{{version="{OTHER_VERSIONS}"}}"#);
        assert_eq!(value(&text, &share), Some(70.0 / 101.0));
        assert_eq!(
            value(&text, r#"tcp_canary_expected_share{version="one"}"#),
            Some(0.5)
        );
        // A new expectation without `one`: it is expected at 0 from then on.
        m.expectation("two=100", SystemTime::now()).unwrap();
        let text = m.render();
        assert_eq!(
            value(&text, r#"tcp_canary_expected_share{version="one"}"#),
            Some(0.0)
        );
        assert_eq!(
            value(&text, r#"tcp_canary_expected_share{version="two"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn an_observation_counts_the_gateways_connections_and_judges_each_look() {
        use checker_core::verdict::{Settings, sequential};
        let expect: Expectation = "one=80,two=20".parse().unwrap();
        let m = ObserveMetrics::new(&expect);
        let text = m.render();
        // Before the first look: every expected version at 0, undecided.
        assert_eq!(
            value(&text, r#"tcp_canary_connections_total{version="two"}"#),
            Some(0.0),
            "{text}"
        );
        assert_eq!(value(&text, "tcp_canary_agreement"), Some(0.0));
        assert!(!text.contains("duration_seconds"), "{text}");
        let look = |one: u64, two: u64| {
            let counts = vec![("one".to_owned(), one), ("two".to_owned(), two)];
            let verdict = sequential::judge(&expect, &counts, &Settings::default());
            m.look(&counts, &verdict);
            verdict
        };
        look(8000, 2000);
        let verdict = look(16_000, 2000);
        let text = m.render();
        assert_eq!(
            value(&text, r#"tcp_canary_connections_total{version="one"}"#),
            Some(16_000.0)
        );
        // The second interval held 8000 connections, all to `one`.
        assert_eq!(
            value(&text, r#"tcp_canary_share{version="one"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(&text, r#"tcp_canary_share_lower{version="two"}"#),
            Some(verdict.versions[1].interval.low)
        );
        assert_eq!(
            value(&text, "tcp_canary_agreement"),
            Some(outcome_value(verdict.outcome) as f64)
        );
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(value(&text, "tcp_canary_agreement"), Some(-1.0));
        assert_eq!(
            value(&text, "tcp_canary_evidence_connections"),
            Some(18_000.0)
        );
        assert_eq!(value(&text, "tcp_canary_observe_looks_total"), Some(2.0));
        // A gateway restart: the count since the start falls; the counter holds.
        look(40, 2010);
        let text = m.render();
        assert_eq!(
            value(&text, r#"tcp_canary_connections_total{version="one"}"#),
            Some(16_000.0)
        );
        assert_eq!(
            value(&text, r#"tcp_canary_share{version="two"}"#),
            Some(1.0)
        );
    }
}
