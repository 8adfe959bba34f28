//! `checker watch`: sample continuously at a modest rate and follow the split over time.
//!
//! Every interval gives one [`Tick`]: each version's share in that interval, and the
//! running anytime-valid interval ([`crate::verdict::sequential`]) of the evidence since
//! the last decision. When that evidence decides (PASS: the split agrees with the
//! expectation; FAIL: it does not), the state becomes that decision and the evidence
//! starts afresh, so a later change is seen as soon as its own evidence decides. A change
//! of state, or of the expectation (re-read from `--expect-file` when the file changes),
//! starts a new [`Period`]; the summary lists them all.
//!
//! The expectation file never judges in silence: unreadable or not an expectation at the
//! start, the watch does not start ([`WatchError::ExpectFile`]); later, the last good
//! expectation is kept, the tick after each change of the file says why
//! ([`Tick::expect_file_error_is_new`]), and every interval judged on the kept one is
//! marked ([`Tick::expect_file_error`]). The file is read bounded and without blocking
//! ([`crate::expect_file`]), so signals and the duration always end the watch.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::expect::Expectation;
use crate::expect_file::{self, ExpectFileError};
use crate::observer::{ObserverError, RunObserver};
use crate::probe::Probe;
use crate::sampler::{self, Sample, SamplerConfig, Timeouts};
use crate::verdict::{Interval, Outcome, Settings, sequential};

pub mod health;

/// The default sampling rate, connections per second.
pub const DEFAULT_RATE: f64 = 10.0;
/// The default interval between two lines.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Whether the observed split agrees with the expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// No decision yet since the start or the last change of expectation.
    Undecided,
    /// The last decision was PASS.
    Agrees,
    /// The last decision was FAIL.
    Disagrees,
}

/// One interval's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tick {
    /// RFC 3339 time at the end of the interval.
    pub at: String,
    /// Seconds since the watch started.
    pub elapsed_s: f64,
    /// The expectation in force, as given.
    pub expect: String,
    /// Samples attributed to each version in this interval.
    pub window: BTreeMap<String, u64>,
    /// Failed samples in this interval.
    pub errors: u64,
    /// Attributed samples in the running evidence.
    pub evidence: u64,
    /// The running anytime-valid interval of each version's share.
    pub intervals: BTreeMap<String, Interval>,
    /// The state after this interval.
    pub state: Agreement,
    /// Set when the state changed in this interval, or the expectation did, or the
    /// expectation file could not be used (several joined by "; ").
    pub event: Option<String>,
    /// Set while the expectation file cannot be used: why, and the expectation kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_file_error: Option<String>,
    /// Whether [`Tick::expect_file_error`] is new in this interval (the file changed
    /// into something unusable): to say so once, e.g. on stderr.
    #[serde(skip)]
    pub expect_file_error_is_new: bool,
}

/// A span of the watch with one expectation and one state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// Seconds since the start at which it began.
    pub from_s: f64,
    /// Seconds since the start at which it ended.
    pub to_s: f64,
    /// The expectation in force.
    pub expect: String,
    /// The state throughout.
    pub state: Agreement,
    /// Samples attributed to each version during it.
    pub counts: BTreeMap<String, u64>,
    /// Failed samples during it.
    pub errors: u64,
}

/// The pure bookkeeping of a watch: intervals in, ticks and periods out.
#[derive(Debug, Clone)]
pub struct Watcher {
    expect: Expectation,
    expect_text: String,
    settings: Settings,
    state: Agreement,
    evidence: BTreeMap<String, u64>,
    periods: Vec<Period>,
    /// The event to show on the next tick after a change of expectation.
    expect_changed: Option<String>,
    /// Why the expectation file cannot be used, while it cannot.
    file_error: Option<String>,
    /// Whether `file_error` is new since the last tick.
    file_error_is_new: bool,
}

impl Watcher {
    /// A watcher starting undecided on `expect` (shown as `expect_text`).
    pub fn new(expect: Expectation, expect_text: String, settings: Settings) -> Self {
        Self {
            periods: vec![Period {
                from_s: 0.0,
                to_s: 0.0,
                expect: expect_text.clone(),
                state: Agreement::Undecided,
                counts: BTreeMap::new(),
                errors: 0,
            }],
            expect,
            expect_text,
            settings,
            state: Agreement::Undecided,
            evidence: BTreeMap::new(),
            expect_changed: None,
            file_error: None,
            file_error_is_new: false,
        }
    }

    fn start_period(&mut self, at_s: f64) {
        self.periods.push(Period {
            from_s: at_s,
            to_s: at_s,
            expect: self.expect_text.clone(),
            state: self.state,
            counts: BTreeMap::new(),
            errors: 0,
        });
    }

    /// A new expectation from now on: the evidence restarts undecided.
    pub fn set_expect(&mut self, expect: Expectation, text: String, at_s: f64) {
        self.expect = expect;
        self.expect_text = text;
        self.state = Agreement::Undecided;
        self.evidence.clear();
        self.expect_changed = Some(format!("expectation now {}", self.expect_text));
        self.file_error = None;
        self.start_period(at_s);
    }

