//! `observe`: the split of every connection the gateway opened over a window, judged
//! with the same rule as `verify` (Wilson at one look, the anytime-valid sequence when
//! looking every interval), with no load of our own. The counters are read at the
//! start and at each look (Envoy admin `/stats`, a Prometheus text endpoint, or a
//! Prometheus server's API over the window), mapped to versions, and every source
//! (gateway pod) added up.
//!
//! [`Observer`] does one look at a time (the binary decides when and prints);
//! [`observe`] runs a whole schedule and returns plain data.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::counters::{Snapshot, SourceDelta, VersionCounts, by_version, delta};
use super::exposition::{self, ExpositionError};
use super::fetch::{self, FetchError, Limits};
use super::input::MAX_STATS_BYTES;
use super::mapping::{MapError, VersionMap, map_version_label};
use super::prometheus::{self, CounterQuery, PrometheusError};
use super::stats::{self, StatsError};
use crate::expect::Expectation;
use crate::verdict::{self, Outcome, Settings, SplitVerdict, sequential};

/// What the counts stand for, said in every result.
pub const REAL_TRAFFIC_NOTE: &str = "these are every connection the gateway opened in the window, real users' included; the split assumes one routing decision per connection, as Envoy's tcp_proxy makes";

/// Where counters are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterSource {
    /// An Envoy admin address (`http://127.0.0.1:15000`): `/stats`, per cluster.
    EnvoyAdmin {
        /// The admin base URL.
        url: String,
    },
    /// A Prometheus text endpoint: Envoy's `/stats/prometheus` per cluster.
    EnvoyScrape {
        /// The scrape URL.
        url: String,
    },
    /// A Prometheus text endpoint: Istio's `istio_tcp_connections_opened_total` by
    /// `destination_version`, under exact label matchers.
    IstioScrape {
        /// The scrape URL (the gateway's `:15090/stats/prometheus`).
        url: String,
        /// `(label, value)` pairs a series must have (e.g. `reporter=source`).
        matchers: Vec<(String, String)>,
    },
    /// A Prometheus server's API, over the window so far.
    Prometheus {
        /// The server's base URL.
        url: String,
        /// What to ask it.
        query: CounterQuery,
    },
}

impl CounterSource {
    /// Its URL.
    pub fn url(&self) -> &str {
        match self {
            Self::EnvoyAdmin { url }
            | Self::EnvoyScrape { url }
            | Self::IstioScrape { url, .. }
            | Self::Prometheus { url, .. } => url,
        }
    }

    /// Whether its keys are version label values (not cluster names).
    fn keyed_by_version(&self) -> bool {
        match self {
            Self::IstioScrape { .. } => true,
            Self::Prometheus { query, .. } => matches!(query, CounterQuery::IstioVersions { .. }),
            Self::EnvoyAdmin { .. } | Self::EnvoyScrape { .. } => false,
        }
    }
}

