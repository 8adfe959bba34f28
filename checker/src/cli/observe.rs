//! `checker observe`: the split of every connection the gateway opened over a window,
//! read from its own counters (Envoy admin, a Prometheus text endpoint, a Prometheus
//! server), with no load of our own, judged as verify judges.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::args::{RuleArgs, parse_bool, parse_positive_duration};
use super::expect_from::{self, DeriveArgs};
use super::gateway_flags::{GatewayArgs, check_url, view_failure};
use super::metrics_flags::{self, MetricsListenArgs};
use super::output::{self, OutputMode, Shown, fail, note};
use super::signals::stop_token;
use checker_core::exit;
use checker_core::expect::Expectation;
use checker_core::gateway::observe::{
    self, CounterSource, LookSummary, ObserveConfig, Observer, Schedule, Sources,
};
use checker_core::gateway::prometheus::CounterQuery;
use checker_core::gateway::view::{self, ProgrammedLayer};
use manifests::Derivation;

/// The help's closing part: sources, what the counts are, exit codes.
pub const HELP: &str = "Sources (repeat a flag for several gateway pods: their counts add):
  --gateway-admin URL  Envoy admin: the listener's clusters from /config_dump, upstream_cx_total
                       per cluster from /stats (Istio: kubectl port-forward deploy/istio-ingressgateway
                       -n istio-system 15000; per-cluster counters need the proxyStatsMatcher annotation)
  --scrape URL         a Prometheus text endpoint: Istio's istio_tcp_connections_opened_total by
                       destination_version (the gateway's :15090/stats/prometheus), or with --metric envoy
                       envoy_cluster_upstream_cx_total per cluster
  --prometheus URL     a Prometheus server: the same counters' samples over the window; the increase()
                       query is printed for Grafana

The counts are every connection the gateway opened in the window, real users' included;
the split assumes one routing decision per connection (true for Envoy's tcp_proxy).

Exit codes: 0 PASS, 1 FAIL (the split), 3 INCONCLUSIVE, 4 FAIL on errors (failed upstream
connects over --max-error-rate, or a source that does not answer), 2 usage.
Ctrl-C or SIGTERM ends the window early: the last look is taken and judged.";

/// Which counter a scrape or a Prometheus server is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    /// Envoy's `envoy_cluster_upstream_cx_total` per cluster (needs the listener's clusters).
    Envoy,
    /// Istio's `istio_tcp_connections_opened_total` by `destination_version`.
    Istio,
}

/// Flags of `checker observe`.
#[derive(Debug, Clone, Args)]
pub struct ObserveArgs {
    /// Expected versions and weights, e.g. one=90,two=10 (as verify's).
    #[arg(
        long,
        env = "CHECKER_EXPECT",
        value_name = "NAME=WEIGHT,...",
        required_unless_present = "expect_from",
        conflicts_with = "expect_from"
    )]
    pub expect: Option<Expectation>,
    /// Derive the expected split (and the clusters' versions) from Kubernetes manifests: a file, a directory or -; repeatable.
    #[arg(long, env = "CHECKER_EXPECT_FROM", value_name = "SOURCE")]
    pub expect_from: Vec<String>,
    /// How the split is derived; --version-of also maps clusters, subsets and destination_version values.
    #[command(flatten)]
    pub derive: DeriveArgs,
    /// Admin addresses, a saved config dump, the listener's port.
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// A Prometheus text endpoint to read the counters from (e.g. the gateway's http://127.0.0.1:15090/stats/prometheus); repeatable.
    #[arg(
        long,
        env = "CHECKER_SCRAPE",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub scrape: Vec<String>,
    /// A Prometheus server to ask for the counters' samples over the window, e.g. http://prometheus:9090.
    #[arg(long, env = "CHECKER_PROMETHEUS", value_name = "URL")]
    pub prometheus: Option<String>,
    /// The counter --scrape and --prometheus read [default: envoy when the listener's clusters are known (--gateway-admin, --config-dump), else istio].
    #[arg(long, env = "CHECKER_METRIC", value_enum)]
    pub metric: Option<Metric>,
    /// Only Istio series whose label has this value, e.g. reporter=source; repeatable [default with --expect-from: destination_service_name=<the route's Service>].
    #[arg(long = "match", env = "CHECKER_MATCH", value_name = "LABEL=VALUE", value_delimiter = ',', value_parser = parse_matcher)]
    pub matchers: Vec<(String, String)>,
    /// The window: how long to observe, e.g. 5m.
    #[arg(long, env = "CHECKER_DURATION", value_name = "D", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Look every D and print a line (judged by the anytime-valid sequence), stopping at the first decision [default: one look at the end, judged by Wilson intervals].
    #[arg(long, env = "CHECKER_INTERVAL", value_name = "D", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub interval: Option<Duration>,
    /// With --interval: keep looking until --duration even after a decision (the variable takes 1/0, true/false, yes/no, on/off).
    #[arg(long, env = "CHECKER_FULL_WINDOW", value_parser = parse_bool, requires = "interval")]
    pub full_window: bool,
    /// The verdict's confidence and tolerance; the error budget applies to failed upstream connects.
    #[command(flatten)]
    pub rule: RuleArgs,
    /// Report format on stdout.
    #[arg(long, env = "CHECKER_OUTPUT", value_enum, default_value_t = OutputMode::Text)]
    pub output: OutputMode,
    /// How --output junit shows INCONCLUSIVE.
    #[command(flatten)]
    pub junit: output::JunitArgs,
    /// Prometheus metrics of every look (needs --interval; with --full-window they are
    /// served for the whole --duration).
    #[command(flatten)]
    pub metrics: MetricsListenArgs,
}

