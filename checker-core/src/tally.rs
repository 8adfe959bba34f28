//! The tally: counts per version, latency HdrHistograms per version, errors by class,
//! schedule lag, and counts per consecutive window. Its size does not grow with the
//! number of samples; two tallies of the same shape merge.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::sampler::{ErrorClass, Sample};

/// Highest latency a histogram tracks, in microseconds (one hour); longer values are clamped.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by the histograms.
pub const LATENCY_SIGFIG: u8 = 3;
/// How many distinct versions are tracked by name; further names share [`OTHER_VERSIONS`].
pub const MAX_TRACKED_VERSIONS: usize = 32;
/// The bucket for versions beyond [`MAX_TRACKED_VERSIONS`] (has a space, so no real version collides).
pub const OTHER_VERSIONS: &str = "other versions";
/// How many distinct malformed replies are kept (with their counts) to show in reports.
pub const MALFORMED_KEPT: usize = 3;
/// How many distinct failure reasons (TLS, captured values) are kept with their counts.
pub const REASONS_KEPT: usize = 3;

/// One distinct reason a sample failed for, and how many samples failed so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReason {
    /// The error class's name.
    pub class: ErrorClass,
    /// The reason, one line, escaped (see [`Sample::reason`]).
    pub reason: String,
    /// Samples that failed with exactly this class and reason.
    pub count: u64,
}

/// One distinct malformed reply and how many samples got it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedReply {
    /// The reply's first bytes, escaped (see [`crate::sampler::reply_head`]).
    pub reply: String,
    /// Samples that got exactly this head.
    pub count: u64,
}

/// Two tallies whose counts add up past 2^64-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("their counts add up to more than 2^64-1")]
pub struct CountOverflow;

/// How many consecutive windows a run is split into for the drift check.
pub const WINDOWS: usize = 10;

/// An empty latency histogram of the tally's bounds (1 µs to [`MAX_LATENCY_US`] at
/// [`LATENCY_SIGFIG`] digits).
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds, checked by a unit test: this cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Counts and latency of one version.
#[derive(Debug, Clone)]
pub struct VersionTally {
    /// Samples this version answered.
    pub count: u64,
    /// Connect latency, microseconds.
    pub connect_us: Histogram<u64>,
    /// TLS handshake latency (connected to handshake done), microseconds; empty without TLS.
    pub handshake_us: Histogram<u64>,
    /// Reply latency (probe sent to reply complete), microseconds.
    pub reply_us: Histogram<u64>,
}

impl Default for VersionTally {
    fn default() -> Self {
        Self {
            count: 0,
            connect_us: new_histogram(),
            handshake_us: new_histogram(),
            reply_us: new_histogram(),
        }
    }
}

/// How samples are assigned to windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Windowing {
    /// By sample id, when the total count is known: window = id * WINDOWS / total.
    ById {
        /// The planned number of samples.
        total: u64,
    },
    /// By time since the start, when only the duration is known.
    ByTime {
        /// The planned duration.
        duration: Duration,
    },
}

impl Windowing {
    /// The window of sample `id`, begun `offset` after the start of sampling.
    fn index(self, id: u64, offset: Duration) -> usize {
        let w = WINDOWS as u128;
        let i = match self {
            Windowing::ById { total } => u128::from(id) * w / u128::from(total.max(1)),
            Windowing::ByTime { duration } => offset.as_nanos() * w / duration.as_nanos().max(1),
        };
        usize::try_from(i).unwrap_or(usize::MAX).min(WINDOWS - 1)
    }
}