    /// The expectation file holds the expectation in force again (after it could not be
    /// used): the evidence goes on.
    pub fn expect_file_usable(&mut self) {
        if self.file_error.take().is_some() {
            self.note(format!(
                "expectation file usable again: {}",
                self.expect_text
            ));
        }
    }

    /// The expectation file changed into something unusable: the current expectation is
    /// kept, and the next tick says why (and so does every tick until it is fixed).
    pub fn expect_file_failed(&mut self, error: &ExpectFileError) {
        let text = format!("{error}; keeping {}", self.expect_text);
        self.note(text.clone());
        self.file_error = Some(text);
        self.file_error_is_new = true;
    }

    /// Takes one interval's counts and errors, ending `at_s` seconds after the start.
    pub fn interval(
        &mut self,
        window: BTreeMap<String, u64>,
        errors: u64,
        at_s: f64,
        at: String,
    ) -> Tick {
        for (name, count) in &window {
            *self.evidence.entry(name.clone()).or_insert(0) += count;
        }
        if let Some(p) = self.periods.last_mut() {
            for (name, count) in &window {
                *p.counts.entry(name.clone()).or_insert(0) += count;
            }
            p.errors += errors;
            p.to_s = at_s;
        }
        let counts: Vec<(String, u64)> =
            self.evidence.iter().map(|(n, c)| (n.clone(), *c)).collect();
        let verdict = sequential::judge(&self.expect, &counts, &self.settings);
        let intervals = verdict
            .versions
            .iter()
            .map(|v| (v.name.clone(), v.interval))
            .collect();
        let evidence = verdict.total;
        let decided = match verdict.outcome {
            Outcome::Pass => Some(Agreement::Agrees),
            Outcome::Fail => Some(Agreement::Disagrees),
            Outcome::Inconclusive => None,
        };
        let mut event = self.expect_changed.take();
        if let Some(state) = decided {
            self.evidence.clear();
            if state != self.state {
                let changed = match state {
                    Agreement::Agrees if self.state == Agreement::Disagrees => "agrees again",
                    Agreement::Agrees => "agrees",
                    _ => "stopped agreeing",
                };
                // Said together with a change of expectation in the same interval.
                event = Some(match event {
                    Some(before) => format!("{before}; {changed}"),
                    None => changed.to_owned(),
                });
                self.state = state;
                // The deciding interval closes the old period; the new one starts after it.
                self.start_period(at_s);
            }
        }
        Tick {
            at,
            elapsed_s: at_s,
            expect: self.expect_text.clone(),
            window,
            errors,
            evidence,
            intervals,
            state: self.state,
            event,
            expect_file_error: self.file_error.clone(),
            expect_file_error_is_new: std::mem::take(&mut self.file_error_is_new),
        }
    }

    /// Shows `message` as the next tick's event (after any event already due).
    pub fn note(&mut self, message: String) {
        self.expect_changed = Some(match self.expect_changed.take() {
            Some(before) => format!("{before}; {message}"),
            None => message,
        });
    }

    /// Every period so far, oldest first.
    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    /// The current state.
    pub fn state(&self) -> Agreement {
        self.state
    }
}

/// What a watch needs.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Resolved target addresses.
    pub addrs: Vec<SocketAddr>,
    /// The starting expectation and its text.
    pub expect: Expectation,
    /// Re-read the expectation from this file when it changes.
    pub expect_file: Option<PathBuf>,
    /// Connections per second.
    pub rate: f64,
    /// Time between two ticks.
    pub interval: Duration,
    /// Stop after this long (else only `stop` ends it).
    pub duration: Option<Duration>,
    /// Confidence and tolerance.
    pub settings: Settings,
    /// Connect and reply timeouts.
    pub timeouts: Timeouts,
    /// Most connections in flight.
    pub concurrency: usize,
    /// What each sample does once connected (the echo protocol by default), and TLS.
    pub probe: Probe,
}

/// Why a watch could not go on.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The observer failed (e.g. the samples file cannot be written).
    #[error("{0}")]
    Observer(ObserverError),
    /// The expectation file cannot be used at the start.
    #[error("{0}")]
    ExpectFile(ExpectFileError),
}

/// What identifies one version of a file: its modification time, length and inode
/// (`None` while it cannot be looked at, e.g. deleted).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Tells `observer` that `expect` holds from now on.
fn record_expect(observer: &dyn RunObserver, expect: &str) -> Result<(), WatchError> {
    observer
        .expectation(expect, SystemTime::now())
        .map_err(WatchError::Observer)
}

