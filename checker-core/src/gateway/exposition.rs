//! The Prometheus text exposition format (version 0.0.4, what Envoy's
//! `/stats/prometheus` and Istio's `:15090/stats/prometheus` serve), and the counters
//! read from it: Envoy's `envoy_cluster_upstream_cx_total` by cluster (label
//! `envoy_cluster_name`, or `cluster_name` under Istio's stats tags) and Istio's
//! `istio_tcp_connections_opened_total` by `destination_version`.
//!
//! A small strict parser, written here: the maintained crates do not fit (see the
//! commit that added it). Every sample line of a kept metric is parsed fully (quoted
//! label values with `\\`, `\"` and `\n` escapes, any characters inside, a trailing
//! comma, an optional timestamp); a line that is not valid is an error with its number,
//! never silently skipped. Lines of other metrics are only checked to start with a name.

use std::collections::BTreeMap;

use serde::Serialize;

use super::counters::{Counters, Snapshot};
use super::stats::PROXY_STATS_MATCHER_HINT;

/// Envoy's per-cluster opened-connections counter in Prometheus form.
pub const ENVOY_OPENED: &str = "envoy_cluster_upstream_cx_total";
/// Envoy's per-cluster connect failures in Prometheus form.
pub const ENVOY_CONNECT_FAIL: &str = "envoy_cluster_upstream_cx_connect_fail";
/// Envoy's per-cluster remote closes with active requests in Prometheus form.
pub const ENVOY_DESTROY_REMOTE: &str = "envoy_cluster_upstream_cx_destroy_remote_with_active_rq";
/// The cluster label of stock Envoy.
pub const ENVOY_CLUSTER_LABEL: &str = "envoy_cluster_name";
/// The cluster label under Istio's bootstrap `stats_tags`.
pub const ISTIO_CLUSTER_LABEL: &str = "cluster_name";
/// Istio's standard TCP metric of opened connections.
pub const ISTIO_OPENED: &str = "istio_tcp_connections_opened_total";
/// The label of Istio's standard metrics that names the destination's version.
pub const VERSION_LABEL: &str = "destination_version";

/// One sample line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// Its labels in the order written.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
    /// Its timestamp in milliseconds, when written.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an exposition text could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExpositionError {
    /// A line does not follow the format.
    #[error(
        "{source_name} line {line} is not in the Prometheus text format: {reason} (the line starts {start:?})"
    )]
    Syntax {
        /// Where the text came from.
        source_name: String,
        /// The line number.
        line: usize,
        /// What is wrong.
        reason: String,
        /// The line's first characters.
        start: String,
    },
    /// A counter's value is not a count (negative, fractional or not finite).
    #[error("{source_name} line {line}: {name} is {value}, not a count")]
    NotACount {
        /// Where the text came from.
        source_name: String,
        /// The line number.
        line: usize,
        /// The metric.
        name: String,
        /// The value.
        value: f64,
    },
    /// A cluster asked for has no series.
    #[error(
        "{source_name} has no {ENVOY_OPENED} series for the cluster {cluster} (label {ENVOY_CLUSTER_LABEL} or {ISTIO_CLUSTER_LABEL}; it has {shown} such series){hint}"
    )]
    Missing {
        /// Where the text came from.
        source_name: String,
        /// The cluster.
        cluster: String,
        /// How many series of the metric there were.
        shown: usize,
        /// What may explain it.
        hint: String,
    },
}

fn syntax(
    source_name: &str,
    line: usize,
    text: &str,
    reason: impl Into<String>,
) -> ExpositionError {
    ExpositionError::Syntax {
        source_name: source_name.to_owned(),
        line,
        reason: reason.into(),
        start: text.chars().take(60).collect(),
    }
}

