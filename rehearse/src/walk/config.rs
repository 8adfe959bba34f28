//! What the walk is asked to do ([`WalkConfig`]) and the checks of it, which also
//! turn it into the steps to walk.

use std::path::PathBuf;
use std::time::Duration;

use checker_core::hold::EXCHANGE_EVERY;
use checker_core::verdict::Settings;
use checker_core::verify;

use super::error::WalkError;
use crate::fleet::DRAIN_DELAY;
use crate::ingress::GatewayKind;
use crate::ingress::envoy::EnvoyOptions;
use crate::setting::Setting;
use crate::steps::file::StepsFile;
use crate::steps::{self, Step, builtin};

/// Everything the walk needs.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkConfig {
    /// The canary weights of the weight steps, in percent, e.g. `[0, 10, 20]`.
    pub steps: Vec<u32>,
    /// Replicas per version.
    pub replicas: usize,
    /// Seed of the built-in gateway's random choice.
    pub seed: u64,
    /// Samples per verification (`None` = planned).
    pub samples: Option<u64>,
    /// Samples in flight.
    pub concurrency: usize,
    /// Confidence and tolerance of the verdicts.
    pub settings: Settings,
    /// Error budget of each verification.
    pub max_error_rate: f64,
    /// Which ingress to route through.
    pub gateway: GatewayKind,
    /// The HAProxy binary, for `GatewayKind::Haproxy`.
    pub haproxy_bin: String,
    /// Long-lived connections opened per step.
    pub hold: usize,
    /// Grace period of a draining replica before it cuts its connections.
    pub grace: Duration,
    /// Step whose gateway weight is deliberately wrong.
    pub chaos: Option<usize>,
    /// Step during whose sampling a canary replica dies.
    pub kill_replica: Option<usize>,
    /// Step during whose sampling the weights change.
    pub shift_during: Option<usize>,
    /// Directory for one samples file per step (`step-N.jsonl`).
    pub samples_dir: Option<PathBuf>,
    /// How to run Envoy, for `GatewayKind::Envoy`.
    pub envoy: EnvoyOptions,
    /// Whether held connections cut by the gateway fail their step (exit 1).
    pub fail_on_cut: bool,
    /// A user's steps file (`--plan`), walked instead of the built-in steps.
    pub steps_file: Option<StepsFile>,
}

impl Default for WalkConfig {
    fn default() -> Self {
        Self {
            steps: vec![0, 10, 20],
            replicas: 3,
            seed: 1,
            samples: None,
            concurrency: verify::DEFAULT_CONCURRENCY,
            settings: Settings::default(),
            max_error_rate: verify::DEFAULT_MAX_ERROR_RATE,
            gateway: GatewayKind::Builtin,
            haproxy_bin: "haproxy".to_owned(),
            hold: 8,
            grace: Duration::from_secs(30),
            chaos: None,
            kill_replica: None,
            shift_during: None,
            samples_dir: None,
            envoy: EnvoyOptions::default(),
            fail_on_cut: false,
            steps_file: None,
        }
    }
}

impl WalkConfig {
    /// How long a set of held connections is kept open after the change it was opened
    /// before, at least: through Envoy, its drain time and one exchange more, so a cut
    /// at the end of the drain is seen; otherwise nothing beyond the steps.
    pub fn hold_span(&self) -> Duration {
        match self.gateway {
            GatewayKind::Envoy => {
                Duration::from_secs(self.envoy.drain_secs()) + EXCHANGE_EVERY + EXCHANGE_EVERY / 2
            }
            _ => Duration::ZERO,
        }
    }

