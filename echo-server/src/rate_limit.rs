//! Warnings that a flood cannot multiply: the accept loops' rejections and failures,
//! the admin server's evictions and failures, the handlers' over-long lines.

use std::time::{Duration, Instant};

/// At most one warning per this interval for each kind of event.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Counts events and says when a summary warning is due, so floods log once a second.
#[derive(Debug)]
pub(crate) struct RateLimitedLog {
    since_last: u64,
    last: Option<Instant>,
}

impl RateLimitedLog {
    pub(crate) fn new() -> Self {
        Self {
            since_last: 0,
            last: None,
        }
    }

    /// Records one event; returns how many to report if a warning is due now.
    pub(crate) fn record(&mut self) -> Option<u64> {
        self.since_last += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|last| now.duration_since(last) >= LOG_EVERY)
        {
            self.last = Some(now);
            Some(std::mem::take(&mut self.since_last))
        } else {
            None
        }
    }
}
