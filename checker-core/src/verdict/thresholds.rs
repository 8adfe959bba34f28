//! k6-style thresholds: `p99_reply<20ms`, `two.error_rate<0.1%`, `samples_per_s>2000`,
//! each a figure of the run (see [`super::figures`]) held to a limit.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Outcome;
use super::figures::{Figures, Metric, key, parse_key};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Op {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Less => actual < limit,
            Op::LessOrEqual => actual <= limit,
            Op::Greater => actual > limit,
            Op::GreaterOrEqual => actual >= limit,
        }
    }
}

/// One threshold: a figure, an operator and a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Threshold {
    /// The expression as given (trimmed).
    pub expression: String,
    /// The version it is about; `None` = overall.
    pub version: Option<String>,
    /// The figure.
    pub metric: Metric,
    /// The operator.
    pub op: Op,
    /// The limit in the metric's unit (microseconds, a fraction, samples per second).
    pub limit: f64,
}

/// Parses the limit of `metric`: a duration for latency, a percentage or fraction for
/// the error rate, a number for samples per second.
fn parse_limit(metric: &Metric, s: &str) -> Result<f64, String> {
    match metric {
        Metric::Latency { .. } => cli_support::duration::parse(s)
            .map(|d| d.as_secs_f64() * 1e6)
            .map_err(|e| format!("the limit {s:?} is not a duration such as 20ms: {e}")),
        Metric::ErrorRate => {
            let (n, scale) = match s.strip_suffix('%') {
                Some(n) => (n.trim(), 100.0),
                None => (s, 1.0),
            };
            match n.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 && x / scale <= 1.0 => Ok(x / scale),
                _ => Err(format!(
                    "the limit {s:?} is not a rate such as 0.1% or 0.001"
                )),
            }
        }
        Metric::SamplesPerS => match s.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(format!(
                "the limit {s:?} is not a number of samples per second"
            )),
        },
    }
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expression = text.trim().to_owned();
        let (at, op, len) = ["<=", ">=", "<", ">"]
            .iter()
            .filter_map(|op| expression.find(op).map(|at| (at, *op, op.len())))
            .min_by_key(|&(at, _, len)| (at, std::cmp::Reverse(len)))
            .ok_or_else(|| {
                format!("{text:?} has no operator: write FIGURE<LIMIT such as p99_reply<20ms")
            })?;
        let op = match op {
            "<=" => Op::LessOrEqual,
            ">=" => Op::GreaterOrEqual,
            "<" => Op::Less,
            _ => Op::Greater,
        };
        let lhs = expression[..at].trim();
        let rhs = expression[at + len..].trim();
        let (version, metric) = parse_key(lhs)?;
        let version = version.map(str::to_owned);
        Ok(Self {
            limit: parse_limit(&metric, rhs)?,
            expression,
            version,
            metric,
            op,
        })
    }
}

impl TryFrom<String> for Threshold {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Threshold> for String {
    fn from(t: Threshold) -> String {
        t.expression
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// A threshold and what the run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdResult {
    /// The expression as given.
    pub expression: String,
    /// The figure's key (`two.p99_reply`).
    pub figure: String,
    /// The measured value in the metric's unit; `None` when nothing was measured.
    pub actual: Option<f64>,
    /// The measured value for people (`1.25ms`, `0.10%`, `2500/s`, `-`).
    pub shown: String,
    /// PASS when it holds; FAIL when not, or when nothing was measured.
    pub outcome: Outcome,
}

/// Checks every threshold against the run's figures.
pub fn check(thresholds: &[Threshold], figures: &Figures<'_>) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let actual = figures.value(t.version.as_deref(), &t.metric);
            ThresholdResult {
                expression: t.expression.clone(),
                figure: key(t.version.as_deref(), &t.metric),
                actual,
                shown: actual.map_or_else(|| "-".to_owned(), |v| t.metric.show(v)),
                outcome: match actual {
                    Some(v) if t.op.holds(v, t.limit) => Outcome::Pass,
                    _ => Outcome::Fail,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{ErrorClass, Sample};
    use crate::tally::{Tally, Windowing};
    use std::time::{Duration, SystemTime};

    #[test]
    fn expressions_parse() {
        let t: Threshold = "two.p99_reply<20ms".parse().unwrap();
        assert_eq!(t.version.as_deref(), Some("two"));
        assert_eq!(t.op, Op::Less);
        assert!((t.limit - 20_000.0).abs() < 1e-9);
        let t: Threshold = " error_rate <= 0.1% ".parse().unwrap();
        assert_eq!((t.version, t.op), (None, Op::LessOrEqual));
        assert!((t.limit - 0.001).abs() < 1e-12);
        let t: Threshold = "v1.2.p99.9_connect>=2ms".parse().unwrap();
        assert_eq!(t.version.as_deref(), Some("v1.2"));
        assert_eq!(t.metric.to_string(), "p99.9_connect");
        let t: Threshold = "samples_per_s>2000".parse().unwrap();
        assert_eq!((t.op, t.limit), (Op::Greater, 2000.0));
        for bad in [
            "p99_reply",
            "p99_reply<fast",
            "p99_rtt<2ms",
            "error_rate<150%",
            "samples_per_s>-1",
        ] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&"two.p99_reply<20ms".parse::<Threshold>().unwrap());
        assert_eq!(json.unwrap(), "\"two.p99_reply<20ms\"");
    }

    #[test]
    fn thresholds_are_checked_against_the_figures() {
        let mut tally = Tally::new(Windowing::ById { total: 100 });
        for id in 0..100 {
            tally.record(&Sample {
                id,
                addr: "127.0.0.1:1".parse().unwrap(),
                started_at: SystemTime::now(),
                offset: Duration::ZERO,
                result: if id == 0 {
                    Err(ErrorClass::Refused)
                } else {
                    Ok(if id % 2 == 0 { "one" } else { "two" }.to_owned())
                },
                connect_us: Some(100),
                reply_us: Some(if id % 2 == 0 { 1_000 } else { 30_000 }),
                lag_us: None,
                reply_head: None,
            });
        }
        let figures = Figures {
            tally: &tally,
            elapsed_s: 0.5,
        };
        let list: Vec<Threshold> = [
            "one.p99_reply<20ms",
            "two.p99_reply<20ms",
            "error_rate<2%",
            "error_rate<0.5%",
            "samples_per_s>150",
            "three.p50_connect<1s",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let outcomes: Vec<Outcome> = check(&list, &figures).iter().map(|r| r.outcome).collect();
        use Outcome::{Fail, Pass};
        assert_eq!(outcomes, [Pass, Fail, Pass, Fail, Pass, Fail]);
        let r = &check(&list, &figures)[1];
        assert_eq!(
            (r.figure.as_str(), r.shown.as_str()),
            ("two.p99_reply", "30.02ms")
        );
        assert_eq!(check(&list, &figures)[5].shown, "-");
    }
}
