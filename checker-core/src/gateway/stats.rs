//! Envoy's admin `/stats` text: one `name: value` line per statistic, e.g.
//! `cluster.outbound|9000|v1|tcp-echo.default.svc.cluster.local.upstream_cx_total: 42`.
//! Istio's cluster names hold `|` and `.`, so names are matched whole against the
//! clusters asked for, never split at dots.

use std::collections::HashMap;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::counters::{CONNECT_FAIL, Counters, DESTROY_REMOTE_WITH_ACTIVE_RQ, OPENED, Snapshot};

/// What Istio needs before its gateway shows per-cluster counters.
pub const PROXY_STATS_MATCHER_HINT: &str = "Istio trims Envoy's statistics: keep the cluster counters with the gateway annotation proxy.istio.io/config: '{\"proxyStatsMatcher\": {\"inclusionRegexps\": [\"cluster\\\\..*\\\\.upstream_cx_.*\"]}}'";

/// Why the counters could not be read from a `/stats` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// A wanted statistic's value is not a count.
    #[error("{source_name} line {line}: {name} is {value:?}, not a count")]
    NotACount {
        /// Where the text came from.
        source_name: String,
        /// The line number.
        line: usize,
        /// The statistic.
        name: String,
        /// Its value as written.
        value: String,
    },
    /// The same statistic appears twice.
    #[error("{source_name} line {line}: {name} appears twice")]
    Repeated {
        /// Where the text came from.
        source_name: String,
        /// The line number of the second.
        line: usize,
        /// The statistic.
        name: String,
    },
    /// A cluster has no `upstream_cx_total`.
    #[error(
        "{source_name} shows no upstream_cx_total for the cluster {cluster} (it shows {shown} cluster counters); {PROXY_STATS_MATCHER_HINT}"
    )]
    Missing {
        /// Where the text came from.
        source_name: String,
        /// The cluster.
        cluster: String,
        /// How many `cluster.*.upstream_cx_total` lines there were.
        shown: usize,
    },
}

/// The admin path that asks only for the counters of `clusters`
/// (`/stats?filter=^cluster\.(NAME|NAME)\.upstream_cx_(...)$`, percent-encoded).
pub fn stats_path(clusters: &[&str]) -> String {
    let names: Vec<String> = clusters.iter().map(|c| regex_escape(c)).collect();
    let filter = format!(
        r"^cluster\.({})\.({OPENED}|{CONNECT_FAIL}|{DESTROY_REMOTE_WITH_ACTIVE_RQ})$",
        names.join("|")
    );
    format!(
        "/stats?filter={}",
        utf8_percent_encode(&filter, NON_ALPHANUMERIC)
    )
}