/// Parses `LABEL=VALUE`.
fn parse_matcher(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((label, value))
            if !label.trim().is_empty()
                && label
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok((label.trim().to_owned(), value.to_owned()))
        }
        _ => {
            Err("must be LABEL=VALUE with a Prometheus label name, e.g. reporter=source".to_owned())
        }
    }
}

/// One sentence and its exit code.
type Failure = (String, i32);

/// The route's one Service, for Istio's `destination_service_name`, when all its
/// destinations name the same host.
fn route_service(d: &Derivation) -> Option<String> {
    let mut hosts = d
        .destinations
        .iter()
        .map(|x| manifests::model::short_host(&x.host));
    let first = hosts.next()?;
    hosts.all(|h| h == first).then(|| first.to_owned())
}

impl ObserveArgs {
    fn schedule(&self) -> Schedule {
        match self.interval {
            Some(interval) => Schedule::Every {
                interval,
                duration: self.duration,
                stop_when_decided: !self.full_window,
            },
            None => Schedule::Once {
                duration: self.duration,
            },
        }
    }

    /// The sources, the clusters they are read for and what each gateway was told.
    async fn sources(
        &self,
        expect: &Expectation,
        derivation: Option<&Derivation>,
    ) -> Result<(Sources, Vec<ProgrammedLayer>), Failure> {
        if !self.gateway.given() && self.scrape.is_empty() && self.prometheus.is_none() {
            return Err((
                "nothing to observe: give --gateway-admin, --scrape or --prometheus".to_owned(),
                exit::USAGE,
            ));
        }
        for url in &self.scrape {
            check_url(url, "--scrape")?;
        }
        if let Some(url) = &self.prometheus {
            check_url(url, "--prometheus")?;
        }
        let programmed = match self.gateway.config(&self.derive, derivation, None).await? {
            Some(config) => view::read_programmed(&config, expect)
                .await
                .map_err(|e| view_failure(&e))?,
            None => Vec::new(),
        };
        let clusters = view::version_map(&programmed);
        let metric = self.metric.unwrap_or(if programmed.is_empty() {
            Metric::Istio
        } else {
            Metric::Envoy
        });
        if metric == Metric::Envoy
            && programmed.is_empty()
            && (!self.scrape.is_empty() || self.prometheus.is_some())
        {
            return Err((
                "--metric envoy counts per cluster: name the listener's clusters with --gateway-admin or --config-dump (or read Istio's metric with --metric istio)".to_owned(),
                exit::USAGE,
            ));
        }
        let mut matchers = self.matchers.clone();
        if metric == Metric::Istio
            && matchers.is_empty()
            && let Some(service) = derivation.and_then(route_service)
        {
            matchers.push(("destination_service_name".to_owned(), service));
        }
        let mut sources: Vec<CounterSource> = self
            .gateway
            .gateway_admin
            .iter()
            .map(|url| CounterSource::EnvoyAdmin { url: url.clone() })
            .collect();
        for url in &self.scrape {
            sources.push(match metric {
                Metric::Envoy => CounterSource::EnvoyScrape { url: url.clone() },
                Metric::Istio => CounterSource::IstioScrape {
                    url: url.clone(),
                    matchers: matchers.clone(),
                },
            });
        }
        if let Some(url) = &self.prometheus {
            let names: Vec<&str> = clusters.cluster_names().collect();
            sources.push(CounterSource::Prometheus {
                url: url.clone(),
                query: match metric {
                    Metric::Envoy => CounterQuery::envoy_clusters(&names),
                    Metric::Istio => CounterQuery::IstioVersions {
                        matchers: matchers.clone(),
                    },
                },
            });
        }
        Ok((
            Sources {
                sources,
                clusters,
                label_overrides: self.derive.version_of.iter().cloned().collect(),
                limits: self.gateway.limits(),
            },
            programmed,
        ))
    }
}