/// Why observing failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// No source was given.
    #[error("no counter source: nothing to observe")]
    NoSource,
    /// A cluster source was given without any cluster to read.
    #[error("no cluster to read at {url}: map the listener's clusters to versions first")]
    NoClusters {
        /// The source.
        url: String,
    },
    /// A request failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// An admin `/stats` text was not usable.
    #[error(transparent)]
    Stats(#[from] StatsError),
    /// A Prometheus text was not usable.
    #[error(transparent)]
    Exposition(#[from] ExpositionError),
    /// The Prometheus API gave no counts.
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    /// A counted key has no version.
    #[error(transparent)]
    Map(#[from] MapError),
}

/// What to read and how to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The sources, added up (several gateway pods: one each).
    pub sources: Vec<CounterSource>,
    /// Cluster → version, for cluster-keyed sources.
    pub clusters: VersionMap,
    /// Version label value → version, for Istio's metric (`v1=one`).
    pub label_overrides: BTreeMap<String, String>,
    /// The bounds of each request.
    pub limits: Limits,
}

/// One look: the counts since the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Look {
    /// Since the start.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    /// Per version, all sources added up, with every reset.
    pub counts: VersionCounts,
    /// Per source, per key.
    pub sources: Vec<SourceDelta>,
    /// The `increase()` queries of Prometheus sources, to paste into Grafana.
    pub queries: Vec<String>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Reads the counters at the start, then looks whenever asked.
#[derive(Debug)]
pub struct Observer {
    sources: Sources,
    started: Instant,
    started_at: SystemTime,
    baseline: Vec<Option<Snapshot>>,
}

impl Observer {
    /// Reads every snapshot source once: the start of the window.
    pub async fn start(sources: Sources) -> Result<Self, ObserveError> {
        if sources.sources.is_empty() {
            return Err(ObserveError::NoSource);
        }
        let started_at = SystemTime::now();
        let started = Instant::now();
        let mut baseline = Vec::with_capacity(sources.sources.len());
        for s in &sources.sources {
            baseline.push(match s {
                CounterSource::Prometheus { .. } => None,
                _ => Some(read_snapshot(s, &sources).await?),
            });
        }
        Ok(Self {
            sources,
            started,
            started_at,
            baseline,
        })
    }

    /// The counts since the start, read now.
    pub async fn look(&self) -> Result<Look, ObserveError> {
        let elapsed = self.started.elapsed();
        let mut deltas = Vec::with_capacity(self.baseline.len());
        let mut queries = Vec::new();
        for (s, before) in self.sources.sources.iter().zip(&self.baseline) {
            match (s, before) {
                (CounterSource::Prometheus { url, query }, _) => {
                    let counts = prometheus::window_counts(
                        url,
                        query,
                        SystemTime::now(),
                        elapsed,
                        self.sources.limits.timeout,
                    )
                    .await?;
                    queries.push(counts.increase_query);
                    deltas.push(counts.delta);
                }
                (_, Some(before)) => {
                    let now = read_snapshot(s, &self.sources).await?;
                    deltas.push(delta(before, &now));
                }
                (_, None) => unreachable!("every snapshot source has a baseline"),
            }
        }
        let counts = self.by_version(&deltas)?;
        Ok(Look {
            elapsed,
            counts,
            sources: deltas,
            queries,
        })
    }

    /// The sources' deltas added up per version.
    pub fn by_version(&self, deltas: &[SourceDelta]) -> Result<VersionCounts, MapError> {
        let mut out = VersionCounts {
            sources: deltas.len(),
            ..VersionCounts::default()
        };
        for (s, d) in self.sources.sources.iter().zip(deltas) {
            let counts = if s.keyed_by_version() {
                by_version(std::slice::from_ref(d), |key| {
                    map_version_label(key, &self.sources.label_overrides).map(Some)
                })?
            } else {
                by_version(std::slice::from_ref(d), |key| {
                    Ok(self.sources.clusters.version_of(key).map(str::to_owned))
                })?
            };
            for (v, c) in counts.versions {
                out.versions.entry(v).or_default().add(&c);
            }
            out.resets.extend(counts.resets);
        }
        Ok(out)
    }

    /// When the window started (wall clock).
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }
}

fn clusters_of(sources: &Sources, url: &str) -> Result<Vec<String>, ObserveError> {
    let clusters: Vec<String> = sources
        .clusters
        .cluster_names()
        .map(str::to_owned)
        .collect();
    if clusters.is_empty() {
        return Err(ObserveError::NoClusters {
            url: url.to_owned(),
        });
    }
    Ok(clusters)
}

/// One snapshot of a text source.
async fn read_snapshot(
    source: &CounterSource,
    sources: &Sources,
) -> Result<Snapshot, ObserveError> {
    let limits = Limits {
        max_bytes: sources.limits.max_bytes.min(MAX_STATS_BYTES),
        ..sources.limits
    };
    match source {
        CounterSource::EnvoyAdmin { url } => {
            let clusters = clusters_of(sources, url)?;
            let names: Vec<&str> = clusters.iter().map(String::as_str).collect();
            let body = fetch::get(&fetch::join(url, &stats::stats_path(&names)), limits).await?;
            Ok(stats::parse(&body, &names, url)?)
        }
        CounterSource::EnvoyScrape { url } => {
            let clusters = clusters_of(sources, url)?;
            let names: Vec<&str> = clusters.iter().map(String::as_str).collect();
            let body = fetch::get(url, limits).await?;
            Ok(exposition::envoy_clusters(
                &String::from_utf8_lossy(&body),
                &names,
                url,
            )?)
        }
        CounterSource::IstioScrape { url, matchers } => {
            let body = fetch::get(url, limits).await?;
            Ok(exposition::istio_versions(
                &String::from_utf8_lossy(&body),
                matchers,
                url,
            )?)
        }
        CounterSource::Prometheus { .. } => {
            unreachable!("the Prometheus API is read over a window")
        }
    }
}

