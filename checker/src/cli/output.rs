//! The one output convention of every subcommand (as oha's printer has it): one output
//! mode, and the one place that writes what a subcommand shows, as text for people or
//! as JSON for programs, to a writer. The words and documents themselves come from the
//! report crate (and the rehearse crate for the rehearsal); the subcommands only say
//! what to show and in which mode.

use std::io::{self, IsTerminal, Write};

use clap::ValueEnum;

use checker_core::verify::Verification;
use checker_core::watch::{Period, Tick};
use report::lint::LintReport;

/// How a subcommand prints its result on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputMode {
    /// Lines and tables for people to read.
    Text,
    /// JSON with a `schema_version`, for programs (schemas: report/schema/, rehearse/schema/).
    Json,
}

impl OutputMode {
    /// Text on a terminal, JSON (lines) otherwise: `checker watch`, which has no flag for it.
    pub fn for_stdout() -> Self {
        if io::stdout().is_terminal() {
            Self::Text
        } else {
            Self::Json
        }
    }
}

/// What a subcommand shows: each knows its text and its JSON.
#[derive(Debug, Clone, Copy)]
pub enum Shown<'a> {
    /// A verification (`verify`, `merge`): the table and verdict line, or the report document.
    Verification(&'a Verification),
    /// The findings of `lint` and the split the manifests route.
    Lint(&'a LintReport),
    /// A whole rehearsal (`rehearse`): the summary table (naming settings by `names`,
    /// their flags), or the rehearsal document.
    #[cfg(feature = "rehearse")]
    Rehearsal(&'a rehearse::summary::WalkReport, rehearse::setting::Names),
    /// One interval of `watch`: a line, or a JSON line.
    WatchTick(&'a Tick),
    /// The periods at the end of `watch`.
    WatchSummary(&'a [Period]),
}

impl Shown<'_> {
    /// The text or the JSON of what is shown, ending in a newline.
    pub fn render(&self, mode: OutputMode) -> String {
        match mode {
            OutputMode::Text => self.text(),
            OutputMode::Json => self.json(),
        }
    }

    fn text(&self) -> String {
        match self {
            Shown::Verification(v) => report::text::render(v),
            Shown::Lint(l) => report::lint::render(l),
            #[cfg(feature = "rehearse")]
            Shown::Rehearsal(r, names) => rehearse::summary::text::render_summary(r, *names),
            Shown::WatchTick(t) => format!("{}\n", report::watch::tick_line(t)),
            Shown::WatchSummary(p) => report::watch::summary_text(p),
        }
    }

    fn json(&self) -> String {
        match self {
            Shown::Verification(v) => report::json::to_string(v),
            Shown::Lint(l) => serde_json::to_string_pretty(l).unwrap_or_default() + "\n",
            #[cfg(feature = "rehearse")]
            Shown::Rehearsal(r, _) => rehearse::summary::json::render(r).unwrap_or_default(),
            Shown::WatchTick(t) => report::watch::tick_json(t),
            Shown::WatchSummary(p) => report::watch::summary_json(p),
        }
    }
}

/// Writes `shown` in `mode` to `out`.
pub fn write(out: &mut impl Write, mode: OutputMode, shown: &Shown<'_>) -> io::Result<()> {
    out.write_all(shown.render(mode).as_bytes())?;
    out.flush()
}

/// Prints `shown` in `mode` on stdout (see [`emit`]).
pub fn print(mode: OutputMode, shown: &Shown<'_>) {
    let _ = write(&mut io::stdout().lock(), mode, shown);
}

/// A note for people before or beside the result (the plan, the derived split): on
/// stdout in text mode, on stderr in JSON mode so that stdout stays one document.
pub fn note(mode: OutputMode, text: &str) {
    match mode {
        OutputMode::Text => emit(text),
        OutputMode::Json => eprint!("{text}"),
    }
}

/// Writes text to stdout. A closed stdout (`checker verify ... | head`) is not an
/// error worth a panic: the exit code still carries the verdict.
pub fn emit(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Prints `error` as the checker's one sentence on stderr and returns `code`.
pub fn fail(error: &dyn std::fmt::Display, code: i32) -> i32 {
    eprintln!("checker: {error}");
    code
}
