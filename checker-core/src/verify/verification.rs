//! The result of a verification as plain data: what was asked, the plan, when it ran,
//! what was counted and the [`Judgement`] made once on it ([`crate::verdict::judgement`]).
//! The report crate shows it; `checker merge` and the rehearsal build and embed it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use super::config::VerifyConfig;
use super::looks::SequentialSummary;
use super::settle::SettleSummary;
use crate::gateway::view::GatewayView;
use crate::hold::HeldReport;
use crate::sampler::{ErrorClass, StopReason};
use crate::tally::{Tally, Window};
use crate::verdict::Plan;
use crate::verdict::health::HealthRules;
use crate::verdict::judgement::{self, Judgement, Mode, Rules};
use crate::verdict::local::LocalReadings;

/// The inputs of a run, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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

/// Connect, TLS handshake and reply latency of one version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VersionLatency {
    /// Time to establish the connection.
    pub connect: LatencySummary,
    /// With TLS: time from the connection to the completed handshake (absent without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<LatencySummary>,
    /// Time from sending the probe to the complete reply.
    pub reply: LatencySummary,
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

/// The result of a verification: inputs, plan, counts, the judgement, latency, time.
#[derive(Debug, Clone)]
pub struct Verification {
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
    /// Latency per version that answered.
    pub latency: BTreeMap<String, VersionLatency>,
    /// Schedule keeping with `--rate`.
    pub schedule: Option<ScheduleSummary>,
    /// Counts per consecutive window, oldest first.
    pub windows: Vec<Window>,
    /// Everything counted.
    pub tally: Tally,
    /// Which rule the split was judged by.
    pub mode: Mode,
    /// What sequential sampling did (sequential mode only).
    pub sequential: Option<SequentialSummary>,
    /// What `--settle` saw before the counted samples.
    pub settle: Option<SettleSummary>,
    /// The rules of the health checks, as configured (kept for the JSON report and merges).
    pub health_rules: HealthRules,
    /// The split, errors, drift and health checks judged, the outcome and the exit code.
    pub judgement: Judgement,
    /// The long-lived connections of `--hold`, when asked for (information: they judge nothing).
    pub held: Option<HeldReport>,
    /// The split derived from manifests (`--expect-from`), with its provenance.
    pub expected_from: Option<manifests::Derivation>,
    /// The gateway's own view (`--gateway-admin`, `--config-dump`): intent, programmed,
    /// counted; judged in [`Judgement::gateway`].
    pub gateway: Option<GatewayView>,
}

/// The rules `config` judges a run by.
fn rules_of(config: &VerifyConfig) -> Rules<'_> {
    Rules {
        expect: &config.expect,
        settings: config.settings,
        max_error_rate: config.max_error_rate,
        mode: if config.sequential.is_some() {
            Mode::Sequential
        } else {
            Mode::Fixed
        },
        health: &config.health,
    }
}

/// A sample starting later than this after its scheduled time counts as late (tokio timers tick per millisecond).
const LATE_US: u64 = 10_000;

impl Verification {
    /// Judges a finished run once: `tally` by `config` (the split by the sequential rule
    /// when `config` asks for it, else the fixed one; errors, drift and health checks).
    /// `checker merge` and benchmarks build results this way too.
    pub fn build(
        config: &VerifyConfig,
        addrs: &[SocketAddr],
        plan: Option<Plan>,
        tally: Tally,
        stop_reason: StopReason,
        readings: LocalReadings,
        times: Times,
    ) -> Self {
        Self::build_with_gateway(
            config,
            addrs,
            plan,
            tally,
            stop_reason,
            readings,
            times,
            None,
        )
    }

