//! `verify` as a library call: resolve the target, plan, sample, tally, judge.
//!
//! The CLI and the rehearsal both call [`verify`] (or [`prepare`] then [`Prepared::run`]
//! to show the plan before sampling starts). Nothing here prints except the optional
//! progress bar on a terminal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::exit;
use crate::expect::Expectation;
use crate::report::progress::Progress;
use crate::report::samples::SamplesWriter;
use crate::sampler::{self, ErrorClass, Sample, SamplerConfig, Sink, StopReason, Timeouts};
use crate::sync::lock;
use crate::tally::MalformedReply;
use crate::tally::{Tally, Window, Windowing};
use crate::target::{self, TargetError};
use crate::verdict::local::{self, LocalCause, LocalReadings};
use crate::verdict::{self, Drift, Outcome, Plan, Settings, SettingsError, SplitVerdict};

/// Default number of samples in flight.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Default share of failed samples above which errors alone fail the check.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default reply timeout.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The lowest `--rate`: one connection per hour.
pub const MIN_RATE: f64 = 1.0 / 3600.0;
/// How often the progress bar is refreshed.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// The sink of a run: records every sample into the tally and the samples file,
/// on the sampling task itself (a short critical section, no task wake-up).
struct Collector {
    tally: Mutex<Tally>,
    has_out: bool,
    samples_out: Mutex<Option<SamplesWriter>>,
    write_error: Mutex<Option<std::io::Error>>,
    /// Cancelled when the samples file fails, to stop every sampling task.
    sampling: CancellationToken,
    done: AtomicU64,
    errors: AtomicU64,
}

impl Sink for Collector {
    fn accept(&self, sample: Sample) -> bool {
        self.done.fetch_add(1, Ordering::Relaxed);
        if sample.result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.tally).record(&sample);
        if self.has_out
            && let Some(out) = lock(&self.samples_out).as_mut()
            && let Err(e) = out.write(&sample)
        {
            lock(&self.write_error).get_or_insert(e);
            self.sampling.cancel();
            return false;
        }
        true
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

/// The counts shown by the progress bar: every expected version in order (zero until
/// it answers), then the unexpected ones that answered.
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

/// Everything a verification needs.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyConfig {
    /// `HOST:PORT`: IPv4, `[IPv6]:PORT` or a name (every address it resolves to is used).
    pub target: String,
    /// The expected split.
    pub expect: Expectation,
    /// How many samples; `None` = the planned count (or unlimited with a duration).
    pub samples: Option<u64>,
    /// Stop starting samples after this long.
    pub duration: Option<Duration>,
    /// Most samples in flight at once.
    pub concurrency: usize,
    /// Open-model pacing: start this many samples per second on a fixed schedule.
    pub rate: Option<f64>,
    /// Confidence and tolerance of the verdict.
    pub settings: Settings,
    /// Share of failed samples (0..=1) above which errors alone fail the check.
    pub max_error_rate: f64,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the reply after sending the probe.
    pub reply_timeout: Duration,
    /// Write one JSON line per sample to this file.
    pub samples_out: Option<PathBuf>,
    /// Show a progress bar (only drawn on a terminal, and only after the first second).
    pub progress: bool,
    /// Close every sample's connection with a reset (the rehearsal's loopback runs; see
    /// [`SamplerConfig::reset_on_close`]); false for real targets.
    pub reset_on_close: bool,
}

impl VerifyConfig {
    /// A configuration with every default: planned count, 32 in flight, 99% / 5 points, 1% errors.
    pub fn new(target: impl Into<String>, expect: Expectation) -> Self {
        Self {
            target: target.into(),
            expect,
            samples: None,
            duration: None,
            concurrency: DEFAULT_CONCURRENCY,
            rate: None,
            settings: Settings::default(),
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            samples_out: None,
            progress: false,
            reset_on_close: false,
        }
    }