    /// Checks the values and the fault steps against the steps; the steps to walk.
    pub fn validate(&self) -> Result<Vec<Step>, WalkError> {
        let bad = |setting, value: Option<String>, reason: String| {
            Err(WalkError::invalid(setting, value, reason))
        };
        if self.steps.is_empty() {
            return bad(
                Setting::Steps,
                None,
                "needs at least one canary weight, e.g. 0,10,20".into(),
            );
        }
        if let Some(w) = self.steps.iter().find(|w| **w > 100) {
            return bad(
                Setting::Steps,
                None,
                format!("{w} is not a percentage (0 to 100)"),
            );
        }
        if self.replicas == 0 || self.replicas > 32 {
            return bad(
                Setting::Replicas,
                Some(self.replicas.to_string()),
                "must be between 1 and 32".into(),
            );
        }
        if self.samples == Some(0) {
            return bad(
                Setting::Samples,
                Some("0".into()),
                "must be at least 1".into(),
            );
        }
        if self.grace < DRAIN_DELAY {
            return bad(
                Setting::Grace,
                Some(humantime::format_duration(self.grace).to_string()),
                format!(
                    "must be at least {} (a stopping replica keeps accepting that long before its grace period can end)",
                    humantime::format_duration(DRAIN_DELAY)
                ),
            );
        }
        let faults = [
            (Setting::Chaos, self.chaos),
            (Setting::ShiftDuring, self.shift_during),
            (Setting::KillReplica, self.kill_replica),
        ];
        if let Some(file) = &self.steps_file {
            if let Some((setting, Some(step))) = faults.iter().find(|(_, step)| step.is_some()) {
                return bad(
                    *setting,
                    Some(step.to_string()),
                    "works on the built-in walk, not on a steps file of manifests".into(),
                );
            }
            return Ok(steps::of_file(file));
        }
        let steps = builtin::steps(&self.steps)?;
        let weight_steps = self.steps.len();
        for (setting, step) in faults {
            // A canary replica can also die in the rolling update, the step after them.
            let last = if setting == Setting::KillReplica {
                weight_steps + 1
            } else {
                weight_steps
            };
            if let Some(s) = step
                && (s == 0 || s > last)
            {
                let also = if last > weight_steps {
                    " or the rolling update"
                } else {
                    ""
                };
                return bad(
                    setting,
                    Some(s.to_string()),
                    format!("must name a step from 1 to {last} (the weight steps{also})"),
                );
            }
        }
        Ok(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_steps_and_values_are_checked() {
        let ok = WalkConfig::default();
        assert_eq!(ok.validate().unwrap().len(), 6);
        let bad = |f: fn(&mut WalkConfig)| {
            let mut c = WalkConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        let flag = |s: Setting| match s {
            Setting::Chaos => "--chaos",
            Setting::Grace => "--grace",
            _ => "--other",
        };
        assert_eq!(
            bad(|c| c.chaos = Some(4)).message(flag),
            "--chaos 4: must name a step from 1 to 3 (the weight steps)"
        );
        assert_eq!(
            bad(|c| c.chaos = Some(4)).to_string(),
            "the chaos step 4: must name a step from 1 to 3 (the weight steps)"
        );
        assert!(matches!(
            bad(|c| c.shift_during = Some(0)),
            WalkError::Invalid { setting: Setting::ShiftDuring, value: Some(v), .. } if v == "0"
        ));
        assert!(
            bad(|c| c.kill_replica = Some(5))
                .to_string()
                .contains("or the rolling update")
        );
        assert!(bad(|c| c.steps = vec![0, 101]).to_string().contains("101"));
        assert!(
            bad(|c| c.steps.clear())
                .to_string()
                .contains("at least one")
        );
        assert!(matches!(
            bad(|c| c.replicas = 0),
            WalkError::Invalid {
                setting: Setting::Replicas,
                ..
            }
        ));
        assert!(
            bad(|c| c.grace = Duration::ZERO)
                .message(flag)
                .starts_with("--grace 0s: must be at least 50ms")
        );
        let c = WalkConfig {
            kill_replica: Some(4),
            ..WalkConfig::default()
        };
        assert!(
            c.validate().is_ok(),
            "the rolling update may lose a canary replica"
        );
    }
}
