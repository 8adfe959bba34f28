//! The Envoy process: started under the supervisor on a bootstrap in its own private
//! directory, waited for until its admin interface answers, and its last log lines for
//! error messages.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::time::Instant;

use super::admin::Admin;
use super::config::write_bootstrap;
use super::error::{EnvoyError, io};
use crate::supervisor::{NOT_FOUND, Supervised};

/// How long Envoy may take to answer on its admin port after starting.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest log line shown in an error message.
const LOG_LINE_CHARS: usize = 300;
/// Lines of Envoy's log shown when it fails.
pub const LOG_LINES: usize = 15;

/// A running Envoy and its directory; dropping it stops Envoy, then removes the directory.
#[derive(Debug)]
pub(super) struct Process {
    /// Dropped first (fields drop in order): Envoy stops before its directory goes.
    supervised: Option<Supervised>,
    dir: tempfile::TempDir,
}

impl Process {
    /// Writes the configuration (admin on `admin`) into a new private directory and starts
    /// `binary` on it with `drain_secs` as its drain time.
    pub(super) fn spawn(
        binary: &str,
        drain_secs: u64,
        admin: SocketAddr,
    ) -> Result<Self, EnvoyError> {
        let dir = tempfile::Builder::new()
            .prefix("tcp-canary-envoy-")
            .tempdir()
            .map_err(io("creating its temporary directory"))?;
        let bootstrap = write_bootstrap(dir.path(), admin)?;
        let log = dir.path().join("envoy.log");
        let args: Vec<String> = vec![
            "-c".into(),
            bootstrap.display().to_string(),
            "--disable-hot-restart".into(),
            "--concurrency".into(),
            "2".into(),
            "--drain-time-s".into(),
            drain_secs.to_string(),
            "--drain-strategy".into(),
            "immediate".into(),
            "--log-level".into(),
            "info".into(),
            "--log-path".into(),
            log.display().to_string(),
        ];
        let supervised = Supervised::spawn("tcp-canary-envoy", "", Some(dir.path()), binary, &args)
            .map_err(io("starting its supervisor (sh)"))?;
        Ok(Self {
            supervised: Some(supervised),
            dir,
        })
    }

    /// The private directory: the bootstrap, the resource files and the log.
    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Envoy's process id, while it runs.
    pub(super) fn pid(&mut self) -> Option<u32> {
        self.supervised.as_mut().and_then(Supervised::pid)
    }

    /// Envoy's exit status, once it has ended.
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        self.supervised.as_mut().and_then(Supervised::exited)
    }

    /// Waits until the admin interface on `admin` answers; `binary` names Envoy in errors.
    pub(super) async fn wait_ready(
        &mut self,
        admin: &Admin,
        binary: &str,
    ) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(p) = self.supervised.as_mut() {
                p.pid();
                if let Some(status) = p.exited() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if status.code() == Some(NOT_FOUND) {
                        self.supervised = None;
                        return Err(EnvoyError::NotInstalled {
                            binary: binary.to_owned(),
                        });
                    }
                    let why = format!("it exited ({status}){}", self.last_words());
                    self.supervised = None;
                    return Err(EnvoyError::Start(why));
                }
            }
            if admin.get("/ready").await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EnvoyError::Start(format!(
                    "its admin interface did not answer on {} within {:?}{}",
                    admin.addr,
                    START_TIMEOUT,
                    self.last_words()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Envoy's last log lines (its log file, else what it wrote on stderr), as a
    /// suffix for error messages.
    pub(super) fn last_words(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let mut lines: Vec<String> = log.lines().map(str::to_owned).collect();
        if lines.is_empty()
            && let Some(p) = &self.supervised
        {
            lines = p.output();
        }
        if lines.is_empty() {
            return "; it logged nothing".to_owned();
        }
        // Its errors and warnings when it logged any, else its last lines.
        let bad: Vec<&String> = lines
            .iter()
            .filter(|l| {
                ["[critical]", "[error]", "[warning]"]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .collect();
        let shown: Vec<&String> = if bad.is_empty() {
            lines.iter().collect()
        } else {
            bad
        };
        let from = shown.len().saturating_sub(LOG_LINES);
        let mut out = format!(
            "; the last lines of its log ({}):",
            self.log_path().display()
        );
        for l in &shown[from..] {
            let cut: String = l.chars().take(LOG_LINE_CHARS).collect();
            let _ = write!(out, "\n    {cut}");
        }
        out
    }

    /// Envoy's log file.
    pub(super) fn log_path(&self) -> PathBuf {
        self.dir.path().join("envoy.log")
    }
}