/// The sentence and exit code of an observation that could not be made.
fn observe_failure(e: &observe::ObserveError) -> Failure {
    let hint = match e {
        observe::ObserveError::Stats(_) => {
            " (Istio: keep per-cluster counters with the proxyStatsMatcher annotation, or read Istio's metric with --scrape)"
        }
        observe::ObserveError::Map(_) => {
            " (--version-of LABEL_VALUE=VERSION names it, or --match narrows the series)"
        }
        _ => "",
    };
    (
        format!("{}{hint}", protocol::escape(e.to_string())),
        view::observe_exit_code(e),
    )
}

/// Runs `checker observe`; the exit code follows the verdict as verify's does.
pub async fn run(args: &ObserveArgs) -> i32 {
    let settings = args.rule.settings();
    if let Err(e) = settings.validate() {
        return fail(&e, exit::USAGE);
    }
    if args.metrics.metrics_listen.is_some() && args.interval.is_none() {
        return fail(
            &"--metrics-listen needs --interval: one look at the end of the window would be served only as the process ends",
            exit::USAGE,
        );
    }
    let (expect, derivation) = match &args.expect {
        Some(expect) => (expect.clone(), None),
        None => match expect_from::derive(&args.expect_from, &args.derive, None) {
            Ok((expect, derivation)) => (expect, Some(derivation)),
            Err(message) => return fail(&message, exit::USAGE),
        },
    };
    let (sources, programmed) = match args.sources(&expect, derivation.as_ref()).await {
        Ok(found) => found,
        Err((message, code)) => return fail(&message, code),
    };
    let config = ObserveConfig {
        sources,
        expect,
        settings,
        max_error_rate: args.rule.max_error_rate,
        schedule: args.schedule(),
    };
    let stop = stop_token();
    let metrics = match args.metrics.metrics_listen {
        Some(addr) => {
            let metrics = report::metrics::ObserveMetrics::new(&config.expect);
            if let Err(e) = metrics_flags::serve(addr, metrics.clone(), &stop).await {
                return fail(&e, exit::USAGE);
            }
            Some(metrics)
        }
        None => None,
    };
    if let Some(derivation) = &derivation {
        note(args.output, &derivation.to_string());
    }
    let observer = match Observer::start(config.sources.clone()).await {
        Ok(observer) => observer,
        Err(e) => {
            let (message, code) = observe_failure(&e);
            return fail(&message, code);
        }
    };
    let started_at = checker_core::clock::rfc3339_micros(observer.started_at());
    note(
        args.output,
        &report::observe::start_note(&config, &programmed),
    );
    let running = args.output == OutputMode::Text && args.interval.is_some();
    let on_look = |look: &observe::Look, verdict: &checker_core::verdict::SplitVerdict| {
        if let Some(m) = &metrics {
            m.look(&look.counts.opened(), verdict);
        }
        if running {
            output::emit(&format!(
                "{}\n",
                report::observe::look_line(&LookSummary::of(look, verdict))
            ));
        }
    };
    let result = match observe::observe_from(observer, &config, &stop, on_look).await {
        Ok(result) => result,
        Err(e) => {
            let (message, code) = observe_failure(&e);
            return fail(&message, code);
        }
    };
    let observation = report::observe::Observation {
        config: &config,
        result: &result,
        started_at: &started_at,
        programmed: &programmed,
    };
    output::print_as(args.output, &args.junit, &Shown::Observation(&observation));
    result.exit_code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_label_and_value() {
        assert_eq!(
            parse_matcher("reporter=source"),
            Ok(("reporter".to_owned(), "source".to_owned()))
        );
        assert_eq!(
            parse_matcher("destination_service=a=b"),
            Ok(("destination_service".to_owned(), "a=b".to_owned()))
        );
        assert!(parse_matcher("=x").is_err());
        assert!(parse_matcher("a-b=x").is_err());
        assert!(parse_matcher("nothing").is_err());
    }

    #[test]
    fn the_help_names_the_version_label() {
        assert!(HELP.contains(checker_core::gateway::exposition::VERSION_LABEL));
    }
}
