//! The drawing: three panels over one time axis (shares with their intervals, the
//! expected weights as steps and the errors; connect latency; reply latency), each with
//! its legend on the right, drawn with plotters' SVG backend.
//!
//! Every series has a legend entry only when it has something drawn, so the legend text
//! names exactly what the picture shows.

use plotters::element::{Cross, DashedPathElement, PathElement, Polygon, Rectangle, Text};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::error::PlotError;
use super::series::WindowPoint;

/// Width of the picture, pixels.
pub const WIDTH: u32 = 1200;
/// Height of the picture, pixels.
pub const HEIGHT: u32 = 1000;
/// Width of the legend column, pixels.
const LEGEND: u32 = 300;
/// Height of the title, pixels.
const TITLE: u32 = 56;
/// Height of the share panel; the latency panels share the rest.
const SHARE_PANEL: u32 = 430;
/// Legend line height, pixels.
const LINE: i32 = 19;
/// Most steps listed in the legend.
const MAX_LISTED_STEPS: usize = 14;

/// Colours of the versions in order (a colour-blind-safe set), then repeated.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
];
/// Colour of the error marks.
const ERROR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Colour of step boundaries.
const BOUNDARY: RGBColor = RGBColor(0x70, 0x70, 0x70);

/// One expectation over time, relative to the picture's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Start, seconds after the picture's start.
    pub from: f64,
    /// End, seconds after the picture's start.
    pub to: f64,
    /// Expected share of every version (in the picture's order), in 0..=1.
    pub shares: Vec<f64>,
    /// What the legend calls it, e.g. `canary 10% (one=90,two=10)`.
    pub label: String,
}

/// Everything the drawing shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// The first line of the title.
    pub title: String,
    /// The second line: counts, window, interval.
    pub subtitle: String,
    /// The x axis' description, e.g. `seconds since 2026-11-30T23:14:15Z`.
    pub x_desc: String,
    /// The end of the time axis, seconds.
    pub x_max: f64,
    /// The versions, in colour order.
    pub versions: Vec<String>,
    /// Runs of consecutive rolling windows.
    pub runs: Vec<Vec<WindowPoint>>,
    /// The expectations as steps (may be empty).
    pub steps: Vec<Step>,
    /// The interval's name in the legend, e.g. `99.5% interval`.
    pub interval_label: String,
}

fn colour(v: usize) -> RGBColor {
    PALETTE[v % PALETTE.len()]
}

fn failed(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// `v` milliseconds as a short axis label.
fn ms_label(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else if v >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `s` seconds as an axis label, with as many decimals as an axis up to `max` needs.
fn seconds_label(s: f64, max: f64) -> String {
    if max >= 20.0 {
        format!("{s:.0}")
    } else if max >= 2.0 {
        format!("{s:.1}")
    } else if max >= 0.2 {
        format!("{s:.2}")
    } else {
        format!("{s:.3}")
    }
}

/// Ticks of a log axis from `lo` to `hi`: 1, 2 and 5 times the powers of ten between.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for e in first..=last {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(e);
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
    }
    ticks
}

/// One legend entry's sample glyph.
enum Glyph {
    Line(RGBColor, u32),
    Dashed(RGBColor),
    Band(RGBColor),
    Mark(RGBColor),
    None,
}

/// A legend column: entries drawn one under the other from the top.
struct Legend<'a, 'b> {
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    y: i32,
}

impl Legend<'_, '_> {
    fn entry(&mut self, glyph: Glyph, text: &str) -> Result<(), PlotError> {
        let (x0, x1, y) = (8, 38, self.y + LINE / 2);
        match glyph {
            Glyph::Line(c, w) => self
                .area
                .draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(w)))
                .map_err(failed)?,
            Glyph::Dashed(c) => self
                .area
                .draw(&DashedPathElement::new(
                    vec![(x0, y), (x1, y)],
                    6,
                    4,
                    c.stroke_width(2),
                ))
                .map_err(failed)?,
            Glyph::Band(c) => self
                .area
                .draw(&Rectangle::new(
                    [(x0, y - 6), (x1, y + 6)],
                    c.mix(0.2).filled(),
                ))
                .map_err(failed)?,
            Glyph::Mark(c) => self
                .area
                .draw(&Cross::new(((x0 + x1) / 2, y), 5, c.stroke_width(2)))
                .map_err(failed)?,
            Glyph::None => {}
        }
        let style = TextStyle::from(("sans-serif", 14).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        self.area
            .draw(&Text::new(text.to_owned(), (x1 + 8, y), style))
            .map_err(failed)?;
        self.y += LINE;
        Ok(())
    }
}

