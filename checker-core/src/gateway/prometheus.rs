//! A Prometheus server's HTTP API (`/api/v1/query`) as a counter source: the counters'
//! raw samples over a window (a range selector evaluated at the window's end), their
//! increase computed here across resets, per cluster or per `destination_version`, and
//! the equivalent `increase(...[window])` query kept as text for a user to paste into
//! Prometheus or Grafana (whose `increase()` extrapolates to the window's edges, so it
//! reads a little higher than the samples' own difference computed here).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use super::counters::{Delta, Reset, SourceDelta, series_increase};
use super::exposition::{ENVOY_OPENED, ISTIO_CLUSTER_LABEL, ISTIO_OPENED, VERSION_LABEL};
use super::fetch::{self, FetchError, Limits};
use super::input::MAX_API_BYTES;
use super::mapping::UNKNOWN_VERSION;
use super::stats::regex_escape;

/// Which counter to ask Prometheus for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CounterQuery {
    /// Envoy's `envoy_cluster_upstream_cx_total` for these clusters, by cluster label.
    EnvoyClusters {
        /// The cluster names.
        clusters: Vec<String>,
        /// The label holding the cluster name (`cluster_name` under Istio, `envoy_cluster_name` in stock Envoy).
        label: String,
    },
    /// Istio's `istio_tcp_connections_opened_total` by `destination_version`, under
    /// these exact label matchers (e.g. `reporter="source"`).
    IstioVersions {
        /// `(label, value)` pairs every series must have.
        matchers: Vec<(String, String)>,
    },
}

impl CounterQuery {
    /// Envoy's clusters under Istio's label name.
    pub fn envoy_clusters<S: AsRef<str>>(clusters: &[S]) -> Self {
        Self::EnvoyClusters {
            clusters: clusters.iter().map(|c| c.as_ref().to_owned()).collect(),
            label: ISTIO_CLUSTER_LABEL.to_owned(),
        }
    }

    /// The counter's metric name.
    pub fn metric(&self) -> &'static str {
        match self {
            Self::EnvoyClusters { .. } => ENVOY_OPENED,
            Self::IstioVersions { .. } => ISTIO_OPENED,
        }
    }

    /// The label each series is counted by.
    pub fn key_label(&self) -> &str {
        match self {
            Self::EnvoyClusters { label, .. } => label,
            Self::IstioVersions { .. } => VERSION_LABEL,
        }
    }

    /// The instant-vector selector: `envoy_cluster_upstream_cx_total{cluster_name=~"a|b"}`.
    pub fn selector(&self) -> String {
        match self {
            Self::EnvoyClusters { clusters, label } => {
                let names: Vec<String> = clusters.iter().map(|c| regex_escape(c)).collect();
                format!(
                    "{ENVOY_OPENED}{{{label}=~{}}}",
                    promql_string(&names.join("|"))
                )
            }
            Self::IstioVersions { matchers } => {
                let m: Vec<String> = matchers
                    .iter()
                    .map(|(k, v)| format!("{k}={}", promql_string(v)))
                    .collect();
                format!("{ISTIO_OPENED}{{{}}}", m.join(","))
            }
        }
    }

    /// The query a user pastes into Grafana: `sum by (LABEL) (increase(SELECTOR[Ws]))`.
    pub fn increase_query(&self, window: Duration) -> String {
        format!(
            "sum by ({}) (increase({}[{}s]))",
            self.key_label(),
            self.selector(),
            window_secs(window)
        )
    }

    /// The query the counts are computed from: the raw samples, `SELECTOR[Ws]`.
    pub fn range_query(&self, window: Duration) -> String {
        format!("{}[{}s]", self.selector(), window_secs(window))
    }
}

/// Whole seconds, rounded up, at least 1.
fn window_secs(window: Duration) -> u64 {
    (window.as_secs() + u64::from(window.subsec_nanos() > 0)).max(1)
}

