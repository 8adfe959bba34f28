//! The health flags of `checker verify`: `--compare`, `--threshold`, `--baseline` and
//! their margins, turned into the library's [`HealthRules`].

use std::path::PathBuf;

use clap::Args;

use checker_core::verdict::baseline::{self, BaselineRule};
use checker_core::verdict::compare::{self, CompareRule};
use checker_core::verdict::figures::Figures;
use checker_core::verdict::health::HealthRules;
use checker_core::verdict::thresholds::Threshold;

/// Canary against stable, thresholds and a baseline (each fails with exit code 5).
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Judge the canary's attributed errors and latency against the stable's, e.g. two=one.
    #[arg(long, env = "CHECKER_COMPARE", value_name = "CANARY=STABLE", value_parser = CompareRule::parse_pair)]
    pub compare: Option<CompareRule>,
    /// With --compare: how much higher the canary's latency percentiles may be (connect and reply).
    #[arg(long, env = "CHECKER_MAX_LATENCY_INCREASE", value_name = "pNN=P%,...", default_value = compare::DEFAULT_MAX_LATENCY_INCREASE, value_parser = compare::parse_latency_margins)]
    pub max_latency_increase: LatencyMargins,
    /// With --compare: how much higher the canary's attributed error rate may be, in points.
    #[arg(long, env = "CHECKER_MAX_ERROR_INCREASE", value_name = "Npp", default_value = "0.5pp", value_parser = compare::parse_points)]
    pub max_error_increase: f64,
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

/// Latency margins as one clap value (a list in one flag).
pub type LatencyMargins = Vec<compare::LatencyMargin>;
/// Regression margins as one clap value (a list in one flag).
pub type RegressionMargins = Vec<baseline::RegressionMargin>;

impl HealthArgs {
    /// The rules these flags describe; reads the baseline report. `target` must match
    /// the baseline's.
    pub fn rules(&self, target: &str) -> Result<HealthRules, String> {
        let compare = self.compare.clone().map(|mut rule| {
            rule.max_latency_increase = self.max_latency_increase.clone();
            rule.max_error_increase = self.max_error_increase;
            rule
        });
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
