//! `checker watch`: flags, and the lines it prints (text on a terminal, JSON lines otherwise).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::command::{emit, stop_token};
use super::{RuleArgs, TimeoutArgs, parse_count_usize, parse_positive_duration, parse_rate};
use checker_core::exit;
use checker_core::expect::Expectation;
use checker_core::target;
use checker_core::watch::{self, Agreement, Period, Tick, WatchConfig};

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

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// One interval as a terminal line.
fn tick_line(t: &Tick) -> String {
    let total: u64 = t.window.values().sum();
    let mut line = format!("{:>7.1}s ", t.elapsed_s);
    for (name, count) in &t.window {
        let _ = write!(line, " {name} {}", pct(*count as f64 / total.max(1) as f64));
    }
    if t.errors > 0 {
        let _ = write!(line, "  errors {}", t.errors);
    }
    let _ = write!(line, "  | running ({} samples):", t.evidence);
    for (name, i) in &t.intervals {
        let _ = write!(line, " {name} {}..{}", pct(i.low), pct(i.high));
    }
    let state = match t.state {
        Agreement::Undecided => "? undecided",
        Agreement::Agrees => "✔ agrees",
        Agreement::Disagrees => "✘ disagrees",
    };
    let _ = write!(line, "  {state}");
    if let Some(event) = &t.event {
        let _ = write!(line, "  <- {event}");
    }
    line
}

/// The periods as terminal lines.
fn summary_text(periods: &[Period]) -> String {
    let mut out = String::from("\nperiods:\n");
    for p in periods {
        let total: u64 = p.counts.values().sum();
        let shares: Vec<String> = p
            .counts
            .iter()
            .map(|(n, c)| format!("{n} {}", pct(*c as f64 / total.max(1) as f64)))
            .collect();
        let _ = writeln!(
            out,
            "  {:>7.1}s .. {:>7.1}s  expect {}  {:?}  {} samples ({}), {} errors",
            p.from_s,
            p.to_s,
            p.expect,
            p.state,
            total,
            shares.join(" "),
            p.errors
        );
    }
    out
}

/// Runs `checker watch`; the exit code follows the last state: 0 agrees, 1 disagrees, 3 undecided.
pub async fn run(args: &WatchArgs) -> i32 {
    let fail = |e: &dyn std::fmt::Display, code| {
        eprintln!("checker: {e}");
        code
    };
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
        samples_out: args.samples_out.clone(),
        probe: Default::default(),
    };
    let terminal = std::io::stdout().is_terminal();
    let print = |t: &Tick| {
        if terminal {
            emit(&format!("{}\n", tick_line(t)));
        } else {
            emit(&format!(
                "{}\n",
                serde_json::to_string(t).unwrap_or_default()
            ));
        }
    };
    let periods = match watch::run(config, text, stop_token(), print).await {
        Ok(p) => p,
        Err(e) => return fail(&e, exit::USAGE),
    };
    if terminal {
        emit(&summary_text(&periods));
    } else {
        let line = serde_json::json!({ "summary": periods }).to_string();
        emit(&format!("{line}\n"));
    }
    match periods.last().map(|p| p.state) {
        Some(Agreement::Agrees) => exit::PASS,
        Some(Agreement::Disagrees) => exit::FAIL,
        _ => exit::INCONCLUSIVE,
    }
}
