//! `checker plot SAMPLES... --out FILE.svg|.html`: flags, the reports' expectations, and
//! writing the picture; `checker rehearse --plot FILE` comes through here too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::args::{load_report, parse_fraction, parse_positive_duration};
use super::output::{emit, fail};
use checker_core::exit;
use checker_core::expect::Expectation;
use report::plot::{self, Format, PlotError, PlotOptions, Span};

/// What `checker plot --help` shows after the flags.
pub const HELP: &str =
    "The picture has three panels over one time axis (seconds since the first sample, UTC):
  share      each version's share of the connections in rolling windows (solid), its
             Wilson interval at the verdict's per-version confidence (shaded), the
             expected weights as dashed steps, and windows with errors as red crosses
             (the share of the window's connections that failed)
  connect    connect latency p50 (thick) and p99 (thin) per version, ms, log scale
  reply      reply latency p50 and p99 per version, ms, log scale
The expected weights come from the samples' own expectation lines (`checker watch
--samples-out` records every change of --expect-file) and from the reports given with
--report (each report's weights over its run). Samples are read twice, a line at a time,
into at most 1000 time bins: a file of millions of samples plots in bounded memory.

Exit codes: 0 written; 2 unreadable, malformed or empty input, an output name that is
not .svg or .html, or an output that cannot be written.";

/// Flags of `checker plot`.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// Samples files written by `--samples-out` (verify, watch), or directories of
    /// `*.jsonl` files (`checker rehearse --samples-dir`).
    #[arg(value_name = "SAMPLES.jsonl|DIR", required = true)]
    pub samples: Vec<PathBuf>,
    /// A JSON report of the same run (`checker verify --json FILE`): its expected weights
    /// are drawn as a step over its run's time. Repeatable (`;`-separated in the variable).
    #[arg(
        long = "report",
        env = "CHECKER_PLOT_REPORTS",
        value_name = "REPORT.json",
        value_delimiter = ';'
    )]
    pub reports: Vec<PathBuf>,
    /// Where to write the picture: FILE.svg, or FILE.html for a page with the SVG inline.
    #[arg(long, short = 'o', env = "CHECKER_PLOT_OUT", value_name = "FILE")]
    pub out: PathBuf,
    /// Rolling window length, e.g. 2s [default: a fortieth of the samples' time range].
    #[arg(long, env = "CHECKER_PLOT_WINDOW", value_name = "D", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub window: Option<Duration>,
    /// Family-wide confidence of the intervals, as a percentage (99%) or a fraction
    /// [default: the first report's, else 99%].
    #[arg(long, env = "CHECKER_CONFIDENCE", value_name = "P", value_parser = parse_fraction, allow_negative_numbers = true)]
    pub confidence: Option<f64>,
    /// The picture's title [default: the samples files' names].
    #[arg(long, env = "CHECKER_PLOT_TITLE", value_name = "TEXT")]
    pub title: Option<String>,
}

/// The span of one verify report: its expected weights from its start to its end.
fn report_span(path: &Path) -> Result<(Span, f64), String> {
    let run = load_report(path)?;
    let time = |text: &str, what: &str| {
        checker_core::clock::unix_seconds(text)
            .ok_or_else(|| format!("the report {} has no RFC 3339 {what} time", path.display()))
    };
    let expect = Expectation::new(run.inputs.expect.iter().map(|e| (e.name.clone(), e.weight)))
        .map_err(|e| {
            format!(
                "the report {} has no usable expectation: {e}",
                path.display()
            )
        })?;
    let span = Span {
        from: time(&run.times.started_at, "start")?,
        to: time(&run.times.finished_at, "end")?,
        expect,
        label: None,
    };
    Ok((span, run.inputs.confidence))
}

/// Draws `samples` with `spans` into `out`; returns the line to print.
fn draw_to(
    samples: &[PathBuf],
    spans: Vec<Span>,
    options: &PlotOptions,
    out: &Path,
) -> Result<String, String> {
    let format = Format::of_path(out).map_err(|e| e.to_string())?;
    let picture = plot::plot(samples, spans, options, format).map_err(|e| match e {
        PlotError::NoSamples(_) => {
            format!("{e} (write some with `checker verify --samples-out FILE`)")
        }
        e => e.to_string(),
    })?;
    std::fs::write(out, &picture)
        .map_err(|e| format!("cannot write the picture {}: {e}", out.display()))?;
    Ok(format!(
        "plot: wrote {} ({} KiB)\n",
        out.display(),
        picture.len().div_ceil(1024)
    ))
}

/// Runs `checker plot`: 0 when the picture was written, 2 otherwise.
pub fn run(args: &PlotArgs) -> i32 {
    let fail = |e: &dyn std::fmt::Display| fail(e, exit::USAGE);
    // The output's name is checked before any input is read.
    if let Err(e) = Format::of_path(&args.out) {
        return fail(&e);
    }
    let mut spans = Vec::new();
    let mut report_confidence = None;
    for path in &args.reports {
        match report_span(path) {
            Ok((span, confidence)) => {
                spans.push(span);
                report_confidence.get_or_insert(confidence);
            }
            Err(e) => return fail(&e),
        }
    }
    let options = PlotOptions {
        window: args.window,
        confidence: args
            .confidence
            .or(report_confidence)
            .unwrap_or(PlotOptions::default().confidence),
        title: args.title.clone(),
    };
    match draw_to(&args.samples, spans, &options, &args.out) {
        Ok(line) => {
            emit(&line);
            exit::PASS
        }
        Err(e) => fail(&e),
    }
}

/// `checker rehearse --plot FILE`: where the walk's samples go, and the picture at the end.
#[cfg(feature = "rehearse")]
pub struct RehearsalPlot {
    out: PathBuf,
    samples_dir: PathBuf,
    /// The temporary directory holding the samples when no `--samples-dir` was given.
    _temp: Option<tempfile::TempDir>,
}

#[cfg(feature = "rehearse")]
impl RehearsalPlot {
    /// Checks the output's name and makes sure the walk writes its samples somewhere:
    /// `samples_dir` when given, else a temporary directory (removed when this is dropped).
    pub fn prepare(out: &Path, samples_dir: &mut Option<PathBuf>) -> Result<Self, String> {
        Format::of_path(out).map_err(|e| e.to_string())?;
        let (dir, temp) = match samples_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("checker-rehearse-")
                    .tempdir()
                    .map_err(|e| format!("cannot create a temporary samples directory: {e}"))?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        *samples_dir = Some(dir.clone());
        Ok(Self {
            out: out.to_owned(),
            samples_dir: dir,
            _temp: temp,
        })
    }

    /// Draws the walk in `report`: every verified step's samples, its expected split as a
    /// step from the start of its verification to the next one's, labelled with its name.
    pub fn draw(
        &self,
        report: &rehearse::summary::WalkReport,
        confidence: f64,
    ) -> Result<String, String> {
        let verified: Vec<(&rehearse::summary::StepReport, f64, f64)> = report
            .steps
            .iter()
            .filter_map(|step| {
                let times = &step.verify.as_ref()?.times;
                let from = checker_core::clock::unix_seconds(&times.started_at)?;
                let to = checker_core::clock::unix_seconds(&times.finished_at)?;
                Some((step, from, to))
            })
            .collect();
        let mut spans = Vec::new();
        for (i, (step, from, to)) in verified.iter().enumerate() {
            let expect: Expectation = step
                .expect
                .parse()
                .map_err(|e| format!("step {} has no usable expectation: {e}", step.number))?;
            let to = verified.get(i + 1).map_or(*to, |next| next.1.max(*from));
            spans.push(Span {
                from: *from,
                to,
                expect,
                label: Some(step.name.clone()),
            });
        }
        let files: Vec<PathBuf> = verified
            .iter()
            .map(|(step, ..)| self.samples_dir.join(format!("step-{}.jsonl", step.number)))
            .filter(|p| p.is_file())
            .collect();
        if files.is_empty() {
            return Err(format!(
                "no step wrote samples to {}: nothing to draw",
                self.samples_dir.display()
            ));
        }
        let options = PlotOptions {
            window: None,
            confidence,
            title: Some(format!(
                "tcp-canary rehearsal: {} steps through the {} gateway",
                report.steps.len(),
                report.gateway.as_str()
            )),
        };
        draw_to(&files, spans, &options, &self.out)
    }
}
