//! Reading a JSON report back (`checker merge`, `--baseline`, `checker plot --report`):
//! its inputs, times, rules and the tally it carries, histograms included, as a
//! [`RecordedRun`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::json::SCHEMA_VERSION;
use checker_core::sampler::StopReason;
use checker_core::snapshot::{SnapshotError, TallySnapshot};
use checker_core::verdict::health::HealthRules;
use checker_core::verdict::local::LocalReadings;
use checker_core::verify::{Inputs, RecordedRun, Times};

/// The parts of a JSON report that can be read back.
#[derive(Debug, Clone, Deserialize)]
pub struct ReportFile {
    /// Layout version; must be [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What was asked.
    pub inputs: Inputs,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    pub finished_at: String,
    /// Seconds from start to end.
    pub elapsed_s: f64,
    /// Why sampling stopped.
    pub stop_reason: StopReason,
    /// The errors section (only the machine's readings are read).
    pub errors: ErrorsFile,
    /// The health section (only the rules are read).
    pub health: HealthFile,
    /// Everything counted.
    pub tally: TallySnapshot,
}

/// The part of the errors section that is read back.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorsFile {
    /// This machine's conntrack table, port range and sockets.
    pub local_readings: LocalReadings,
}

/// The part of the health section that is read back.
#[derive(Debug, Clone, Deserialize)]
pub struct HealthFile {
    /// The rules of the health checks.
    pub rules: HealthRules,
}

/// Why a report cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read the report {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a checker JSON report of this layout.
    #[error("{path} is not a checker JSON report with histograms: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What did not parse.
        source: serde_json::Error,
    },
    /// The layout version differs.
    #[error("{path} has layout version {found}; this checker reads version {SCHEMA_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// The tally cannot be rebuilt.
    #[error("the report {path} cannot be read back: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// Why.
        source: SnapshotError,
    },
}

/// Parses a report document from `text` (read from `path`).
pub fn parse(path: &Path, text: &str) -> Result<RecordedRun, LoadError> {
    let file: ReportFile = serde_json::from_str(text).map_err(|source| LoadError::Json {
        path: path.to_owned(),
        source,
    })?;
    if file.schema_version != SCHEMA_VERSION {
        return Err(LoadError::Version {
            path: path.to_owned(),
            found: file.schema_version,
        });
    }
    let tally = file
        .tally
        .to_tally()
        .map_err(|source| LoadError::Snapshot {
            path: path.to_owned(),
            source,
        })?;
    Ok(RecordedRun {
        path: path.to_owned(),
        inputs: file.inputs,
        times: Times {
            started_at: file.started_at,
            finished_at: file.finished_at,
            elapsed_s: file.elapsed_s,
        },
        stop_reason: file.stop_reason,
        local_readings: file.errors.local_readings,
        health_rules: file.health.rules,
        tally,
    })
}

/// Reads the report at `path`.
pub fn load(path: &Path) -> Result<RecordedRun, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker_core::sampler::{ErrorClass, Sample};
    use checker_core::tally::{Tally, Windowing};
    use checker_core::verify::{Verification, VerifyConfig};
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_report_reads_back_into_the_same_verification() {
        let mut config = VerifyConfig::new("127.0.0.1:9", "one=90,two=10".parse().unwrap());
        config.samples = Some(500);
        config.health.thresholds = vec!["two.p99_reply<5ms".parse().unwrap()];
        let mut tally = Tally::new(Windowing::ById { total: 500 });
        for id in 0..500 {
            let result = match id % 25 {
                0 => Err(ErrorClass::Refused),
                1..=2 => Ok("two".to_owned()),
                _ => Ok("one".to_owned()),
            };
            tally.record(&Sample {
                id,
                addr: "127.0.0.1:9".parse().unwrap(),
                started_at: SystemTime::UNIX_EPOCH,
                offset: Duration::ZERO,
                connect_us: result.is_ok().then_some(40 + id % 300),
                reply_us: result.is_ok().then_some(90 + id * 31 % 4000),
                lag_us: None,
                reply_head: None,
                result,
            });
        }
        let times = Times {
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:02Z".into(),
            elapsed_s: 2.0,
        };
        let addrs = ["127.0.0.1:9".parse().unwrap()];
        let v = Verification::build(
            &config,
            &addrs,
            None,
            tally,
            StopReason::Samples,
            LocalReadings::default(),
            times,
        );
        let run = parse(Path::new("a.json"), &crate::json::to_string(&v)).unwrap();
        assert_eq!(run.inputs, v.inputs);
        assert_eq!(run.health_rules, v.health_rules);
        assert_eq!(run.tally.counts(), v.tally.counts());
        let again = checker_core::merge::merge(&[run]).unwrap();
        assert_eq!(again.judgement, v.judgement);
        let e = parse(Path::new("b.json"), "{\"schema_version\": 1}").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("b.json is not a checker JSON report"),
            "{e}"
        );
    }
}
