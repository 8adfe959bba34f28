//! How long does `checker merge` take? Writes `--reports` JSON reports of `--samples`
//! synthetic samples each (two versions, lognormal-ish latencies spread over the whole
//! histogram range, a few errors) into a temporary directory, then times what
//! `checker merge` does with them: read and parse every file, decode its histograms,
//! merge, judge and render the merged JSON report. Prints the directory size, the time
//! and the merged counts; the target is under a second for 100 reports of 100,000.
//!
//! Run: `cargo run --release -p tcp-canary-benches --bin merge_bench` (see `--help`);
//! `--keep DIR` keeps the reports there, to time the real binary:
//! `time target/release/checker merge --output json DIR/*.json > /dev/null`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use checker_core::merge;
use checker_core::sampler::{ErrorClass, Sample, StopReason};
use checker_core::tally::{Tally, Windowing};
use checker_core::verdict::local::LocalReadings;
use checker_core::verify::{Times, Verification, VerifyConfig};
use clap::Parser;
use report::{json, read_back};

/// Flags.
#[derive(Debug, Parser)]
struct Args {
    /// Reports to merge.
    #[arg(long, default_value_t = 100)]
    reports: u64,
    /// Samples per report.
    #[arg(long, default_value_t = 100_000)]
    samples: u64,
    /// Timed repetitions of the merge (the median is printed).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Keep the reports in this directory instead of a temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// A cheap deterministic generator (xorshift), so every run writes the same reports.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn report(index: u64, samples: u64) -> Verification {
    let mut config = VerifyConfig::new(
        "127.0.0.1:31400",
        "one=90,two=10".parse().expect("a valid expectation"),
    );
    config.samples = Some(samples);
    config.health.compare = Some(
        checker_core::verdict::compare::CompareRule::parse_pair("two=one").expect("a valid pair"),
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (index + 1));
    let mut tally = Tally::new(Windowing::ById { total: samples });
    let addr = "127.0.0.1:31400".parse().expect("an address");
    for id in 0..samples {
        let r = rng.next();
        let result = match r % 1000 {
            0 => Err(ErrorClass::Reset),
            1..=100 => Ok("two".to_owned()),
            _ => Ok("one".to_owned()),
        };
        // 50 µs .. ~50 ms, heavier towards the low end: many distinct buckets.
        let latency = 50 + (r >> 20) % 1000 * ((r >> 40) % 50 + 1);
        tally.record(&Sample {
            id,
            addr,
            started_at: SystemTime::UNIX_EPOCH,
            offset: Duration::ZERO,
            connect_us: Some(latency / 3 + 1),
            reply_us: result.is_ok().then_some(latency),
            result,
            lag_us: None,
            reply_head: None,
        });
    }
    Verification::build(
        &config,
        &[addr],
        None,
        tally,
        StopReason::Samples,
        LocalReadings::default(),
        Times {
            started_at: "2026-01-01T00:00:00.000000Z".to_owned(),
            finished_at: "2026-01-01T00:00:10.000000Z".to_owned(),
            elapsed_s: 10.0,
        },
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let temp;
    let dir = match &args.keep {
        Some(dir) => dir.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("merge-bench-{}", std::process::id()));
            temp
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("merge_bench: cannot create {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let mut paths = Vec::new();
    let mut bytes = 0;
    for i in 0..args.reports {
        let text = json::to_string(&report(i, args.samples));
        let path = dir.join(format!("report-{i:03}.json"));
        bytes += text.len();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("merge_bench: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
        paths.push(path);
    }
    println!(
        "{} reports of {} samples: {:.1} MB of JSON in {}",
        args.reports,
        args.samples,
        bytes as f64 / 1e6,
        dir.display()
    );
    let mut times = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let start = Instant::now();
        let loaded: Result<Vec<_>, _> = paths.iter().map(|p| read_back::load(p)).collect();
        let merged = match loaded
            .map_err(|e| e.to_string())
            .and_then(|l| merge::merge(&l).map_err(|e| e.to_string()))
        {
            Ok(merged) => merged,
            Err(e) => {
                eprintln!("merge_bench: {e}");
                return ExitCode::from(1);
            }
        };
        let document = json::to_string(&merged);
        let elapsed = start.elapsed();
        println!(
            "merged {} samples ({} to two, {} errors) into a {} kB report in {:.3} s",
            merged.attempted,
            merged.tally.versions().get("two").map_or(0, |v| v.count),
            merged.judgement.errors.total,
            document.len() / 1000,
            elapsed.as_secs_f64()
        );
        times.push(elapsed.as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median: {:.3} s (target: under 1 s)",
        times[times.len() / 2]
    );
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    ExitCode::SUCCESS
}
