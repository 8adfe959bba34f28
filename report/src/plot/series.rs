//! Time bins filled one sample at a time, and the rolling windows drawn from them: each
//! version's share with its Wilson interval, latency p50 and p99, and the error rate.
//!
//! Memory is bounded by the bin count (at most [`MAX_BINS`]) times the versions, never
//! by the sample count: a bin keeps counts and two HdrHistograms per version.

use hdrhistogram::Histogram;

use super::input::SampleRecord;
use checker_core::verdict::Interval;
use checker_core::verdict::wilson::wilson;

/// The most bins a plot uses, whatever the window asked for.
pub const MAX_BINS: usize = 1000;
/// Bins per rolling window by default (a window moves by one bin).
pub const BINS_PER_WINDOW: usize = 5;

/// A latency histogram of one bin: two significant digits, grown as values come.
type Latency = Histogram<u64>;

fn new_latency() -> Latency {
    // `new` sizes for small values and resizes itself as larger ones come; it fails
    // only for more than five significant digits.
    Histogram::new(2).unwrap_or_else(|_| unreachable!("two significant digits are valid"))
}

/// Records `us`; with auto-resize only a value beyond any range could fail, and none is.
fn record(h: &mut Latency, us: u64) {
    let _ = h.record(us);
}

#[derive(Debug, Clone, Default)]
struct Bin {
    counts: Vec<u64>,
    errors: u64,
    connect: Vec<Option<Latency>>,
    reply: Vec<Option<Latency>>,
}

/// How the time axis is cut: where it starts, how wide a bin is, how many bins a window spans.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// The start of the first bin, seconds since the Unix epoch.
    pub t0: f64,
    /// Width of a bin, seconds.
    pub bin_s: f64,
    /// Number of bins.
    pub bins: usize,
    /// Bins per rolling window.
    pub window_bins: usize,
}

impl Layout {
    /// Bins from `t0` to `t1` for windows of `window_s` seconds: [`BINS_PER_WINDOW`] bins a
    /// window, or wider bins when that would make more than [`MAX_BINS`].
    pub fn new(t0: f64, t1: f64, window_s: f64) -> Self {
        let span = (t1 - t0).max(0.0);
        let window_s = window_s.max(1e-6);
        let mut bin_s = window_s / BINS_PER_WINDOW as f64;
        if span / bin_s >= (MAX_BINS - 1) as f64 {
            bin_s = span / (MAX_BINS - 1) as f64;
        }
        let bins = ((span / bin_s).floor() as usize + 1).min(MAX_BINS);
        let window_bins = ((window_s / bin_s).round() as usize).max(1);
        Self {
            t0,
            bin_s,
            bins,
            window_bins,
        }
    }

    /// The bin of time `t` (clamped to the first and last bin).
    pub fn bin_of(&self, t: f64) -> usize {
        let i = ((t - self.t0) / self.bin_s).floor();
        if i <= 0.0 {
            0
        } else {
            (i as usize).min(self.bins - 1)
        }
    }

    /// The window length, seconds.
    pub fn window_s(&self) -> f64 {
        self.bin_s * self.window_bins as f64
    }
}

/// A share and its interval, in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// Observed share of the window's attributed samples.
    pub share: f64,
    /// The Wilson score interval at the per-version confidence.
    pub interval: Interval,
}

/// Two latency quantiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// One rolling window, as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPoint {
    /// The middle of the window, seconds after the layout's `t0`.
    pub t: f64,
    /// Samples attributed to a version in the window.
    pub attributed: u64,
    /// Failed samples in the window.
    pub errors: u64,
    /// Per version (in the bins' order): its share, when anything was attributed.
    pub shares: Vec<Option<Share>>,
    /// Per version: connect latency, when it answered.
    pub connect: Vec<Option<Quantiles>>,
    /// Per version: reply latency, when it answered.
    pub reply: Vec<Option<Quantiles>>,
}

/// The bins of a plot, filled one sample at a time.
#[derive(Debug, Clone)]
pub struct Bins {
    layout: Layout,
    versions: Vec<String>,
    bins: Vec<Bin>,
}

