//! `checker watch`: flags, and the lines it prints (text on a terminal, JSON lines otherwise).

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
use report::samples::SamplesFile;

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
    let mode = OutputMode::for_stdout();
    let print = |t: &Tick| output::print(mode, &Shown::WatchTick(t));
    let periods = match watch::run(config, text, stop_token(), &samples_file, print).await {
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
