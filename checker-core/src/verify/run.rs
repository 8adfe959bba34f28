//! The run: resolve the target, plan, sample into a tally, read this machine's
//! limits, and judge the tally once into a [`Verification`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{VerifyConfig, VerifyError};
use super::looks::{self, Monitor};
use super::settle;
use super::verification::{Times, Verification};
use crate::expect::Expectation;
use crate::gateway::view::{self, CheckerConnections, GatewayView, Intent, ProgrammedLayer};
use crate::observer::{ObserverError, RunObserver, Unobserved};
use crate::probe::Probe;
use crate::sampler::{self, Sample, SamplerConfig, Sink, StopReason, Timeouts};
use crate::sync::lock;
use crate::tally::{Tally, Windowing};
use crate::target::{self};
use crate::verdict::compare::Method;
use crate::verdict::compare_plan::{self, Assumptions, MetricPlan};
use crate::verdict::local::LocalReadings;
use crate::verdict::sequential::DEFAULT_BATCH;
use crate::verdict::{self, Plan};

/// How often the observer hears of the progress.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// The sink of a run: records every sample into the tally and tells the observer, on
/// the sampling task itself (a short critical section, no task wake-up).
struct Collector {
    tally: Mutex<Tally>,
    observer: Arc<dyn RunObserver>,
    /// The observer's first error (e.g. the samples file cannot be written).
    observer_error: Mutex<Option<ObserverError>>,
    /// Cancelled when the observer fails, to stop every sampling task.
    sampling: CancellationToken,
    done: AtomicU64,
    errors: AtomicU64,
    /// Samples that connected and finished without a version in the tally (failed after
    /// connecting, or finished after the sequential verdict): for the gateway's cross-check.
    opened_not_judged: AtomicU64,
    /// Samples abandoned in flight when sampling stopped.
    abandoned: AtomicU64,
    /// Sequential sampling: looks after every batch, stops sampling once decided.
    sequential: Option<Monitor>,
}

impl Collector {
    /// Records `sample` in the tally; false when sampling should stop: the sequential rule
    /// decided (on this sample, or before it, in which case it is not recorded).
    fn record(&self, sample: &Sample) -> Option<bool> {
        let mut tally = lock(&self.tally);
        let Some(monitor) = &self.sequential else {
            tally.record(sample);
            return Some(true);
        };
        if monitor.is_decided() {
            tally.left_out(sample.id, sample.offset);
            return None;
        }
        tally.record(sample);
        Some(monitor.look(&tally))
    }
}

impl Sink for Collector {
    fn accept(&self, sample: Sample) -> bool {
        let recorded = self.record(&sample);
        if sample.connect_us.is_some() && (recorded.is_none() || sample.result.is_err()) {
            self.opened_not_judged.fetch_add(1, Ordering::Relaxed);
        }
        let Some(more) = recorded else {
            return false;
        };
        if !more {
            self.sampling.cancel();
        }
        self.done.fetch_add(1, Ordering::Relaxed);
        if sample.result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = self.observer.sample(&sample) {
            lock(&self.observer_error).get_or_insert(e);
            self.sampling.cancel();
            return false;
        }
        more
    }

    fn abandoned(&self, id: u64, offset: Duration) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
        lock(&self.tally).left_out(id, offset);
    }
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// TCP sockets in use plus those in TIME_WAIT, from `/proc/net/sockstat` and `sockstat6`.
fn tcp_sockets() -> Option<u64> {
    let field = |text: &str, line: &str, name: &str| -> Option<u64> {
        let fields: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with(line))?
            .split_whitespace()
            .collect();
        let i = fields.iter().position(|f| *f == name)?;
        fields.get(i + 1)?.parse().ok()
    };
    let v4 = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let mut n = field(&v4, "TCP:", "inuse")? + field(&v4, "TCP:", "tw").unwrap_or(0);
    if let Ok(v6) = std::fs::read_to_string("/proc/net/sockstat6") {
        n += field(&v6, "TCP6:", "inuse").unwrap_or(0);
    }
    Some(n)
}

/// Reads the conntrack table, the local port range and TCP sockets (Linux `/proc`;
/// whatever is missing stays `None`).
pub fn read_local() -> LocalReadings {
    let local_ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next()) {
                (Some(Ok(low)), Some(Ok(high))) if high >= low => Some(high - low + 1),
                _ => None,
            }
        });
    LocalReadings {
        conntrack_count: read_number("/proc/sys/net/netfilter/nf_conntrack_count"),
        conntrack_max: read_number("/proc/sys/net/netfilter/nf_conntrack_max"),
        local_ports,
        tcp_sockets: tcp_sockets(),
    }
}