impl Bins {
    /// Empty bins over `layout` for `versions` (samples of other versions are ignored).
    pub fn new(layout: Layout, versions: Vec<String>) -> Self {
        Self {
            bins: vec![Bin::default(); layout.bins],
            layout,
            versions,
        }
    }

    /// The versions, in order.
    pub fn versions(&self) -> &[String] {
        &self.versions
    }

    /// Counts one sample.
    pub fn add(&mut self, sample: &SampleRecord<'_>) {
        let k = self.versions.len();
        let bin = &mut self.bins[self.layout.bin_of(sample.at)];
        let Some(name) = sample.version else {
            bin.errors += 1;
            return;
        };
        let Some(v) = self.versions.iter().position(|n| n == name) else {
            return;
        };
        if bin.counts.is_empty() {
            bin.counts = vec![0; k];
            bin.connect = vec![None; k];
            bin.reply = vec![None; k];
        }
        bin.counts[v] += 1;
        if let Some(us) = sample.connect_us {
            record(bin.connect[v].get_or_insert_with(new_latency), us);
        }
        if let Some(us) = sample.reply_us {
            record(bin.reply[v].get_or_insert_with(new_latency), us);
        }
    }

    /// The rolling windows, one per non-empty bin, ending at that bin and starting no
    /// earlier than the last of `restarts` (times, seconds since the epoch, at which the
    /// expectation changed) before it; consecutive non-empty bins form one run, an empty
    /// bin ends it. `z` is the normal quantile of the per-version confidence.
    pub fn windows(&self, restarts: &[f64], z: f64) -> Vec<Vec<WindowPoint>> {
        let mut restart_bins: Vec<usize> =
            restarts.iter().map(|&t| self.layout.bin_of(t)).collect();
        restart_bins.sort_unstable();
        let k = self.versions.len();
        let mut runs: Vec<Vec<WindowPoint>> = Vec::new();
        let mut run: Vec<WindowPoint> = Vec::new();
        for (i, bin) in self.bins.iter().enumerate() {
            if bin.counts.is_empty() && bin.errors == 0 {
                if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
                continue;
            }
            let restart = restart_bins
                .iter()
                .rev()
                .find(|&&b| b <= i)
                .copied()
                .unwrap_or(0);
            let first = (i + 1).saturating_sub(self.layout.window_bins).max(restart);
            let window = &self.bins[first..=i];
            let mut counts = vec![0u64; k];
            let mut errors = 0;
            let mut connect: Vec<Option<Latency>> = vec![None; k];
            let mut reply: Vec<Option<Latency>> = vec![None; k];
            for b in window {
                errors += b.errors;
                for v in 0..b.counts.len() {
                    counts[v] += b.counts[v];
                    merge(&mut connect[v], b.connect[v].as_ref());
                    merge(&mut reply[v], b.reply[v].as_ref());
                }
            }
            let attributed: u64 = counts.iter().sum();
            let n = attributed as f64;
            let shares = counts
                .iter()
                .map(|&c| {
                    (attributed > 0).then(|| Share {
                        share: c as f64 / n,
                        interval: wilson(c as f64, n, z),
                    })
                })
                .collect();
            let start = self.layout.t0 + first as f64 * self.layout.bin_s;
            let end = self.layout.t0 + (i + 1) as f64 * self.layout.bin_s;
            run.push(WindowPoint {
                t: (start + end) / 2.0 - self.layout.t0,
                attributed,
                errors,
                shares,
                connect: connect.iter().map(quantiles).collect(),
                reply: reply.iter().map(quantiles).collect(),
            });
        }
        if !run.is_empty() {
            runs.push(run);
        }
        runs
    }
}

fn merge(into: &mut Option<Latency>, from: Option<&Latency>) {
    if let Some(from) = from {
        let into = into.get_or_insert_with(new_latency);
        // Both resize themselves, so adding cannot fail for lack of range.
        let _ = into.add(from);
    }
}

