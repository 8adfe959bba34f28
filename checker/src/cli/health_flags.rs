//! The health flags of `checker verify`: `--compare`, `--threshold`, `--baseline` and
//! their margins, turned into the library's [`HealthRules`]; `--compare` and its margins
//! ([`CompareArgs`]) are `checker watch`'s too.

use std::path::PathBuf;

use clap::Args;

use checker_core::verdict::baseline::{self, BaselineRule};
use checker_core::verdict::compare::{self, CompareRule, Direction};
use checker_core::verdict::figures::Figures;
use checker_core::verdict::health::HealthRules;
use checker_core::verdict::thresholds::Threshold;

use super::args::parse_bool;

/// Canary against stable, thresholds and a baseline (each fails with exit code 5).
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The canary against the stable.
    #[command(flatten)]
    pub compare: CompareArgs,
    /// A threshold such as p99_reply<20ms, two.p50_connect<2ms, error_rate<0.1%, samples_per_s>2000 (repeatable).
    #[arg(
        long = "threshold",
        env = "CHECKER_THRESHOLDS",
        value_name = "EXPR",
        value_delimiter = ';'
    )]
    pub thresholds: Vec<Threshold>,
    /// Compare with an earlier JSON report of the same target.
    #[arg(long, env = "CHECKER_BASELINE", value_name = "REPORT.json")]
    pub baseline: Option<PathBuf>,
    /// With --baseline: the regression each figure may show.
    #[arg(long, env = "CHECKER_MAX_REGRESSION", value_name = "FIGURE=MARGIN,...", default_value = baseline::DEFAULT_MAX_REGRESSION, value_parser = baseline::parse_margins)]
    pub max_regression: RegressionMargins,
}

/// `--compare CANARY=STABLE` and its margins, directions and critical metrics (verify's
/// and watch's).
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Judge the canary's attributed errors and latency against the stable's, e.g. two=one: a metric PASSes only when its whole interval lies within its margin, FAILs (exit 5) when the interval lies wholly beyond it, and is INCONCLUSIVE (exit 3) otherwise, with about how many more connections would decide it.
    #[arg(long, env = "CHECKER_COMPARE", value_name = "CANARY=STABLE", value_parser = CompareRule::parse_pair)]
    pub compare: Option<CompareRule>,
    /// With --compare: how much the canary's latency percentiles may change (connect and reply; the handshake too with --tls), e.g. p99=20%,p50=10%; an increase unless --direction says otherwise.
    #[arg(long, env = "CHECKER_MAX_LATENCY_INCREASE", value_name = "pNN=P%,...", default_value = compare::DEFAULT_MAX_LATENCY_INCREASE, value_parser = compare::parse_latency_margins)]
    pub max_latency_increase: LatencyMargins,
    /// With --compare: how much the canary's attributed error rate may change, in points; an increase unless --direction says otherwise.
    #[arg(long, env = "CHECKER_MAX_ERROR_INCREASE", value_name = "Npp", default_value = "0.5pp", value_parser = compare::parse_points)]
    pub max_error_increase: f64,
    /// With --compare: which way a change of a metric is bad, e.g. p99=either,error_rate=decrease. METRIC is error_rate or a percentile of --max-latency-increase (p99: its connect and reply latency); DIR is increase (the default: only a slower or more failing canary is bad), decrease (only a drop is bad) or either (a change beyond the margin either way is bad). Repeatable.
    #[arg(long = "direction", env = "CHECKER_DIRECTION", value_name = "METRIC=DIR", value_delimiter = ',', value_parser = parse_direction)]
    pub directions: Vec<MetricDirection>,
    /// With --compare: a metric whose FAIL fails the run (exit 5) even when the others pass: error_rate, p99_reply, p99_connect, or a percentile p99 for both. Once any is named, the others are reported and only fail the run with --strict-health; when none is named, every metric is critical. Repeatable.
    #[arg(
        long = "critical",
        env = "CHECKER_CRITICAL",
        value_name = "METRIC",
        value_delimiter = ','
    )]
    pub critical: Vec<String>,
    /// With --compare and --critical: a non-critical metric's FAIL fails the run too, and a sequential run waits for every metric to be decided (the variable takes 1/0, true/false, yes/no, on/off).
    #[arg(long, env = "CHECKER_STRICT_HEALTH", value_parser = parse_bool)]
    pub strict_health: bool,
}

/// Latency margins as one clap value (a list in one flag).
pub type LatencyMargins = Vec<compare::LatencyMargin>;
/// Regression margins as one clap value (a list in one flag).
pub type RegressionMargins = Vec<baseline::RegressionMargin>;
/// One `--direction` value: a metric and which way its change is bad.
pub type MetricDirection = (String, Direction);

/// Parses `METRIC=DIR` of `--direction`, e.g. `p99=either` (the metric is checked
/// against the margins once all flags are read).
fn parse_direction(s: &str) -> Result<MetricDirection, String> {
    let (metric, direction) = s
        .split_once('=')
        .map(|(m, d)| (m.trim(), d.trim()))
        .filter(|(m, _)| !m.is_empty())
        .ok_or_else(|| format!("{s:?} is not METRIC=DIRECTION such as p99=either"))?;
    Ok((metric.to_owned(), direction.parse()?))
}

impl CompareArgs {
    /// The comparison these flags describe, if any; a flag that applies only to it is
    /// refused without `--compare`.
    pub fn rule(&self) -> Result<Option<CompareRule>, String> {
        Ok(match self.compare.clone() {
            Some(mut rule) => {
                rule.max_latency_increase = self.max_latency_increase.clone();
                rule.max_error_increase = self.max_error_increase;
                for (metric, direction) in &self.directions {
                    rule.set_direction(metric, *direction)
                        .map_err(|e| format!("--direction {e}"))?;
                }
                rule.critical = self.critical.iter().map(|c| c.trim().to_owned()).collect();
                rule.strict = self.strict_health;
                Some(rule)
            }
            None => {
                let without = [
                    ("--direction", !self.directions.is_empty()),
                    ("--critical", !self.critical.is_empty()),
                    ("--strict-health", self.strict_health),
                ];
                if let Some((flag, _)) = without.iter().find(|(_, given)| *given) {
                    return Err(format!(
                        "{flag} applies to the comparison: give --compare CANARY=STABLE too"
                    ));
                }
                None
            }
        })
    }
}

impl HealthArgs {
    /// The rules these flags describe; reads the baseline report. `target` must match
    /// the baseline's.
    pub fn rules(&self, target: &str) -> Result<HealthRules, String> {
        let compare = self.compare.rule()?;
        let baseline = match &self.baseline {
            None => None,
            Some(path) => {
                let old = super::args::load_report(path).map_err(|e| format!("--baseline: {e}"))?;
                if old.inputs.target != target {
                    return Err(format!(
                        "--baseline {} is a report of {}, not of {target}",
                        path.display(),
                        old.inputs.target
                    ));
                }
                let figures = Figures {
                    tally: &old.tally,
                    elapsed_s: old.times.elapsed_s,
                };
                Some(BaselineRule::new(
                    path.display().to_string(),
                    &figures,
                    self.max_regression.clone(),
                ))
            }
        };
        Ok(HealthRules {
            compare,
            thresholds: self.thresholds.clone(),
            baseline,
        })
    }
}
