//! The figures of a run that thresholds and baselines name: a latency quantile, the
//! error rate or samples per second, per version or overall, read from a [`Tally`].

use std::fmt;

use hdrhistogram::Histogram;

use crate::tally::Tally;

/// Which latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    /// Time to establish the connection.
    Connect,
    /// Time from sending the probe to the complete reply.
    Reply,
}

impl LatencyKind {
    /// Both kinds, in report order.
    pub const ALL: [LatencyKind; 2] = [LatencyKind::Connect, LatencyKind::Reply];

    /// `connect` or `reply`.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyKind::Connect => "connect",
            LatencyKind::Reply => "reply",
        }
    }
}

/// One figure of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency percentile in microseconds, e.g. `p99_reply`.
    Latency {
        /// Connect or reply.
        kind: LatencyKind,
        /// The percentile, in (0, 100].
        percentile: f64,
    },
    /// Failed over finished samples (per version: its malformed replies over its replies).
    ErrorRate,
    /// Finished samples per second of the run (per version: its replies per second).
    SamplesPerS,
}

/// Parses a percentile written `p99` or `p99.9` into a number in (0, 100].
pub fn parse_percentile(s: &str) -> Result<f64, String> {
    let number = s
        .strip_prefix('p')
        .ok_or_else(|| format!("{s:?} is not a percentile such as p99 or p99.9"))?;
    match number.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!(
            "{s:?} is not a percentile between p0 (exclusive) and p100"
        )),
    }
}

impl std::str::FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error_rate" => return Ok(Metric::ErrorRate),
            "samples_per_s" => return Ok(Metric::SamplesPerS),
            _ => {}
        }
        let unknown = || {
            format!("unknown figure {s:?}: use pNN_reply, pNN_connect, error_rate or samples_per_s")
        };
        let (percentile, kind) = s.split_once('_').ok_or_else(unknown)?;
        let kind = match kind {
            "reply" => LatencyKind::Reply,
            "connect" => LatencyKind::Connect,
            _ => return Err(unknown()),
        };
        if !percentile.starts_with('p') {
            return Err(unknown());
        }
        Ok(Metric::Latency {
            kind,
            percentile: parse_percentile(percentile)?,
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Latency { kind, percentile } => write!(f, "p{percentile}_{}", kind.as_str()),
            Metric::ErrorRate => f.write_str("error_rate"),
            Metric::SamplesPerS => f.write_str("samples_per_s"),
        }
    }
}

impl Metric {
    /// Whether a higher value is worse (latency, errors) rather than better (throughput).
    pub fn higher_is_worse(&self) -> bool {
        !matches!(self, Metric::SamplesPerS)
    }

    /// `value` in this metric's unit, for people: `1.25ms`, `0.10%`, `2500/s`.
    pub fn show(&self, value: f64) -> String {
        match self {
            Metric::Latency { .. } => duration_us(value.round() as u64),
            Metric::ErrorRate => format!("{:.2}%", value * 100.0),
            Metric::SamplesPerS => format!("{value:.0}/s"),
        }
    }
}

/// A latency in microseconds, shortened: `85µs`, `1.25ms`, `2.10s`.
pub fn duration_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// A figure's key in reports: `metric` overall, `version.metric` per version.
pub fn key(version: Option<&str>, metric: &Metric) -> String {
    match version {
        Some(v) => format!("{v}.{metric}"),
        None => metric.to_string(),
    }
}

/// Splits a figure's key back into its version (or `None` = overall) and metric. A
/// version name may hold dots, and so may a percentile (`p99.9`): the first split
/// whose right side is a metric wins.
pub fn parse_key(key: &str) -> Result<(Option<&str>, Metric), String> {
    match key.parse::<Metric>() {
        Ok(m) => Ok((None, m)),
        Err(whole) => key
            .match_indices('.')
            .find_map(|(i, _)| Some((Some(&key[..i]), key[i + 1..].parse().ok()?)))
            .ok_or(whole),
    }
}

/// The figures of one run: its tally and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Figures<'a> {
    /// What was counted.
    pub tally: &'a Tally,
    /// Seconds from start to end.
    pub elapsed_s: f64,
}

/// The value at `percentile` of `h`, microseconds; `None` when empty.
pub fn percentile_of(h: &Histogram<u64>, percentile: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(percentile / 100.0) as f64)
}

impl Figures<'_> {
    /// The value of `metric` for `version` (or overall); `None` when there is nothing
    /// to measure (no such version, no samples, no time).
    pub fn value(&self, version: Option<&str>, metric: &Metric) -> Option<f64> {
        let t = self.tally;
        match (metric, version) {
            (Metric::Latency { kind, percentile }, Some(v)) => {
                let v = t.versions().get(v)?;
                let h = match kind {
                    LatencyKind::Connect => &v.connect_us,
                    LatencyKind::Reply => &v.reply_us,
                };
                percentile_of(h, *percentile)
            }
            (Metric::Latency { kind, percentile }, None) => {
                let mut all: Option<Histogram<u64>> = None;
                for v in t.versions().values() {
                    let h = match kind {
                        LatencyKind::Connect => &v.connect_us,
                        LatencyKind::Reply => &v.reply_us,
                    };
                    match &mut all {
                        // Same bounds in one tally: adding cannot fail.
                        Some(sum) => {
                            let _ = sum.add(h);
                        }
                        None => all = Some(h.clone()),
                    }
                }
                percentile_of(&all?, *percentile)
            }
            (Metric::ErrorRate, None) => {
                let n = t.attempted();
                (n > 0).then(|| t.errors() as f64 / n as f64)
            }
            (Metric::ErrorRate, Some(v)) => {
                let errors = t.version_errors().get(v).copied().unwrap_or(0);
                let n = t.versions().get(v).map_or(0, |x| x.count) + errors;
                (n > 0).then(|| errors as f64 / n as f64)
            }
            (Metric::SamplesPerS, version) => {
                let n = match version {
                    None => t.attempted(),
                    Some(v) => t.versions().get(v)?.count,
                };
                (self.elapsed_s > 0.0).then(|| n as f64 / self.elapsed_s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_shortened() {
        assert_eq!(duration_us(85), "85µs");
        assert_eq!(duration_us(1250), "1.25ms");
        assert_eq!(duration_us(2_100_000), "2.10s");
    }

    #[test]
    fn metrics_parse_and_print_back() {
        for text in [
            "p99_reply",
            "p50_connect",
            "p99.9_reply",
            "error_rate",
            "samples_per_s",
        ] {
            let m: Metric = text.parse().unwrap();
            assert_eq!(m.to_string(), text);
        }
        for bad in [
            "p0_reply",
            "p101_reply",
            "q99_reply",
            "p99_rtt",
            "rate",
            "p99",
        ] {
            assert!(bad.parse::<Metric>().is_err(), "{bad}");
        }
        assert!(Metric::ErrorRate.higher_is_worse());
        assert!(!Metric::SamplesPerS.higher_is_worse());
    }
}
