//! Faults the walk injects on purpose (`--kill-replica`, `--shift-during`, `--chaos`),
//! to show that the verdict catches them.

use checker_core::verdict::{self, Settings};
use tokio_util::sync::CancellationToken;

use super::config::WalkConfig;
use super::error::WalkError;
use super::stage::{Stage, accepted_since, wait_accepted};
use crate::steps::builtin::CANARY_GROUP;
use crate::steps::{Step, StepKind};

/// The least `--chaos` moves the canary's gateway weight from what the step expects
/// (in tolerances); [`chaos_canary`] moves it further when the step's sample count
/// needs it for the FAIL to be certain.
pub const CHAOS_MIN_TOLERANCES: f64 = 2.0;
/// Standard errors of sampling noise the chaos offset allows for (a FAIL missed with
/// probability below 1e-9).
const CHAOS_SIGMAS: f64 = 6.0;
/// Points a real proxy's split may sit off its weights with no fault at all (HAProxy's
/// consistent-hash ring was measured 0.5 to 1.5 points off), allowed for by the offset.
const CHAOS_PROXY_BIAS: f64 = 0.02;
/// How far `--shift-during` moves the canary's weight halfway through sampling.
pub const SHIFT_POINTS: u32 = 40;

/// Kills a canary replica or shifts the weights mid-step when the step is the one asked for.
pub(super) async fn inject_faults(
    config: &WalkConfig,
    step: &Step,
    stage: &mut Stage,
    base: u64,
    total: u64,
    done: &CancellationToken,
    events: &mut Vec<String>,
) -> Result<(), WalkError> {
    if config.kill_replica == Some(step.number)
        && wait_accepted(&stage.ingress, base + total / 3, done).await
        && let Some(victim) = stage.fleet.group(CANARY_GROUP).first().cloned()
    {
        stage.fleet.kill(victim.addr);
        let at = accepted_since(&stage.ingress, base).await;
        events.push(format!(
            "killed canary replica {} ({}) after {at} of {total} connections",
            victim.name, victim.addr
        ));
        // Like Kubernetes removing a dead pod's endpoint a little later.
        let later = (total / 20).max(10);
        wait_accepted(&stage.ingress, base + at + later, done).await;
        stage
            .ingress
            .remove_replica(CANARY_GROUP, victim.addr)
            .await?;
        let at = accepted_since(&stage.ingress, base).await;
        events.push(format!(
            "took {} out of the gateway after {at} connections (endpoint removal)",
            victim.name
        ));
    }
    if config.shift_during == Some(step.number)
        && let StepKind::Weight(w) = &step.kind
        && wait_accepted(&stage.ingress, base + total / 2, done).await
    {
        let canary = stage
            .weights
            .iter()
            .find(|(g, _)| g == CANARY_GROUP)
            .map_or(*w, |(_, c)| *c);
        let shifted = if canary + SHIFT_POINTS <= 100 {
            canary + SHIFT_POINTS
        } else {
            canary - SHIFT_POINTS
        };
        stage.set_weights(100 - shifted, shifted).await?;
        let at = accepted_since(&stage.ingress, base).await;
        events.push(format!(
            "weights changed during sampling after {at} of {total} connections: gateway now stable={} canary={}",
            100 - shifted,
            shifted
        ));
    }
    Ok(())
}

/// The canary weight `--chaos` gives the gateway for a step expecting `weight`, and
/// whether the step's `samples` then FAIL it for certain.
///
/// The offset is at least [`CHAOS_MIN_TOLERANCES`] tolerances, toward the side with more
/// room, and grows until the canary's interval, computed at a share pulled back toward
/// the expected one by [`CHAOS_SIGMAS`] standard errors and [`CHAOS_PROXY_BIAS`], still
/// lies wholly outside its band: the verdict's FAIL rule with room for sampling noise
/// and a proxy's own error. Where no weight is far enough, the farthest is used.
pub fn chaos_canary(weight: u32, samples: u64, settings: &Settings) -> (u32, bool) {
    let expected = f64::from(weight) / 100.0;
    let n = samples.max(1) as f64;
    let z = verdict::wilson::z_for(verdict::planner::per_version_confidence(
        settings.confidence,
        2,
    ));
    let band = verdict::wilson::band(expected, settings.tolerance);
    let up = weight <= 50;
    let room = if up { 100 - weight } else { weight };
    let least =
        ((CHAOS_MIN_TOLERANCES * settings.tolerance * 100.0).ceil() as u32).clamp(1, room.max(1));
    let at = |d: u32| if up { weight + d } else { weight - d };
    for d in least..=room {
        let share = f64::from(at(d)) / 100.0;
        let noise = CHAOS_SIGMAS * (share * (1.0 - share) / n).sqrt() + CHAOS_PROXY_BIAS;
        let pulled = if up { share - noise } else { share + noise }.clamp(0.0, 1.0);
        let interval = verdict::wilson::wilson(pulled * n, n, z);
        let outside = if up {
            interval.low > band.high
        } else {
            interval.high < band.low
        };
        if outside {
            return (at(d), true);
        }
    }
    (at(room), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaos_moves_the_weight_far_enough_for_a_certain_fail() {
        let s = Settings::default();
        // The default walk's 20% step at its planned 1883 samples: 10 points (twice the
        // tolerance) came out INCONCLUSIVE through HAProxy; the offset is now larger.
        let (canary, certain) = chaos_canary(20, 1883, &s);
        assert!(certain);
        assert!(canary >= 30, "{canary}");
        // At that weight even the unluckiest plausible draw fails: 6 standard errors
        // and 2 points of proxy bias toward the band, and the interval is still outside.
        let q = f64::from(canary) / 100.0;
        let pulled = q - 6.0 * (q * (1.0 - q) / 1883.0).sqrt() - 0.02;
        let z = verdict::wilson::z_for(verdict::planner::per_version_confidence(0.99, 2));
        assert!(verdict::wilson::wilson(pulled * 1883.0, 1883.0, z).low > 0.25);
        // The smallest such weight: one point less is not certain.
        let q = f64::from(canary - 1) / 100.0;
        let pulled = q - 6.0 * (q * (1.0 - q) / 1883.0).sqrt() - 0.02;
        assert!(verdict::wilson::wilson(pulled * 1883.0, 1883.0, z).low <= 0.25);
        // Fewer samples need a bigger move; weights above 50 move down.
        assert!(chaos_canary(20, 200, &s).0 > canary);
        let (down, certain) = chaos_canary(90, 1169, &s);
        assert!(certain && down <= 80, "{down}");
        // Where no weight is far enough, the farthest is used and said to be uncertain.
        assert_eq!(chaos_canary(50, 5, &s), (100, false));
    }
}
