//! `checker watch`: flags, and the lines it prints (text on a terminal, JSON lines otherwise).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{RuleArgs, TimeoutArgs, parse_count_usize, parse_positive_duration, parse_rate};
use super::health_flags::CompareArgs;
use super::metrics_flags::{self, MetricsListenArgs};
use super::output::{self, OutputMode, Shown, fail};
use super::probe_flags::ProbeArgs;
use super::signals::stop_token;
use checker_core::exit;
use checker_core::expect::Expectation;
use checker_core::probe::Probe;
use checker_core::target;
use checker_core::watch::health::WatchHealth;
use checker_core::watch::{self, Agreement, Tick, WatchConfig};
use report::metrics::WatchMetrics;
use report::samples::SamplesFile;

/// Flags of `checker watch`.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("compare", |a| a.help(COMPARE_HELP)),
    mut_arg("critical", |a| a.hide(true)),
    mut_arg("strict_health", |a| a.hide(true))
)]
pub struct WatchArgs {
    /// Where to connect: HOST:PORT, IPv4, [IPv6]:PORT or a name.
    #[arg(long, env = "CHECKER_TARGET", value_name = "HOST:PORT")]
    pub target: String,
    /// Expected versions and weights, e.g. one=90,two=10 (see `checker verify --help`).
    #[arg(
        long,
        env = "CHECKER_EXPECT",
        value_name = "NAME=WEIGHT,...",
        required_unless_present = "expect_file"
    )]
    pub expect: Option<Expectation>,
    /// Read the expectation from this file, and again whenever it changes (one line, as
    /// --expect; a regular file of at most 64 KiB). Unusable at the start: exit 2; later:
    /// the last good expectation is kept, stderr says why once per change of the file,
    /// and every interval judged on the kept one is marked.
    #[arg(long, env = "CHECKER_EXPECT_FILE", value_name = "FILE")]
    pub expect_file: Option<PathBuf>,
    /// Connections per second.
    #[arg(long, env = "CHECKER_RATE", value_name = "R", default_value_t = watch::DEFAULT_RATE, allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: f64,
    /// Time between two lines.
    #[arg(long, env = "CHECKER_INTERVAL", value_name = "D", default_value = "1s", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub interval: Duration,
    /// Stop after this long [default: until Ctrl-C].
    #[arg(long, env = "CHECKER_DURATION", value_name = "D", value_parser = parse_positive_duration, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// Connections in flight at once.
    #[arg(long, env = "CHECKER_CONCURRENCY", value_name = "C", default_value_t = 32, allow_negative_numbers = true, value_parser = parse_count_usize)]
    pub concurrency: usize,
    /// Write one JSON line per sample to this file.
    #[arg(long, env = "CHECKER_SAMPLES_OUT", value_name = "FILE")]
    pub samples_out: Option<PathBuf>,
    /// The verdict's confidence and tolerance (the error budget is not used here).
    #[command(flatten)]
    pub rule: RuleArgs,
    /// How long one connection may wait for its connect and its reply.
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// What each connection sends and reads (your own service's protocol), and TLS.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Prometheus metrics while watching.
    #[command(flatten)]
    pub metrics: MetricsListenArgs,
    /// The canary against the stable, served as tcp_canary_health_verdict per metric.
    #[command(flatten)]
    pub compare: CompareArgs,
}

/// `--compare` as the watch takes it: verify's comparison, served as metrics.
const COMPARE_HELP: &str = "Compare the canary's attributed errors and latency with the stable's over the evidence since the start or the last change of expectation, e.g. two=one (verify's sequential rule and margins): served as tcp_canary_health_verdict{metric} (1 PASS, 0 INCONCLUSIVE, -1 FAIL); needs --metrics-listen; the lines and the exit code stay the split's";