/// When to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Once, at the end of the window: judged with the Wilson rule.
    Once {
        /// The window.
        duration: Duration,
    },
    /// Every interval, judged each time with the anytime-valid sequence; stops when
    /// decided (if asked) or when the window ends.
    Every {
        /// Between looks.
        interval: Duration,
        /// The longest window.
        duration: Duration,
        /// Stop at the first PASS or FAIL.
        stop_when_decided: bool,
    },
}

/// Everything an observation needs.
#[derive(Debug, Clone)]
pub struct ObserveConfig {
    /// What to read.
    pub sources: Sources,
    /// The expected split.
    pub expect: Expectation,
    /// Confidence and tolerance.
    pub settings: Settings,
    /// The largest share of the gateway's connections that may fail to connect upstream
    /// (where a source shows `upstream_cx_connect_fail`), as verify's error budget.
    pub max_error_rate: f64,
    /// When to look.
    pub schedule: Schedule,
}

/// The gateway's failed upstream connects against the error budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayErrors {
    /// Connections opened (the split's total).
    pub opened: u64,
    /// Of them, failed to connect upstream; `None` when no source shows it (Istio's metric).
    pub connect_fail: Option<u64>,
    /// `connect_fail` over `opened` (0 when nothing was opened); `None` when not shown.
    pub rate: Option<f64>,
    /// The budget.
    pub max_rate: f64,
    /// FAIL when over budget, else PASS (PASS when not shown: nothing to judge).
    pub outcome: Outcome,
}

/// Judges the look's failed upstream connects against `max_rate`.
pub fn judge_errors(look: &Look, max_rate: f64) -> GatewayErrors {
    let opened = look.counts.total_opened();
    let connect_fail = look
        .counts
        .versions
        .values()
        .filter_map(|d| d.connect_fail)
        .reduce(u64::saturating_add);
    let rate = connect_fail.map(|f| {
        if opened == 0 {
            0.0
        } else {
            f as f64 / opened as f64
        }
    });
    GatewayErrors {
        opened,
        connect_fail,
        rate,
        max_rate,
        outcome: if rate.is_some_and(|r| r > max_rate) {
            Outcome::Fail
        } else {
            Outcome::Pass
        },
    }
}

/// One look in brief: what a running display or a metrics endpoint shows of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LookSummary {
    /// Seconds since the start.
    pub at_s: f64,
    /// Connections opened per version since the start.
    pub opened: BTreeMap<String, u64>,
    /// All of them.
    pub total: u64,
    /// Failed upstream connects since the start, where shown.
    pub connect_fail: Option<u64>,
    /// The split's verdict at this look.
    pub outcome: Outcome,
    /// Counter resets seen so far.
    pub resets: usize,
}

impl LookSummary {
    /// The summary of `look` judged `verdict`.
    pub fn of(look: &Look, verdict: &SplitVerdict) -> Self {
        Self {
            at_s: look.elapsed.as_secs_f64(),
            opened: look.counts.opened().into_iter().collect(),
            total: look.counts.total_opened(),
            connect_fail: judge_errors(look, 1.0).connect_fail,
            outcome: verdict.outcome,
            resets: look.counts.resets.len(),
        }
    }
}

/// The result of an observation: plain data for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObserveResult {
    /// `fixed` (one look, Wilson) or the sequential method's name.
    pub method: String,
    /// How many looks were taken.
    pub looks: usize,
    /// Every look in brief, oldest first.
    pub history: Vec<LookSummary>,
    /// The last look.
    pub last: Look,
    /// The verdict on the last look.
    pub verdict: SplitVerdict,
    /// The gateway's failed upstream connects against the budget.
    pub errors: GatewayErrors,
    /// Whether the stop signal ended the window early (the last look was taken then).
    pub interrupted: bool,
    /// FAIL when the errors or the split fail, else INCONCLUSIVE when the split is undecided, else PASS.
    pub outcome: Outcome,
    /// As verify's: 4 errors, 1 FAIL, 3 INCONCLUSIVE, 0 PASS.
    pub exit_code: i32,
    /// What the counts stand for, and any resets.
    pub notes: Vec<String>,
}

/// The verdict on a look: Wilson (`sequential == false`) or the anytime-valid sequence.
pub fn judge(
    look: &Look,
    expect: &Expectation,
    settings: &Settings,
    sequential_rule: bool,
) -> SplitVerdict {
    let counts = look.counts.opened();
    if sequential_rule {
        sequential::judge(expect, &counts, settings)
    } else {
        verdict::judge(expect, &counts, settings)
    }
}