    /// Checks every value that the types do not already guarantee.
    pub fn validate(&self) -> Result<(), VerifyError> {
        let bad = |what: &str| Err(VerifyError::Invalid(what.to_owned()));
        if self.samples == Some(0) {
            return bad("--samples must be at least 1");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return bad("--duration must be longer than zero");
        }
        if self.concurrency == 0 {
            return bad("--concurrency must be at least 1");
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r >= MIN_RATE)) {
            return bad("--rate must be at least one connection per hour (0.000278 per second)");
        }
        // The rule is Settings::validate's; only the words are the command line's.
        match self.settings.validate() {
            Ok(()) => {}
            Err(SettingsError::Confidence(_)) => {
                return bad("--confidence must be between 0% and 100% (exclusive)");
            }
            Err(SettingsError::Tolerance(_)) => {
                return bad("--tolerance must be more than 0 and at most 50 percentage points");
            }
        }
        if !(self.max_error_rate.is_finite() && (0.0..=1.0).contains(&self.max_error_rate)) {
            return bad("--max-error-rate must be between 0% and 100%");
        }
        if self.connect_timeout.is_zero() || self.reply_timeout.is_zero() {
            return bad("timeouts must be longer than zero");
        }
        target::check_syntax(&self.target)?;
        Ok(())
    }
}

/// Why a verification could not run (a finished run that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A configuration value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The target is malformed or cannot be resolved.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The samples file cannot be created or written.
    #[error("cannot write the samples file {path}: {source}")]
    SamplesOut {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The sampler task died unexpectedly.
    #[error("the sampler stopped unexpectedly: {0}")]
    Sampler(String),
}

impl VerifyError {
    /// The exit code the CLI uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyError::Target(TargetError::Resolve { .. } | TargetError::NoAddress(_)) => {
                exit::ERRORS
            }
            VerifyError::Sampler(_) => exit::ERRORS,
            _ => exit::USAGE,
        }
    }
}

/// A verification ready to sample: the target resolved and the count planned.
#[derive(Debug)]
pub struct Prepared {
    config: VerifyConfig,
    addrs: Vec<SocketAddr>,
    plan: Option<Plan>,
    samples_out: Option<SamplesWriter>,
}