/// Parses the samples of the metrics `keep` accepts (by name) from `text`.
pub fn parse(
    text: &str,
    source_name: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(usize, Sample)>, ExpositionError> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let number = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let body = line.trim_start_matches([' ', '\t']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let name_end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(body.len());
        let name = &body[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(syntax(
                source_name,
                number,
                line,
                "a sample must start with a metric name",
            ));
        }
        if !keep(name) {
            continue;
        }
        let sample = sample(name, &body[name_end..])
            .map_err(|reason| syntax(source_name, number, line, reason))?;
        out.push((number, sample));
    }
    Ok(out)
}

/// The rest of a sample line after its name: `{labels} value [timestamp]`.
fn sample(name: &str, rest: &str) -> Result<Sample, String> {
    let mut labels = Vec::new();
    let mut rest = rest;
    if let Some(after) = rest.strip_prefix('{') {
        rest = labels_of(after, &mut labels)?;
    }
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = fields.next().ok_or("the value is missing")?;
    let value = parse_value(value).ok_or_else(|| format!("{value:?} is not a number"))?;
    let timestamp_ms = match fields.next() {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("{t:?} is not a timestamp"))?,
        ),
        None => None,
    };
    if fields.next().is_some() {
        return Err("there is more after the value and timestamp".to_owned());
    }
    if rest.chars().next().is_some_and(|c| c != ' ' && c != '\t') {
        return Err("a space must separate the value from the name or labels".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Go's float syntax as the format uses it: `NaN`, `+Inf`, `-Inf`, decimals, exponents.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) => {
            text.parse().ok()
        }
        _ => None,
    }
}

/// Reads `name="value",...}` into `labels`; returns what follows the `}`.
fn labels_of<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("the labels are not closed with }")?;
        let label = &s[..end];
        if label.is_empty() || label.starts_with(|c: char| c.is_ascii_digit()) {
            return Err("a label name is missing or invalid".to_owned());
        }
        s = s[end..].trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("the label {label} has no ="))?
            .trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of the label {label} is not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let close = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => return Err(format!("\\{c} is not an escape of the format")),
                    None => return Err(format!("the value of the label {label} is not closed")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("the value of the label {label} is not closed")),
            }
        };
        if labels.iter().any(|(n, _)| n == label) {
            return Err(format!("the label {label} appears twice"));
        }
        labels.push((label.to_owned(), value));
        s = s[close + 1..].trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if s.is_empty() {
            return Err("the labels are not closed with }".to_owned());
        } else if !s.starts_with('}') {
            return Err("labels must be separated by commas".to_owned());
        }
    }
}

fn count(source_name: &str, line: usize, s: &Sample) -> Result<u64, ExpositionError> {
    let v = s.value;
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(63) {
        Ok(v as u64)
    } else {
        Err(ExpositionError::NotACount {
            source_name: source_name.to_owned(),
            line,
            name: s.name.clone(),
            value: v,
        })
    }
}

