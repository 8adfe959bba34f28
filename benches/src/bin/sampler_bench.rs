//! Is the checker the bottleneck? Samples per second of `checker verify`'s real sampling
//! path (fresh connection per sample, probe with timestamp, reply parsing, tally with
//! HdrHistograms, windows, verdict) against a minimal tokio connect-write-read-close loop,
//! both against the same release `echo-server` process on loopback, at each concurrency.
//!
//! Run: `cargo build --release -p echo-server -p tcp-canary-benches &&
//!       target/release/sampler_bench` (see `--help`). Each pair runs the baseline and
//! the checker back to back (order alternating); the figure is the median of the pair
//! ratios and the target is checker >= 95% of the baseline. The client CPU time per
//! sample (this process only; the echo server is another process) is shown too: it is
//! far less sensitive to other load on the machine than the rates are.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use checker_core::expect::Expectation;
use checker_core::verify::{VerifyConfig, verify};
use clap::Parser;
use tcp_canary_benches::median;
use tcp_canary_benches::process::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The share of the baseline rate the checker must reach.
const TARGET: f64 = 0.95;

/// Compares the checker's sampling rate with a minimal connect-write-read-close loop.
#[derive(Debug, Parser)]
#[command(name = "sampler_bench")]
struct Args {
    /// Seconds per run.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Pairs of runs (baseline and checker, adjacent in time) per concurrency.
    #[arg(long, default_value_t = 9)]
    rounds: usize,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,256")]
    concurrency: Vec<usize>,
    /// The echo-server binary [default: next to this binary].
    #[arg(long)]
    echo_server: Option<PathBuf>,
    /// Worker threads of the echo server (0 = one per core).
    #[arg(long, default_value_t = 0)]
    server_threads: usize,
}

/// The minimal loop: connect, write one probe-sized line, read to the newline, close.
async fn baseline(addr: SocketAddr, concurrency: usize, seconds: f64) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
        tasks.spawn(async move {
            let line = b"tcp-canary 0 2026-11-27T13:37:49.123456789Z\n";
            let mut buf = [0u8; 256];
            while Instant::now() < deadline {
                let ok = async {
                    let mut s = TcpStream::connect(addr).await?;
                    s.write_all(line).await?;
                    let mut n = 0;
                    loop {
                        let r = s.read(&mut buf[n..]).await?;
                        if r == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        n += r;
                        if buf[..n].contains(&b'\n') {
                            return Ok::<(), std::io::Error>(());
                        }
                    }
                }
                .await;
                match ok {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

/// The checker's own path: `verify()` bound by duration, as `checker verify --duration`.
async fn checker_rate(
    addr: SocketAddr,
    concurrency: usize,
    seconds: f64,
) -> Result<(f64, u64), String> {
    let expect: Expectation = "one=100,two=0".parse().map_err(|e| format!("{e}"))?;
    let mut config = VerifyConfig::new(addr.to_string(), expect);
    config.duration = Some(Duration::from_secs_f64(seconds));
    config.concurrency = concurrency;
    let report = verify(&config, CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        report.attributed as f64 / report.times.elapsed_s,
        report.judgement.errors.total,
    ))
}

/// CPU seconds (user + system) this process has used so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports clock ticks of USER_HZ = 100 per second.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let program = match args.echo_server.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("echo-server")))
    }) {
        Some(p) => p,
        None => {
            eprintln!("sampler_bench: cannot locate echo-server; pass --echo-server");
            return ExitCode::from(2);
        }
    };
    let server_args = ["0", "one", "--listen", "127.0.0.1", "--no-admin"]
        .map(String::from)
        .into_iter()
        .chain([format!("--threads={}", args.server_threads)])
        .collect::<Vec<_>>();
    let server = match ServerProcess::start(&program, &server_args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sampler_bench: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "echo-server {} at {}; {} s per run, {} pairs, ratio = median of pair ratios",
        program.display(),
        server.addr,
        args.seconds,
        args.rounds
    );
    println!(
        "concurrency  baseline/s  checker/s  ratio   client CPU us/sample (b/c)  errors(b/c)  verdict"
    );
    let mut all_ok = true;
    for &c in &args.concurrency {
        let (mut base, mut mine, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut base_cpu, mut mine_cpu) = (Vec::new(), Vec::new());
        let (mut base_err, mut mine_err) = (0, 0);
        // Pairs of adjacent runs share the machine's background load (other processes come
        // and go); each pair gives one ratio and the median ratio is the figure. The order
        // inside a pair alternates so that neither side always runs first.
        for pair in 0..args.rounds {
            let (mut b, mut m) = (0.0, 0.0);
            for checker_turn in [pair % 2 == 1, pair % 2 == 0] {
                let cpu_before = cpu_seconds();
                if checker_turn {
                    match checker_rate(server.addr, c, args.seconds).await {
                        Ok((rate, err)) => {
                            m = rate;
                            mine_cpu
                                .push((cpu_seconds() - cpu_before) * 1e6 / (rate * args.seconds));
                            mine_err += err;
                        }
                        Err(e) => {
                            eprintln!("sampler_bench: checker run failed: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                } else {
                    let (rate, err) = baseline(server.addr, c, args.seconds).await;
                    b = rate;
                    base_cpu.push((cpu_seconds() - cpu_before) * 1e6 / (rate * args.seconds));
                    base_err += err;
                }
                // Let TIME_WAIT ports age past the kernel's one-second reuse threshold.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            base.push(b);
            mine.push(m);
            ratios.push(m / b.max(1.0));
        }
        eprintln!("  c={c} baseline runs/s: {base:.0?}");
        eprintln!("  c={c} checker  runs/s: {mine:.0?}");
        eprintln!("  c={c} pair ratios: {ratios:.3?}");
        let (b, m) = (median(&base), median(&mine));
        let (bc, mc) = (median(&base_cpu), median(&mine_cpu));
        let ratio = median(&ratios);
        let ok = ratio >= TARGET;
        all_ok &= ok;
        println!(
            "{c:>11}  {b:>10.0}  {m:>9.0}  {:>5.1}%  {bc:>12.1} / {mc:<12.1}  {base_err:>5}/{mine_err:<5}  {}",
            ratio * 100.0,
            if ok { "ok (>= 95%)" } else { "BELOW 95%" }
        );
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
