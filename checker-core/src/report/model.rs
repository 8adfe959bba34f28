//! The report of a verification: its inputs, plan, verdicts, errors, latency and
//! times, and the one-line reason behind the verdict.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::exit;
use crate::sampler::{ErrorClass, StopReason};
use crate::tally::MalformedReply;
use crate::tally::{Tally, Window};
use crate::verdict::health::{HealthRules, HealthVerdict};
use crate::verdict::local::{self, LocalCause, LocalReadings};
use crate::verdict::{self, Drift, Outcome, Plan, SplitVerdict};
use crate::verify::VerifyConfig;

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
    /// Which rule the run followed (in the verify document; not serialised with the model).
    #[serde(skip)]
    pub mode: crate::verify::Mode,
    /// What sequential sampling did (sequential mode only; as `mode`).
    #[serde(skip)]
    pub sequential: Option<crate::verify::SequentialSummary>,
    /// What `--settle` saw before the counted samples (as `mode`).
    #[serde(skip)]
    pub settle: Option<crate::verify::SettleSummary>,
    /// Health checks beyond the split (canary against stable, thresholds, baseline);
    /// the JSON document carries them (not serialised here, as the rehearsal embeds this).
    #[serde(skip)]
    pub health: HealthVerdict,
    /// The rules of those checks, as configured (kept for the JSON report and merges).
    #[serde(skip)]
    pub config_health: HealthRules,
    /// The long-lived connections of `--hold`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<crate::hold::HeldReport>,
    /// The split derived from manifests (`--expect-from`), with its provenance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_from: Option<manifests::Derivation>,
}

/// A sample starting later than this after its scheduled time counts as late (tokio timers tick per millisecond).
const LATE_US: u64 = 10_000;

impl VerifyReport {
    /// The report of a finished run: judges `tally` by `config` (the split, errors,
    /// drift and health checks). `checker merge` and benchmarks build reports this way.
    pub fn build(
        config: &VerifyConfig,
        addrs: &[SocketAddr],
        plan: Option<Plan>,
        tally: Tally,
        stop_reason: StopReason,
        readings: LocalReadings,
        times: Times,
    ) -> Self {
        let split = verdict::judge(&config.expect, &tally.counts(), &config.settings);
        let health = verdict::health::judge(
            &tally,
            times.elapsed_s,
            &config.health,
            config.settings.confidence,
        );
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
            mode: crate::verify::Mode::Fixed,
            sequential: None,
            settle: None,
            health,
            config_health: config.health.clone(),
            held: None,
            expected_from: None,
        }
    }

    /// FAIL if the error budget, the split or a health check fails, else INCONCLUSIVE
    /// if the split or the comparison is, else PASS.
    pub fn outcome(&self) -> Outcome {
        if self.errors.outcome == Outcome::Fail {
            Outcome::Fail
        } else {
            self.split.outcome.max(self.health.outcome)
        }
    }

    /// The process exit code: errors decide first (4), then a failed split (1), then a
    /// failed health check (5), then an undecided split or comparison (3), else 0.
    pub fn exit_code(&self) -> i32 {
        if self.errors.outcome == Outcome::Fail {
            return exit::ERRORS;
        }
        match (self.split.outcome, self.health.outcome) {
            (Outcome::Fail, _) => exit::FAIL,
            (_, Outcome::Fail) => exit::HEALTH,
            (Outcome::Inconclusive, _) | (_, Outcome::Inconclusive) => exit::INCONCLUSIVE,
            (Outcome::Pass, Outcome::Pass) => exit::PASS,
        }
    }

    /// The verdict line when a health check decides it (the split and the errors pass).
    fn health_reason(&self) -> Option<String> {
        if self.errors.outcome == Outcome::Fail || self.split.outcome != Outcome::Pass {
            return None;
        }
        match self.health.outcome {
            Outcome::Fail => Some(format!(
                "FAIL on health: the split passes, but {}",
                self.health.failures().join("; ")
            )),
            Outcome::Inconclusive => {
                let c = self.health.comparison.as_ref()?;
                let why: Vec<String> = c
                    .metrics
                    .iter()
                    .filter(|m| m.outcome == Outcome::Inconclusive)
                    .map(|m| format!("{}: {}", m.metric, m.reason))
                    .collect();
                Some(format!(
                    "INCONCLUSIVE: the split passes, but the comparison of {} with {} cannot decide ({})",
                    c.canary,
                    c.stable,
                    why.join("; ")
                ))
            }
            Outcome::Pass => None,
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
        let mut reason = self
            .health_reason()
            .unwrap_or_else(|| self.outcome_reason());
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
    use crate::sampler::Sample;
    use crate::tally::Windowing;
    use std::time::{Duration, SystemTime};

    fn config() -> VerifyConfig {
        VerifyConfig::new("127.0.0.1:1", "one=90,two=10".parse().unwrap())
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
                handshake_us: None,
                reason: None,
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
        let doc = serde_json::to_value(crate::report::json::Document::of(&report)).unwrap();
        assert_eq!(doc["errors"]["local_cause"]["kind"], "conntrack_full");
        let calm = LocalReadings {
            conntrack_count: Some(1_000),
            ..full
        };
        let report = refused_report(calm);
        assert!(!report.reason().contains("machine"), "{}", report.reason());
        let doc = serde_json::to_value(crate::report::json::Document::of(&report)).unwrap();
        assert!(doc["errors"]["local_cause"].is_null());
    }
}
