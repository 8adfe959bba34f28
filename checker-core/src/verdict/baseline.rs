//! A run against an earlier report of the same target: `--max-regression
//! p99=20%,samples_per_s=10%,error_rate=0.5pp` lists every compared figure with its
//! change and fails on a regression beyond its margin.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Outcome;
use super::compare::{parse_points, parse_relative};
use super::figures::{Figures, LatencyKind, Metric, key, parse_key, parse_percentile};

/// What a margin is about.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionFigure {
    /// A latency percentile (connect and reply, per version and overall): relative increase.
    Percentile(f64),
    /// Samples per second overall: relative decrease.
    SamplesPerS,
    /// The overall error rate: increase in points.
    ErrorRate,
}

/// One margin of `--max-regression`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMargin {
    /// The figure.
    pub figure: RegressionFigure,
    /// Largest regression that passes: relative for latency and throughput, points for errors.
    pub max: f64,
}

/// The default margins when `--baseline` comes without `--max-regression`.
pub const DEFAULT_MAX_REGRESSION: &str = "p99=20%,samples_per_s=10%,error_rate=0.5pp";

/// Parses `p99=20%,samples_per_s=10%,error_rate=0.5pp`.
pub fn parse_margins(s: &str) -> Result<Vec<RegressionMargin>, String> {
    s.split(',')
        .map(|part| {
            let (name, value) = part.trim().split_once('=').ok_or_else(|| {
                format!("{part:?} is not FIGURE=MARGIN such as p99=20% or samples_per_s=10%")
            })?;
            let (name, value) = (name.trim(), value.trim());
            Ok(match name {
                "samples_per_s" => RegressionMargin {
                    figure: RegressionFigure::SamplesPerS,
                    max: parse_relative(value)?,
                },
                "error_rate" => RegressionMargin {
                    figure: RegressionFigure::ErrorRate,
                    max: parse_points(value)?,
                },
                p => RegressionMargin {
                    figure: RegressionFigure::Percentile(parse_percentile(p).map_err(|_| {
                        format!("unknown figure {p:?}: use pNN, samples_per_s or error_rate")
                    })?),
                    max: parse_relative(value)?,
                },
            })
        })
        .collect()
}

/// The figures a margin compares, with their metric: `(version or overall, metric)`.
fn compared(margin: &RegressionMargin, versions: &[String]) -> Vec<(Option<String>, Metric)> {
    match margin.figure {
        RegressionFigure::Percentile(percentile) => {
            let mut out = Vec::new();
            for kind in LatencyKind::ALL {
                let metric = Metric::Latency { kind, percentile };
                out.push((None, metric));
                out.extend(versions.iter().map(|v| (Some(v.clone()), metric)));
            }
            out
        }
        RegressionFigure::SamplesPerS => vec![(None, Metric::SamplesPerS)],
        RegressionFigure::ErrorRate => vec![(None, Metric::ErrorRate)],
    }
}

/// The earlier report's figures and the margins they are held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRule {
    /// Where the figures came from (the file as given).
    pub source: String,
    /// The baseline's figures by key (`p99_reply`, `two.p99_reply`, `samples_per_s`).
    pub figures: BTreeMap<String, f64>,
    /// The margins.
    pub max_regression: Vec<RegressionMargin>,
}