/// Counts of one consecutive window of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Samples attributed to each version in this window.
    pub counts: BTreeMap<String, u64>,
    /// Samples that failed in this window.
    pub errors: u64,
    /// Samples of this window not counted: finished after the sequential verdict, or
    /// abandoned in flight when sampling stopped. Those are the slowest version's more
    /// often than not, so they can skew the window's shares (see [`Window::could_skew`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub left_out: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Window {
    /// Whether the samples left out of this window could move a version's share in it by
    /// more than `by` (a fraction): were they all one version, its share would change by
    /// up to left out / (attributed + left out).
    pub fn could_skew(&self, by: f64) -> bool {
        let attributed = self.counts.values().fold(0u64, |a, b| a.saturating_add(*b));
        let all = attributed.saturating_add(self.left_out);
        self.left_out > 0 && self.left_out as f64 > by * all as f64
    }
}

/// The first word of a malformed reply's head when it could be a version name (no
/// escapes, no spaces): the version that sent the wrong echo.
fn attributed_version(head: &str) -> Option<&str> {
    let (first, _) = head.split_once(' ')?;
    (!first.is_empty() && !first.contains('\\') && protocol::validate_version(first).is_ok())
        .then_some(first)
}

/// Everything a [`Tally`] holds, as plain values (to rebuild one from a report).
#[derive(Debug, Clone)]
pub struct TallyParts {
    /// Per-version counts and histograms.
    pub versions: BTreeMap<String, VersionTally>,
    /// Failed samples per class, in [`ErrorClass::ALL`] order.
    pub errors: [u64; ErrorClass::ALL.len()],
    /// How samples were assigned to windows.
    pub windowing: Windowing,
    /// Counts per window, oldest first.
    pub windows: Vec<Window>,
    /// Schedule lag with `--rate`.
    pub lag_us: Option<Histogram<u64>>,
    /// The first few distinct malformed replies.
    pub malformed: Vec<MalformedReply>,
    /// Attributable errors per version.
    pub version_errors: BTreeMap<String, u64>,
    /// The first few distinct failure reasons.
    pub reasons: Vec<FailureReason>,
}

/// Everything kept about a run's samples.
#[derive(Debug, Clone)]
pub struct Tally {
    versions: BTreeMap<String, VersionTally>,
    errors: [u64; ErrorClass::ALL.len()],
    windowing: Windowing,
    windows: Vec<Window>,
    lag_us: Option<Histogram<u64>>,
    malformed: Vec<MalformedReply>,
    /// Malformed replies whose first word names a version (attributable errors).
    version_errors: BTreeMap<String, u64>,
    reasons: Vec<FailureReason>,
}