/// Resolves the target, plans the count when none is given and opens the samples file.
pub async fn prepare(config: &VerifyConfig) -> Result<Prepared, VerifyError> {
    config.validate()?;
    let addrs = target::resolve(&config.target).await?;
    let plan = match config.samples {
        None => Some(verdict::plan(&config.expect, &config.settings)),
        Some(_) => None,
    };
    let samples_out = match &config.samples_out {
        Some(path) => {
            Some(
                SamplesWriter::create(path).map_err(|source| VerifyError::SamplesOut {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    Ok(Prepared {
        config: config.clone(),
        addrs,
        plan,
        samples_out,
    })
}

/// Runs a whole verification; `stop` ends sampling early and the report covers what was taken.
pub async fn verify(
    config: &VerifyConfig,
    stop: CancellationToken,
) -> Result<VerifyReport, VerifyError> {
    prepare(config).await?.run(stop).await
}

impl Prepared {
    /// The plan, when no sample count was given.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// The number of samples the run will take, when bounded by count.
    pub fn sample_count(&self) -> Option<u64> {
        match (self.config.samples, self.config.duration) {
            (Some(n), _) => Some(n),
            (None, None) => self.plan.as_ref().map(|p| p.samples),
            (None, Some(_)) => None,
        }
    }

    /// Samples until the count, the duration or `stop`, then judges what was collected.
    pub async fn run(mut self, stop: CancellationToken) -> Result<VerifyReport, VerifyError> {
        let count = self.sample_count();
        let windowing = match (count, self.config.duration) {
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
        };
        let started_at = SystemTime::now();
        let start = Instant::now();
        let sampling = stop.child_token();
        let collector = Arc::new(Collector {
            tally: Mutex::new(Tally::new(windowing)),
            has_out: self.samples_out.is_some(),
            samples_out: Mutex::new(self.samples_out.take()),
            write_error: Mutex::new(None),
            sampling: sampling.clone(),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let mut sampler = tokio::spawn(sampler::run(
            sampler_config,
            sampling.clone(),
            Arc::clone(&collector),
        ));
        let progress = Progress::new(self.config.progress, count, self.config.duration);
        let mut tick = tokio::time::interval(PROGRESS_TICK);
        let mut readings = read_local();
        let finished = loop {
            tokio::select! {
                finished = &mut sampler => break finished,
                _ = tick.tick() => {
                    readings = peak(readings, read_local());
                    if progress.is_drawn() {
                        let answered = lock(&collector.tally).counts();
                        let counts = progress_counts(&self.config.expect, answered);
                        progress.update(
                            collector.done.load(Ordering::Relaxed),
                            collector.errors.load(Ordering::Relaxed),
                            &counts,
                        );
                    }
                }
            }
        };
        let readings = peak(readings, read_local());
        let stop_reason = finished.map_err(|e| VerifyError::Sampler(e.to_string()))?;
        progress.finish();
        let tally = std::mem::replace(&mut *lock(&collector.tally), Tally::new(windowing));
        let mut write_error = lock(&collector.write_error).take();
        if let Some(out) = lock(&collector.samples_out).take()
            && let Err(e) = out.finish()
        {
            write_error.get_or_insert(e);
        }
        if let (Some(source), Some(path)) = (write_error, &self.config.samples_out) {
            return Err(VerifyError::SamplesOut {
                path: path.clone(),
                source,
            });
        }
        let elapsed = start.elapsed();
        let finished_at = SystemTime::now();
        Ok(VerifyReport::build(
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
        ))
    }
}

/// The inputs of a run, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    /// The target as given.
    pub target: String,
    /// Every address it resolved to.
    pub addresses: Vec<String>,
    /// The expected versions.
    pub expect: Vec<ExpectedInput>,
    /// The sample count asked for (`None` = planned or duration-bound).
    pub samples: Option<u64>,
    /// The duration asked for, in seconds.
    pub duration_s: Option<f64>,
    /// Most samples in flight.
    pub concurrency: usize,
    /// Open-model rate, samples per second.
    pub rate: Option<f64>,
    /// Family-wide confidence.
    pub confidence: f64,
    /// Tolerance, as a fraction.
    pub tolerance: f64,
    /// Error budget, as a fraction.
    pub max_error_rate: f64,
    /// Connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Reply timeout, milliseconds.
    pub reply_timeout_ms: u64,
}

/// One expected version as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedInput {
    /// The version name.
    pub name: String,
    /// The weight as given.
    pub weight: f64,
    /// The weight over the total.
    pub share: f64,
}

/// Percentiles of one latency histogram, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest value.
    pub max: u64,
    /// Mean, rounded to whole microseconds like the rest.
    pub mean: u64,
}

impl LatencySummary {
    /// The summary of no values: all zero.
    pub const EMPTY: Self = Self {
        count: 0,
        p50: 0,
        p90: 0,
        p99: 0,
        max: 0,
        mean: 0,
    };

    /// Summarises `h` (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::EMPTY;
        }
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            // A mean of microseconds clamped to at most one hour: the cast cannot overflow.
            mean: h.mean().round() as u64,
        }
    }
}

/// Connect and reply latency of one version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VersionLatency {
    /// Time to establish the connection.
    pub connect: LatencySummary,
    /// Time from sending the probe to the complete reply.
    pub reply: LatencySummary,
}

/// The errors of a run and whether they alone fail it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorSummary {
    /// Failed samples.
    pub total: u64,
    /// Failed over finished samples (0 when none finished).
    pub rate: f64,
    /// The budget (`--max-error-rate`).
    pub max_rate: f64,
    /// Failed samples per class, every class present.
    pub by_class: BTreeMap<ErrorClass, u64>,
    /// Every finished sample failed: the target is unreachable.
    pub unreachable: bool,
    /// FAIL when unreachable or over budget, else PASS.
    pub outcome: Outcome,
    /// The first few distinct malformed replies (escaped, cut), with counts.
    pub malformed_replies: Vec<MalformedReply>,
    /// The conntrack table, port range and sockets seen on this machine during the run.
    pub local_readings: LocalReadings,
    /// A likely cause of the errors on this machine rather than at the target.
    pub local_cause: Option<LocalCause>,
}

/// How well the open-model schedule was kept (with `--rate`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScheduleSummary {
    /// The rate asked for, samples per second.
    pub rate: f64,
    /// Samples that started more than 10 ms after their scheduled time.
    pub late: u64,
    /// Lag between the scheduled and the actual start, microseconds.
    pub lag_us: LatencySummary,
}