impl BaselineRule {
    /// Takes from `baseline` every figure the margins compare.
    pub fn new(
        source: String,
        baseline: &Figures<'_>,
        max_regression: Vec<RegressionMargin>,
    ) -> Self {
        let versions: Vec<String> = baseline.tally.versions().keys().cloned().collect();
        let mut figures = BTreeMap::new();
        for margin in &max_regression {
            for (version, metric) in compared(margin, &versions) {
                if let Some(v) = baseline.value(version.as_deref(), &metric) {
                    figures.insert(key(version.as_deref(), &metric), v);
                }
            }
        }
        Self {
            source,
            figures,
            max_regression,
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineFigure {
    /// Its key (`two.p99_reply`).
    pub figure: String,
    /// The baseline's value.
    pub baseline: f64,
    /// This run's value; `None` when not measured (a FAIL).
    pub current: Option<f64>,
    /// The change: relative (`current / baseline - 1`) for latency and throughput,
    /// points (`current - baseline`) for the error rate.
    pub change: Option<f64>,
    /// `relative` or `points`.
    pub change_kind: &'static str,
    /// The regression allowed (latency up, throughput down, errors up).
    pub margin: f64,
    /// The change for people (`+12.0%`, `-0.10pp`).
    pub shown: String,
    /// FAIL on a regression beyond the margin.
    pub outcome: Outcome,
}

/// This run against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineVerdict {
    /// Where the baseline came from.
    pub source: String,
    /// Every compared figure.
    pub figures: Vec<BaselineFigure>,
    /// FAIL if any figure regressed beyond its margin.
    pub outcome: Outcome,
}

/// Compares this run's figures with the baseline's.
pub fn check(rule: &BaselineRule, now: &Figures<'_>) -> BaselineVerdict {
    let mut versions: Vec<String> = now.tally.versions().keys().cloned().collect();
    for figure in rule.figures.keys() {
        if let Ok((Some(v), _)) = parse_key(figure)
            && !versions.iter().any(|x| x == v)
        {
            versions.push(v.to_owned());
        }
    }
    let mut figures = Vec::new();
    for margin in &rule.max_regression {
        for (version, metric) in compared(margin, &versions) {
            let name = key(version.as_deref(), &metric);
            let Some(&baseline) = rule.figures.get(&name) else {
                continue;
            };
            let current = now.value(version.as_deref(), &metric);
            let points = metric == Metric::ErrorRate;
            let change = current.map(|c| {
                if points {
                    c - baseline
                } else {
                    c / baseline.max(f64::MIN_POSITIVE) - 1.0
                }
            });
            let regression = change.map(|c| if metric.higher_is_worse() { c } else { -c });
            figures.push(BaselineFigure {
                figure: name,
                baseline,
                current,
                change,
                change_kind: if points { "points" } else { "relative" },
                margin: margin.max,
                shown: match change {
                    None => "not measured".to_owned(),
                    Some(c) if points => format!("{:+.2}pp", c * 100.0),
                    Some(c) => format!("{:+.1}%", c * 100.0),
                },
                outcome: match regression {
                    Some(r) if r <= margin.max => Outcome::Pass,
                    _ => Outcome::Fail,
                },
            });
        }
    }
    let outcome = figures
        .iter()
        .map(|f| f.outcome)
        .max()
        .unwrap_or(Outcome::Pass);
    BaselineVerdict {
        source: rule.source.clone(),
        figures,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Sample;
    use crate::tally::{Tally, Windowing};
    use std::time::{Duration, SystemTime};

    fn tally(reply_us: u64, n: u64) -> Tally {
        let mut t = Tally::new(Windowing::ById { total: n });
        for id in 0..n {
            t.record(&Sample {
                id,
                addr: "127.0.0.1:1".parse().unwrap(),
                started_at: SystemTime::now(),
                offset: Duration::ZERO,
                result: Ok("one".to_owned()),
                connect_us: Some(100),
                reply_us: Some(reply_us),
                lag_us: None,
                handshake_us: None,
                reason: None,
                reply_head: None,
            });
        }
        t
    }

    #[test]
    fn margins_parse() {
        let m = parse_margins(DEFAULT_MAX_REGRESSION).unwrap();
        assert_eq!(m[0].figure, RegressionFigure::Percentile(99.0));
        assert_eq!(m[1].figure, RegressionFigure::SamplesPerS);
        assert!((m[2].max - 0.005).abs() < 1e-12);
        assert!(parse_margins("p99").is_err());
        assert!(parse_margins("latency=20%").is_err());
    }

    #[test]
    fn every_figure_is_listed_and_a_regression_beyond_the_margin_fails() {
        let (old, slower, same) = (tally(1_000, 1000), tally(1_500, 1000), tally(1_050, 1000));
        let figures = |t| Figures {
            tally: t,
            elapsed_s: 1.0,
        };
        let rule = BaselineRule::new(
            "old.json".into(),
            &figures(&old),
            parse_margins("p99=20%,samples_per_s=10%").unwrap(),
        );
        // p99 connect and reply, overall and for `one`, then samples per second.
        assert_eq!(rule.figures.len(), 5, "{rule:?}");
        let v = check(&rule, &figures(&same));
        assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
        assert_eq!(v.figures.len(), 5);
        let v = check(&rule, &figures(&slower));
        assert_eq!(v.outcome, Outcome::Fail);
        let reply = v
            .figures
            .iter()
            .find(|f| f.figure == "one.p99_reply")
            .unwrap();
        assert_eq!(reply.outcome, Outcome::Fail);
        assert_eq!(reply.shown, "+50.0%");
        // Throughput down by a half fails; latency alone unchanged passes.
        let slow_run = Figures {
            tally: &old,
            elapsed_s: 2.0,
        };
        let v = check(&rule, &slow_run);
        let rate = v
            .figures
            .iter()
            .find(|f| f.figure == "samples_per_s")
            .unwrap();
        assert_eq!(
            (rate.outcome, rate.shown.as_str()),
            (Outcome::Fail, "-50.0%")
        );
    }
}
