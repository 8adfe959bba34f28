//! Reading samples files (`--samples-out`) for a plot, one line at a time: a file of a
//! million samples is never held in memory.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::error::PlotError;
use crate::samples::SCHEMA_VERSION;
use checker_core::expect::Expectation;

/// The longest line accepted; sample lines are about 200 bytes.
pub const MAX_LINE: u64 = 64 * 1024;

/// One sample as a plot needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRecord<'a> {
    /// Start time, seconds since the Unix epoch.
    pub at: f64,
    /// The version that answered (`None` for a failed sample); borrowed from the line
    /// unless it had to be unescaped (a version may hold `"` and `\`).
    pub version: Option<Cow<'a, str>>,
    /// Connect latency, microseconds.
    pub connect_us: Option<u64>,
    /// TLS handshake latency, microseconds (samples taken with TLS).
    pub handshake_us: Option<u64>,
    /// Reply latency, microseconds.
    pub reply_us: Option<u64>,
}

/// One line of a samples file.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// A sample, answered or failed.
    Sample(SampleRecord<'a>),
    /// `expect` holds from `at` (seconds since the Unix epoch) on.
    Expect {
        /// When it took effect.
        at: f64,
        /// The expectation.
        expect: Expectation,
    },
}

/// A line as written by [`crate::samples`]; fields a plot does not use are ignored.
/// Strings are borrowed from the line when they hold no JSON escape, and unescaped into
/// their own when they do (a version may hold `"` or `\`, which JSON escapes).
#[derive(Debug, Deserialize)]
struct Line<'a> {
    /// Absent in files written before lines carried it.
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(default)]
    connect_us: Option<u64>,
    #[serde(default)]
    handshake_us: Option<u64>,
    #[serde(default)]
    reply_us: Option<u64>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default)]
    expect: Option<String>,
}

fn bad(path: &Path, line: u64, why: impl Into<String>) -> PlotError {
    PlotError::Line {
        path: path.to_owned(),
        line,
        why: why.into(),
    }
}

/// Calls `each` with every record of the samples file at `path`, in file order.
pub fn for_each_record(
    path: &Path,
    mut each: impl FnMut(Record<'_>) -> Result<(), PlotError>,
) -> Result<(), PlotError> {
    let read_error = |source: std::io::Error| PlotError::Read {
        path: path.to_owned(),
        source,
    };
    let file = input_file::open_regular(path).map_err(|why| PlotError::Input {
        path: path.to_owned(),
        why,
    })?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut text = String::new();
    let mut number = 0u64;
    loop {
        text.clear();
        number += 1;
        let read = (&mut reader)
            .take(MAX_LINE)
            .read_line(&mut text)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::InvalidData {
                    bad(path, number, "it is not UTF-8 text")
                } else {
                    read_error(source)
                }
            })?;
        if read == 0 {
            return Ok(());
        }
        if read as u64 == MAX_LINE && !text.ends_with('\n') {
            return Err(bad(
                path,
                number,
                format!("it is longer than {} KiB", MAX_LINE / 1024),
            ));
        }
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        each(parse_line(path, number, trimmed)?)?;
    }
}

/// Parses one non-empty line (`number` counts from 1, for messages).
pub fn parse_line<'a>(path: &Path, number: u64, text: &'a str) -> Result<Record<'a>, PlotError> {
    let line: Line<'a> = serde_json::from_str(text).map_err(|e| {
        bad(
            path,
            number,
            format!("it is not a JSON object of a sample ({e})"),
        )
    })?;
    if let Some(found) = line.schema_version
        && found != SCHEMA_VERSION
    {
        return Err(bad(
            path,
            number,
            format!("its schema_version is {found}; this checker reads {SCHEMA_VERSION}"),
        ));
    }
    let Some(timestamp) = line.timestamp else {
        return Err(bad(path, number, "it has no timestamp"));
    };
    let at = checker_core::clock::parse_utc(&timestamp).map_err(|e| {
        bad(
            path,
            number,
            format!("its timestamp \"{}\" {e}", protocol::escape(&*timestamp)),
        )
    })?;
    if let Some(expect) = line.expect.as_deref() {
        let expect = expect
            .parse::<Expectation>()
            .map_err(|e| bad(path, number, format!("its expectation {expect:?}: {e}")))?;
        return Ok(Record::Expect { at, expect });
    }
    if line.version.is_none() && line.error.is_none() {
        return Err(bad(path, number, "it names neither a version nor an error"));
    }
    Ok(Record::Sample(SampleRecord {
        at,
        version: line.version,
        connect_us: line.connect_us,
        handshake_us: line.handshake_us,
        reply_us: line.reply_us,
    }))
}