/// The notes of a result: what the counts are, and every reset in plain words.
pub fn notes(look: &Look) -> Vec<String> {
    let mut notes = vec![REAL_TRAFFIC_NOTE.to_owned()];
    for r in &look.counts.resets {
        notes.push(format!(
            "{} {} of {} went down from {} to {} (the gateway restarted?): counted from 0 after it, so connections before the restart are missing",
            r.source, r.counter, r.key, r.before, r.after
        ));
    }
    notes
}

/// Observes on `config.schedule` from a window started by [`Observer::start`], calling
/// `on_look` after every look with its verdict. `stop` ends the window early: the last
/// look is taken at once and judged.
pub async fn observe_from(
    observer: Observer,
    config: &ObserveConfig,
    stop: &CancellationToken,
    mut on_look: impl FnMut(&Look, &SplitVerdict),
) -> Result<ObserveResult, ObserveError> {
    let (method, sequential_rule) = match config.schedule {
        Schedule::Once { .. } => ("fixed".to_owned(), false),
        Schedule::Every { .. } => (sequential::METHOD.to_owned(), true),
    };
    let mut history = Vec::new();
    loop {
        let wait = match config.schedule {
            Schedule::Once { duration } => duration.saturating_sub(observer.started.elapsed()),
            Schedule::Every {
                interval, duration, ..
            } => interval.min(duration.saturating_sub(observer.started.elapsed())),
        };
        let interrupted = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = stop.cancelled() => true,
        };
        let look = observer.look().await?;
        let verdict = judge(&look, &config.expect, &config.settings, sequential_rule);
        history.push(LookSummary::of(&look, &verdict));
        on_look(&look, &verdict);
        let done = interrupted
            || match config.schedule {
                Schedule::Once { .. } => true,
                Schedule::Every {
                    duration,
                    stop_when_decided,
                    ..
                } => {
                    look.elapsed >= duration
                        || (stop_when_decided && verdict.outcome != Outcome::Inconclusive)
                }
            };
        if done {
            let errors = judge_errors(&look, config.max_error_rate);
            let (outcome, exit_code) = outcome_of(&errors, &verdict);
            return Ok(ObserveResult {
                method,
                looks: history.len(),
                history,
                notes: notes(&look),
                last: look,
                verdict,
                errors,
                interrupted,
                outcome,
                exit_code,
            });
        }
    }
}

/// [`observe_from`] a window that starts now.
pub async fn observe(
    config: &ObserveConfig,
    stop: &CancellationToken,
    on_look: impl FnMut(&Look, &SplitVerdict),
) -> Result<ObserveResult, ObserveError> {
    let observer = Observer::start(config.sources.clone()).await?;
    observe_from(observer, config, stop, on_look).await
}