/// Reads Envoy's per-cluster counters of `clusters` from an exposition text; every
/// cluster must have an `envoy_cluster_upstream_cx_total` series.
pub fn envoy_clusters(
    text: &str,
    clusters: &[&str],
    source_name: &str,
) -> Result<Snapshot, ExpositionError> {
    let samples = parse(text, source_name, |n| {
        matches!(n, ENVOY_OPENED | ENVOY_CONNECT_FAIL | ENVOY_DESTROY_REMOTE)
    })?;
    let mut snapshot = Snapshot {
        source: source_name.to_owned(),
        keys: BTreeMap::new(),
    };
    let mut series = 0usize;
    let mut cut_names = Vec::new();
    for (line, s) in &samples {
        let Some(cluster) = s
            .label(ENVOY_CLUSTER_LABEL)
            .or_else(|| s.label(ISTIO_CLUSTER_LABEL))
        else {
            continue;
        };
        if s.name == ENVOY_OPENED {
            series += 1;
        }
        if !clusters.contains(&cluster) {
            if clusters
                .iter()
                .any(|c| c.starts_with(cluster) && c[cluster.len()..].starts_with('.'))
            {
                cut_names.push(cluster.to_owned());
            }
            continue;
        }
        let value = count(source_name, *line, s)?;
        let entry: &mut Counters = snapshot.keys.entry(cluster.to_owned()).or_default();
        match s.name.as_str() {
            ENVOY_OPENED => entry.opened = entry.opened.saturating_add(value),
            ENVOY_CONNECT_FAIL => {
                entry.connect_fail = Some(entry.connect_fail.unwrap_or(0).saturating_add(value));
            }
            _ => {
                entry.destroy_remote_with_active_rq = Some(
                    entry
                        .destroy_remote_with_active_rq
                        .unwrap_or(0)
                        .saturating_add(value),
                );
            }
        }
    }
    let opened: Vec<&str> = samples
        .iter()
        .filter(|(_, s)| s.name == ENVOY_OPENED)
        .filter_map(|(_, s)| {
            s.label(ENVOY_CLUSTER_LABEL)
                .or_else(|| s.label(ISTIO_CLUSTER_LABEL))
        })
        .collect();
    for &c in clusters {
        if !opened.contains(&c) {
            let hint = if cut_names.is_empty() {
                format!("; {PROXY_STATS_MATCHER_HINT}")
            } else {
                format!(
                    "; Envoy's default tags cut cluster names at the first dot ({}): give the bootstrap Istio's stats_tags rule for cluster_name, or read the admin /stats instead",
                    cut_names.join(", ")
                )
            };
            return Err(ExpositionError::Missing {
                source_name: source_name.to_owned(),
                cluster: c.to_owned(),
                shown: series,
                hint,
            });
        }
    }
    Ok(snapshot)
}

