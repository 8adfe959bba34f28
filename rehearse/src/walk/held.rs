//! The held connections across the steps: each step's set opened before its change
//! (topped up until every group holds some), their losses sorted into cuts by the
//! gateway and losses at the servers, and each set closed once its span has passed.

use std::collections::BTreeMap;
use std::time::Duration;

use checker_core::hold::{HeldSummary, Holders, Loss};
use tokio_util::sync::CancellationToken;

use super::config::WalkConfig;
use super::error::WalkError;
use super::stage::Stage;
use crate::ingress::Ingress;

/// How many extra batches of held connections may be opened to reach every group.
const HOLD_TOP_UPS: usize = 4;
/// How far apart a server's own end of connections and a held connection's loss may be
/// for the loss to be put down to the server.
const SERVER_END_WINDOW: Duration = Duration::from_secs(1);

/// Opens the step's held connections, topping up (at most [`HOLD_TOP_UPS`] times) until
/// every group with traffic holds at least one of them, so each replica set that is
/// replaced or deleted later has open connections on it to lose or keep.
pub(super) async fn open_holders(
    config: &WalkConfig,
    stage: &Stage,
    stop: &CancellationToken,
) -> Result<Holders, WalkError> {
    let before = active_by_group(&stage.ingress).await?;
    // Before a plan's first step nothing is deployed: nothing to hold.
    let hold = if stage.weights.iter().any(|(_, w)| *w > 0) {
        config.hold
    } else {
        0
    };
    let mut holders = Holders::open(stage.ingress.addr(), hold, stop).await;
    if hold == 0 {
        return Ok(holders);
    }
    for _ in 0..HOLD_TOP_UPS {
        let after = active_by_group(&stage.ingress).await?;
        let missing = stage.weights.iter().any(|(g, w)| {
            *w > 0 && after.get(g).copied().unwrap_or(0) <= before.get(g).copied().unwrap_or(0)
        });
        if !missing || stop.is_cancelled() {
            break;
        }
        holders.open_more(stage.ingress.addr(), config.hold).await;
    }
    Ok(holders)
}

/// Active connections per group, as the ingress counts them.
async fn active_by_group(ingress: &Ingress) -> Result<BTreeMap<String, u64>, WalkError> {
    let mut out = BTreeMap::new();
    for b in ingress.stats().await?.backends {
        *out.entry(b.group).or_insert(0) += b.active;
    }
    Ok(out)
}

/// Sorts lost held connections: those whose version had a replica killed or cut at its
/// drain deadline around that moment were lost at the servers; a close or a reset while
/// every replica of the version was still serving is a cut by the gateway, timed from
/// the first weight change after its set was opened; anything else (a wrong or moved
/// reply, a timeout) is a loss.
pub(super) fn sort_losses(held: &mut HeldSummary, losses: Vec<Loss>, stage: &Stage) {
    for l in losses {
        let at_servers = l
            .version
            .as_deref()
            .is_some_and(|v| stage.fleet.ended_near(v, l.at, SERVER_END_WINDOW));
        let closed = ["closed by the other side", "read failed", "write failed"]
            .iter()
            .any(|p| l.reason.starts_with(p));
        if closed && !at_servers && l.version.is_some() {
            let change = stage.first_change_after(l.opened);
            held.add_cut(change.map(|c| l.at.saturating_duration_since(c)));
        } else {
            held.add_losses(vec![l.reason]);
        }
    }
}

/// Waits (unless stopped) until `holders` were open for the walk's hold span after the
/// first weight change since they were opened, then closes them.
pub(super) async fn close_after_span(
    config: &WalkConfig,
    holders: &mut Holders,
    stage: &Stage,
    stop: &CancellationToken,
) -> HeldSummary {
    if let Some(change) = stage.first_change_after(holders.opened_at()) {
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep_until(change + config.hold_span()) => {}
        }
    }
    holders.close().await
}