/// `text` with every regular-expression metacharacter escaped (RE2 and PromQL alike).
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reads the counters of `clusters` from a `/stats` text (other lines are skipped;
/// every cluster must show its `upstream_cx_total`).
pub fn parse(text: &[u8], clusters: &[&str], source_name: &str) -> Result<Snapshot, StatsError> {
    let mut wanted: HashMap<String, (&str, &str)> = HashMap::new();
    for &c in clusters {
        for counter in [OPENED, CONNECT_FAIL, DESTROY_REMOTE_WITH_ACTIVE_RQ] {
            wanted.insert(format!("cluster.{c}.{counter}"), (c, counter));
        }
    }
    let mut snapshot = Snapshot {
        source: source_name.to_owned(),
        keys: Default::default(),
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut shown = 0usize;
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        let Some((name, value)) = line.trim_end_matches('\r').rsplit_once(": ") else {
            continue;
        };
        if name.starts_with("cluster.") && name.ends_with(".upstream_cx_total") {
            shown += 1;
        }
        let Some(&(cluster, counter)) = wanted.get(name) else {
            continue;
        };
        if let Some(_first) = seen.insert(name.to_owned(), i + 1) {
            return Err(StatsError::Repeated {
                source_name: source_name.to_owned(),
                line: i + 1,
                name: name.to_owned(),
            });
        }
        let value: u64 = value.trim().parse().map_err(|_| StatsError::NotACount {
            source_name: source_name.to_owned(),
            line: i + 1,
            name: name.to_owned(),
            value: value.chars().take(40).collect(),
        })?;
        let entry: &mut Counters = snapshot.keys.entry(cluster.to_owned()).or_default();
        match counter {
            OPENED => entry.opened = value,
            CONNECT_FAIL => entry.connect_fail = Some(value),
            _ => entry.destroy_remote_with_active_rq = Some(value),
        }
    }
    for &c in clusters {
        if !seen.contains_key(&format!("cluster.{c}.{OPENED}")) {
            return Err(StatsError::Missing {
                source_name: source_name.to_owned(),
                cluster: c.to_owned(),
                shown,
            });
        }
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STABLE: &str = "outbound|9000|stable|tcp-echo.default.svc.cluster.local";
    const CANARY: &str = "outbound|9000|canary|tcp-echo.default.svc.cluster.local";

    const TEXT: &str = "cluster.outbound|9000|canary|tcp-echo.default.svc.cluster.local.upstream_cx_connect_fail: 1
cluster.outbound|9000|canary|tcp-echo.default.svc.cluster.local.upstream_cx_destroy_remote_with_active_rq: 0
cluster.outbound|9000|canary|tcp-echo.default.svc.cluster.local.upstream_cx_total: 20
cluster.outbound|9000|canary|tcp-echo.default.svc.cluster.local.upstream_cx_length_ms: P0(nan,1) P25(nan,1.025)
cluster.outbound|9000|stable|tcp-echo.default.svc.cluster.local.upstream_cx_total: 80
cluster.outbound|9000|stable|tcp-echo.default.svc.cluster.local.upstream_cx_total_extra: 5
cluster.outbound|9000||tcp-echo.default.svc.cluster.local.upstream_cx_total: 7
server.uptime: 12
";

    #[test]
    fn cluster_counters_are_read_by_whole_name() {
        let s = parse(TEXT.as_bytes(), &[STABLE, CANARY], "admin").unwrap();
        assert_eq!(s.keys.len(), 2);
        assert_eq!(
            s.keys[CANARY],
            Counters {
                opened: 20,
                connect_fail: Some(1),
                destroy_remote_with_active_rq: Some(0)
            }
        );
        assert_eq!(
            s.keys[STABLE],
            Counters {
                opened: 80,
                connect_fail: None,
                destroy_remote_with_active_rq: None
            }
        );
    }

    #[test]
    fn a_missing_cluster_says_what_istio_needs() {
        let err = parse(
            TEXT.as_bytes(),
            &["outbound|9000|v3|tcp-echo.default.svc.cluster.local"],
            "admin",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("admin shows no upstream_cx_total for the cluster outbound|9000|v3|tcp-echo.default.svc.cluster.local (it shows 3 cluster counters); Istio trims"), "{text}");
        assert!(text.contains("proxyStatsMatcher"), "{text}");
    }

    #[test]
    fn a_value_that_is_not_a_count_or_a_repeat_is_an_error() {
        let bad = format!("cluster.{STABLE}.upstream_cx_total: -3\n");
        assert!(matches!(
            parse(bad.as_bytes(), &[STABLE], "x"),
            Err(StatsError::NotACount { line: 1, .. })
        ));
        let twice = format!(
            "cluster.{STABLE}.upstream_cx_total: 3\ncluster.{STABLE}.upstream_cx_total: 4\n"
        );
        assert!(matches!(
            parse(twice.as_bytes(), &[STABLE], "x"),
            Err(StatsError::Repeated { line: 2, .. })
        ));
    }

    #[test]
    fn the_filter_escapes_istio_names() {
        assert_eq!(
            regex_escape("outbound|9000||a.b"),
            r"outbound\|9000\|\|a\.b"
        );
        let path = stats_path(&["a.b"]);
        assert!(
            path.starts_with("/stats?filter=%5Ecluster%5C%2E%28a%5C%2Eb%29"),
            "{path}"
        );
    }
}
