//! The looks of a sequential run: look at the evidence after every batch and stop
//! sampling as soon as [`crate::verdict::sequential`] (the anytime-valid math) decides
//! every version.

use std::sync::Mutex;

use serde::Serialize;

use crate::expect::Expectation;
use crate::sync::lock;
use crate::tally::Tally;
use crate::verdict::sequential::{self, DEFAULT_BATCH, METHOD, REFERENCE};
use crate::verdict::{Outcome, Settings};

/// How a sequential run samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequentialConfig {
    /// Finished samples between two looks at the evidence.
    pub batch: u64,
    /// The most samples before stopping INCONCLUSIVE; `None` = three times the fixed plan.
    pub max_samples: Option<u64>,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            batch: DEFAULT_BATCH,
            max_samples: None,
        }
    }
}

/// What the sequential rule did, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequentialSummary {
    /// The confidence sequence's name.
    pub method: &'static str,
    /// Where it is described.
    pub reference: &'static str,
    /// Finished samples between looks.
    pub batch: u64,
    /// The cap on samples.
    pub max_samples: u64,
    /// Looks taken.
    pub looks: u64,
    /// The look (1-based) at which every version was decided; `None` when none did.
    pub deciding_batch: Option<u64>,
    /// Attributed samples the verdict used.
    pub samples_used: u64,
}

/// The state of sequential sampling, shared by the sampling tasks (through the run's sink).
#[derive(Debug)]
pub struct Monitor {
    expect: Expectation,
    settings: Settings,
    batch: u64,
    max_samples: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    looks: u64,
    decided_at: Option<u64>,
}

impl Monitor {
    /// A monitor judging against `expect`; `max_samples` already resolved.
    pub fn new(expect: Expectation, settings: Settings, batch: u64, max_samples: u64) -> Self {
        Self {
            expect,
            settings,
            batch: batch.max(1),
            max_samples,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the evidence has decided (no more samples are wanted).
    pub fn is_decided(&self) -> bool {
        lock(&self.state).decided_at.is_some()
    }

    /// Called after each sample is recorded in `tally`: at a batch boundary, looks at the
    /// counts; returns false once they decide (sampling should stop).
    pub fn look(&self, tally: &Tally) -> bool {
        let attempted = tally.attempted();
        if !attempted.is_multiple_of(self.batch) {
            return true;
        }
        let mut state = lock(&self.state);
        state.looks += 1;
        let outcome = sequential::decide(&self.expect, &tally.counts(), &self.settings);
        if outcome == Outcome::Inconclusive {
            return true;
        }
        state.decided_at = Some(state.looks);
        false
    }

    /// The summary for the report, with `samples_used` attributed samples judged.
    pub fn summary(&self, samples_used: u64) -> SequentialSummary {
        let state = lock(&self.state);
        SequentialSummary {
            method: METHOD,
            reference: REFERENCE,
            batch: self.batch,
            max_samples: self.max_samples,
            looks: state.looks,
            deciding_batch: state.decided_at,
            samples_used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Sample;
    use crate::tally::Windowing;
    use std::time::{Duration, SystemTime};

    fn sample(id: u64, version: &str) -> Sample {
        Sample {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            started_at: SystemTime::UNIX_EPOCH,
            offset: Duration::ZERO,
            result: Ok(version.to_owned()),
            connect_us: Some(10),
            reply_us: Some(10),
            lag_us: None,
            reply_head: None,
        }
    }

    #[test]
    fn it_looks_per_batch_and_stops_at_the_first_decision() {
        let expect: Expectation = "one=90,two=10".parse().unwrap();
        let monitor = Monitor::new(expect, Settings::default(), 10, 1000);
        let mut tally = Tally::new(Windowing::ById { total: 1000 });
        let mut stopped_at = None;
        // Swapped weights: decided (FAIL) within a few batches.
        for id in 0..1000 {
            tally.record(&sample(id, if id % 10 == 0 { "one" } else { "two" }));
            if !monitor.look(&tally) {
                stopped_at = Some(id + 1);
                break;
            }
        }
        let n = stopped_at.unwrap();
        assert_eq!(n % 10, 0, "looks only at batch ends");
        assert!(monitor.is_decided());
        let s = monitor.summary(n);
        assert_eq!(s.deciding_batch, Some(n / 10));
        assert_eq!(s.looks, n / 10);
        assert!(n <= 200, "{n}");
    }
}