fn quantiles(h: &Option<Latency>) -> Option<Quantiles> {
    let h = h.as_ref().filter(|h| !h.is_empty())?;
    Some(Quantiles {
        p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: f64, version: Option<&str>, us: u64) -> SampleRecord<'_> {
        SampleRecord {
            at,
            version,
            connect_us: version.map(|_| us),
            reply_us: version.map(|_| 2 * us),
        }
    }

    #[test]
    fn the_layout_keeps_five_bins_a_window_and_at_most_max_bins() {
        let l = Layout::new(100.0, 110.0, 1.0);
        assert_eq!((l.bins, l.window_bins), (51, 5));
        assert!((l.bin_s - 0.2).abs() < 1e-12);
        assert_eq!(l.bin_of(99.0), 0);
        assert_eq!(l.bin_of(100.3), 1);
        assert_eq!(l.bin_of(200.0), 50);
        let fine = Layout::new(0.0, 3600.0, 0.01);
        assert_eq!(fine.bins, MAX_BINS);
        assert_eq!(fine.window_bins, 1);
        let one = Layout::new(5.0, 5.0, 1.0);
        assert_eq!(one.bins, 1);
    }

    #[test]
    fn windows_roll_over_bins_restart_at_changes_and_break_at_gaps() {
        let layout = Layout::new(0.0, 10.0, 2.0);
        let mut bins = Bins::new(layout, vec!["one".into(), "two".into()]);
        // Seconds 0..4: one only; 4..6: two only; 6..8: nothing; 8..10: one, and errors.
        for i in 0..400 {
            let t = f64::from(i) / 100.0;
            bins.add(&sample(t, Some("one"), 1000));
        }
        for i in 400..600 {
            bins.add(&sample(f64::from(i) / 100.0, Some("two"), 3000));
        }
        for i in 800..1000 {
            let t = f64::from(i) / 100.0;
            let v = if i % 4 == 0 { None } else { Some("one") };
            bins.add(&sample(t, v, 1000));
        }
        let z = checker_core::verdict::wilson::z_for(0.99);
        let runs = bins.windows(&[], z);
        assert_eq!(runs.len(), 2, "the empty seconds 6..8 split the runs");
        let first = &runs[0];
        let at = |t: f64| {
            first
                .iter()
                .find(|p| (p.t - t).abs() < 0.11)
                .unwrap_or_else(|| panic!("no window near {t}: {first:?}"))
        };
        let early = at(1.0);
        let one = early.shares[0].unwrap();
        assert_eq!((one.share, early.attributed), (1.0, 200));
        assert!(one.interval.low > 0.9 && one.interval.high == 1.0);
        // Two significant digits: within 1% of the value.
        assert!(
            (early.connect[0].unwrap().p50_ms - 1.0).abs() < 0.01,
            "{early:?}"
        );
        assert!(
            (early.reply[0].unwrap().p99_ms - 2.0).abs() < 0.02,
            "{early:?}"
        );
        assert!(early.connect[1].is_none());
        // A window over the change at 4 s mixes both versions without a restart...
        let mixed = at(4.1);
        let two = mixed.shares[1].unwrap();
        assert!(two.share > 0.0 && two.share < 1.0, "{mixed:?}");
        // ...and does not when the expectation changed there.
        let restarted = bins.windows(&[4.0], z);
        let after = restarted[0]
            .iter()
            .find(|p| (p.t - 4.1).abs() < 0.11)
            .unwrap();
        assert_eq!(after.shares[1].unwrap().share, 1.0, "{after:?}");
        // Errors are counted apart from the shares.
        let last = runs[1].last().unwrap();
        assert_eq!((last.errors, last.attributed), (50, 150));
        assert_eq!(last.shares[0].unwrap().share, 1.0);
    }

    #[test]
    fn samples_of_unknown_versions_and_only_errors_are_handled() {
        let mut bins = Bins::new(Layout::new(0.0, 1.0, 1.0), vec!["one".into()]);
        bins.add(&sample(0.5, Some("three"), 5));
        bins.add(&sample(0.5, None, 5));
        let runs = bins.windows(&[], 2.0);
        let p = &runs[0][0];
        assert_eq!((p.attributed, p.errors), (0, 1));
        assert_eq!(p.shares, vec![None]);
    }
}