impl Tally {
    /// An empty tally whose windows follow `windowing`.
    pub fn new(windowing: Windowing) -> Self {
        Self {
            versions: BTreeMap::new(),
            errors: [0; ErrorClass::ALL.len()],
            windowing,
            windows: vec![Window::default(); WINDOWS],
            lag_us: None,
            malformed: Vec::new(),
            version_errors: BTreeMap::new(),
            reasons: Vec::new(),
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, sample: &Sample) {
        let window = &mut self.windows[self.windowing.index(sample.id, sample.offset)];
        if let Some(lag) = sample.lag_us {
            self.lag_us
                .get_or_insert_with(new_histogram)
                .saturating_record(lag.max(1));
        }
        match &sample.result {
            Ok(version) => {
                let name = if self.versions.contains_key(version.as_str())
                    || self.versions.len() < MAX_TRACKED_VERSIONS
                {
                    version.as_str()
                } else {
                    OTHER_VERSIONS
                };
                let entry = match self.versions.get_mut(name) {
                    Some(entry) => entry,
                    None => self.versions.entry(name.to_owned()).or_default(),
                };
                entry.count += 1;
                if let Some(us) = sample.connect_us {
                    entry.connect_us.saturating_record(us.max(1));
                }
                if let Some(us) = sample.handshake_us {
                    entry.handshake_us.saturating_record(us.max(1));
                }
                if let Some(us) = sample.reply_us {
                    entry.reply_us.saturating_record(us.max(1));
                }
                match window.counts.get_mut(name) {
                    Some(count) => *count += 1,
                    None => {
                        window.counts.insert(name.to_owned(), 1);
                    }
                }
            }
            Err(class) => {
                self.errors[class.index()] += 1;
                window.errors += 1;
                if let Some(head) = &sample.reply_head {
                    self.keep_malformed(head, 1);
                    // Only an echo's first word is a version; another protocol's is not.
                    if *class == ErrorClass::MalformedReply
                        && let Some(version) = attributed_version(head)
                    {
                        self.count_version_error(version, 1);
                    }
                }
                if let Some(reason) = &sample.reason {
                    self.keep_reason(*class, reason, 1);
                }
            }
        }
    }

    /// Notes that sample `id`, begun `offset` after the start, is not counted (it finished
    /// after the sequential verdict, or was abandoned in flight): see [`Window::left_out`].
    pub fn left_out(&mut self, id: u64, offset: Duration) {
        let window = &mut self.windows[self.windowing.index(id, offset)];
        window.left_out = window.left_out.saturating_add(1);
    }

    /// Counts `n` samples with the malformed reply `head`, keeping the first
    /// [`MALFORMED_KEPT`] distinct ones.
    fn keep_malformed(&mut self, head: &str, n: u64) {
        if let Some(kept) = self.malformed.iter_mut().find(|m| m.reply == head) {
            // At most the malformed replies counted, whose sum is checked.
            kept.count = kept.count.saturating_add(n);
        } else if self.malformed.len() < MALFORMED_KEPT {
            self.malformed.push(MalformedReply {
                reply: head.to_owned(),
                count: n,
            });
        }
    }

    /// The first few distinct malformed replies, in the order first seen, with counts.
    pub fn malformed(&self) -> &[MalformedReply] {
        &self.malformed
    }

    /// Counts `n` samples that failed with `class` for `reason`, keeping the first
    /// [`REASONS_KEPT`] distinct ones.
    fn keep_reason(&mut self, class: ErrorClass, reason: &str, n: u64) {
        if let Some(kept) = self
            .reasons
            .iter_mut()
            .find(|r| r.class == class && r.reason == reason)
        {
            kept.count = kept.count.saturating_add(n);
        } else if self.reasons.len() < REASONS_KEPT {
            self.reasons.push(FailureReason {
                class,
                reason: reason.to_owned(),
                count: n,
            });
        }
    }

    /// The first few distinct failure reasons, in the order first seen, with counts.
    pub fn reasons(&self) -> &[FailureReason] {
        &self.reasons
    }

    /// The name `version` is counted under here: its own while fewer than
    /// [`MAX_TRACKED_VERSIONS`] are tracked (or it already is), else [`OTHER_VERSIONS`].
    fn tracked_name<'a>(&self, version: &'a str) -> &'a str {
        if self.versions.contains_key(version) || self.versions.len() < MAX_TRACKED_VERSIONS {
            version
        } else {
            OTHER_VERSIONS
        }
    }

    /// Adds everything in `other` (same windowing) to this tally, its versions beyond
    /// [`MAX_TRACKED_VERSIONS`] counted as [`OTHER_VERSIONS`]. Every count adds checked:
    /// a sum past 2^64-1 is an error (and this tally is then partly merged: drop it).
    pub fn merge(&mut self, other: &Tally) -> Result<(), CountOverflow> {
        let add = |a: &mut u64, b: u64| -> Result<(), CountOverflow> {
            *a = a.checked_add(b).ok_or(CountOverflow)?;
            Ok(())
        };
        // Every name of `other` maps once, so its windows fold as its versions do.
        let names: BTreeMap<&str, String> = other
            .versions
            .keys()
            .map(|name| (name.as_str(), self.tracked_name(name).to_owned()))
            .collect();
        for (name, theirs) in &other.versions {
            let ours = self
                .versions
                .entry(names[name.as_str()].clone())
                .or_default();
            add(&mut ours.count, theirs.count)?;
            // Same bounds on both sides (a report's are checked when read back), so
            // adding cannot fail.
            let _ = ours.connect_us.add(&theirs.connect_us);
            let _ = ours.handshake_us.add(&theirs.handshake_us);
            let _ = ours.reply_us.add(&theirs.reply_us);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            add(mine, theirs)?;
        }
        for (mine, theirs) in self.windows.iter_mut().zip(&other.windows) {
            add(&mut mine.errors, theirs.errors)?;
            add(&mut mine.left_out, theirs.left_out)?;
            for (name, n) in &theirs.counts {
                let name = names
                    .get(name.as_str())
                    .map_or(OTHER_VERSIONS, String::as_str);
                add(mine.counts.entry(name.to_owned()).or_default(), *n)?;
            }
        }
        self.checked_attempted().ok_or(CountOverflow)?;
        if let Some(theirs) = &other.lag_us {
            let _ = self.lag_us.get_or_insert_with(new_histogram).add(theirs);
        }
        for m in &other.malformed {
            self.keep_malformed(&m.reply, m.count);
        }
        for (version, n) in &other.version_errors {
            self.count_version_error(version, *n);
        }
        for r in &other.reasons {
            self.keep_reason(r.class, &r.reason, r.count);
        }
        Ok(())
    }

    /// All finished samples, or `None` when they add up past 2^64-1.
    pub fn checked_attempted(&self) -> Option<u64> {
        let mut total = 0u64;
        for n in self.versions.values().map(|v| v.count).chain(self.errors) {
            total = total.checked_add(n)?;
        }
        Some(total)
    }

    /// Counts `n` attributable errors of `version` (capped like the versions).
    fn count_version_error(&mut self, version: &str, n: u64) {
        let name = if self.version_errors.contains_key(version)
            || self.version_errors.len() < MAX_TRACKED_VERSIONS
        {
            version
        } else {
            OTHER_VERSIONS
        };
        let sum = self.version_errors.entry(name.to_owned()).or_default();
        // At most the malformed replies counted, whose sum is checked.
        *sum = sum.saturating_add(n);
    }

    /// Malformed replies per version named by their first word: a reply that carries a
    /// version's prefix but a wrong or truncated echo is that version's error.
    pub fn version_errors(&self) -> &BTreeMap<String, u64> {
        &self.version_errors
    }

    /// How samples are assigned to windows.
    pub fn windowing(&self) -> Windowing {
        self.windowing
    }

    /// Failed samples per class, in [`ErrorClass::ALL`] order.
    pub fn errors_by_class(&self) -> [u64; ErrorClass::ALL.len()] {
        self.errors
    }

    /// Rebuilds a tally from its parts (the inverse of the accessors; see
    /// [`crate::snapshot`]). Windows beyond [`WINDOWS`] are dropped, missing ones are empty.
    pub fn from_parts(parts: TallyParts) -> Self {
        let mut windows = parts.windows;
        windows.resize(WINDOWS, Window::default());
        let mut malformed = parts.malformed;
        malformed.truncate(MALFORMED_KEPT);
        let mut reasons = parts.reasons;
        reasons.truncate(REASONS_KEPT);
        Self {
            versions: parts.versions,
            errors: parts.errors,
            windowing: parts.windowing,
            windows,
            lag_us: parts.lag_us,
            malformed,
            version_errors: parts.version_errors,
            reasons,
        }
    }

    /// Per-version tallies, by name.
    pub fn versions(&self) -> &BTreeMap<String, VersionTally> {
        &self.versions
    }

    /// `(name, count)` of every version that answered, as the verdict takes them.
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.versions
            .iter()
            .map(|(name, v)| (name.clone(), v.count))
            .collect()
    }

    /// Samples attributed to a version (a tally read back or merged is checked to fit;
    /// this never wraps).
    pub fn attributed(&self) -> u64 {
        self.versions
            .values()
            .fold(0u64, |sum, v| sum.saturating_add(v.count))
    }

    /// Samples that failed, all classes (never wraps, as [`Tally::attributed`]).
    pub fn errors(&self) -> u64 {
        self.errors
            .iter()
            .fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    /// Samples that failed with `class`.
    pub fn errors_of(&self, class: ErrorClass) -> u64 {
        self.errors[class.index()]
    }

    /// All finished samples (never wraps, as [`Tally::attributed`]).
    pub fn attempted(&self) -> u64 {
        self.attributed().saturating_add(self.errors())
    }

    /// Counts per consecutive window, oldest first.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Schedule lag with `--rate`, microseconds; `None` without pacing.
    pub fn lag_us(&self) -> Option<&Histogram<u64>> {
        self.lag_us.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: u64, result: Result<&str, ErrorClass>) -> Sample {
        Sample {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            started_at: std::time::SystemTime::now(),
            offset: Duration::from_millis(id),
            result: result.map(str::to_owned),
            connect_us: Some(100 + id),
            handshake_us: None,
            reply_us: result.ok().map(|_| 200),
            lag_us: None,
            reply_head: (result == Err(ErrorClass::MalformedReply))
                .then(|| format!("garbage {}\\n", id % 5)),
            reason: None,
        }
    }

    #[test]
    fn counts_errors_and_windows_add_up() {
        let mut t = Tally::new(Windowing::ById { total: 100 });
        for id in 0..100 {
            let r = match id % 10 {
                0 => Err(ErrorClass::Refused),
                1 | 2 => Ok("two"),
                _ => Ok("one"),
            };
            t.record(&sample(id, r));
        }
        assert_eq!(t.attempted(), 100);
        assert_eq!(t.attributed(), 90);
        assert_eq!(t.errors_of(ErrorClass::Refused), 10);
        assert_eq!(
            t.counts(),
            vec![("one".to_owned(), 70), ("two".to_owned(), 20)]
        );
        for w in t.windows() {
            assert_eq!(w.counts["one"], 7);
            assert_eq!(w.counts["two"], 2);
            assert_eq!(w.errors, 1);
        }
        assert_eq!(t.versions()["two"].reply_us.len(), 20);
    }

    #[test]
    fn time_windows_follow_the_offset_and_clamp() {
        let mut t = Tally::new(Windowing::ByTime {
            duration: Duration::from_millis(10),
        });
        t.record(&sample(0, Ok("one")));
        t.record(&sample(5, Ok("one")));
        t.record(&sample(50, Ok("one")));
        assert_eq!(t.windows()[0].counts["one"], 1);
        assert_eq!(t.windows()[5].counts["one"], 1);
        assert_eq!(t.windows()[WINDOWS - 1].counts["one"], 1);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let w = Windowing::ById { total: 40 };
        let (mut a, mut b, mut all) = (Tally::new(w), Tally::new(w), Tally::new(w));
        for id in 0..40 {
            let s = sample(
                id,
                if id % 3 == 0 {
                    Ok("two")
                } else {
                    Err(ErrorClass::Reset)
                },
            );
            if id % 2 == 0 { &mut a } else { &mut b }.record(&s);
            all.record(&s);
        }
        a.merge(&b).unwrap();
        assert_eq!(a.counts(), all.counts());
        assert_eq!(a.errors(), all.errors());
        assert_eq!(a.windows(), all.windows());
        assert_eq!(
            a.versions()["two"].connect_us,
            all.versions()["two"].connect_us
        );
    }

    #[test]
    fn samples_left_out_count_in_their_window_and_merge_adds_them() {
        let w = Windowing::ById { total: 100 };
        let mut t = Tally::new(w);
        for id in 0..95 {
            t.record(&sample(id, Ok("one")));
        }
        t.left_out(97, Duration::ZERO);
        t.left_out(99, Duration::ZERO);
        let marked: Vec<u64> = t.windows().iter().map(|w| w.left_out).collect();
        let mut want = vec![0; WINDOWS];
        want[9] = 2;
        assert_eq!(marked, want);
        // 2 of 7 could move a share by 28.6 points: more than 25, not more than 30.
        assert!(t.windows()[9].could_skew(0.25) && !t.windows()[9].could_skew(0.3));
        assert!(!t.windows()[0].could_skew(0.0));
        // Counting stays what was recorded.
        assert_eq!(t.attempted(), 95);
        // By time: the window of the offset.
        let mut by_time = Tally::new(Windowing::ByTime {
            duration: Duration::from_secs(10),
        });
        by_time.left_out(0, Duration::from_millis(3500));
        assert_eq!(by_time.windows()[3].left_out, 1);
        assert_eq!(by_time.windows().iter().map(|w| w.left_out).sum::<u64>(), 1);
        // A merge keeps every part's marks.
        let mut other = Tally::new(w);
        other.left_out(12, Duration::ZERO);
        other.left_out(98, Duration::ZERO);
        t.merge(&other).unwrap();
        assert_eq!(t.windows()[1].left_out, 1);
        assert_eq!(t.windows()[9].left_out, 3);
        assert_eq!(t.windows().iter().map(|w| w.left_out).sum::<u64>(), 4);
    }

    #[test]
    fn distinct_versions_are_capped() {
        let mut t = Tally::new(Windowing::ById { total: 1000 });
        let names: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
        for (id, name) in names.iter().enumerate() {
            t.record(&sample(id as u64, Ok(name)));
        }
        assert_eq!(t.versions().len(), MAX_TRACKED_VERSIONS + 1);
        assert_eq!(
            t.versions()[OTHER_VERSIONS].count,
            100 - MAX_TRACKED_VERSIONS as u64
        );
    }

    #[test]
    fn handshakes_reasons_and_no_version_heads_are_kept_apart() {
        let mut t = Tally::new(Windowing::ById { total: 20 });
        for id in 0..10 {
            let mut s = sample(id, Ok("canary"));
            s.handshake_us = Some(300 + id);
            t.record(&s);
        }
        for id in 10..20 {
            let mut s = sample(id, Err(ErrorClass::NoVersion));
            // A banner's first word is no echo prefix: not that version's error.
            s.reply_head = Some("SSH-2.0-OpenSSH_9.2p1 canary\\r\\n".into());
            s.reason = Some(format!("captured \"x{}\" is not a version name", id % 5));
            t.record(&s);
        }
        assert_eq!(t.versions()["canary"].handshake_us.len(), 10);
        assert_eq!(t.versions()["canary"].handshake_us.min(), 300);
        assert!(t.version_errors().is_empty());
        assert_eq!(t.malformed()[0].count, 10);
        let kept: Vec<(ErrorClass, u64)> = t.reasons().iter().map(|r| (r.class, r.count)).collect();
        assert_eq!(kept, vec![(ErrorClass::NoVersion, 2); REASONS_KEPT]);
        let mut merged = Tally::new(Windowing::ById { total: 20 });
        merged.merge(&t).expect("counts fit");
        merged.merge(&t).expect("counts fit");
        assert_eq!(merged.reasons()[0].count, 4);
        assert_eq!(merged.versions()["canary"].handshake_us.len(), 20);
    }

    #[test]
    fn a_few_distinct_malformed_replies_are_kept_with_counts() {
        let mut t = Tally::new(Windowing::ById { total: 50 });
        for id in 0..50 {
            t.record(&sample(id, Err(ErrorClass::MalformedReply)));
        }
        let kept: Vec<(&str, u64)> = t
            .malformed()
            .iter()
            .map(|m| (m.reply.as_str(), m.count))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("garbage 0\\n", 10),
                ("garbage 1\\n", 10),
                ("garbage 2\\n", 10)
            ]
        );
        let mut merged = Tally::new(Windowing::ById { total: 50 });
        merged.merge(&t).unwrap();
        merged.merge(&t).unwrap();
        assert_eq!(merged.malformed()[0].count, 20);
    }
}
