//! A step's verification through the ingress, with the faults asked for injected
//! while it samples.

use std::sync::Arc;

use checker_core::verdict;
use checker_core::verify::{self, SequentialConfig, VerifyConfig};
use report::samples::SamplesFile;
use tokio_util::sync::CancellationToken;

use super::config::WalkConfig;
use super::error::WalkError;
use super::faults::inject_faults;
use super::stage::Stage;
use crate::ingress::GatewayKind;
use crate::steps::Step;

/// A step's verification, or why it could not run, and its drift.
pub(super) type Verified = (
    Result<checker_core::verify::Verification, verify::VerifyError>,
    Option<verdict::Drift>,
);

/// Verifies the step through the ingress, injecting the faults asked for meanwhile;
/// the verification (or why it could not run) and its drift.
pub(super) async fn verify_step(
    config: &WalkConfig,
    step: &Step,
    stage: &mut Stage,
    stop: &CancellationToken,
    events: &mut Vec<String>,
) -> Result<Verified, WalkError> {
    let mut vc = VerifyConfig::new(stage.ingress.addr().to_string(), step.expect.clone());
    vc.samples = config.samples;
    vc.concurrency = config.concurrency;
    vc.settings = config.settings;
    vc.max_error_rate = config.max_error_rate;
    // Thousands of short loopback connections per step: close each with a reset so the
    // rehearsal leaves no TIME_WAIT (and conntrack) entries behind.
    vc.reset_on_close = true;
    if sequential(config, step, stage.ingress.kind()) {
        vc.sequential = Some(SequentialConfig::default());
    }
    let samples_out = config
        .samples_dir
        .as_ref()
        .map(|d| d.join(format!("step-{}.jsonl", step.number)));
    let total = config
        .samples
        .unwrap_or_else(|| verdict::plan(&step.expect, &config.settings).samples);
    let base = stage.ingress.accepted().await?;
    let done = CancellationToken::new();
    let run = async {
        let r = match samples_out.as_deref().map(SamplesFile::create) {
            None => verify::verify(&vc, stop.child_token()).await,
            Some(Ok(file)) => {
                verify::verify_observed(&vc, stop.child_token(), Arc::new(file)).await
            }
            Some(Err(e)) => Err(verify::VerifyError::Observer(Box::new(e))),
        };
        done.cancel();
        r
    };
    let faults = inject_faults(config, step, stage, base, total, &done, events);
    let (verified, faulted) = tokio::join!(run, faults);
    faulted?;
    let drift = verified.as_ref().ok().map(|r| r.judgement.drift.clone());
    Ok((verified, drift))
}

/// Whether the step is judged sequentially, as `checker verify` judges by default: through
/// a gateway whose split differs from run to run (HAProxy, Envoy), without `--samples`,
/// and without a fault placed by connection count in this step (`--kill-replica`,
/// `--shift-during`, `--chaos`: they keep the fixed plan, so that they land where they
/// are announced). A correct split through such a gateway is left undecided by the fixed
/// plan in up to 1 - confidence of steps; judged sequentially, it decides, as a rule
/// sooner.
fn sequential(config: &WalkConfig, step: &Step, gateway: GatewayKind) -> bool {
    let faulted =
        [config.kill_replica, config.shift_during, config.chaos].contains(&Some(step.number));
    gateway.draws_unseeded() && config.samples.is_none() && !faulted
}