/// The points of one series over every run: `(t, value)`, one list per run.
fn runs_of(
    runs: &[Vec<WindowPoint>],
    value: impl Fn(&WindowPoint) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for run in runs {
        let mut line = Vec::new();
        for p in run {
            match value(p) {
                Some(y) => line.push((p.t, y)),
                None if !line.is_empty() => out.push(std::mem::take(&mut line)),
                None => {}
            }
        }
        if !line.is_empty() {
            out.push(line);
        }
    }
    out
}

/// The expected share of version `v` as step lines, one per run of adjacent steps.
fn step_lines(steps: &[Step], v: usize) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut line: Vec<(f64, f64)> = Vec::new();
    let mut end = f64::NEG_INFINITY;
    for s in steps {
        let y = 100.0 * s.shares.get(v).copied().unwrap_or(0.0);
        if s.from > end && !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        let from = s.from.max(end);
        line.push((from, y));
        line.push((s.to.max(from), y));
        end = s.to.max(from);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// Draws the picture as an SVG document.
pub fn render(p: &Picture) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        let (title, rest) = root.split_vertically(TITLE);
        title
            .draw(&Text::new(
                p.title.clone(),
                (12, 8),
                ("sans-serif", 20).into_font().color(&BLACK),
            ))
            .map_err(failed)?;
        title
            .draw(&Text::new(
                p.subtitle.clone(),
                (12, 34),
                ("sans-serif", 13).into_font().color(&BLACK),
            ))
            .map_err(failed)?;
        let latency_h = (HEIGHT - TITLE - SHARE_PANEL) / 2;
        let (share_row, latency_rows) = rest.split_vertically(SHARE_PANEL);
        let (connect_row, reply_row) = latency_rows.split_vertically(latency_h);
        share_panel(p, &share_row)?;
        latency_panel(p, &connect_row, "connect", |w, v| w.connect[v])?;
        latency_panel(p, &reply_row, "reply", |w, v| w.reply[v])?;
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

type Area<'b> = DrawingArea<SVGBackend<'b>, plotters::coord::Shift>;

fn share_panel(p: &Picture, row: &Area<'_>) -> Result<(), PlotError> {
    let (chart_area, legend_area) = row.split_horizontally(WIDTH - LEGEND);
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        // A little room beyond 0 and 100 keeps lines there off the frame.
        .build_cartesian_2d(0.0..p.x_max, -1.5..101.5)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc(p.x_desc.as_str())
        .y_desc("share of connections (%)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .x_label_formatter(&|x| seconds_label(*x, p.x_max))
        .draw()
        .map_err(failed)?;
    let mut legend = Legend {
        area: &legend_area,
        y: 10,
    };
    for (v, name) in p.versions.iter().enumerate() {
        let c = colour(v);
        let share = |w: &WindowPoint| w.shares[v].map(|s| 100.0 * s.share);
        let low = |w: &WindowPoint| w.shares[v].map(|s| 100.0 * s.interval.low);
        let high = |w: &WindowPoint| w.shares[v].map(|s| 100.0 * s.interval.high);
        let lows = runs_of(&p.runs, low);
        let highs = runs_of(&p.runs, high);
        if !lows.is_empty() {
            let bands = lows.iter().zip(&highs).map(|(lo, hi)| {
                let mut ring: Vec<(f64, f64)> = hi.clone();
                ring.extend(lo.iter().rev());
                Polygon::new(ring, c.mix(0.2).filled())
            });
            chart.draw_series(bands).map_err(failed)?;
        }
        let steps = step_lines(&p.steps, v);
        if !steps.is_empty() {
            let dashed = steps
                .into_iter()
                .map(|line| DashedPathElement::new(line, 8, 5, c.stroke_width(2)));
            chart.draw_series(dashed).map_err(failed)?;
            legend.entry(Glyph::Dashed(c), &format!("{name} expected"))?;
        }
        let shares = runs_of(&p.runs, share);
        if !shares.is_empty() {
            let lines = shares
                .into_iter()
                .map(|line| PathElement::new(line, c.stroke_width(2)));
            chart.draw_series(lines).map_err(failed)?;
            legend.entry(Glyph::Line(c, 2), &format!("{name} share"))?;
            legend.entry(Glyph::Band(c), &format!("{name} {}", p.interval_label))?;
        }
    }
    let marks: Vec<(f64, f64)> = p
        .runs
        .iter()
        .flatten()
        .filter(|w| w.errors > 0)
        .map(|w| {
            (
                w.t,
                100.0 * w.errors as f64 / (w.errors + w.attributed) as f64,
            )
        })
        .collect();
    if !marks.is_empty() {
        chart
            .draw_series(
                marks
                    .into_iter()
                    .map(|m| Cross::new(m, 4, ERROR.stroke_width(2))),
            )
            .map_err(failed)?;
        legend.entry(Glyph::Mark(ERROR), "errors (% of the window)")?;
    }
    if p.steps.len() > 1 {
        let boundaries = p.steps.iter().skip(1).map(|s| {
            DashedPathElement::new(
                vec![(s.from, 0.0), (s.from, 100.0)],
                2,
                3,
                BOUNDARY.stroke_width(1),
            )
        });
        chart.draw_series(boundaries).map_err(failed)?;
        let numbers = p.steps.iter().enumerate().map(|(i, s)| {
            Text::new(
                format!("{}", i + 1),
                (s.from, 100.0),
                ("sans-serif", 13).into_font().color(&BOUNDARY),
            )
        });
        chart.draw_series(numbers).map_err(failed)?;
    }
    if !p.steps.is_empty() {
        legend.y += LINE / 2;
        legend.entry(Glyph::None, "expectations (numbered above):")?;
        for (i, s) in p.steps.iter().enumerate().take(MAX_LISTED_STEPS) {
            legend.entry(Glyph::None, &format!("{} {}", i + 1, s.label))?;
        }
        if p.steps.len() > MAX_LISTED_STEPS {
            legend.entry(
                Glyph::None,
                &format!("... and {} more", p.steps.len() - MAX_LISTED_STEPS),
            )?;
        }
    }
    Ok(())
}

fn latency_panel(
    p: &Picture,
    row: &Area<'_>,
    what: &str,
    get: impl Fn(&WindowPoint, usize) -> Option<super::series::Quantiles>,
) -> Result<(), PlotError> {
    let values: Vec<f64> = p
        .runs
        .iter()
        .flatten()
        .flat_map(|w| (0..p.versions.len()).filter_map(|v| get(w, v)))
        .flat_map(|q| [q.p50_ms, q.p99_ms])
        .filter(|v| *v > 0.0)
        .collect();
    let (mut lo, mut hi) = values.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    if values.is_empty() {
        (lo, hi) = (0.1, 10.0);
    }
    lo = (lo * 0.8).max(0.001);
    hi = (hi * 1.25).max(lo * 4.0);
    let (chart_area, legend_area) = row.split_horizontally(WIDTH - LEGEND);
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0.0..p.x_max,
            (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
        )
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc(p.x_desc.as_str())
        .y_desc(format!("{what} latency (ms, log scale)"))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .x_label_formatter(&|x| seconds_label(*x, p.x_max))
        .y_label_formatter(&|y| ms_label(*y))
        .draw()
        .map_err(failed)?;
    let mut legend = Legend {
        area: &legend_area,
        y: 10,
    };
    for (v, name) in p.versions.iter().enumerate() {
        let c = colour(v);
        for (quantile, width) in [("p50", 2), ("p99", 1)] {
            let lines = runs_of(&p.runs, |w| {
                get(w, v).map(|q| {
                    if quantile == "p50" {
                        q.p50_ms
                    } else {
                        q.p99_ms
                    }
                })
            });
            if lines.is_empty() {
                continue;
            }
            let style = if quantile == "p50" {
                c.stroke_width(width)
            } else {
                c.mix(0.75).stroke_width(width)
            };
            chart
                .draw_series(lines.into_iter().map(|l| PathElement::new(l, style)))
                .map_err(failed)?;
            legend.entry(Glyph::Line(c, width), &format!("{name} {what} {quantile}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(from: f64, to: f64, shares: &[f64]) -> Step {
        Step {
            from,
            to,
            shares: shares.to_vec(),
            label: String::new(),
        }
    }

    #[test]
    fn adjacent_steps_join_with_a_vertical_edge_and_gaps_break_the_line() {
        let steps = [
            step(0.0, 1.0, &[1.0, 0.0]),
            step(1.0, 2.0, &[0.9, 0.1]),
            step(3.0, 4.0, &[0.5, 0.5]),
        ];
        let lines = step_lines(&steps, 1);
        assert_eq!(
            lines,
            [
                vec![(0.0, 0.0), (1.0, 0.0), (1.0, 10.0), (2.0, 10.0)],
                vec![(3.0, 50.0), (4.0, 50.0)]
            ]
        );
        // A version the steps do not list is expected at zero.
        assert_eq!(step_lines(&steps[..1], 5), [vec![(0.0, 0.0), (1.0, 0.0)]]);
    }

    #[test]
    fn log_ticks_are_one_two_five_and_labels_fit_the_range() {
        assert_eq!(log_ticks(0.3, 30.0), [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(ms_label(0.5), "0.50");
        assert_eq!(ms_label(20.0), "20");
        assert_eq!(seconds_label(1.25, 1.5), "1.25");
        assert_eq!(seconds_label(125.0, 600.0), "125");
    }
}
