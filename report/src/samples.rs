//! `--samples-out`: one JSON line per sample, for plotting a rollout over time.
//!
//! Each line: `{"schema_version":1,"id":7,"timestamp":"2026-...Z","address":"127.0.0.1:9000",
//! "version":"one","connect_us":81,"reply_us":95,"error":null}`; on failure `version`
//! (and the latency that was not measured) is null and `error` names the class; a
//! malformed reply adds `"reply"`, its escaped head (see [`checker_core::sampler::reply_head`]).
//!
//! `checker watch` also records its expectation, when it starts and whenever it changes,
//! as a line of its own: `{"schema_version":1,"timestamp":"2026-...Z","expect":"one=90,two=10"}`
//! (no `id`), so that `checker plot` can draw the expected weights as steps.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use checker_core::observer::{ObserverError, RunObserver};
use checker_core::sampler::{ErrorClass, Sample};
use checker_core::sync::lock;

/// The version of a line's layout (every line carries it); bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The schema every line follows (a sample or an expectation), as kept in the repository.
pub const SCHEMA: &str = include_str!("../schema/samples.schema.json");

/// One line of the samples file.
#[derive(Debug, Serialize)]
pub struct SampleLine<'a> {
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The sample id sent in the probe.
    pub id: u64,
    /// RFC 3339 start time with nanoseconds (as sent in the probe).
    pub timestamp: String,
    /// The address connected to.
    pub address: String,
    /// The version that answered.
    pub version: Option<&'a str>,
    /// Connect latency, microseconds.
    pub connect_us: Option<u64>,
    /// Reply latency, microseconds.
    pub reply_us: Option<u64>,
    /// With `--rate`: lag behind the schedule, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_us: Option<u64>,
    /// The error class when the sample failed.
    pub error: Option<ErrorClass>,
    /// For a malformed reply: its first bytes, escaped, the line sent shown as `<line sent>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<&'a str>,
}

impl<'a> SampleLine<'a> {
    /// The line for `sample`.
    pub fn of(sample: &'a Sample) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            id: sample.id,
            timestamp: checker_core::clock::rfc3339_nanos(sample.started_at),
            address: sample.addr.to_string(),
            version: sample.result.as_deref().ok(),
            connect_us: sample.connect_us,
            reply_us: sample.reply_us,
            lag_us: sample.lag_us,
            error: sample.result.as_ref().err().copied(),
            reply: sample.reply_head.as_deref(),
        }
    }
}

/// A line saying which expectation holds from `timestamp` on.
#[derive(Debug, Serialize)]
pub struct ExpectLine<'a> {
    /// Layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// RFC 3339 time from which it holds, with nanoseconds.
    pub timestamp: String,
    /// The expectation, as `--expect` takes it.
    pub expect: &'a str,
}

/// A buffered writer of sample lines.
#[derive(Debug)]
pub struct SamplesWriter {
    out: BufWriter<File>,
}

impl SamplesWriter {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(64 * 1024, File::create(path)?),
        })
    }

    /// Appends the line of one sample.
    pub fn write(&mut self, sample: &Sample) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &SampleLine::of(sample))?;
        self.out.write_all(b"\n")
    }

    /// Appends a line saying that `expect` holds from `at` on.
    pub fn write_expect(&mut self, expect: &str, at: SystemTime) -> io::Result<()> {
        let line = ExpectLine {
            schema_version: SCHEMA_VERSION,
            timestamp: checker_core::clock::rfc3339_nanos(at),
            expect,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    /// Flushes everything to the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// The samples file cannot be created or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the samples file {path}: {source}")]
pub struct SamplesError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: io::Error,
}

/// A samples file as a run's observer: every sample and expectation becomes a line.
#[derive(Debug)]
pub struct SamplesFile {
    path: PathBuf,
    out: Mutex<Option<SamplesWriter>>,
}

impl SamplesFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> Result<Self, SamplesError> {
        let writer = SamplesWriter::create(path).map_err(|source| SamplesError {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            out: Mutex::new(Some(writer)),
        })
    }

    fn error(&self, source: io::Error) -> ObserverError {
        Box::new(SamplesError {
            path: self.path.clone(),
            source,
        })
    }

    /// Runs `write` on the open writer (a finished file takes no more lines).
    fn with(
        &self,
        write: impl FnOnce(&mut SamplesWriter) -> io::Result<()>,
    ) -> Result<(), ObserverError> {
        match lock(&self.out).as_mut() {
            Some(out) => write(out).map_err(|e| self.error(e)),
            None => Ok(()),
        }
    }
}

impl RunObserver for SamplesFile {
    fn sample(&self, sample: &Sample) -> Result<(), ObserverError> {
        self.with(|out| out.write(sample))
    }

    fn expectation(&self, expect: &str, at: SystemTime) -> Result<(), ObserverError> {
        self.with(|out| out.write_expect(expect, at))
    }

    fn finished(&self) -> Result<(), ObserverError> {
        match lock(&self.out).take() {
            Some(out) => out.finish().map_err(|e| self.error(e)),
            None => Ok(()),
        }
    }
}
