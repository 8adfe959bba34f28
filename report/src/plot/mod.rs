//! `checker plot`: a picture of a rollout from samples files (`--samples-out` of verify
//! and watch, the rehearsal's `--samples-dir`), as SVG or as an HTML page around it.
//!
//! It shows each version's share in rolling windows with its Wilson interval (the
//! verdict's interval, [`checker_core::verdict::wilson`], at the per-version confidence), the
//! expected weights as steps (from expectation lines in the samples, from reports, or
//! from the rehearsal's steps), connect and reply latency p50 and p99 per version, and
//! the windows with errors as marks.
//!
//! Input is read twice, one line at a time (first the time range and the versions, then
//! the bins), so memory is bounded by the bins ([`series::MAX_BINS`]), not the samples.

pub mod draw;
pub mod error;
pub mod input;
pub mod series;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use checker_core::expect::Expectation;
use checker_core::tally::{MAX_TRACKED_VERSIONS, OTHER_VERSIONS};
use checker_core::verdict::planner::per_version_confidence;
use checker_core::verdict::wilson::z_for;
pub use error::PlotError;
use input::Record;
use series::{Bins, Layout};

/// Rolling windows per picture by default: the window is the time range over this.
pub const DEFAULT_WINDOWS: f64 = 40.0;

/// The most distinct versions counted by name in the first pass (a few MiB); samples of
/// further names still count, as other versions. The picture itself draws at most
/// [`MAX_TRACKED_VERSIONS`] by name, as a run tracks them.
pub const SURVEY_VERSIONS: usize = 65_536;

/// What the picture is written as, from the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An SVG document (`.svg`).
    Svg,
    /// An HTML page with the SVG inline (`.html`, `.htm`).
    Html,
}

impl Format {
    /// The format that the name of `path` asks for.
    pub fn of_path(path: &Path) -> Result<Self, PlotError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(Self::Svg),
            Some("html" | "htm") => Ok(Self::Html),
            _ => Err(PlotError::Extension(path.to_owned())),
        }
    }
}

/// An expectation over a span of time (from a report, a rehearsal step or a samples file).
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Start, seconds since the Unix epoch.
    pub from: f64,
    /// End, seconds since the Unix epoch.
    pub to: f64,
    /// The expected split.
    pub expect: Expectation,
    /// Its name, e.g. `canary 10%` (the legend adds the split).
    pub label: Option<String>,
}

/// How to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Rolling window length [default: the time range / [`DEFAULT_WINDOWS`]].
    pub window: Option<Duration>,
    /// Family-wide confidence of the intervals (Bonferroni over the versions, as the verdict).
    pub confidence: f64,
    /// The title [default: the samples files' names].
    pub title: Option<String>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self {
            window: None,
            confidence: checker_core::verdict::Settings::default().confidence,
            title: None,
        }
    }
}

/// What the first pass finds.
#[derive(Debug, Default)]
struct Survey {
    samples: u64,
    errors: u64,
    first: f64,
    last: f64,
    /// Samples per version, for the first [`SURVEY_VERSIONS`] names.
    versions: HashMap<String, u64>,
    /// Whether more names came than were counted.
    more_versions: bool,
    expects: Vec<(f64, Expectation)>,
}

fn survey(files: &[PathBuf]) -> Result<Survey, PlotError> {
    let mut s = Survey {
        first: f64::INFINITY,
        last: f64::NEG_INFINITY,
        ..Survey::default()
    };
    for file in files {
        input::for_each_record(file, |record| {
            match record {
                Record::Sample(sample) => {
                    s.samples += 1;
                    s.first = s.first.min(sample.at);
                    s.last = s.last.max(sample.at);
                    let room = s.versions.len() < SURVEY_VERSIONS;
                    match sample.version.as_deref() {
                        Some(v) => match s.versions.get_mut(v) {
                            Some(n) => *n += 1,
                            None if room => {
                                s.versions.insert(v.to_owned(), 1);
                            }
                            None => s.more_versions = true,
                        },
                        None => s.errors += 1,
                    }
                }
                Record::Expect { at, expect } => s.expects.push((at, expect)),
            }
            Ok(())
        })?;
    }
    Ok(s)
}

