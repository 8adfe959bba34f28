//! What a run tells whoever shows it while it samples: that sampling started, how far it
//! has come, every sample and (for `watch`) every expectation in force. The library calls
//! an observer and never draws or writes anything itself; the caller supplies one (the
//! report crate's progress bar and samples file) or none.

use std::time::{Duration, SystemTime};

use crate::sampler::Sample;

/// Why an observer failed (e.g. the samples file cannot be written): the run stops and
/// returns it, as one sentence.
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

/// Follows a run as it samples. Every method has a default that does nothing.
pub trait RunObserver: Send + Sync {
    /// Sampling starts: it takes at most `total` samples (when bounded by count) or lasts `duration`.
    fn started(&self, total: Option<u64>, duration: Option<Duration>) {
        let _ = (total, duration);
    }

    /// Whether [`RunObserver::progress`] is wanted (the running counts cost a lock).
    fn wants_progress(&self) -> bool {
        false
    }

    /// `done` finished samples, `errors` of them failed, and the running count per
    /// version (every expected version in order, then the unexpected ones); a few times a second.
    fn progress(&self, done: u64, errors: u64, counts: &[(String, u64)]) {
        let _ = (done, errors, counts);
    }

    /// One finished sample, on the sampling task (keep it short). An error stops sampling.
    fn sample(&self, sample: &Sample) -> Result<(), ObserverError> {
        let _ = sample;
        Ok(())
    }

    /// `expect` (as `--expect` takes it) holds from `at` on (`watch`). An error stops the watch.
    fn expectation(&self, expect: &str, at: SystemTime) -> Result<(), ObserverError> {
        let _ = (expect, at);
        Ok(())
    }

    /// Sampling ended (remove a progress bar, flush a file). An error fails the run.
    fn finished(&self) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// Observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl RunObserver for Unobserved {}

/// An observer that may be absent.
impl<T: RunObserver> RunObserver for Option<T> {
    fn started(&self, total: Option<u64>, duration: Option<Duration>) {
        if let Some(o) = self {
            o.started(total, duration);
        }
    }

    fn wants_progress(&self) -> bool {
        self.as_ref().is_some_and(T::wants_progress)
    }

    fn progress(&self, done: u64, errors: u64, counts: &[(String, u64)]) {
        if let Some(o) = self {
            o.progress(done, errors, counts);
        }
    }

    fn sample(&self, sample: &Sample) -> Result<(), ObserverError> {
        self.as_ref().map_or(Ok(()), |o| o.sample(sample))
    }

    fn expectation(&self, expect: &str, at: SystemTime) -> Result<(), ObserverError> {
        self.as_ref().map_or(Ok(()), |o| o.expectation(expect, at))
    }

    fn finished(&self) -> Result<(), ObserverError> {
        self.as_ref().map_or(Ok(()), T::finished)
    }
}

/// Two observers, told everything in order (the first's error wins; both are finished).
impl<A: RunObserver, B: RunObserver> RunObserver for (A, B) {
    fn started(&self, total: Option<u64>, duration: Option<Duration>) {
        self.0.started(total, duration);
        self.1.started(total, duration);
    }

    fn wants_progress(&self) -> bool {
        self.0.wants_progress() || self.1.wants_progress()
    }

    fn progress(&self, done: u64, errors: u64, counts: &[(String, u64)]) {
        self.0.progress(done, errors, counts);
        self.1.progress(done, errors, counts);
    }

    fn sample(&self, sample: &Sample) -> Result<(), ObserverError> {
        self.0.sample(sample)?;
        self.1.sample(sample)
    }

    fn expectation(&self, expect: &str, at: SystemTime) -> Result<(), ObserverError> {
        self.0.expectation(expect, at)?;
        self.1.expectation(expect, at)
    }

    fn finished(&self) -> Result<(), ObserverError> {
        let first = self.0.finished();
        let second = self.1.finished();
        first.and(second)
    }
}
