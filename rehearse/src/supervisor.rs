//! A child proxy (HAProxy, Envoy) that never outlives the checker, nor does anything it
//! started.
//!
//! The proxy must die with the checker even when the checker is killed with SIGKILL (no
//! destructor runs then), and so must its own children: a `--haproxy-bin` wrapper script
//! that runs HAProxy without `exec` leaves HAProxy a grandchild of the supervisor. The
//! proxy is started under a small `sh` supervisor in a process group of its own (so a
//! terminal's Ctrl-C reaches the checker, which stops it in order), which everything the
//! proxy starts joins: the supervisor's stdin is a pipe whose only writer is the checker,
//! and a watcher in the supervisor kills the whole group (the supervisor, the proxy, its
//! children and the watcher itself) as soon as that pipe reports end-of-file, which the
//! kernel does the moment the checker exits, however it exits, or lets go of the proxy.
//! The watcher outlives a proxy that ends by itself, so what the proxy left behind goes
//! too.
//!
//! `PR_SET_PDEATHSIG` would need `unsafe` (`pre_exec`), which the workspace forbids, and
//! it fires when the spawning *thread* ends, not the process, which a multi-threaded
//! runtime makes fragile.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the supervisor may take to stop the proxy once told to.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of the proxy's own output kept for error messages.
pub const OUTPUT_LINES: usize = 50;
/// The exit status of the supervisor when the shell found no such command.
pub const NOT_FOUND: i32 = 127;

/// The supervisor, run as `sh -c SUPERVISOR NAME INPUT DIR PROGRAM ARGS...` as the
/// leader of a new process group.
///
/// It starts the program with INPUT (and a newline) on its stdin, prints the program's
/// pid, then waits for it and exits with its status; meanwhile a watcher reads the
/// supervisor's stdin (the checker's pipe) and at end-of-file removes DIR (when not
/// empty: the child's private files, which a killed checker cannot remove) and kills
/// the process group: the supervisor, the program, whatever the program started (none
/// of them leaves the group: the proxies run in the foreground) and itself. The
/// program's own output goes to stderr.
const SUPERVISOR: &str = r#"exec 3<&0 </dev/null
input=$1
dir=$2
shift 2
printf '%s\n' "$input" | "$@" 3<&- 1>&2 &
hp=$!
echo "$hp"
{ while read -r _; do :; done; [ -n "$dir" ] && rm -rf -- "$dir"; kill -KILL 0; } <&3 >/dev/null 2>&1 &
exec 3<&-
wait "$hp"
"#;

/// A supervised child: the `sh` supervisor, the pipe it watches, the child's pid and output.
#[derive(Debug)]
pub struct Supervised {
    supervisor: Child,
    /// The write end of the supervisor's stdin; closing it stops the child.
    lifeline: Option<ChildStdin>,
    /// The child's pid, once the supervisor printed it.
    pid: Option<u32>,
    pid_rx: std::sync::mpsc::Receiver<Option<u32>>,
    /// The last lines the child wrote on stdout or stderr.
    output: Arc<Mutex<Vec<String>>>,
}

impl Supervised {
    /// Starts `program args...` under a supervisor named `name`, with `input` on its
    /// stdin; `private_dir`, if given, is removed when the checker ends or lets go.
    pub fn spawn(
        name: &str,
        input: &str,
        private_dir: Option<&std::path::Path>,
        program: &str,
        args: &[String],
    ) -> std::io::Result<Self> {
        let mut supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg(name)
            .arg(input)
            .arg(
                private_dir
                    .map(std::path::Path::as_os_str)
                    .unwrap_or_default(),
            )
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (pid_tx, pid_rx) = std::sync::mpsc::channel();
        if let Some(stdout) = supervisor.stdout.take() {
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = pid_tx.send(line.trim().parse::<u32>().ok());
            });
        }
        if let Some(stderr) = supervisor.stderr.take() {
            let output = Arc::clone(&output);
            std::thread::spawn(move || keep_lines(stderr, &output));
        }
        Ok(Self {
            lifeline: supervisor.stdin.take(),
            supervisor,
            pid: None,
            pid_rx,
            output,
        })
    }

    /// The child's pid, once the supervisor has told it.
    pub fn pid(&mut self) -> Option<u32> {
        if self.pid.is_none()
            && let Ok(got) = self.pid_rx.try_recv()
        {
            self.pid = got;
        }
        self.pid
    }

    /// The supervisor's exit status, if the child has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.supervisor.try_wait().ok().flatten()
    }

    /// Closes the lifeline, whose watcher kills the child's whole process group, and
    /// waits (bounded) for the supervisor to end; past the bound, kills the group itself.
    pub fn stop(&mut self) {
        self.lifeline.take();
        let end = std::time::Instant::now() + STOP_TIMEOUT;
        while std::time::Instant::now() < end {
            if !matches!(self.supervisor.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // The supervisor still runs (it is not reaped), so its pid still names the group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.supervisor.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }

    /// The last lines the child wrote.
    pub fn output(&self) -> Vec<String> {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The child's last line containing `marker`, or its last line.
    pub fn last_line_with(&self, marker: &str) -> String {
        let lines = self.output.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .rev()
            .find(|l| l.contains(marker))
            .or(lines.last())
            .cloned()
            .unwrap_or_else(|| "no message".to_owned())
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps the last [`OUTPUT_LINES`] lines of `from` in `into`.
fn keep_lines(from: impl Read, into: &Mutex<Vec<String>>) {
    for line in BufReader::new(from).lines() {
        let Ok(line) = line else { break };
        let mut lines = into.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == OUTPUT_LINES {
            lines.remove(0);
        }
        lines.push(line);
    }
}