/// Reads Istio's `istio_tcp_connections_opened_total` from an exposition text, summed
/// by `destination_version` over the series whose labels equal every `(name, value)`
/// of `matchers` (e.g. `reporter="source"`, `destination_service=...`).
pub fn istio_versions(
    text: &str,
    matchers: &[(String, String)],
    source_name: &str,
) -> Result<Snapshot, ExpositionError> {
    let samples = parse(text, source_name, |n| n == ISTIO_OPENED)?;
    let mut snapshot = Snapshot {
        source: source_name.to_owned(),
        keys: BTreeMap::new(),
    };
    for (line, s) in &samples {
        if !matchers.iter().all(|(n, v)| s.label(n) == Some(v.as_str())) {
            continue;
        }
        let version = s
            .label(VERSION_LABEL)
            .unwrap_or(super::mapping::UNKNOWN_VERSION);
        let value = count(source_name, *line, s)?;
        let entry = snapshot.keys.entry(version.to_owned()).or_default();
        entry.opened = entry.opened.saturating_add(value);
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_escapes_timestamps_and_trailing_commas() {
        let text = "# HELP x A help text with \"quotes\"\n# TYPE x counter\n\nx{a=\"1,2=3}\",b=\"q\\\"\\\\\\n\",} 12 1700000000000\nx 1e3\n  x{} +Inf\ny{broken 1\n";
        let samples = parse(text, "t", |n| n == "x").unwrap();
        assert_eq!(samples.len(), 3);
        let (line, s) = &samples[0];
        assert_eq!(*line, 4);
        assert_eq!(s.label("a"), Some("1,2=3}"));
        assert_eq!(s.label("b"), Some("q\"\\\n"));
        assert_eq!(s.value, 12.0);
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(samples[1].1.value, 1000.0);
        assert!(samples[2].1.value.is_infinite());
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        for (text, reason) in [
            ("x{a=\"1\"", "the labels are not closed with }"),
            ("x{a=\"1", "the value of the label a is not closed"),
            ("x{a=1} 2", "the value of the label a is not quoted"),
            ("x{a=\"1\" b=\"2\"} 2", "labels must be separated by commas"),
            ("x{a=\"1\",a=\"2\"} 2", "the label a appears twice"),
            ("x{a=\"\\t\"} 2", "\\t is not an escape of the format"),
            ("x", "the value is missing"),
            ("x abc", "\"abc\" is not a number"),
            ("x 1 2 3", "there is more after the value and timestamp"),
            ("x 1 1.5", "\"1.5\" is not a timestamp"),
            (
                "x{}1",
                "a space must separate the value from the name or labels",
            ),
        ] {
            let err = parse(&format!("# ok\n{text}\n"), "scrape", |_| true).unwrap_err();
            assert_eq!(
                err,
                ExpositionError::Syntax {
                    source_name: "scrape".into(),
                    line: 2,
                    reason: reason.into(),
                    start: text.into()
                },
                "{text}"
            );
        }
        let err = parse("{\"utf8.name\"} 1\n", "s", |_| true).unwrap_err();
        assert!(
            err.to_string()
                .contains("a sample must start with a metric name"),
            "{err}"
        );
    }

    const ENVOY: &str = "# TYPE envoy_cluster_upstream_cx_total counter
envoy_cluster_upstream_cx_total{cluster_name=\"outbound|9000|canary|tcp-echo.default.svc.cluster.local\"} 20
envoy_cluster_upstream_cx_total{cluster_name=\"outbound|9000|stable|tcp-echo.default.svc.cluster.local\"} 80
# TYPE envoy_cluster_upstream_cx_connect_fail counter
envoy_cluster_upstream_cx_connect_fail{cluster_name=\"outbound|9000|stable|tcp-echo.default.svc.cluster.local\"} 2
# TYPE envoy_cluster_upstream_cx_length_ms histogram
envoy_cluster_upstream_cx_length_ms_bucket{cluster_name=\"x\",le=\"0.5\"} 0
";

    #[test]
    fn envoy_cluster_counters_by_either_label() {
        let stable = "outbound|9000|stable|tcp-echo.default.svc.cluster.local";
        let canary = "outbound|9000|canary|tcp-echo.default.svc.cluster.local";
        let s = envoy_clusters(ENVOY, &[stable, canary], "scrape").unwrap();
        assert_eq!(
            s.keys[stable],
            Counters {
                opened: 80,
                connect_fail: Some(2),
                destroy_remote_with_active_rq: None
            }
        );
        assert_eq!(s.keys[canary].opened, 20);
        let stock = "envoy_cluster_upstream_cx_total{envoy_cluster_name=\"one\"} 3\n";
        assert_eq!(
            envoy_clusters(stock, &["one"], "s").unwrap().keys["one"].opened,
            3
        );
    }

    #[test]
    fn a_cluster_cut_at_its_first_dot_is_explained() {
        // Stock Envoy's tag extraction on a dotted cluster name.
        let cut = "envoy_cluster_default_svc_cluster_local_upstream_cx_total{envoy_cluster_name=\"outbound|9000|v1|tcp-echo\"} 3\nenvoy_cluster_upstream_cx_total{envoy_cluster_name=\"outbound|9000|v1|tcp-echo\"} 3\n";
        let err = envoy_clusters(
            cut,
            &["outbound|9000|v1|tcp-echo.default.svc.cluster.local"],
            "s",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cut cluster names at the first dot (outbound|9000|v1|tcp-echo)"),
            "{err}"
        );
        let err = envoy_clusters("", &["a"], "s").unwrap_err();
        assert!(err.to_string().contains("proxyStatsMatcher"), "{err}");
    }

    #[test]
    fn a_fractional_or_negative_counter_is_refused() {
        let text = "envoy_cluster_upstream_cx_total{cluster_name=\"a\"} 2.5\n";
        assert!(matches!(
            envoy_clusters(text, &["a"], "s"),
            Err(ExpositionError::NotACount { line: 1, .. })
        ));
        let text = "istio_tcp_connections_opened_total{destination_version=\"one\"} -1\n";
        assert!(istio_versions(text, &[], "s").is_err());
    }
}