/// The spans of the expectation lines: each until the next different one, the last until `end`.
fn spans_of_lines(mut lines: Vec<(f64, Expectation)>, end: f64) -> Vec<Span> {
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The same expectation again (a file rewritten with the same weights) changes nothing.
    lines.dedup_by(|later, earlier| later.1 == earlier.1);
    let ends: Vec<f64> = lines.iter().skip(1).map(|l| l.0).collect();
    lines
        .into_iter()
        .enumerate()
        .map(|(i, (from, expect))| Span {
            from,
            to: ends.get(i).copied().unwrap_or(end).max(from),
            expect,
            label: None,
        })
        .collect()
}

/// The versions drawn, in colour order: as the expectations name them, then the others
/// by samples (most first, then by name), at most [`MAX_TRACKED_VERSIONS`] by name; the
/// rest are drawn together as [`OTHER_VERSIONS`], last. Returns them and the folded names
/// (all of them unless the survey ran out of room: see [`Folded::more`]).
fn version_order(spans: &[Span], survey: &Survey) -> (Vec<String>, Folded) {
    let mut order: Vec<String> = Vec::new();
    for span in spans {
        for v in span.expect.versions() {
            if !order.contains(&v.name) && order.len() < MAX_TRACKED_VERSIONS {
                order.push(v.name.clone());
            }
        }
    }
    let mut seen: Vec<(&String, u64)> = survey.versions.iter().map(|(n, c)| (n, *c)).collect();
    seen.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut folded = Folded {
        names: Vec::new(),
        more: survey.more_versions,
    };
    for (name, _) in seen {
        if order.contains(name) {
            continue;
        }
        if order.len() < MAX_TRACKED_VERSIONS {
            order.push(name.clone());
        } else {
            folded.names.push(name.clone());
        }
    }
    if !folded.names.is_empty() || folded.more {
        folded.names.sort();
        order.push(OTHER_VERSIONS.to_owned());
    }
    (order, folded)
}

/// The versions a picture draws together as [`OTHER_VERSIONS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    /// Their names, sorted.
    pub names: Vec<String>,
    /// Whether there were more than these (more names than [`SURVEY_VERSIONS`]).
    pub more: bool,
}

impl Folded {
    /// The clause saying so, or `None` when nothing was folded.
    pub fn clause(&self) -> Option<String> {
        if self.names.is_empty() && !self.more {
            return None;
        }
        let examples: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let clause = crate::text::folded_clause(self.names.len(), &examples);
        Some(if self.more {
            format!("{clause}, and samples of still more names")
        } else {
            clause
        })
    }
}

/// A picture and what it folded.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    /// The SVG or HTML text.
    pub picture: String,
    /// The versions drawn as [`OTHER_VERSIONS`].
    pub folded: Folded,
}

/// A confidence as a percentage, as the table shows it but without a bare `.0`: `99.5%`,
/// `99%`, and never `100%` for less.
fn percent(x: f64) -> String {
    crate::table::confidence_pct(x).replace(".0%", "%")
}

fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0} s")
    } else if s >= 0.1 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

