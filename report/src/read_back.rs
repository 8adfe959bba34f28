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
use input_file::InputError;

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

/// The largest report read back, bytes. A real report is small: 15.6 KB for a run of
/// 100,000 samples of one version (its two histograms about 5 KB of base64 each), so
/// about 350 KB for the most versions a report holds (33); 16 MiB is over 40 times
/// that. (Only a report whose 66 histograms each used all 23,552 counts with distinct
/// values, billions of samples spread over 1 us to 1 h, could come near it.)
pub const MAX_REPORT_BYTES: u64 = 16 * 1024 * 1024;

/// A path as shown in a message: escaped, since a directory's file names are input too.
fn shown(path: &Path) -> String {
    protocol::escape(path.as_os_str().as_encoded_bytes())
}

/// Why a report cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read (missing, not a regular file, too large).
    #[error("cannot read the report {}: {source}", shown(.path))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: InputError,
    },
    /// The file is not a checker JSON report of this layout.
    #[error("{} is not a checker JSON report with histograms: {source}", shown(.path))]
    Json {
        /// The file.
        path: PathBuf,
        /// What did not parse.
        source: serde_json::Error,
    },
    /// The layout version differs.
    #[error("{} has layout version {found}; this checker reads version {SCHEMA_VERSION}", shown(.path))]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// The tally cannot be rebuilt, or a field disagrees with the rest.
    #[error("the report {} cannot be read back: {source}", shown(.path))]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// Why, naming the field.
        source: SnapshotError,
    },
    /// The same file was given twice (by two names, or inside a directory and alone).
    #[error(
        "{} is {} again: a report given twice would count its samples twice; give each report once", shown(.second), shown(.first)
    )]
    Twice {
        /// Where it was named first.
        first: PathBuf,
        /// Where it was named again.
        second: PathBuf,
    },
    /// Two files hold the same run (a copy).
    #[error(
        "{} holds the same run as {} (the same start, target and tally): a copy would count its samples twice; give each report once", shown(.second), shown(.first)
    )]
    Copy {
        /// The first file.
        first: PathBuf,
        /// The copy.
        second: PathBuf,
    },
}

/// Parses a report document from `text` (read from `path`), checking its tally (see
/// [`checker_core::snapshot::check`]).
pub fn parse(path: &Path, text: &str) -> Result<RecordedRun, LoadError> {
    parse_keeping(path, text).map(|(run, _)| run)
}

/// [`parse`], also returning the tally as the file holds it (to compare runs).
fn parse_keeping(path: &Path, text: &str) -> Result<(RecordedRun, TallySnapshot), LoadError> {
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
    let snapshot_error = |source| LoadError::Snapshot {
        path: path.to_owned(),
        source,
    };
    if file.elapsed_s.is_nan() || file.elapsed_s < 0.0 {
        return Err(snapshot_error(SnapshotError::Field {
            field: "elapsed_s".to_owned(),
            why: format!("is {}, not a number of seconds", file.elapsed_s),
        }));
    }
    let prefer: Vec<&str> = file.inputs.expect.iter().map(|e| e.name.as_str()).collect();
    let back = file.tally.read_back(&prefer).map_err(snapshot_error)?;
    let run = RecordedRun {
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
        tally: back.tally,
        folded: back.folded,
    };
    Ok((run, file.tally))
}

/// The text of the report at `path`: a regular file of at most [`MAX_REPORT_BYTES`].
fn read_text(path: &Path) -> Result<String, LoadError> {
    input_file::read_text_bounded(path, MAX_REPORT_BYTES, "one report").map_err(|source| {
        LoadError::Read {
            path: path.to_owned(),
            source,
        }
    })
}

/// Reads the report at `path`.
pub fn load(path: &Path) -> Result<RecordedRun, LoadError> {
    parse(path, &read_text(path)?)
}

/// Reads the reports at `paths` for one merge, refusing one counted twice: the same file
/// by two names, or a copy (the same start, target and tally).
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<RecordedRun>, LoadError> {
    let mut seen: Vec<(Option<PathBuf>, RecordedRun, TallySnapshot)> = Vec::new();
    for path in paths {
        let canonical = std::fs::canonicalize(path).ok();
        if let Some(first) = seen.iter().find(|(c, ..)| c.is_some() && *c == canonical) {
            return Err(LoadError::Twice {
                first: first.1.path.clone(),
                second: path.clone(),
            });
        }
        let (run, snapshot) = parse_keeping(path, &read_text(path)?)?;
        if let Some(first) = seen.iter().find(|(_, r, s)| {
            r.times.started_at == run.times.started_at
                && r.inputs.target == run.inputs.target
                && *s == snapshot
        }) {
            return Err(LoadError::Copy {
                first: first.1.path.clone(),
                second: path.clone(),
            });
        }
        seen.push((canonical, run, snapshot));
    }
    Ok(seen.into_iter().map(|(_, run, _)| run).collect())
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
                handshake_us: None,
                reason: None,
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
