//! What `checker watch` shows: a line per interval and the periods at the end, as text
//! for a terminal or as JSON lines (each with `schema_version`, described by
//! `report/schema/watch.schema.json`) otherwise.

use std::fmt::Write as _;

use serde::Serialize;

use checker_core::watch::{Agreement, Period, Tick};

use crate::table::pct;

/// One interval as a terminal line (without its newline).
pub fn tick_line(t: &Tick) -> String {
    let total: u64 = t.window.values().sum();
    let mut line = format!("{:>7.1}s ", t.elapsed_s);
    for (name, count) in &t.window {
        let _ = write!(line, " {name} {}", pct(*count as f64 / total.max(1) as f64));
    }
    if t.errors > 0 {
        let _ = write!(line, "  errors {}", t.errors);
    }
    let _ = write!(line, "  | running ({} samples):", t.evidence);
    for (name, i) in &t.intervals {
        let _ = write!(line, " {name} {}..{}", pct(i.low), pct(i.high));
    }
    let state = match t.state {
        Agreement::Undecided => "? undecided",
        Agreement::Agrees => "✔ agrees",
        Agreement::Disagrees => "✘ disagrees",
    };
    let _ = write!(line, "  {state}");
    if let Some(event) = &t.event {
        let _ = write!(line, "  <- {event}");
    }
    line
}

/// The periods as terminal lines, after a blank line.
pub fn summary_text(periods: &[Period]) -> String {
    let mut out = String::from("\nperiods:\n");
    for p in periods {
        let total: u64 = p.counts.values().sum();
        let shares: Vec<String> = p
            .counts
            .iter()
            .map(|(n, c)| format!("{n} {}", pct(*c as f64 / total.max(1) as f64)))
            .collect();
        let _ = writeln!(
            out,
            "  {:>7.1}s .. {:>7.1}s  expect {}  {:?}  {} samples ({}), {} errors",
            p.from_s,
            p.to_s,
            p.expect,
            p.state,
            total,
            shares.join(" "),
            p.errors
        );
    }
    out
}

/// The version of the layout of `checker watch`'s JSON lines; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The schema every JSON line of `checker watch` follows (a tick or the summary), as kept
/// in the repository.
pub const SCHEMA: &str = include_str!("../schema/watch.schema.json");

/// One interval as a JSON line: the layout version, then the tick's fields.
#[derive(Debug, Clone, Serialize)]
pub struct TickLine<'a> {
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The interval.
    #[serde(flatten)]
    pub tick: &'a Tick,
}

/// The last JSON line: every period of the watch.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryLine<'a> {
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The periods, oldest first.
    pub summary: &'a [Period],
}

/// The JSON line of one interval, with its newline.
pub fn tick_json(tick: &Tick) -> String {
    let line = TickLine {
        schema_version: SCHEMA_VERSION,
        tick,
    };
    serde_json::to_string(&line).unwrap_or_default() + "\n"
}

/// The JSON line of the periods, with its newline.
pub fn summary_json(periods: &[Period]) -> String {
    let line = SummaryLine {
        schema_version: SCHEMA_VERSION,
        summary: periods,
    };
    serde_json::to_string(&line).unwrap_or_default() + "\n"
}