/// Runs `checker watch`; the exit code follows the last state: 0 agrees, 1 disagrees, 3 undecided.
pub async fn run(args: &WatchArgs) -> i32 {
    if let Err(e) = target::check_syntax(&args.target) {
        return fail(&e, exit::USAGE);
    }
    let settings = args.rule.settings();
    if let Err(e) = settings.validate() {
        return fail(&e, exit::USAGE);
    }
    let probe = match args.probe.spec() {
        Ok(spec) => match Probe::new(&spec, &args.target) {
            Ok(probe) => probe,
            Err(e) => return fail(&e, exit::USAGE),
        },
        Err(message) => return fail(&message, exit::USAGE),
    };
    args.probe.warn();
    let addrs = match target::resolve(&args.target).await {
        Ok(a) => a,
        Err(e) => return fail(&e, exit::ERRORS),
    };
    // The file's expectation, when there is one, is read before anything starts: a bad
    // or missing one is a usage error, never a phantom expectation judged in silence.
    let expect = match (&args.expect_file, &args.expect) {
        (Some(path), _) => match checker_core::expect_file::read(path) {
            Ok(e) => e,
            Err(e) => return fail(&e, exit::USAGE),
        },
        (None, Some(e)) => e.clone(),
        (None, None) => return fail(&"give --expect or --expect-file", exit::USAGE),
    };
    let text = expect.to_string();
    let config = WatchConfig {
        addrs,
        expect,
        expect_file: args.expect_file.clone(),
        rate: args.rate,
        interval: args.interval,
        duration: args.duration,
        settings,
        timeouts: args.timeouts.timeouts(),
        concurrency: args.concurrency,
        probe,
    };
    let samples_file = match args.samples_out.as_deref().map(SamplesFile::create) {
        Some(Ok(file)) => Some(file),
        Some(Err(e)) => return fail(&e, exit::USAGE),
        None => None,
    };
    if !args.compare.critical.is_empty() || args.compare.strict_health {
        return fail(
            &"--critical and --strict-health decide verify's exit code; checker watch serves every metric's verdict and exits on the split",
            exit::USAGE,
        );
    }
    let health = match args.compare.rule() {
        Ok(Some(mut rule)) => {
            if args.metrics.metrics_listen.is_none() {
                return fail(
                    &"--compare in checker watch is served as metrics only: give --metrics-listen too",
                    exit::USAGE,
                );
            }
            // With TLS, the handshake latency is compared too (as verify does).
            rule.handshake = args.probe.tls;
            Some(WatchHealth::new(rule, settings.confidence))
        }
        Ok(None) => None,
        Err(e) => return fail(&e, exit::USAGE),
    };
    let stop = stop_token();
    let metrics = match args.metrics.metrics_listen {
        Some(addr) => {
            let metrics = match &health {
                Some(h) => WatchMetrics::with_comparison(h.rule()),
                None => WatchMetrics::new(),
            }
            .with_every_error_class();
            if let Err(e) = metrics_flags::serve(addr, metrics.clone(), &stop).await {
                return fail(&e, exit::USAGE);
            }
            Some(metrics)
        }
        None => None,
    };
    let mode = OutputMode::for_stdout();
    let observer = ((samples_file, metrics.clone()), health);
    let on_tick = |t: &Tick| {
        if t.expect_file_error_is_new
            && let Some(error) = &t.expect_file_error
        {
            eprintln!("checker: {error}");
        }
        if let Some(m) = &metrics {
            m.tick(t);
            if let Some(h) = &observer.1 {
                m.health(&h.judge());
            }
        }
        output::print(mode, &Shown::WatchTick(t));
    };
    let periods = match watch::run(config, text, stop.clone(), &observer, on_tick).await {
        Ok(p) => p,
        Err(e) => return fail(&e, exit::USAGE),
    };
    output::print(mode, &Shown::WatchSummary(&periods));
    match periods.last().map(|p| p.state) {
        Some(Agreement::Agrees) => exit::PASS,
        Some(Agreement::Disagrees) => exit::FAIL,
        _ => exit::INCONCLUSIVE,
    }
}
