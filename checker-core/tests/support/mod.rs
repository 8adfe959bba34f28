//! What the probe test files share: sampling a few connections with a probe.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use checker_core::probe::Probe;
use checker_core::sampler::{self, Sample, SamplerConfig, Timeouts};
use checker_core::tally::{Tally, Windowing};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Generous timeouts for loopback servers.
pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        reply: Duration::from_secs(5),
    }
}

/// `count` samples over `addrs` (used in turn) with `probe`, 4 at a time, closed with
/// a reset: the counts per version, the tally and every sample.
pub async fn sample(
    addrs: Vec<SocketAddr>,
    probe: &Probe,
    count: u64,
) -> (BTreeMap<String, u64>, Tally, Vec<Sample>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = SamplerConfig {
        addrs,
        samples: Some(count),
        duration: None,
        concurrency: 4,
        rate: None,
        timeouts: timeouts(),
        reset_on_close: true,
        probe: probe.clone(),
    };
    sampler::run(config, CancellationToken::new(), Arc::new(tx)).await;
    let mut tally = Tally::new(Windowing::ById { total: count });
    let mut samples = Vec::new();
    while let Some(s) = rx.recv().await {
        tally.record(&s);
        samples.push(s);
    }
    (tally.counts().into_iter().collect(), tally, samples)
}