/// The samples files named by `paths`: files as given, directories as their `*.jsonl`
/// files in name order.
pub fn sample_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PlotError> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|source| PlotError::Read {
            path: path.clone(),
            source,
        })?;
        let mut inside: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| !p.is_dir() && p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        if inside.is_empty() {
            return Err(PlotError::EmptyDir(path.clone()));
        }
        inside.sort();
        files.extend(inside);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Record<'_>, String> {
        parse_line(Path::new("s.jsonl"), 3, text).map_err(|e| e.to_string())
    }

    #[test]
    fn sample_expect_and_error_lines_are_read() {
        let ok = parse(r#"{"schema_version":1,"id":7,"timestamp":"2026-11-27T13:37:49.5Z","address":"127.0.0.1:9000","version":"one","connect_us":81,"reply_us":95,"error":null}"#).unwrap();
        let Record::Sample(s) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(s.version.as_deref(), Some("one"));
        assert_eq!((s.connect_us, s.reply_us), (Some(81), Some(95)));
        assert!((s.at - 1_795_786_669.5).abs() < 1e-6, "{}", s.at);
        let failed = parse(r#"{"id":8,"timestamp":"2026-11-27T13:37:49Z","address":"a","version":null,"connect_us":null,"reply_us":null,"error":"refused"}"#).unwrap();
        assert!(matches!(
            failed,
            Record::Sample(SampleRecord { version: None, .. })
        ));
        let expect =
            parse(r#"{"timestamp":"2026-11-27T13:37:49Z","expect":"one=90,two=10"}"#).unwrap();
        let Record::Expect { expect, .. } = expect else {
            panic!("{expect:?}")
        };
        assert_eq!(expect.to_string(), "one=90,two=10");
    }

    #[test]
    fn bad_lines_are_named_with_file_and_line() {
        let e = parse("not json").unwrap_err();
        assert!(
            e.starts_with("s.jsonl line 3 is not a samples line: it is not a JSON object"),
            "{e}"
        );
        let e = parse(r#"{"version":"one"}"#).unwrap_err();
        assert!(e.ends_with("it has no timestamp"), "{e}");
        let e = parse(r#"{"timestamp":"today","version":"one"}"#).unwrap_err();
        assert!(e.contains("not an RFC 3339"), "{e}");
        let e = parse(r#"{"schema_version":2,"timestamp":"2026-11-27T13:37:49Z","version":"one"}"#)
            .unwrap_err();
        assert!(
            e.ends_with("its schema_version is 2; this checker reads 1"),
            "{e}"
        );
        let e = parse(r#"{"timestamp":"today","version":"one"}"#).unwrap_err();
        assert!(e.contains("not an RFC 3339"), "{e}");
        let e = parse(r#"{"timestamp":"0001-01-01T00:00:00Z","version":"one"}"#).unwrap_err();
        assert!(
            e.ends_with("its timestamp \"0001-01-01T00:00:00Z\" is before 1970-01-01T00:00:00Z, the Unix epoch, before any run of the checker"),
            "{e}"
        );
        let e = parse(r#"{"timestamp":"2026-11-27T13:37:49Z"}"#).unwrap_err();
        assert!(e.ends_with("names neither a version nor an error"), "{e}");
        let e = parse(r#"{"timestamp":"2026-11-27T13:37:49Z","expect":"one=0"}"#).unwrap_err();
        assert!(e.contains("all weights are zero"), "{e}");
    }
}