/// Draws the samples in `paths` (files, or directories of `*.jsonl` files) with the
/// expectations in `spans` and in the samples' own expectation lines.
pub fn plot(
    paths: &[PathBuf],
    spans: Vec<Span>,
    options: &PlotOptions,
    format: Format,
) -> Result<Drawn, PlotError> {
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(PlotError::Confidence(options.confidence));
    }
    if options.window.is_some_and(|w| w.is_zero()) {
        return Err(PlotError::Window);
    }
    let files = input::sample_files(paths)?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let given: Vec<String> = paths.iter().map(|f| f.display().to_string()).collect();
    let mut survey = survey(&files)?;
    if survey.samples == 0 {
        return Err(PlotError::NoSamples(names.join(", ")));
    }
    let mut spans = spans;
    spans.extend(spans_of_lines(
        std::mem::take(&mut survey.expects),
        survey.last,
    ));
    spans.sort_by(|a, b| a.from.total_cmp(&b.from));
    let t0 = spans.iter().map(|s| s.from).fold(survey.first, f64::min);
    let t1 = spans.iter().map(|s| s.to).fold(survey.last, f64::max);
    let window_s = options.window.map_or_else(
        || ((survey.last - survey.first) / DEFAULT_WINDOWS).max(0.001),
        |w| w.as_secs_f64(),
    );
    let layout = Layout::new(t0, t1, window_s);
    let (versions, folded) = version_order(&spans, &survey);
    let mut bins = Bins::new(layout, versions.clone());
    for file in &files {
        input::for_each_record(file, |record| {
            if let Record::Sample(sample) = record {
                bins.add(&sample);
            }
            Ok(())
        })?;
    }
    let per_version = per_version_confidence(options.confidence, versions.len());
    let restarts: Vec<f64> = spans.iter().map(|s| s.from).collect();
    let runs = bins.windows(&restarts, z_for(per_version));
    let steps = spans
        .iter()
        .map(|s| draw::Step {
            from: s.from - t0,
            to: s.to - t0,
            shares: versions
                .iter()
                .map(|v| s.expect.share_of(v).unwrap_or(0.0))
                .collect(),
            label: match &s.label {
                Some(l) => format!("{l} ({})", s.expect),
                None => s.expect.to_string(),
            },
        })
        .collect();
    let start = std::time::UNIX_EPOCH + Duration::from_secs_f64(t0.max(0.0));
    let picture = draw::Picture {
        title: options
            .title
            .clone()
            .unwrap_or_else(|| format!("tcp-canary: {}", short_list(&given))),
        subtitle: format!(
            "{} samples, {} failed; rolling windows of {} every {}; intervals: Wilson score at {} per version ({} family-wide)",
            survey.samples,
            survey.errors,
            seconds(layout.window_s()),
            seconds(layout.bin_s),
            percent(per_version),
            percent(options.confidence),
        ),
        x_desc: format!("seconds since {}", humantime::format_rfc3339_seconds(start)),
        x_max: (t1 - t0).max(0.001),
        versions,
        runs,
        steps,
        interval_label: format!("{} interval", percent(per_version)),
    };
    let svg = draw::render(&picture)?;
    let picture = match format {
        Format::Svg => svg,
        Format::Html => html(&picture.title, &svg),
    };
    Ok(Drawn { picture, folded })
}

/// `names` joined, the third and later ones counted rather than listed.
fn short_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [a] => a.clone(),
        [a, b] => format!("{a}, {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

/// An HTML page showing `svg` under `title`.
fn html(title: &str, svg: &str) -> String {
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    // The SVG document is inlined without its XML declaration (plotters writes none).
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n{svg}</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(Format::of_path(Path::new("a.svg")).unwrap(), Format::Svg);
        assert_eq!(Format::of_path(Path::new("a.HTML")).unwrap(), Format::Html);
        let e = Format::of_path(Path::new("a.png")).unwrap_err().to_string();
        assert_eq!(
            e,
            "a.png: the picture is written as .svg or .html; name the output file so"
        );
        assert!(Format::of_path(Path::new("plot")).is_err());
    }

    #[test]
    fn expectation_lines_become_adjacent_spans() {
        let a: Expectation = "one=100".parse().unwrap();
        let b: Expectation = "one=50,two=50".parse().unwrap();
        let spans = spans_of_lines(
            vec![(20.0, b.clone()), (10.0, a.clone()), (25.0, b.clone())],
            30.0,
        );
        assert_eq!(
            spans.iter().map(|s| (s.from, s.to)).collect::<Vec<_>>(),
            [(10.0, 20.0), (20.0, 30.0)]
        );
        assert_eq!(spans[1].expect, b);
        let survey = Survey {
            versions: [("zeta".to_owned(), 9), ("two".to_owned(), 1)].into(),
            ..Survey::default()
        };
        let (order, folded) = version_order(&spans, &survey);
        assert_eq!(order, ["one", "two", "zeta"]);
        assert_eq!(folded, Folded::default());
        let many = Survey {
            versions: (0..40).map(|i| (format!("v{i:02}"), 100 - i)).collect(),
            ..Survey::default()
        };
        let (order, folded) = version_order(&spans, &many);
        assert_eq!(order.len(), MAX_TRACKED_VERSIONS + 1);
        assert_eq!(&order[..3], ["one", "two", "v00"]);
        assert_eq!(order.last().map(String::as_str), Some(OTHER_VERSIONS));
        assert_eq!(
            folded.names,
            [
                "v30", "v31", "v32", "v33", "v34", "v35", "v36", "v37", "v38", "v39"
            ]
        );
        let clause = folded.clause().unwrap();
        assert!(clause.starts_with("10 versions beyond the 32"), "{clause}");
        assert_eq!(percent(0.995), "99.5%");
        assert_eq!(percent(0.99), "99%");
        assert_eq!(percent(0.99995), "99.995%");
    }
}
