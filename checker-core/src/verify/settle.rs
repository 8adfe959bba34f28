//! Settling after a weight change (`--settle TIMEOUT`): before the counted verdict,
//! sample in short windows until the split is consistent with the expectation, or has
//! moved and then stopped moving, or the timeout passes. None of these samples count
//! in the verdict; the report shows how long it took and the split in every window.
//!
//! A window is consistent when every expected version's observed share lies inside its
//! band (a zero-weight version never answered) and no unexpected version answered. The
//! split has stopped moving when it differs from the first window's (the route changed,
//! just not to the expectation) and the last [`STABLE_WINDOWS`] windows agree, both by
//! the drift check ([`crate::verdict::drift`]). The counted verdict then decides.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::VerifyConfig;
use crate::expect::Expectation;
use crate::probe::Probe;
use crate::sampler::{self, SamplerConfig, Timeouts};
use crate::verdict::{Settings, drift, wilson::band};

/// Samples per settling window.
pub const SETTLE_WINDOW: u64 = 200;

/// Windows in a row that must agree for the split to count as stopped moving.
pub const STABLE_WINDOWS: usize = 3;

/// How settling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettleEnd {
    /// A window was consistent with the expectation.
    Consistent,
    /// The split moved away from the first window's and then held still (not as expected).
    StoppedMoving,
    /// Neither before the timeout.
    TimedOut,
    /// The stop signal arrived.
    Interrupted,
}

/// One settling window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettleWindow {
    /// Seconds since settling started, at the window's end.
    pub at_s: f64,
    /// Samples attributed to each version.
    pub counts: BTreeMap<String, u64>,
    /// Failed samples.
    pub errors: u64,
    /// Whether the window's split was consistent with the expectation.
    pub consistent: bool,
}

/// What settling did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettleSummary {
    /// The `--settle` timeout, seconds.
    pub timeout_s: f64,
    /// How long settling took, seconds.
    pub elapsed_s: f64,
    /// How it ended.
    pub end: SettleEnd,
    /// Every window, oldest first.
    pub windows: Vec<SettleWindow>,
}

/// Whether `counts` (one window) is consistent with `expect` under `settings`' tolerance.
pub fn consistent(
    expect: &Expectation,
    counts: &BTreeMap<String, u64>,
    settings: &Settings,
) -> bool {
    let total: u64 = counts.values().sum();
    if total == 0 || counts.keys().any(|name| expect.share_of(name).is_none()) {
        return false;
    }
    expect.versions().iter().all(|v| {
        let count = counts.get(&v.name).copied().unwrap_or(0);
        if v.share <= 0.0 {
            return count == 0;
        }
        let share = count as f64 / total as f64;
        let b = band(v.share, settings.tolerance);
        (b.low..=b.high).contains(&share)
    })
}

/// Whether the windows show a split that moved and then stopped moving.
fn stopped_moving(windows: &[SettleWindow], settings: &Settings) -> bool {
    let as_counts =
        |w: &SettleWindow| -> Vec<(String, u64)> { w.counts.clone().into_iter().collect() };
    let Some(first) = windows.first() else {
        return false;
    };
    if windows.len() < STABLE_WINDOWS + 1 {
        return false;
    }
    let last = &windows[windows.len() - STABLE_WINDOWS..];
    let moved = drift(&[as_counts(first), as_counts(&last[0])], settings).moved;
    let still = !drift(&last.iter().map(as_counts).collect::<Vec<_>>(), settings).moved;
    moved && still
}

/// Samples windows against `addrs` until consistent, stopped moving, `timeout` or `stop`.
pub async fn settle(
    config: &VerifyConfig,
    addrs: &[SocketAddr],
    probe: &Probe,
    timeout: Duration,
    stop: &CancellationToken,
) -> SettleSummary {
    let start = Instant::now();
    let mut windows = Vec::new();
    let end = loop {
        if stop.is_cancelled() {
            break SettleEnd::Interrupted;
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break SettleEnd::TimedOut;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let window_config = SamplerConfig {
            addrs: addrs.to_vec(),
            samples: Some(SETTLE_WINDOW),
            duration: Some(left),
            concurrency: config.concurrency,
            rate: config.rate,
            timeouts: Timeouts {
                connect: config.connect_timeout,
                reply: config.reply_timeout,
            },
            reset_on_close: config.reset_on_close,
            probe: probe.clone(),
        };
        sampler::run(window_config, stop.child_token(), Arc::new(tx)).await;
        let mut counts = BTreeMap::new();
        let mut errors = 0;
        while let Ok(sample) = rx.try_recv() {
            match sample.result {
                Ok(version) => *counts.entry(version).or_insert(0) += 1,
                Err(_) => errors += 1,
            }
        }
        let ok = consistent(&config.expect, &counts, &config.settings);
        windows.push(SettleWindow {
            at_s: start.elapsed().as_secs_f64(),
            counts,
            errors,
            consistent: ok,
        });
        if ok {
            break SettleEnd::Consistent;
        }
        if stopped_moving(&windows, &config.settings) {
            break SettleEnd::StoppedMoving;
        }
    };
    SettleSummary {
        timeout_s: timeout.as_secs_f64(),
        elapsed_s: start.elapsed().as_secs_f64(),
        end,
        windows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(pairs: &[(&str, u64)]) -> SettleWindow {
        SettleWindow {
            at_s: 0.0,
            counts: pairs.iter().map(|&(n, c)| (n.to_owned(), c)).collect(),
            errors: 0,
            consistent: false,
        }
    }

    #[test]
    fn consistency_is_every_share_inside_its_band() {
        let e: Expectation = "one=80,two=20,three=0".parse().unwrap();
        let s = Settings::default();
        let c = |pairs: &[(&str, u64)]| consistent(&e, &window(pairs).counts, &s);
        assert!(c(&[("one", 160), ("two", 40)]));
        assert!(c(&[("one", 152), ("two", 48)]));
        assert!(!c(&[("one", 180), ("two", 20)]), "the old 90/10 split");
        assert!(!c(&[("one", 160), ("two", 39), ("three", 1)]));
        assert!(!c(&[("one", 160), ("two", 39), ("ghost", 1)]));
        assert!(!c(&[]));
    }

    #[test]
    fn a_split_that_moved_and_holds_has_stopped_moving() {
        let s = Settings::default();
        let old = window(&[("one", 200)]);
        let new = window(&[("one", 100), ("two", 100)]);
        assert!(!stopped_moving(
            &[old.clone(), old.clone(), old.clone(), old.clone()],
            &s
        ));
        assert!(!stopped_moving(
            &[old.clone(), new.clone(), new.clone()],
            &s
        ));
        assert!(stopped_moving(
            &[old.clone(), new.clone(), new.clone(), new.clone()],
            &s
        ));
        let other = window(&[("one", 20), ("two", 180)]);
        assert!(!stopped_moving(&[old, new.clone(), other, new], &s));
    }
}
