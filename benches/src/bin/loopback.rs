//! `loopback`: measures `echo-server` against the `epoll-echo` baseline on this machine,
//! client and servers on loopback: fresh-connection samples/s (32 and 256 at a time),
//! ping-pong lines/s over 100 persistent connections, and resident memory added per
//! idle connection with 10,000 open.
//!
//! Build first: `cargo build --release -p echo-server -p tcp-canary-benches`, then
//! `cargo run --release -p tcp-canary-benches --bin loopback`.
//!
//! `--check benches/baseline.json` compares the ratios echo-server / epoll-echo (rates
//! and server CPU per operation) with the committed baseline of ratios and exits 1 when
//! one is worse than its baseline by more than the file's margin (see
//! [`tcp_canary_benches::ratios`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tcp_canary_benches::load::{self, Rate};
use tcp_canary_benches::process::{ServerProcess, sibling_binary};
use tcp_canary_benches::{median, ratios};

/// The version both servers answer with.
const VERSION: &str = "bench";

/// Command line of the loopback benchmark.
#[derive(Debug, Parser)]
#[command(
    name = "loopback",
    about = "echo-server vs the epoll baseline over loopback"
)]
struct Args {
    /// Servers to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "echo,epoll")]
    servers: Vec<Kind>,
    /// Length of each throughput run.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Rounds of throughput runs (servers alternate; the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Idle connections for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Client runtime threads (the client shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Close fresh connections with FIN (as the checker does) instead of RST.
    ///
    /// With FIN every sample leaves a client TIME_WAIT socket and a conntrack entry
    /// for 120 s; at ~10,000 samples/s a few runs fill the default conntrack table
    /// (262,144) and the kernel drops SYNs, which shows up as errors and stalls.
    #[arg(long)]
    graceful_close: bool,
    /// Extra arguments for echo-server (e.g. "--threads 1").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    echo_args: String,
    /// Compare the ratios with this baseline of ratios (e.g. benches/baseline.json); exit 1 beyond its margin.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
}

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Our echo-server binary.
    Echo,
    /// The single-threaded epoll baseline.
    Epoll,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo-server",
            Kind::Epoll => "epoll-echo",
        }
    }

    fn start(self, binary: &Path, extra: &[String]) -> Result<ServerProcess, String> {
        let mut args: Vec<String> = match self {
            Kind::Echo => [
                "--listen",
                "127.0.0.1",
                "--ports",
                "0",
                "--version",
                VERSION,
                "--no-admin",
                "--max-connections",
                "100000",
            ]
            .map(String::from)
            .to_vec(),
            Kind::Epoll => ["--listen", "127.0.0.1:0", "--version", VERSION]
                .map(String::from)
                .to_vec(),
        };
        if self == Kind::Echo {
            args.extend(extra.iter().cloned());
        }
        ServerProcess::start(binary, &args)
    }
}

/// One server's runs: rates and server CPU microseconds per operation.
#[derive(Debug, Default)]
struct Results {
    fresh32: Vec<f64>,
    fresh256: Vec<f64>,
    ping_pong: Vec<f64>,
    cpu_fresh256: Vec<f64>,
    cpu_ping_pong: Vec<f64>,
    errors: u64,
    idle_bytes: Option<f64>,
}

