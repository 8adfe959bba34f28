//! The progress bar: drawn on stderr, only on a terminal, only once a run has lasted a second.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a run must last before the bar appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A progress bar that stays invisible for short runs and off a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    shown: AtomicBool,
    /// The bar counts seconds (duration-bound run) rather than samples.
    by_time: bool,
}

impl Progress {
    /// A bar over `total` samples (or `duration` when the count is open); inert when `enabled` is false.
    pub fn new(enabled: bool, total: Option<u64>, duration: Option<Duration>) -> Self {
        let by_time = total.is_none() && duration.is_some();
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let (length, template) = match (total, duration) {
                (Some(n), _) => (Some(n), "{bar:40} {pos}/{len} samples, eta {eta}, {msg}"),
                (None, Some(d)) => (Some(d.as_secs().max(1)), "{bar:40} {pos}/{len} s, {msg}"),
                (None, None) => (None, "{spinner} {pos} samples, {msg}"),
            };
            let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::hidden());
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            shown: AtomicBool::new(false),
            by_time,
        }
    }

    /// Reports `done` finished samples of which `errors` failed.
    pub fn update(&self, done: u64, errors: u64) {
        let Some(bar) = &self.bar else { return };
        let elapsed = self.started.elapsed();
        if !self.shown.load(Ordering::Relaxed) {
            if elapsed < SHOW_AFTER {
                return;
            }
            bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown.store(true, Ordering::Relaxed);
        }
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        if self.by_time {
            bar.set_position(elapsed.as_secs());
            bar.set_message(format!("{done} samples, {rate:.0}/s, {errors} errors"));
        } else {
            bar.set_position(done);
            bar.set_message(format!("{rate:.0}/s, {errors} errors"));
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