/// Start, end and elapsed time of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Times {
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    pub finished_at: String,
    /// Seconds from start to end.
    pub elapsed_s: f64,
}

/// The result of a verification: inputs, plan, counts, verdicts, errors, latency, time.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// What was asked.
    pub inputs: Inputs,
    /// The plan, when no count was given.
    pub plan: Option<Plan>,
    /// When it ran.
    pub times: Times,
    /// Why sampling stopped.
    pub stop_reason: StopReason,
    /// Samples finished (attributed plus failed).
    pub attempted: u64,
    /// Samples attributed to a version.
    pub attributed: u64,
    /// The verdict on the split.
    pub split: SplitVerdict,
    /// Latency per version that answered.
    pub latency: BTreeMap<String, VersionLatency>,
    /// Errors by class and the error budget's verdict.
    pub errors: ErrorSummary,
    /// Schedule keeping with `--rate`.
    pub schedule: Option<ScheduleSummary>,
    /// Counts per consecutive window, oldest first.
    pub windows: Vec<Window>,
    /// Whether the split moved between windows (information; noted in the verdict line).
    pub drift: Drift,
    /// The raw tally (not serialised).
    #[serde(skip)]
    pub tally: Tally,
}

/// A sample starting later than this after its scheduled time counts as late (tokio timers tick per millisecond).
const LATE_US: u64 = 10_000;

impl VerifyReport {
    fn build(
        config: &VerifyConfig,
        addrs: &[SocketAddr],
        plan: Option<Plan>,
        tally: Tally,
        stop_reason: StopReason,
        readings: LocalReadings,
        times: Times,
    ) -> Self {
        let split = verdict::judge(&config.expect, &tally.counts(), &config.settings);
        let window_counts: Vec<Vec<(String, u64)>> = tally
            .windows()
            .iter()
            .map(|w| w.counts.iter().map(|(n, c)| (n.clone(), *c)).collect())
            .collect();
        let drift = verdict::drift(&window_counts, &config.settings);
        let attempted = tally.attempted();
        let attributed = tally.attributed();
        let total_errors = tally.errors();
        let rate = if attempted == 0 {
            0.0
        } else {
            total_errors as f64 / attempted as f64
        };
        let unreachable = attempted > 0 && attributed == 0;
        let errors = ErrorSummary {
            total: total_errors,
            rate,
            max_rate: config.max_error_rate,
            by_class: ErrorClass::ALL
                .iter()
                .map(|&c| (c, tally.errors_of(c)))
                .collect(),
            unreachable,
            outcome: if unreachable || rate > config.max_error_rate {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            malformed_replies: tally.malformed().to_vec(),
            local_readings: readings,
            local_cause: local::likely_cause(
                &readings,
                total_errors,
                tally.errors_of(ErrorClass::LocalAddressExhausted),
            ),
        };
        let latency = tally
            .versions()
            .iter()
            .map(|(name, v)| {
                let l = VersionLatency {
                    connect: LatencySummary::of(&v.connect_us),
                    reply: LatencySummary::of(&v.reply_us),
                };
                (name.clone(), l)
            })
            .collect();
        let schedule = config.rate.map(|rate| {
            let lag = tally.lag_us();
            ScheduleSummary {
                rate,
                late: lag.map_or(0, |h| h.count_between(LATE_US + 1, u64::MAX)),
                lag_us: lag.map_or(LatencySummary::EMPTY, LatencySummary::of),
            }
        });
        let inputs = Inputs {
            target: config.target.clone(),
            addresses: addrs.iter().map(ToString::to_string).collect(),
            expect: config
                .expect
                .versions()
                .iter()
                .map(|v| ExpectedInput {
                    name: v.name.clone(),
                    weight: v.weight,
                    share: v.share,
                })
                .collect(),
            samples: config.samples,
            duration_s: config.duration.map(|d| d.as_secs_f64()),
            concurrency: config.concurrency,
            rate: config.rate,
            confidence: config.settings.confidence,
            tolerance: config.settings.tolerance,
            max_error_rate: config.max_error_rate,
            connect_timeout_ms: u64::try_from(config.connect_timeout.as_millis())
                .unwrap_or(u64::MAX),
            reply_timeout_ms: u64::try_from(config.reply_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        Self {
            inputs,
            plan,
            times,
            stop_reason,
            attempted,
            attributed,
            split,
            latency,
            errors,
            schedule,
            windows: tally.windows().to_vec(),
            drift,
            tally,
        }
    }

    /// FAIL if the split or the error budget fails, else INCONCLUSIVE if the split is, else PASS.
    pub fn outcome(&self) -> Outcome {
        if self.errors.outcome == Outcome::Fail {
            Outcome::Fail
        } else {
            self.split.outcome
        }
    }

    /// The process exit code: errors decide first (4), then the split (1, 3 or 0).
    pub fn exit_code(&self) -> i32 {
        if self.errors.outcome == Outcome::Fail {
            return exit::ERRORS;
        }
        match self.split.outcome {
            Outcome::Pass => exit::PASS,
            Outcome::Fail => exit::FAIL,
            Outcome::Inconclusive => exit::INCONCLUSIVE,
        }
    }

    /// The most frequent error class, if any sample failed.
    pub fn main_error(&self) -> Option<ErrorClass> {
        self.errors
            .by_class
            .iter()
            .filter(|(_, n)| **n > 0)
            .max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)))
            .map(|(c, _)| *c)
    }