/// The running counts for the observer: every expected version in order (zero until it
/// answers), then the unexpected ones that answered.
fn progress_counts(expect: &Expectation, answered: Vec<(String, u64)>) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = expect
        .versions()
        .iter()
        .map(|v| (v.name.clone(), 0))
        .collect();
    for (name, n) in answered {
        match counts.iter_mut().find(|(known, _)| *known == name) {
            Some(entry) => entry.1 = n,
            None => counts.push((name, n)),
        }
    }
    counts
}

/// Keeps the highest counts of two readings.
fn peak(a: LocalReadings, b: LocalReadings) -> LocalReadings {
    LocalReadings {
        conntrack_count: a.conntrack_count.max(b.conntrack_count),
        conntrack_max: b.conntrack_max.or(a.conntrack_max),
        local_ports: b.local_ports.or(a.local_ports),
        tcp_sockets: a.tcp_sockets.max(b.tcp_sockets),
    }
}

/// A verification ready to sample: the target resolved, the count planned and, with the
/// gateway's view, what each gateway was told.
#[derive(Debug)]
pub struct Prepared {
    config: VerifyConfig,
    addrs: Vec<SocketAddr>,
    probe: Probe,
    plan: Option<Plan>,
    /// Sequential mode: the cap on samples.
    max_samples: Option<u64>,
    /// What a fixed count can decide of the comparison.
    health_plan: Vec<MetricPlan>,
    /// What each gateway was told, read before sampling.
    programmed: Vec<ProgrammedLayer>,
}

/// Resolves the target, plans the count when none is given and reads what each gateway
/// was told (with the gateway's view).
pub async fn prepare(config: &VerifyConfig) -> Result<Prepared, VerifyError> {
    config.validate()?;
    let probe = Probe::new(&config.probe, &config.target)?;
    let addrs = target::resolve(&config.target).await?;
    let programmed = match &config.gateway {
        Some(gateway) => view::read_programmed(gateway, &config.expect).await?,
        None => Vec::new(),
    };
    let plan = match config.samples {
        None => Some(verdict::plan(&config.expect, &config.settings)),
        Some(_) => None,
    };
    let max_samples = config.sequential.map(|s| {
        s.max_samples.unwrap_or_else(|| {
            looks::default_max_samples(
                &config.expect,
                &config.settings,
                plan.as_ref(),
                config.health.compare.as_ref(),
            )
        })
    });
    let health_plan = health_plan(config, plan.as_ref());
    Ok(Prepared {
        config: config.clone(),
        addrs,
        probe,
        plan,
        max_samples,
        health_plan,
        programmed,
    })
}

/// What a fixed count can decide of the comparison (`--samples N`, or the planned count
/// with `--no-sequential`), metric by metric, for the plan line; empty without
/// `--compare`, for a sequential run (its cap says it) and for a duration (no count).
fn health_plan(config: &VerifyConfig, plan: Option<&Plan>) -> Vec<MetricPlan> {
    let (Some(rule), None) = (&config.health.compare, config.sequential) else {
        return Vec::new();
    };
    let samples = match (config.samples, config.duration) {
        (Some(n), _) => n,
        (None, None) => match plan {
            Some(p) => p.samples,
            None => return Vec::new(),
        },
        (None, Some(_)) => return Vec::new(),
    };
    let share = |name: &str| config.expect.share_of(name).unwrap_or(0.0);
    compare_plan::plan(
        rule,
        config.settings.confidence,
        Method::Fixed,
        samples,
        (share(&rule.canary), share(&rule.stable)),
        Assumptions::reference(),
    )
}

/// Runs a whole verification; `stop` ends sampling early and the result covers what was taken.
pub async fn verify(
    config: &VerifyConfig,
    stop: CancellationToken,
) -> Result<Verification, VerifyError> {
    prepare(config).await?.run(stop).await
}

/// [`verify`] with `observer` following the sampling (a samples file, a progress bar).
pub async fn verify_observed(
    config: &VerifyConfig,
    stop: CancellationToken,
    observer: Arc<dyn RunObserver>,
) -> Result<Verification, VerifyError> {
    prepare(config).await?.run_observed(stop, observer).await
}

impl Prepared {
    /// The plan, when no sample count was given.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// Sequential mode: the most samples the run will take.
    pub fn max_samples(&self) -> Option<u64> {
        self.max_samples
    }

