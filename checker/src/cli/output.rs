//! The one output convention of every subcommand (as oha's printer has it): one output
//! mode, and the one place that writes what a subcommand shows, as text for people or
//! as JSON for programs, to a writer. The words and documents themselves come from the
//! report crate (and the rehearse crate for the rehearsal); the subcommands only say
//! what to show and in which mode.

use std::io::{self, IsTerminal, Write};

use clap::{Args, ValueEnum};

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
    /// JUnit XML for CI test reports: a case per version share (verify, merge), per step
    /// (rehearse), per finding (lint).
    Junit,
}

/// What an INCONCLUSIVE check becomes in JUnit XML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum JunitInconclusive {
    /// A failure of type `inconclusive`.
    #[default]
    Failure,
    /// A skipped case.
    Skipped,
}

/// The flag of `--output junit`.
#[derive(Debug, Clone, Default, Args)]
pub struct JunitArgs {
    /// With --output junit: an INCONCLUSIVE check is a failure of type `inconclusive`, or skipped.
    #[arg(long, env = "CHECKER_JUNIT_INCONCLUSIVE", value_enum, default_value_t = JunitInconclusive::Failure)]
    pub junit_inconclusive: JunitInconclusive,
}

impl JunitArgs {
    /// The JUnit writer's options: these flags and this host's name.
    pub fn options(&self) -> report::junit::Options {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty() && h.len() <= 255)
            .unwrap_or_else(|| "localhost".to_owned());
        report::junit::Options {
            inconclusive: match self.junit_inconclusive {
                JunitInconclusive::Failure => report::junit::Inconclusive::Failure,
                JunitInconclusive::Skipped => report::junit::Inconclusive::Skipped,
            },
            hostname,
        }
    }
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
    /// The text or the JSON of what is shown, ending in a newline (JUnit with the
    /// default options).
    pub fn render(&self, mode: OutputMode) -> String {
        self.render_as(mode, &JunitArgs::default())
    }

    /// The text, the JSON or the JUnit XML (as `junit` says) of what is shown.
    pub fn render_as(&self, mode: OutputMode, junit: &JunitArgs) -> String {
        match mode {
            OutputMode::Text => self.text(),
            OutputMode::Json => self.json(),
            OutputMode::Junit => self.junit(&junit.options()),
        }
    }

    /// `watch` has no JUnit form (it has no --output): its lines stay JSON.
    fn junit(&self, options: &report::junit::Options) -> String {
        let now = checker_core::clock::rfc3339_micros(std::time::SystemTime::now());
        let suite = match self {
            Shown::Verification(v) => report::junit::verification(v),
            Shown::Lint(l) => report::junit::lint(l, &now),
            #[cfg(feature = "rehearse")]
            Shown::Rehearsal(r, names) => rehearse::summary::junit::suite(r, *names, &now),
            Shown::WatchTick(_) | Shown::WatchSummary(_) => return self.json(),
        };
        report::junit::render(&[suite], options)
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
    print_as(mode, &JunitArgs::default(), shown);
}

/// Prints `shown` in `mode` on stdout, JUnit as `junit` says.
pub fn print_as(mode: OutputMode, junit: &JunitArgs, shown: &Shown<'_>) {
    let mut out = io::stdout().lock();
    let _ = out
        .write_all(shown.render_as(mode, junit).as_bytes())
        .and_then(|()| out.flush());
}

/// A note for people before or beside the result (the plan, the derived split): on
/// stdout in text mode, on stderr in JSON and JUnit mode so that stdout stays one document.
pub fn note(mode: OutputMode, text: &str) {
    match mode {
        OutputMode::Text => emit(text),
        OutputMode::Json | OutputMode::Junit => eprint!("{text}"),
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