    /// [`build`](Self::build) for a run with the gateway's view: what the gateways were
    /// told is judged in the same judgement (see [`judgement::judge_run`]): a gateway
    /// programmed otherwise than the intent FAILs.
    #[allow(clippy::too_many_arguments)] // build's inputs and the view, each its own
    pub fn build_with_gateway(
        config: &VerifyConfig,
        addrs: &[SocketAddr],
        plan: Option<Plan>,
        tally: Tally,
        stop_reason: StopReason,
        readings: LocalReadings,
        times: Times,
        gateway: Option<GatewayView>,
    ) -> Self {
        let rules = rules_of(config);
        let mode = rules.mode;
        let told = gateway
            .as_ref()
            .and_then(|view| view.first_disagreeing().and_then(|l| l.expectation()));
        let programmed = gateway.as_ref().map(|view| judgement::Programmed {
            as_intended: view.programmed_as_intended(),
            split: told.as_ref(),
        });
        let judgement = judgement::judge_run(&tally, &rules, times.elapsed_s, readings, programmed);
        let latency = tally
            .versions()
            .iter()
            .map(|(name, v)| {
                let l = VersionLatency {
                    connect: LatencySummary::of(&v.connect_us),
                    handshake: (!v.handshake_us.is_empty())
                        .then(|| LatencySummary::of(&v.handshake_us)),
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
            attempted: tally.attempted(),
            attributed: tally.attributed(),
            latency,
            schedule,
            windows: tally.windows().to_vec(),
            tally,
            mode,
            sequential: None,
            settle: None,
            health_rules: config.health.clone(),
            judgement,
            held: None,
            expected_from: None,
            gateway,
        }
    }

    /// The overall outcome (the judgement's).
    pub fn outcome(&self) -> crate::verdict::Outcome {
        self.judgement.outcome
    }

    /// The process exit code (the judgement's).
    pub fn exit_code(&self) -> i32 {
        self.judgement.exit_code
    }

    /// The most frequent error class, if any sample failed.
    pub fn main_error(&self) -> Option<ErrorClass> {
        self.judgement
            .errors
            .by_class
            .iter()
            .filter(|(_, n)| **n > 0)
            .max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)))
            .map(|(c, _)| *c)
    }
}

/// The rehearsal's document embeds a verification as this model (its schema,
/// `rehearsal.schema.json`, describes these keys in this order): inputs, plan, times,
/// counts, the split with its versions, latency per version, errors, schedule, windows,
/// drift, mode and sequential; `held` and `expected_from` only when present.
impl Serialize for Verification {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Model<'a> {
            inputs: &'a Inputs,
            plan: &'a Option<Plan>,
            times: &'a Times,
            stop_reason: StopReason,
            attempted: u64,
            attributed: u64,
            split: &'a crate::verdict::SplitVerdict,
            latency: &'a BTreeMap<String, VersionLatency>,
            errors: &'a judgement::ErrorVerdict,
            schedule: &'a Option<ScheduleSummary>,
            windows: &'a [Window],
            drift: &'a crate::verdict::Drift,
            mode: Mode,
            sequential: Option<&'a SequentialSummary>,
            #[serde(skip_serializing_if = "Option::is_none")]
            held: Option<&'a HeldReport>,
            #[serde(skip_serializing_if = "Option::is_none")]
            expected_from: Option<&'a manifests::Derivation>,
        }
        Model {
            inputs: &self.inputs,
            plan: &self.plan,
            times: &self.times,
            stop_reason: self.stop_reason,
            attempted: self.attempted,
            attributed: self.attributed,
            split: &self.judgement.split,
            latency: &self.latency,
            errors: &self.judgement.errors,
            schedule: &self.schedule,
            windows: &self.windows,
            drift: &self.judgement.drift,
            mode: self.mode,
            sequential: self.sequential.as_ref(),
            held: self.held.as_ref(),
            expected_from: self.expected_from.as_ref(),
        }
        .serialize(serializer)
    }
}

/// A verification read back from its JSON report: what `checker merge`, `--baseline` and
/// `checker plot --report` need of it, its tally rebuilt (histograms included).
#[derive(Debug, Clone)]
pub struct RecordedRun {
    /// The file it was read from.
    pub path: PathBuf,
    /// What was asked.
    pub inputs: Inputs,
    /// When it ran.
    pub times: Times,
    /// Why sampling stopped.
    pub stop_reason: StopReason,
    /// This machine's conntrack table, port range and sockets during the run.
    pub local_readings: LocalReadings,
    /// The rules of its health checks.
    pub health_rules: HealthRules,
    /// Everything counted.
    pub tally: Tally,
    /// The versions counted as other versions when it was read back (more than
    /// [`crate::tally::MAX_TRACKED_VERSIONS`] were named), by name.
    pub folded: Vec<String>,
}