    /// What the fixed count can decide of the comparison, per metric (empty without
    /// `--compare`, in sequential mode and with a duration).
    pub fn health_plan(&self) -> &[MetricPlan] {
        &self.health_plan
    }

    /// With the gateway's view: the intent, and what each gateway was told before
    /// sampling (and before `--settle` waits for it).
    pub fn gateway_layers(&self) -> Option<(Intent, &[ProgrammedLayer])> {
        let gateway = self.config.gateway.as_ref()?;
        Some((
            Intent::of(&self.config.expect, gateway.derivation.as_ref()),
            &self.programmed,
        ))
    }

    /// The number of samples the run will take (at most, in sequential mode), when bounded by count.
    pub fn sample_count(&self) -> Option<u64> {
        if self.max_samples.is_some() {
            return self.max_samples;
        }
        match (self.config.samples, self.config.duration) {
            (Some(n), _) => Some(n),
            (None, None) => self.plan.as_ref().map(|p| p.samples),
            (None, Some(_)) => None,
        }
    }

    /// Samples until the count, the duration or `stop`, then judges what was collected.
    pub async fn run(self, stop: CancellationToken) -> Result<Verification, VerifyError> {
        self.run_observed(stop, Arc::new(Unobserved)).await
    }

    /// [`Prepared::run`], telling `observer` about the sampling as it goes.
    pub async fn run_observed(
        self,
        stop: CancellationToken,
        observer: Arc<dyn RunObserver>,
    ) -> Result<Verification, VerifyError> {
        let gateway = self.config.gateway.as_ref();
        let by_admin = gateway.filter(|g| !g.admins.is_empty());
        let mut programmed = self.programmed.clone();
        let mut programmed_settle = None;
        let settled = match (self.config.settle, by_admin) {
            (Some(timeout), Some(gateway)) => {
                let (waited, layers) =
                    view::settle_programmed(gateway, &self.config.expect, timeout, &stop).await?;
                programmed = layers;
                programmed_settle = Some(waited);
                None
            }
            (Some(timeout), None) => {
                Some(settle::settle(&self.config, &self.addrs, &self.probe, timeout, &stop).await)
            }
            (None, _) => None,
        };
        let counters = match gateway {
            Some(gateway) => view::start_counters(gateway, &programmed).await?,
            None => None,
        };
        let count = self.sample_count();
        // Sequential runs usually stop well before the cap: windows follow the fixed plan.
        let windowed = match (&self.plan, self.max_samples) {
            (Some(plan), Some(_)) => Some(plan.samples),
            _ => count,
        };
        let windowing = match (windowed, self.config.duration) {
            (Some(total), _) => Windowing::ById { total },
            (None, Some(duration)) => Windowing::ByTime { duration },
            (None, None) => Windowing::ById { total: u64::MAX },
        };
        let sampler_config = SamplerConfig {
            addrs: self.addrs.clone(),
            samples: count,
            duration: self.config.duration,
            concurrency: self.config.concurrency,
            rate: self.config.rate,
            timeouts: Timeouts {
                connect: self.config.connect_timeout,
                reply: self.config.reply_timeout,
            },
            reset_on_close: self.config.reset_on_close,
            probe: self.probe.clone(),
        };
        let started_at = SystemTime::now();
        let start = Instant::now();
        let sampling = stop.child_token();
        let collector = Arc::new(Collector {
            tally: Mutex::new(Tally::new(windowing)),
            observer: Arc::clone(&observer),
            observer_error: Mutex::new(None),
            sampling: sampling.clone(),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            opened_not_judged: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            sequential: self.max_samples.map(|max| {
                let batch = self.config.sequential.map_or(DEFAULT_BATCH, |s| s.batch);
                Monitor::new(self.config.expect.clone(), self.config.settings, batch, max)
                    .with_compare(self.config.health.compare.clone())
                    .with_error_budget(self.config.max_error_rate)
            }),
        });
        let mut sampler = tokio::spawn(sampler::run(
            sampler_config,
            sampling.clone(),
            Arc::clone(&collector),
        ));
        observer.started(count, self.config.duration);
        let mut tick = tokio::time::interval(PROGRESS_TICK);
        let mut readings = read_local();
        let finished = loop {
            tokio::select! {
                finished = &mut sampler => break finished,
                _ = tick.tick() => {
                    readings = peak(readings, read_local());
                    if observer.wants_progress() {
                        let answered = lock(&collector.tally).counts();
                        let counts = progress_counts(&self.config.expect, answered);
                        observer.progress(
                            collector.done.load(Ordering::Relaxed),
                            collector.errors.load(Ordering::Relaxed),
                            &counts,
                        );
                    }
                }
            }
        };
        let readings = peak(readings, read_local());
        // The gateways' counters at once, before anything else passes them.
        let looked = match &counters {
            Some(observer) => Some(observer.look().await),
            None => None,
        };
        let mut stop_reason = finished.map_err(|e| VerifyError::Sampler(e.to_string()))?;
        let finished = observer.finished();
        let tally = std::mem::replace(&mut *lock(&collector.tally), Tally::new(windowing));
        if let Some(e) = lock(&collector.observer_error).take().or(finished.err()) {
            return Err(VerifyError::Observer(e));
        }
        let elapsed = start.elapsed();
        let finished_at = SystemTime::now();
        let decided = collector
            .sequential
            .as_ref()
            .is_some_and(Monitor::is_decided);
        if decided && !stop.is_cancelled() {
            stop_reason = StopReason::Decided;
        }
        // The gateway's view, whole before the judgement: what each gateway was told is
        // judged with the rest, once.
        let gateway_view = gateway.map(|gateway| {
            let checker = CheckerConnections {
                judged: tally.counts(),
                opened_not_judged: collector.opened_not_judged.load(Ordering::Relaxed),
                in_flight: collector.abandoned.load(Ordering::Relaxed),
            };
            let (counters, counters_error) = match looked {
                Some(Ok(look)) => (Some(view::counters_of(&look, &checker)), None),
                Some(Err(e)) => (None, Some(e.to_string())),
                None => (None, None),
            };
            GatewayView {
                port: gateway.port,
                intent: Intent::of(&self.config.expect, gateway.derivation.as_ref()),
                programmed,
                settle: programmed_settle,
                counters,
                counters_error,
            }
        });
        let mut verification = Verification::build_with_gateway(
            &self.config,
            &self.addrs,
            self.plan,
            tally,
            stop_reason,
            readings,
            Times {
                started_at: crate::clock::rfc3339_micros(started_at),
                finished_at: crate::clock::rfc3339_micros(finished_at),
                elapsed_s: elapsed.as_secs_f64(),
            },
            gateway_view,
        );
        verification.sequential = collector
            .sequential
            .as_ref()
            .map(|monitor| monitor.summary(verification.judgement.split.total));
        verification.settle = settled;
        Ok(verification)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VerifyConfig {
        VerifyConfig::new("127.0.0.1:1", "one=90,two=10".parse().unwrap())
    }

    #[test]
    fn the_progress_shows_every_expected_version_then_the_unexpected() {
        let expect: Expectation = "two=10,one=90".parse().unwrap();
        let shown = progress_counts(&expect, vec![("one".into(), 5), ("three".into(), 1)]);
        let want: Vec<(String, u64)> =
            vec![("two".into(), 0), ("one".into(), 5), ("three".into(), 1)];
        assert_eq!(shown, want);
    }

    #[test]
    fn a_fixed_count_plans_what_it_can_decide_of_the_comparison() {
        let mut c = VerifyConfig::new("127.0.0.1:1", "one=50,two=50".parse().unwrap());
        c.health.compare =
            Some(crate::verdict::compare::CompareRule::parse_pair("two=one").unwrap());
        c.samples = Some(2000);
        let plans = health_plan(&c, None);
        let names: Vec<&str> = plans.iter().map(|p| p.metric.as_str()).collect();
        assert_eq!(names, ["error_rate", "p99_connect", "p99_reply"]);
        assert!(
            plans
                .iter()
                .all(|p| p.samples == 2000 && !p.identical_passes)
        );
        // A duration has no count, a sequential run its cap: nothing to plan.
        c.samples = None;
        c.duration = Some(std::time::Duration::from_secs(1));
        assert!(health_plan(&c, None).is_empty());
        c.duration = None;
        c.sequential = Some(super::super::SequentialConfig::default());
        let plan = verdict::plan(&c.expect, &c.settings);
        assert!(health_plan(&c, Some(&plan)).is_empty());
        // The planned count of a fixed run (--no-sequential).
        c.sequential = None;
        assert_eq!(health_plan(&c, Some(&plan))[0].samples, plan.samples);
    }

    #[test]
    fn the_verify_future_can_be_spawned() {
        fn is_send<T: Send>(_: &T) {}
        let c = config();
        let future = verify(&c, CancellationToken::new());
        is_send(&future);
    }
}
