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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use checker_core::expect::Expectation;
use checker_core::verdict::planner::per_version_confidence;
use checker_core::verdict::wilson::z_for;
pub use error::PlotError;
use input::Record;
use series::{Bins, Layout};

/// Rolling windows per picture by default: the window is the time range over this.
pub const DEFAULT_WINDOWS: f64 = 40.0;

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
    versions: BTreeSet<String>,
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
                    match sample.version {
                        Some(v) if !s.versions.contains(v) => {
                            s.versions.insert(v.to_owned());
                        }
                        Some(_) => {}
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

/// Versions in colour order: as the expectations name them, then the others by name.
fn version_order(spans: &[Span], seen: &BTreeSet<String>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for span in spans {
        for v in span.expect.versions() {
            if !order.contains(&v.name) {
                order.push(v.name.clone());
            }
        }
    }
    for v in seen {
        if !order.contains(v) {
            order.push(v.clone());
        }
    }
    order
}

/// `x` (a fraction) as a percentage with at most two decimals, e.g. `99.5%`.
fn percent(x: f64) -> String {
    let text = format!("{:.2}", 100.0 * x);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
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
) -> Result<String, PlotError> {
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
    let versions = version_order(&spans, &survey.versions);
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
    Ok(match format {
        Format::Svg => svg,
        Format::Html => html(&picture.title, &svg),
    })
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
        let seen: BTreeSet<String> = ["zeta".to_owned(), "two".to_owned()].into();
        assert_eq!(version_order(&spans, &seen), ["one", "two", "zeta"]);
        assert_eq!(percent(0.995), "99.5%");
        assert_eq!(percent(0.99), "99%");
    }
}
