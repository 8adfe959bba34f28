//! `checker watch`: flags, and the lines it prints (text on a terminal, JSON lines otherwise).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{RuleArgs, TimeoutArgs, parse_count_usize, parse_positive_duration, parse_rate};
use super::output::{self, OutputMode, Shown, fail};
use super::signals::stop_token;
use checker_core::exit;
use checker_core::expect::Expectation;
use checker_core::target;
use checker_core::watch::{self, Agreement, Tick, WatchConfig};
use report::metrics::WatchMetrics;
use report::samples::SamplesFile;
use tokio_util::sync::CancellationToken;

use crate::metrics_http;

/// Flags of `checker watch`.
#[derive(Debug, Clone, Args)]
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
    /// Read the expectation from this file, and again whenever it changes (one line, as --expect).
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
    /// Serve Prometheus metrics (/metrics) and /healthz on this address while watching:
    /// PORT or the bare flag listen on loopback (127.0.0.1, port 9464 by default); any
    /// other address must be written out as an IP (0.0.0.0:9464 in a pod), never a name.
    #[arg(
        long,
        env = "CHECKER_METRICS_LISTEN",
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_METRICS_LISTEN,
        value_parser = parse_metrics_listen
    )]
    pub metrics_listen: Option<SocketAddr>,
}

/// Where the bare `--metrics-listen` listens: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// Parses `--metrics-listen`: `PORT` (or `:PORT`) and `localhost:PORT` are loopback; a
/// non-loopback address is taken only as an IP written out (`0.0.0.0:9464`,
/// `[::]:9464`), never from a host name that could resolve anywhere.
pub fn parse_metrics_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| format!("{port:?} is not a port number"));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        "must be PORT (loopback), localhost:PORT, or an IP address and port such as \
         127.0.0.1:9464 or 0.0.0.0:9464 (a host name is refused: it could resolve to \
         an address open to the network)"
            .to_owned()
    })
}

/// Starts the metrics listener on `addr` (stopped with `stop`) and returns the metrics
/// it serves; says on stderr where it listens.
async fn serve_metrics(addr: SocketAddr, stop: &CancellationToken) -> Result<WatchMetrics, String> {
    let listener = metrics_http::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for --metrics-listen: {e}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    let metrics = WatchMetrics::new().with_every_error_class();
    if !bound.ip().is_loopback() {
        tracing::warn!(%bound, "--metrics-listen: serving the metrics beyond this machine");
    }
    eprintln!("checker: metrics on http://{bound}/metrics");
    tokio::spawn(metrics_http::serve(
        listener,
        metrics.clone(),
        metrics_http::Limits::default(),
        stop.child_token(),
    ));
    Ok(metrics)
}

/// Runs `checker watch`; the exit code follows the last state: 0 agrees, 1 disagrees, 3 undecided.
pub async fn run(args: &WatchArgs) -> i32 {
    if let Err(e) = target::check_syntax(&args.target) {
        return fail(&e, exit::USAGE);
    }
    let settings = args.rule.settings();
    if let Err(e) = settings.validate() {
        return fail(&e, exit::USAGE);
    }
    let addrs = match target::resolve(&args.target).await {
        Ok(a) => a,
        Err(e) => return fail(&e, exit::ERRORS),
    };
    let (expect, text) = match &args.expect {
        Some(e) => (e.clone(), e.to_string()),
        // Read by the watch itself; an empty placeholder until then.
        None => match "unknown=1".parse::<Expectation>() {
            Ok(e) => (e, "(from the file)".to_owned()),
            Err(e) => return fail(&e, exit::USAGE),
        },
    };
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
    };
    let samples_file = match args.samples_out.as_deref().map(SamplesFile::create) {
        Some(Ok(file)) => Some(file),
        Some(Err(e)) => return fail(&e, exit::USAGE),
        None => None,
    };
    let stop = stop_token();
    let metrics = match args.metrics_listen {
        Some(addr) => match serve_metrics(addr, &stop).await {
            Ok(metrics) => Some(metrics),
            Err(e) => return fail(&e, exit::USAGE),
        },
        None => None,
    };
    let mode = OutputMode::for_stdout();
    let on_tick = |t: &Tick| {
        if let Some(m) = &metrics {
            m.tick(t);
        }
        output::print(mode, &Shown::WatchTick(t));
    };
    let observer = (samples_file, metrics.clone());
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