/// Server CPU microseconds per successful operation since `start`.
fn cpu_per_op(server: &ServerProcess, start: Duration, rate: Rate) -> Result<f64, String> {
    let used = server.cpu_time()?.saturating_sub(start);
    Ok(used.as_secs_f64() * 1e6 / rate.ok.max(1) as f64)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loopback: cannot start the client runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let baseline = match args.check.as_deref().map(ratios::load).transpose() {
        Ok(baseline) => baseline,
        Err(e) => {
            eprintln!("loopback: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(measured) => match (baseline, measured) {
            (None, _) => ExitCode::SUCCESS,
            (Some(_), None) => {
                eprintln!("loopback: --check needs both servers (--servers echo,epoll)");
                ExitCode::from(2)
            }
            (Some(baseline), Some(measured)) => check(&baseline, &measured),
        },
        Err(e) => {
            eprintln!("loopback: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints every ratio against the baseline; FAILURE when one is beyond the margin.
fn check(baseline: &ratios::Baseline, measured: &[ratios::Measured]) -> ExitCode {
    let lines = match ratios::check(baseline, measured) {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("loopback: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "\nratio check against the baseline (margin {:.0}%):",
        baseline.margin * 100.0
    );
    for l in &lines {
        println!(
            "  {} {:<14} {:.3} (baseline {:.3}, limit {:.3})",
            if l.ok { "✔" } else { "✘" },
            l.name,
            l.value,
            l.baseline,
            l.limit
        );
    }
    if lines.iter().all(|l| l.ok) {
        ExitCode::SUCCESS
    } else {
        eprintln!("loopback: a ratio regressed beyond the baseline's margin");
        ExitCode::FAILURE
    }
}

/// Runs the comparison; returns the ratios echo-server / epoll-echo when both ran.
async fn run(args: &Args) -> Result<Option<Vec<ratios::Measured>>, String> {
    let extra: Vec<String> = args
        .echo_args
        .split_whitespace()
        .map(String::from)
        .collect();
    let binaries: Vec<(Kind, PathBuf)> = args
        .servers
        .iter()
        .map(|&kind| sibling_binary(kind.name()).map(|path| (kind, path)))
        .collect::<Result<_, _>>()?;
    let mut results: Vec<Results> = binaries.iter().map(|_| Results::default()).collect();
    println!(
        "loopback benchmark: {} rounds of {:?} per run, client threads {}, fresh connections closed with {}, echo-server args {:?}",
        args.rounds,
        args.duration,
        args.client_threads,
        if args.graceful_close { "FIN" } else { "RST" },
        args.echo_args
    );
    for round in 1..=args.rounds {
        for ((kind, binary), result) in binaries.iter().zip(results.iter_mut()) {
            let server = kind.start(binary, &extra)?;
            let mut report = |what: &str, rate: Rate, cpu: f64, into: &mut Vec<f64>| {
                println!(
                    "round {round} {:<12} {what:<22} {:>10.0}/s ({} ok, {} errors in {:.2?}; server CPU {cpu:.1} us/op)",
                    kind.name(),
                    rate.per_second(),
                    rate.ok,
                    rate.errors,
                    rate.elapsed
                );
                into.push(rate.per_second());
                result.errors += rate.errors;
            };
            let cpu_start = server.cpu_time()?;
            let rate = load::fresh_connections(
                server.addr,
                VERSION,
                32,
                args.duration,
                !args.graceful_close,
            )
            .await;
            let cpu = cpu_per_op(&server, cpu_start, rate)?;
            report("fresh connections @32", rate, cpu, &mut result.fresh32);
            let cpu_start = server.cpu_time()?;
            let rate = load::fresh_connections(
                server.addr,
                VERSION,
                256,
                args.duration,
                !args.graceful_close,
            )
            .await;
            let cpu = cpu_per_op(&server, cpu_start, rate)?;
            report("fresh connections @256", rate, cpu, &mut result.fresh256);
            result.cpu_fresh256.push(cpu);
            let cpu_start = server.cpu_time()?;
            let rate = load::ping_pong(server.addr, VERSION, 100, args.duration).await;
            let cpu = cpu_per_op(&server, cpu_start, rate)?;
            report("ping-pong x100 lines", rate, cpu, &mut result.ping_pong);
            result.cpu_ping_pong.push(cpu);
        }
    }
    if args.idle > 0 {
        for ((kind, binary), result) in binaries.iter().zip(results.iter_mut()) {
            let server = kind.start(binary, &extra)?;
            let warm = load::open_idle(server.addr, VERSION, 1, 1).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let before = server.rss_kib()?;
            let open = load::open_idle(server.addr, VERSION, args.idle, 100).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = server.rss_kib()?;
            let per = (after.saturating_sub(before) * 1024) as f64 / open.len() as f64;
            println!(
                "{:<12} idle memory: RSS {before} KiB -> {after} KiB with {} connections open: {per:.0} bytes each",
                kind.name(),
                open.len()
            );
            result.idle_bytes = Some(per);
            drop(open);
            drop(warm);
        }
    }
    println!();
    println!(
        "{:<12} {:>12} {:>13} {:>16} {:>16} {:>16} {:>16} {:>7}",
        "server",
        "fresh@32 /s",
        "fresh@256 /s",
        "ping-pong /s",
        "CPU us/fresh@256",
        "CPU us/ping-pong",
        "idle bytes/conn",
        "errors"
    );
    for ((kind, _), r) in binaries.iter().zip(&results) {
        println!(
            "{:<12} {:>12.0} {:>13.0} {:>16.0} {:>16.1} {:>16.2} {:>16} {:>7}",
            kind.name(),
            median(&r.fresh32),
            median(&r.fresh256),
            median(&r.ping_pong),
            median(&r.cpu_fresh256),
            median(&r.cpu_ping_pong),
            r.idle_bytes.map_or("-".to_owned(), |b| format!("{b:.0}")),
            r.errors
        );
    }
    println!("(medians over {} rounds)", args.rounds);
    let echo = binaries.iter().position(|(k, _)| *k == Kind::Echo);
    let epoll = binaries.iter().position(|(k, _)| *k == Kind::Epoll);
    let mut measured = None;
    if let (Some(e), Some(b)) = (echo, epoll) {
        let (e, b) = (&results[e], &results[b]);
        let ratio = |ours: &[f64], base: &[f64]| median(ours) / median(base).max(f64::EPSILON);
        let m = |name, ours: &[f64], base: &[f64], higher_is_better| ratios::Measured {
            name,
            value: ratio(ours, base),
            higher_is_better,
        };
        measured = Some(vec![
            m("fresh32", &e.fresh32, &b.fresh32, true),
            m("fresh256", &e.fresh256, &b.fresh256, true),
            m("ping_pong", &e.ping_pong, &b.ping_pong, true),
            m("cpu_fresh256", &e.cpu_fresh256, &b.cpu_fresh256, false),
            m("cpu_ping_pong", &e.cpu_ping_pong, &b.cpu_ping_pong, false),
        ]);
        let pct = |ours: &[f64], base: &[f64]| 100.0 * ratio(ours, base);
        println!(
            "echo-server / epoll-echo: fresh@32 {:.1}%  fresh@256 {:.1}%  ping-pong {:.1}%  (target: >= 95%)",
            pct(&e.fresh32, &b.fresh32),
            pct(&e.fresh256, &b.fresh256),
            pct(&e.ping_pong, &b.ping_pong)
        );
        println!(
            "server CPU per operation, echo-server / epoll-echo: fresh@256 {:.1}%  ping-pong {:.1}%",
            pct(&e.cpu_fresh256, &b.cpu_fresh256),
            pct(&e.cpu_ping_pong, &b.cpu_ping_pong)
        );
    }
    if let Some(e) = echo.and_then(|e| results[e].idle_bytes) {
        println!("echo-server idle memory: {e:.0} bytes per connection (target: <= 2048)");
    }
    Ok(measured)
}