/// The outcome and exit code, as verify's: errors decide first, then the split.
fn outcome_of(errors: &GatewayErrors, split: &SplitVerdict) -> (Outcome, i32) {
    if errors.outcome == Outcome::Fail {
        return (Outcome::Fail, crate::exit::ERRORS);
    }
    let code = match split.outcome {
        Outcome::Pass => crate::exit::PASS,
        Outcome::Fail => crate::exit::FAIL,
        Outcome::Inconclusive => crate::exit::INCONCLUSIVE,
    };
    (split.outcome, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::counters::Delta;
    use crate::gateway::mapping::ClusterVersion;

    fn sources(list: Vec<CounterSource>) -> Sources {
        let clusters = VersionMap {
            clusters: [("c1", "one"), ("c2", "two")]
                .into_iter()
                .map(|(c, v)| {
                    (
                        c.to_owned(),
                        ClusterVersion {
                            cluster: c.to_owned(),
                            version: v.to_owned(),
                            from: "test".to_owned(),
                        },
                    )
                })
                .collect(),
        };
        Sources {
            sources: list,
            clusters,
            label_overrides: [("v1".to_owned(), "one".to_owned())].into(),
            limits: Limits {
                timeout: Duration::from_secs(5),
                max_bytes: 1 << 20,
            },
        }
    }

    fn source_delta(keys: &[(&str, u64)]) -> SourceDelta {
        SourceDelta {
            source: "s".into(),
            keys: keys
                .iter()
                .map(|&(k, n)| {
                    (
                        k.to_owned(),
                        Delta {
                            opened: n,
                            ..Delta::default()
                        },
                    )
                })
                .collect(),
            resets: vec![],
        }
    }

    #[test]
    fn cluster_and_label_sources_add_up_per_version() {
        let observer = Observer {
            sources: sources(vec![
                CounterSource::EnvoyAdmin { url: "a".into() },
                CounterSource::IstioScrape {
                    url: "b".into(),
                    matchers: vec![],
                },
            ]),
            started: Instant::now(),
            started_at: SystemTime::now(),
            baseline: vec![Some(Snapshot::default()), Some(Snapshot::default())],
        };
        let counts = observer
            .by_version(&[
                source_delta(&[("c1", 70), ("c2", 20), ("unrelated", 5)]),
                source_delta(&[("v1", 10), ("two", 5)]),
            ])
            .unwrap();
        assert_eq!(
            counts.opened(),
            [("one".to_owned(), 80), ("two".to_owned(), 25)]
        );
        let err = observer
            .by_version(&[source_delta(&[]), source_delta(&[("unknown", 1)])])
            .unwrap_err();
        assert_eq!(err, MapError::UnknownVersionLabel);
    }

    #[test]
    fn looks_are_judged_by_either_rule_and_resets_are_noted() {
        let mut counts = VersionCounts::default();
        counts.versions.insert(
            "one".into(),
            Delta {
                opened: 8000,
                ..Delta::default()
            },
        );
        counts.versions.insert(
            "two".into(),
            Delta {
                opened: 2000,
                ..Delta::default()
            },
        );
        counts.resets.push(crate::gateway::counters::Reset {
            source: "http://gw-a:15000".into(),
            key: "c1".into(),
            counter: "upstream_cx_total".into(),
            before: 900,
            after: 30,
        });
        let look = Look {
            elapsed: Duration::from_secs(60),
            counts,
            sources: vec![],
            queries: vec![],
        };
        let right: Expectation = "one=80,two=20".parse().unwrap();
        let wrong: Expectation = "one=90,two=10".parse().unwrap();
        let s = Settings::default();
        assert_eq!(judge(&look, &right, &s, false).outcome, Outcome::Pass);
        assert_eq!(judge(&look, &right, &s, true).outcome, Outcome::Pass);
        assert_eq!(judge(&look, &wrong, &s, false).outcome, Outcome::Fail);
        assert_eq!(judge(&look, &wrong, &s, true).outcome, Outcome::Fail);
        let n = notes(&look);
        assert_eq!(n[0], REAL_TRAFFIC_NOTE);
        assert!(
            n[1].starts_with("http://gw-a:15000 upstream_cx_total of c1 went down from 900 to 30"),
            "{}",
            n[1]
        );
    }

    #[test]
    fn failed_connects_decide_before_the_split() {
        let mut counts = VersionCounts::default();
        for (v, opened, failed) in [("one", 900, 5), ("two", 100, 10)] {
            counts.versions.insert(
                v.into(),
                Delta {
                    opened,
                    connect_fail: Some(failed),
                    ..Delta::default()
                },
            );
        }
        let look = Look {
            elapsed: Duration::from_secs(1),
            counts,
            sources: vec![],
            queries: vec![],
        };
        let e = judge_errors(&look, 0.01);
        assert_eq!((e.opened, e.connect_fail), (1000, Some(15)));
        assert_eq!(e.outcome, Outcome::Fail);
        let expect: Expectation = "one=90,two=10".parse().unwrap();
        let v = judge(&look, &expect, &Settings::default(), false);
        assert_eq!(outcome_of(&e, &v), (Outcome::Fail, crate::exit::ERRORS));
        let e = judge_errors(&look, 0.02);
        assert_eq!(e.outcome, Outcome::Pass);
        assert_eq!(outcome_of(&e, &v).0, v.outcome);
        assert_ne!(outcome_of(&e, &v).1, crate::exit::ERRORS);
        // Istio's metric shows no connect failures: nothing to judge.
        let mut plain = look.clone();
        for d in plain.counts.versions.values_mut() {
            d.connect_fail = None;
        }
        let e = judge_errors(&plain, 0.0);
        assert_eq!(
            (e.connect_fail, e.rate, e.outcome),
            (None, None, Outcome::Pass)
        );
    }

    #[tokio::test]
    async fn an_admin_that_does_not_answer_stops_the_start() {
        let url = format!("http://{}", test_support::closed_port());
        let err = Observer::start(sources(vec![CounterSource::EnvoyAdmin {
            url: url.clone(),
        }]))
        .await
        .unwrap_err();
        assert!(
            matches!(err, ObserveError::Fetch(FetchError::Unreachable { .. })),
            "{err}"
        );
        assert!(matches!(
            Observer::start(sources(vec![])).await,
            Err(ObserveError::NoSource)
        ));
    }
}
