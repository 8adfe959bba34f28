//! The progress bar: drawn on stderr, only on a terminal, only once a run has lasted a
//! second. One line of at most [`WIDTH`] columns: a bar, the count, the running split
//! per version and the errors.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use checker_core::observer::{ObserverError, RunObserver};

/// How long a run must last before the bar appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// The widest the line may be, so that an 80-column terminal never wraps it.
pub const WIDTH: usize = 79;
/// Columns of the bar itself.
const BAR: usize = 16;

/// A progress bar that stays invisible for short runs and off a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    shown: AtomicBool,
    total: Option<u64>,
    duration: Option<Duration>,
}

/// The text after the bar: progress, the running split per version and the errors, cut
/// to `width` columns (versions that do not fit are summarised as `+N more`).
pub fn status(
    done: u64,
    total: Option<u64>,
    elapsed: Duration,
    duration: Option<Duration>,
    counts: &[(String, u64)],
    errors: u64,
    width: usize,
) -> String {
    let head = match (total, duration) {
        (Some(n), _) => format!("{done}/{n}"),
        (None, Some(d)) => format!("{}s/{}s {done}", elapsed.as_secs(), d.as_secs()),
        (None, None) => format!("{done}"),
    };
    let tail = format!(" err {errors}");
    let attributed: u64 = counts.iter().map(|(_, n)| n).sum();
    let mut line = head;
    let budget = width.saturating_sub(tail.chars().count());
    for (i, (name, n)) in counts.iter().enumerate() {
        let share = *n as f64 * 100.0 / attributed.max(1) as f64;
        let item = format!(" {name} {share:.1}%");
        let rest = counts.len() - i - 1;
        let more = if rest > 0 {
            format!(" +{rest} more")
        } else {
            String::new()
        };
        let used = line.chars().count() + item.chars().count();
        if used + more.chars().count() > budget {
            let left = counts.len() - i;
            let note = format!(" +{left} more");
            if line.chars().count() + note.chars().count() <= budget {
                line.push_str(&note);
            }
            break;
        }
        line.push_str(&item);
    }
    line.push_str(&tail);
    line.chars().take(width).collect()
}

impl Progress {
    /// A bar over `total` samples (or `duration` when the count is open); inert when `enabled` is false.
    pub fn new(enabled: bool, total: Option<u64>, duration: Option<Duration>) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let length = match (total, duration) {
                (Some(n), _) => Some(n),
                (None, Some(d)) => Some(d.as_secs().max(1)),
                (None, None) => None,
            };
            let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::hidden());
            let template = match length {
                Some(_) => format!("{{bar:{BAR}}} {{msg}}"),
                None => "{spinner} {msg}".to_owned(),
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            shown: AtomicBool::new(false),
            total,
            duration,
        }
    }

    /// Whether a bar may be drawn at all (on a terminal and enabled).
    pub fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// Reports `done` finished samples, `errors` of them failed, and the counts per version.
    pub fn update(&self, done: u64, errors: u64, counts: &[(String, u64)]) {
        let Some(bar) = &self.bar else { return };
        let elapsed = self.started.elapsed();
        if !self.shown.load(Ordering::Relaxed) {
            if elapsed < SHOW_AFTER {
                return;
            }
            bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown.store(true, Ordering::Relaxed);
        }
        match (self.total, self.duration) {
            (None, Some(_)) => bar.set_position(elapsed.as_secs()),
            _ => bar.set_position(done),
        }
        let width = WIDTH.saturating_sub(BAR + 1);
        bar.set_message(status(
            done,
            self.total,
            elapsed,
            self.duration,
            counts,
            errors,
            width,
        ));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The progress bar as a run's observer: made when sampling starts (it then knows the
/// count or the duration); never drawn when `enabled` is false.
#[derive(Debug)]
pub struct ProgressObserver {
    enabled: bool,
    bar: OnceLock<Progress>,
}

impl ProgressObserver {
    /// A bar for the coming run, drawn when `enabled` (on a terminal, after a second).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            bar: OnceLock::new(),
        }
    }
}

impl RunObserver for ProgressObserver {
    fn started(&self, total: Option<u64>, duration: Option<Duration>) {
        let _ = self.bar.set(Progress::new(self.enabled, total, duration));
    }

    fn wants_progress(&self) -> bool {
        self.bar.get().is_some_and(Progress::is_drawn)
    }

    fn progress(&self, done: u64, errors: u64, counts: &[(String, u64)]) {
        if let Some(bar) = self.bar.get() {
            bar.update(done, errors, counts);
        }
    }

    fn finished(&self) -> Result<(), ObserverError> {
        if let Some(bar) = self.bar.get() {
            bar.finish();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    }

    #[test]
    fn the_status_shows_the_running_split_per_version() {
        let s = status(
            1000,
            Some(2865),
            Duration::from_secs(3),
            None,
            &counts(&[("one", 901), ("two", 99)]),
            2,
            WIDTH - BAR - 1,
        );
        assert_eq!(s, "1000/2865 one 90.1% two 9.9% err 2");
        let s = status(
            50,
            None,
            Duration::from_secs(3),
            Some(Duration::from_secs(60)),
            &counts(&[("one", 50)]),
            0,
            WIDTH - BAR - 1,
        );
        assert_eq!(s, "3s/60s 50 one 100.0% err 0");
    }

    #[test]
    fn the_whole_line_fits_80_columns_whatever_the_versions() {
        let many: Vec<(String, u64)> = (0..32)
            .map(|i| (format!("version-with-a-long-name-{i}"), i))
            .collect();
        for c in [&many[..], &many[..1], &many[..3], &[]] {
            for (done, errors) in [(u64::MAX, u64::MAX), (123_456, 1_234)] {
                let s = status(
                    done,
                    Some(done),
                    Duration::from_secs(1),
                    None,
                    c,
                    errors,
                    WIDTH - BAR - 1,
                );
                let line = BAR + 1 + s.chars().count();
                assert!(line < 80, "{line} columns: {s}");
                if c.len() > 1 && done < u64::MAX {
                    assert!(s.contains("more"), "{s}");
                }
            }
        }
    }
}
