//! Server processes under test: start one, learn its address, read its memory, kill it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A server process; dropping it kills and reaps it.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// The echo address the server reported.
    pub addr: SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts `program` with `args`, waiting for a stdout line with `echo=<address>`.
    pub fn start(program: &Path, args: &[String]) -> Result<Self, String> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "warn,echo_server::server=info")
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "no stdout pipe".to_owned())?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} exited before listening", program.display()));
            };
            let found = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("echo="))
                .and_then(|a| a.split(',').next())
                .and_then(|a| a.parse().ok());
            if let Some(addr) = found {
                break addr;
            }
        };
        // Keep draining stdout so that the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, addr })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used so far, summed over its threads (from schedstat).
    pub fn cpu_time(&self) -> Result<std::time::Duration, String> {
        let dir = format!("/proc/{}/task", self.pid());
        let mut nanos: u64 = 0;
        let tasks = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
        for task in tasks.flatten() {
            let path = task.path().join("schedstat");
            // A thread may exit between listing and reading: skip it.
            if let Ok(text) = std::fs::read_to_string(&path) {
                nanos += text
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Ok(std::time::Duration::from_nanos(nanos))
    }

    /// Resident memory in KiB (VmRSS from /proc/<pid>/status).
    pub fn rss_kib(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no VmRSS in {path}"))
    }
}

/// A binary built next to the running executable (same target directory and profile).
pub fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this binary: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| "this binary has no directory".to_owned())?;
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first with `cargo build --release -p echo-server -p tcp-canary-benches`",
            path.display()
        ))
    }
}