/// A PromQL double-quoted string literal.
fn promql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why the Prometheus API gave no counts.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The request failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The answer is not the API's JSON.
    #[error("{url} did not answer with Prometheus API JSON: {reason}")]
    NotApiJson {
        /// The query URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The API answered with an error.
    #[error("Prometheus refused the query {query}: {error}")]
    Refused {
        /// The query.
        query: String,
        /// Prometheus's `errorType: error`.
        error: String,
    },
    /// A sample is not a count.
    #[error("Prometheus returned {value:?} for a counter of {key}: not a count")]
    NotACount {
        /// The series' key.
        key: String,
        /// The value.
        value: String,
    },
}

/// What a window query found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowCounts {
    /// The counts per key and the resets, as one source.
    pub delta: SourceDelta,
    /// The series read.
    pub series: usize,
    /// The query the counts were computed from.
    pub range_query: String,
    /// The `increase()` query to paste into Grafana.
    pub increase_query: String,
}

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<ApiSeries>,
}

#[derive(Debug, Deserialize)]
struct ApiSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// The URL of an instant query of `query` at `time`.
pub fn query_url(base: &str, query: &str, time: SystemTime) -> String {
    let t = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    fetch::join(
        base,
        &format!(
            "/api/v1/query?query={}&time={t:.3}",
            utf8_percent_encode(query, NON_ALPHANUMERIC)
        ),
    )
}

/// The counters' increase per key over `window` ending at `end`, from the raw samples.
pub async fn window_counts(
    base: &str,
    query: &CounterQuery,
    end: SystemTime,
    window: Duration,
    timeout: Duration,
) -> Result<WindowCounts, PrometheusError> {
    let range_query = query.range_query(window);
    let url = query_url(base, &range_query, end);
    let body = fetch::get(
        &url,
        Limits {
            timeout,
            max_bytes: MAX_API_BYTES,
        },
    )
    .await?;
    let mut counts = counts_from_answer(&body, query, &range_query, &url)?;
    counts.delta.source = base.to_owned();
    counts.increase_query = query.increase_query(window);
    Ok(counts)
}