/// Watches until `duration` or `stop`, calling `on_tick` once per interval and telling
/// `observer` every sample and expectation; returns the periods.
pub async fn run(
    config: WatchConfig,
    expect_text: String,
    stop: CancellationToken,
    observer: &dyn RunObserver,
    mut on_tick: impl FnMut(&Tick),
) -> Result<Vec<Period>, WatchError> {
    let mut watcher = Watcher::new(config.expect.clone(), expect_text, config.settings);
    let mut expect_stamp = None;
    if let Some(path) = &config.expect_file {
        expect_stamp = stamp(path);
        let e = expect_file::read(path).map_err(WatchError::ExpectFile)?;
        watcher = Watcher::new(e.clone(), e.to_string(), config.settings);
    }
    record_expect(observer, &watcher.expect_text)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let sampling = stop.child_token();
    let sampler = tokio::spawn(sampler::run(
        SamplerConfig {
            addrs: config.addrs.clone(),
            samples: None,
            duration: config.duration,
            concurrency: config.concurrency,
            rate: Some(config.rate),
            timeouts: config.timeouts,
            reset_on_close: false,
            probe: config.probe.clone(),
        },
        sampling.clone(),
        Arc::new(tx),
    ));
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(start + config.interval, config.interval);
    let mut window = BTreeMap::new();
    let mut errors = 0u64;
    let mut finished = false;
    while !finished {
        tokio::select! {
            sample = rx.recv() => match sample {
                Some(sample) => {
                    if let Err(e) = observer.sample(&sample) {
                        sampling.cancel();
                        return Err(WatchError::Observer(e));
                    }
                    match sample.result {
                        Ok(v) => *window.entry(v).or_insert(0) += 1,
                        Err(_) => errors += 1,
                    }
                    continue;
                }
                None => finished = true,
            },
            _ = tick.tick() => {}
        }
        let at_s = start.elapsed().as_secs_f64();
        if let Some(path) = &config.expect_file
            && stamp(path) != expect_stamp
        {
            expect_stamp = stamp(path);
            match expect_file::read(path) {
                Ok(e) if e == watcher.expect => watcher.expect_file_usable(),
                Ok(e) => {
                    let text = e.to_string();
                    if let Err(e) = record_expect(observer, &text) {
                        sampling.cancel();
                        return Err(e);
                    }
                    watcher.set_expect(e, text, at_s);
                }
                Err(e) => watcher.expect_file_failed(&e),
            }
        }
        let at = crate::clock::rfc3339_micros(SystemTime::now());
        let t = watcher.interval(
            std::mem::take(&mut window),
            std::mem::take(&mut errors),
            at_s,
            at,
        );
        on_tick(&t);
    }
    let _ = sampler.await;
    observer.finished().map_err(WatchError::Observer)?;
    Ok(watcher.periods().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|&(n, c)| (n.to_owned(), c)).collect()
    }

    #[test]
    fn the_state_follows_decisions_and_periods_split_at_changes() {
        let mut watcher = Watcher::new(
            "one=100,two=0".parse().unwrap(),
            "one=100,two=0".into(),
            Settings::default(),
        );
        fn next(watcher: &mut Watcher, pairs: &[(&str, u64)]) -> Tick {
            let at = watcher.periods().last().map_or(0.0, |p| p.to_s) + 1.0;
            watcher.interval(w(pairs), 0, at, String::new())
        }
        let mut states = Vec::new();
        for _ in 0..30 {
            states.push(next(&mut watcher, &[("one", 10)]).state);
        }
        assert_eq!(states.first(), Some(&Agreement::Undecided));
        assert_eq!(watcher.state(), Agreement::Agrees);
        // `two` starts answering: a zero-weight version, FAIL at once.
        let t = next(&mut watcher, &[("one", 9), ("two", 1)]);
        assert_eq!(t.state, Agreement::Disagrees);
        assert_eq!(t.event.as_deref(), Some("stopped agreeing"));
        for _ in 0..3 {
            next(&mut watcher, &[("one", 9), ("two", 1)]);
        }
        // The pipeline moves the expectation to where the traffic went.
        let at = watcher.periods().last().map_or(0.0, |p| p.to_s);
        watcher.set_expect("one=50,two=50".parse().unwrap(), "one=50,two=50".into(), at);
        let t = next(&mut watcher, &[("one", 5), ("two", 5)]);
        assert_eq!(t.event.as_deref(), Some("expectation now one=50,two=50"));
        let mut event = None;
        for _ in 0..400 {
            let t = next(&mut watcher, &[("one", 5), ("two", 5)]);
            if t.state == Agreement::Agrees {
                event = t.event;
                break;
            }
        }
        assert_eq!(event.as_deref(), Some("agrees"));
        let states: Vec<Agreement> = watcher.periods().iter().map(|p| p.state).collect();
        assert_eq!(
            states,
            [
                Agreement::Undecided,
                Agreement::Agrees,
                Agreement::Disagrees,
                Agreement::Undecided,
                Agreement::Agrees
            ]
        );
        let total: u64 = watcher
            .periods()
            .iter()
            .flat_map(|p| p.counts.values())
            .sum();
        assert!(total > 300, "{:?}", watcher.periods());
    }
}
