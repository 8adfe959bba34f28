//! The health comparison of a watch (`checker watch --compare CANARY=STABLE`): the
//! canary's attributed errors and latency against the stable's, judged with verify's
//! sequential comparison ([`crate::verdict::compare_sequence`]: confidence sequences,
//! valid however often they are looked at) over the evidence since the watch started or
//! the expectation last changed (a new rollout step starts it afresh, undecided).
//!
//! [`WatchHealth`] follows the samples as a [`RunObserver`] into a bounded [`Tally`]
//! (fixed-size histograms, at most [`crate::tally::MAX_TRACKED_VERSIONS`] versions) and
//! is judged once per interval with [`WatchHealth::judge`].

use std::sync::Mutex;
use std::time::SystemTime;

use crate::observer::{ObserverError, RunObserver};
use crate::sampler::Sample;
use crate::sync::lock;
use crate::tally::{Tally, Windowing};
use crate::verdict::compare::{CompareRule, Comparison};
use crate::verdict::compare_sequence;

/// The running comparison of a watch.
#[derive(Debug)]
pub struct WatchHealth {
    rule: CompareRule,
    confidence: f64,
    tally: Mutex<Tally>,
}

/// A tally whose windows are unused (a watch has no planned end): every sample in the first.
fn fresh_tally() -> Tally {
    Tally::new(Windowing::ById { total: u64::MAX })
}

impl WatchHealth {
    /// Compares by `rule` at `confidence` (family-wide over the metrics, as verify's).
    pub fn new(rule: CompareRule, confidence: f64) -> Self {
        Self {
            rule,
            confidence,
            tally: Mutex::new(fresh_tally()),
        }
    }

    /// The rule compared by.
    pub fn rule(&self) -> &CompareRule {
        &self.rule
    }

    /// The comparison over the evidence so far: each metric PASS, FAIL or INCONCLUSIVE.
    pub fn judge(&self) -> Comparison {
        let tally = lock(&self.tally);
        compare_sequence::judge(&tally, &self.rule, self.confidence)
    }
}

impl RunObserver for WatchHealth {
    fn sample(&self, sample: &Sample) -> Result<(), ObserverError> {
        lock(&self.tally).record(sample);
        Ok(())
    }

    fn expectation(&self, _expect: &str, _at: SystemTime) -> Result<(), ObserverError> {
        // A new step: the comparison's evidence starts afresh, as the split's does.
        *lock(&self.tally) = fresh_tally();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    use crate::verdict::Outcome;

    fn sample(id: u64, version: &str, reply_us: u64) -> Sample {
        Sample {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            started_at: SystemTime::now(),
            offset: Duration::ZERO,
            result: Ok(version.to_owned()),
            connect_us: Some(100),
            handshake_us: None,
            reply_us: Some(reply_us),
            lag_us: None,
            reply_head: None,
            reason: None,
        }
    }

    #[test]
    fn a_slower_canary_fails_its_latency_and_a_new_step_starts_afresh() {
        let rule = CompareRule::parse_pair("two=one").unwrap();
        let health = WatchHealth::new(rule, 0.99);
        assert!(
            health
                .judge()
                .metrics
                .iter()
                .all(|m| m.outcome == Outcome::Inconclusive)
        );
        // The canary replies in 3 ms, the stable in 1 ms (spread a little): its p99 is far
        // beyond the 20% margin; both connect alike.
        for id in 0..20_000u64 {
            let jitter = id % 50;
            health.sample(&sample(id, "one", 1_000 + jitter)).unwrap();
            health.sample(&sample(id, "two", 3_000 + jitter)).unwrap();
        }
        let c = health.judge();
        let reply = |c: &Comparison, name: &str| {
            c.metrics
                .iter()
                .find(|m| m.metric == name)
                .map(|m| m.outcome)
        };
        assert_eq!(reply(&c, "p99_reply"), Some(Outcome::Fail), "{c:#?}");
        assert_eq!(reply(&c, "p99_connect"), Some(Outcome::Pass), "{c:#?}");
        assert_eq!(c.outcome, Outcome::Fail);
        health
            .expectation("one=90,two=10", SystemTime::now())
            .unwrap();
        assert_eq!(
            reply(&health.judge(), "p99_reply"),
            Some(Outcome::Inconclusive)
        );
    }
}