/// The counts in an API answer to a range-selector query.
pub fn counts_from_answer(
    body: &[u8],
    query: &CounterQuery,
    range_query: &str,
    url: &str,
) -> Result<WindowCounts, PrometheusError> {
    let answer: ApiAnswer =
        serde_json::from_slice(body).map_err(|e| PrometheusError::NotApiJson {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    if answer.status != "success" {
        return Err(PrometheusError::Refused {
            query: range_query.to_owned(),
            error: format!(
                "{}: {}",
                answer.error_type.unwrap_or_default(),
                answer.error.unwrap_or_default()
            ),
        });
    }
    let data = answer.data.ok_or_else(|| PrometheusError::NotApiJson {
        url: url.to_owned(),
        reason: "no data".to_owned(),
    })?;
    if data.result_type != "matrix" {
        return Err(PrometheusError::NotApiJson {
            url: url.to_owned(),
            reason: format!("a {} instead of a matrix", data.result_type),
        });
    }
    let mut delta = SourceDelta::default();
    let series = data.result.len();
    for s in data.result {
        let key = s
            .metric
            .get(query.key_label())
            .cloned()
            .unwrap_or_else(|| UNKNOWN_VERSION.to_owned());
        let mut values = Vec::with_capacity(s.values.len());
        for (_, v) in &s.values {
            let n: f64 = v.parse().map_err(|_| not_a_count(&key, v))?;
            if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 2f64.powi(63)) {
                return Err(not_a_count(&key, v));
            }
            values.push(n as u64);
        }
        let (increase, resets) = series_increase(&values);
        let entry: &mut Delta = delta.keys.entry(key.clone()).or_default();
        entry.opened = entry.opened.saturating_add(increase);
        let instance = s.metric.get("instance").cloned().unwrap_or_default();
        delta
            .resets
            .extend(resets.into_iter().map(|(before, after)| Reset {
                source: instance.clone(),
                key: key.clone(),
                counter: query.metric().to_owned(),
                before,
                after,
            }));
    }
    Ok(WindowCounts {
        delta,
        series,
        range_query: range_query.to_owned(),
        increase_query: String::new(),
    })
}

fn not_a_count(key: &str, value: &str) -> PrometheusError {
    PrometheusError::NotACount {
        key: key.to_owned(),
        value: value.chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_escape_istio_names_and_keep_the_increase_text() {
        let q = CounterQuery::envoy_clusters(&[
            "outbound|9000|v1|tcp-echo.default.svc.cluster.local",
            "b",
        ]);
        assert_eq!(
            q.selector(),
            r#"envoy_cluster_upstream_cx_total{cluster_name=~"outbound\\|9000\\|v1\\|tcp-echo\\.default\\.svc\\.cluster\\.local|b"}"#
        );
        assert!(
            q.increase_query(Duration::from_millis(300_500))
                .starts_with("sum by (cluster_name) (increase(envoy_cluster_upstream_cx_total{")
        );
        assert!(
            q.increase_query(Duration::from_millis(300_500))
                .ends_with("[301s]))")
        );
        let istio = CounterQuery::IstioVersions {
            matchers: vec![
                ("reporter".into(), "source".into()),
                (
                    "destination_service".into(),
                    "tcp-echo.default.svc.cluster.local".into(),
                ),
            ],
        };
        assert_eq!(
            istio.range_query(Duration::ZERO),
            r#"istio_tcp_connections_opened_total{reporter="source",destination_service="tcp-echo.default.svc.cluster.local"}[1s]"#
        );
        let url = query_url(
            "http://p:9090/",
            "up[5s]",
            UNIX_EPOCH + Duration::from_millis(1_500),
        );
        assert_eq!(
            url,
            "http://p:9090/api/v1/query?query=up%5B5s%5D&time=1.500"
        );
    }

    #[test]
    fn an_answer_becomes_counts_per_key_across_pods_and_resets() {
        let q = CounterQuery::IstioVersions { matchers: vec![] };
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"destination_version":"one","instance":"gw-a"},"values":[[1,"10"],[2,"50"],[3,"90"]]},
            {"metric":{"destination_version":"one","instance":"gw-b"},"values":[[1,"500"],[2,"3"],[3,"13"]]},
            {"metric":{"destination_version":"two","instance":"gw-a"},"values":[[2,"0"],[3,"10"]]}]}}"#;
        let c = counts_from_answer(body, &q, "x", "u").unwrap();
        assert_eq!(c.series, 3);
        assert_eq!(c.delta.keys["one"].opened, 80 + 3 + 10);
        assert_eq!(c.delta.keys["two"].opened, 10);
        assert_eq!(c.delta.resets.len(), 1);
        assert_eq!(
            (
                c.delta.resets[0].before,
                c.delta.resets[0].after,
                c.delta.resets[0].source.as_str()
            ),
            (500, 3, "gw-b")
        );
    }

    #[test]
    fn refusals_and_bad_answers_are_errors() {
        let q = CounterQuery::IstioVersions { matchers: vec![] };
        let refused = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let err = counts_from_answer(refused, &q, "x[", "u").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Prometheus refused the query x[: bad_data: parse error"
        );
        assert!(matches!(
            counts_from_answer(b"<html>", &q, "x", "u"),
            Err(PrometheusError::NotApiJson { .. })
        ));
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(matches!(
            counts_from_answer(vector, &q, "x", "u"),
            Err(PrometheusError::NotApiJson { .. })
        ));
        let frac = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1.5"]]}]}}"#;
        assert!(matches!(
            counts_from_answer(frac, &q, "x", "u"),
            Err(PrometheusError::NotACount { .. })
        ));
    }
}