    /// One sentence saying why the outcome is what it is.
    pub fn reason(&self) -> String {
        let mut reason = self.outcome_reason();
        if let Some(cause) = &self.errors.local_cause {
            reason.push_str(&format!(
                "; the errors' likely cause is on this machine, not the target: {}",
                cause.message
            ));
        }
        if self.drift.moved {
            reason.push_str(&format!(
                "; note: the split moved during sampling (a share shifted by {:.1} points between windows)",
                self.drift.max_shift * 100.0
            ));
        }
        reason
    }

    fn outcome_reason(&self) -> String {
        let pct = |x: f64| format!("{:.1}%", x * 100.0);
        let errors = &self.errors;
        let main = self.main_error().map_or("", ErrorClass::as_str);
        let malformed = self.tally.errors_of(ErrorClass::MalformedReply);
        if errors.unreachable && malformed > 0 {
            let examples: Vec<String> = errors
                .malformed_replies
                .iter()
                .map(|m| format!("\"{}\"", m.reply))
                .collect();
            return format!(
                "FAIL on errors: the target answered but not with the protocol: {malformed} of {} \
                 replies were not `<version> <the line sent>` (e.g. {}), and no sample was attributed",
                self.attempted,
                examples.join(", ")
            );
        }
        if errors.unreachable {
            let stopped = if self.stop_reason == StopReason::Unreachable {
                ", so sampling stopped early"
            } else {
                ""
            };
            return format!(
                "FAIL on errors: the target is unreachable, all {} samples failed (mostly {main}){stopped}",
                self.attempted
            );
        }
        if errors.outcome == Outcome::Fail {
            return format!(
                "FAIL on errors: {} of {} samples failed ({}, over the {} budget; mostly {main})",
                errors.total,
                self.attempted,
                pct(errors.rate),
                pct(errors.max_rate)
            );
        }
        if self.attempted == 0 {
            return "INCONCLUSIVE: no sample was taken".to_owned();
        }
        let pick = |o: Outcome| self.split.versions.iter().filter(move |v| v.outcome == o);
        match self.split.outcome {
            Outcome::Fail => {
                let why: Vec<String> = pick(Outcome::Fail)
                    .map(|v| {
                        format!(
                            "{} answered {} of {} ({}, interval {}..{}, band {}..{}): {}",
                            v.name,
                            v.count,
                            self.split.total,
                            pct(v.share),
                            pct(v.interval.low),
                            pct(v.interval.high),
                            pct(v.band.low),
                            pct(v.band.high),
                            v.reason
                        )
                    })
                    .collect();
                format!("FAIL: {}", why.join("; "))
            }
            Outcome::Inconclusive => {
                let more = pick(Outcome::Inconclusive)
                    .filter_map(|v| v.more_samples)
                    .max();
                let names: Vec<&str> = pick(Outcome::Inconclusive)
                    .map(|v| v.name.as_str())
                    .collect();
                let names = names.join(", ");
                match more {
                    Some(n) => format!(
                        "INCONCLUSIVE: {} samples cannot decide {names} yet; about {n} more connections would",
                        self.split.total
                    ),
                    None => format!(
                        "INCONCLUSIVE: {} samples cannot decide {names} yet",
                        self.split.total
                    ),
                }
            }
            Outcome::Pass => format!(
                "PASS: every version within {:.1} points of its weight at {} confidence ({} samples, {} errors)",
                self.inputs.tolerance * 100.0,
                pct(self.inputs.confidence),
                self.attempted,
                errors.total
            ),
        }
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

    fn refused_report(readings: LocalReadings) -> VerifyReport {
        let mut tally = Tally::new(Windowing::ById { total: 10 });
        for id in 0..10 {
            tally.record(&Sample {
                id,
                addr: "127.0.0.1:1".parse().unwrap(),
                started_at: SystemTime::now(),
                offset: Duration::ZERO,
                result: Err(ErrorClass::ConnectTimeout),
                connect_us: None,
                reply_us: None,
                lag_us: None,
                reply_head: None,
            });
        }
        let times = Times {
            started_at: String::new(),
            finished_at: String::new(),
            elapsed_s: 0.0,
        };
        let c = config();
        let addrs = ["127.0.0.1:1".parse().unwrap()];
        VerifyReport::build(
            &c,
            &addrs,
            None,
            tally,
            StopReason::Samples,
            readings,
            times,
        )
    }

    #[test]
    fn a_nearly_full_conntrack_table_is_named_in_the_verdict_and_the_json() {
        let full = LocalReadings {
            conntrack_count: Some(250_000),
            conntrack_max: Some(262_144),
            local_ports: Some(28_232),
            tcp_sockets: Some(10),
        };
        let report = refused_report(full);
        assert!(
            report.reason().contains("likely cause is on this machine"),
            "{}",
            report.reason()
        );
        assert!(crate::report::text::render(&report).contains("likely local cause"));
        let doc = crate::report::json::document(&report);
        assert_eq!(doc["errors"]["local_cause"]["kind"], "conntrack_full");
        let calm = LocalReadings {
            conntrack_count: Some(1_000),
            ..full
        };
        let report = refused_report(calm);
        assert!(!report.reason().contains("machine"), "{}", report.reason());
        assert!(crate::report::json::document(&report)["errors"]["local_cause"].is_null());
    }

    #[test]
    fn the_verify_future_can_be_spawned() {
        fn is_send<T: Send>(_: &T) {}
        let c = config();
        let future = verify(&c, CancellationToken::new());
        is_send(&future);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.samples = Some(0);
        assert!(matches!(c.validate(), Err(VerifyError::Invalid(_))));
        let mut c = config();
        c.rate = Some(f64::NAN);
        assert!(c.validate().is_err());
        let mut c = config();
        c.rate = Some(1.0 / 7200.0);
        assert!(c.validate().is_err(), "below one connection per hour");
        c.rate = Some(1.0 / 3600.0);
        assert!(c.validate().is_ok(), "one connection per hour");
        let mut c = config();
        c.max_error_rate = 1.5;
        assert!(c.validate().is_err());
        // Confidence and tolerance follow Settings::validate, in the command line's words.
        for (confidence, tolerance, flag) in [
            (1.0, 0.05, "--confidence"),
            (f64::NAN, 0.05, "--confidence"),
            (0.99, 0.0, "--tolerance"),
            (0.99, 0.6, "--tolerance"),
            (0.99, f64::INFINITY, "--tolerance"),
        ] {
            let mut c = config();
            c.settings = Settings {
                confidence,
                tolerance,
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with(flag), "{confidence} {tolerance}: {e}");
        }
        let mut c = config();
        c.settings.tolerance = 0.5;
        assert!(c.validate().is_ok(), "50 points is the widest band");
        let mut c = config();
        c.target = "nohost".into();
        assert_eq!(c.validate().unwrap_err().exit_code(), exit::USAGE);
    }
}
